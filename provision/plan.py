"""Desired vs actual → a list of actions. Pure data in, data out: no cloud calls here.

Resources are matched by their suffixed name among those carrying our marker, so the
plan is the same with or without a state file, and a rerun after an interruption plans
only what is missing (resume), while a rerun after success plans nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ggctl.provision import lease as lease_mod
from ggctl.provision.actual import KINDS, Actual, Found
from ggctl.provision.errors import CloudError
from ggctl.provision.secgroup import missing_rules
from ggctl.provision.topology import PUBLIC, Topology


@dataclass(frozen=True)
class Action:
    """One step: create, update, replace, wait (for ACTIVE) or delete."""

    op: str
    kind: str
    name: str
    reason: str = ""
    target: Found | None = None
    spec: Any = field(default=None, compare=False)

    def __str__(self) -> str:
        why = f"  ({self.reason})" if self.reason else ""
        return f"{self.op:<8} {self.kind:<10} {self.name}{why}"


def _extras(top: Topology, actual: Actual) -> list[Action]:
    """Duplicates of one name (a create whose answer was lost, then retried): keep one."""
    out = []
    for kind in reversed(KINDS):
        seen: set[str] = set()
        for f in actual.of(kind):
            if f.name in seen and kind != "floatingip":
                out.append(Action("delete", kind, f.name, "duplicate", target=f))
            seen.add(f.name)
    fips = actual.of("floatingip")
    for f in fips[1:]:
        out.append(Action("delete", "floatingip", f.name, "second floating IP", target=f))
    return out


def _lease_actions(top: Topology, actual: Actual, now: datetime | None) -> list[Action]:
    found = actual.first("lease", top.lease.name)
    if found is None:
        return [
            Action(
                "create",
                "lease",
                top.lease.name,
                f"{top.lease.amount} x {top.lease.flavor}, {top.lease.hours} h",
                spec=top.lease,
            )
        ]
    if found.status in lease_mod.FAILED or lease_mod.expired(found, now):
        raise CloudError(
            f"lease {found.name} is {found.status or 'over'} (ended or ends "
            f"{found.attrs.get('end')}): its servers are gone or going",
            hint="run `ggctl teardown`, then `ggctl reserve` for a new lease",
        )
    return []


def plan_reserve(top: Topology, actual: Actual, now: datetime | None = None) -> list[Action]:
    """The actions that take `actual` to `top`; empty when everything exists and is well."""
    actions = _extras(top, actual) + _lease_actions(top, actual, now)
    kp = actual.first("keypair", top.keypair.name)
    if kp is None:
        actions.append(Action("create", "keypair", top.keypair.name, spec=top.keypair))
    elif kp.attrs.get("public_key") and kp.attrs["public_key"] != top.keypair.public_key:
        actions.append(
            Action(
                "replace", "keypair", kp.name, "different public key", target=kp, spec=top.keypair
            )
        )
    for net in top.networks:
        found = actual.first("network", net.name)
        if found is None:
            actions.append(Action("create", "network", net.name, net.key, spec=net))
        elif found.attrs.get("port_security") not in (None, net.port_security):
            actions.append(
                Action("update", "network", net.name, "port security", target=found, spec=net)
            )
    for net in top.networks:
        if actual.first("subnet", net.subnet_name) is None:
            actions.append(Action("create", "subnet", net.subnet_name, net.cidr, spec=net))
    actions += _router_actions(top, actual)
    sg = actual.first("secgroup", top.secgroup.name)
    if sg is None:
        ports = ", ".join(str(r.port) for r in top.secgroup.rules)
        actions.append(
            Action("create", "secgroup", top.secgroup.name, f"TCP {ports}", spec=top.secgroup)
        )
    elif missing_rules(sg, top.secgroup):
        actions.append(
            Action("update", "secgroup", sg.name, "missing rules", target=sg, spec=top.secgroup)
        )
    for p in top.ports:
        if actual.first("port", p.name) is None:
            actions.append(Action("create", "port", p.name, p.fixed_ip or "DHCP", spec=p))
    actions += _server_actions(top, actual)
    actions += _fip_actions(top, actual)
    return actions


def _router_actions(top: Topology, actual: Actual) -> list[Action]:
    found = actual.first("router", top.router.name)
    if found is None:
        return [
            Action(
                "create",
                "router",
                top.router.name,
                f"gateway {top.router.external_network}",
                spec=top.router,
            )
        ]
    subnet = actual.first("subnet", top.network(top.router.network).subnet_name)
    wired = (
        found.attrs.get("gateway_network_id")
        and subnet is not None
        and subnet.id in found.attrs.get("interfaces", [])
    )
    if not wired:
        return [
            Action(
                "update", "router", found.name, "gateway/interface", target=found, spec=top.router
            )
        ]
    return []


def _server_actions(top: Topology, actual: Actual) -> list[Action]:
    lease = actual.first("lease", top.lease.name)
    actions: list[Action] = []
    waits: list[Action] = []
    if lease is None or lease.status != "ACTIVE":
        missing = [s for s in top.servers if actual.first("server", s.name) is None]
        if missing or lease is None:
            actions.append(
                Action(
                    "wait", "lease", top.lease.name, "until ACTIVE", target=lease, spec=top.lease
                )
            )
    for s in top.servers:
        found = actual.first("server", s.name)
        if found is None:
            actions.append(Action("create", "server", s.name, s.private_ip, spec=s))
            waits.append(Action("wait", "server", s.name, "until ACTIVE", spec=s))
        elif found.status == "ERROR":
            fault = found.attrs.get("fault") or "no fault message"
            actions.append(
                Action("replace", "server", s.name, f"in ERROR: {fault}", target=found, spec=s)
            )
            waits.append(Action("wait", "server", s.name, "until ACTIVE", spec=s))
        elif found.status != "ACTIVE":
            waits.append(
                Action("wait", "server", s.name, f"{found.status} → ACTIVE", target=found, spec=s)
            )
    return actions + waits


def _fip_actions(top: Topology, actual: Actual) -> list[Action]:
    spec = top.floating_ip
    fips = actual.of("floatingip")
    port = actual.first("port", spec.port)
    if not fips:
        return [Action("create", "floatingip", spec.node, f"new, on {spec.port}", spec=spec)]
    if port is None or fips[0].attrs.get("port_id") != port.id:
        return [
            Action(
                "update",
                "floatingip",
                fips[0].name,
                f"associate with {spec.port}",
                target=fips[0],
                spec=spec,
            )
        ]
    return []


def plan_teardown(actual: Actual) -> list[Action]:
    """Delete everything of ours, in dependency order (floating IP first, lease last)."""
    order = (
        "floatingip",
        "server",
        "router",
        "port",
        "subnet",
        "network",
        "secgroup",
        "keypair",
        "lease",
    )
    return [Action("delete", kind, f.name, target=f) for kind in order for f in actual.of(kind)]


def public_subnet_name(top: Topology) -> str:
    return top.network(PUBLIC).subnet_name
