"""Resource samples of the service's pods on Kubernetes: the `Sampler` `ggctl evaluate` uses.

Every call lists the app's pods by label selector in one namespace, sums their containers'
requests and limits, reads their usage from metrics.k8s.io/v1beta1 PodMetrics, and reads the
Deployment's and the HorizontalPodAutoscaler's status, through the official `kubernetes`
client and a kubeconfig. Columns and units are those of the course's `resource_monitor.py`
(CPU in cores, memory in KB = bytes / 1024).

Which pods count, and why we differ from the course's rule
------------------------------------------------------------
The course sums the pods in *all namespaces* whose *first container is named `ml-app`*,
and takes usage from the first container of every pod in `default`, unfiltered. That rule
counts nothing for its own `k8s` and `lb` manifests (their container is `ml-kube-app`),
counts any unrelated pod that happens to name a container `ml-app`, and mixes other apps'
usage into "used". Here:

- pods are selected by the label every strategy puts on its pods
  (`app.kubernetes.io/name=gourmetgram`) in the deployment's namespace, whatever the
  container is called, and every container of a pod is summed (requests, limits, usage);
- requests and limits are summed as the scheduler accounts them: over every pod bound to
  a node (spec.nodeName set) that has not finished (phase not Succeeded/Failed), whether
  or not it is Running, *terminating pods included*: a pod holds its request on its node
  until it is deleted (up to the optimized strategy's 35 s grace period after a scale-down);
- a pod counts as a replica (`n_replica`, and usage) when its phase is Running and it is
  not terminating (no deletionTimestamp): it serves, and the Deployment counts it. The
  requests of these pods alone are the `cpu_req_running_core` / `mem_req_running_KB`
  columns of the sampler's `details` (cluster.csv of a run), with the pending, terminating
  and bound pod counts and the Deployment's and the HPA's own replica counts.

Requests: a container with no request but a limit gets the limit as request (Kubernetes'
defaulting); with neither, 0. Limits: if any counted container has no limit for a resource,
the sum is None (unbounded), not a partial sum. Usage: summed over the counted pods, None
while any of them has no PodMetrics yet (metrics-server reports a pod only after two
scrapes saw it running, 15-30 s after it starts, or is not installed): a partial sum would
show a dip at every scale-up, when the new pods already take their share of the load but
have no metrics yet. 0.0 when no pod is counted at all. `details` records how many counted
pods had metrics.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import IO, Any

from ggctl.cluster.kubeclient import api_client
from ggctl.errors import GgctlError, for_person, status_message
from ggctl.evaluate.monitor import Sample
from ggctl.manifests.strategy import POD_SELECTOR, STRATEGY_LABEL

log = logging.getLogger(__name__)

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"


class KubernetesSamplerError(GgctlError):
    """The cluster cannot be sampled: no kubeconfig, API unreachable, access denied."""


@dataclass(frozen=True)
class ClusterDetail:
    """What the cluster says about the app at one sample, beside the course's columns."""

    time: float
    pods_counted: int
    pods_pending: int
    pods_terminating: int
    pods_with_metrics: int
    deployment_desired: int | None
    deployment_ready: int | None
    hpa_desired: int | None
    hpa_current: int | None
    metrics_error: str = ""
    #: Pods holding requests on a node (bound, not finished; terminating included).
    pods_reserving: int = 0
    #: Requests of the Running, non-terminating pods only (the Sample's are the scheduler's).
    cpu_req_running_core: float = 0.0
    mem_req_running_KB: float = 0.0


DETAIL_COLUMNS = tuple(f.name for f in fields(ClusterDetail))


def _float(q: Any) -> float:
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(q))


def _get(obj: Any, *path: str) -> Any:
    """obj[p0][p1]... for dicts, None as soon as a key is missing."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def pod_counts(pod: dict[str, Any]) -> bool:
    """Whether a pod counts as a replica: Running and not terminating (see the module doc)."""
    return _get(pod, "status", "phase") == "Running" and not _get(
        pod, "metadata", "deletionTimestamp"
    )


def pod_reserves(pod: dict[str, Any]) -> bool:
    """Whether the scheduler counts the pod's requests on a node: bound, not finished
    (terminating included), as the scheduler's NodeInfo accounts pods until deleted."""
    return bool(_get(pod, "spec", "nodeName")) and _get(pod, "status", "phase") not in (
        "Succeeded",
        "Failed",
    )


def sum_resources(
    pods: Iterable[dict[str, Any]],
) -> tuple[float, float, float | None, float | None]:
    """(cpu request cores, memory request KB, cpu limit cores, memory limit KB) over every
    container of `pods`; a limit is None when any container lacks it."""
    cpu_req = mem_req = 0.0
    cpu_lim: float | None = 0.0
    mem_lim: float | None = 0.0
    for pod in pods:
        for c in _get(pod, "spec", "containers") or []:
            res = c.get("resources") or {}
            requests = res.get("requests") or {}
            limits = res.get("limits") or {}
            cpu_req += _float(requests.get("cpu", limits.get("cpu", 0)))
            mem_req += _float(requests.get("memory", limits.get("memory", 0))) / 1024
            cpu_lim = (
                None if cpu_lim is None or "cpu" not in limits else cpu_lim + _float(limits["cpu"])
            )
            mem_lim = (
                None
                if mem_lim is None or "memory" not in limits
                else mem_lim + _float(limits["memory"]) / 1024
            )
    return cpu_req, mem_req, cpu_lim, mem_lim


class KubernetesSampler:
    """Samples the app's pods in `namespace` (see the module doc for what counts).

    `api_client` is a `kubernetes.client.ApiClient`; `from_kubeconfig` makes one. If
    `detail_csv` is given, each `ClusterDetail` is appended to it as it is taken.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str = "default",
        *,
        selector: str = POD_SELECTOR,
        request_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        detail_csv: Path | None = None,
    ):
        from kubernetes import client

        self.api_client = api_client
        self.namespace = namespace
        self.selector = selector
        self.timeout = request_timeout_s
        self._clock = clock
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._hpa_v2 = client.AutoscalingV2Api(api_client)
        self._hpa_v1 = client.AutoscalingV1Api(api_client)
        self._hpa_api: str | None = "v2"  # None once neither version answers
        self.details: list[ClusterDetail] = []
        #: The ggctl.io/strategy labels seen on the app's Deployments.
        self.strategies: set[str] = set()
        self._fh: IO[str] | None = None
        self._writer: Any = None
        if detail_csv is not None:
            self.open_details(detail_csv)

    def open_details(self, path: Path) -> None:
        """Append every `ClusterDetail` from now on to a CSV at `path` (header first)."""
        if self._fh is not None:
            self._fh.close()
        self._fh = Path(path).open("w", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.writer(self._fh)
        self._writer.writerow(DETAIL_COLUMNS)
        self._fh.flush()

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self.api_client.configuration.host)

    @classmethod
    def from_kubeconfig(
        cls, path: Path | None, namespace: str = "default", context: str | None = None, **kw: Any
    ) -> KubernetesSampler:
        """A sampler for the cluster of a kubeconfig (None: $KUBECONFIG, else ~/.kube/config)."""
        api = api_client(
            path,
            context,
            error=KubernetesSamplerError,
            hint="pass --kubeconfig FILE (the one `ggctl deploy` used)",
        )
        return cls(api, namespace, **kw)

    # ------------------------------------------------------------------ API calls
    def _json(self, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        import json

        resp = call(*args, _preload_content=False, _request_timeout=self.timeout, **kw)
        try:
            return json.loads(resp.data or b"{}")
        finally:
            with contextlib.suppress(Exception):
                resp.release_conn()

    def _pods(self) -> list[dict[str, Any]]:
        doc = self._json(
            self._core.list_namespaced_pod, self.namespace, label_selector=self.selector
        )
        return list(doc.get("items") or [])

    def _usage(self, names: set[str]) -> tuple[dict[str, tuple[float, float]], str]:
        """{pod name: (cpu cores, memory bytes)} from PodMetrics; '' or why there are none."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            doc = self._json(
                self._custom.list_namespaced_custom_object,
                METRICS_GROUP,
                METRICS_VERSION,
                self.namespace,
                "pods",
                label_selector=self.selector,
            )
        except ApiException as exc:
            text = status_message(exc.body)
            return {}, f"metrics API: HTTP {exc.status} {exc.reason}" + (
                f": {text}" if text else ""
            )
        except HTTPError as exc:
            return {}, f"metrics API: {type(exc).__name__}"
        out: dict[str, tuple[float, float]] = {}
        for item in doc.get("items") or []:
            name = _get(item, "metadata", "name")
            if name not in names:
                continue
            cpu = mem = 0.0
            try:
                for c in item.get("containers") or []:
                    cpu += _float(_get(c, "usage", "cpu") or 0)
                    mem += _float(_get(c, "usage", "memory") or 0)
            except ValueError:
                continue  # an unparsable quantity: as if this pod had no metrics yet
            out[name] = (cpu, mem)
        return out, ""

    def _deployments(self) -> tuple[int | None, int | None]:
        from kubernetes.client.exceptions import ApiException

        try:
            doc = self._json(
                self._apps.list_namespaced_deployment, self.namespace, label_selector=self.selector
            )
        except ApiException:
            return None, None
        items = doc.get("items") or []
        # The strategy label is on the Deployment, not on its pods (a switch between
        # strategies sharing a Deployment must not restart them).
        self.strategies.update(
            str(v) for d in items if (v := _get(d, "metadata", "labels", STRATEGY_LABEL))
        )
        if not items:
            return None, None
        desired = sum(int(_get(d, "spec", "replicas") or 0) for d in items)
        ready = sum(int(_get(d, "status", "readyReplicas") or 0) for d in items)
        return desired, ready

    def _hpa(self) -> tuple[int | None, int | None]:
        from kubernetes.client.exceptions import ApiException

        while self._hpa_api is not None:
            api = self._hpa_v2 if self._hpa_api == "v2" else self._hpa_v1
            try:
                doc = self._json(
                    api.list_namespaced_horizontal_pod_autoscaler,
                    self.namespace,
                    label_selector=self.selector,
                )
            except ApiException as exc:
                if exc.status != 404:
                    return None, None
                self._hpa_api = "v1" if self._hpa_api == "v2" else None
                continue
            items = doc.get("items") or []
            if not items:
                return None, None
            desired = sum(int(_get(h, "status", "desiredReplicas") or 0) for h in items)
            current = sum(int(_get(h, "status", "currentReplicas") or 0) for h in items)
            return desired, current
        return None, None

    # ------------------------------------------------------------------ the protocol
    def sample(self) -> Sample:
        """Measure the app's pods now (API errors listing the pods propagate: the Monitor
        counts them as a gap; a missing metrics API only leaves usage None)."""
        now = self._clock()
        pods = self._pods()
        counted = [p for p in pods if pod_counts(p)]
        terminating = sum(1 for p in pods if _get(p, "metadata", "deletionTimestamp"))
        pending = sum(
            1
            for p in pods
            if _get(p, "status", "phase") == "Pending"
            and not _get(p, "metadata", "deletionTimestamp")
        )
        reserving = [p for p in pods if pod_reserves(p)]
        cpu_req, mem_req, cpu_lim, mem_lim = sum_resources(reserving)
        cpu_run, mem_run, _l1, _l2 = sum_resources(counted)
        names = {_get(p, "metadata", "name") for p in counted}
        usage, metrics_error = self._usage(names) if counted else ({}, "")
        if not counted:
            cpu_use: float | None = 0.0
            mem_use: float | None = 0.0
        elif len(usage) == len(counted):
            cpu_use = sum(u[0] for u in usage.values())
            mem_use = sum(u[1] for u in usage.values()) / 1024
        else:
            cpu_use = mem_use = None
        dep_desired, dep_ready = self._deployments()
        hpa_desired, hpa_current = self._hpa()
        detail = ClusterDetail(
            time=now,
            pods_counted=len(counted),
            pods_pending=pending,
            pods_terminating=terminating,
            pods_with_metrics=len(usage),
            deployment_desired=dep_desired,
            deployment_ready=dep_ready,
            hpa_desired=hpa_desired,
            hpa_current=hpa_current,
            metrics_error=metrics_error,
            pods_reserving=len(reserving),
            cpu_req_running_core=cpu_run,
            mem_req_running_KB=mem_run,
        )
        self.details.append(detail)
        if self._writer is not None and self._fh is not None:
            self._writer.writerow(["" if v is None else v for v in astuple(detail)])
            self._fh.flush()
        return Sample(
            time=now,
            n_replica=len(counted),
            cpu_req_core=cpu_req,
            mem_req_KB=mem_req,
            cpu_lim_core=cpu_lim,
            mem_lim_KB=mem_lim,
            cpu_use_core=cpu_use,
            mem_use_KB=mem_use,
        )

    def check(self) -> Sample:
        """One sample now, with API failures turned into a readable error (a pre-flight)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return self.sample()
        except ApiException as exc:
            err = for_person(exc)
            raise KubernetesSamplerError(
                f"cannot sample the pods in namespace {self.namespace!r} at {self.host}: "
                f"{err.message if err else exc}",
                hint=(err.hint + "; " if err and err.hint else "")
                + "check --kubeconfig and --namespace (the ones `ggctl deploy` used)",
            ) from exc
        except HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise KubernetesSamplerError(
                f"cannot reach the Kubernetes API at {self.host}: {reason}",
                hint="check the kubeconfig (--kubeconfig) and that the cluster is up",
            ) from None

    def close(self) -> None:
        """Close the detail CSV and the API client."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._writer = None
        with contextlib.suppress(Exception):
            self.api_client.close()


def read_details(path: Path) -> list[ClusterDetail]:
    """Read a cluster.csv written by `KubernetesSampler` (empty cells are None)."""

    def num(v: str) -> int | None:
        return int(float(v)) if v != "" else None

    with Path(path).open(newline="") as fh:
        return [
            ClusterDetail(
                time=float(row["time"]),
                pods_counted=int(float(row["pods_counted"])),
                pods_pending=int(float(row["pods_pending"])),
                pods_terminating=int(float(row["pods_terminating"])),
                pods_with_metrics=int(float(row["pods_with_metrics"])),
                deployment_desired=num(row["deployment_desired"]),
                deployment_ready=num(row["deployment_ready"]),
                hpa_desired=num(row["hpa_desired"]),
                hpa_current=num(row["hpa_current"]),
                metrics_error=row.get("metrics_error", ""),
                # absent from runs recorded before these columns existed
                pods_reserving=int(float(row.get("pods_reserving") or 0)),
                cpu_req_running_core=float(row.get("cpu_req_running_core") or 0),
                mem_req_running_KB=float(row.get("mem_req_running_KB") or 0),
            )
            for row in csv.DictReader(fh)
        ]
