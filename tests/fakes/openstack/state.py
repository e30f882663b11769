"""One in-memory world shared by every fake service, plus the request log.

Resources are stored as plain dicts already in their wire shape. Keys starting with ``_``
are the fake's private bookkeeping (who created it, how many polls are left, whether it
was seeded) and are stripped by :func:`public` before anything goes on the wire.

All mutation happens under ``World.lock`` (a re-entrant lock): the HTTP server is threaded
and the clients poll concurrently.
"""

from __future__ import annotations

import copy
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

REGION = "KVM@TACC"
DOMAIN = {"id": "default", "name": "Default"}

# Resource kinds the world stores, in the order teardown should see them vanish.
KINDS = (
    "floatingips",
    "servers",
    "routers",
    "ports",
    "subnets",
    "networks",
    "security_groups",
    "security_group_rules",
    "keypairs",
    "leases",
    "flavors",
    "images",
)

# Nova/Neutron defaults on a fresh project (upstream defaults; Chameleon's are undocumented).
DEFAULT_QUOTAS = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "key_pairs": 100,
    "floatingip": 50,
    "network": 100,
    "subnet": 100,
    "port": 500,
    "router": 10,
    "security_group": 10,
    "security_group_rule": 100,
}


def new_id() -> str:
    """A fresh UUID4 string, as every OpenStack service uses for ids."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Naive UTC now (OpenStack APIs speak UTC without offsets in most places)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(dt: datetime | None = None) -> str:
    """``2026-11-24T10:00:00Z``: the timestamp style of Nova, Neutron, Glance and Keystone."""
    return (dt or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")


def mac() -> str:
    """A MAC address in OpenStack's ``fa:16:3e`` OUI."""
    return "fa:16:3e:" + ":".join(f"{random.randint(0, 255):02x}" for _ in range(3))


def public(obj: Any) -> Any:
    """A deep copy of ``obj`` without the fake's private ``_`` keys."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return copy.deepcopy(obj)


@dataclass
class Settings:
    """Timing knobs. Counts are polls (GETs that render the resource), never wall time,
    so tests stay fast and deterministic whatever the client's sleep interval."""

    server_build_polls: int = 1  # GETs that still see BUILD before ACTIVE/ERROR
    server_delete_polls: int = 1  # GETs that still see a deleted server before 404
    lease_start_polls: int = 0  # GETs that still see PENDING before ACTIVE
    # device_owner of new router interfaces: network:router_interface (legacy router),
    # network:ha_router_replicated_interface (HA) or network:router_interface_distributed (DVR)
    router_interface_owner: str = "network:router_interface"
    # Instances of a flavor (by name) the site can host at once; blazar.CAPACITY otherwise.
    flavor_capacity: dict[str, int] = field(default_factory=dict)
    token_ttl: timedelta = timedelta(hours=12)


@dataclass
class LogEntry:
    """One request as the fake saw it (no bodies, no tokens: they may hold secrets)."""

    method: str
    path: str
    query: str
    status: int
    service: str
    user_id: str | None = None
    project_id: str | None = None


@dataclass
class User:
    """A seeded Keystone user with a password and one application credential (bound to
    ``app_cred_project``); ``projects`` are the ids it may scope to."""

    id: str
    name: str
    password: str
    projects: list[str]
    app_cred_id: str
    app_cred_secret: str
    app_cred_project: str
    # Keystone's `unrestricted` is False by default; Chameleon asks users to tick it.
    app_cred_restricted: bool = False


@dataclass
class Project:
    """A seeded Keystone project (Chameleon names them ``CHI-NNNNNN``)."""

    id: str
    name: str


@dataclass
class World:
    """Everything the fake cloud knows. Inspect it from tests; mutate it only under ``lock``."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    settings: Settings = field(default_factory=Settings)
    projects: dict[str, Project] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    tokens: dict[str, dict] = field(default_factory=dict)  # token id -> token body
    quotas: dict[str, dict[str, int]] = field(default_factory=dict)  # project id -> limits
    log: list[LogEntry] = field(default_factory=list)
    # kind -> id -> resource dict (wire shape + private "_" keys)
    tables: dict[str, dict[str, dict]] = field(default_factory=lambda: {kind: {} for kind in KINDS})

    # ----------------------------------------------------------------- inspection

    def table(self, kind: str) -> dict[str, dict]:
        """The live table of one kind (id -> resource). Hold ``lock`` while iterating."""
        return self.tables[kind]

    def resources(
        self,
        kind: str,
        *,
        project: str | None = None,
        user: str | None = None,
        include_seeded: bool = False,
    ) -> list[dict]:
        """Public copies of the resources of one kind, optionally only one project's or
        one user's (``project``/``user`` take an id or a name). Seeded resources (public
        networks, stock flavors and images, default security groups) are left out unless
        ``include_seeded``."""
        project_id = self._project_id(project) if project else None
        user_id = self._user_id(user) if user else None
        with self.lock:
            out = []
            for res in self.tables[kind].values():
                if res.get("_seed") and not include_seeded:
                    continue
                if res.get("_deleted"):
                    continue
                if project_id and res.get("_project_id") != project_id:
                    continue
                if user_id and res.get("_user_id") != user_id:
                    continue
                out.append(public(res))
            return out

    def count(self, kind: str | None = None, **owner: Any) -> Any:
        """Number of live non-seeded resources of ``kind``, or a ``{kind: n}`` dict of all
        kinds with n > 0 when ``kind`` is None. Takes ``project=``/``user=`` like
        :meth:`resources`."""
        if kind is not None:
            return len(self.resources(kind, **owner))
        counts = {k: len(self.resources(k, **owner)) for k in KINDS}
        return {k: n for k, n in counts.items() if n}

    def requests(self, method: str | None = None, contains: str = "") -> list[LogEntry]:
        """Logged requests, optionally only one method and paths containing a substring."""
        with self.lock:
            return [
                e for e in self.log if (method is None or e.method == method) and contains in e.path
            ]

    def user(self, name_or_id: str) -> User:
        """A seeded user by name or id."""
        return self.users[self._user_id(name_or_id)]

    def project(self, name_or_id: str) -> Project:
        """A seeded project by name or id."""
        return self.projects[self._project_id(name_or_id)]

    def quota(self, project_id: str) -> dict[str, int]:
        """The effective limits of one project (defaults overlaid by injected ones)."""
        with self.lock:
            return {**DEFAULT_QUOTAS, **self.quotas.get(project_id, {})}

    def _project_id(self, ref: str) -> str:
        for p in self.projects.values():
            if ref in (p.id, p.name):
                return p.id
        raise KeyError(f"no project {ref!r}")

    def _user_id(self, ref: str) -> str:
        for u in self.users.values():
            if ref in (u.id, u.name):
                return u.id
        raise KeyError(f"no user {ref!r}")

    # ----------------------------------------------------------------- mutation

    def add(self, kind: str, res: dict) -> dict:
        """Store a resource (it must carry ``id``) and return it."""
        with self.lock:
            self.tables[kind][res["id"]] = res
            return res

    def remove(self, kind: str, res_id: str) -> dict | None:
        """Drop a resource now; returns what was removed."""
        with self.lock:
            return self.tables[kind].pop(res_id, None)
