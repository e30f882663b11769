"""Put rendered objects on a cluster: server-side apply with one field manager, prune what the
previous strategy left, wait for the rollout, and explain a failed one with the pod's events.

Everything goes through the official `kubernetes` client's DynamicClient (discovery, then
plain REST), so any cluster a kubeconfig reaches works: ours, kind, k3s.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ggctl.cluster.kubeclient import api_client
from ggctl.errors import GgctlError, for_person, status_message

from .render import KIND_ORDER
from .strategy import OURS_SELECTOR, STRATEGY_LABEL

FIELD_MANAGER = "ggctl"
#: Set by the Deployment controller on each ReplicaSet (and on the Deployment).
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"

#: Kinds ggctl may have created, so the kinds pruning looks at (preferred version first).
MANAGED_KINDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("v1",), "Service"),
    (("autoscaling/v2", "autoscaling/v1"), "HorizontalPodAutoscaler"),
    (("policy/v1",), "PodDisruptionBudget"),
    (("apps/v1",), "Deployment"),
    (("v1",), "ConfigMap"),
)
#: Prune order: what routes traffic or scales first, the workload last.
DELETE_ORDER = (
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Deployment",
    "ConfigMap",
)

#: Waiting reasons that never heal by themselves: fail the rollout at once.
FATAL_WAITING = {
    "ErrImageNeverPull": "the image is not on the node and the pull policy forbids pulling",
    "InvalidImageName": "the image reference is invalid",
    "CrashLoopBackOff": "the container keeps crashing",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CreateContainerError": "the container cannot be created",
    "RunContainerError": "the container cannot be started",
}
#: Waiting reasons of a failing pull: the kubelet retries them with a back-off (10 s doubling
#: to 5 min), so a registry hiccup heals; only a pull failing for `pull_grace` s is fatal.
PULL_FAILING = ("ErrImagePull", "ImagePullBackOff")
HINTS = {
    "image": "Check the image reference (--image) and that every node can pull from the "
    "registry: `ggctl build` pushes node-0:5000/ml-app:<tag>.",
    "CrashLoopBackOff": "The service exits at start; its last log lines are above "
    "(`kubectl logs --previous` shows more).",
    "CrashLoopBackOff-nolog": "The service exits at start, and its log could not be read: "
    "`ggctl kubectl logs --previous POD` shows it once the node answers.",
    "NoNodes": "No node can take the pod at all (not a matter of its size): check the nodes "
    "with `ggctl kubectl get nodes` (NotReady, cordoned, tainted) and `ggctl cluster`.",
    "FailedCreate": "The namespace refuses the pods (ResourceQuota, LimitRange, PodSecurity, "
    "a missing ServiceAccount): `ggctl kubectl describe quota,limitrange -n NAMESPACE` shows "
    "its limits; free them or deploy to another namespace (-n).",
    "FailedCreate-serviceaccount": "The namespace lacks the ServiceAccount the pods run as, "
    "so none can be created. ggctl's pods use the namespace's \"default\" one, which "
    "kube-controller-manager's serviceaccount controller makes in every namespace: check that "
    "it runs (`ggctl kubectl -n kube-system get pods`) and what exists "
    "(`ggctl kubectl get serviceaccounts -n NAMESPACE`), then deploy again.",
    "OOMKilled": "The container ran out of memory: raise the memory limit of the strategy.",
    "Unschedulable": "The pods' CPU/memory requests do not fit on any node's free capacity: "
    "use a strategy with smaller requests or free the cluster "
    "(`kubectl get pods -A`).",
    "timeout": "The pods did not become ready in time: look at the events above (readiness "
    "probe failures, slow image pulls); raise --timeout for a slow first pull.",
}


class DeployError(GgctlError):
    """The cluster refused an object, or could not be reached."""


class RolloutFailed(GgctlError):
    """A Deployment did not become ready; the message names the pod, its reason and events."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        deployment: str = "",
        pod: str | None = None,
        reason: str = "",
        events: list[str] | None = None,
    ):
        super().__init__(message, hint)
        self.deployment = deployment
        self.pod = pod
        self.reason = reason
        self.events = events or []


@dataclass
class Change:
    kind: str
    name: str
    action: str  # created, configured, unchanged, deleted
    strategy: str | None = None


@dataclass
class DeployResult:
    namespace: str
    changes: list[Change] = field(default_factory=list)
    rollout_s: float = 0.0
    #: Seconds spent waiting for deleted objects (the previous strategy's, or ones still
    #: being deleted when the deploy began) to be gone.
    prune_s: float = 0.0
    server_version: str = ""

    @property
    def changed(self) -> bool:
        return any(c.action != "unchanged" for c in self.changes)


# --------------------------------------------------------------------------- connection


class Cluster:
    """One API server, reached through the official client's DynamicClient."""

    def __init__(self, api_client: Any, request_timeout: float = 30.0):
        from kubernetes import dynamic

        self.api_client = api_client
        self.timeout = request_timeout
        self.host = api_client.configuration.host
        # A private discovery cache: the shared one in /tmp outlives clusters on reused ports.
        self._cache_dir = tempfile.TemporaryDirectory(prefix="ggctl-discovery-")
        with self.errors("discovery"):
            self.dyn = dynamic.DynamicClient(
                api_client, cache_file=os.path.join(self._cache_dir.name, "discovery.json")
            )

    @classmethod
    def from_kubeconfig(cls, path: Path | None = None, context: str | None = None) -> Cluster:
        api = api_client(
            path,
            context,
            retries=1,
            error=DeployError,
            hint="pass --kubeconfig FILE (a kind, k3s or kubeadm admin.conf works)",
        )
        return cls(api)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.close()
        self._cache_dir.cleanup()

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn transport failures and API error answers not handled inside into one
        readable DeployError that says what ggctl was doing."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            yield
        except GgctlError:
            raise
        except Urllib3Error as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DeployError(
                f"cannot reach the Kubernetes API at {self.host} ({doing}): {reason}",
                hint="check the kubeconfig (--kubeconfig) and that the cluster is up",
            ) from exc
        except ApiException as exc:
            err = for_person(exc)
            raise DeployError(
                f"{doing} at {self.host}: {err.message if err else exc}",
                hint=err.hint if err else None,
            ) from exc

    def resource(self, api_version: str, kind: str) -> Any:
        """The API resource of `kind`; raises ResourceNotFoundError if not served."""
        with self.errors(f"discovering {kind}"):
            return self.dyn.resources.get(api_version=api_version, kind=kind)

    def served(self, api_version: str, kind: str) -> Any:
        """Like resource(), with a readable error if the cluster does not serve `kind`."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.resource(api_version, kind)
        except ResourceNotFoundError:
            raise DeployError(
                f"the cluster at {self.host} does not serve {kind} {api_version}",
                hint="ggctl needs Kubernetes 1.23 or newer (apps/v1, autoscaling/v2, policy/v1)",
            ) from None

    def server_version(self) -> str:
        with contextlib.suppress(Exception):
            return self.dyn.version["kubernetes"]["gitVersion"]
        return ""


def api_message(exc: Exception) -> str:
    """The `message` of a Kubernetes Status error body, else the exception's text."""
    return status_message(getattr(exc, "body", None)) or str(exc)


def _status_of(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


# --------------------------------------------------------------------------- objects


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def ensure_namespace(cluster: Cluster, namespace: str) -> bool:
    """Create `namespace` if it does not exist; whether it was created."""
    from kubernetes.client.exceptions import ApiException

    ns = cluster.resource("v1", "Namespace")
    with cluster.errors(f"reading namespace {namespace}"):
        try:
            ns.get(name=namespace, _request_timeout=cluster.timeout)
            return False
        except ApiException as exc:
            if _status_of(exc) != 404:
                raise  # cluster.errors says what failed
        ns.server_side_apply(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            _request_timeout=cluster.timeout,
        )
    return True


def delete_namespace(cluster: Cluster, namespace: str) -> None:
    """Best effort: remove a namespace this deploy created and could not fill."""
    with contextlib.suppress(Exception):
        cluster.resource("v1", "Namespace").delete(name=namespace, _request_timeout=cluster.timeout)


def node_port_holder(cluster: Cluster, port: int) -> dict[str, Any] | None:
    """The Service, in any namespace, that holds node port `port` (None if unknown)."""
    with contextlib.suppress(Exception):
        items = (
            cluster.resource("v1", "Service")
            .get(_request_timeout=cluster.timeout)
            .to_dict()["items"]
        )
        for svc in items:
            if any(p.get("nodePort") == port for p in (svc.get("spec") or {}).get("ports") or []):
                return svc
    return None


def list_ours(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Every object in `namespace` labelled as ggctl's, of the kinds ggctl creates."""
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    found: list[dict[str, Any]] = []
    for versions, kind in MANAGED_KINDS:
        for version in versions:
            try:
                res = cluster.resource(version, kind)
            except ResourceNotFoundError:
                continue
            with cluster.errors(f"listing {kind}s in {namespace}"):
                items = res.get(
                    namespace=namespace,
                    label_selector=OURS_SELECTOR,
                    _request_timeout=cluster.timeout,
                ).to_dict()["items"]
            for item in items:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", version)
            found.extend(items)
            break
    return found


def apply_object(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply `obj` as field manager ggctl (force: ggctl's own fields are ggctl's)."""
    from kubernetes.client.exceptions import ApiException

    res = cluster.served(obj["apiVersion"], obj["kind"])
    name = obj["metadata"]["name"]
    with cluster.errors(f"applying {obj['kind']} {name}"):
        try:
            return res.server_side_apply(
                body=obj,
                name=name,
                namespace=obj["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                _request_timeout=cluster.timeout,
            ).to_dict()
        except ApiException as exc:
            msg = api_message(exc)
            err = for_person(exc)
            hint = err.hint if err else None
            if "already allocated" in msg:
                hint = _node_port_hint(cluster, obj)
            raise DeployError(
                f"the cluster refused {obj['kind']} {name}: HTTP {exc.status}: {msg}", hint=hint
            ) from exc


def _node_port_hint(cluster: Cluster, obj: dict[str, Any]) -> str:
    ports = [p.get("nodePort") for p in obj.get("spec", {}).get("ports") or []]
    port = next((p for p in ports if p), None)
    holder = node_port_holder(cluster, port) if port else None
    if holder is None:
        return (
            f"Another Service holds node port {port}: find it with "
            f"`ggctl kubectl get svc -A | grep {port}` and delete it."
        )
    meta = holder["metadata"]
    where = f"Service {meta['name']} in namespace {meta.get('namespace')}"
    labels = meta.get("labels") or {}
    if labels.get(OURS_SELECTOR.split("=")[0]) == OURS_SELECTOR.split("=")[1]:
        return (
            f"ggctl's own {where} holds node port {port}: one deployment per cluster. Remove "
            f"that one first (`ggctl kubectl delete deploy,svc,hpa,pdb -l "
            f"{OURS_SELECTOR} -n {meta.get('namespace')}`), or deploy to "
            f"-n {meta.get('namespace')}."
        )
    return (
        f"{where}, not created by ggctl, holds node port {port}: delete it "
        f"(`ggctl kubectl delete svc {meta['name']} -n {meta.get('namespace')}`); ggctl only "
        "removes objects labelled app.kubernetes.io/managed-by=ggctl."
    )


def delete_object(cluster: Cluster, obj: dict[str, Any]) -> None:
    """Delete with Foreground propagation: a Deployment goes only after its pods."""
    from kubernetes.client.exceptions import ApiException

    res = cluster.resource(obj["apiVersion"], obj["kind"])
    with cluster.errors(f"deleting {obj['kind']} {obj['metadata']['name']}"):
        try:
            res.delete(
                name=obj["metadata"]["name"],
                namespace=obj["metadata"].get("namespace"),
                propagation_policy="Foreground",
                _request_timeout=cluster.timeout,
            )
        except ApiException as exc:
            if _status_of(exc) != 404:
                raise  # cluster.errors says what failed


def _terminating_pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    with contextlib.suppress(Exception):
        items = (
            cluster.resource("v1", "Pod")
            .get(namespace=namespace, _request_timeout=cluster.timeout)
            .to_dict()["items"]
        )
        return [p for p in items if p["metadata"].get("deletionTimestamp")]
    return []


def wait_gone(
    cluster: Cluster,
    objs: list[dict[str, Any]],
    deadline: float,
    poll: float,
    console: Console | None = None,
    timeout: float = 0.0,
) -> None:
    """Wait until every object of `objs` is gone, saying what is still there and why
    (`timeout`: the deploy's whole budget, for the hint when it runs out)."""
    from kubernetes.client.exceptions import ApiException

    pending = list(objs)
    said = ""
    while pending:
        still = []
        for obj in pending:
            res = cluster.resource(obj["apiVersion"], obj["kind"])
            with cluster.errors(f"waiting for {obj['kind']} {obj['metadata']['name']} to go"):
                try:
                    res.get(
                        name=obj["metadata"]["name"],
                        namespace=obj["metadata"]["namespace"],
                        _request_timeout=cluster.timeout,
                    )
                    still.append(obj)
                except ApiException as exc:
                    if _status_of(exc) != 404:
                        raise
        pending = still
        if not pending:
            return
        namespace = pending[0]["metadata"]["namespace"]
        pods = _terminating_pods(cluster, namespace)
        grace = max((p["metadata"].get("deletionGracePeriodSeconds") or 0 for p in pods), default=0)
        names = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in pending)
        line = f"waiting for {names} to go" + (
            f" ({len(pods)} pod(s) terminating, grace period up to {grace} s)" if pods else ""
        )
        if console is not None and line != said:
            console.print(f"[dim]{escape(line)}[/]", highlight=False)
            said = line
        if time.monotonic() > deadline:
            if pods and grace and grace >= timeout:
                hint = (
                    f"the old pods' grace period (terminationGracePeriodSeconds) is {grace} s, "
                    "longer than this deploy's --timeout: they are stopping, not stuck. Run "
                    "the deploy again, or give it a --timeout longer than that"
                )
            else:
                hint = (
                    "`ggctl kubectl get pods` shows what is left; a pod stuck Terminating "
                    "usually means its node is down or a finalizer is not being removed"
                )
            raise DeployError(f"timed out waiting for {names} to be deleted", hint=hint)
        time.sleep(poll)


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    b, a = before["metadata"], after["metadata"]
    if (b.get("labels") or {}) != (a.get("labels") or {}):
        return False
    if "generation" in b and "generation" in a:
        return b["generation"] == a["generation"]
    return b.get("resourceVersion") == a.get("resourceVersion")


# --------------------------------------------------------------------------- deploy


def deploy(
    cluster: Cluster,
    objects: list[dict[str, Any]],
    namespace: str,
    *,
    timeout: float = 600.0,
    console: Console | None = None,
    poll: float = 1.0,
    unschedulable_grace: float = 60.0,
    pull_grace: float = 90.0,
    wait: bool = True,
) -> DeployResult:
    """Make the namespace hold exactly `objects` of ggctl's, then wait for the rollout.

    Switching strategy deletes the previous one's leftovers *first* and waits for them to go,
    as the course does by hand: every strategy claims node port 32000, and the old pods'
    requests would otherwise stand in the way of the new ones. An object that is still
    being deleted (a deploy interrupted during a switch) is not "existing": it is waited
    for, then created anew.
    """
    console = console or Console(stderr=True)
    deadline = time.monotonic() + timeout
    result = DeployResult(namespace, server_version=cluster.server_version())
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    created_ns = ensure_namespace(cluster, namespace)
    listed = list_ours(cluster, namespace)
    going = [o for o in listed if o["metadata"].get("deletionTimestamp")]
    existing = {_key(o): o for o in listed if not o["metadata"].get("deletionTimestamp")}
    wanted = {_key(o) for o in objects}
    stale = [o for k, o in existing.items() if k not in wanted]
    stale.sort(key=lambda o: DELETE_ORDER.index(o["kind"]) if o["kind"] in DELETE_ORDER else 99)
    for obj in stale:
        strategy = (obj["metadata"].get("labels") or {}).get(STRATEGY_LABEL)
        console.print(
            f"[dim]removing[/] {obj['kind']} {obj['metadata']['name']}"
            f"{f' (strategy {strategy})' if strategy else ''}",
            highlight=False,
        )
        delete_object(cluster, obj)
        result.changes.append(Change(obj["kind"], obj["metadata"]["name"], "deleted", strategy))
    if stale or going:
        started = time.monotonic()
        wait_gone(cluster, going + stale, deadline, poll, console, timeout)
        result.prune_s = time.monotonic() - started
    in_order = sorted(
        objects, key=lambda o: KIND_ORDER.index(o["kind"]) if o["kind"] in KIND_ORDER else 99
    )
    for applied, obj in enumerate(in_order):
        try:
            after = apply_object(cluster, obj)
        except DeployError:
            if created_ns and not applied:  # leave no empty namespace behind
                delete_namespace(cluster, namespace)
            raise
        before = existing.get(_key(obj))
        action = (
            "created" if before is None else ("unchanged" if _same(before, after) else "configured")
        )
        strategy = (obj["metadata"].get("labels") or {}).get(STRATEGY_LABEL)
        result.changes.append(Change(obj["kind"], obj["metadata"]["name"], action, strategy))
        console.print(
            f"[dim]{action:>10}[/] {obj['kind']} {obj['metadata']['name']}", highlight=False
        )
    if wait:
        start = time.monotonic()
        for obj in objects:
            if obj["kind"] == "Deployment":
                wait_rollout(
                    cluster,
                    obj["metadata"]["name"],
                    namespace,
                    deadline=deadline,
                    console=console,
                    poll=poll,
                    unschedulable_grace=unschedulable_grace,
                    pull_grace=pull_grace,
                )
        result.rollout_s = time.monotonic() - start
    return result


# --------------------------------------------------------------------------- rollout


@dataclass
class Problem:
    pod: str
    reason: str
    message: str
    container: str | None = None
    fatal: bool = True


def diagnose(pod: dict[str, Any]) -> Problem | None:
    """What keeps `pod` from becoming ready, if it is something that will not heal by itself."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING:
            message = waiting.get("message") or FATAL_WAITING[reason]
            last = (cs.get("lastState") or {}).get("terminated") or {}
            if last.get("reason") == "OOMKilled":
                reason, message = "OOMKilled", f"{message} (last exit: OOMKilled)"
            elif last:
                message += f" (last exit code {last.get('exitCode')}, {last.get('reason')})"
            return Problem(name, reason, message, cs.get("name"))
        if reason in PULL_FAILING:  # retried with back-off: fatal only if it persists
            return Problem(name, reason, waiting.get("message", ""), cs.get("name"), fatal=False)
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return Problem(name, "Unschedulable", cond.get("message", ""), fatal=False)
    if status.get("phase") == "Failed":
        return Problem(name, status.get("reason") or "Failed", status.get("message") or "")
    return None


def pod_events(cluster: Cluster, namespace: str, pod: str, limit: int = 12) -> list[str]:
    """The pod's events, oldest first, as `TYPE REASON (xN): MESSAGE` lines."""
    try:
        res = cluster.resource("v1", "Event")
        items = res.get(
            namespace=namespace,
            field_selector=f"involvedObject.name={pod}",
            _request_timeout=cluster.timeout,
        ).to_dict()["items"]
    except Exception:  # events are an explanation, never a second failure
        return []

    def when(ev: dict[str, Any]) -> tuple[str, int]:
        meta = ev.get("metadata") or {}
        rv = str(meta.get("resourceVersion") or "0")
        stamp = ev.get("lastTimestamp") or ev.get("eventTime") or meta.get("creationTimestamp")
        return stamp or "", int(rv) if rv.isdigit() else 0  # same second: write order

    lines = []
    for ev in sorted(items, key=when)[-limit:]:
        count = ev.get("count") or 1
        lines.append(
            f"{ev.get('type', ''):<7} {ev.get('reason', '')}"
            f"{f' (x{count})' if count > 1 else ''}: {ev.get('message', '').strip()}"
        )
    return lines


def pod_log_tail(
    cluster: Cluster, namespace: str, pod: str, container: str | None, lines: int = 15
) -> list[str]:
    try:
        from kubernetes import client

        text = client.CoreV1Api(cluster.api_client).read_namespaced_pod_log(
            pod,
            namespace,
            container=container,
            previous=True,
            tail_lines=lines,
            _request_timeout=cluster.timeout,
        )
    except Exception:
        return []
    return str(text).rstrip("\n").splitlines()[-lines:]


def _rollout_state(dep: dict[str, Any]) -> tuple[bool, str, int, int]:
    """(done, what we wait for, ready, desired), as `kubectl rollout status` decides."""
    spec, status, meta = dep.get("spec") or {}, dep.get("status") or {}, dep["metadata"]
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    replicas = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    ready = status.get("readyReplicas") or 0
    if (status.get("observedGeneration") or 0) < meta.get("generation", 0):
        return False, "waiting for the deployment controller", ready, desired
    if updated < desired:
        return False, f"{updated} of {desired} new pods created", ready, desired
    if replicas > updated:
        return False, f"{replicas - updated} old pod(s) terminating", ready, desired
    if available < updated:
        return False, f"{available} of {updated} pods available", ready, desired
    return True, f"{available} of {desired} pods available", ready, desired


class _View:
    """A rich progress bar on a terminal; one line per change of state elsewhere (CI logs)."""

    def __init__(self, console: Console, label: str):
        self.console = console
        self.label = label
        self.last = ""
        self.progress: Any = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
            self.task = self.progress.add_task(label, total=1)

    def __enter__(self) -> _View:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, text: str, ready: int, desired: int) -> None:
        line = f"{self.label}: {text}"
        if self.progress is not None:
            self.progress.update(
                self.task, description=line, completed=ready, total=max(desired, 1)
            )
        elif line != self.last:
            self.console.print(line, highlight=False)
        self.last = line


def _revision(obj: dict[str, Any]) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION, "0")
    return int(value) if str(value).isdigit() else 0


def newest_replicaset(cluster: Cluster, dep: dict[str, Any]) -> dict[str, Any] | None:
    """The Deployment's newest ReplicaSet: the one the controller gave the highest revision
    (a rollback to an old template re-uses its ReplicaSet with a new, highest revision)."""
    rs_res = cluster.resource("apps/v1", "ReplicaSet")
    uid = dep["metadata"].get("uid")
    items = rs_res.get(
        namespace=dep["metadata"]["namespace"],
        label_selector=_selector(dep),
        _request_timeout=cluster.timeout,
    ).to_dict()["items"]
    owned = [
        rs
        for rs in items
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
    ]
    return max(owned, key=_revision, default=None)


def _selector(dep: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in dep["spec"]["selector"].get("matchLabels", {}).items())


def _replica_failure(*objs: dict[str, Any] | None) -> Problem | None:
    """A ReplicaFailure=True condition (pods the controller could not create: quota,
    LimitRange, PodSecurity, missing ServiceAccount), from the ReplicaSet or Deployment."""
    for obj in objs:
        for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
            if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
                return Problem("", cond.get("reason") or "FailedCreate", cond.get("message", ""))
    return None


def wait_rollout(
    cluster: Cluster,
    name: str,
    namespace: str,
    *,
    deadline: float,
    console: Console,
    poll: float = 1.0,
    unschedulable_grace: float = 60.0,
    pull_grace: float = 90.0,
) -> None:
    """Wait until Deployment `name` has all its pods available; fail early and clearly.

    Only the pods of the newest ReplicaSet are diagnosed: the previous one's failing pods
    (a broken deploy being fixed) are the controller's to scale down, not this rollout's
    failure."""
    deployments = cluster.resource("apps/v1", "Deployment")
    pods_res = cluster.resource("v1", "Pod")
    since: dict[tuple[str, str], float] = {}
    problem: Problem | None = None
    with _View(console, f"Deployment {name}") as view:
        while True:
            with cluster.errors(f"waiting for the rollout of Deployment {name}"):
                dep = deployments.get(
                    name=name, namespace=namespace, _request_timeout=cluster.timeout
                ).to_dict()
                done, text, ready, desired = _rollout_state(dep)
                for cond in (dep.get("status") or {}).get("conditions") or []:
                    if (
                        cond.get("type") == "Progressing"
                        and cond.get("reason") == "ProgressDeadlineExceeded"
                    ):
                        problem = problem or Problem(
                            "", "ProgressDeadlineExceeded", cond.get("message", "")
                        )
                        _fail(cluster, name, namespace, problem, "timeout")
                current = (dep.get("status") or {}).get("observedGeneration", 0) >= dep[
                    "metadata"
                ].get("generation", 0)
                rs = newest_replicaset(cluster, dep) if current else None
                failure = _replica_failure(rs, dep) if current else None
                if failure is not None:
                    _fail(cluster, name, namespace, failure, failure.reason)
                pod_hash = ((rs or {}).get("metadata", {}).get("labels") or {}).get(
                    POD_TEMPLATE_HASH
                )
                pods = (
                    pods_res.get(
                        namespace=namespace,
                        label_selector=f"{_selector(dep)},{POD_TEMPLATE_HASH}={pod_hash}",
                        _request_timeout=cluster.timeout,
                    ).to_dict()["items"]
                    if pod_hash
                    else []
                )
            pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            now = time.monotonic()
            waiting_on: dict[str, int] = {}
            seen: set[tuple[str, str]] = set()
            for pod in pods:
                found = diagnose(pod)
                if found is None:
                    continue
                waiting_on[found.reason] = waiting_on.get(found.reason, 0) + 1
                problem = found
                if found.fatal:
                    _fail(cluster, name, namespace, found, found.reason)
                # a condition that heals by itself: fatal once it has lasted its grace
                kind, grace = (
                    ("pull", pull_grace)
                    if found.reason in PULL_FAILING
                    else ("sched", unschedulable_grace)
                    if found.reason == "Unschedulable"
                    else ("", 0.0)
                )
                if kind:
                    key = (found.pod, kind)
                    seen.add(key)
                    if now - since.setdefault(key, now) >= grace:
                        _fail(cluster, name, namespace, found, found.reason)
            for key in set(since) - seen:
                del since[key]  # healed (a pull succeeded, a pod got a node)
            if done:
                view.update(text, ready, desired)
                return
            extra = ", ".join(f"{n} {r}" for r, n in sorted(waiting_on.items()))
            view.update(f"{text}{f' ({extra})' if extra else ''}", ready, desired)
            if now > deadline:
                _fail(
                    cluster, name, namespace, problem or _unready(pods), "timeout", timed_out=True
                )
            time.sleep(poll)


def _unready(pods: list[dict[str, Any]]) -> Problem | None:
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") != "True":
                return Problem(
                    pod["metadata"]["name"],
                    "NotReady",
                    cond.get("message") or "the readiness probe does not pass",
                    fatal=False,
                )
    return None


def _fail(
    cluster: Cluster,
    deployment: str,
    namespace: str,
    problem: Problem | None,
    kind: str,
    timed_out: bool = False,
) -> None:
    head = f"rollout of Deployment {deployment} in {namespace} "
    head += "timed out" if timed_out else "failed"
    if problem is None:
        raise RolloutFailed(
            head + ": no pod was created", HINTS["timeout"], deployment=deployment, reason="timeout"
        )
    lines = [
        head
        + (f": pod {problem.pod}: {problem.reason}" if problem.pod else f": {problem.reason}")
        + (f": {problem.message}" if problem.message else "")
    ]
    events = pod_events(cluster, namespace, problem.pod) if problem.pod else []
    if events:
        lines.append(f"events of pod {problem.pod}:")
        lines.extend(f"  {e}" for e in events)
    log: list[str] = []
    if problem.reason in ("CrashLoopBackOff", "OOMKilled", "RunContainerError"):
        log = pod_log_tail(cluster, namespace, problem.pod, problem.container)
        if log:
            lines.append(f"last log lines of {problem.pod} (previous container):")
            lines.extend(f"  {x}" for x in log)
    reason = problem.reason
    hint_key = (
        "image"
        if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
        else "CrashLoopBackOff-nolog"
        if reason == "CrashLoopBackOff" and not log
        else "NoNodes"
        if reason == "Unschedulable" and "Insufficient" not in problem.message
        # ServiceAccount admission's refusal, not a quota (plugin/pkg/admission/serviceaccount)
        else "FailedCreate-serviceaccount"
        if reason == "FailedCreate" and "error looking up service account" in problem.message
        else reason
    )
    hint = HINTS.get(hint_key, HINTS["timeout"] if timed_out else None)
    raise RolloutFailed(
        "\n".join(lines), hint, deployment=deployment, pod=problem.pod, reason=reason, events=events
    )
