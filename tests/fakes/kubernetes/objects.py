"""The REST verbs on stored objects: get, list, create, replace, patch (server-side apply,
merge, strategic merge, JSON patch), delete with propagation policy, and the scale
subresource. Defaults, validation and the invariants that matter to ggctl live here too."""

from __future__ import annotations

import contextvars
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
# The fieldValidation of the write being served (Strict, Warn -- upstream's default -- or
# Ignore) and the warnings it collects for the `Warning` response header; the server sets
# both per request (each request runs in its own thread).
FIELD_VALIDATION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "field_validation", default="Warn"
)
WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "warnings", default=None
)


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
            self._check_namespace(rt, meta.get("namespace"), meta["name"])
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
            for k in ("namespace", "uid", "creationTimestamp", "managedFields", "ownerReferences"):
                if k in live["metadata"] and k not in new["metadata"]:
                    new["metadata"][k] = live["metadata"][k]
            # set by the server only; finalizers are as the client sends them
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                new["metadata"].pop(k, None)
                if k in live["metadata"]:
                    new["metadata"][k] = live["metadata"][k]
            new["metadata"]["name"] = name
            new.setdefault("status", live.get("status", {}))
            drop_type_dependent_fields(rt, live, new)
            self._default(rt, new)
            self._invariants(rt, live, new)
            obj, _ = self.store.replace(
                rt, new, manager=manager or "unknown", api_version=rt.group_version
            )
            self.finish_deletion(rt, obj)
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
        self._validate(rt, config, apply=True)
        config = self._to_storage(rt, copy.deepcopy(config))
        with self.store.lock:
            live = self.store.get(rt, ns, name)
            if live is None:
                self._check_namespace(rt, ns, name)
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
            drop_type_dependent_fields(rt, live, new)
            self._default(rt, new)
            self._invariants(rt, live, new)
            if live is None:
                return 201, self.present(rt, self.store.insert(rt, new))
            obj, _ = self.store.replace(rt, new, operation="Apply")
            self.finish_deletion(rt, obj)
            return 200, self.present(rt, obj)

    # ------------------------------------------------------------------ delete
    def delete(
        self,
        rt: ResourceType,
        ns: str | None,
        name: str,
        policy: str | None,
        grace: int | None,
        orphan_dependents: bool | None = None,
    ) -> tuple[int, Obj]:
        """registry/generic/registry/store.go Delete + handlers/delete.go: (HTTP code, body).

        An object with finalizers (or a Foreground/Orphan propagation, which add one, or a
        namespace, or a running pod) only gets a deletionTimestamp and stays until its
        finalizers are gone; 202 is answered only then and only for orphanDependents=false,
        200 otherwise, as upstream."""
        if policy is not None and orphan_dependents is not None:
            raise ApiError(
                422,
                "Invalid",
                "DeleteOptions.meta.k8s.io is invalid: propagationPolicy: Invalid value: "
                f'"{policy}": orphanDependents and deletionPropagation cannot be both set',
            )
        if orphan_dependents is not None:
            policy = "Orphan" if orphan_dependents else "Foreground"
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise ApiError(
                422,
                "Invalid",
                "DeleteOptions.meta.k8s.io is invalid: propagationPolicy: Unsupported value: "
                f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
            )
        accepted = 202 if orphan_dependents is False else 200
        with self.store.lock:
            obj = self.store.require(rt, ns, name)
            meta = obj["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            if rt.kind == "Namespace":
                return 200, self.present(rt, self._terminate_namespace(obj, finalizers))
            if rt.kind == "Pod" and obj["spec"].get("nodeName") and grace != 0:
                # graceful: the kubelet stops the containers, then deletes with grace 0
                new = self.terminate_pod(obj, grace, finalizers)
                return accepted, self.present(rt, new)
            if finalizers:
                if meta.get("deletionTimestamp"):
                    if finalizers == (meta.get("finalizers") or []):
                        return 200, self.present(rt, obj)
                    new = copy.deepcopy(obj)
                    new["metadata"]["finalizers"] = finalizers
                    return accepted, self.present(rt, self.store.replace(rt, new)[0])
                new = copy.deepcopy(obj)
                new["metadata"]["deletionTimestamp"] = self.store.clock.stamp()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["finalizers"] = finalizers
                return accepted, self.present(rt, self.store.replace(rt, new)[0])
            # Background (the default for every kind the fake serves): gone now, the
            # garbage collector deletes the dependents
            return 200, self.present(rt, self.store.remove(rt, ns, name) or obj)

    def _terminate_namespace(self, ns_obj: Obj, finalizers: list[str]) -> Obj:
        """registry/core/namespace: the namespace goes Terminating; the namespace
        controller empties it and removes the `kubernetes` finalizer of spec.finalizers."""
        if ns_obj["metadata"].get("deletionTimestamp"):
            return ns_obj
        new = copy.deepcopy(ns_obj)
        new["metadata"]["deletionTimestamp"] = self.store.clock.stamp()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        new["status"]["phase"] = "Terminating"
        return self.store.replace(by_kind("Namespace"), new)[0]

    def terminate_pod(
        self, pod: Obj, grace: int | None, finalizers: list[str] | None = None
    ) -> Obj:
        """Graceful deletion: deletionTimestamp is when the grace period ends (now + grace),
        deletionGracePeriodSeconds the grace; a second delete may only shorten it."""
        g = grace if grace is not None else pod["spec"].get("terminationGracePeriodSeconds", 30)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and g >= meta.get("deletionGracePeriodSeconds", 0):
            return pod
        new = copy.deepcopy(pod)
        new["metadata"]["deletionTimestamp"] = self.store.clock.stamp(self.store.clock.now() + g)
        new["metadata"]["deletionGracePeriodSeconds"] = g
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        return self.store.replace(by_kind("Pod"), new)[0]

    def finish_deletion(self, rt: ResourceType, obj: Obj) -> bool:
        """Remove `obj` if it is being deleted with no finalizers left (the end of
        registry store Update/Delete for a deleting object). True if removed."""
        meta = obj["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
            and not (rt.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers"))
        ):
            self.store.remove(rt, meta.get("namespace"), meta["name"])
            return True
        return False

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
            self.store.replace(
                rt, new, manager=manager, api_version="autoscaling/v1", subresource="scale"
            )
            return self.get_scale(rt, ns, name)

    # ------------------------------------------------------------------ helpers
    def _check_namespace(self, rt: ResourceType, ns: str | None, name: str = "") -> None:
        if rt.namespaced and ns and not self.store.namespace_exists(ns):
            raise ApiError(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )
        namespace = self.store.get(by_kind("Namespace"), None, ns) if rt.namespaced and ns else None
        if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
            # plugin/pkg/admission/namespace/lifecycle
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise ApiError(
                403,
                "Forbidden",
                f'{what} "{name}" is forbidden: unable to create new content in namespace '
                f"{ns} because it is being terminated",
                {
                    "name": name,
                    "group": rt.group,
                    "kind": rt.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _validate(self, rt: ResourceType, body: Obj, apply: bool = False) -> None:
        """The official schema of the served version: invalid values are 422 Invalid;
        unknown fields are handled as the request's fieldValidation says (the strict
        decoder of apimachinery, endpoints/handlers: Strict -> 400 "strict decoding error",
        Warn -> a `Warning` header per field, Ignore -> dropped silently; dropped from the
        object in both of the latter, as the decoder does). A server-side apply body is
        converted to a typed object by structured-merge-diff, which refuses unknown fields
        whatever the mode: 500 "failed to create typed patch object ... field not declared
        in schema" (fieldmanager/internal/structuredmerge.go)."""
        if not self.validate_schemas or rt.virtual:
            return
        import kubernetes_validate

        doc = copy.deepcopy(body)
        doc.setdefault("apiVersion", rt.group_version)
        doc.setdefault("kind", rt.kind)
        doc.setdefault("metadata", {}).setdefault("name", "x")
        try:
            kubernetes_validate.validate(doc, self.k8s_version, strict=False)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            reason = "FieldValueRequired" if exc.validator == "required" else "FieldValueInvalid"
            raise invalid(rt, doc["metadata"]["name"], path, reason, exc.message) from None
        except kubernetes_validate.SchemaNotFoundError:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({rt.group_version}, {rt.kind})",
            ) from None
        unknown = self._drop_unknown_fields(doc, body)
        if not unknown:
            return
        if apply:
            meta = body.get("metadata") or {}
            errs = [f".{path}: field not declared in schema" for path in unknown]
            text = errs[0] if len(errs) == 1 else "errors:\n  " + "\n  ".join(errs)
            raise ApiError(
                500,
                "InternalError",
                "Internal error occurred: failed to create typed patch object "
                f"({meta.get('namespace', '')}/{meta.get('name', '')}; "
                f"{rt.group}/{rt.version}, Kind={rt.kind}): {text}",
            )
        texts = [f'unknown field "{path}"' for path in unknown]
        mode = FIELD_VALIDATION.get()
        if mode == "Strict":
            raise ApiError(
                400,
                "BadRequest",
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {', '.join(texts)}",
            )
        warnings = WARNINGS.get()
        if mode == "Warn" and warnings is not None:
            warnings.extend(texts)

    def _drop_unknown_fields(self, doc: Obj, body: Obj) -> list[str]:
        """Paths of the fields the schema does not declare (``spec.containers[0].x``, as
        the strict decoder names them), removed from ``doc`` and ``body``."""
        import kubernetes_validate

        found: list[str] = []
        for _ in range(1000):  # one unknown field or more per round; bounded
            try:
                kubernetes_validate.validate(doc, self.k8s_version, strict=True)
                return found
            except kubernetes_validate.ValidationError as exc:
                if exc.validator != "additionalProperties" or not isinstance(exc.instance, dict):
                    return found
                declared = set((exc.schema or {}).get("properties", {}))
                extra = [k for k in exc.instance if k not in declared]
                if not extra:
                    return found
                prefix = "".join(
                    f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path
                ).lstrip(".")
                for target in (doc, body):
                    node: Any = target
                    try:
                        for p in exc.path:
                            node = node[p]
                    except (KeyError, IndexError, TypeError):
                        continue
                    for key in extra:
                        node.pop(key, None)
                found += [f"{prefix}.{key}" if prefix else key for key in extra]
        return found

    def _to_storage(self, rt: ResourceType, obj: Obj) -> Obj:
        # the URL says what it is, whether or not the body does
        obj["apiVersion"], obj["kind"] = rt.group_version, rt.kind
        if rt.kind == "HorizontalPodAutoscaler" and rt.version == "v1":
            obj = hpa_v1_to_v2(obj)
        if rt.kind == "HorizontalPodAutoscaler":
            obj["apiVersion"] = "autoscaling/v2"
        return obj

    def _default(self, rt: ResourceType, obj: Obj) -> None:
        if "status" in rt.subresources:  # kinds without a status (ConfigMap ...) have none
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
            behavior = obj["spec"].get("behavior")
            if behavior is not None:  # v2 defaulting fills both directions
                behavior["scaleUp"] = hpa_rules(behavior.get("scaleUp"), up=True)
                behavior["scaleDown"] = hpa_rules(behavior.get("scaleDown"), up=False)
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
        obj.setdefault("status", {}).setdefault("loadBalancer", {})  # every type shows it
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
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(
                old["metadata"].get("finalizers") or []
            )
            if added:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{rt.kind} "{name}" is invalid: metadata.finalizers: Forbidden: '
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {json.dumps(sorted(added))}",
                    {
                        "name": name,
                        "kind": rt.plural,
                        "causes": [
                            {
                                "reason": "FieldValueForbidden",
                                "message": "Forbidden: no new finalizers can be added if the "
                                "object is being deleted",
                                "field": "metadata.finalizers",
                            }
                        ],
                    },
                )
        if rt.kind == "Deployment":
            sel = new["spec"].get("selector", {}).get("matchLabels", {})
            labels = new["spec"].get("template", {}).get("metadata", {}).get("labels", {})
            if not sel or not match_labels(labels, sel):
                raise invalid(
                    rt,
                    name,
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template "
                    "`labels`",
                )
            if old is not None and old["spec"].get("selector") != new["spec"].get("selector"):
                raise invalid(
                    rt,
                    name,
                    "spec.selector",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(new['spec'].get('selector'))}: field is immutable",
                )
        if rt.kind == "Service":
            spec = new["spec"]
            taken = self._node_ports_in_use(exclude=new)
            for i, port in enumerate(spec.get("ports") or []):
                np = port.get("nodePort")
                if np is None:
                    continue
                if spec["type"] == "ClusterIP":
                    raise invalid(
                        rt,
                        name,
                        f"spec.ports[{i}].nodePort",
                        "FieldValueForbidden",
                        "Forbidden: may not be used when `type` is 'ClusterIP'",
                    )
                if np not in NODE_PORTS:
                    raise invalid(
                        rt,
                        name,
                        f"spec.ports[{i}].nodePort",
                        "FieldValueInvalid",
                        f"Invalid value: {np}: provided port is not in the "
                        "valid range. The range of valid ports is 30000-32767",
                    )
                if np in taken:
                    raise invalid(
                        rt,
                        name,
                        f"spec.ports[{i}].nodePort",
                        "FieldValueInvalid",
                        f"Invalid value: {np}: provided port is already allocated",
                    )


def invalid(rt: ResourceType, name: str, field: str, reason: str, message: str) -> ApiError:
    """apimachinery errors.NewInvalid: 422 with the field errors in details.causes."""
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {field}: {message}',
        {
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [{"reason": reason, "message": message, "field": field}],
        },
    )


def drop_type_dependent_fields(rt: ResourceType, old: Obj | None, new: Obj) -> None:
    """pkg/registry/core/service/strategy.go dropTypeDependentFields: on an update to a
    type that no longer needs them, the fields the server may have filled in (and the
    client left as they were) go: node ports, allocateLoadBalancerNodePorts,
    externalTrafficPolicy, the load-balancer status."""
    if rt.kind != "Service" or old is None:
        return
    o, n = old.get("spec") or {}, new.get("spec") or {}
    otype, ntype = o.get("type", "ClusterIP"), n.get("type", "ClusterIP")
    external = ("NodePort", "LoadBalancer")
    if otype in external and ntype not in external:
        if [p.get("nodePort") for p in o.get("ports") or []] == [
            p.get("nodePort") for p in n.get("ports") or []
        ]:
            for p in n.get("ports") or []:
                p.pop("nodePort", None)
        if n.get("externalTrafficPolicy") == o.get("externalTrafficPolicy"):
            n.pop("externalTrafficPolicy", None)
    if otype == "LoadBalancer" and ntype != "LoadBalancer":
        if (
            "allocateLoadBalancerNodePorts" in n
            and "allocateLoadBalancerNodePorts" in o
            and n["allocateLoadBalancerNodePorts"] == o["allocateLoadBalancerNodePorts"]
        ):
            del n["allocateLoadBalancerNodePorts"]
        if n.get("loadBalancerClass") is not None and n.get("loadBalancerClass") == o.get(
            "loadBalancerClass"
        ):
            del n["loadBalancerClass"]
    if ntype != "LoadBalancer":
        new.setdefault("status", {})["loadBalancer"] = {}


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


#: where autoscaling/v1 keeps what only v2 can say (pkg/apis/autoscaling/v1/conversion.go)
HPA_METRICS = "autoscaling.alpha.kubernetes.io/metrics"
HPA_CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
HPA_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
HPA_BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"


def hpa_rules(rules: Obj | None, up: bool) -> Obj:
    """pkg/apis/autoscaling/v2/defaults.go GenerateHPAScaleUpRules / GenerateHPAScaleDownRules."""
    rules = copy.deepcopy(rules or {})
    if up:
        rules.setdefault("stabilizationWindowSeconds", 0)
        rules.setdefault(
            "policies",
            [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        )
    else:
        rules.setdefault("stabilizationWindowSeconds", 300)
        rules.setdefault("policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    rules.setdefault("selectPolicy", "Max")
    return rules


def _go_names(value: Any, upper: bool) -> Any:
    """The behavior annotation is the internal Go struct marshalled without json tags:
    field names start with a capital letter (ScaleUp, StabilizationWindowSeconds ...)."""
    if isinstance(value, dict):
        return {
            (k[:1].upper() if upper else k[:1].lower()) + k[1:]: _go_names(v, upper)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_go_names(v, upper) for v in value]
    return value


def _v1_metric_spec(m: Obj) -> Obj:
    res = m.get("resource") or {}
    target = res.get("target") or {}
    out: Obj = {"name": res.get("name")}
    if "averageUtilization" in target:
        out["targetAverageUtilization"] = target["averageUtilization"]
    if "averageValue" in target:
        out["targetAverageValue"] = target["averageValue"]
    return {"type": m.get("type"), "resource": out}


def _v2_metric_spec(m: Obj) -> Obj:
    res = m.get("resource") or {}
    if "targetAverageUtilization" in res:
        target = {"type": "Utilization", "averageUtilization": res["targetAverageUtilization"]}
    else:
        target = {"type": "AverageValue", "averageValue": res.get("targetAverageValue")}
    return {"type": m.get("type"), "resource": {"name": res.get("name"), "target": target}}


def _v1_metric_status(m: Obj) -> Obj:
    res = m.get("resource") or {}
    cur = res.get("current") or {}
    out: Obj = {"name": res.get("name")}
    if "averageUtilization" in cur:
        out["currentAverageUtilization"] = cur["averageUtilization"]
    if "averageValue" in cur:
        out["currentAverageValue"] = cur["averageValue"]
    return {"type": m.get("type"), "resource": out} if m.get("type") else {"type": ""}


def _v2_metric_status(m: Obj) -> Obj:
    res = m.get("resource") or {}
    cur: Obj = {}
    if "currentAverageUtilization" in res:
        cur["averageUtilization"] = res["currentAverageUtilization"]
    if "currentAverageValue" in res:
        cur["averageValue"] = res["currentAverageValue"]
    if not m.get("type"):
        return {"type": ""}
    return {"type": m.get("type"), "resource": {"name": res.get("name"), "current": cur}}


def hpa_v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HPA as stored (v2): the annotations become fields again."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.setdefault("metadata", {})
    notes = dict(meta.get("annotations") or {})
    metrics: list[Obj] = []
    if "targetCPUUtilizationPercentage" in spec:
        target = spec.pop("targetCPUUtilizationPercentage")
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": target},
                },
            }
        )
    if HPA_METRICS in notes:
        metrics += [_v2_metric_spec(m) for m in json.loads(notes.pop(HPA_METRICS))]
    if metrics:
        spec["metrics"] = metrics
    if HPA_BEHAVIOR in notes:
        spec["behavior"] = _go_names(json.loads(notes.pop(HPA_BEHAVIOR)), upper=False)
    cur = status.pop("currentCPUUtilizationPercentage", None)
    if HPA_CURRENT_METRICS in notes:
        status["currentMetrics"] = [
            _v2_metric_status(m) for m in json.loads(notes.pop(HPA_CURRENT_METRICS))
        ]
    elif cur is not None:
        status["currentMetrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": cur}},
            }
        ]
    if HPA_CONDITIONS in notes:
        status["conditions"] = json.loads(notes.pop(HPA_CONDITIONS))
    if notes:
        meta["annotations"] = notes
    else:
        meta.pop("annotations", None)
    obj["apiVersion"] = "autoscaling/v2"
    return obj


def hpa_v2_to_v1(obj: Obj) -> Obj:
    """The stored (v2) HPA as autoscaling/v1 shows it: cpu utilization in the v1 fields,
    everything else in the annotations upstream uses."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    notes: Obj = {}
    others = []
    for m in spec.pop("metrics", None) or []:
        res = m.get("resource") or {}
        target = res.get("target") or {}
        if (
            m.get("type") == "Resource"
            and res.get("name") == "cpu"
            and "averageUtilization" in target
        ):
            spec["targetCPUUtilizationPercentage"] = target["averageUtilization"]
            continue
        others.append(_v1_metric_spec(m))
    if others:
        notes[HPA_METRICS] = json.dumps(others, separators=(",", ":"))
    behavior = spec.pop("behavior", None)
    if behavior is not None:
        notes[HPA_BEHAVIOR] = json.dumps(_go_names(behavior, upper=True), separators=(",", ":"))
    current = status.pop("currentMetrics", None) or []
    if current:
        notes[HPA_CURRENT_METRICS] = json.dumps(
            [_v1_metric_status(m) for m in current], separators=(",", ":")
        )
    for m in current:
        res = m.get("resource") or {}
        if res.get("name") == "cpu" and "averageUtilization" in res.get("current", {}):
            status["currentCPUUtilizationPercentage"] = res["current"]["averageUtilization"]
    conditions = status.pop("conditions", None)
    if conditions:
        notes[HPA_CONDITIONS] = json.dumps(conditions, separators=(",", ":"))
    if notes:
        obj["metadata"]["annotations"] = {**(obj["metadata"].get("annotations") or {}), **notes}
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
