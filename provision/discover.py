"""Read everything of one owner from the cloud into an Actual (no state file needed)."""

from __future__ import annotations

from typing import Any

from ggctl.provision import floatingip, keypair, lease, network, port, router, secgroup, server
from ggctl.provision.actual import Actual
from ggctl.provision.topology import Topology


def read_actual(cloud: Any, top: Topology) -> Actual:
    """Everything `top.suffix` owns: found by description/metadata marker, or (key pair,
    lease: they have neither) by their suffixed name."""
    conn, suffix = cloud.conn, top.suffix
    actual = Actual()
    for found in [
        *lease.list_leases(cloud.blazar(), top.lease.name),
        *keypair.list_keypairs(conn, top.keypair.name),
        *network.list_networks(conn, suffix),
        *network.list_subnets(conn, suffix),
        *router.list_routers(conn, suffix),
        *secgroup.list_secgroups(conn, suffix),
        *port.list_ports(conn, suffix),
        *server.list_servers(conn, suffix),
        *floatingip.list_floatingips(conn, suffix),
    ]:
        actual.add(found)
    return actual


def listers(cloud: Any, top: Topology) -> dict[str, Any]:
    """Per kind, a function listing what of ours exists now (for re-checks after errors)."""
    conn, suffix = cloud.conn, top.suffix
    return {
        "lease": lambda: lease.list_leases(cloud.blazar(), top.lease.name),
        "keypair": lambda: keypair.list_keypairs(conn, top.keypair.name),
        "network": lambda: network.list_networks(conn, suffix),
        "subnet": lambda: network.list_subnets(conn, suffix),
        "router": lambda: router.list_routers(conn, suffix),
        "secgroup": lambda: secgroup.list_secgroups(conn, suffix),
        "port": lambda: port.list_ports(conn, suffix),
        "server": lambda: server.list_servers(conn, suffix),
        "floatingip": lambda: floatingip.list_floatingips(conn, suffix),
    }


def deleters(cloud: Any) -> dict[str, tuple[Any, Any]]:
    """Per kind: (delete it, does it still exist?)."""
    conn = cloud.conn
    return {
        "lease": (
            lambda f: lease.delete_lease(cloud.blazar(), f),
            lambda f: lease.lease_exists(cloud.blazar(), f),
        ),
        "keypair": (
            lambda f: keypair.delete_keypair(conn, f),
            lambda f: keypair.keypair_exists(conn, f),
        ),
        "network": (
            lambda f: network.delete_network(conn, f),
            lambda f: network.network_exists(conn, f),
        ),
        "subnet": (
            lambda f: network.delete_subnet(conn, f),
            lambda f: network.subnet_exists(conn, f),
        ),
        "router": (
            lambda f: router.delete_router(conn, f),
            lambda f: router.router_exists(conn, f),
        ),
        "secgroup": (
            lambda f: secgroup.delete_secgroup(conn, f),
            lambda f: secgroup.secgroup_exists(conn, f),
        ),
        "port": (lambda f: port.delete_port(conn, f), lambda f: port.port_exists(conn, f)),
        "server": (
            lambda f: server.delete_server(conn, f),
            lambda f: server.server_exists(conn, f),
        ),
        "floatingip": (
            lambda f: floatingip.delete_floatingip(conn, f),
            lambda f: floatingip.floatingip_exists(conn, f),
        ),
    }


def holdings(cloud: Any, kind: str) -> int | None:
    """How many of `kind` the whole project holds (for quota messages); None if unknown."""
    conn = cloud.conn
    listing = {
        "server": lambda: conn.compute.servers(),
        "floatingip": lambda: conn.network.ips(),
        "network": lambda: conn.network.networks(project_id=cloud.project_id),
        "subnet": lambda: conn.network.subnets(project_id=cloud.project_id),
        "router": lambda: conn.network.routers(project_id=cloud.project_id),
        "port": lambda: conn.network.ports(project_id=cloud.project_id),
        "secgroup": lambda: conn.network.security_groups(project_id=cloud.project_id),
        "lease": lambda: cloud.blazar().lease.list(),
    }.get(kind)
    try:
        return sum(1 for _ in listing()) if listing else None
    except Exception:
        return None
