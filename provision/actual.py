"""What exists in the cloud, as plain data: read by discover.py, compared by plan.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Creation order; teardown walks it backwards (router before ports: its interface ports
# must go before the subnet, servers before their ports, everything before the lease).
KINDS = (
    "lease",
    "keypair",
    "network",
    "subnet",
    "router",
    "secgroup",
    "port",
    "server",
    "floatingip",
)


@dataclass(frozen=True)
class Found:
    """One resource of ours as the cloud reports it."""

    kind: str
    id: str
    name: str
    status: str = ""
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def label(self) -> str:
        return f"{self.kind} {self.name or self.id}"


@dataclass
class Actual:
    """Everything of one owner that exists, per kind."""

    items: dict[str, list[Found]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def of(self, kind: str) -> list[Found]:
        return self.items.get(kind, [])

    def named(self, kind: str, name: str) -> list[Found]:
        return [f for f in self.of(kind) if f.name == name]

    def first(self, kind: str, name: str) -> Found | None:
        found = self.named(kind, name)
        return found[0] if found else None

    def add(self, found: Found) -> None:
        self.items.setdefault(found.kind, []).append(found)

    def count(self) -> int:
        return sum(len(v) for v in self.items.values())

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.items.items() if v}
