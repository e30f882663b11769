"""Field ownership and server-side apply, at the level ggctl needs.

A field path is a tuple of FieldsV1 elements: `f:<key>` for a map key and `k:{...}` for an
item of an associative list (containers by name, env by name, ports by port number ...). The
item itself is owned through the path ending in `.`. Lists without a merge key are atomic.

Apply by manager M with configuration C (what Kubernetes does, simplified):
  1. a field of C that another manager owns with a different live value is a conflict
     (409) unless `force`; with force M takes it over;
  2. fields M applied last time, that C no longer has and nobody else owns, are removed;
  3. C is merged into the live object (maps recursively, associative lists by key);
  4. M now owns exactly the fields of C.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Path = tuple[str, ...]
ITEM = "."
_ITEM_VALUE = object()

#: associative lists: field name → alternative key sets (the first whose leading field the
#: item has); every field of the set is part of the key, as the x-kubernetes-list-map-keys
#: of the Kubernetes OpenAPI (api/openapi-spec/v3: Container.ports containerPort+protocol,
#: ServiceSpec.ports port+protocol, PodSpec.containers name, ...)
LIST_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "containers": (("name",),),
    "initContainers": (("name",),),
    "ephemeralContainers": (("name",),),
    "env": (("name",),),
    "volumes": (("name",),),
    "volumeMounts": (("mountPath",),),
    "volumeDevices": (("devicePath",),),
    "imagePullSecrets": (("name",),),
    "hostAliases": (("ip",),),
    "topologySpreadConstraints": (("topologyKey", "whenUnsatisfiable"),),
    "ports": (("containerPort", "protocol"), ("port", "protocol")),
    "ownerReferences": (("uid",),),
}
#: key fields with a default in the schema: an item without them is keyed by the default
KEY_DEFAULTS = {"protocol": "TCP"}
#: metadata fields that belong to the user (the rest is the server's)
TRACKED_METADATA = ("labels", "annotations")


def _item_key(field: str, item: Any) -> str | None:
    alternatives = LIST_KEYS.get(field)
    if not alternatives or not isinstance(item, dict):
        return None
    for keys in alternatives:
        if keys[0] not in item:
            continue
        key = {}
        for k in keys:
            value = item.get(k, KEY_DEFAULTS.get(k))
            if value is None:
                return None
            key[k] = value
        return "k:" + json.dumps(dict(sorted(key.items())), separators=(",", ":"))
    return None


def _is_keyed(field: str, value: Any) -> bool:
    return (
        isinstance(value, list)
        and field in LIST_KEYS
        and all(_item_key(field, it) is not None for it in value)
    )


def flatten(obj: dict[str, Any], *, top: bool = True) -> dict[Path, Any]:
    """Every owned field of `obj` (top: the whole object, so metadata/status are filtered)."""
    out: dict[Path, Any] = {}
    if top:
        body = {
            k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status", "metadata")
        }
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k in TRACKED_METADATA}
        if meta:
            body["metadata"] = meta
        obj = body
    _flatten(obj, (), out)
    return out


def _flatten(value: Any, prefix: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            p = (*prefix, f"f:{k}")
            if _is_keyed(k, v):
                for item in v:
                    ip = (*p, _item_key(k, item))
                    out[(*ip, ITEM)] = _ITEM_VALUE
                    _flatten(item, ip, out)
            else:
                _flatten(v, p, out)
    elif prefix:
        out[prefix] = value


# --------------------------------------------------------------------------- managedFields


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for p in sorted(paths):
        node = tree
        for part in p:
            node = node.setdefault(part, {})
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for part, sub in tree.items():
        p = (*prefix, part)
        if sub:
            out |= from_fields_v1(sub, p)
        else:
            out.add(p)
    return out


Owner = tuple[str, str, str]  # manager, operation, subresource ("" for the main resource)


def owners(obj: dict[str, Any]) -> dict[Owner, set[Path]]:
    """(manager, operation, subresource) → owned paths, from metadata.managedFields."""
    out: dict[Owner, set[Path]] = {}
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        key = (entry["manager"], entry["operation"], entry.get("subresource") or "")
        out.setdefault(key, set()).update(from_fields_v1(entry.get("fieldsV1") or {}))
    return out


def _write_owners(
    obj: dict[str, Any],
    table: dict[Owner, set[Path]],
    touched: Owner,
    api_version: str,
    stamp: str,
) -> None:
    """Store `table` as managedFields; an unchanged entry keeps its time (no-op: no write)."""
    old = {
        (e["manager"], e["operation"], e.get("subresource") or ""): e
        for e in obj["metadata"].get("managedFields") or []
    }
    entries = []
    for (manager, op, sub), paths in table.items():
        if not paths:
            continue
        prev = old.get((manager, op, sub))
        fields_v1 = to_fields_v1(paths)
        version = (
            api_version
            if (manager, op, sub) == touched
            else (prev["apiVersion"] if prev else api_version)
        )
        if prev and prev.get("fieldsV1") == fields_v1 and prev.get("apiVersion") == version:
            entries.append(prev)
            continue
        entry = {
            "manager": manager,
            "operation": op,
            "apiVersion": version,
            "time": stamp,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1,
        }
        if sub:
            entry["subresource"] = sub
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def api_version_of(obj: dict[str, Any]) -> str:
    return obj.get("apiVersion", "v1")


# --------------------------------------------------------------------------- edits


def _get_child(node: Any, part: str) -> Any:
    if part.startswith("f:"):
        return node.get(part[2:]) if isinstance(node, dict) else None
    if part.startswith("k:") and isinstance(node, list):
        want = json.loads(part[2:])
        for item in node:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                return item
    return None


def delete_path(obj: dict[str, Any], path: Path) -> None:
    """Remove the field at `path` (a whole list item for a path ending in ITEM)."""
    if path and path[-1] == ITEM:
        parent_path, item_part = path[:-2], path[-2]
        lst = _navigate(obj, parent_path)
        if isinstance(lst, list):
            item = _get_child(lst, item_part)
            if item is not None:
                lst.remove(item)
        return
    parent = _navigate(obj, path[:-1])
    if isinstance(parent, dict) and path[-1].startswith("f:"):
        parent.pop(path[-1][2:], None)


def _navigate(obj: Any, path: Path) -> Any:
    node = obj
    for part in path:
        node = _get_child(node, part)
        if node is None:
            return None
    return node


def merge(live: Any, config: Any, field: str = "") -> Any:
    """`config` merged into `live`: maps recursively, associative lists item by item."""
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for k, v in config.items():
            out[k] = merge(live[k], v, k) if k in live else copy.deepcopy(v)
        return out
    if _is_keyed(field, config) and _is_keyed(field, live):
        by_key = {_item_key(field, it): it for it in live}
        out_list = []
        for item in config:
            key = _item_key(field, item)
            out_list.append(merge(by_key.pop(key), item) if key in by_key else copy.deepcopy(item))
        out_list.extend(copy.deepcopy(it) for it in live if _item_key(field, it) in by_key)
        return out_list
    return copy.deepcopy(config)


class Conflict(Exception):
    def __init__(self, conflicts: list[tuple[str, Path]]):
        self.conflicts = conflicts
        lines = [f'conflict with "{m}": {_dotted(p)}' for m, p in conflicts]
        super().__init__(
            f"Apply failed with {len(conflicts)} conflict"
            f"{'s' if len(conflicts) > 1 else ''}: " + "; ".join(lines)
        )


def _dotted(path: Path) -> str:
    return "".join("." + p[2:] if p.startswith("f:") else f"[{p[2:]}]" for p in path if p != ITEM)


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    *,
    force: bool,
    api_version: str,
    stamp: str,
) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live` (None: a new object)."""
    cfg_flat = flatten(config)
    cfg_paths = set(cfg_flat)
    if live is None:
        obj = copy.deepcopy(config)
        obj.setdefault("metadata", {})
        me: Owner = (manager, "Apply", "")
        _write_owners(obj, {me: cfg_paths}, me, api_version, stamp)
        return obj
    table = owners(live)
    live_flat = flatten(live)
    conflicts: list[tuple[str, Path]] = []
    me = (manager, "Apply", "")
    for (m, op, sub), paths in table.items():
        if (m, op, sub) == me:
            continue
        for p in sorted(paths & cfg_paths):
            if p[-1] != ITEM and live_flat.get(p) != cfg_flat[p]:
                conflicts.append((m, p))
    if conflicts and not force:
        raise Conflict(conflicts)
    for m, p in conflicts:
        for (mm, _op, _sub), paths in table.items():
            if mm == m:
                paths.discard(p)
    previous = table.get(me, set())
    others: set[Path] = set().union(*(p for k, p in table.items() if k != me))
    obj = copy.deepcopy(live)
    for p in sorted(previous - cfg_paths - others, key=len, reverse=True):
        if p[-1] == ITEM and any(o[: len(p) - 1] == p[:-1] for o in others):
            continue  # someone else still owns a field of this item
        delete_path(obj, p)
    body = {k: v for k, v in config.items() if k not in ("apiVersion", "kind")}
    obj = merge(obj, body)
    obj["apiVersion"] = config.get("apiVersion", live.get("apiVersion"))
    obj["kind"] = config.get("kind", live.get("kind"))
    table[me] = cfg_paths
    _write_owners(obj, table, me, api_version, stamp)
    return obj


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> set[Path]:
    a, b = flatten(old), flatten(new)
    return {p for p, v in b.items() if p not in a or (a[p] != v and p[-1] != ITEM)}


def take_ownership(
    obj: dict[str, Any],
    manager: str,
    paths: set[Path],
    *,
    operation: str,
    api_version: str,
    stamp: str,
    subresource: str = "",
) -> None:
    table = owners(obj)
    me = (manager, operation, subresource)
    for key, owned in table.items():
        if key != me:
            owned.difference_update(paths)
    table.setdefault(me, set()).update(paths)
    _write_owners(obj, table, me, api_version, stamp)
