"""In-memory object store: one dict per object, a global resourceVersion, a cluster clock,
label and field selectors, ownership (managedFields) bookkeeping and Kubernetes Events."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from . import fields
from .resources import ResourceType, by_kind

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name


class ApiError(Exception):
    """Answered as a Kubernetes `Status` with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    return ApiError(
        404,
        "NotFound",
        f'{what} "{name}" not found',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


class Clock:
    """Cluster time: runs `speed` times faster than the wall clock (probe delays, back-offs,
    HPA sync periods are all in cluster seconds)."""

    def __init__(self, speed: float = 1.0):
        self.speed = speed
        self._t0 = time.monotonic()
        self._wall0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.offset = 0.0  # cluster seconds added by advance()

    def now(self) -> float:
        """Cluster seconds since the fake started."""
        return (time.monotonic() - self._t0) * self.speed + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def seconds(self, stamp: str) -> float:
        """The cluster time of a stamp() (to the second)."""
        when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        return (when - self._wall0).total_seconds()

    def stamp(self, at: float | None = None) -> str:
        t = self.now() if at is None else at
        return (self._wall0 + dt.timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- selectors


def parse_label_selector(text: str | None) -> list[tuple[str, str, set[str]]]:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k` → [(key, op, values)]."""
    if not text:
        return []
    reqs: list[tuple[str, str, set[str]]] = []
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for part in (p.strip() for p in parts if p.strip()):
        if " notin " in part or " in " in part:
            op = "notin" if " notin " in part else "in"
            key, _, rest = part.partition(f" {op} ")
            values = {v.strip() for v in rest.strip().strip("()").split(",") if v.strip()}
            reqs.append((key.strip(), op, values))
        elif "!=" in part:
            key, _, value = part.partition("!=")
            reqs.append((key.strip(), "!=", {value.strip()}))
        elif "==" in part or "=" in part:
            key, _, value = part.partition("==" if "==" in part else "=")
            reqs.append((key.strip(), "=", {value.strip()}))
        elif part.startswith("!"):
            reqs.append((part[1:].strip(), "!exists", set()))
        else:
            reqs.append((part, "exists", set()))
    return reqs


def labels_match(labels: dict[str, str], reqs: list[tuple[str, str, set[str]]]) -> bool:
    for key, op, values in reqs:
        have = labels.get(key)
        ok = {
            "=": have in values,
            "in": have in values,
            "!=": have not in values,
            "notin": have not in values,
            "exists": key in labels,
            "!exists": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def match_labels(labels: dict[str, str], match: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def field_value(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def fields_match(obj: Obj, selector: str | None) -> bool:
    if not selector:
        return True
    for part in selector.split(","):
        neg = "!=" in part
        path, _, value = part.partition("!=" if neg else ("==" if "==" in part else "="))
        have = field_value(obj, path.strip())
        have = "" if have is None else str(have)
        if (have == value.strip()) == neg:
            return False
    return True


# --------------------------------------------------------------------------- the store


class Store:
    """All objects, guarded by one re-entrant lock (`with store.lock:`)."""

    def __init__(self, clock: Clock | None = None):
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self.objects: dict[Key, Obj] = {}
        self._rv = 1000
        #: (method, path, query, content_type, body) of every request, in order
        self.requests: list[tuple[str, str, str, str, bytes]] = []
        self.listeners: list[Callable[[str, Obj], None]] = []

    # -- bookkeeping
    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @staticmethod
    def key_of(rt: ResourceType, namespace: str | None, name: str) -> Key:
        return (rt.group, rt.plural, namespace if rt.namespaced else "", name)

    # -- reads
    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get(self.key_of(rt, namespace, name))

    def require(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.get(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def items(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        reqs = parse_label_selector(label_selector)
        out = []
        for (group, plural, ns, _name), obj in sorted(self.objects.items()):
            if (group, plural) != rt.store_key:
                continue
            if rt.namespaced and namespace and ns != namespace:
                continue
            if not labels_match(obj["metadata"].get("labels") or {}, reqs):
                continue
            if not fields_match(obj, field_selector):
                continue
            out.append(obj)
        return out

    def kind_items(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        return self.items(by_kind(kind), namespace, label_selector)

    def iter_all(self) -> Iterator[tuple[Key, Obj]]:
        yield from list(self.objects.items())

    def namespace_exists(self, name: str) -> bool:
        return ("", "namespaces", "", name) in self.objects

    # -- writes (callers hold the lock)
    def insert(self, rt: ResourceType, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        key = self.key_of(rt, meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{rt.plural}{"." + rt.group if rt.group else ""} "{meta["name"]}" already exists',
                {"name": meta["name"], "kind": rt.plural},
            )
        if not rt.namespaced:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.clock.stamp()
        meta["resourceVersion"] = self.next_rv()
        if rt.kind not in ("Pod", "Event", "Namespace", "Node", "ConfigMap", "Service"):
            meta["generation"] = 1
        self.objects[key] = obj
        self._notify("ADDED", obj)
        return obj

    def replace(
        self,
        rt: ResourceType,
        new: Obj,
        *,
        manager: str | None = None,
        operation: str = "Update",
        api_version: str | None = None,
        status_only: bool = False,
        subresource: str = "",
    ) -> tuple[Obj, bool]:
        """Store `new` in place of the object of the same name. Returns (object, changed).

        Writes nothing and keeps the resourceVersion when nothing changed; bumps generation
        when anything outside metadata and status changed; gives a non-apply `manager`
        ownership of the fields whose values it changed (taking them from other managers).
        """
        meta = new["metadata"]
        key = self.key_of(rt, meta.get("namespace"), meta["name"])
        old = self.objects.get(key)
        if old is None:
            raise not_found(rt, meta["name"])
        if status_only:
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        for immutable in ("uid", "creationTimestamp", "generation"):
            if immutable in old["metadata"]:
                new["metadata"][immutable] = old["metadata"][immutable]
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if manager and operation == "Update":
            changed_fields = fields.changed_paths(old, new)
            if changed_fields:
                fields.take_ownership(
                    new,
                    manager,
                    changed_fields,
                    operation="Update",
                    api_version=api_version or fields.api_version_of(old),
                    stamp=self.clock.stamp(),
                    subresource=subresource,
                )
        if _semantic(old) == _semantic(new):
            return old, False
        if _spec_part(old) != _spec_part(new) and "generation" in old["metadata"]:
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        new["metadata"]["resourceVersion"] = self.next_rv()
        self.objects[key] = new
        self._notify("MODIFIED", new)
        return new, True

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        obj = self.objects.pop(self.key_of(rt, namespace, name), None)
        if obj is not None:
            self._rv += 1
            self._notify("DELETED", obj)
        return obj

    def _notify(self, kind: str, obj: Obj) -> None:
        for listener in self.listeners:
            listener(kind, obj)

    # -- events
    def record_event(
        self, involved: Obj, type_: str, reason: str, message: str, component: str = "kubelet"
    ) -> Obj:
        """A v1 Event about `involved`; a repeat of the same reason and message counts up."""
        meta = involved["metadata"]
        ns = meta.get("namespace") or "default"
        rt = by_kind("Event")
        now = self.clock.stamp()
        for ev in self.items(rt, ns):
            inv = ev["involvedObject"]
            if (
                inv.get("uid") == meta.get("uid")
                and ev["reason"] == reason
                and ev["message"] == message
            ):
                new = copy.deepcopy(ev)
                new["count"] = ev.get("count", 1) + 1
                new["lastTimestamp"] = now
                return self.replace(rt, new)[0]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", "v1"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": ns,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
            "reportingComponent": component,
        }
        return self.insert(rt, event)

    def events_for(self, obj: Obj) -> list[Obj]:
        uid = obj["metadata"].get("uid")
        return [
            ev
            for ev in self.items(by_kind("Event"), obj["metadata"].get("namespace"))
            if ev["involvedObject"].get("uid") == uid
        ]


def _semantic(obj: Obj) -> Obj:
    o = copy.deepcopy(obj)
    o["metadata"].pop("resourceVersion", None)
    for entry in o["metadata"].get("managedFields") or []:
        entry.pop("time", None)
    return o


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
