"""metrics.k8s.io/v1beta1: PodMetrics and NodeMetrics as metrics-server reports them (cpu in
nanocores, memory in KiB), from the scrapes the controllers take every
Timings.metrics_resolution_s (see Controllers.scrape): a new pod has no metrics until two
scrapes saw it running, values change once per scrape, `timestamp` is the time of the last
scrape and `window` the time between the two (metrics-server pkg/storage, pkg/api)."""

from __future__ import annotations

from typing import Any

from .controllers import Controllers
from .store import Obj, Store, labels_match, parse_label_selector

GV = "metrics.k8s.io/v1beta1"


def _cpu(cores: float) -> str:
    return f"{round(cores * 1e9)}n"


def _mem(nbytes: float) -> str:
    return f"{round(nbytes / 1024)}Ki"


def _window(seconds: float) -> str:
    return f"{seconds:g}s"  # a Go duration, as metav1.Duration serialises


class Metrics:
    def __init__(self, store: Store, controllers: Controllers):
        self.store = store
        self.controllers = controllers

    def pod_metrics(self, pod: Obj) -> Obj | None:
        sample = self.controllers.pod_metric(pod)
        if sample is None:
            return None
        cpu, mem, at, window = sample
        containers = pod["spec"]["containers"]
        return {
            "kind": "PodMetrics",
            "apiVersion": GV,
            "metadata": {
                "name": pod["metadata"]["name"],
                "namespace": pod["metadata"]["namespace"],
                "labels": dict(pod["metadata"].get("labels", {})),
                "creationTimestamp": self.store.clock.stamp(),
            },
            "timestamp": self.store.clock.stamp(at),
            "window": _window(window),
            "containers": [
                {
                    "name": c["name"],
                    "usage": {
                        "cpu": _cpu(cpu if i == 0 else 0.0),
                        "memory": _mem(mem if i == 0 else 0.0),
                    },
                }
                for i, c in enumerate(containers)
            ],
        }

    def pods(
        self, namespace: str | None, name: str | None = None, label_selector: str | None = None
    ) -> Obj | None:
        reqs = parse_label_selector(label_selector)
        with self.store.lock:
            items = []
            for pod in self.store.kind_items("Pod", namespace):
                if name and pod["metadata"]["name"] != name:
                    continue
                if not labels_match(pod["metadata"].get("labels", {}), reqs):
                    continue
                m = self.pod_metrics(pod)
                if m is not None:
                    items.append(m)
        if name:
            return items[0] if items else None
        return {"kind": "PodMetricsList", "apiVersion": GV, "metadata": {}, "items": items}

    def nodes(self, name: str | None = None) -> Obj | None:
        with self.store.lock:
            items: list[dict[str, Any]] = []
            for node in self.store.kind_items("Node"):
                nname = node["metadata"]["name"]
                if name and nname != name:
                    continue
                samples = self.controllers.node_samples.get(nname) or []
                if len(samples) < 2:
                    continue
                (t0, _c, _m), (t1, cpu, mem) = samples
                items.append(
                    {
                        "kind": "NodeMetrics",
                        "apiVersion": GV,
                        "metadata": {
                            "name": nname,
                            "labels": node["metadata"].get("labels", {}),
                            "creationTimestamp": self.store.clock.stamp(),
                        },
                        "timestamp": self.store.clock.stamp(t1),
                        "window": _window(t1 - t0),
                        # the system daemons' share on top of the pods'
                        "usage": {"cpu": _cpu(cpu + 0.1), "memory": _mem(mem + 1.5 * 2**30)},
                    }
                )
        if name:
            return items[0] if items else None
        return {"kind": "NodeMetricsList", "apiVersion": GV, "metadata": {}, "items": items}
