"""The fake OpenStack cloud speaks the real APIs: the real, unpatched openstacksdk,
keystoneauth1, python-blazarclient and python-chi drive it over HTTP on 127.0.0.1.

If one of these fails after a client upgrade, the fake (not the client) is what must be
brought back in line -- provisioning tests are only as good as this fidelity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openstack
import pytest
import requests
from blazarclient import client as blazar_client
from blazarclient.exception import BlazarClientException
from fakes.openstack import PROJECT, FakeCloud
from fakes.openstack.faults import BUILD_ABORTED
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from openstack import exceptions as sdk_exc

# A developer's own OS_* variables never reach the fake (the plugin's fixture).
pytestmark = pytest.mark.usefixtures("no_ambient_openstack_env")

REPO = Path(__file__).resolve().parents[1]
PUBKEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleWZha2Vr alice@laptop"
)
WAIT = {"interval": 0.02, "wait": 5}  # the fake moves on polls, not on time


def image_named(conn, name: str):
    """The one image called `name`, listed by name: openstacksdk's find_image makes a
    deprecated ignore_missing=True call of its own whatever the caller asks."""
    (image,) = conn.image.images(name=name)
    return image


def server_on_a_lease(conn) -> dict:
    """create_server's arguments for a server on a new lease's flavor and sharednet1."""
    lease = reserve(conn.session)
    return {
        "image_id": image_named(conn, "CC-Ubuntu24.04").id,
        "flavor_id": lease["reservations"][0]["id"],
        "networks": [{"uuid": conn.network.find_network("sharednet1", ignore_missing=False).id}],
    }


def password_session(
    cloud: FakeCloud, user: str = "alice", project: str = PROJECT, password: str | None = None
) -> ks_session.Session:
    """A keystoneauth session with password auth (what ggctl builds from OS_* vars)."""
    env = cloud.env(user=user, project=project)
    auth = v3.Password(
        auth_url=env["OS_AUTH_URL"],
        username=env["OS_USERNAME"],
        password=password or env["OS_PASSWORD"],
        user_domain_name="Default",
        project_name=project,
        project_domain_name="Default",
    )
    return ks_session.Session(auth=auth)


def blazar(sess: ks_session.Session):
    """python-blazarclient exactly as python-chi builds it."""
    return blazar_client.Client("1", service_type="reservation", session=sess)


def lease_dates(hours: int = 3) -> tuple[str, str]:
    """("now", end) in Blazar's request format."""
    end = datetime.now(UTC) + timedelta(hours=hours)
    return "now", end.strftime("%Y-%m-%d %H:%M")


def reserve(sess: ks_session.Session, name: str = "lease-alice", amount: int = 3) -> dict:
    """Create a flavor:instance lease for m1.large and return it once ACTIVE."""
    bc = blazar(sess)
    start, end = lease_dates()
    lease = bc.lease.create(
        name=name,
        start=start,
        end=end,
        events=[],
        reservations=[
            {
                "resource_type": "flavor:instance",
                "flavor_id": "4",
                "amount": amount,
                "affinity": None,
            }
        ],
    )
    assert lease["status"] == "PENDING"
    assert [e["event_type"] for e in lease["events"]] == [
        "start_lease",
        "before_end_lease",
        "end_lease",
    ]
    assert lease["start_date"].endswith(":00.000000")  # "now" is the current minute
    lease = bc.lease.get(lease["id"])
    assert lease["status"] == "STARTING"  # blazar/status.py: PENDING -> STARTING -> ACTIVE
    lease = bc.lease.get(lease["id"])
    assert lease["status"] == "ACTIVE"
    return lease


# ---------------------------------------------------------------------------- openstacksdk


def test_sdk_builds_and_tears_down_the_course_topology(fake_cloud: FakeCloud, conn) -> None:
    """Everything `ggctl reserve` creates, created and deleted through openstacksdk."""
    world = fake_cloud.world
    lease = reserve(conn.session)
    rid = lease["reservations"][0]["id"]
    flavor = conn.compute.find_flavor(f"reservation:{rid}", ignore_missing=False)
    assert flavor.id == rid and flavor.vcpus == 4 and flavor.ram == 8192
    assert flavor.extra_specs["aggregate_instance_extra_specs:reservation"] == rid
    assert flavor.extra_specs[f"resources:CUSTOM_RESERVATION_{rid.upper().replace('-', '_')}"]

    public = conn.network.find_network("public", ignore_missing=False)
    shared = conn.network.find_network("sharednet1", ignore_missing=False)
    assert public.is_router_external and shared.is_shared

    net = conn.network.create_network(
        name="private-net-alice", port_security_enabled=False, description="ggctl:alice"
    )
    subnet = conn.network.create_subnet(
        network_id=net.id,
        cidr="192.168.1.0/24",
        ip_version=4,
        gateway_ip=None,
        name="private-subnet",
    )
    assert subnet.gateway_ip is None
    ext_net = conn.network.create_network(name="ext-net-alice")
    ext_subnet = conn.network.create_subnet(
        network_id=ext_net.id, cidr="10.20.0.0/24", ip_version=4
    )
    assert ext_subnet.gateway_ip == "10.20.0.1"
    router = conn.network.create_router(
        name="router-alice", external_gateway_info={"network_id": public.id}
    )
    assert router.external_gateway_info["network_id"] == public.id
    conn.network.add_interface_to_router(router, subnet=ext_subnet.id)

    sg = conn.network.create_security_group(name="allow-ssh-alice")
    assert {(r["direction"], r["ethertype"]) for r in sg.security_group_rules} == {
        ("egress", "IPv4"),
        ("egress", "IPv6"),
    }
    for port in (22, 32000):
        conn.network.create_security_group_rule(
            security_group_id=sg.id,
            direction="ingress",
            ethertype="IPv4",
            protocol="tcp",
            port_range_min=port,
            port_range_max=port,
            remote_ip_prefix="0.0.0.0/0",
        )
    keypair = conn.compute.create_keypair(name="key-alice", public_key=PUBKEY)
    assert keypair.fingerprint.count(":") == 15

    image = image_named(conn, "CC-Ubuntu24.04")
    servers = []
    for i in range(3):
        private_port = conn.network.create_port(
            network_id=net.id,
            fixed_ips=[{"ip_address": f"192.168.1.{11 + i}"}],
            port_security_enabled=False,
            name=f"port-node-{i}",
        )
        ext_port = conn.network.create_port(network_id=ext_net.id, security_group_ids=[sg.id])
        servers.append(
            conn.compute.create_server(
                name=f"node-{i}-alice",
                image_id=image.id,
                flavor_id=flavor.id,
                key_name="key-alice",
                networks=[{"port": ext_port.id}, {"port": private_port.id}],
            )
        )
    servers = [conn.compute.wait_for_server(s, **WAIT) for s in servers]
    assert {s.status for s in servers} == {"ACTIVE"}
    node0 = servers[0]
    assert node0.addresses["private-net-alice"][0]["addr"] == "192.168.1.11"

    fip = conn.network.create_ip(floating_network_id=public.id)
    ports = list(conn.network.ports(device_id=node0.id, network_id=ext_net.id))
    conn.network.update_ip(fip, port_id=ports[0].id)
    node0 = conn.compute.get_server(node0.id)
    floating = [a for a in node0.addresses["ext-net-alice"] if a["OS-EXT-IPS:type"] == "floating"]
    assert floating[0]["addr"] == fip.floating_ip_address
    assert world.count(project=PROJECT) == {
        "floatingips": 1,
        "servers": 3,
        "routers": 1,
        "ports": 7,
        "subnets": 2,
        "networks": 2,
        "security_groups": 1,
        "security_group_rules": 4,
        "keypairs": 1,
        "leases": 1,
        "flavors": 1,
    }

    # Teardown in dependency order; the fake enforces the order Neutron enforces.
    conn.network.delete_ip(fip)
    for s in servers:
        conn.compute.delete_server(s)
    for s in servers:
        conn.compute.wait_for_delete(s, **WAIT)
    for port in conn.network.ports(network_id=net.id):
        conn.network.delete_port(port)
    for port in conn.network.ports(network_id=ext_net.id, device_owner=""):
        conn.network.delete_port(port)
    conn.network.remove_interface_from_router(router, subnet=ext_subnet.id)
    conn.network.delete_router(router)
    for n in (net, ext_net):
        conn.network.delete_network(n)
    conn.network.delete_security_group(sg)
    conn.compute.delete_keypair("key-alice")
    blazar(conn.session).lease.delete(lease["id"])
    assert world.count() == {}


def test_sdk_from_a_password_session_and_image_paging(fake_cloud: FakeCloud) -> None:
    """A keystoneauth session handed to openstacksdk (ggctl's path); Glance paging."""
    sess = password_session(fake_cloud)
    conn = openstack.connection.Connection(session=sess, region_name="KVM@TACC")
    assert [i.name for i in conn.image.images(limit=1)] == ["CC-Ubuntu22.04", "CC-Ubuntu24.04"]
    assert [i.name for i in conn.image.images(name="CC-Ubuntu22.04")] == ["CC-Ubuntu22.04"]
    assert conn.compute.find_flavor("m1.large", ignore_missing=False).id == "4"
    assert conn.current_project_id == fake_cloud.world.project(PROJECT).id
    pages = fake_cloud.world.requests("GET", "/image/v2/images")
    assert any("marker=" in e.query for e in pages)


def test_neutron_refuses_what_neutron_refuses(fake_cloud: FakeCloud, conn) -> None:
    """409s for resources in use, and no floating IP for a port without a route out."""
    public = conn.network.find_network("public", ignore_missing=False)
    net = conn.network.create_network(name="n")
    subnet = conn.network.create_subnet(network_id=net.id, cidr="192.168.5.0/24", ip_version=4)
    port = conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "192.168.5.9"}])
    with pytest.raises(sdk_exc.ConflictException, match="already allocated"):
        conn.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "192.168.5.9"}])
    fip = conn.network.create_ip(floating_network_id=public.id)
    with pytest.raises(sdk_exc.NotFoundException, match="is not reachable from subnet"):
        conn.network.update_ip(fip, port_id=port.id)

    router = conn.network.create_router(name="r", external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet=subnet.id)
    conn.network.update_ip(fip, port_id=port.id)
    assert conn.network.get_ip(fip.id).router_id == router.id
    with pytest.raises(sdk_exc.ConflictException, match="required by one or more floating"):
        conn.network.remove_interface_from_router(router, subnet=subnet.id)
    with pytest.raises(sdk_exc.ConflictException, match="still has ports"):
        conn.network.delete_router(router)
    with pytest.raises(sdk_exc.ConflictException, match="One or more ports"):
        conn.network.delete_subnet(subnet)
    with pytest.raises(sdk_exc.ConflictException, match="ports still in use"):
        conn.network.delete_network(net)
    sg = conn.network.create_security_group(name="g")
    conn.network.update_port(port, security_groups=[sg.id])
    with pytest.raises(sdk_exc.ConflictException, match="in use"):
        conn.network.delete_security_group(sg)

    conn.network.delete_port(port)  # deleting the port frees its floating IP
    assert conn.network.get_ip(fip.id).port_id is None
    conn.network.remove_interface_from_router(router, subnet=subnet.id)
    conn.network.delete_router(router)
    conn.network.delete_ip(fip)
    conn.network.delete_network(net)
    conn.network.delete_security_group(sg)
    assert fake_cloud.world.count() == {}


def test_tags_descriptions_and_filters(fake_cloud: FakeCloud, conn) -> None:
    """Tags via PUT .../tags/{tag}, ?tags= filters, descriptions, project filters."""
    mine = conn.network.create_network(name="a", description="ggctl:alice")
    other = conn.network.create_network(name="b")
    conn.network.add_tag(mine, "ggctl")
    conn.network.add_tag(mine, "ggctl-user-alice")
    assert conn.network.get_network(mine.id).tags == ["ggctl", "ggctl-user-alice"]
    assert [n.id for n in conn.network.networks(tags="ggctl,ggctl-user-alice")] == [mine.id]
    assert other.id in [n.id for n in conn.network.networks(not_tags="ggctl")]
    assert [n.description for n in conn.network.networks(name="a")] == ["ggctl:alice"]
    project_id = fake_cloud.world.project(PROJECT).id
    assert {n.name for n in conn.network.networks(project_id=project_id)} == {"a", "b"}
    fake_cloud.faults.fail("GET", "never")  # unrelated rules do not disturb anything
    conn.network.set_tags(other, ["x"])
    assert conn.network.get_network(other.id).tags == ["x"]


def test_two_users_share_a_project_but_not_keypairs(fake_cloud: FakeCloud) -> None:
    """Alice and bob see the same networks and servers, but each their own key pairs; the
    world can count per owner."""
    alice = openstack.connection.Connection(session=password_session(fake_cloud, "alice"))
    bob = openstack.connection.Connection(session=password_session(fake_cloud, "bob"))
    alice.network.create_network(name="net-alice")
    bob.network.create_network(name="net-bob")
    alice.compute.create_keypair(name="k", public_key=PUBKEY)
    bob.compute.create_keypair(name="k", public_key=PUBKEY)
    assert {n.name for n in bob.network.networks()} >= {"net-alice", "net-bob"}
    assert fake_cloud.world.count("keypairs", user="alice") == 1
    assert fake_cloud.world.count(user="bob") == {"networks": 1, "keypairs": 1}


# ---------------------------------------------------------------------------- nova rules


def test_unreserved_flavor_and_quota(fake_cloud: FakeCloud, conn) -> None:
    """No host without a lease (KVM@TACC since 2025-08); Nova's 403 on quota."""
    shared = conn.network.find_network("sharednet1", ignore_missing=False)
    image = image_named(conn, "CC-Ubuntu22.04")
    server = conn.compute.create_server(
        name="adhoc", image_id=image.id, flavor_id="4", networks=[{"uuid": shared.id}]
    )
    with pytest.raises(sdk_exc.ResourceFailure):
        conn.compute.wait_for_server(server, **WAIT)
    server = conn.compute.get_server(server.id)
    assert server.status == "ERROR" and "No valid host" in server.fault["message"]
    assert list(conn.network.ports(device_id=server.id)) == []  # Nova freed its port

    lease = reserve(conn.session, amount=1)
    flavor_id = lease["reservations"][0]["id"]
    one = conn.compute.create_server(
        name="one", image_id=image.id, flavor_id=flavor_id, networks=[{"uuid": shared.id}]
    )
    assert conn.compute.wait_for_server(one, **WAIT).status == "ACTIVE"
    two = conn.compute.create_server(
        name="two", image_id=image.id, flavor_id=flavor_id, networks=[{"uuid": shared.id}]
    )
    with pytest.raises(sdk_exc.ResourceFailure):  # the reservation holds one instance
        conn.compute.wait_for_server(two, **WAIT)

    fake_cloud.faults.quota(PROJECT, instances=3)
    with pytest.raises(
        sdk_exc.ForbiddenException,
        match="Quota exceeded for instances: Requested 1, but already used 3 of 3",
    ):
        conn.compute.create_server(
            name="four", image_id=image.id, flavor_id=flavor_id, networks=[{"uuid": shared.id}]
        )
    fake_cloud.faults.quota(PROJECT, floatingip=0)
    with pytest.raises(sdk_exc.ConflictException, match="Quota exceeded for resources"):
        conn.network.create_ip(
            floating_network_id=conn.network.find_network("public", ignore_missing=False).id
        )

    # Ending the lease takes its servers and reserved flavor with it.
    blazar(conn.session).lease.delete(lease["id"])
    with pytest.raises(sdk_exc.NotFoundException):
        conn.compute.find_server("one", ignore_missing=False)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.compute.find_flavor(flavor_id, ignore_missing=False)


def test_deleted_server_lingers_then_frees_its_ports(fake_cloud: FakeCloud, conn) -> None:
    """DELETE is asynchronous: the network stays busy until the server is really gone."""
    lease = reserve(conn.session, amount=1)
    net = conn.network.create_network(name="n")
    conn.network.create_subnet(network_id=net.id, cidr="192.168.9.0/24", ip_version=4)
    server = conn.compute.create_server(
        name="s",
        image_id=image_named(conn, "CC-Ubuntu24.04").id,
        flavor_id=lease["reservations"][0]["id"],
        networks=[{"uuid": net.id, "fixed_ip": "192.168.9.20"}],
    )
    server = conn.compute.wait_for_server(server, **WAIT)
    assert server.addresses["n"][0]["addr"] == "192.168.9.20"
    conn.compute.delete_server(server)
    with pytest.raises(sdk_exc.ConflictException):
        conn.network.delete_network(net)
    conn.compute.wait_for_delete(server, **WAIT)
    conn.network.delete_network(net)


# ---------------------------------------------------------------------------- blazar


def test_blazarclient_leases(fake_cloud: FakeCloud) -> None:
    """Create, read, extend, refuse too much or new reservation parameters, delete."""
    sess = password_session(fake_cloud)
    bc = blazar(sess)
    lease = reserve(sess)
    # python-chi parses these exact formats.
    datetime.strptime(lease["start_date"], "%Y-%m-%dT%H:%M:%S.%f")
    datetime.strptime(lease["created_at"], "%Y-%m-%d %H:%M:%S")
    assert [r["resource_type"] for r in lease["reservations"]] == ["flavor:instance"]
    assert lease["reservations"][0]["amount"] == 3
    start, end = lease_dates()
    flavor_res = {"resource_type": "flavor:instance", "flavor_id": "4", "affinity": None}
    # Upstream Blazar has no unique lease names: a second "lease-alice" is a new lease.
    twin = bc.lease.create(
        name="lease-alice",
        start=start,
        end=end,
        events=[],
        reservations=[flavor_res | {"amount": 1}],
    )
    assert twin["id"] != lease["id"]
    bc.lease.delete(twin["id"])
    # affinity is required (flavor_plugin._validate_reservation_params) ...
    with pytest.raises(BlazarClientException, match="Missing parameter affinity") as err:
        bc.lease.create(
            name="no-affinity",
            start=start,
            end=end,
            events=[],
            reservations=[{"resource_type": "flavor:instance", "flavor_id": "4", "amount": 1}],
        )
    assert err.value.kwargs["code"] == 400
    # ... and only None passes
    with pytest.raises(BlazarClientException, match="Affinity not supported yet") as err:
        bc.lease.create(
            name="affine",
            start=start,
            end=end,
            events=[],
            reservations=[flavor_res | {"amount": 1, "affinity": True}],
        )
    assert err.value.kwargs["code"] == 409
    # NotEnoughHostsAvailable has no code of its own: 500 with Blazar's body
    with pytest.raises(BlazarClientException, match="Not enough hosts available") as err:
        bc.lease.create(
            name="greedy",
            start=start,
            end=end,
            events=[],
            reservations=[flavor_res | {"amount": 1000}],
        )
    assert err.value.kwargs["code"] == 500
    # A flavor:instance lease takes new dates (answered while the update runs: UPDATING) ...
    new_end = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    updated = bc.lease.update(lease["id"], end_date=new_end)
    assert updated["status"] == "UPDATING"
    assert updated["end_date"].startswith(new_end.replace(" ", "T"))
    assert bc.lease.get(lease["id"])["status"] == lease["status"]
    # ... but not new reservation parameters
    with pytest.raises(BlazarClientException, match="not yet supported") as err:
        bc.lease.update(
            lease["id"], reservations=[{"id": lease["reservations"][0]["id"], "amount": 4}]
        )
    assert err.value.kwargs["code"] == 409
    res = lease["reservations"][0]
    assert res["flavor_id"] == res["id"]  # the reserved flavor's id
    assert {"vcpus", "memory_mb", "disk_gb", "resource_properties", "aggregate_id"} <= set(res)
    assert (res["vcpus"], res["memory_mb"], res["disk_gb"]) == (4, 8192, 40)
    assert json.loads(res["resource_properties"])["name"] == "m1.large"
    assert [x["name"] for x in bc.lease.list()] == ["lease-alice"]
    bc.lease.delete(lease["id"])
    with pytest.raises(BlazarClientException) as err:
        bc.lease.get(lease["id"])
    assert err.value.kwargs["code"] == 404
    assert fake_cloud.world.count() == {}


# ---------------------------------------------------------------------------- python-chi


@pytest.fixture
def chi(fake_cloud: FakeCloud, monkeypatch: pytest.MonkeyPatch):
    """python-chi configured from OS_* variables (it never reads clouds.yaml)."""
    for key, value in fake_cloud.env(auth="application_credential").items():
        monkeypatch.setenv(key, value)
    import chi as chi_module
    import chi.lease
    import chi.network
    import chi.server

    chi_module.context.reset()  # re-read OS_* (it read them once at import)
    yield chi_module
    chi_module.context.reset()


def test_python_chi_lease_flavor_network_servers(fake_cloud: FakeCloud, chi, capsys) -> None:
    """The teaching-notebook calls, unchanged, against the fake."""
    lease = chi.lease.Lease("lease-alice", duration=timedelta(hours=3))
    lease.add_flavor_reservation(name="m1.large", amount=3)
    lease.submit(idempotent=True)
    assert lease.status == "ACTIVE"
    flavors = lease.get_reserved_flavors()
    assert [f.name for f in flavors] == [f"reservation:{lease.flavor_reservations[0]['id']}"]
    again = chi.lease.Lease("lease-alice", duration=timedelta(hours=3))
    again.submit(idempotent=True)  # finds the existing lease by name
    assert again.id == lease.id
    assert (
        chi.network.get_network_id("sharednet1")
        == fake_cloud.world.resources("networks", include_seeded=True)[1]["id"]
    )
    assert chi.server.list_servers() == []
    assert chi.context.get_project_name() == PROJECT
    lease.delete()
    assert fake_cloud.world.count() == {}


def test_python_chi_course_calls_and_its_floating_ip_trap(fake_cloud: FakeCloud, chi) -> None:
    """The course notebook's deprecated calls work; and python-chi 1.x's Server.delete()
    really leaks the floating IP here too (its raw DELETE /v2.0/<id> gets a 404 it ignores),
    so a test of ggctl's workaround can see the leak."""
    lease = chi.lease.Lease("lease-alice", duration=timedelta(hours=3))
    lease.add_flavor_reservation(name="m1.large", amount=1)
    lease.submit(idempotent=True)
    flavor = lease.get_reserved_flavors()[0]
    net = chi.network.create_network("net-alice")
    subnet = chi.network.create_subnet("subnet-alice", net["id"], cidr="10.30.0.0/24")
    router = chi.network.create_router("router-alice", gw_network_name="public")
    chi.network.add_subnet_to_router(router["id"], subnet["id"])
    chi.clients.nova().keypairs.create("key-alice", public_key=PUBKEY)
    server = chi.server.create_server(
        "node-0-alice",
        image_name="CC-Ubuntu24.04",
        flavor_id=flavor.id,
        key_name="key-alice",
        nics=[{"net-id": net["id"], "v4-fixed-ip": "10.30.0.11"}],
    )
    chi.server.wait_for_active(server.id)
    address = chi.server.associate_floating_ip(server.id)
    node = chi.server.get_server("node-0-alice")
    assert node.get_floating_ip() == address
    node.delete()
    assert [f["floating_ip_address"] for f in chi.network.list_floating_ips()] == [address]
    assert fake_cloud.world.requests("DELETE", "/network/v2.0/")[0].status == 404


def test_token_auth_and_expired_lease(fake_cloud: FakeCloud) -> None:
    """OS_AUTH_TYPE=v3token (python-chi's default) rescoping an existing token; a lease
    whose end date passed is TERMINATED and its flavor gone."""
    env = fake_cloud.env(auth="token")
    auth = v3.Token(
        auth_url=env["OS_AUTH_URL"],
        token=env["OS_TOKEN"],
        project_name=env["OS_PROJECT_NAME"],
        project_domain_name="Default",
    )
    sess = ks_session.Session(auth=auth)
    lease = reserve(sess)
    fake_cloud.faults.expire_lease("lease-alice")
    assert blazar(sess).lease.get(lease["id"])["status"] == "TERMINATED"
    assert fake_cloud.world.count("flavors") == 0


# ---------------------------------------------------------------------------- auth


def test_auth_errors_are_keystones(fake_cloud: FakeCloud) -> None:
    """Bad password and wrong project are 401s with Keystone's body; app creds work."""
    with pytest.raises(ks_exc.Unauthorized):
        password_session(fake_cloud, password="wrong").get_token()
    with pytest.raises(ks_exc.Unauthorized, match="has no access to project"):
        password_session(fake_cloud, user="bob", project="CHI-231095").get_token()
    reply = requests.post(
        f"{fake_cloud.auth_url}/auth/tokens",
        timeout=5,
        json={
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": "nope", "secret": "nope"},
                }
            }
        },
    )
    assert reply.status_code == 401 and reply.json()["error"]["title"] == "Unauthorized"
    env = fake_cloud.env(auth="application_credential")
    auth = v3.ApplicationCredential(
        auth_url=env["OS_AUTH_URL"],
        application_credential_id=env["OS_APPLICATION_CREDENTIAL_ID"],
        application_credential_secret=env["OS_APPLICATION_CREDENTIAL_SECRET"],
    )
    sess = ks_session.Session(auth=auth)
    assert sess.get_project_id() == fake_cloud.world.project(PROJECT).id
    no_token = requests.get(f"{fake_cloud.url}/network/v2.0/networks", timeout=5)
    assert no_token.status_code == 401


def test_request_log_holds_no_secrets(fake_cloud: FakeCloud, conn) -> None:
    """The request log records method, path and caller, never tokens or secrets."""
    list(conn.network.networks())
    secret = fake_cloud.world.user("alice").app_cred_secret
    tokens = list(fake_cloud.world.tokens)
    text = repr(fake_cloud.world.log)
    assert secret not in text and not any(t in text for t in tokens)
    assert fake_cloud.world.requests("POST", "/identity/v3/auth/tokens")[0].status == 201


# ---------------------------------------------------------------------------- faults


def test_fail_the_nth_call_with_a_status(fake_cloud: FakeCloud, conn) -> None:
    """The 2nd network create gets a 503 in Neutron's shape; the 1st and 3rd succeed."""
    rule = fake_cloud.faults.fail("POST", r"/network/v2\.0/networks$", status=503, nth=2)
    conn.network.create_network(name="one")
    with pytest.raises(sdk_exc.HttpException) as err:
        conn.network.create_network(name="two")
    assert err.value.status_code == 503
    conn.network.create_network(name="three")
    assert (rule.calls, rule.fired) == (3, 1)
    assert {n.name for n in conn.network.networks(project_id=conn.current_project_id)} == {
        "one",
        "three",
    }


def test_success_status_without_the_effect(fake_cloud: FakeCloud, conn) -> None:
    """status=204: the client is told a delete worked, yet the floating IP stays."""
    fip = conn.network.create_ip(
        floating_network_id=conn.network.find_network("public", ignore_missing=False).id
    )
    fake_cloud.faults.fail("DELETE", r"/floatingips/", status=204)
    conn.network.delete_ip(fip)
    assert conn.network.get_ip(fip.id).id == fip.id  # the connection is still sound


def test_dropped_connection_before_and_after_the_effect(fake_cloud: FakeCloud, conn) -> None:
    """drop=True: the client sees a reset; with after=True the resource exists anyway."""
    fake_cloud.faults.fail("POST", r"/network/v2\.0/routers$", drop=True)
    with pytest.raises((sdk_exc.SDKException, ks_exc.ConnectFailure)):
        conn.network.create_router(name="lost")
    assert fake_cloud.world.count("routers") == 0
    fake_cloud.faults.fail("POST", r"/network/v2\.0/routers$", drop=True, after=True)
    with pytest.raises((sdk_exc.SDKException, ks_exc.ConnectFailure)):
        conn.network.create_router(name="made-but-unacknowledged")
    assert [r["name"] for r in fake_cloud.world.resources("routers")] == ["made-but-unacknowledged"]


def test_server_error_lease_error_and_pending(fake_cloud: FakeCloud, conn) -> None:
    """Injected fates: a server ends in ERROR with a fault; leases stay PENDING or fail."""
    fake_cloud.faults.server_error(name="node-1.*", message="Build of instance aborted")
    fake_cloud.world.settings.server_build_polls = 3
    kwargs = server_on_a_lease(conn)
    ok = conn.compute.create_server(name="node-0", **kwargs)
    bad = conn.compute.create_server(name="node-1", **kwargs)
    assert conn.compute.get_server(ok.id).status == "BUILD"
    assert conn.compute.wait_for_server(ok, **WAIT).status == "ACTIVE"
    with pytest.raises(sdk_exc.ResourceFailure):
        conn.compute.wait_for_server(bad, **WAIT)
    assert conn.compute.get_server(bad.id).fault["message"] == "Build of instance aborted"

    bc = blazar(conn.session)
    start, end = lease_dates()
    res = [{"resource_type": "flavor:instance", "flavor_id": "4", "amount": 1, "affinity": None}]
    fake_cloud.faults.lease_pending(name="slow")
    fake_cloud.faults.lease_error(name="broken")
    slow = bc.lease.create(name="slow", start=start, end=end, events=[], reservations=res)
    broken = bc.lease.create(name="broken", start=start, end=end, events=[], reservations=res)
    for _ in range(3):
        assert bc.lease.get(slow["id"])["status"] == "PENDING"
    assert bc.lease.get(broken["id"])["status"] == "ERROR"
    flavors = {f.name for f in conn.compute.flavors()}
    assert f"reservation:{slow['reservations'][0]['id']}" not in flavors


def test_server_fault_as_nova_shows_it(fake_cloud: FakeCloud, conn) -> None:
    """GET /servers/{id} of a failed build: fault {code, created, message}, the instance's
    uuid formatted into the message, ``details`` only when the code is not 500
    (nova views/servers.py _get_fault, for a non-admin caller)."""
    reason = "Failed to allocate the network(s), not rescheduling."
    aborted = BUILD_ABORTED.format(uuid="{uuid}", reason=reason)
    fake_cloud.faults.server_error(name="a", message=aborted, details="Traceback: ...")
    fake_cloud.faults.server_error(name="b", message="Injected.", code=409, details="why")
    kwargs = server_on_a_lease(conn)
    a = conn.compute.create_server(name="a", **kwargs)
    b = conn.compute.create_server(name="b", **kwargs)
    for server in (a, b):
        with pytest.raises(sdk_exc.ResourceFailure):
            conn.compute.wait_for_server(server, **WAIT)
    fault = conn.compute.get_server(a.id).fault
    assert fault["message"] == f"Build of instance {a.id} aborted: {reason}"
    assert fault["code"] == 500 and "details" not in fault
    assert sorted(fault) == ["code", "created", "message"]
    assert conn.compute.get_server(b.id).fault["details"] == "why"


# ---------------------------------------------------------------------------- standalone


def test_slow_server_and_expired_tokens(fake_cloud: FakeCloud, conn) -> None:
    """A server left in BUILD for a while; tokens revoked mid-run are renewed by the client."""
    lease = reserve(conn.session, amount=1)
    fake_cloud.faults.slow_server(name="node-0", polls=5)
    server = conn.compute.create_server(
        name="node-0",
        image_id=image_named(conn, "CC-Ubuntu24.04").id,
        flavor_id=lease["reservations"][0]["id"],
        networks=[{"uuid": conn.network.find_network("sharednet1", ignore_missing=False).id}],
    )
    statuses = [conn.compute.get_server(server.id).status for _ in range(6)]
    assert statuses == ["BUILD"] * 5 + ["ACTIVE"]
    fake_cloud.faults.expire_tokens()
    assert conn.compute.get_server(server.id).status == "ACTIVE"  # re-authenticated
    assert [e.status for e in fake_cloud.world.requests(contains="/servers/")][-2:] == [401, 200]


def test_clouds_yaml_is_chameleon_shaped(fake_cloud: FakeCloud, tmp_path: Path) -> None:
    """Horizon's clouds.yaml has Keystone's root as auth_url, without /v3."""
    import yaml

    doc = yaml.safe_load(fake_cloud.clouds_yaml(tmp_path / "clouds.yaml").read_text())
    cloud = doc["clouds"]["fake"]
    assert cloud["auth_type"] == "v3applicationcredential"
    assert cloud["auth"]["auth_url"] == f"{fake_cloud.url}/identity"
    assert (cloud["region_name"], cloud["interface"], cloud["identity_api_version"]) == (
        "KVM@TACC",
        "public",
        3,
    )
    root = requests.get(cloud["auth"]["auth_url"], timeout=5)
    assert root.status_code == 300 and root.json()["versions"]["values"][0]["id"] == "v3.14"


def test_standalone_serves_and_writes_clouds_yaml(tmp_path: Path) -> None:
    """`python -m tests.fakes.openstack --port N --clouds-yaml F` from the repo root."""
    clouds = tmp_path / "clouds.yaml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.openstack",
            "--port",
            "0",
            "--clouds-yaml",
            str(clouds),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not clouds.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.05)
        assert clouds.stat().st_mode & 0o777 == 0o600
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(clouds)}
        check = subprocess.run(
            [
                sys.executable,
                "-c",
                "import openstack; c = openstack.connect(cloud='fake'); "
                "print(sorted(n.name for n in c.network.networks()))",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.stdout.strip() == "['public', 'sharednet1']", check.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
