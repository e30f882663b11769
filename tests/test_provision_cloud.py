"""reserve / status / teardown against the fake cloud, with the real, unpatched openstacksdk,
python-chi and python-blazarclient talking HTTP to it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cloud_helpers import FULL, held, mutations, quiet, settings, use_env

from ggctl.errors import GgctlError
from ggctl.provision import record
from ggctl.provision.reserve import reserve
from ggctl.provision.status import extend, status
from ggctl.provision.teardown import teardown
from ggctl.state import StateDir


@pytest.fixture
def alice(fake_cloud, monkeypatch, tmp_path):
    from cloud_helpers import clean_os_env

    clean_os_env(monkeypatch, tmp_path)
    use_env(monkeypatch, fake_cloud, "alice")
    return settings(tmp_path, "alice")


def test_reserve_status_teardown_leaves_nothing(fake_cloud, alice):
    result = reserve(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL
    st = result.state
    assert st["suffix"] == "alice" and st["floating_ip"]
    assert [n["private_ip"] for n in st["nodes"]] == [
        "192.168.1.10",
        "192.168.1.11",
        "192.168.1.12",
    ]
    assert {n["status"] for n in st["nodes"]} == {"ACTIVE"}
    assert (alice.state_dir / "inventory.yaml").exists()
    # The experiment subnet's DHCP pool leaves the LoadBalancer range to MetalLB.
    (priv,) = [s for s in fake_cloud.world.resources("subnets") if "private" in s["name"]]
    assert priv["allocation_pools"] == [{"start": "192.168.1.2", "end": "192.168.1.239"}]
    assert st["lb_pool"] == "192.168.1.240-192.168.1.250"
    assert (alice.state_dir / "ssh_config").exists()
    assert (alice.state_dir / "provision.json").stat().st_mode & 0o777 == 0o600

    now = status(alice)
    assert now["lease"]["status"] == "ACTIVE" and now["lease"]["remaining"].endswith("left")
    assert now["floating_ip"] == st["floating_ip"]

    td = teardown(alice, dry_run=False, console=quiet())
    assert td.leaks == {}
    assert held(fake_cloud) == {}
    assert record.load(StateDir(alice.state_dir)) is None


def test_dry_run_touches_nothing(fake_cloud, alice):
    result = reserve(alice, dry_run=True, console=quiet())
    assert len(result.actions) > 20
    assert held(fake_cloud) == {} and mutations(fake_cloud) == []


def test_reserve_twice_second_creates_nothing(fake_cloud, alice):
    reserve(alice, dry_run=False, console=quiet())
    before = len(mutations(fake_cloud))
    again = reserve(alice, dry_run=False, console=quiet())
    assert again.actions == []
    assert mutations(fake_cloud)[before:] == []
    assert held(fake_cloud) == FULL


def test_teardown_without_state_file(fake_cloud, alice):
    reserve(alice, dry_run=False, console=quiet())
    for p in alice.state_dir.iterdir():
        p.unlink()
    td = teardown(alice, dry_run=False, console=quiet())
    assert td.leaks == {} and held(fake_cloud) == {}


def test_teardown_is_safe_to_rerun(fake_cloud, alice):
    reserve(alice, dry_run=False, console=quiet())
    teardown(alice, dry_run=False, console=quiet())
    again = teardown(alice, dry_run=False, console=quiet())
    assert again.actions == [] and again.leaks == {}


def test_two_users_in_one_project_are_disjoint(fake_cloud, alice, monkeypatch, tmp_path):
    bob = settings(tmp_path, "bob")
    # two sets of 3 x m1.large (4 vCPU each) need more than the fake's default 20 cores
    fake_cloud.faults.quota("CHI-251409", cores=48, instances=10)
    reserve(alice, dry_run=False, console=quiet())
    use_env(monkeypatch, fake_cloud, "bob")
    reserve(bob, dry_run=False, console=quiet())
    assert held(fake_cloud, "alice") == FULL
    assert held(fake_cloud, "bob") == FULL
    names = {s["name"] for s in fake_cloud.world.resources("servers")}
    assert names == {f"node-{i}-{u}" for i in range(3) for u in ("alice", "bob")}

    teardown(bob, dry_run=False, console=quiet())
    assert held(fake_cloud, "bob") == {}
    assert held(fake_cloud, "alice") == FULL
    use_env(monkeypatch, fake_cloud, "alice")
    teardown(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == {}


def test_name_overrides_the_suffix(fake_cloud, alice, tmp_path):
    other = settings(tmp_path, "alice", state="second", name="Alice Second")
    reserve(other, dry_run=False, console=quiet())
    assert {s["name"] for s in fake_cloud.world.resources("servers")} == {
        f"node-{i}-alice-second" for i in range(3)
    }
    # the default-named teardown does not see them; the named one removes them
    assert teardown(alice, dry_run=True, console=quiet()).actions == []
    teardown(other, dry_run=False, console=quiet())
    assert held(fake_cloud) == {}


def test_extend_moves_the_end_and_reports_the_lease_as_it_is(fake_cloud, alice):
    """Blazar 18 takes new dates for a flavor:instance lease and answers UPDATING while it
    runs (tests/openstack_real extends one for real): extend reports the lease after it."""
    before = reserve(alice, dry_run=False, console=quiet()).state["lease"]["end"]
    out = extend(alice, 2)
    assert out["status"] == "ACTIVE"
    assert datetime.fromisoformat(out["end"]) - datetime.fromisoformat(before) == timedelta(hours=2)
    (lease,) = fake_cloud.world.resources("leases")
    assert lease["end_date"].startswith(out["end"][:16])
    saved = record.load(StateDir(alice.state_dir))
    assert saved["lease"]["end"] == out["end"] and saved["lease"]["status"] == "ACTIVE"
    assert held(fake_cloud, "alice") == FULL  # nothing else touched


def test_extend_into_a_booked_period_is_refused_plainly(fake_cloud, alice):
    """flavor_plugin.update_reservation: the hosts must stay free for the whole new period
    (NotEnoughHostsAvailable, 500); here the flavor's capacity shrank under the lease."""
    before = reserve(alice, dry_run=False, console=quiet()).state["lease"]["end"]
    fake_cloud.world.settings.flavor_capacity["m1.large"] = 2
    with pytest.raises(GgctlError) as err:
        extend(alice, 2)
    assert "cannot extend" in err.value.message and "booked after your lease" in err.value.message
    assert "Not enough hosts available" in err.value.message
    (lease,) = fake_cloud.world.resources("leases")
    assert lease["end_date"].startswith(before[:16])  # unchanged


def test_transient_errors_are_retried(fake_cloud, alice):
    fake_cloud.faults.fail("POST", r"/network/v2.0/routers$", status=503)
    fake_cloud.faults.fail("POST", r"/v2.0/ports$", status=409, nth=2)
    fake_cloud.faults.fail("DELETE", r"/v2.0/subnets/", status=500)
    reserve(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL
    teardown(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == {}


def test_lost_reply_to_a_create_makes_no_duplicate(fake_cloud, alice):
    fake_cloud.faults.fail("POST", r"/compute/v2.1/servers$", drop=True, after=True)
    fake_cloud.faults.fail("POST", r"/v2.0/floatingips$", drop=True, after=True)
    reserve(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL


def test_quota_error_names_the_quota(fake_cloud, alice):
    fake_cloud.faults.quota("CHI-251409", floatingip=0)
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    assert "quota" in err.value.message.lower()
    assert "floating" in (err.value.message + (err.value.hint or "")).lower()
    fake_cloud.faults.clear()
    reserve(alice, dry_run=False, console=quiet())  # resumes once quota allows
    assert held(fake_cloud) == FULL


def test_missing_image_and_flavor_fail_before_any_change(fake_cloud, alice, tmp_path):
    with pytest.raises(GgctlError, match="image 'CC-Nope'"):
        reserve(settings(tmp_path, "alice", image="CC-Nope"), dry_run=False, console=quiet())
    with pytest.raises(GgctlError, match=r"flavor 'm9\.huge'"):
        reserve(settings(tmp_path, "alice", flavor="m9.huge"), dry_run=False, console=quiet())
    assert held(fake_cloud) == {}


def test_reserved_inventory_feeds_the_cluster_step(fake_cloud, alice, tmp_path):
    """What reserve writes from a (fake) reservation is what `ggctl cluster` runs on."""
    from test_inventory import ANSIBLE_INVENTORY, run_ansible_inventory

    from ggctl.cluster import run as cluster

    if not ANSIBLE_INVENTORY.exists():
        pytest.skip("ansible-core not installed")
    st = reserve(alice, dry_run=False, console=quiet()).state
    state = StateDir(alice.state_dir)
    inventory = cluster.default_inventory(state)
    inv = run_ansible_inventory(inventory, tmp_path)
    assert set(inv["kube_node"]["hosts"]) == {"node-0", "node-1", "node-2"}
    hostvars = inv["_meta"]["hostvars"]
    assert hostvars["node-0"]["ansible_host"] == st["floating_ip"]
    assert hostvars["node-2"]["node_ip"] == "192.168.1.12"
    assert hostvars["node-0"]["metallb_address_pool"] == "192.168.1.240-192.168.1.250"
    plan = cluster.make_plan(state, inventory=inventory, check=True)
    cmd = cluster.ansible_command(plan, cluster.prepare_private_data_dir(tmp_path / "r", plan))
    assert cmd[cmd.index("-i") + 1] == str(inventory)
    teardown(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == {}
