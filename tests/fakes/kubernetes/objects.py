"""The REST verbs on stored objects: get, list, create, replace, patch (server-side apply,
merge, strategic merge, JSON patch), delete with propagation policy, and the scale
subresource. Defaults, validation and the invariants that matter to ggctl live here too."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

from . import fields
from .resources import ResourceType, by_kind
from .store import ApiError, Obj, Store, match_labels

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
NODE_PORTS = range(30000, 32768)


class Objects:
    def __init__(self, store: Store, k8s_version: str = "1.35.0", validate: bool = True):
        self.store = store
        self.k8s_version = k8s_version
        self.validate_schemas = validate
        self._next_ip = 1

    # ------------------------------------------------------------------ reads
    def get(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        with self.store.lock:
            return self.present(rt, self.store.require(rt, ns, name))

    def list(
        self,
        rt: ResourceType,
        ns: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> Obj:
        with self.store.lock:
            items = [
                self.present(rt, o)
                for o in self.store.items(rt, ns, label_selector, field_selector)
            ]
            rv = str(self.store._rv)
        start = int(continue_ or 0)
        meta: Obj = {"resourceVersion": rv}
        if limit:
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.group_version,
            "metadata": meta,
            "items": items,
        }

    def present(self, rt: ResourceType, obj: Obj) -> Obj:
        """The stored object as `rt`'s version shows it."""
        out = copy.deepcopy(obj)
        if rt.kind == "HorizontalPodAutoscaler" and rt.version == "v1":
            out = hpa_v2_to_v1(out)
        out["apiVersion"] = rt.group_version
        out["kind"] = rt.kind
        return out

    # ------------------------------------------------------------------ writes
    def create(self, rt: ResourceType, ns: str | None, body: Obj, manager: str | None) -> Obj:
        self._validate(rt, body)
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        if rt.namespaced:
            meta["namespace"] = ns or meta.get("namespace") or "default"
        if not meta.get("name"):
            if meta.get("generateName"):
                import uuid

                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(
                    422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required value"
                )
        with self.store.lock:
            self._check_namespace(rt, meta.get("namespace"))
            obj = self._to_storage(rt, body)
            if manager:
                fields.take_ownership(
                    obj,
                    manager,
                    set(fields.flatten(obj)),
                    operation="Update",
                    api_version=rt.group_version,
                    stamp=self.store.clock.stamp(),
                )
            self._default(rt, obj)
            self._invariants(rt, None, obj)
            return self.present(rt, self.store.insert(rt, obj))

    def replace(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        body: Obj,
        manager: str | None,
        subresource: str | None = None,
    ) -> Obj:
        with self.store.lock:
            live = self.store.require(rt, ns, name)
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != live["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on {rt.plural} "
                    f'"{name}": the object has been modified; please apply your '
                    "changes to the latest version and try again",
                )
            if subresource == "status":
                new = copy.deepcopy(live)
                new["status"] = self._to_storage(rt, copy.deepcopy(body)).get("status", {})
                return self.present(rt, self.store.replace(rt, new, status_only=True)[0])
            self._validate(rt, body)
            new = self._to_storage(rt, copy.deepcopy(body))
            new.setdefault("metadata", {})
            for k in (
                "namespace",
                "uid",
                "creationTimestamp",
                "managedFields",
                "ownerReferences",
                "finalizers",
                "deletionTimestamp",
            ):
                if k in live["metadata"] and k not in new["metadata"]:
                    new["metadata"][k] = live["metadata"][k]
            new["metadata"]["name"] = name
            new.setdefault("status", live.get("status", {}))
            self._default(rt, new)
            self._invariants(rt, live, new)
            obj, _ = self.store.replace(
                rt, new, manager=manager or "unknown", api_version=rt.group_version
            )
            return self.present(rt, obj)

    def patch(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        manager: str | None,
        force: bool,
        subresource: str | None = None,
    ) -> tuple[int, Obj]:
        ctype = content_type.split(";")[0].strip()
        try:
            if ctype == APPLY:
                import yaml

                patch = yaml.safe_load(raw.decode() or "{}")
            else:
                patch = json.loads(raw.decode() or "{}")
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"cannot decode the patch body: {exc}") from None
        if ctype == APPLY:
            if subresource:
                raise ApiError(400, "BadRequest", "apply to a subresource is not supported here")
            return self.apply(rt, ns, name, patch, manager, force)
        if force:
            raise ApiError(400, "BadRequest", "force may only be used with apply patches")
        with self.store.lock:
            live = self.store.require(rt, ns, name)
            shown = self.present(rt, live)
            if ctype == MERGE:
                new = merge_patch(shown, patch)
            elif ctype == STRATEGIC:
                new = fields.merge(shown, patch) if isinstance(patch, dict) else shown
                new = _drop_nulls(new)
            elif ctype == JSON_PATCH:
                new = json_patch(shown, patch)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {ctype}",
                )
            new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return 200, self.replace(rt, ns, name, new, manager, subresource)

    def apply(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        config: Any,
        manager: str | None,
        force: bool,
    ) -> tuple[int, Obj]:
        if not manager:
            raise ApiError(
                400, "BadRequest", "PATCH /apply requires the fieldManager query parameter"
            )
        if not isinstance(config, dict):
            raise ApiError(400, "BadRequest", "an apply configuration must be an object")
        meta = config.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest", "the namespace of the object does not match")
            meta["namespace"] = ns
        self._validate(rt, config)
        config = self._to_storage(rt, copy.deepcopy(config))
        with self.store.lock:
            self._check_namespace(rt, ns)
            live = self.store.get(rt, ns, name)
            try:
                new = fields.apply(
                    live,
                    config,
                    manager,
                    force=force,
                    api_version=rt.group_version,
                    stamp=self.store.clock.stamp(),
                )
            except fields.Conflict as exc:
                raise ApiError(
                    409,
                    "Conflict",
                    str(exc),
                    {
                        "causes": [
                            {
                                "reason": "FieldManagerConflict",
                                "message": f'conflict with "{m}"',
                                "field": fields._dotted(p),
                            }
                            for m, p in exc.conflicts
                        ]
                    },
                ) from None
            self._default(rt, new)
            self._invariants(rt, live, new)
            if live is None:
                return 201, self.present(rt, self.store.insert(rt, new))
            obj, _ = self.store.replace(rt, new, operation="Apply")
            return 200, self.present(rt, obj)

    # ------------------------------------------------------------------ delete
    def delete(
        self, rt: ResourceType, ns: str | None, name: str, policy: str | None, grace: int | None
    ) -> Obj:
        with self.store.lock:
            obj = self.store.require(rt, ns, name)
            if rt.kind == "Pod" and grace != 0:
                return self.present(rt, self.terminate_pod(obj, grace))
            if policy == "Foreground":
                if obj["metadata"].get("deletionTimestamp"):
                    return self.present(rt, obj)
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = self.store.clock.stamp()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                fins = new["metadata"].setdefault("finalizers", [])
                if "foregroundDeletion" not in fins:
                    fins.append("foregroundDeletion")
                return self.present(rt, self.store.replace(rt, new)[0])
            if policy == "Orphan":
                uid = obj["metadata"]["uid"]
                for key, dep in self.store.iter_all():
                    refs = dep["metadata"].get("ownerReferences") or []
                    if any(r.get("uid") == uid for r in refs):
                        dep2 = copy.deepcopy(dep)
                        dep2["metadata"]["ownerReferences"] = [
                            r for r in refs if r.get("uid") != uid
                        ]
                        self.store.replace(_rt_of_key(key), dep2)
            # the deleted object, as kube-apiserver answers (typed clients parse it)
            return self.present(rt, self.store.remove(rt, ns, name) or obj)

    def terminate_pod(self, pod: Obj, grace: int | None) -> Obj:
        if pod["metadata"].get("deletionTimestamp"):
            return pod
        new = copy.deepcopy(pod)
        g = grace if grace is not None else pod["spec"].get("terminationGracePeriodSeconds", 30)
        new["metadata"]["deletionTimestamp"] = self.store.clock.stamp()
        new["metadata"]["deletionGracePeriodSeconds"] = g
        return self.store.replace(by_kind("Pod"), new)[0]

    # ------------------------------------------------------------------ scale
    def get_scale(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        with self.store.lock:
            obj = self.store.require(rt, ns, name)
            sel = ",".join(
                f"{k}={v}"
                for k, v in sorted(obj["spec"]["selector"].get("matchLabels", {}).items())
            )
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    k: obj["metadata"][k]
                    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                },
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": sel},
            }

    def set_scale(
        self, rt: ResourceType, ns: str | None, name: str, replicas: int, manager: str
    ) -> Obj:
        with self.store.lock:
            new = copy.deepcopy(self.store.require(rt, ns, name))
            new["spec"]["replicas"] = int(replicas)
            self.store.replace(rt, new, manager=manager, api_version="autoscaling/v1")
            return self.get_scale(rt, ns, name)

    # ------------------------------------------------------------------ helpers
    def _check_namespace(self, rt: ResourceType, ns: str | None) -> None:
        if rt.namespaced and ns and not self.store.namespace_exists(ns):
            raise ApiError(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )

    def _validate(self, rt: ResourceType, body: Obj) -> None:
        """The official schema of the served version, strictly (unknown fields are errors)."""
        if not self.validate_schemas or rt.virtual:
            return
        import kubernetes_validate

        doc = copy.deepcopy(body)
        doc.setdefault("apiVersion", rt.group_version)
        doc.setdefault("kind", rt.kind)
        doc.setdefault("metadata", {}).setdefault("name", "x")
        try:
            kubernetes_validate.validate(doc, self.k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise ApiError(
                422,
                "Invalid",
                f'{rt.kind} "{doc["metadata"]["name"]}" is invalid: {path}: {exc.message}',
            ) from None
        except kubernetes_validate.SchemaNotFoundError:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({rt.group_version}, {rt.kind})",
            ) from None

    def _to_storage(self, rt: ResourceType, obj: Obj) -> Obj:
        if rt.kind == "HorizontalPodAutoscaler" and rt.version == "v1":
            obj = hpa_v1_to_v2(obj)
        if rt.kind == "HorizontalPodAutoscaler":
            obj["apiVersion"] = "autoscaling/v2"
        return obj

    def _default(self, rt: ResourceType, obj: Obj) -> None:
        if rt.kind in ("ConfigMap", "Event"):  # kinds without a status upstream
            obj.pop("status", None)
            return
        obj.setdefault("status", {})
        if rt.kind == "Deployment":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
            )
            default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
        elif rt.kind == "Service":
            self._default_service(obj)
        elif rt.kind == "HorizontalPodAutoscaler":
            obj.setdefault("spec", {}).setdefault("minReplicas", 1)
            obj["status"].setdefault("currentReplicas", 0)
            obj["status"].setdefault("desiredReplicas", 0)
        elif rt.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ]["name"]

    def _default_service(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if "clusterIP" not in spec:
            ip = str(ipaddress.ip_address("10.233.0.0") + self._next_ip)
            self._next_ip += 1
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        external = spec["type"] in ("NodePort", "LoadBalancer")
        if external:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if spec["type"] == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
            obj.setdefault("status", {}).setdefault("loadBalancer", {})
        taken = self._node_ports_in_use(exclude=obj)
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if external and "nodePort" not in port:
                port["nodePort"] = next(p for p in NODE_PORTS if p not in taken)
                taken.add(port["nodePort"])

    def _node_ports_in_use(self, exclude: Obj) -> set[int]:
        me = (exclude["metadata"].get("namespace"), exclude["metadata"]["name"])
        used = set()
        for svc in self.store.items(by_kind("Service")):
            if (svc["metadata"].get("namespace"), svc["metadata"]["name"]) == me:
                continue
            used |= {p["nodePort"] for p in svc["spec"].get("ports") or [] if "nodePort" in p}
        return used

    def _invariants(self, rt: ResourceType, old: Obj | None, new: Obj) -> None:
        name = new["metadata"]["name"]
        if rt.kind == "Deployment":
            sel = new["spec"].get("selector", {}).get("matchLabels", {})
            labels = new["spec"].get("template", {}).get("metadata", {}).get("labels", {})
            if not sel or not match_labels(labels, sel):
                raise ApiError(
                    422,
                    "Invalid",
                    f'Deployment.apps "{name}" is invalid: '
                    "spec.template.metadata.labels: Invalid value: "
                    f"{json.dumps(labels)}: `selector` does not match template "
                    "`labels`",
                )
            if old is not None and old["spec"].get("selector") != new["spec"].get("selector"):
                raise ApiError(
                    422,
                    "Invalid",
                    f'Deployment.apps "{name}" is invalid: '
                    "spec.selector: Invalid value: "
                    f"{json.dumps(new['spec'].get('selector'))}: field is immutable",
                )
        if rt.kind == "Service":
            spec = new["spec"]
            taken = self._node_ports_in_use(exclude=new)
            for i, port in enumerate(spec.get("ports") or []):
                np = port.get("nodePort")
                if np is None:
                    continue
                if spec["type"] == "ClusterIP":
                    raise ApiError(
                        422,
                        "Invalid",
                        f'Service "{name}" is invalid: spec.ports[{i}]'
                        f".nodePort: Forbidden: may not be used when `type` is "
                        "'ClusterIP'",
                    )
                if np not in NODE_PORTS:
                    raise ApiError(
                        422,
                        "Invalid",
                        f'Service "{name}" is invalid: spec.ports[{i}]'
                        f".nodePort: Invalid value: {np}: provided port is not in the "
                        "valid range. The range of valid ports is 30000-32767",
                    )
                if np in taken:
                    raise ApiError(
                        422,
                        "Invalid",
                        f'Service "{name}" is invalid: spec.ports[{i}]'
                        f".nodePort: Invalid value: {np}: provided port is already "
                        "allocated",
                    )


def _rt_of_key(key: tuple[str, str, str, str]) -> ResourceType:
    from .resources import PREFERRED, RESOURCES

    group, plural = key[0], key[1]
    for r in RESOURCES:
        if (
            (r.group, r.plural) == (group, plural)
            and PREFERRED[group] == r.version
            and not r.virtual
        ):
            return r
    raise KeyError(key)


rt_of_key = _rt_of_key


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in spec.get("containers") or []:
        image = c.get("image", "")
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        for port in c.get("ports") or []:
            port.setdefault("protocol", "TCP")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            p = c.get(probe)
            if p is None:
                continue
            p.setdefault("timeoutSeconds", 1)
            p.setdefault("periodSeconds", 10)
            p.setdefault("successThreshold", 1)
            p.setdefault("failureThreshold", 3)
            if "httpGet" in p:
                p["httpGet"].setdefault("scheme", "HTTP")


# --------------------------------------------------------------------------- HPA versions


def hpa_v1_to_v2(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    if "targetCPUUtilizationPercentage" in spec:
        target = spec.pop("targetCPUUtilizationPercentage")
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target},
                },
            }
        ]
    status = obj.get("status") or {}
    if "currentCPUUtilizationPercentage" in status:
        cur = status.pop("currentCPUUtilizationPercentage")
        status["currentMetrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": cur}},
            }
        ]
    obj["apiVersion"] = "autoscaling/v2"
    return obj


def hpa_v2_to_v1(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    metrics = spec.pop("metrics", None) or []
    spec.pop("behavior", None)
    for m in metrics:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            spec["targetCPUUtilizationPercentage"] = res["target"].get("averageUtilization")
    status = obj.get("status") or {}
    current = status.pop("currentMetrics", None) or []
    status.pop("conditions", None)
    for m in current:
        res = m.get("resource") or {}
        if res.get("name") == "cpu" and "averageUtilization" in res.get("current", {}):
            status["currentCPUUtilizationPercentage"] = res["current"]["averageUtilization"]
    # managedFields recorded against v2 paths are shown unchanged, as a real server does.
    return obj


# --------------------------------------------------------------------------- patch formats


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def json_patch(doc: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902: add, remove, replace, test (enough for scale and label edits)."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(idx, op["value"])
            elif kind == "remove":
                parent.pop(idx)
            elif kind == "replace":
                parent[idx] = op["value"]
            elif kind == "test" and parent[idx] != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        else:
            if kind in ("add", "replace"):
                parent[last] = op["value"]
            elif kind == "remove":
                parent.pop(last, None)
            elif kind == "test" and parent.get(last) != op["value"]:
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
    return doc
