"""In-memory object store: one dict per object, a global resourceVersion, a cluster clock,
label and field selectors, ownership (managedFields) bookkeeping and Kubernetes Events."""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from . import fields, selectors
from .apierror import ApiError
from .resources import ResourceType, by_kind
from .selectors import Requirement

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name

#: How many changes the store remembers for watches; a watch from an older resourceVersion
#: gets 410 Gone, as from kube-apiserver's watch cache (its default is larger and adaptive).
EVENT_LOG_SIZE = 2000


class Change:
    """One write, as watches see it: the resourceVersion it made, ADDED/MODIFIED/DELETED,
    the object after (for DELETED: as deleted, with the deletion's resourceVersion) and
    the object before (None for ADDED)."""

    __slots__ = ("key", "kind", "obj", "old", "rv")

    def __init__(self, rv: int, kind: str, obj: Obj, old: Obj | None, key: Key):
        self.rv, self.kind, self.obj, self.old, self.key = rv, kind, obj, old, key


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


def parse_label_selector(text: str | None) -> list[Requirement]:
    """`a=b,c!=d,e in (f,g),h notin (i),j,!k` → [(key, op, values)]; ApiError 400 if invalid."""
    return selectors.parse_labels(text)


labels_match = selectors.labels_match


def match_labels(labels: dict[str, str], match: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


def fields_match(obj: Obj, selector: str | None) -> bool:
    return selectors.fields_match(obj, selectors.parse_fields(selector))


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
        #: the last EVENT_LOG_SIZE changes, oldest first; `changed` wakes waiting watches
        self.log: collections.deque[Change] = collections.deque(maxlen=EVENT_LOG_SIZE)
        self.changed = threading.Condition(self.lock)
        self._dry_run = 0
        self._log_floor = self._rv

    @property
    def rv(self) -> int:
        """The current resourceVersion (of the last write)."""
        return self._rv

    def oldest_watchable(self) -> int:
        """The oldest resourceVersion a watch can start from: every change after it is kept."""
        return self._log_floor

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[None]:
        """Run a write as dryRun=All: everything it changes in the store is undone, and
        nothing is announced to watches or listeners (the whole request holds the lock)."""
        with self.lock:
            # the same dicts go back (controllers may hold them), with their saved contents
            saved, contents, rv = dict(self.objects), copy.deepcopy(self.objects), self._rv
            self._dry_run += 1
            try:
                yield
            finally:
                self._dry_run -= 1
                for key, obj in saved.items():
                    if obj != contents[key]:
                        obj.clear()
                        obj.update(contents[key])
                self.objects.clear()
                self.objects.update(saved)
                self._rv = rv

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
        freqs = selectors.parse_fields(field_selector)
        out = []
        for (group, plural, ns, _name), obj in sorted(self.objects.items()):
            if (group, plural) != rt.store_key:
                continue
            if rt.namespaced and namespace and ns != namespace:
                continue
            if not labels_match(obj["metadata"].get("labels") or {}, reqs):
                continue
            if not selectors.fields_match(obj, freqs):
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
        if rt.kind not in (
            "Pod",
            "Event",
            "Namespace",
            "Node",
            "ConfigMap",
            "Service",
            "ServiceAccount",
        ):
            meta["generation"] = 1
        self.objects[key] = obj
        self._notify("ADDED", obj, None, key)
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
        self._notify("MODIFIED", new, old, key)
        return new, True

    def remove(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        key = self.key_of(rt, namespace, name)
        obj = self.objects.pop(key, None)
        if obj is not None:
            self._rv += 1
            # the DELETED event carries the deletion's resourceVersion (etcd3 store, watcher)
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._notify("DELETED", gone, obj, key)
        return obj

    def _notify(self, kind: str, obj: Obj, old: Obj | None, key: Key) -> None:
        if self._dry_run:
            return
        with self.lock:
            # `old` has just left the store (writes replace whole objects): no copy needed
            rv = int(obj["metadata"]["resourceVersion"])
            if len(self.log) == self.log.maxlen:
                self._log_floor = self.log[0].rv
            self.log.append(Change(rv, kind, copy.deepcopy(obj), old, key))
            self.changed.notify_all()
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
