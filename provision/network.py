"""Neutron networks and their subnets (openstacksdk)."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.errors import CloudError, error_text, error_type, find_or_none
from ggctl.provision.topology import NetworkSpec, is_ours


def _network(n: Any) -> Found:
    return Found(
        "network",
        n.id,
        n.name,
        n.status or "",
        {
            "port_security": n.is_port_security_enabled,
            "description": n.description or "",
        },
    )


def _subnet(s: Any) -> Found:
    return Found(
        "subnet",
        s.id,
        s.name,
        "",
        {
            "network_id": s.network_id,
            "cidr": s.cidr,
            "gateway_ip": s.gateway_ip,
            "enable_dhcp": s.is_dhcp_enabled,
        },
    )


def list_networks(conn: Any, suffix: str) -> list[Found]:
    """Our networks: those whose description carries our marker."""
    return [_network(n) for n in conn.network.networks() if is_ours(n.description, suffix)]


def list_subnets(conn: Any, suffix: str) -> list[Found]:
    """Our subnets: those whose description carries our marker."""
    return [_subnet(s) for s in conn.network.subnets() if is_ours(s.description, suffix)]


def create_network(conn: Any, spec: NetworkSpec, marker: str) -> Found:
    """Create the network; port security is set here so its ports inherit it."""
    return _network(
        conn.network.create_network(
            name=spec.name,
            description=marker,
            port_security_enabled=spec.port_security,
        )
    )


def update_network(conn: Any, found: Found, spec: NetworkSpec) -> Found:
    """Bring port security back to what the spec says."""
    return _network(conn.network.update_network(found.id, port_security_enabled=spec.port_security))


def create_subnet(conn: Any, spec: NetworkSpec, network_id: str, marker: str) -> Found:
    """Create the IPv4 subnet; gateway_ip None means no gateway at all (experiment net)."""
    pools = {}
    if spec.dhcp_pool:
        pools["allocation_pools"] = [{"start": spec.dhcp_pool[0], "end": spec.dhcp_pool[1]}]
    return _subnet(
        conn.network.create_subnet(
            name=spec.subnet_name,
            description=marker,
            network_id=network_id,
            ip_version=4,
            cidr=spec.cidr,
            gateway_ip=spec.gateway_ip,
            is_dhcp_enabled=spec.enable_dhcp,
            **pools,
        )
    )


def delete_network(conn: Any, found: Found) -> None:
    _delete_in_use(conn, found, "NetworkInUse", {"network_id": found.id})


def delete_subnet(conn: Any, found: Found) -> None:
    _delete_in_use(conn, found, "SubnetInUse", {"fixed_ips": [f"subnet_id={found.id}"]})


def _delete_in_use(conn: Any, found: Found, in_use: str, port_filter: dict[str, Any]) -> None:
    """Delete; a NetworkInUse/SubnetInUse refusal names the ports that hold it (waiting
    does not free a port someone else made, so it is not retried)."""
    from openstack import exceptions as sdk_exc

    delete = conn.network.delete_network if found.kind == "network" else conn.network.delete_subnet
    try:
        delete(found.id, ignore_missing=True)
    except sdk_exc.ConflictException as exc:
        if error_type(exc) != in_use:
            raise
        # Neutron deletes DHCP ports with the network itself (auto_delete_port_owners).
        held = [p for p in conn.network.ports(**port_filter) if p.device_owner != "network:dhcp"]
        who = "; ".join(
            f"{p.name or '(no name)'} {p.id} (device_owner {p.device_owner or 'none'}, "
            f"device {p.device_id or 'none'})"
            for p in held
        )
        raise CloudError(
            f"cannot delete {found.kind} {found.name}: ports still use it: {who or '?'} "
            f"(Neutron: {error_text(exc)})",
            hint="delete those ports (`openstack port delete ID`; a server's port goes with "
            "`openstack server delete ID`), then rerun `ggctl teardown --yes`",
        ) from None


def network_exists(conn: Any, found: Found) -> bool:
    return find_or_none(conn.network.find_network, found.id) is not None


def subnet_exists(conn: Any, found: Found) -> bool:
    return find_or_none(conn.network.find_subnet, found.id) is not None


def external_network_id(conn: Any, name: str) -> str | None:
    """The id of the external network floating IPs and router gateways come from."""
    net = find_or_none(conn.network.find_network, name)
    return net.id if net is not None else None
