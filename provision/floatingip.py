"""node-0's floating IP: always a NEW one, ours by its description.

python-chi's `get_free_floating_ip` hands out any unbound floating IP of the project,
which in a shared course project may be a classmate's; we never adopt one we did not make.
"""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.errors import find_or_none
from ggctl.provision.topology import FloatingIPSpec, is_ours


def _fip(f: Any) -> Found:
    return Found(
        "floatingip",
        f.id,
        f.floating_ip_address or f.id,
        f.status or "",
        {
            "address": f.floating_ip_address,
            "port_id": f.port_id,
            "fixed_ip": f.fixed_ip_address,
            "description": f.description or "",
        },
    )


def list_floatingips(conn: Any, suffix: str) -> list[Found]:
    """Our floating IPs (description carries our marker); free ones of others are ignored."""
    return [_fip(f) for f in conn.network.ips() if is_ours(f.description, suffix)]


def create_floatingip(conn: Any, spec: FloatingIPSpec, external_id: str, port_id: str) -> Found:
    """Allocate a new address from the external network, bound to the port in one call."""
    return _fip(
        conn.network.create_ip(
            floating_network_id=external_id, port_id=port_id, description=spec.description
        )
    )


def associate(conn: Any, found: Found, port_id: str) -> Found:
    """Bind our existing floating IP to the port (after an interrupted run)."""
    return _fip(conn.network.update_ip(found.id, port_id=port_id))


def delete_floatingip(conn: Any, found: Found) -> None:
    """DELETE /v2.0/floatingips/{id}. python-chi 1.x sends a raw DELETE to the Neutron
    root + id instead and ignores the 404, leaking the address; teardown also waits until
    a GET says 404 here, so a delete that did nothing is seen."""
    conn.network.delete_ip(found.id, ignore_missing=True)


def floatingip_exists(conn: Any, found: Found) -> bool:
    return find_or_none(conn.network.find_ip, found.id) is not None
