"""/openapi/v2 and /openapi/v3 of the served Kubernetes version, generated from upstream's
own schemas rather than written by hand.

Source: the `kubernetes-validate` package (a test dependency) bundles, per Kubernetes
release, `_definitions.json`: every definition of upstream's api/openapi-spec/swagger.json
turned into JSON Schema by openapi2jsonschema (descriptions, required fields and the
x-kubernetes-* extensions kept; every type made nullable; `$ref`s moved under `$defs`).
Here that is turned back: nullability removed, refs pointed at `#/definitions/` (v2) or
`#/components/schemas/` (v3), IntOrString and Quantity restored to strings with upstream's
formats. The paths are built for the resources this fake serves, with the operation
extensions (x-kubernetes-action, x-kubernetes-group-version-kind) and the query parameters
(dryRun, fieldManager, fieldValidation, force ...) kube-apiserver documents, which is what
kubectl reads (cli-runtime resource/query_param_verifier_v3.go, explain, apply).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from importlib import resources as importlib_resources
from typing import Any

from .resources import RESOURCES, ResourceType

Obj = dict[str, Any]


@functools.cache
def _definitions(version: str) -> dict[str, Obj]:
    major, minor = version.lstrip("v").split(".")[:2]
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = root / f"v{major}.{minor}.0-local" / "_definitions.json"
    raw = json.loads(path.read_text())["$defs"]
    return {name: _restore(name, d) for name, d in raw.items()}


def _restore(name: str, schema: Any) -> Any:
    if name.endswith("intstr.IntOrString"):
        return {"type": "string", "format": "int-or-string"}
    if name.endswith("resource.Quantity"):
        return {"type": "string", "format": "quantity"}
    return _strip(schema)


def _strip(node: Any, prop: str | None = None) -> Any:
    if isinstance(node, list):
        return [_strip(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for k, v in node.items():
        if k == "type" and isinstance(v, list):
            kinds = [t for t in v if t != "null"]
            v = kinds[0] if len(kinds) == 1 else kinds
        elif k == "$ref":
            v = v.split("/")[-1]  # the bare name; _point() adds the prefix
        elif k == "enum" and prop in ("apiVersion", "kind") and len(v) == 1:
            continue  # openapi2jsonschema's addition, not upstream's
        elif k == "properties":
            v = {p: _strip(s, p) for p, s in v.items()}
            out[k] = v
            continue
        out[k] = _strip(v)
    return out


def _point(node: Any, prefix: str) -> Any:
    if isinstance(node, list):
        return [_point(v, prefix) for v in node]
    if not isinstance(node, dict):
        return node
    return {
        k: (prefix + v if k == "$ref" and isinstance(v, str) else _point(v, prefix))
        for k, v in node.items()
    }


def _refs(node: Any, into: set[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                into.add(v.split("/")[-1])
            else:
                _refs(v, into)
    elif isinstance(node, list):
        for v in node:
            _refs(v, into)


def definition_of(version: str, group: str, ver: str, kind: str) -> str | None:
    for name, d in _definitions(version).items():
        for gvk in d.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (group, ver, kind):
                return name
    return None


_META = "io.k8s.apimachinery.pkg.apis.meta.v1."


def _param(name: str, where: str, desc: str, typ: str = "string", v3: bool = False) -> Obj:
    p: Obj = {"name": name, "in": where, "description": desc, "uniqueItems": True}
    if where == "path":
        p["required"] = True
    if v3:
        p["schema"] = {"type": typ, "uniqueItems": True}
    else:
        p["type"] = typ
    return p


_WRITE_PARAMS = {
    "dryRun": "When present, indicates that modifications should not be persisted. Valid "
    "values are: - All: all dry run stages will be processed",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is "
    "making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the "
    "request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
}
_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_INT_PARAMS = {"limit", "timeoutSeconds", "gracePeriodSeconds"}
_BOOL_PARAMS = {"allowWatchBookmarks", "watch", "force", "sendInitialEvents"}


def _typ(name: str) -> str:
    return "integer" if name in _INT_PARAMS else "boolean" if name in _BOOL_PARAMS else "string"


def _op(
    rt: ResourceType,
    action: str,
    verb: str,
    params: list[str],
    ref: str | None,
    v3: bool,
    body: bool = False,
    kind: str | None = None,
) -> Obj:
    gvk = {"group": rt.group, "version": rt.version, "kind": kind or rt.kind}
    op: Obj = {
        "description": f"{verb} {kind or rt.kind}",
        "operationId": f"{verb}{rt.kind}",
        "tags": [rt.group_version.replace("/", "_").replace(".", "")],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [_param(p, "query", _WRITE_PARAMS.get(p, p), _typ(p), v3) for p in params],
    }
    ok = {"description": "OK"}
    if ref:
        if v3:
            ok["content"] = {
                t: {"schema": {"$ref": f"#/components/schemas/{ref}"}}
                for t in ("application/json", "application/yaml")
            }
        else:
            ok["schema"] = {"$ref": f"#/definitions/{ref}"}
    op["responses"] = {"200": ok, "401": {"description": "Unauthorized"}}
    if body:
        body_ref = _META + "Patch" if action == "patch" else ref
        if v3:
            types = (
                [
                    "application/apply-patch+yaml",
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ]
                if action == "patch"
                else ["*/*"]
            )
            op["requestBody"] = {
                "content": {
                    t: {"schema": {"$ref": f"#/components/schemas/{body_ref}"}} for t in types
                },
                "required": True,
            }
        else:
            op["parameters"].append(
                {
                    "name": "body",
                    "in": "body",
                    "required": True,
                    "schema": {"$ref": f"#/definitions/{body_ref}"},
                }
            )
    return op


def _paths(version: str, rts: list[ResourceType], v3: bool) -> Obj:
    paths: Obj = {}
    for rt in rts:
        if rt.virtual:
            continue
        ref = definition_of(version, rt.group, rt.version, rt.kind)
        lref = definition_of(version, rt.group, rt.version, rt.kind + "List")
        base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
        coll = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else f"{base}/{rt.plural}"
        )
        common = [_param("pretty", "query", "pretty-print the output", v3=v3)]
        if rt.namespaced:
            common.append(_param("namespace", "path", "object name and auth scope", v3=v3))
        write = ["dryRun", "fieldManager", "fieldValidation"]
        paths[coll] = {
            "parameters": common,
            "get": _op(rt, "list", "list", list(_LIST_PARAMS), lref, v3),
            "post": _op(rt, "post", "create", write, ref, v3, body=True),
            "delete": _op(
                rt,
                "deletecollection",
                "deletecollection",
                [
                    "dryRun",
                    "gracePeriodSeconds",
                    "labelSelector",
                    "fieldSelector",
                    "propagationPolicy",
                ],
                _META + "Status",
                v3,
            ),
        }
        item_params = [*common, _param("name", "path", f"name of the {rt.kind}", v3=v3)]
        item = {
            "parameters": item_params,
            "get": _op(rt, "get", "read", [], ref, v3),
            "put": _op(rt, "put", "replace", write, ref, v3, body=True),
            "patch": _op(rt, "patch", "patch", [*write, "force"], ref, v3, body=True),
            "delete": _op(
                rt,
                "delete",
                "delete",
                ["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                _META + "Status",
                v3,
            ),
        }
        paths[f"{coll}/{{name}}"] = item
        for sub in rt.subresources:
            if sub == "log":
                paths[f"{coll}/{{name}}/log"] = {
                    "parameters": item_params,
                    "get": _op(rt, "get", "read log", ["container", "tailLines"], None, v3),
                }
                continue
            sref = "io.k8s.api.autoscaling.v1.Scale" if sub == "scale" else ref
            skind = "Scale" if sub == "scale" else None
            paths[f"{coll}/{{name}}/{sub}"] = {
                "parameters": item_params,
                "get": _op(rt, "get", f"read {sub} of", [], sref, v3, kind=skind),
                "put": _op(rt, "put", f"replace {sub} of", write, sref, v3, body=True, kind=skind),
                "patch": _op(
                    rt,
                    "patch",
                    f"patch {sub} of",
                    [*write, "force"],
                    sref,
                    v3,
                    body=True,
                    kind=skind,
                ),
            }
    return paths


def _closure(version: str, names: set[str]) -> set[str]:
    defs = _definitions(version)
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(defs[name], found)
        todo.extend(found - seen)
    return seen


def _info(version: str) -> Obj:
    return {"title": "Kubernetes", "version": version}


@functools.cache
def v2(version: str) -> bytes:
    """The whole swagger 2.0 document (/openapi/v2), as JSON bytes."""
    defs = _definitions(version)
    doc = {
        "swagger": "2.0",
        "info": _info(version),
        "paths": _paths(version, list(RESOURCES), v3=False),
        "definitions": {n: _point(d, "#/definitions/") for n, d in defs.items()},
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
        },
        "security": [{"BearerToken": []}],
    }
    return json.dumps(doc).encode()


def gv_path(rt: ResourceType) -> str:
    return f"api/{rt.version}" if not rt.group else f"apis/{rt.group}/{rt.version}"


@functools.cache
def v3(version: str, path: str) -> bytes | None:
    """The OpenAPI 3.0 document of one group-version (/openapi/v3/apis/apps/v1)."""
    rts = [r for r in RESOURCES if gv_path(r) == path and not r.virtual]
    if not rts:
        return None
    paths = _paths(version, rts, v3=True)
    used: set[str] = {
        _META + n for n in ("Status", "DeleteOptions", "Patch", "WatchEvent", "APIResourceList")
    }
    _refs(paths, used)
    schemas = {
        n: _point(copy.deepcopy(_definitions(version)[n]), "#/components/schemas/")
        for n in sorted(_closure(version, used))
    }
    doc = {
        "openapi": "3.0.0",
        "info": _info(version),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
            },
        },
    }
    return json.dumps(doc).encode()


@functools.cache
def v3_index(version: str) -> bytes:
    """/openapi/v3: one entry per served group-version, with the hash clients cache by."""
    out = {}
    for path in sorted({gv_path(r) for r in RESOURCES if not r.virtual}):
        body = v3(version, path) or b""
        digest = hashlib.sha512(body).hexdigest()[:128].upper()
        out[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return json.dumps({"paths": out}).encode()
