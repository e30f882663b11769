"""Server-side printing: `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`, what kubectl
get asks for. Column names, types and priorities follow pkg/printers/internalversion/printers.go
of 1.35 (descriptions shortened)
(AddHandlers: the column definitions; printPod, printDeployment, printReplicaSet,
printService, printHorizontalPodAutoscaler, printNode, printNamespace, printEvent,
printConfigMap; translateTimestampSince → apimachinery duration.HumanDuration); kinds
without printers get upstream's default Name/Age columns (AddDefaultHandlers).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

_NAME_DOC = "Name must be unique within a namespace."
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "", doc: str = "") -> Obj:
    return {
        "name": name,
        "type": typ,
        "format": fmt,
        "description": doc or name,
        "priority": priority,
    }


NAME = _col("Name", fmt="name", doc=_NAME_DOC)
AGE = _col("Age", doc=_AGE_DOC)
_TEMPLATE = [
    _col("Containers", priority=1, doc="Names of each container in the template."),
    _col("Images", priority=1, doc="Images referenced by each container in the template."),
    _col("Selector", priority=1, doc="Label selector for pods."),
]

COLUMNS: dict[str, list[Obj]] = {
    "Pod": [
        NAME,
        _col("Ready", doc="The aggregate readiness state of this pod for accepting..."),
        _col("Status", doc="The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            doc="The number of times the containers in this pod have been...",
        ),
        AGE,
        _col("IP", priority=1, doc="podIP address allocated to the pod."),
        _col("Node", priority=1, doc="NodeName indicates in which node this pod is scheduled."),
        _col(
            "Nominated Node",
            priority=1,
            doc="nominatedNodeName is set when this pod preempts other...",
        ),
        _col(
            "Readiness Gates",
            priority=1,
            doc="If specified, all readiness gates will be evaluated for...",
        ),
    ],
    "Deployment": [
        NAME,
        _col("Ready", doc="Number of the pod with ready state"),
        _col(
            "Up-to-date",
            doc="Total number of non-terminated pods targeted by this...",
        ),
        _col(
            "Available",
            doc="Total number of available pods (ready for at least...",
        ),
        AGE,
        *_TEMPLATE,
    ],
    "ReplicaSet": [
        NAME,
        _col("Desired", "integer", doc="Replicas is the number of desired pods."),
        _col(
            "Current",
            "integer",
            doc="Replicas is the most recently observed number of...",
        ),
        _col(
            "Ready",
            "integer",
            doc="The number of non-terminating pods targeted by this...",
        ),
        AGE,
        *_TEMPLATE,
    ],
    "Service": [
        NAME,
        _col("Type", doc="type determines how the Service is exposed."),
        _col("Cluster-IP", doc="clusterIP is the IP address of the service."),
        _col(
            "External-IP",
            doc="externalIPs is a list of IP addresses for which nodes in...",
        ),
        _col("Port(s)", doc="The list of ports that are exposed by this service."),
        AGE,
        _col(
            "Selector",
            priority=1,
            doc="Route service traffic to pods with label keys and values...",
        ),
    ],
    "HorizontalPodAutoscaler": [
        NAME,
        _col("Reference", doc="scaleTargetRef points to the target resource to scale."),
        _col(
            "Targets",
            doc="metrics contains the specifications for which to use to...",
        ),
        _col("MinPods", doc="minReplicas is the lower limit for the number of replicas."),
        _col("MaxPods", doc="maxReplicas is the upper limit for the number of replicas."),
        _col(
            "Replicas",
            doc="currentReplicas is current number of replicas of pods...",
        ),
        AGE,
    ],
    "Node": [
        NAME,
        _col("Status", doc="The status of the node"),
        _col("Roles", doc="The roles of the node"),
        AGE,
        _col("Version", doc="Kubelet Version reported by the node."),
        _col("Internal-IP", priority=1, doc="List of addresses reachable to the node."),
        _col("External-IP", priority=1, doc="List of addresses reachable to the node."),
        _col("OS-Image", priority=1, doc="OS Image reported by the node from /etc/os-release."),
        _col("Kernel-Version", priority=1, doc="Kernel Version reported by the node."),
        _col("Container-Runtime", priority=1, doc="ContainerRuntime Version reported by the node."),
    ],
    "Namespace": [NAME, _col("Status", doc="The status of the namespace"), AGE],
    "Event": [
        _col(
            "Last Seen",
            doc="The time at which the most recent occurrence of this...",
        ),
        _col(
            "Type",
            doc="Type of this event (Normal, Warning), new types could be...",
        ),
        _col(
            "Reason",
            doc="This should be a short, machine understandable string...",
        ),
        _col("Object", doc="The object that this event is about."),
        _col(
            "Subobject",
            priority=1,
            doc="If referring to a piece of an object instead of an...",
        ),
        _col("Source", priority=1, doc="The component reporting this event."),
        _col("Message", doc="A human-readable description of the status of this..."),
        _col("First Seen", priority=1, doc="The time at which the event was first recorded."),
        _col("Count", priority=1, doc="The number of times this event has occurred."),
        _col("Name", priority=1, fmt="name", doc=_NAME_DOC),
    ],
    "ConfigMap": [NAME, _col("Data", doc="Data contains the configuration data."), AGE],
    "PodDisruptionBudget": [
        NAME,
        _col("Min Available", doc="The minimum number of pods that must be available."),
        _col("Max Unavailable", doc="The maximum number of pods that may be unavailable."),
        _col(
            "Allowed Disruptions",
            "integer",
            doc="Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
}


def human_duration(seconds: float) -> str:
    """apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d" if h % 24 == 0 else f"{h // 24}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        dy = h // 24 % 365
        return f"{h // 24 // 365}y" if dy == 0 else f"{h // 24 // 365}y{dy}d"
    return f"{h // 24 // 365}y"


def _since(stamp: str | None, now: dt.datetime) -> str:
    if not stamp:
        return "<unknown>"
    t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return human_duration((now - t).total_seconds())


def _selector(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {op.lower()} ({','.join(e.get('values') or [])})")
        else:
            parts.append(e["key"] if op == "Exists" else f"!{e['key']}")
    return ",".join(parts) or "<none>"


def _template(spec: Obj) -> list[str]:
    cs = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        ",".join(c.get("name", "") for c in cs),
        ",".join(c.get("image", "") for c in cs),
        _selector(spec.get("selector")),
    ]


def _pod(o: Obj, now: dt.datetime) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    reason = st.get("reason") or st.get("phase") or ""
    ready = restarts = 0
    for c in reversed(st.get("containerStatuses") or []):
        restarts += c.get("restartCount", 0)
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
        elif "terminated" in state:
            reason = f"ExitCode:{state['terminated'].get('exitCode', 0)}"
        elif c.get("ready") and "running" in state:
            ready += 1
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [
        o["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        str(restarts),  # a string upstream: "3 (2m ago)" with the last restart's age
        _since(o["metadata"].get("creationTimestamp"), now),
        st.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        st.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _deployment(o: Obj, now: dt.datetime) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        o["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        _since(o["metadata"].get("creationTimestamp"), now),
        *_template(spec),
    ]


def _replicaset(o: Obj, now: dt.datetime) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        o["metadata"]["name"],
        spec.get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        _since(o["metadata"].get("creationTimestamp"), now),
        *_template(spec),
    ]


def _service(o: Obj, now: dt.datetime) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    typ = spec.get("type", "ClusterIP")
    ips = [
        i.get("ip") or i.get("hostname")
        for i in (st.get("loadBalancer") or {}).get("ingress") or []
    ]
    ips += spec.get("externalIPs") or []
    external = ",".join(i for i in ips if i) or ("<pending>" if typ == "LoadBalancer" else "<none>")
    ports = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}" + (f":{p['nodePort']}" if p.get("nodePort") else "")
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    sel = spec.get("selector")
    return [
        o["metadata"]["name"],
        typ,
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        _since(o["metadata"].get("creationTimestamp"), now),
        ",".join(f"{k}={v}" for k, v in sorted(sel.items())) if sel else "<none>",
    ]


def _hpa(o: Obj, now: dt.datetime) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    current = {
        (m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current") or {}
        for m in st.get("currentMetrics") or []
        if m.get("type") == "Resource"
    }
    targets = []
    for m in spec.get("metrics") or []:
        res = m.get("resource") or {}
        if m.get("type") != "Resource":
            targets.append("<unknown>")
            continue
        target = res.get("target") or {}
        have = current.get(res.get("name"), {})
        if "averageUtilization" in target:
            now_s = (
                f"{have['averageUtilization']}%" if "averageUtilization" in have else "<unknown>"
            )
            targets.append(f"{res.get('name')}: {now_s}/{target['averageUtilization']}%")
        else:
            want = target.get("averageValue") or target.get("value")
            now_s = have.get("averageValue") or have.get("value") or "<unknown>"
            targets.append(f"{res.get('name')}: {now_s}/{want}")
    return [
        o["metadata"]["name"],
        f"{ref.get('kind')}/{ref.get('name')}",
        ", ".join(targets) or "<none>",
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        st.get("currentReplicas", 0),
        _since(o["metadata"].get("creationTimestamp"), now),
    ]


def _node(o: Obj, now: dt.datetime) -> list[Any]:
    st = o.get("status") or {}
    ready = [c for c in st.get("conditions") or [] if c.get("type") == "Ready"]
    status = "Unknown"
    if ready:
        status = "Ready" if ready[0].get("status") == "True" else "NotReady"
    if (o.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = o["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    addrs = st.get("addresses") or []
    info = st.get("nodeInfo") or {}

    def addr(kind: str) -> str:
        return ",".join(a["address"] for a in addrs if a.get("type") == kind) or "<none>"

    return [
        o["metadata"]["name"],
        status,
        ",".join(roles) or "<none>",
        _since(o["metadata"].get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        addr("InternalIP"),
        addr("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace(o: Obj, now: dt.datetime) -> list[Any]:
    return [
        o["metadata"]["name"],
        (o.get("status") or {}).get("phase", ""),
        _since(o["metadata"].get("creationTimestamp"), now),
    ]


def _event(o: Obj, now: dt.datetime) -> list[Any]:
    inv = o.get("involvedObject") or {}
    src = o.get("source") or {}
    source = src.get("component", "")
    if src.get("host"):
        source += f", {src['host']}"
    first = o.get("firstTimestamp") or o.get("eventTime")
    last = o.get("lastTimestamp") or first
    return [
        _since(last, now),
        o.get("type", ""),
        o.get("reason", ""),
        f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}",
        inv.get("fieldPath", ""),
        source,
        (o.get("message") or "").strip(),
        _since(first, now),
        o.get("count", 1),
        o["metadata"]["name"],
    ]


def _configmap(o: Obj, now: dt.datetime) -> list[Any]:
    return [
        o["metadata"]["name"],
        len(o.get("data") or {}) + len(o.get("binaryData") or {}),
        _since(o["metadata"].get("creationTimestamp"), now),
    ]


def _pdb(o: Obj, now: dt.datetime) -> list[Any]:
    spec = o.get("spec") or {}
    return [
        o["metadata"]["name"],
        "N/A" if spec.get("minAvailable") is None else str(spec["minAvailable"]),
        "N/A" if spec.get("maxUnavailable") is None else str(spec["maxUnavailable"]),
        (o.get("status") or {}).get("disruptionsAllowed", 0),
        _since(o["metadata"].get("creationTimestamp"), now),
    ]


def _default(o: Obj, now: dt.datetime) -> list[Any]:
    return [o["metadata"]["name"], _since(o["metadata"].get("creationTimestamp"), now)]


PRINTERS: dict[str, Callable[[Obj, dt.datetime], list[Any]]] = {
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "Service": _service,
    "HorizontalPodAutoscaler": _hpa,
    "Node": _node,
    "Namespace": _namespace,
    "Event": _event,
    "ConfigMap": _configmap,
    "PodDisruptionBudget": _pdb,
}


def wants_table(accept: str) -> bool:
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def table(
    kind: str,
    objects: list[Obj],
    now: dt.datetime,
    include: str = "Metadata",
    list_meta: Obj | None = None,
    headers: bool = True,
) -> Obj:
    """A meta.k8s.io/v1 Table of `objects`; include: None, Metadata or Object (the
    includeObject query parameter)."""
    printer = PRINTERS.get(kind, _default)
    rows = []
    for o in objects:
        row: Obj = {"cells": printer(o, now)}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": COLUMNS.get(kind, [NAME, AGE]) if headers else [],
        "rows": rows,
    }
