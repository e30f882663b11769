"""Desired state and plan diffing on plain data: no cloud, no clients."""

from datetime import UTC, datetime, timedelta

import pytest

from ggctl.errors import GgctlError
from ggctl.provision.actual import Actual, Found
from ggctl.provision.plan import plan_reserve, plan_teardown
from ggctl.provision.topology import (
    build_topology,
    is_ours,
    marker,
    sanitize_suffix,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5 alice@laptop"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def topo(suffix="alice"):
    return build_topology(suffix, KEY)


def complete(top, lease_status="ACTIVE", server_status="ACTIVE", end_hours=5) -> Actual:
    """An Actual holding everything `top` wants, healthy."""
    a = Actual()
    end = (NOW + timedelta(hours=end_hours)).isoformat()
    a.add(Found("lease", "L1", top.lease.name, lease_status, {"end": end, "reservation_id": "R1"}))
    a.add(
        Found(
            "keypair",
            top.keypair.name,
            top.keypair.name,
            "",
            {"public_key": top.keypair.public_key},
        )
    )
    for n in top.networks:
        a.add(
            Found("network", f"net-{n.key}", n.name, "ACTIVE", {"port_security": n.port_security})
        )
        a.add(Found("subnet", f"sub-{n.key}", n.subnet_name))
    a.add(
        Found(
            "router",
            "R",
            top.router.name,
            "ACTIVE",
            {"gateway_network_id": "EXT", "interfaces": ["sub-public"]},
        )
    )
    a.add(
        Found(
            "secgroup",
            "SG",
            top.secgroup.name,
            "",
            {"ingress": [("tcp", 22, "0.0.0.0/0"), ("tcp", 32000, "0.0.0.0/0")]},
        )
    )
    for p in top.ports:
        a.add(Found("port", f"port-{p.name}", p.name, "ACTIVE", {"ips": [p.fixed_ip]}))
    for s in top.servers:
        a.add(Found("server", f"srv-{s.node}", s.name, server_status))
    a.add(
        Found(
            "floatingip",
            "F",
            "129.114.0.5",
            "ACTIVE",
            {"port_id": f"port-{top.floating_ip.port}", "address": "129.114.0.5"},
        )
    )
    return a


def ops(actions):
    return [(a.op, a.kind, a.name) for a in actions]


def test_topology_follows_the_course():
    top = topo()
    pub, priv = top.networks
    assert (pub.cidr, pub.gateway_ip, pub.enable_dhcp) == ("192.168.10.0/24", "192.168.10.1", True)
    assert (priv.cidr, priv.gateway_ip, priv.port_security) == ("192.168.1.0/24", None, False)
    assert [s.node for s in top.servers] == ["node-0", "node-1", "node-2"]
    assert [s.private_ip for s in top.servers] == ["192.168.1.10", "192.168.1.11", "192.168.1.12"]
    assert {r.port for r in top.secgroup.rules} == {22, 32000}
    assert all(r.remote_ip_prefix == "0.0.0.0/0" for r in top.secgroup.rules)
    # only the public-net ports are in the security group
    assert {p.name for p in top.ports if p.secgroup} == {f"node-{i}-public-alice" for i in range(3)}
    assert top.floating_ip.node == "node-0"
    assert (top.lease.flavor, top.lease.amount) == ("m1.large", 3)


def test_every_name_carries_the_suffix():
    for names in topo("bob-2").names().values():
        assert all(n.endswith("-bob-2") for n in names), names


def test_suffix_from_a_user_name():
    assert sanitize_suffix("Alice.Smith@Uni.edu") == "alice-smith-uni-edu"
    with pytest.raises(ValueError):
        sanitize_suffix("@@@")


def test_marker_is_exact_not_a_prefix():
    assert is_ours(marker("al"), "al")
    assert is_ours(marker("al") + " node=node-0", "al")
    assert not is_ours(marker("alice"), "al")
    assert not is_ours(marker("al"), "alice")
    assert not is_ours(None, "al")
    assert not is_ours("", "al")


def test_nothing_exists_plans_everything_in_dependency_order():
    top = topo()
    actions = plan_reserve(top, Actual(), NOW)
    kinds = [a.kind for a in actions if a.op == "create"]
    assert kinds[0] == "lease"
    assert kinds.index("network") < kinds.index("subnet") < kinds.index("router")
    assert kinds.index("secgroup") < kinds.index("port") < kinds.index("server")
    assert kinds[-1] == "floatingip"
    assert kinds.count("server") == 3 and kinds.count("port") == 6
    # the lease is waited for before any server is created, each server after
    order = ops(actions)
    assert order.index(("wait", "lease", top.lease.name)) < order.index(
        ("create", "server", "node-0-alice")
    )
    assert [a.name for a in actions if a.op == "wait" and a.kind == "server"] == [
        "node-0-alice",
        "node-1-alice",
        "node-2-alice",
    ]


def test_everything_exists_plans_nothing():
    top = topo()
    assert plan_reserve(top, complete(top), NOW) == []


def test_resume_plans_only_what_is_missing():
    top = topo()
    actual = complete(top)
    actual.items["server"] = [f for f in actual.of("server") if f.name != "node-2-alice"]
    actual.items["floatingip"] = []
    assert ops(plan_reserve(top, actual, NOW)) == [
        ("create", "server", "node-2-alice"),
        ("wait", "server", "node-2-alice"),
        ("create", "floatingip", "node-0"),
    ]


def test_server_in_error_is_replaced_with_its_fault():
    top = topo()
    actual = complete(top)
    broken = actual.first("server", "node-1-alice")
    actual.items["server"].remove(broken)
    actual.add(Found("server", broken.id, broken.name, "ERROR", {"fault": "No valid host"}))
    actions = plan_reserve(top, actual, NOW)
    assert ops(actions) == [
        ("replace", "server", "node-1-alice"),
        ("wait", "server", "node-1-alice"),
    ]
    assert "No valid host" in actions[0].reason


def test_building_server_is_waited_for():
    top = topo()
    assert {a.op for a in plan_reserve(top, complete(top, server_status="BUILD"), NOW)} == {"wait"}


def test_unbound_floating_ip_of_ours_is_associated_not_reallocated():
    top = topo()
    actual = complete(top)
    fip = actual.of("floatingip")[0]
    actual.items["floatingip"] = [Found("floatingip", fip.id, fip.name, "DOWN", {"port_id": None})]
    assert ops(plan_reserve(top, actual, NOW)) == [("update", "floatingip", fip.name)]


def test_duplicates_are_deleted_and_one_kept():
    top = topo()
    actual = complete(top)
    actual.add(Found("network", "dup", top.networks[0].name, "ACTIVE", {"port_security": True}))
    actual.add(Found("floatingip", "F2", "129.114.0.6", "DOWN", {"port_id": None}))
    assert sorted(ops(plan_reserve(top, actual, NOW))) == [
        ("delete", "floatingip", "129.114.0.6"),
        ("delete", "network", top.networks[0].name),
    ]


def test_router_missing_its_interface_is_rewired():
    top = topo()
    actual = complete(top)
    r = actual.of("router")[0]
    actual.items["router"] = [
        Found("router", r.id, r.name, "ACTIVE", {"gateway_network_id": "EXT", "interfaces": []})
    ]
    assert ops(plan_reserve(top, actual, NOW)) == [("update", "router", r.name)]


def test_secgroup_missing_a_rule_gets_it():
    top = topo()
    actual = complete(top)
    actual.items["secgroup"] = [
        Found("secgroup", "SG", top.secgroup.name, "", {"ingress": [("tcp", 22, "0.0.0.0/0")]})
    ]
    assert ops(plan_reserve(top, actual, NOW)) == [("update", "secgroup", top.secgroup.name)]


def test_different_public_key_replaces_the_keypair():
    top = topo()
    actual = complete(top)
    actual.items["keypair"] = [
        Found("keypair", top.keypair.name, top.keypair.name, "", {"public_key": "ssh-rsa OTHER"})
    ]
    assert ops(plan_reserve(top, actual, NOW)) == [("replace", "keypair", top.keypair.name)]


def test_pending_lease_is_waited_for_before_servers():
    top = topo()
    actual = complete(top, lease_status="PENDING")
    actual.items["server"] = []
    order = ops(plan_reserve(top, actual, NOW))
    assert order[0] == ("wait", "lease", top.lease.name)


@pytest.mark.parametrize("status,end_hours", [("ERROR", 5), ("TERMINATED", 5), ("ACTIVE", -1)])
def test_failed_or_expired_lease_is_a_clear_error(status, end_hours):
    top = topo()
    with pytest.raises(GgctlError) as err:
        plan_reserve(top, complete(top, lease_status=status, end_hours=end_hours), NOW)
    assert "ggctl teardown" in err.value.hint


def test_teardown_deletes_everything_in_dependency_order():
    top = topo()
    actions = plan_teardown(complete(top))
    assert {a.op for a in actions} == {"delete"}
    kinds = [a.kind for a in actions]
    assert kinds[0] == "floatingip" and kinds[-1] == "lease"
    last_server = max(i for i, k in enumerate(kinds) if k == "server")
    assert last_server < kinds.index("router") < kinds.index("port") < kinds.index("subnet")
    assert kinds.index("subnet") < kinds.index("network") < kinds.index("secgroup")
    assert len(actions) == complete(top).count()


def test_teardown_of_nothing_is_empty():
    assert plan_teardown(Actual()) == []
