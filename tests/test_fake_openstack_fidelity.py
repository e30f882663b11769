"""Fidelity of the fake OpenStack where independent clients exposed divergences (issue 15,
items 15-17): Nova's microversion negotiation, clocks that move without polls, Neutron's
address allocation, DHCP ports, pagination and sorting. Driven through openstacksdk and
requests against the fake over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from fakes.openstack import FakeCloud
from openstack import exceptions as sdk_exc
from test_fake_openstack import blazar

# A developer's own OS_* variables never reach the fake (the plugin's fixture).
pytestmark = pytest.mark.usefixtures("no_ambient_openstack_env")


# ------------------------------------------------------------------ Nova microversions


def test_nova_microversion_above_the_maximum_is_406_json(fake_cloud: FakeCloud, conn) -> None:
    compute = conn.compute
    # Discovery advertises Xena's range (KVM@TACC runs Xena: max 2.90).
    root = requests.get(compute.get_endpoint().rsplit("/v2.1", 1)[0] + "/", timeout=30).json()
    (doc,) = root["versions"]
    assert (doc["min_version"], doc["version"]) == ("2.1", "2.90")

    for headers in (
        {"OpenStack-API-Version": "compute 2.200"},
        {"X-OpenStack-Nova-API-Version": "2.91"},
    ):
        resp = compute.get("/servers/detail", headers=headers, raise_exc=False)
        assert resp.status_code == 406
        assert resp.headers["Content-Type"] == "application/json"
        asked = "2.200" if "OpenStack-API-Version" in headers else "2.91"
        assert resp.json() == {
            "notAcceptable": {
                "code": 406,
                "message": f"Version {asked} is not supported by the API. "
                "Minimum is 2.1 and maximum is 2.90.",
            }
        }
        assert "OpenStack-API-Version" not in resp.headers

    # A malformed version string is Nova's 400; `latest` resolves to (and echoes) the max.
    resp = compute.get(
        "/servers", headers={"OpenStack-API-Version": "compute 2.x"}, raise_exc=False
    )
    assert resp.status_code == 400
    assert "is of invalid format" in resp.json()["badRequest"]["message"]
    resp = compute.get("/servers", headers={"OpenStack-API-Version": "compute latest"})
    assert resp.status_code == 200
    assert resp.headers["OpenStack-API-Version"] == "compute 2.90"
    # openstacksdk's own negotiation still lands on a supported version.
    assert list(conn.compute.flavors())


# ------------------------------------------------------------------ clocks


def test_clocks_move_without_polls(fake_cloud: FakeCloud, conn) -> None:
    """python-chi deletes a server and then its network without polling the server in
    between: on a real cloud the server is gone by then. Every request applies what came
    due on the world's clock, whatever resource it reads."""
    world, settings = fake_cloud.world, fake_cloud.world.settings
    settings.server_build_polls = settings.server_delete_polls = 1000  # polls cannot help
    settings.lease_start_polls = 1000
    lease = blazar(conn.session).lease.create(
        name="clock",
        start="now",
        end=(datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M"),
        events=[],
        reservations=[
            {"resource_type": "flavor:instance", "flavor_id": "4", "amount": 1, "affinity": None}
        ],
    )
    world.advance(settings.lease_start_time + timedelta(seconds=1))
    net = conn.network.create_network(name="n")  # any request applies the lease's start
    (stored,) = world.resources("leases")
    assert stored["status"] == "ACTIVE"

    conn.network.create_subnet(network_id=net.id, cidr="192.168.9.0/24", ip_version=4)
    server = conn.compute.create_server(
        name="s",
        image_id=next(conn.image.images(name="CC-Ubuntu24.04")).id,
        flavor_id=lease["reservations"][0]["id"],
        networks=[{"uuid": net.id}],
    )
    world.advance(settings.server_build_time)
    conn.network.get_network(net.id)  # not a server read
    (stored,) = world.resources("servers")
    assert stored["status"] == "ACTIVE"
    (port,) = conn.network.ports(device_id=server.id)
    assert port.status == "ACTIVE"

    conn.compute.delete_server(server)
    with pytest.raises(sdk_exc.ConflictException):  # still deleting: the network is busy
        conn.network.delete_network(net)
    world.advance(settings.server_delete_time)
    conn.network.delete_network(net)  # no poll of the server in between
    assert world.count("servers") == 0
    assert world.count("networks") == 0
    assert not world.requests("GET", f"/servers/{server.id}")


# ------------------------------------------------------------------ Neutron


def test_dhcp_ports_and_random_addresses(fake_cloud: FakeCloud, conn) -> None:
    net = conn.network.create_network(name="n")
    a = conn.network.create_subnet(network_id=net.id, cidr="10.20.0.0/24", ip_version=4)
    b = conn.network.create_subnet(network_id=net.id, cidr="10.20.1.0/24", ip_version=4)
    # One DHCP port per network, at the start of each DHCP-enabled subnet's pool.
    (dhcp,) = conn.network.ports(network_id=net.id, device_owner="network:dhcp")
    assert sorted(ip["ip_address"] for ip in dhcp.fixed_ips) == ["10.20.0.2", "10.20.1.2"]
    assert dhcp.status == "ACTIVE" and dhcp.security_group_ids == []
    assert fake_cloud.world.count("ports") == 0  # the cloud's port, not the user's

    # Other ports get a random free address (seeded: the same run gives the same ones).
    got = [
        conn.network.create_port(network_id=net.id, fixed_ips=[{"subnet_id": a.id}]).fixed_ips[0][
            "ip_address"
        ]
        for _ in range(6)
    ]
    hosts = [int(ip.rsplit(".", 1)[1]) for ip in got]
    assert len(set(hosts)) == 6 and all(3 <= h <= 254 for h in hosts)
    assert hosts != list(range(3, 9))  # not sequential
    for port in conn.network.ports(network_id=net.id):
        if port.device_owner != "network:dhcp":
            conn.network.delete_port(port)

    # Deleting a subnet frees its DHCP address; the network goes with its DHCP port.
    conn.network.delete_subnet(b)
    (dhcp,) = conn.network.ports(network_id=net.id, device_owner="network:dhcp")
    assert [ip["ip_address"] for ip in dhcp.fixed_ips] == ["10.20.0.2"]
    conn.network.delete_network(net)
    left = fake_cloud.world.resources("ports", include_seeded=True)
    assert all(p["network_id"] != net.id for p in left)


def test_neutron_sorting_and_links_that_keep_filters(fake_cloud: FakeCloud, conn) -> None:
    for name in ("b", "d", "a", "e", "c"):
        conn.network.create_network(name=name, description="mine")
    conn.network.create_network(name="z", description="other")
    query = "description=mine&fields=id&fields=name&sort_key=name&sort_dir=desc&limit=2"
    names, pages, path = [], 0, f"/networks?{query}"
    while path and pages < 10:
        body = conn.network.get(path).json()
        pages += 1
        names += [n["name"] for n in body["networks"]]
        assert all(set(n) == {"id", "name"} for n in body["networks"])
        nxt = [link["href"] for link in body.get("networks_links", []) if link["rel"] == "next"]
        if nxt:
            for kept in ("description=mine", "fields=id", "fields=name", "sort_key=name"):
                assert kept in nxt[0]
            path = nxt[0].split("/v2.0", 1)[1]
        else:
            path = ""
    assert names == ["e", "d", "c", "b", "a"] and pages == 3
    resp = conn.network.get("/networks?sort_key=name", raise_exc=False)
    assert resp.status_code == 400
    assert resp.json()["NeutronError"]["message"] == (
        "The number of sort_keys and sort_dirs must be same"
    )
