"""The router: a gateway on the external network and one interface on the public subnet."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.errors import error_type, find_or_none
from ggctl.provision.topology import RouterSpec, is_ours

# neutron-lib's ROUTER_INTERFACE_OWNERS (neutron_lib/constants.py): a plain router's
# interface, an HA router's replicated interface and a DVR router's distributed one.
# (network:router_ha_interface ports sit on the HA network and belong to Neutron.)
INTERFACE_OWNERS = frozenset(
    {
        "network:router_interface",
        "network:ha_router_replicated_interface",
        "network:router_interface_distributed",
    }
)


def _interfaces(conn: Any, router_id: str) -> list[str]:
    """Subnet ids attached to the router (its interface ports, whatever the router type)."""
    subnets = []
    for port in conn.network.ports(device_id=router_id):
        if port.device_owner in INTERFACE_OWNERS:
            subnets += [ip["subnet_id"] for ip in port.fixed_ips or []]
    return subnets


def _router(conn: Any, r: Any) -> Found:
    gw = r.external_gateway_info or {}
    return Found(
        "router",
        r.id,
        r.name,
        r.status or "",
        {
            "gateway_network_id": gw.get("network_id"),
            "interfaces": _interfaces(conn, r.id),
        },
    )


def list_routers(conn: Any, suffix: str) -> list[Found]:
    """Our routers, with their gateway and interfaces."""
    return [_router(conn, r) for r in conn.network.routers() if is_ours(r.description, suffix)]


def create_router(conn: Any, spec: RouterSpec, external_id: str, marker: str) -> Found:
    """Create the router with its gateway in the same call (one step fewer to resume)."""
    r = conn.network.create_router(
        name=spec.name,
        description=marker,
        external_gateway_info={"network_id": external_id},
    )
    return _router(conn, r)


def ensure_wiring(conn: Any, found: Found, external_id: str, subnet_id: str) -> Found:
    """Set the gateway and attach the subnet where either is missing."""
    if found.attrs.get("gateway_network_id") != external_id:
        conn.network.update_router(found.id, external_gateway_info={"network_id": external_id})
    if subnet_id not in found.attrs.get("interfaces", []):
        # positional: the keyword is subnet_id before openstacksdk 4.x renamed it subnet
        conn.network.add_interface_to_router(found.id, subnet_id)
    return _router(conn, conn.network.get_router(found.id))


def delete_router(conn: Any, found: Found) -> None:
    """Detach every interface, clear the gateway, then delete (Neutron refuses otherwise)."""
    from openstack import exceptions as sdk_exc

    r = find_or_none(conn.network.find_router, found.id)
    if r is None:
        return
    for attempt in range(2):
        for subnet_id in _interfaces(conn, r.id):
            conn.network.remove_interface_from_router(r.id, subnet_id)
        if r.external_gateway_info:
            conn.network.update_router(r.id, external_gateway_info={})
        try:
            conn.network.delete_router(r.id, ignore_missing=True)
            return
        except sdk_exc.ConflictException as exc:
            # RouterInUse: an interface appeared since we listed them; detach again, once.
            if error_type(exc) != "RouterInUse" or attempt:
                raise


def router_exists(conn: Any, found: Found) -> bool:
    return find_or_none(conn.network.find_router, found.id) is not None
