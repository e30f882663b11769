"""Cloud errors as the real services send them: classified (retry, act, or explain), and
every failure of reserve/status/extend/teardown ends in one message for people."""

from __future__ import annotations

import pytest
from cloud_helpers import (
    FULL,
    argv_for,
    clean_os_env,
    cli_setup,
    ggctl,
    held,
    quiet,
    settings,
    use_env,
)

from ggctl.errors import GgctlError
from ggctl.provision.reserve import reserve
from ggctl.provision.status import extend
from ggctl.provision.teardown import teardown


@pytest.fixture
def alice(fake_cloud, monkeypatch, tmp_path):
    clean_os_env(monkeypatch, tmp_path)
    use_env(monkeypatch, fake_cloud, "alice")
    return settings(tmp_path, "alice")


def posts(fake, contains: str) -> int:
    return len(fake.world.requests("POST", contains))


# ------------------------------------------------------------------ 13.11, 13.12


def test_no_capacity_is_said_plainly_without_retries(fake_cloud, alice):
    """Blazar's NotEnoughHostsAvailable is a 500 with its own body: no retries, one message."""
    fake_cloud.world.settings.flavor_capacity["m1.large"] = 2
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    assert "Not enough hosts available" in err.value.message
    assert "no room for 3 x m1.large" in err.value.message
    assert "--hours" in err.value.hint and "Flavor Calendar" in err.value.hint
    assert posts(fake_cloud, "/reservation/v1/leases") == 1  # not retried
    assert fake_cloud.world.count("leases") == 0


def test_extend_explains_a_site_that_refuses_to_change_flavor_leases(fake_cloud, alice):
    """Blazar 18 extends a flavor:instance lease (the real tier does it); a site whose Blazar
    refuses (NotImplemented, 409, as for new reservation parameters) is explained."""
    end = reserve(alice, dry_run=False, console=quiet()).state["lease"]["end"]
    fake_cloud.faults.fail(
        "PUT",
        r"/reservation/v1/leases/",
        status=409,
        message="Updating parameters for 'flavor:instance' type reservations is not yet supported.",
    )
    with pytest.raises(GgctlError) as err:
        extend(alice, 2)
    assert "not yet supported" in err.value.message
    assert end in err.value.message  # says when it really ends
    assert "6 months" in err.value.hint and "ggctl reserve --hours" in err.value.hint
    lease = fake_cloud.world.resources("leases")[0]
    assert lease["end_date"].startswith(end[:16].replace("+00:00", ""))  # unchanged


# ------------------------------------------------------------------ 13.13


def test_permanent_conflict_is_not_retried_and_names_the_holder(fake_cloud, alice):
    fake_cloud.faults.fail(
        "POST",
        r"/v2.0/ports$",
        status=409,
        kind="IpAddressAlreadyAllocated",
        message="IP address 192.168.10.10 already allocated in subnet x",
    )
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    assert "already taken" in err.value.message
    assert "IP address 192.168.10.10 already allocated" in err.value.message
    assert "ggctl teardown" in err.value.hint
    assert posts(fake_cloud, "/v2.0/ports") == 1


def test_rule_that_exists_is_success_not_a_retry(fake_cloud, alice):
    """The rule was made but the answer was a 409 RuleExists (as on a retried POST)."""
    fake_cloud.faults.fail(
        "POST",
        r"/v2.0/security-group-rules$",
        status=409,
        after=True,
        kind="SecurityGroupRuleExists",
        message="Security group rule already exists.",
    )
    reserve(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL
    assert posts(fake_cloud, "/security-group-rules") == 2  # one per rule, none repeated


def test_busy_conflict_is_still_retried(fake_cloud, alice):
    fake_cloud.faults.fail("POST", r"/v2.0/routers$", status=409, times=2)
    reserve(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL


def test_network_in_use_names_the_ports(fake_cloud, alice, monkeypatch):
    from ggctl.provision.auth import connect

    reserve(alice, dry_run=False, console=quiet())
    net = next(n for n in fake_cloud.world.resources("networks") if n["name"].endswith("alice"))
    use_env(monkeypatch, fake_cloud, "bob")
    stray = connect(None, "KVM@TACC").conn.network.create_port(network_id=net["id"], name="stray")
    use_env(monkeypatch, fake_cloud, "alice")
    with pytest.raises(GgctlError) as err:
        teardown(alice, dry_run=False, console=quiet())
    assert "stray" in err.value.message and stray.id in err.value.message
    assert "openstack port delete" in err.value.hint


# ------------------------------------------------------------------ 13.14


@pytest.mark.parametrize(
    "owner", ["network:ha_router_replicated_interface", "network:router_interface_distributed"]
)
def test_ha_and_dvr_router_interfaces(fake_cloud, alice, owner):
    fake_cloud.world.settings.router_interface_owner = owner
    reserve(alice, dry_run=False, console=quiet())
    assert any(p["device_owner"] == owner for p in fake_cloud.world.resources("ports"))
    assert reserve(alice, dry_run=False, console=quiet()).actions == []  # rerun: nothing
    assert teardown(alice, dry_run=False, console=quiet()).leaks == {}
    assert held(fake_cloud) == {} and fake_cloud.world.count("routers", user="alice") == 0


# ------------------------------------------------------------------ 13.15


def test_duplicate_image_names_take_the_newest_active_public(fake_cloud, alice):
    world = fake_cloud.world
    stock = next(i for i in world.table("images").values() if i["name"] == "CC-Ubuntu24.04")
    project = world.project("CHI-251409").id
    for iid, vis, created, status in (
        ("11111111-1111-4111-8111-111111111111", "public", "2026-11-01T00:00:00Z", "active"),
        ("22222222-2222-4222-8222-222222222222", "private", "2026-11-20T00:00:00Z", "active"),
        ("33333333-3333-4333-8333-333333333333", "public", "2026-11-25T00:00:00Z", "queued"),
    ):
        world.add(
            "images",
            {**stock, "id": iid, "visibility": vis, "created_at": created, "status": status}
            | ({"owner": project} if vis == "private" else {}),
        )
    console = quiet()
    reserve(alice, dry_run=False, console=console)
    assert {s["image"]["id"] for s in world.resources("servers")} == {
        "11111111-1111-4111-8111-111111111111"
    }
    out = console.file.getvalue()
    assert "3 active images are called 'CC-Ubuntu24.04'" in out
    assert "using 11111111-1111-4111-8111-111111111111" in out


# ------------------------------------------------------------------ errors for people

# (status or None, kind, message): what the real services answer (None: connection reset).
FAULTS = {
    "401": (401, "", "The request you have made requires authentication."),
    "403": (403, "", 'Policy doesn\'t allow "os_compute_api:servers:index" to be performed.'),
    "404": (404, "", "The resource could not be found."),
    "409-busy": (409, "", "Conflict: the resource is busy."),
    "409-in-use": (409, "NetworkInUse", "Unable to complete operation on network."),
    "409-ip": (409, "IpAddressAlreadyAllocated", "IP address 192.168.10.10 already allocated"),
    "409-rule": (409, "SecurityGroupRuleExists", "Security group rule already exists."),
    "409-router": (409, "RouterInUse", "Router 1 still has ports"),
    "413": (413, "", "Request is too large: OverLimit Retry..."),
    "500": (500, "", "Internal Server Error: oslo.db DBConnectionError"),
    "503": (503, "", "The server is currently unavailable. Please try again later."),
    "reset": (None, "", ""),
}
# Which call each command makes for sure, and the words the user must see for it.
COMMANDS = {
    "reserve": ("GET", r"/network/v2\.0/networks"),
    "status": ("GET", r"/network/v2\.0/networks"),
    "extend": ("GET", r"/reservation/v1/leases$"),
    "teardown": ("GET", r"/network/v2\.0/networks"),
}


@pytest.fixture
def cli_env(fake_cloud, monkeypatch, tmp_path):
    return cli_setup(fake_cloud, monkeypatch, tmp_path)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_cloud_error_is_one_message(fake_cloud, cli_env, capsys, command, fault):
    state, key = cli_env
    if command == "extend":  # it needs a lease to get as far as the injected call
        ggctl(["--state-dir", str(state), "reserve", "--key", str(key)], capsys)
    status, kind, message = FAULTS[fault]
    method, path = COMMANDS[command]
    if status is None:
        fake_cloud.faults.fail(method, path, drop=True, times=100)
    else:
        fake_cloud.faults.fail(method, path, status=status, kind=kind, message=message, times=100)
    code, _, err = ggctl(["--state-dir", str(state), *argv_for(command, key)], capsys)
    assert code == 1, err
    assert "Traceback" not in err
    assert err.count("error:") == 1, err
    if message:
        assert message[:30] in " ".join(err.split()), err
    assert "hint:" in err
    log = state / "errors.log"
    assert "Traceback" in log.read_text()
    # -v shows the traceback on screen too
    fake_cloud.faults.clear()
    if status is None:
        fake_cloud.faults.fail(method, path, drop=True, times=100)
    else:
        fake_cloud.faults.fail(method, path, status=status, kind=kind, message=message, times=100)
    code, _, err = ggctl(["-v", "--state-dir", str(state), *argv_for(command, key)], capsys)
    assert code == 1 and "Traceback" in err


def test_connection_refused_is_one_message(cli_env, capsys, monkeypatch, tmp_path):
    from ggctl.ports import free_port

    state, key = cli_env
    port = free_port()  # nothing listens there
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.delenv("OS_CLOUD")
    monkeypatch.setenv("OS_AUTH_URL", f"http://127.0.0.1:{port}/identity/v3")
    monkeypatch.setenv("OS_AUTH_TYPE", "v3applicationcredential")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_ID", "abc")
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "not-a-real-secret")
    for command in COMMANDS:
        code, _, err = ggctl(["--state-dir", str(state), *argv_for(command, key)], capsys)
        assert code == 1 and "Traceback" not in err, err
        assert f"127.0.0.1:{port}" in err and "hint:" in err
