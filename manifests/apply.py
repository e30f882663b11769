"""Put rendered objects on a cluster: server-side apply with one field manager, prune what the
previous strategy left, wait for the rollout, and explain a failed one with the pod's events.

Everything goes through the official `kubernetes` client's DynamicClient (discovery, then
plain REST), so any cluster a kubeconfig reaches works: ours, kind, k3s.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ggctl.cluster.kubeclient import api_client
from ggctl.errors import GgctlError

from .render import KIND_ORDER
from .strategy import OURS_SELECTOR, STRATEGY_LABEL

FIELD_MANAGER = "ggctl"

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
    "ImagePullBackOff": "the image cannot be pulled",
    "ErrImageNeverPull": "the image is not on the node and the pull policy forbids pulling",
    "InvalidImageName": "the image reference is invalid",
    "CrashLoopBackOff": "the container keeps crashing",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CreateContainerError": "the container cannot be created",
    "RunContainerError": "the container cannot be started",
}
HINTS = {
    "image": "Check the image reference (--image) and that every node can pull from the "
    "registry: `ggctl build` pushes node-0:5000/ml-app:<tag>.",
    "CrashLoopBackOff": "The service exits at start; its last log lines are above "
    "(`kubectl logs --previous` shows more).",
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
        """Turn transport failures into one readable DeployError."""
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            yield
        except Urllib3Error as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DeployError(
                f"cannot reach the Kubernetes API at {self.host} ({doing}): {reason}",
                hint="check the kubeconfig (--kubeconfig) and that the cluster is up",
            ) from None

    def resource(self, api_version: str, kind: str) -> Any:
        with self.errors(f"discovering {kind}"):
            return self.dyn.resources.get(api_version=api_version, kind=kind)

    def server_version(self) -> str:
        with contextlib.suppress(Exception):
            return self.dyn.version["kubernetes"]["gitVersion"]
        return ""


def api_message(exc: Exception) -> str:
    """The `message` of a Kubernetes Status error body, else the exception's text."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return json.loads(body)["message"]
    return str(getattr(exc, "summary", lambda: exc)())


def _status_of(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


# --------------------------------------------------------------------------- objects


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def ensure_namespace(cluster: Cluster, namespace: str) -> None:
    from kubernetes.client.exceptions import ApiException

    ns = cluster.resource("v1", "Namespace")
    with cluster.errors("reading the namespace"):
        try:
            ns.get(name=namespace, _request_timeout=cluster.timeout)
            return
        except ApiException as exc:
            if _status_of(exc) != 404:
                raise DeployError(
                    f"cannot read namespace {namespace}: {api_message(exc)}"
                ) from None
        ns.server_side_apply(
            body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            _request_timeout=cluster.timeout,
        )


def list_ours(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Every object in `namespace` labelled as ggctl's, of the kinds ggctl creates."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    found: list[dict[str, Any]] = []
    for versions, kind in MANAGED_KINDS:
        for version in versions:
            try:
                res = cluster.resource(version, kind)
            except ResourceNotFoundError:
                continue
            with cluster.errors(f"listing {kind}s"):
                try:
                    items = res.get(
                        namespace=namespace,
                        label_selector=OURS_SELECTOR,
                        _request_timeout=cluster.timeout,
                    ).to_dict()["items"]
                except ApiException as exc:
                    raise DeployError(
                        f"cannot list {kind}s in {namespace}: {api_message(exc)}"
                    ) from None
            for item in items:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", version)
            found.extend(items)
            break
    return found


def apply_object(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply `obj` as field manager ggctl (force: ggctl's own fields are ggctl's)."""
    from kubernetes.client.exceptions import ApiException

    res = cluster.resource(obj["apiVersion"], obj["kind"])
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
            hint = None
            if "already allocated" in msg:
                hint = (
                    "Another Service, not created by ggctl, holds that node port: find it "
                    "with `kubectl get svc -A | grep 32000` and delete it (ggctl only "
                    "removes objects labelled app.kubernetes.io/managed-by=ggctl)."
                )
            raise DeployError(
                f"the cluster refused {obj['kind']} {name}: {msg}", hint=hint
            ) from None


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
                raise DeployError(
                    f"cannot delete {obj['kind']} {obj['metadata']['name']}: {api_message(exc)}"
                ) from None


def wait_gone(cluster: Cluster, objs: list[dict[str, Any]], deadline: float, poll: float) -> None:
    from kubernetes.client.exceptions import ApiException

    pending = list(objs)
    while pending:
        still = []
        for obj in pending:
            res = cluster.resource(obj["apiVersion"], obj["kind"])
            with cluster.errors("waiting for deletion"):
                try:
                    res.get(
                        name=obj["metadata"]["name"],
                        namespace=obj["metadata"]["namespace"],
                        _request_timeout=cluster.timeout,
                    )
                    still.append(obj)
                except ApiException as exc:
                    if _status_of(exc) != 404:
                        raise DeployError(
                            f"cannot read {obj['kind']}: {api_message(exc)}"
                        ) from None
        pending = still
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in pending)
            raise DeployError(
                f"timed out waiting for the previous strategy's objects to go: {names}",
                hint="`kubectl get pods` shows what is left; a pod "
                "stuck Terminating usually means its node is down",
            )
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
    wait: bool = True,
) -> DeployResult:
    """Make the namespace hold exactly `objects` of ggctl's, then wait for the rollout.

    Switching strategy deletes the previous one's leftovers *first* and waits for them to go,
    as the course does by hand: every strategy claims node port 32000, and the old pods'
    requests would otherwise stand in the way of the new ones.
    """
    console = console or Console(stderr=True)
    deadline = time.monotonic() + timeout
    result = DeployResult(namespace, server_version=cluster.server_version())
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    ensure_namespace(cluster, namespace)
    existing = {_key(o): o for o in list_ours(cluster, namespace)}
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
    if stale:
        wait_gone(cluster, stale, deadline, poll)
    for obj in sorted(
        objects, key=lambda o: KIND_ORDER.index(o["kind"]) if o["kind"] in KIND_ORDER else 99
    ):
        after = apply_object(cluster, obj)
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
        if reason == "ErrImagePull":  # retried with back-off: fatal once it is ImagePullBackOff
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


def wait_rollout(
    cluster: Cluster,
    name: str,
    namespace: str,
    *,
    deadline: float,
    console: Console,
    poll: float = 1.0,
    unschedulable_grace: float = 60.0,
) -> None:
    """Wait until Deployment `name` has all its pods available; fail early and clearly."""
    from kubernetes.client.exceptions import ApiException

    deployments = cluster.resource("apps/v1", "Deployment")
    pods_res = cluster.resource("v1", "Pod")
    unschedulable_since: dict[str, float] = {}
    problem: Problem | None = None
    with _View(console, f"Deployment {name}") as view:
        while True:
            with cluster.errors("waiting for the rollout"):
                try:
                    dep = deployments.get(
                        name=name, namespace=namespace, _request_timeout=cluster.timeout
                    ).to_dict()
                except ApiException as exc:
                    raise DeployError(
                        f"cannot read Deployment {name}: {api_message(exc)}"
                    ) from None
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
                selector = ",".join(
                    f"{k}={v}" for k, v in dep["spec"]["selector"].get("matchLabels", {}).items()
                )
                pods = pods_res.get(
                    namespace=namespace, label_selector=selector, _request_timeout=cluster.timeout
                ).to_dict()["items"]
            pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            now = time.monotonic()
            waiting_on: dict[str, int] = {}
            for pod in pods:
                found = diagnose(pod)
                pname = pod["metadata"]["name"]
                if found is None:
                    unschedulable_since.pop(pname, None)
                    continue
                waiting_on[found.reason] = waiting_on.get(found.reason, 0) + 1
                problem = found
                if found.fatal:
                    _fail(cluster, name, namespace, found, found.reason)
                if found.reason == "Unschedulable":
                    first = unschedulable_since.setdefault(pname, now)
                    if now - first >= unschedulable_grace:
                        _fail(cluster, name, namespace, found, "Unschedulable")
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
    if problem.reason in ("CrashLoopBackOff", "OOMKilled", "RunContainerError"):
        log = pod_log_tail(cluster, namespace, problem.pod, problem.container)
        if log:
            lines.append(f"last log lines of {problem.pod} (previous container):")
            lines.extend(f"  {x}" for x in log)
    reason = problem.reason
    hint_key = (
        "image"
        if reason in ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
        else reason
    )
    hint = HINTS.get(hint_key, HINTS["timeout"] if timed_out else None)
    raise RolloutFailed(
        "\n".join(lines), hint, deployment=deployment, pod=problem.pod, reason=reason, events=events
    )
