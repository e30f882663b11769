"""metrics.k8s.io/v1beta1: PodMetrics and NodeMetrics computed from the load model, as
metrics-server reports them (cpu in nanocores, memory in KiB)."""

from __future__ import annotations

from typing import Any

from .controllers import Controllers
from .store import Obj, Store, labels_match, parse_label_selector

GV = "metrics.k8s.io/v1beta1"


def _cpu(cores: float) -> str:
    return f"{round(cores * 1e9)}n"


def _mem(nbytes: float) -> str:
    return f"{round(nbytes / 1024)}Ki"


class Metrics:
    def __init__(self, store: Store, controllers: Controllers):
        self.store = store
        self.controllers = controllers

    def pod_metrics(self, pod: Obj, now: float) -> Obj | None:
        use = self.controllers.usage(pod, now)
        if use is None:
            return None
        cpu, mem = use
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
            "timestamp": self.store.clock.stamp(),
            "window": "15s",
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
            now = self.store.clock.now()
            items = []
            for pod in self.store.kind_items("Pod", namespace):
                if name and pod["metadata"]["name"] != name:
                    continue
                if not labels_match(pod["metadata"].get("labels", {}), reqs):
                    continue
                m = self.pod_metrics(pod, now)
                if m is not None:
                    items.append(m)
        if name:
            return items[0] if items else None
        return {"kind": "PodMetricsList", "apiVersion": GV, "metadata": {}, "items": items}

    def nodes(self, name: str | None = None) -> Obj | None:
        with self.store.lock:
            now = self.store.clock.now()
            items: list[dict[str, Any]] = []
            for node in self.store.kind_items("Node"):
                nname = node["metadata"]["name"]
                if name and nname != name:
                    continue
                cpu = mem = 0.0
                for pod in self.store.kind_items("Pod"):
                    if pod["spec"].get("nodeName") == nname:
                        use = self.controllers.usage(pod, now)
                        if use:
                            cpu, mem = cpu + use[0], mem + use[1]
                items.append(
                    {
                        "kind": "NodeMetrics",
                        "apiVersion": GV,
                        "metadata": {"name": nname, "labels": node["metadata"].get("labels", {})},
                        "timestamp": self.store.clock.stamp(),
                        "window": "15s",
                        "usage": {"cpu": _cpu(cpu + 0.1), "memory": _mem(mem + 1.5 * 2**30)},
                    }
                )
        if name:
            return items[0] if items else None
        return {"kind": "NodeMetricsList", "apiVersion": GV, "metadata": {}, "items": items}
