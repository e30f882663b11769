"""The nodes' ports, made before the servers so that addresses are fixed and known."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.errors import CloudError, error_text, error_type, find_or_none
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
    from openstack import exceptions as sdk_exc

    try:
        return _port(conn.network.create_port(**attrs))
    except sdk_exc.ConflictException as exc:
        if error_type(exc) != "IpAddressAlreadyAllocated":
            raise
        return _address_taken(conn, spec, network_id, marker, exc)


def _address_taken(
    conn: Any, spec: PortSpec, network_id: str, marker: str, exc: Exception
) -> Found:
    """The fixed address is held: adopt our own port that holds it (made by a create whose
    answer was lost), or say who holds it. Retrying cannot help."""
    address = spec.fixed_ip or "its address"
    holders = (
        list(conn.network.ports(network_id=network_id, fixed_ips=[f"ip_address={spec.fixed_ip}"]))
        if spec.fixed_ip
        else []
    )
    for p in holders:
        if p.name == spec.name and p.description == marker:
            return _port(p)
    who = ", ".join(
        f"port {p.name or '(no name)'} {p.id} (device_owner {p.device_owner or 'none'}, "
        f"device {p.device_id or 'none'})"
        for p in holders
    )
    raise CloudError(
        f"cannot create port {spec.name}: {address} is already taken on its network "
        f"by {who or 'another port'} (Neutron: {error_text(exc)})",
        hint="if it is left from an earlier reservation of yours, `ggctl teardown --yes` "
        "frees it; otherwise delete that port (`openstack port delete ID`) or pass another "
        "--name so that your networks are new",
    ) from None


def delete_port(conn: Any, found: Found) -> None:
    conn.network.delete_port(found.id, ignore_missing=True)


def port_exists(conn: Any, found: Found) -> bool:
    return find_or_none(conn.network.find_port, found.id) is not None
