"""The nodes' ports, made before the servers so that addresses are fixed and known."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.topology import PortSpec, is_ours


def _port(p: Any) -> Found:
    ips = [ip["ip_address"] for ip in p.fixed_ips or []]
    return Found(
        "port",
        p.id,
        p.name,
        p.status or "",
        {
            "network_id": p.network_id,
            "ips": ips,
            "device_id": p.device_id or "",
        },
    )


def list_ports(conn: Any, suffix: str) -> list[Found]:
    """Our ports (not DHCP or router-interface ports, which Neutron owns)."""
    return [_port(p) for p in conn.network.ports() if is_ours(p.description, suffix)]


def create_port(
    conn: Any, spec: PortSpec, network_id: str, subnet_id: str, secgroup_id: str | None, marker: str
) -> Found:
    """Create a port; on the experiment net port security is off and no group applies."""
    fixed: dict[str, str] = {"subnet_id": subnet_id}
    if spec.fixed_ip:
        fixed["ip_address"] = spec.fixed_ip
    attrs: dict[str, Any] = {
        "name": spec.name,
        "description": marker,
        "network_id": network_id,
        "fixed_ips": [fixed],
        "port_security_enabled": spec.port_security,
    }
    # Neutron refuses security groups on a port without port security.
    attrs["security_groups"] = [secgroup_id] if spec.secgroup and secgroup_id else []
    return _port(conn.network.create_port(**attrs))


def delete_port(conn: Any, found: Found) -> None:
    conn.network.delete_port(found.id, ignore_missing=True)


def port_exists(conn: Any, found: Found) -> bool:
    return conn.network.find_port(found.id, ignore_missing=True) is not None
