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
ServiceAccount admission first (plugin/pkg/admission/serviceaccount/admission.go): a pod
whose service account (`serviceAccountName`, else "default") does not exist is refused with
`pods "NAME" is forbidden: error looking up service account NS/SA: serviceaccount "SA" not
found`. The "default" account of every namespace is made by the serviceaccount controller
(kube-controller-manager; here each tick), unless `serviceaccount_controller` is False (a
controller-manager started with `--controllers=*,-serviceaccount`). NAME in both messages
is the pod's generateName, "<replicaset>-": admission runs before the name is generated
(admission.NewForbidden, extractResourceName).
The replicaset controller records a FailedCreate event "Error creating: ..." and sets
`ReplicaFailure=True, reason FailedCreate` with that message on the ReplicaSet
(pkg/controller/replicaset/replica_set_utils.go calculateStatus), which the deployment
controller copies to the Deployment (pkg/controller/deployment/progress.go
getReplicaFailures) and removes once creation succeeds.
"""

from __future__ import annotations

import contextlib
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

from .objects import Objects, default_pod_spec, hpa_rules, rt_of_key
from .resources import by_kind
from .selectors import selector_matches
from .store import Obj, Store, match_labels

FAULTS = ("image-pull", "crash-loop", "unschedulable", "never-ready")
CONTROLLER_MANAGER = "kube-controller-manager"
# the HPA's condition messages (pkg/controller/podautoscaler/horizontal.go)
DOWN_STABILIZED = (
    "recent recommendations were higher than current one, "
    "applying the highest recent recommendation"
)
UP_STABILIZED = (
    "recent recommendations were lower than current one, applying the lowest recent recommendation"
)
UP_LIMIT = "the desired replica count is increasing faster than the maximum scale rate"
DOWN_LIMIT = "the desired replica count is decreasing faster than the maximum scale rate"


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
    sigterm_exit_s: float = 1.0  # the app exits this long after SIGTERM (gunicorn, idle)
    hpa_sync_s: float = 15.0  # --horizontal-pod-autoscaler-sync-period
    hpa_tolerance: float = 0.1
    hpa_downscale_window_s: float = 300.0  # without spec.behavior
    cpu_initialization_s: float = 300.0
    initial_readiness_delay_s: float = 30.0
    metrics_resolution_s: float = 15.0  # metrics-server --metric-resolution (kubespray)
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
    terminating: float | None = None  # when the kubelet is done stopping it
    ready: bool = False
    ready_changed: float | None = None  # Ready's lastTransitionTime
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


def scaled(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of total rounded up or down."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def fenceposts(d: Obj) -> tuple[int, int]:
    """deploymentutil.ResolveFenceposts: (maxSurge rounded up, maxUnavailable rounded down);
    both 0 would deadlock a rollout, so maxUnavailable becomes 1."""
    desired = d["spec"].get("replicas", 1)
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = scaled(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(d: Obj) -> int:
    """deploymentutil.MaxUnavailable: 0 for Recreate or no replicas, at most the replicas."""
    desired = d["spec"].get("replicas", 1)
    if (d["spec"].get("strategy") or {}).get("type") == "Recreate" or desired == 0:
        return 0
    return min(desired, fenceposts(d)[1])


def _available(rs: Obj) -> int:
    return int((rs.get("status") or {}).get("availableReplicas") or 0)


def owned_by(obj: Obj, owner: Obj) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference marked `controller: true`, if any (metav1.GetControllerOf)."""
    return next(
        (r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None
    )


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
        self._new_rs_created: dict[str, str] = {}
        self._hpa_next: dict[str, float] = {}
        #: per HPA: (time, unstabilised recommendation) and (time, replica change)
        self._hpa_recs: dict[str, list[tuple[float, int]]] = {}
        self._hpa_events: dict[str, list[tuple[float, int]]] = {}
        #: metrics-server: per pod uid / node name, the last two (time, cpu, memory)
        self.samples: dict[str, list[tuple[float, float, float]]] = {}
        self.node_samples: dict[str, list[tuple[float, float, float]]] = {}
        self._scrape_k = -1
        #: LoadBalancer addresses to hand out (empty: none, as the course's cluster)
        self.lb_pool: list[str] = []
        self._ip = 0
        #: ReplicaSet uid → why its last pod creation was refused (quota admission): the
        #: message without the pod's name (to record one event per reason), and in full
        self._create_failures: dict[str, str] = {}
        self._create_messages: dict[str, str] = {}
        #: kube-controller-manager's serviceaccount controller: "default" in every namespace
        self.serviceaccount_controller = True

    # ------------------------------------------------------------------ tick
    def tick(self) -> None:
        with self.store.lock:
            now = self.store.clock.now()
            self.garbage_collect()
            for ns in self.store.kind_items("Namespace"):
                self.sync_namespace(ns)
                self.sync_serviceaccounts(ns)
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
            for svc in self.store.kind_items("Service"):
                self.sync_service(svc)
            for pdb in self.store.kind_items("PodDisruptionBudget"):
                self.sync_pdb(pdb)
            self.scrape(now)
            for hpa in self.store.kind_items("HorizontalPodAutoscaler"):
                self.sync_hpa(hpa, now)

    # ------------------------------------------------------------------ GC
    def garbage_collect(self) -> None:
        """pkg/controller/garbagecollector, simplified: dependents of vanished owners are
        deleted (Background); an owner deleting with `foregroundDeletion` waits for its
        dependents, one with `orphan` first strips its uid from their ownerReferences."""
        present = {o["metadata"]["uid"] for _k, o in self.store.iter_all()}
        for key, obj in self.store.iter_all():
            rt = rt_of_key(key)
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not any(r.get("uid") in present for r in refs):
                self._delete(rt, obj, "Background")
                continue
            fins = meta.get("finalizers") or []
            if not meta.get("deletionTimestamp") or not (
                "foregroundDeletion" in fins or "orphan" in fins
            ):
                continue
            deps = [(k, o) for k, o in self.store.iter_all() if owned_by(o, obj)]
            if "orphan" in fins:
                for k, dep in deps:
                    new = copy.deepcopy(dep)
                    new["metadata"]["ownerReferences"] = [
                        r
                        for r in dep["metadata"].get("ownerReferences") or []
                        if r.get("uid") != meta["uid"]
                    ]
                    self.store.replace(rt_of_key(k), new)
                self._drop_finalizer(rt, obj, "orphan")
                continue
            for k, dep in deps:
                self._delete(rt_of_key(k), dep, "Foreground")
            if not deps:
                self._drop_finalizer(rt, obj, "foregroundDeletion")

    def _drop_finalizer(self, rt: Any, obj: Obj, finalizer: str) -> None:
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [
            f for f in obj["metadata"].get("finalizers") or [] if f != finalizer
        ]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        stored = self.store.replace(rt, new)[0]
        self.objects.finish_deletion(rt, stored)

    def _delete(self, rt: Any, obj: Obj, policy: str) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        self.objects.delete(
            rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], policy, None
        )

    # ------------------------------------------------------------------ namespaces
    def sync_namespace(self, ns_obj: Obj) -> None:
        """pkg/controller/namespace/deletion: delete everything in a Terminating namespace,
        report what remains in status.conditions, then drop the `kubernetes` finalizer."""
        if not ns_obj["metadata"].get("deletionTimestamp"):
            return
        name = ns_obj["metadata"]["name"]
        remaining: dict[str, int] = {}
        with_finalizers: dict[str, int] = {}
        for key, obj in self.store.iter_all():
            if key[2] != name or not key[2]:
                continue
            rt = rt_of_key(key)
            self._delete(rt, obj, "Background")
            if self.store.objects.get(key) is not None:
                what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
                remaining[what] = remaining.get(what, 0) + 1
                for f in self.store.objects[key]["metadata"].get("finalizers") or []:
                    with_finalizers[f] = with_finalizers.get(f, 0) + 1
        conds = [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
            (
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization",
            ),
            (
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                "Some resources are remaining: "
                + ", ".join(
                    f"{k} has {v} resource instances" for k, v in sorted(remaining.items())
                ),
            )
            if remaining
            else (
                "NamespaceContentRemaining",
                "False",
                "ContentRemoved",
                "All content successfully removed",
            ),
            (
                "NamespaceFinalizersRemaining",
                "True",
                "SomeFinalizersRemain",
                "Some content in the namespace has finalizers remaining: "
                + ", ".join(
                    f"{k} in {v} resource instances" for k, v in sorted(with_finalizers.items())
                ),
            )
            if with_finalizers
            else (
                "NamespaceFinalizersRemaining",
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished",
            ),
        ]
        rt = by_kind("Namespace")
        status = {
            "phase": "Terminating",
            "conditions": self._conditions(
                (ns_obj.get("status") or {}).get("conditions") or [], conds
            ),
        }
        self._set_status(ns_obj, status)
        if remaining:
            return
        live = self.store.get(rt, None, name)
        if live is None:
            return
        new = copy.deepcopy(live)
        new["spec"]["finalizers"] = [
            f for f in (live.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"
        ]
        self.objects.finish_deletion(rt, self.store.replace(rt, new)[0])

    # ------------------------------------------------------------------ Deployment
    def sync_deployment(self, d: Obj, now: float) -> None:
        """pkg/controller/deployment: getNewReplicaSet, then rolloutRolling (one scale-up
        step per sync, else the old ReplicaSets scaled down within maxUnavailable) or
        rolloutRecreate."""
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
        old = [rs for rs in owned if rs is not new]
        surge, unavailable = fenceposts(d)
        recreate = (d["spec"].get("strategy") or {}).get("type") == "Recreate"
        if new is None:
            # a first ReplicaSet starts at full size; a rollout starts within maxSurge
            start = desired
            if old and not recreate:
                total = sum(rs["spec"].get("replicas", 0) for rs in old)
                start = max(0, min(desired, desired + surge - total))
            if old and recreate:
                start = 0
            new = self._create_rs(d, h, len(owned) + 1, start)
            self.store.record_event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {new['metadata']['name']} from 0 to {start}",
                component="deployment-controller",
            )
            self._new_rs_created[d["metadata"]["uid"]] = new["metadata"]["name"]
            return
        if recreate:
            for rs in old:
                self._scale_rs(d, rs, 0)
            if not any(self._pods_of(rs) for rs in old):
                self._scale_rs(d, new, desired)
            return
        # reconcileNewReplicaSet
        new_spec = new["spec"].get("replicas", 0)
        if new_spec > desired:
            self._scale_rs(d, new, desired)
            return
        if new_spec < desired:
            total = sum(rs["spec"].get("replicas", 0) for rs in owned)
            room = desired + surge - total
            if room > 0:
                self._scale_rs(d, new, new_spec + min(room, desired - new_spec))
                return
        # reconcileOldReplicaSets
        old = sorted(
            (rs for rs in old if rs["spec"].get("replicas", 0) > 0),
            key=lambda r: r["metadata"]["creationTimestamp"],
        )
        if not old:
            return
        min_available = desired - unavailable
        all_pods = sum(rs["spec"].get("replicas", 0) for rs in owned)
        new_unavailable = new["spec"].get("replicas", 0) - _available(new)
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return
        # cleanupUnhealthyReplicas: old pods that are not available go first
        spec = {rs["metadata"]["name"]: rs["spec"].get("replicas", 0) for rs in old}
        for rs in old:
            if budget <= 0:
                break
            name = rs["metadata"]["name"]
            unhealthy = spec[name] - _available(rs)
            if unhealthy <= 0:
                continue
            down = min(budget, unhealthy)
            budget -= down
            self._scale_rs(d, rs, spec[name] - down)
            spec[name] -= down
        # scaleDownOldReplicaSetsForRollingUpdate
        excess = sum(_available(rs) for rs in owned) - min_available
        for rs in old:
            name = rs["metadata"]["name"]
            if excess <= 0:
                break
            if spec[name] == 0:
                continue
            down = min(spec[name], excess)
            excess -= down
            self._scale_rs(d, rs, spec[name] - down)
            spec[name] -= down

    def _create_rs(self, d: Obj, h: str, revision: int, replicas: int) -> Obj:
        template = copy.deepcopy(d["spec"]["template"])
        template["metadata"].setdefault("labels", {})["pod-template-hash"] = h
        sel = copy.deepcopy(d["spec"]["selector"])
        sel.setdefault("matchLabels", {})["pod-template-hash"] = h
        return self.store.insert(
            by_kind("ReplicaSet"),
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{d['metadata']['name']}-{h}",
                    "namespace": d["metadata"]["namespace"],
                    "labels": dict(template["metadata"]["labels"]),
                    "ownerReferences": [owner_ref(d)],
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(revision),
                        "deployment.kubernetes.io/desired-replicas": str(
                            d["spec"].get("replicas", 1)
                        ),
                        "deployment.kubernetes.io/max-replicas": str(
                            d["spec"].get("replicas", 1) + fenceposts(d)[0]
                        ),
                    },
                },
                "spec": {
                    "replicas": replicas,
                    "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                    "selector": sel,
                    "template": template,
                },
                "status": {"replicas": 0},
            },
        )

    def _scale_rs(self, d: Obj, rs: Obj, replicas: int) -> None:
        live = self.store.get(
            by_kind("ReplicaSet"), rs["metadata"]["namespace"], rs["metadata"]["name"]
        )
        if live is None or live["spec"].get("replicas", 0) == replicas:
            return
        current = live["spec"].get("replicas", 0)
        new = copy.deepcopy(live)
        new["spec"]["replicas"] = replicas
        self.store.replace(by_kind("ReplicaSet"), new)
        verb = "up" if replicas > current else "down"
        self.store.record_event(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {rs['metadata']['name']} from {current} to {replicas}",
            component="deployment-controller",
        )

    def _pods_of(self, owner: Obj) -> list[Obj]:
        return [
            p
            for p in self.store.kind_items("Pod", owner["metadata"]["namespace"])
            if owned_by(p, owner)
        ]

    def deployment_status(self, d: Obj, now: float) -> None:
        """calculateStatus and syncRolloutStatus of pkg/controller/deployment."""
        if d["metadata"].get("deletionTimestamp"):
            return
        ns = d["metadata"]["namespace"]
        desired = d["spec"].get("replicas", 1)
        h = template_hash(d["spec"]["template"])
        owned = [rs for rs in self.store.kind_items("ReplicaSet", ns) if owned_by(rs, d)]
        new = next(
            (rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == h), None
        )

        def st(rs: Obj, key: str) -> int:
            return int((rs.get("status") or {}).get(key) or 0)

        available = sum(st(rs, "availableReplicas") for rs in owned)
        total = sum(rs["spec"].get("replicas", 0) for rs in owned)
        old_status = d.get("status") or {}
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(st(rs, "replicas") for rs in owned),
            "updatedReplicas": st(new, "replicas") if new else 0,
            "readyReplicas": sum(st(rs, "readyReplicas") for rs in owned),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
        }
        conds = {c["type"]: dict(c) for c in old_status.get("conditions") or []}
        stamp = self.store.clock.stamp()

        def set_cond(type_: str, status_: str, reason: str, message: str) -> None:
            # SetDeploymentCondition: no change for the same status and reason
            cur = conds.get(type_)
            if cur and cur["status"] == status_ and cur.get("reason") == reason:
                return
            conds[type_] = {
                "type": type_,
                "status": status_,
                "lastUpdateTime": stamp,
                "lastTransitionTime": cur["lastTransitionTime"]
                if cur and cur["status"] == status_
                else stamp,
                "reason": reason,
                "message": message,
            }

        if available >= desired - max_unavailable(d):
            set_cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            set_cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        rs_name = new["metadata"]["name"] if new else d["metadata"]["name"]
        kind = "ReplicaSet" if new else "Deployment"
        created = self._new_rs_created.pop(d["metadata"]["uid"], None)
        deadline = d["spec"].get("progressDeadlineSeconds")
        cur = conds.get("Progressing")
        if deadline is None:
            conds.pop("Progressing", None)
        elif created:
            set_cond(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{created}"',
            )
        elif not (
            status["replicas"] == status["updatedReplicas"]
            and cur is not None
            and cur.get("reason") == "NewReplicaSetAvailable"
        ):
            old_old = int(old_status.get("replicas") or 0) - int(
                old_status.get("updatedReplicas") or 0
            )
            if (
                status["updatedReplicas"] == desired
                and status["replicas"] == desired
                and available == desired
            ):
                set_cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'{kind} "{rs_name}" has successfully progressed.',
                )
            elif (
                status["updatedReplicas"] > int(old_status.get("updatedReplicas") or 0)
                or status["replicas"] - status["updatedReplicas"] < old_old
                or status["readyReplicas"] > int(old_status.get("readyReplicas") or 0)
                or available > int(old_status.get("availableReplicas") or 0)
            ):
                # progress: lastUpdateTime moves, lastTransitionTime only on a status change
                conds["Progressing"] = {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": cur["lastTransitionTime"]
                    if cur and cur["status"] == "True"
                    else stamp,
                    "reason": "ReplicaSetUpdated",
                    "message": f'{kind} "{rs_name}" is progressing.',
                }
            elif cur is not None and cur.get("reason") != "ProgressDeadlineExceeded":
                since = self.store.clock.seconds(cur["lastUpdateTime"])
                if now - since > deadline:
                    set_cond(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        f'{kind} "{rs_name}" has timed out progressing.',
                    )
        failure = next(
            (
                c
                for rs in owned
                for c in (rs.get("status") or {}).get("conditions") or []
                if c["type"] == "ReplicaFailure" and c["status"] == "True"
            ),
            None,
        )
        if failure:
            set_cond("ReplicaFailure", "True", failure["reason"], failure["message"])
        else:
            conds.pop("ReplicaFailure", None)
        if conds:
            status["conditions"] = list(conds.values())
        for k in ("readyReplicas", "availableReplicas", "unavailableReplicas", "updatedReplicas"):
            if status[k] == 0:
                del status[k]  # omitempty, as the real API
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        self._set_status(d, status)

    def _conditions(self, old: list[Obj], new: list[tuple[str, str, str, str]]) -> list[Obj]:
        prev = {c["type"]: c for c in old}
        out = []
        stamp = self.store.clock.stamp()
        for type_, status, reason, message in new:
            p = prev.get(type_)
            # HPA and Namespace conditions have no lastUpdateTime (only Deployment's do)
            out.append(
                {
                    "type": type_,
                    "status": status,
                    "lastTransitionTime": p["lastTransitionTime"]
                    if p is not None and p["status"] == status
                    else stamp,
                    "reason": reason,
                    "message": message,
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

    # ------------------------------------------------------------------ disruption
    def sync_pdb(self, pdb: Obj) -> None:
        """kube-controller-manager's disruption controller (pkg/controller/disruption/
        disruption.go: getExpectedPodCount, getExpectedScale, countHealthyPods,
        updatePdbStatus; the condition of pkg/apis/policy/v1 UpdateDisruptionAllowedCondition).
        No eviction API here, so no disruptedPods."""
        if pdb["metadata"].get("deletionTimestamp"):
            return
        spec = pdb.get("spec") or {}
        ns = pdb["metadata"]["namespace"]
        sel = spec.get("selector")
        pods = [
            p
            for p in self.store.kind_items("Pod", ns)
            if sel is not None and selector_matches(sel, p["metadata"].get("labels") or {})
        ]
        if spec.get("maxUnavailable") is not None:
            expected = self._expected_scale(ns, pods)
            desired = max(0, expected - scaled(spec["maxUnavailable"], expected, True))
        elif isinstance(spec.get("minAvailable"), int):
            expected, desired = len(pods), spec["minAvailable"]
        elif spec.get("minAvailable") is not None:
            expected = self._expected_scale(ns, pods)
            desired = scaled(spec["minAvailable"], expected, True)
        else:  # neither: nothing expected, so no disruption allowed
            expected, desired = 0, 0
        healthy = sum(1 for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp"))
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        generation = pdb["metadata"].get("generation", 1)
        old = pdb.get("status") or {}
        status = {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": allowed,
            "observedGeneration": generation,
            "conditions": [
                {**c, "observedGeneration": generation}
                for c in self._conditions(
                    old.get("conditions") or [],
                    [
                        ("DisruptionAllowed", "True", "SufficientPods", "")
                        if allowed > 0
                        else ("DisruptionAllowed", "False", "InsufficientPods", "")
                    ],
                )
            ],
        }
        self._set_status(pdb, status)

    def _expected_scale(self, ns: str, pods: list[Obj]) -> int:
        """getExpectedScale: the summed replicas of the pods' controllers, a Deployment's
        for the pods of its ReplicaSets."""
        scales: dict[str, int] = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None or ref["kind"] != "ReplicaSet":
                continue
            rs = self.store.get(by_kind("ReplicaSet"), ns, ref["name"])
            if rs is None:
                continue
            owner = controller_ref(rs)
            d = self.store.get(by_kind("Deployment"), ns, owner["name"]) if owner else None
            top = d if d is not None and owner and owner["kind"] == "Deployment" else rs
            scales[top["metadata"]["uid"]] = top["spec"].get("replicas", 1)
        return sum(scales.values())

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

    def sync_serviceaccounts(self, ns_obj: Obj) -> None:
        """pkg/controller/serviceaccount: a "default" ServiceAccount in every namespace that
        is not terminating (recreated if deleted)."""
        if not self.serviceaccount_controller or ns_obj["metadata"].get("deletionTimestamp"):
            return
        name = ns_obj["metadata"]["name"]
        if self.store.get(by_kind("ServiceAccount"), name, "default") is None:
            self.store.insert(
                by_kind("ServiceAccount"),
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name},
                },
            )

    def _serviceaccount_refusal(self, ns: str, name: str, pod_spec: Obj) -> str | None:
        """ServiceAccount admission's message if the pod's service account does not exist."""
        account = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"
        if self.store.get(by_kind("ServiceAccount"), ns, account) is not None:
            return None
        return (
            f'pods "{name}" is forbidden: error looking up service account {ns}/{account}: '
            f'serviceaccount "{account}" not found'
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
        namespace = self.store.get(by_kind("Namespace"), None, rs["metadata"]["namespace"])
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return  # the API refuses new content in a terminating namespace
        template = copy.deepcopy(rs["spec"]["template"])
        spec = template["spec"]
        default_pod_spec(spec)
        prefix = f"{rs['metadata']['name']}-"  # generateName: admission sees no name yet
        name = f"{prefix}{_suffix()}"
        ns = rs["metadata"]["namespace"]
        # ServiceAccount admission (mutating) runs before ResourceQuota (validating)
        refused = self._serviceaccount_refusal(ns, prefix, spec) or self._quota_refusal(
            ns, prefix, spec
        )
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
            if sim.terminating is None:  # counted from the delete request
                meta = pod["metadata"]
                asked = self.store.clock.seconds(meta["deletionTimestamp"]) - meta.get(
                    "deletionGracePeriodSeconds", 0
                )
                sim.terminating = asked + self._stop_seconds(pod, sim)
            if now >= sim.terminating:
                # the kubelet's final delete (grace 0): gone unless finalizers remain
                sim.started = None
                new = copy.deepcopy(pod)
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                rt = by_kind("Pod")
                stored = self.store.replace(rt, new)[0]
                if self.objects.finish_deletion(rt, stored):
                    self.pods.pop(uid, None)
                return  # stopped; a pod held by finalizers stays as it is
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
        if sim.ready_changed is None or ready != sim.ready:
            sim.ready, sim.ready_changed = ready, now
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
                cond("Ready", ready, sim.ready_changed),
                cond("ContainersReady", ready, sim.ready_changed),
                cond("PodScheduled", True, sim.scheduled),
            ],
            "containerStatuses": [cstatus],
        }
        if not ready:
            for c in status["conditions"][1:3]:
                c["reason"] = "ContainersNotReady"
                c["message"] = f"containers with unready status: [{c0['name']}]"
        self._write_pod(pod, status)

    def _stop_seconds(self, pod: Obj, sim: PodSim) -> float:
        """How long the kubelet takes to stop `pod` (pkg/kubelet/kuberuntime
        killContainer): the preStop hook runs within the grace period, then SIGTERM; if
        the hook used up the grace, the container still gets 2 s before SIGKILL."""
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds", 30))
        if sim.started is None:
            return 0.0
        hook = 0.0
        for c in pod["spec"].get("containers") or []:
            pre = (c.get("lifecycle") or {}).get("preStop") or {}
            if "sleep" in pre:
                hook = max(hook, float(pre["sleep"].get("seconds", 0)))
            cmd = " ".join(str(x) for x in (pre.get("exec") or {}).get("command") or [])
            words = cmd.split()
            for i, w in enumerate(words[:-1]):
                if w.endswith("sleep"):
                    with contextlib.suppress(ValueError):
                        hook = max(hook, float(words[i + 1].rstrip(";")))
        hook = min(hook, grace)
        return hook + min(max(grace - hook, 2.0), self.t.sigterm_exit_s)

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

    # ------------------------------------------------------------------ Services
    def sync_service(self, svc: Obj) -> None:
        """A MetalLB-like address assigner (L2 pool, first free address, as MetalLB's
        controller) and the Endpoints and EndpointSlice controllers."""
        if svc["metadata"].get("deletionTimestamp"):
            return
        spec = svc["spec"]
        if spec.get("type") == "LoadBalancer" and self.lb_pool:
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if not ingress:
                taken = {
                    i.get("ip")
                    for s in self.store.kind_items("Service")
                    for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                    or []
                }
                free = next((ip for ip in self.lb_pool if ip not in taken), None)
                if free is None:
                    self._warn_service(
                        svc,
                        "AllocationFailed",
                        "Failed to allocate IP for "
                        f'"{svc["metadata"]["namespace"]}/{svc["metadata"]["name"]}"'
                        ": no available IPs",
                    )
                else:
                    status = copy.deepcopy(svc.get("status") or {})
                    # ipMode: VIP is the apiserver's default for an ingress IP (1.32+)
                    status["loadBalancer"] = {"ingress": [{"ip": free, "ipMode": "VIP"}]}
                    self._set_status(svc, status)
                    self.store.record_event(
                        svc,
                        "Normal",
                        "IPAllocated",
                        f'Assigned IP ["{free}"]',
                        component="metallb-controller",
                    )
        if spec.get("selector"):
            self._endpoints(svc)

    def _warn_service(self, svc: Obj, reason: str, message: str) -> None:
        if not any(e["reason"] == reason for e in self.store.events_for(svc)):
            self.store.record_event(svc, "Warning", reason, message, component="metallb-controller")

    def _endpoints(self, svc: Obj) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        pods = [
            p
            for p in self.store.kind_items("Pod", ns)
            if match_labels(p["metadata"].get("labels", {}), svc["spec"]["selector"])
            and (p.get("status") or {}).get("podIP")
        ]

        def target_port(port: Obj, pod: Obj) -> int | None:
            tp = port.get("targetPort", port.get("port"))
            if isinstance(tp, int):
                return tp
            for c in pod["spec"].get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == tp:
                        return int(cp["containerPort"])
            return None

        ports = svc["spec"].get("ports") or []
        ref = {"kind": "Service", "apiVersion": "v1", "name": name, "uid": svc["metadata"]["uid"]}
        # Endpoints (v1, deprecated but still maintained): ready and not-ready addresses;
        # terminating pods are left out
        subsets: list[Obj] = []
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if live and ports:
            addr = lambda p: {  # noqa: E731
                "ip": p["status"]["podIP"],
                "nodeName": p["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": p["metadata"]["name"],
                    "uid": p["metadata"]["uid"],
                },
            }
            ready = [addr(p) for p in live if is_ready(p)]
            not_ready = [addr(p) for p in live if not is_ready(p)]
            subset: Obj = {
                "ports": [
                    {
                        k: v
                        for k, v in (
                            ("name", pt.get("name")),
                            ("port", target_port(pt, live[0])),
                            ("protocol", pt.get("protocol", "TCP")),
                        )
                        if v is not None
                    }
                    for pt in ports
                ]
            }
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        ep = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": dict(svc["metadata"].get("labels") or {}),
            },
        }
        if subsets:
            ep["subsets"] = subsets
        self._upsert(by_kind("Endpoints"), ep, ("subsets", "metadata.labels"))
        # EndpointSlice (discovery.k8s.io/v1): terminating pods stay, with their conditions
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-{hashlib.sha256(svc['metadata']['uid'].encode()).hexdigest()[:5]}",
                "namespace": ns,
                "labels": {
                    **(svc["metadata"].get("labels") or {}),
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [{**ref, "controller": True, "blockOwnerDeletion": True}],
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": [p["status"]["podIP"]],
                    "conditions": {
                        "ready": is_ready(p) and not p["metadata"].get("deletionTimestamp"),
                        "serving": is_ready(p),
                        "terminating": bool(p["metadata"].get("deletionTimestamp")),
                    },
                    "nodeName": p["spec"].get("nodeName"),
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": ns,
                        "name": p["metadata"]["name"],
                        "uid": p["metadata"]["uid"],
                    },
                }
                for p in pods
            ]
            or None,
            "ports": [
                {
                    k: v
                    for k, v in (
                        ("name", pt.get("name", "")),
                        ("port", target_port(pt, pods[0]) if pods else None),
                        ("protocol", pt.get("protocol", "TCP")),
                    )
                    if v is not None
                }
                for pt in ports
            ],
        }
        if slice_["endpoints"] is None:
            del slice_["endpoints"]
        self._upsert(by_kind("EndpointSlice"), slice_, ("endpoints", "ports", "metadata.labels"))

    def _upsert(self, rt: Any, obj: Obj, fields_: tuple[str, ...]) -> None:
        live = self.store.get(rt, obj["metadata"]["namespace"], obj["metadata"]["name"])
        if live is None:
            self.store.insert(rt, obj)
            return
        new = copy.deepcopy(live)
        for f in fields_:
            if f.startswith("metadata."):
                new["metadata"][f[9:]] = obj["metadata"][f[9:]]
            elif f in obj:
                new[f] = obj[f]
            else:
                new.pop(f, None)
        self.store.replace(rt, new)

    # ------------------------------------------------------------------ metrics-server
    def scrape(self, now: float) -> None:
        """metrics-server: every `metrics_resolution_s` it scrapes the kubelets; a pod has
        metrics once two scrapes saw its container running (CPU is a rate between two
        samples), so a new pod has none for 15-30 s; values change once per scrape."""
        res = self.t.metrics_resolution_s
        k = math.floor(now / res)
        if k <= self._scrape_k:
            return
        self._scrape_k = k
        at = k * res
        seen = set()
        node_use: dict[str, tuple[float, float]] = {}
        for pod in self.store.kind_items("Pod"):
            uid = pod["metadata"]["uid"]
            use = self.usage(pod, at)
            if use is None:
                continue
            seen.add(uid)
            samples = self.samples.setdefault(uid, [])
            samples.append((at, *use))
            del samples[:-2]
            node = pod["spec"].get("nodeName")
            if node:
                cpu, mem = node_use.get(node, (0.0, 0.0))
                node_use[node] = (cpu + use[0], mem + use[1])
        for uid in list(self.samples):
            if uid not in seen:
                del self.samples[uid]
        for node in self.store.kind_items("Node"):
            name = node["metadata"]["name"]
            samples = self.node_samples.setdefault(name, [])
            samples.append((at, *node_use.get(name, (0.0, 0.0))))
            del samples[:-2]

    def pod_metric(self, pod: Obj) -> tuple[float, float, float, float] | None:
        """(cpu cores, memory bytes, timestamp, window) as metrics-server last reported it."""
        samples = self.samples.get(pod["metadata"]["uid"]) or []
        if len(samples) < 2:
            return None
        (t0, _c0, _m0), (t1, cpu, mem) = samples
        return cpu, mem, t1, t1 - t0

    # ------------------------------------------------------------------ HPA
    def sync_hpa(self, hpa: Obj, now: float) -> None:
        """pkg/controller/podautoscaler/horizontal.go reconcileAutoscaler (Resource cpu
        utilization metrics; others are reported as not supported by the fake)."""
        uid = hpa["metadata"]["uid"]
        if now < self._hpa_next.get(uid, 0.0):
            return
        self._hpa_next[uid] = now + self.t.hpa_sync_s
        spec = hpa["spec"]
        ns = hpa["metadata"]["namespace"]
        ref = spec["scaleTargetRef"]
        target = self.store.get(by_kind("Deployment"), ns, ref["name"])
        conds: dict[str, tuple[str, str, str, str]] = {}

        def cond(type_: str, status_: str, reason: str, message: str) -> None:
            conds[type_] = (type_, status_, reason, message)

        status = dict(hpa.get("status") or {})
        status["observedGeneration"] = hpa["metadata"].get("generation", 1)
        old_conds = status.get("conditions") or []
        if target is None:
            cond(
                "AbleToScale",
                "False",
                "FailedGetScale",
                "the HPA controller was unable to get the target's current scale: "
                f'deployments.apps "{ref["name"]}" not found',
            )
            status.update({"currentReplicas": 0, "desiredReplicas": 0})
            status["conditions"] = self._conditions(old_conds, list(conds.values()))
            self._set_status(hpa, status)
            return
        current = target["spec"].get("replicas", 1)
        lo, hi = spec.get("minReplicas", 1), spec["maxReplicas"]
        cond(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        )
        desired, reason, rescale = 0, "", True
        metric_statuses: list[Obj] = []
        if current == 0 and lo != 0:
            rescale = False
            cond(
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            )
        elif current > hi:
            desired, reason = hi, "Current number of replicas above Spec.MaxReplicas"
        elif current < lo:
            desired, reason = lo, "Current number of replicas below Spec.MinReplicas"
        else:
            proposal, metric_statuses, error = self._replicas_for_metrics(hpa, target, current, now)
            if proposal is None:
                cond("ScalingActive", "False", "FailedGetResourceMetric", error)
                status["currentReplicas"] = current
                if metric_statuses:
                    status["currentMetrics"] = metric_statuses
                else:
                    status.pop("currentMetrics", None)
                status.setdefault("desiredReplicas", 0)
                status["conditions"] = self._conditions(old_conds, self._ordered(old_conds, conds))
                self.store.record_event(
                    hpa,
                    "Warning",
                    "FailedGetResourceMetric",
                    error.split(": ", 1)[-1],
                    component="horizontal-pod-autoscaler",
                )
                self._set_status(hpa, status)
                return
            cond(
                "ScalingActive",
                "True",
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count from "
                "cpu resource utilization (percentage of request)",
            )
            desired = proposal
            if desired > current:
                reason = "cpu resource utilization (percentage of request) above target"
            elif desired < current:
                reason = "All metrics below target"
            desired = self._normalize(hpa, current, desired, lo, hi, now, cond)
            rescale = desired != current
        if rescale:
            self.objects.set_scale(
                by_kind("Deployment"), ns, ref["name"], desired, CONTROLLER_MANAGER
            )
            cond(
                "AbleToScale",
                "True",
                "SucceededRescale",
                f"the HPA controller was able to update the target scale to {desired}",
            )
            self.store.record_event(
                hpa,
                "Normal",
                "SuccessfulRescale",
                f"New size: {desired}; reason: {reason}",
                component="horizontal-pod-autoscaler",
            )
            # storeScaleEvent: what the rate policies look back on
            events = self._hpa_events.setdefault(uid, [])
            events.append((now, desired - current))
            status["lastScaleTime"] = self.store.clock.stamp()
        status.update({"currentReplicas": current, "desiredReplicas": desired})
        if metric_statuses:
            status["currentMetrics"] = metric_statuses
        else:
            status.pop("currentMetrics", None)
        status["conditions"] = self._conditions(old_conds, self._ordered(old_conds, conds))
        self._set_status(hpa, status)

    @staticmethod
    def _ordered(
        old: list[Obj], conds: dict[str, tuple[str, str, str, str]]
    ) -> list[tuple[str, str, str, str]]:
        order = ["AbleToScale", "ScalingActive", "ScalingLimited"]
        out = [conds[t] for t in order if t in conds]
        # a condition not set this time keeps its last value (setCondition only updates)
        for c in old:
            if c["type"] not in conds:
                out.append((c["type"], c["status"], c.get("reason", ""), c.get("message", "")))
        return out

    def _replicas_for_metrics(
        self, hpa: Obj, target: Obj, current: int, now: float
    ) -> tuple[int | None, list[Obj], str]:
        """replica_calculator.go GetResourceReplicas for the cpu Utilization metric:
        (proposal or None, currentMetrics, why not)."""
        target_util = None
        for m in hpa["spec"].get("metrics") or []:
            res = m.get("resource") or {}
            if m.get("type") == "Resource" and res.get("name") == "cpu":
                target_util = (res.get("target") or {}).get("averageUtilization")
        if target_util is None:
            return (
                None,
                [],
                "the HPA was unable to compute the replica count: "
                "the fake computes cpu utilization metrics only",
            )
        ns = target["metadata"]["namespace"]
        pods = [
            p
            for p in self.store.kind_items("Pod", ns)
            if selector_matches(target["spec"]["selector"], p["metadata"].get("labels", {}))
        ]
        fail = "the HPA was unable to compute the replica count: failed to get cpu utilization: "
        metrics = {p["metadata"]["name"]: m for p in pods if (m := self.pod_metric(p)) is not None}
        if not metrics:
            return (
                None,
                [],
                fail + "unable to get metrics for resource cpu: "
                "no metrics returned from resource metrics API",
            )
        requests: dict[str, float] = {}
        for p in pods:
            for c in p["spec"].get("containers") or []:
                if "cpu" not in ((c.get("resources") or {}).get("requests") or {}):
                    return (
                        None,
                        [],
                        fail
                        + (
                            f"missing request for cpu in container {c['name']} of Pod "
                            f"{p['metadata']['name']}"
                        ),
                    )
            requests[p["metadata"]["name"]] = cpu_request(p)
        # groupPods
        ready_count, unready, missing, ignored = 0, set(), set(), set()
        for p in pods:
            name = p["metadata"]["name"]
            phase = (p.get("status") or {}).get("phase")
            if p["metadata"].get("deletionTimestamp") or phase == "Failed":
                ignored.add(name)
                continue
            if phase == "Pending":
                unready.add(name)
                continue
            if name not in metrics:
                missing.add(name)
                continue
            ready_cond = next(
                (
                    c
                    for c in (p.get("status") or {}).get("conditions") or []
                    if c["type"] == "Ready"
                ),
                None,
            )
            start = (p.get("status") or {}).get("startTime")
            if ready_cond is None or start is None:
                is_unready = True
            else:
                started = self.store.clock.seconds(start)
                changed = self.store.clock.seconds(ready_cond["lastTransitionTime"])
                _cpu, _mem, stamp_t, window = metrics[name]
                if started + self.t.cpu_initialization_s > now:
                    is_unready = ready_cond["status"] == "False" or stamp_t < changed + window
                else:
                    is_unready = (
                        ready_cond["status"] == "False"
                        and started + self.t.initial_readiness_delay_s > changed
                    )
            if is_unready:
                unready.add(name)
                continue
            ready_count += 1
        usable = {n: m[0] for n, m in metrics.items() if n not in ignored and n not in unready}
        if not usable:
            return (
                None,
                [],
                fail + "did not receive metrics for targeted pods (pods might be unready)",
            )

        def utilization(values: dict[str, float]) -> tuple[int, float]:
            total_req = sum(requests[n] for n in values)
            used = sum(values.values())
            # milli-units, integer division, as GetResourceUtilizationRatio
            return int(round(used * 1000) * 100 // max(1, round(total_req * 1000))), used / len(
                values
            )

        util, avg = utilization(usable)
        ratio = util / target_util
        statuses = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "current": {
                        "averageUtilization": util,
                        "averageValue": f"{round(avg * 1000)}m",
                    },
                },
            }
        ]
        tolerance = self.t.hpa_tolerance
        up_with_unready = bool(unready) and ratio > 1.0
        if not up_with_unready and not missing:
            if abs(1.0 - ratio) <= tolerance:
                return current, statuses, ""
            return math.ceil(ratio * ready_count), statuses, ""
        if missing:
            if ratio < 1.0:
                fallback = max(100, target_util) / 100
                for n in missing:
                    usable[n] = requests[n] * fallback
            elif ratio > 1.0:
                for n in missing:
                    usable[n] = 0.0
        if up_with_unready:
            for n in unready:
                usable[n] = 0.0  # unready pods count at 0 % on a scale-up
        new_util, _ = utilization(usable)
        new_ratio = new_util / target_util
        if (
            abs(1.0 - new_ratio) <= tolerance
            or (ratio < 1.0 and new_ratio > 1.0)
            or (ratio > 1.0 and new_ratio < 1.0)
        ):
            return current, statuses, ""
        proposal = math.ceil(new_ratio * len(usable))
        if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
            return current, statuses, ""
        return proposal, statuses, ""

    def _normalize(
        self,
        hpa: Obj,
        current: int,
        desired: int,
        lo: int,
        hi: int,
        now: float,
        cond: Callable[[str, str, str, str], None],
    ) -> int:
        """normalizeDesiredReplicas (no behavior) or normalizeDesiredReplicasWithBehaviors:
        stabilisation over the recorded recommendations, then the rate limits."""
        uid = hpa["metadata"]["uid"]
        behavior = hpa["spec"].get("behavior")
        recs = self._hpa_recs.setdefault(uid, [])
        if behavior is None:
            cutoff = now - self.t.hpa_downscale_window_s
            stabilized = max([desired] + [r for t, r in recs if t >= cutoff])
            recs[:] = [(t, r) for t, r in recs if t >= cutoff] + [(now, desired)]
            if stabilized != desired:
                cond(
                    "AbleToScale",
                    "True",
                    "ScaleDownStabilized",
                    DOWN_STABILIZED,
                )
            else:
                cond(
                    "AbleToScale",
                    "True",
                    "ReadyForNewScale",
                    "recommended size matches current size",
                )
            up_limit = int(max(2.0 * current, 4.0))
            if hi > up_limit:
                top, why = (
                    up_limit,
                    (
                        "ScaleUpLimit",
                        UP_LIMIT,
                    ),
                )
            else:
                top, why = (
                    hi,
                    (
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    ),
                )
            if stabilized < lo:
                out, why = (
                    lo,
                    (
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    ),
                )
            elif stabilized > top:
                out = top
            else:
                out, why = (
                    stabilized,
                    ("DesiredWithinRange", "the desired count is within the acceptable range"),
                )
            cond("ScalingLimited", "True" if out != stabilized else "False", *why)
            return out
        up = hpa_rules(behavior.get("scaleUp"), up=True)
        down = hpa_rules(behavior.get("scaleDown"), up=False)
        up_cut = now - up["stabilizationWindowSeconds"]
        down_cut = now - down["stabilizationWindowSeconds"]
        up_rec = min([desired] + [r for t, r in recs if t > up_cut])
        down_rec = max([desired] + [r for t, r in recs if t > down_cut])
        stabilized = min(max(current, up_rec), down_rec)
        keep = max(up["stabilizationWindowSeconds"], down["stabilizationWindowSeconds"])
        recs[:] = [(t, r) for t, r in recs if t > now - keep] + [(now, desired)]
        if stabilized != desired:
            if desired >= current:
                cond(
                    "AbleToScale",
                    "True",
                    "ScaleUpStabilized",
                    UP_STABILIZED,
                )
            else:
                cond(
                    "AbleToScale",
                    "True",
                    "ScaleDownStabilized",
                    DOWN_STABILIZED,
                )
        else:
            cond("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size")
        events = self._hpa_events.setdefault(uid, [])
        longest = max([p["periodSeconds"] for p in up["policies"] + down["policies"]] or [0])
        events[:] = [(t, n) for t, n in events if now - t <= longest]
        out, why = (
            stabilized,
            ("DesiredWithinRange", "the desired count is within the acceptable range"),
        )
        if stabilized > current:
            limit = max(current, self._rate_limit(up, current, events, now, +1))
            if hi > limit:
                top, why2 = (
                    limit,
                    (
                        "ScaleUpLimit",
                        UP_LIMIT,
                    ),
                )
            else:
                top, why2 = (
                    hi,
                    (
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    ),
                )
            if stabilized > top:
                out, why = top, why2
        elif stabilized < current:
            limit = min(current, self._rate_limit(down, current, events, now, -1))
            if lo < limit:
                bottom, why2 = (
                    limit,
                    (
                        "ScaleDownLimit",
                        DOWN_LIMIT,
                    ),
                )
            else:
                bottom, why2 = (
                    lo,
                    (
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    ),
                )
            if stabilized < bottom:
                out, why = bottom, why2
        cond("ScalingLimited", "True" if out != stabilized else "False", *why)
        return out

    @staticmethod
    def _rate_limit(
        rules: Obj, current: int, events: list[tuple[float, int]], now: float, sign: int
    ) -> int:
        """calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors:
        each policy allows a change from the replica count at the start of its period."""
        select = rules.get("selectPolicy", "Max")
        if select == "Disabled":
            return current
        proposals = []
        for p in rules["policies"]:
            added = sum(n for t, n in events if n > 0 and now - t < p["periodSeconds"])
            deleted = -sum(n for t, n in events if n < 0 and now - t < p["periodSeconds"])
            start = current - added + deleted
            if p["type"] == "Pods":
                proposals.append(start + sign * p["value"])
            elif sign > 0:
                proposals.append(math.ceil(start * (1 + p["value"] / 100)))
            else:
                proposals.append(int(start * (1 - p["value"] / 100)))
        if not proposals:
            return current
        # Max: the biggest change (most replicas up, fewest down); Min: the smallest
        if sign > 0:
            return max(proposals) if select == "Max" else min(proposals)
        return min(proposals) if select == "Max" else max(proposals)


def match(obj: Obj, selector: dict[str, str]) -> bool:
    return match_labels(obj["metadata"].get("labels", {}), selector)
