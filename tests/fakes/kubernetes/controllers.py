"""What makes the fake feel like a cluster: a tick, run every few milliseconds, that does the
work of the scheduler, the kubelets, the Deployment/ReplicaSet controllers, the garbage
collector and the HorizontalPodAutoscaler. All durations are in cluster seconds (see Clock).

Faults are injected per image: a pod whose image contains `image` gets the fault when it is
created (ImagePullBackOff, CrashLoopBackOff, Unschedulable, a readiness probe that fails).
An image-pull fault with `heal_after_s` stops failing that long after the pod is scheduled
(a registry hiccup: the kubelet's next retry pulls).

ResourceQuota admission of the pods a ReplicaSet creates (the only creations the fake's
controllers make): a pod that would take the namespace over a quota's `spec.hard`
(pods, requests.cpu/memory, limits.cpu/memory, cpu/memory) is refused with the message of
kube-apiserver's quota admission (plugin/pkg/admission/resourcequota/controller.go,
v1.33: `pods "NAME" is forbidden: exceeded quota: Q, requested: R, used: U, limited: L`);
the replicaset controller records a FailedCreate event "Error creating: ..." and sets
`ReplicaFailure=True, reason FailedCreate` with that message on the ReplicaSet
(pkg/controller/replicaset/replica_set_utils.go calculateStatus), which the deployment
controller copies to the Deployment (pkg/controller/deployment/progress.go
getReplicaFailures) and removes once creation succeeds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils import parse_quantity

from .objects import Objects, default_pod_spec, rt_of_key
from .resources import by_kind
from .store import Obj, Store, labels_match, match_labels, parse_label_selector

FAULTS = ("image-pull", "crash-loop", "unschedulable", "never-ready")
CONTROLLER_MANAGER = "kube-controller-manager"


@dataclass
class Fault:
    kind: str
    image: str | None = None  # substring of the image; None: every pod
    message: str | None = None
    log: str = ""
    heal_after_s: float | None = None  # image-pull: pulls succeed this long after scheduling

    def matches(self, pod: Obj) -> bool:
        if self.image is None:
            return True
        return any(self.image in c.get("image", "") for c in pod["spec"].get("containers", []))


@dataclass
class Timings:
    """Cluster seconds."""

    pull_s: float = 2.0
    create_s: float = 0.5
    app_start_s: float = 2.0  # until /healthz and /readyz answer
    crash_after_s: float = 1.0  # a crash-looping container runs this long
    terminate_s: float = 2.0  # a terminating pod lingers at most this long
    hpa_sync_s: float = 15.0
    event_every_s: float = 10.0  # repeated warnings are recorded at most this often


@dataclass
class PodSim:
    created: float
    fault: Fault | None
    scheduled: float | None = None
    node: str | None = None
    pulled: float | None = None
    started: float | None = None
    restarts: int = 0
    crashed: float | None = None
    backoff_until: float | None = None
    last_warning: dict[str, float] = field(default_factory=dict)
    terminating: float | None = None
    ip: str = ""


def _quantity(key: str, value: float) -> str:
    """A quantity as quota admission prints it (cpu in millicores, memory in Mi, counts)."""
    if key.endswith("cpu") or key == "cpu":
        return f"{round(value * 1000)}m"
    if key.endswith("memory") or key == "memory":
        return f"{round(value / 2**20)}Mi"
    return str(round(value))


def template_hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _suffix(n: int = 5) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


def cpu_request(pod: Obj) -> float:
    return sum(
        float(parse_quantity(c.get("resources", {}).get("requests", {}).get("cpu", "0")))
        for c in pod["spec"].get("containers", [])
    )


def mem_request(pod: Obj) -> float:
    return sum(
        float(parse_quantity(c.get("resources", {}).get("requests", {}).get("memory", "0")))
        for c in pod["spec"].get("containers", [])
    )


def cpu_limit(pod: Obj) -> float | None:
    total = 0.0
    for c in pod["spec"].get("containers", []):
        lim = c.get("resources", {}).get("limits", {}).get("cpu")
        if lim is None:
            return None
        total += float(parse_quantity(lim))
    return total


def is_ready(pod: Obj) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def owner_ref(owner: Obj) -> Obj:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Controllers:
    def __init__(self, store: Store, objects: Objects, timings: Timings | None = None):
        self.store = store
        self.objects = objects
        self.t = timings or Timings()
        self.faults: list[Fault] = []
        self.pods: dict[str, PodSim] = {}
        #: total CPU cores of work offered to the app at cluster time t (shared by its pods)
        self.load: Callable[[float], float] = lambda t: 0.0
        #: overrides the load model: (pod, t) → (cpu cores, memory bytes)
        self.usage_fn: Callable[[Obj, float], tuple[float, float]] | None = None
        self.idle_cpu = 0.002
        self.base_memory = 150 * 2**20
        self._progress: dict[str, tuple[str, float, int]] = {}
        self._hpa_next: dict[str, float] = {}
        self._hpa_history: dict[str, list[tuple[float, int]]] = {}
        self._hpa_last_scale: dict[str, tuple[float, str]] = {}
        self._ip = 0
        #: ReplicaSet uid → why its last pod creation was refused (quota admission): the
        #: message without the pod's name (to record one event per reason), and in full
        self._create_failures: dict[str, str] = {}
        self._create_messages: dict[str, str] = {}

    # ------------------------------------------------------------------ tick
    def tick(self) -> None:
        with self.store.lock:
            now = self.store.clock.now()
            self.garbage_collect()
            for d in self.store.kind_items("Deployment"):
                self.sync_deployment(d, now)
            for rs in self.store.kind_items("ReplicaSet"):
                self.sync_replicaset(rs)
            for pod in self.store.kind_items("Pod"):
                self.sync_pod(pod, now)
            for rs in self.store.kind_items("ReplicaSet"):
                self.replicaset_status(rs)
            for d in self.store.kind_items("Deployment"):
                self.deployment_status(d, now)
            for hpa in self.store.kind_items("HorizontalPodAutoscaler"):
                self.sync_hpa(hpa, now)

    # ------------------------------------------------------------------ GC
    def garbage_collect(self) -> None:
        present = {o["metadata"]["uid"] for _k, o in self.store.iter_all()}
        for key, obj in self.store.iter_all():
            rt = rt_of_key(key)
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not any(r.get("uid") in present for r in refs):
                self._delete(rt, obj, "Background")
                continue
            if meta.get("deletionTimestamp") and "foregroundDeletion" in (
                meta.get("finalizers") or []
            ):
                deps = [(k, o) for k, o in self.store.iter_all() if owned_by(o, obj)]
                for k, dep in deps:
                    self._delete(rt_of_key(k), dep, "Foreground")
                if not deps:
                    self.store.remove(rt, meta.get("namespace"), meta["name"])

    def _delete(self, rt: Any, obj: Obj, policy: str) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        if rt.kind == "Pod":
            self.objects.terminate_pod(obj, None)
        else:
            self.objects.delete(
                rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], policy, None
            )

    # ------------------------------------------------------------------ Deployment
    def sync_deployment(self, d: Obj, now: float) -> None:
        if d["metadata"].get("deletionTimestamp"):
            return
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        desired = d["spec"].get("replicas", 1)
        h = template_hash(d["spec"]["template"])
        rs_rt = by_kind("ReplicaSet")
        owned = [rs for rs in self.store.items(rs_rt, ns) if owned_by(rs, d)]
        new = next(
            (rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == h), None
        )
        if new is None:
            template = copy.deepcopy(d["spec"]["template"])
            template["metadata"].setdefault("labels", {})["pod-template-hash"] = h
            sel = copy.deepcopy(d["spec"]["selector"])
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            new = self.store.insert(
                rs_rt,
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{name}-{h}",
                        "namespace": ns,
                        "labels": dict(template["metadata"]["labels"]),
                        "ownerReferences": [owner_ref(d)],
                        "annotations": {"deployment.kubernetes.io/revision": str(len(owned) + 1)},
                    },
                    "spec": {"replicas": 0, "selector": sel, "template": template},
                    "status": {"replicas": 0},
                },
            )
            self._progress[d["metadata"]["uid"]] = (h, now, -1)
        old = [
            rs
            for rs in owned
            if rs is not new and rs["metadata"]["name"] != new["metadata"]["name"]
        ]
        new_ready = self._ready_pods(new)
        self._scale_rs(d, new, desired)
        budget = max(0, desired - new_ready)
        for rs in sorted(old, key=lambda r: r["metadata"]["creationTimestamp"], reverse=True):
            keep = min(rs["spec"].get("replicas", 0), budget)
            budget -= keep
            self._scale_rs(d, rs, keep)

    def _scale_rs(self, d: Obj, rs: Obj, replicas: int) -> None:
        current = rs["spec"].get("replicas", 0)
        if current == replicas:
            return
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        self.store.replace(by_kind("ReplicaSet"), new)
        verb = "up" if replicas > current else "down"
        self.store.record_event(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {rs['metadata']['name']} to {replicas}",
            component="deployment-controller",
        )

    def _pods_of(self, owner: Obj) -> list[Obj]:
        return [
            p
            for p in self.store.kind_items("Pod", owner["metadata"]["namespace"])
            if owned_by(p, owner)
        ]

    def _ready_pods(self, rs: Obj) -> int:
        return sum(
            1
            for p in self._pods_of(rs)
            if is_ready(p) and not p["metadata"].get("deletionTimestamp")
        )

    def deployment_status(self, d: Obj, now: float) -> None:
        if d["metadata"].get("deletionTimestamp"):
            return
        ns = d["metadata"]["namespace"]
        desired = d["spec"].get("replicas", 1)
        h = template_hash(d["spec"]["template"])
        owned = [rs for rs in self.store.kind_items("ReplicaSet", ns) if owned_by(rs, d)]
        pods = [
            p
            for rs in owned
            for p in self._pods_of(rs)
            if not p["metadata"].get("deletionTimestamp")
        ]
        updated = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == h]
        ready = sum(1 for p in pods if is_ready(p))
        new_name = f"{d['metadata']['name']}-{h}"
        complete = len(updated) == desired and len(pods) == desired and ready >= desired
        uid = d["metadata"]["uid"]
        ph, since, last_ready = self._progress.get(uid, (h, now, -1))
        if ph != h or ready != last_ready:
            since = now if ph != h or ready > last_ready else since
            self._progress[uid] = (h, since, ready)
        max_unavail = math.floor(desired * 0.25)
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{new_name}" has successfully progressed.',
            )
        elif now - since > d["spec"].get("progressDeadlineSeconds", 600):
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{new_name}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{new_name}" is progressing.')
        available = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ready >= desired - max_unavail
            else (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        )
        conditions = [("Available", *available), ("Progressing", *progressing)]
        failed = next(
            (
                c
                # the new ReplicaSet's failure first, as getReplicaFailures does
                for rs in sorted(owned, key=lambda r: r["metadata"]["name"] != new_name)
                for c in rs.get("status", {}).get("conditions", [])
                if c["type"] == "ReplicaFailure" and c["status"] == "True"
            ),
            None,
        )
        if failed:
            conditions.append(("ReplicaFailure", "True", failed["reason"], failed["message"]))
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, desired - ready),
            "conditions": self._conditions(d.get("status", {}).get("conditions", []), conditions),
        }
        for k in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas"):
            if status[k] == 0:
                del status[k]  # omitempty, as the real API
        self._set_status(d, status)

    def _conditions(self, old: list[Obj], new: list[tuple[str, str, str, str]]) -> list[Obj]:
        prev = {c["type"]: c for c in old}
        out = []
        stamp = self.store.clock.stamp()
        for type_, status, reason, message in new:
            p = prev.get(type_)
            same = p is not None and (p["status"], p.get("reason"), p.get("message")) == (
                status,
                reason,
                message,
            )
            out.append(
                {
                    "type": type_,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": p["lastUpdateTime"] if same else stamp,
                    "lastTransitionTime": p["lastTransitionTime"]
                    if p is not None and p["status"] == status
                    else stamp,
                }
            )
        return out

    def _set_status(self, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        new = copy.deepcopy(obj)
        new["status"] = status
        rt = by_kind(obj["kind"])
        self.store.replace(rt, new, status_only=True)

    # ------------------------------------------------------------------ ReplicaSet
    def sync_replicaset(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self._pods_of(rs) if not p["metadata"].get("deletionTimestamp")]
        want = rs["spec"].get("replicas", 0)
        for _ in range(want - len(pods)):
            self._create_pod(rs)
        if len(pods) > want:

            def rank(p: Obj) -> tuple[int, int, str]:
                sim = self.pods.get(p["metadata"]["uid"])
                return (
                    1 if sim and sim.node else 0,
                    1 if is_ready(p) else 0,
                    "~" + p["metadata"]["creationTimestamp"],
                )

            for pod in sorted(pods, key=rank)[: len(pods) - want]:
                self.objects.terminate_pod(pod, None)
                self.store.record_event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    component="replicaset-controller",
                )

    def _quota_refusal(self, ns: str, name: str, pod_spec: Obj) -> str | None:
        """Quota admission's message if creating this pod exceeds a ResourceQuota of `ns`."""
        pods = [
            p
            for p in self.store.kind_items("Pod", ns)
            if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]

        def amounts(containers: list[Obj]) -> dict[str, float]:
            out = {"pods": 1.0}
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    total = sum(
                        float(parse_quantity(c.get("resources", {}).get(kind, {}).get(res, "0")))
                        for c in containers
                    )
                    out[f"{kind}.{res}"] = total
                    if kind == "requests":
                        out[res] = total
            return out

        new = amounts(pod_spec.get("containers", []))
        used: dict[str, float] = {}
        for p in pods:
            for k, v in amounts(p["spec"].get("containers", [])).items():
                used[k] = used.get(k, 0.0) + v
        for quota in self.store.kind_items("ResourceQuota", ns):
            hard = quota.get("spec", {}).get("hard") or {}
            over = sorted(
                k
                for k, limit in hard.items()
                if k in new and new[k] and used.get(k, 0.0) + new[k] > float(parse_quantity(limit))
            )
            if over:
                req = ",".join(f"{k}={_quantity(k, new[k])}" for k in over)
                now_used = ",".join(f"{k}={_quantity(k, used.get(k, 0.0))}" for k in over)
                return (
                    f'pods "{name}" is forbidden: exceeded quota: {quota["metadata"]["name"]}, '
                    f"requested: {req}, used: {now_used}, limited: "
                    + ",".join(f"{k}={hard[k]}" for k in over)
                )
        return None

    def _create_pod(self, rs: Obj) -> None:
        template = copy.deepcopy(rs["spec"]["template"])
        spec = template["spec"]
        default_pod_spec(spec)
        name = f"{rs['metadata']['name']}-{_suffix()}"
        refused = self._quota_refusal(rs["metadata"]["namespace"], name, spec)
        uid = rs["metadata"]["uid"]
        if refused:
            if self._create_failures.get(uid) != refused.split(" is forbidden")[1]:
                self.store.record_event(
                    rs,
                    "Warning",
                    "FailedCreate",
                    f"Error creating: {refused}",
                    component="replicaset-controller",
                )
            self._create_failures[uid] = refused.split(" is forbidden")[1]
            self._create_messages[uid] = refused
            return
        self._create_failures.pop(uid, None)
        self._create_messages.pop(uid, None)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": rs["metadata"]["namespace"],
                "labels": dict(template["metadata"].get("labels", {})),
                "ownerReferences": [owner_ref(rs)],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }
        pod = self.store.insert(by_kind("Pod"), pod)
        fault = next((f for f in reversed(self.faults) if f.matches(pod)), None)
        self._ip += 1
        self.pods[pod["metadata"]["uid"]] = PodSim(
            created=self.store.clock.now(),
            fault=fault,
            ip=f"10.233.{64 + self._ip // 250}.{self._ip % 250 + 2}",
        )
        self.store.record_event(
            rs,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {name}",
            component="replicaset-controller",
        )

    def replicaset_status(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self._pods_of(rs) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if is_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        failure = self._create_messages.get(rs["metadata"]["uid"])
        if failure and len(pods) < rs["spec"].get("replicas", 0):
            status["conditions"] = self._conditions(
                rs.get("status", {}).get("conditions", []),
                [("ReplicaFailure", "True", "FailedCreate", failure)],
            )
        self._set_status(rs, status)

    # ------------------------------------------------------------------ scheduler + kubelet
    def _nodes(self) -> list[Obj]:
        return self.store.kind_items("Node")

    def _fits(self, pod: Obj) -> tuple[str | None, str]:
        nodes = self._nodes()
        cpu, mem = cpu_request(pod), mem_request(pod)
        best, best_free = None, -1.0
        short_cpu = short_mem = 0
        for node in nodes:
            name = node["metadata"]["name"]
            alloc = node["status"]["allocatable"]
            used = [p for p in self.store.kind_items("Pod") if p["spec"].get("nodeName") == name]
            free_cpu = float(parse_quantity(alloc["cpu"])) - sum(cpu_request(p) for p in used)
            free_mem = float(parse_quantity(alloc["memory"])) - sum(mem_request(p) for p in used)
            if free_cpu < cpu:
                short_cpu += 1
            if free_mem < mem:
                short_mem += 1
            if free_cpu >= cpu and free_mem >= mem and free_cpu > best_free:
                best, best_free = name, free_cpu
        reasons = []
        if short_cpu:
            reasons.append(f"{short_cpu} Insufficient cpu")
        if short_mem:
            reasons.append(f"{short_mem} Insufficient memory")
        msg = (
            f"0/{len(nodes)} nodes are available: {', '.join(reasons) or 'no nodes'}. "
            f"preemption: 0/{len(nodes)} nodes are available: {len(nodes)} No preemption "
            "victims found for incoming pod."
        )
        return best, msg

    def _warn(self, sim: PodSim, pod: Obj, reason: str, message: str, now: float) -> None:
        last = sim.last_warning.get(reason)
        if last is None or now - last >= self.t.event_every_s:
            sim.last_warning[reason] = now
            self.store.record_event(
                pod,
                "Warning",
                reason,
                message,
                component="default-scheduler" if reason == "FailedScheduling" else "kubelet",
            )

    def sync_pod(self, pod: Obj, now: float) -> None:
        uid = pod["metadata"]["uid"]
        sim = self.pods.get(uid)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if sim is None:  # a pod created through the API, not by a ReplicaSet
            fault = next((f for f in reversed(self.faults) if f.matches(pod)), None)
            sim = self.pods[uid] = PodSim(created=now, fault=fault, ip="10.233.127.1")
        if pod["metadata"].get("deletionTimestamp"):
            grace = pod["metadata"].get("deletionGracePeriodSeconds", 30)
            if sim.terminating is None:
                sim.terminating = now
            if now - sim.terminating >= min(grace, self.t.terminate_s) or sim.started is None:
                self.store.remove(by_kind("Pod"), ns, name)
                self.pods.pop(uid, None)
                return
        fault = sim.fault.kind if sim.fault else None
        containers = pod["spec"]["containers"]
        c0 = containers[0]
        image = c0.get("image", "")
        # -- schedule
        if sim.node is None:
            node, msg = (
                (
                    None,
                    sim.fault.message
                    or "0/3 nodes are available: 3 Insufficient "
                    "cpu. preemption: 0/3 nodes are available: 3 No preemption victims "
                    "found for incoming pod.",
                )
                if fault == "unschedulable"
                else self._fits(pod)
            )
            if node is None:
                self._warn(sim, pod, "FailedScheduling", msg, now)
                self._write_pod(
                    pod,
                    {
                        "phase": "Pending",
                        "qosClass": "Burstable",
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": msg,
                                "lastProbeTime": None,
                                "lastTransitionTime": self.store.clock.stamp(sim.created),
                            }
                        ],
                    },
                )
                return
            sim.node, sim.scheduled = node, now
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = node
            pod = self.store.replace(by_kind("Pod"), new)[0]
            self.store.record_event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {ns}/{name} to {node}",
                component="default-scheduler",
            )
            self.store.record_event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        assert sim.scheduled is not None
        waiting: Obj | None = None
        last_state: Obj = {}
        ready = False
        # -- pull
        if sim.pulled is None:
            if now - sim.scheduled < self.t.pull_s:
                waiting = {"reason": "ContainerCreating"}
            elif fault == "image-pull" and not (
                sim.fault
                and sim.fault.heal_after_s is not None
                and now - sim.scheduled >= sim.fault.heal_after_s
            ):
                msg = (
                    sim.fault.message
                    if sim.fault and sim.fault.message
                    else (
                        f'failed to pull and unpack image "{image}": failed to resolve reference '
                        f'"{image}": {image}: not found'
                    )
                )
                if now - sim.scheduled < self.t.pull_s + 1.0:
                    waiting = {
                        "reason": "ErrImagePull",
                        "message": f"rpc error: code = NotFound desc = {msg}",
                    }
                    self._warn(sim, pod, "Failed", f'Failed to pull image "{image}": {msg}', now)
                else:
                    waiting = {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "{image}"',
                    }
                    self._warn(sim, pod, "BackOff", f'Back-off pulling image "{image}"', now)
            else:
                sim.pulled = now
                self.store.record_event(
                    pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in 1.2s'
                )
        # -- run
        if sim.pulled is not None:
            if (
                sim.started is None
                and (sim.backoff_until is None or now >= sim.backoff_until)
                and now - sim.pulled >= self.t.create_s
            ):
                sim.started, sim.backoff_until = now, None
                if sim.restarts == 0:
                    self.store.record_event(
                        pod, "Normal", "Created", f"Created container {c0['name']}"
                    )
                self.store.record_event(pod, "Normal", "Started", f"Started container {c0['name']}")
            if (
                fault == "crash-loop"
                and sim.started is not None
                and now - sim.started >= self.t.crash_after_s
            ):
                sim.crashed, sim.started = now, None
                sim.restarts += 1
                sim.backoff_until = now + min(300.0, 10.0 * 2 ** (sim.restarts - 1))
            if sim.started is None:
                if sim.crashed is not None:
                    waiting = {
                        "reason": "CrashLoopBackOff",
                        "message": (
                            f"back-off {int(min(300, 10 * 2 ** (sim.restarts - 1)))}s restarting "
                            f"failed container={c0['name']} pod={name}_{ns}({uid})"
                        ),
                    }
                    last_state = {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": self.store.clock.stamp(sim.crashed - self.t.crash_after_s),
                            "finishedAt": self.store.clock.stamp(sim.crashed),
                        }
                    }
                    self._warn(
                        sim,
                        pod,
                        "BackOff",
                        f"Back-off restarting failed container "
                        f"{c0['name']} in pod {name}_{ns}({uid})",
                        now,
                    )
                elif waiting is None:
                    waiting = {"reason": "ContainerCreating"}
            else:
                ready = self._probe_ready(c0, now - sim.started)
                if fault == "never-ready" and now - sim.started > self.t.app_start_s:
                    ready = False
                    self._warn(
                        sim,
                        pod,
                        "Unhealthy",
                        sim.fault.message
                        if sim.fault and sim.fault.message
                        else "Readiness probe failed: HTTP probe failed with statuscode: 503",
                        now,
                    )
        if pod["metadata"].get("deletionTimestamp"):
            ready = False
        running = sim.started is not None
        stamp = self.store.clock.stamp
        state: Obj = (
            {"running": {"startedAt": stamp(sim.started)}}
            if running
            else {"waiting": waiting or {"reason": "ContainerCreating"}}
        )
        cstatus = {
            "name": c0["name"],
            "image": image,
            "imageID": f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
            if sim.pulled is not None
            else "",
            "ready": ready,
            "started": running,
            "restartCount": sim.restarts,
            "state": state,
            "lastState": last_state,
        }
        if running:
            cstatus["containerID"] = (
                f"containerd://{hashlib.sha256((uid + str(sim.restarts)).encode()).hexdigest()}"
            )

        def cond(type_: str, ok: bool, at: float | None) -> Obj:
            return {
                "type": type_,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": stamp(at),
            }

        status = {
            "phase": "Running" if running or sim.crashed is not None else "Pending",
            "hostIP": "192.168.1.1" + sim.node[-1] if sim.node else None,
            "podIP": sim.ip,
            "podIPs": [{"ip": sim.ip}],
            "startTime": stamp(sim.scheduled),
            "qosClass": "Burstable",
            "conditions": [
                cond("Initialized", True, sim.scheduled),
                cond("Ready", ready, sim.scheduled),
                cond("ContainersReady", ready, sim.scheduled),
                cond("PodScheduled", True, sim.scheduled),
            ],
            "containerStatuses": [cstatus],
        }
        if not ready:
            for c in status["conditions"][1:3]:
                c["reason"] = "ContainersNotReady"
                c["message"] = f"containers with unready status: [{c0['name']}]"
        self._write_pod(pod, status)

    def _probe_ready(self, container: Obj, up_for: float) -> bool:
        probe = container.get("readinessProbe")
        need = self.t.app_start_s
        if probe:
            period = probe.get("periodSeconds", 10)
            need = max(need, probe.get("initialDelaySeconds", 0))
            need += period * (probe.get("successThreshold", 1) - 1)
        return up_for >= need

    def _write_pod(self, pod: Obj, status: Obj) -> None:
        self._set_status(pod, status)

    def pod_log(self, pod: Obj) -> str:
        sim = self.pods.get(pod["metadata"]["uid"])
        if sim and sim.fault and sim.fault.log:
            return sim.fault.log
        return "[INFO] Starting gunicorn\n[INFO] Listening at: http://0.0.0.0:5000\n"

    # ------------------------------------------------------------------ metrics
    def usage(self, pod: Obj, now: float) -> tuple[float, float] | None:
        """CPU cores and memory bytes `pod` uses now; None while its container is not running."""
        sim = self.pods.get(pod["metadata"]["uid"])
        if sim is None or sim.started is None:
            return None
        if self.usage_fn is not None:
            return self.usage_fn(pod, now)
        app = pod["metadata"].get("labels", {}).get("app")
        peers = [
            p
            for p in self.store.kind_items("Pod", pod["metadata"]["namespace"])
            if p["metadata"].get("labels", {}).get("app") == app and is_ready(p)
        ]
        share = self.load(now) / len(peers) if peers and is_ready(pod) else 0.0
        limit = cpu_limit(pod)
        cpu = self.idle_cpu + share
        if limit is not None:
            cpu = min(cpu, limit)
        return cpu, self.base_memory + 64 * 2**20 * min(1.0, share)

    # ------------------------------------------------------------------ HPA
    def sync_hpa(self, hpa: Obj, now: float) -> None:
        uid = hpa["metadata"]["uid"]
        if now < self._hpa_next.get(uid, 0.0):
            return
        self._hpa_next[uid] = now + self.t.hpa_sync_s
        spec = hpa["spec"]
        ns = hpa["metadata"]["namespace"]
        ref = spec["scaleTargetRef"]
        target = self.store.get(by_kind("Deployment"), ns, ref["name"])
        lo, hi = spec.get("minReplicas", 1), spec["maxReplicas"]
        target_util = next(
            (
                m["resource"]["target"].get("averageUtilization")
                for m in spec.get("metrics") or []
                if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
            ),
            80,
        )
        conditions = []
        if target is None:
            conditions.append(
                (
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    f"the HPA controller was unable to get the target's current scale: "
                    f'deployments/scale.apps "{ref["name"]}" not found',
                )
            )
            self._set_status(
                hpa,
                {
                    "currentReplicas": 0,
                    "desiredReplicas": 0,
                    "conditions": self._conditions(
                        hpa.get("status", {}).get("conditions", []), conditions
                    ),
                },
            )
            return
        current = target["spec"].get("replicas", 1)
        reqs = parse_label_selector(
            ",".join(
                f"{k}={v}" for k, v in target["spec"]["selector"].get("matchLabels", {}).items()
            )
        )
        pods = [
            p
            for p in self.store.kind_items("Pod", ns)
            if labels_match(p["metadata"].get("labels", {}), reqs)
            and not p["metadata"].get("deletionTimestamp")
            and is_ready(p)
        ]
        used = [(self.usage(p, now), cpu_request(p)) for p in pods]
        used = [(u[0], r) for u, r in used if u is not None and r > 0]
        metrics: list[Obj] = []
        desired = current
        if used:
            total_req = sum(r for _u, r in used)
            util = round(100 * sum(u for u, _r in used) / total_req)
            avg_value = sum(u for u, _r in used) / len(used)
            metrics = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {
                            "averageUtilization": util,
                            "averageValue": f"{round(avg_value * 1000)}m",
                        },
                    },
                }
            ]
            ratio = util / target_util
            if abs(ratio - 1) > 0.1:
                desired = math.ceil(len(used) * ratio)
            conditions.append(
                (
                    "ScalingActive",
                    "True",
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count from "
                    "cpu resource utilization (percentage of request)",
                )
            )
        else:
            conditions.append(
                (
                    "ScalingActive",
                    "False",
                    "FailedGetResourceMetric",
                    "the HPA was unable to compute the replica count: failed to get "
                    "cpu utilization: no metrics returned from resource metrics API",
                )
            )
        desired = self._behave(uid, spec.get("behavior") or {}, current, desired, now)
        limited = desired < lo or desired > hi
        desired = max(lo, min(hi, desired))
        conditions.insert(
            0,
            (
                "AbleToScale",
                "True",
                "ReadyForNewScale" if desired == current else "SucceededRescale",
                "recommended size matches current size"
                if desired == current
                else f"the HPA controller was able to update the target scale to {desired}",
            ),
        )
        conditions.append(
            (
                "ScalingLimited",
                "True" if limited else "False",
                "TooFewReplicas"
                if limited and desired == lo
                else "TooManyReplicas"
                if limited
                else "DesiredWithinRange",
                "the desired count is within the acceptable range"
                if not limited
                else "the desired replica count is out of range",
            )
        )
        status = dict(hpa.get("status") or {})
        if desired != current:
            self.objects.set_scale(
                by_kind("Deployment"), ns, ref["name"], desired, CONTROLLER_MANAGER
            )
            status["lastScaleTime"] = self.store.clock.stamp()
            self._hpa_last_scale[uid] = (now, "up" if desired > current else "down")
            self.store.record_event(
                hpa,
                "Normal",
                "SuccessfulRescale",
                f"New size: {desired}; reason: cpu resource utilization "
                "(percentage of request) above target"
                if desired > current
                else f"New size: {desired}; reason: All metrics below target",
                component="horizontal-pod-autoscaler",
            )
        status.update(
            {
                "currentReplicas": current,
                "desiredReplicas": desired,
                "conditions": self._conditions(status.get("conditions", []), conditions),
            }
        )
        if metrics:
            status["currentMetrics"] = metrics
        else:
            status.pop("currentMetrics", None)
        self._set_status(hpa, status)

    def _behave(self, uid: str, behavior: Obj, current: int, desired: int, now: float) -> int:
        """Stabilisation window and rate policies of autoscaling/v2 `behavior` (simplified)."""
        hist = self._hpa_history.setdefault(uid, [])
        hist.append((now, desired))
        down = behavior.get("scaleDown") or {}
        up = behavior.get("scaleUp") or {}
        if desired < current:
            window = down.get("stabilizationWindowSeconds", 300)
            desired = min(current, max(d for t, d in hist if now - t <= window))
            policies = down.get("policies") or [
                {"type": "Percent", "value": 100, "periodSeconds": 15}
            ]
            limit = self._allowed(policies, down.get("selectPolicy", "Max"), current, -1, uid, now)
            desired = max(desired, limit)
        elif desired > current:
            window = up.get("stabilizationWindowSeconds", 0)
            desired = max(current, min(d for t, d in hist if now - t <= window))
            policies = up.get("policies") or [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ]
            limit = self._allowed(policies, up.get("selectPolicy", "Max"), current, 1, uid, now)
            desired = min(desired, limit)
        keep = max([300.0] + [float(p.get("stabilizationWindowSeconds", 0)) for p in (down, up)])
        self._hpa_history[uid] = [(t, d) for t, d in hist if now - t <= keep]
        return desired

    def _allowed(
        self, policies: list[Obj], select: str, current: int, sign: int, uid: str, now: float
    ) -> int:
        if select == "Disabled":
            return current
        last = self._hpa_last_scale.get(uid)
        options = []
        for p in policies:
            if (
                last
                and last[1] == ("up" if sign > 0 else "down")
                and now - last[0] < p["periodSeconds"]
            ):
                options.append(current)
                continue
            step = math.ceil(current * p["value"] / 100) if p["type"] == "Percent" else p["value"]
            options.append(current + sign * step)
        if sign > 0:
            return max(options) if select == "Max" else min(options)
        return min(options) if select == "Max" else max(options)


def match(obj: Obj, selector: dict[str, str]) -> bool:
    return match_labels(obj["metadata"].get("labels", {}), selector)
