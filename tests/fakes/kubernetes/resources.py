"""The API resources the fake serves: one row per (group, version, plural)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update")
    short_names: tuple[str, ...] = ()
    #: served from state computed on the fly (metrics.k8s.io), never stored
    virtual: bool = False
    #: discovery categories: `kubectl get all` lists the kinds in "all" (upstream's REST
    #: storages' Categories(): pods, services, deployments, replicasets, HPAs ...)
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def store_key(self) -> tuple[str, str]:
        """Objects are stored once per (group, plural), whichever version wrote them."""
        return (self.group, self.plural)


_RO = ("get", "list")

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", "v1", "nodes", "Node", namespaced=False, short_names=("no",)),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        subresources=("status", "log"),
        short_names=("po",),
        categories=("all",),
    ),
    ResourceType(
        "",
        "v1",
        "services",
        "Service",
        subresources=("status",),
        short_names=("svc",),
        categories=("all",),
    ),
    ResourceType("", "v1", "events", "Event", short_names=("ev",)),
    ResourceType("", "v1", "endpoints", "Endpoints", short_names=("ep",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    ResourceType(
        "",
        "v1",
        "resourcequotas",
        "ResourceQuota",
        subresources=("status",),
        short_names=("quota",),
    ),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        subresources=("status", "scale"),
        short_names=("deploy",),
        categories=("all",),
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        subresources=("status", "scale"),
        short_names=("rs",),
        categories=("all",),
    ),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        subresources=("status",),
        short_names=("hpa",),
        categories=("all",),
    ),
    ResourceType(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        subresources=("status",),
        short_names=("hpa",),
        categories=("all",),
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        subresources=("status",),
        short_names=("pdb",),
    ),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    ResourceType("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", verbs=_RO, virtual=True),
    ResourceType(
        "metrics.k8s.io",
        "v1beta1",
        "nodes",
        "NodeMetrics",
        namespaced=False,
        verbs=_RO,
        virtual=True,
    ),
)

#: Preferred version per group, first listed wins (autoscaling/v2 over v1).
PREFERRED: dict[str, str] = {}
for _r in RESOURCES:
    PREFERRED.setdefault(_r.group, _r.version)


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for r in RESOURCES:
        if (r.group, r.version, r.plural) == (group, version, plural):
            return r
    return None


def by_kind(kind: str, group: str | None = None) -> ResourceType:
    """The preferred resource of `kind`."""
    for r in RESOURCES:
        if (
            r.kind == kind
            and (group is None or r.group == group)
            and not r.virtual
            and PREFERRED[r.group] == r.version
        ):
            return r
    raise KeyError(kind)


def group_versions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out
