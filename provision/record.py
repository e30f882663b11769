"""The provisioning state file (provision.json in the state dir): ids and addresses for the
next steps and for `status`. No secrets: no tokens, passwords or credential ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ggctl.inventory.ansible import INVENTORY_FILE
from ggctl.provision.actual import KINDS, Actual
from ggctl.provision.topology import PRIVATE, PUBLIC, Topology, lb_pool
from ggctl.state import StateDir

STATE_NAME = "provision"


def node_addresses(top: Topology, actual: Actual) -> list[dict[str, Any]]:
    """Per node: server id/status, private (experiment-net) and public-net addresses."""
    nodes = []
    for spec in top.servers:
        srv = actual.first("server", spec.name)
        ports = {top.port(p).network: actual.first("port", p) for p in spec.ports}
        pub, priv = ports.get(PUBLIC), ports.get(PRIVATE)
        nodes.append(
            {
                "node": spec.node,
                "name": spec.name,
                "id": srv.id if srv else None,
                "status": srv.status if srv else "absent",
                "private_ip": (
                    priv.attrs["ips"][0] if priv and priv.attrs.get("ips") else spec.private_ip
                ),
                "public_net_ip": pub.attrs["ips"][0] if pub and pub.attrs.get("ips") else None,
            }
        )
        if srv is not None and srv.status == "ERROR":  # why, as Nova says it
            nodes[-1]["fault"] = srv.attrs.get("fault") or ""
    return nodes


def to_state(
    top: Topology,
    actual: Actual,
    *,
    project: str = "",
    user: str = "",
    public_key: str | None = None,
    private_key: str | None = None,
) -> dict[str, Any]:
    """The state document for what exists now."""
    lease = actual.first("lease", top.lease.name)
    fips = actual.of("floatingip")
    return {
        "suffix": top.suffix,
        "site": top.site,
        "project": project,
        "user": user,
        "lease": None
        if lease is None
        else {"id": lease.id, "name": lease.name, "status": lease.status, **lease.attrs},
        "floating_ip": fips[0].attrs.get("address") if fips else None,
        "nodes": node_addresses(top, actual),
        "lb_pool": lb_pool(top.network(PRIVATE).cidr),
        "resources": {
            k: [{"id": f.id, "name": f.name, "status": f.status} for f in actual.of(k)]
            for k in KINDS
            if actual.of(k)
        },
        "public_key": public_key,
        "private_key": private_key,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save(state: StateDir, data: dict[str, Any]) -> None:
    state.write(STATE_NAME, data)


def load(state: StateDir) -> dict[str, Any] | None:
    return state.read(STATE_NAME)


def forget(state: StateDir) -> list[str]:
    """Remove the provisioning state and the files made from it; returns what was removed."""
    removed = []
    for name in (f"{STATE_NAME}.json", INVENTORY_FILE, "ssh_config"):
        p = state.path(name)
        if p.exists():
            p.unlink()
            removed.append(name)
    return removed
