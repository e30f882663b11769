"""A server in ERROR, classified by its fault as Nova shows it (GET /servers/{id}):
transient faults are booted again a bounded number of times, permanent ones stop at once
and keep the server for `openstack server show`. Through the real openstacksdk against the
fake cloud, which ends builds in ERROR with Nova's own fault texts (nova/exception.py)."""

from __future__ import annotations

import pytest
from cloud_helpers import FULL, clean_os_env, held, mutations, quiet, settings, use_env
from fakes.openstack.faults import BUILD_ABORTED, NO_VALID_HOST, RETRIES_EXHAUSTED

from ggctl.errors import GgctlError
from ggctl.provision.apply import SERVER_ATTEMPTS
from ggctl.provision.errors import classify_server_fault
from ggctl.provision.reserve import reserve

NETWORK = BUILD_ABORTED.format(
    uuid="{uuid}", reason="Failed to allocate the network(s), not rescheduling."
)
MEMORY = BUILD_ABORTED.format(
    uuid="{uuid}", reason="Flavor's memory is too small for requested image."
)


@pytest.fixture
def alice(fake_cloud, monkeypatch, tmp_path):
    clean_os_env(monkeypatch, tmp_path)
    use_env(monkeypatch, fake_cloud, "alice")
    return settings(tmp_path, "alice")


def boots(fake_cloud, name: str) -> list[dict]:
    """Every server of that name the fake still holds (deleted ones are gone)."""
    return [s for s in fake_cloud.world.resources("servers") if s["name"] == name]


def test_transient_fault_is_replaced(fake_cloud, alice):
    """A network allocation that timed out ("aborted ... not rescheduling"): boot again."""
    console = quiet()
    fake_cloud.faults.server_error(name="node-1-alice", message=NETWORK)
    reserve(alice, dry_run=False, console=console)
    assert held(fake_cloud) == FULL
    assert {s["status"] for s in fake_cloud.world.resources("servers")} == {"ACTIVE"}
    out = " ".join(console.file.getvalue().split())
    assert "node-1-alice went to ERROR (Build of instance" in out
    assert "Failed to allocate the network(s)" in out
    assert f"replacing it (attempt 2 of {SERVER_ATTEMPTS})" in out


def test_no_valid_host_stops_at_once_and_keeps_the_server(fake_cloud, alice):
    """No host on the lease's reserved flavor: booting again cannot help. One boot, the
    server kept in ERROR with its fault, a message naming it, the fault and what to do."""
    fake_cloud.faults.server_error(name="node-1-alice", message=NO_VALID_HOST, count=-1)
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    [kept] = boots(fake_cloud, "node-1-alice")
    assert kept["status"] == "ERROR" and kept["fault"]["message"] == NO_VALID_HOST
    assert kept["id"] in err.value.message and "node-1-alice" in err.value.message
    assert NO_VALID_HOST in err.value.message
    assert "reserved hosts" in err.value.message
    assert "ggctl status" in err.value.hint and "openstack server show" in err.value.hint
    # and `ggctl status` says it too
    from ggctl.provision.show import print_status
    from ggctl.provision.status import status

    console = quiet()
    data = status(alice)
    print_status(console, data, "table")
    [node] = [n for n in data["nodes"] if n["node"] == "node-1"]
    assert node["status"] == "ERROR" and node["fault"] == NO_VALID_HOST
    assert f"node-1-alice is in ERROR: {NO_VALID_HOST}" in " ".join(console.file.getvalue().split())


def test_image_that_does_not_fit_stops_at_once(fake_cloud, alice):
    fake_cloud.faults.server_error(name="node-2-alice", message=MEMORY, count=-1)
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    [kept] = boots(fake_cloud, "node-2-alice")
    assert kept["status"] == "ERROR"
    assert f"Build of instance {kept['id']} aborted: Flavor's memory" in err.value.message
    assert "--image" in err.value.hint


def test_rerun_after_a_permanent_fault_replaces_the_server(fake_cloud, alice):
    """Once the cause is gone, the rerun the message suggests replaces the kept server."""
    fake_cloud.faults.server_error(name="node-1-alice", message=NO_VALID_HOST)
    with pytest.raises(GgctlError):
        reserve(alice, dry_run=False, console=quiet())
    reserve(alice, dry_run=False, console=quiet())
    assert held(fake_cloud) == FULL
    assert [s["status"] for s in boots(fake_cloud, "node-1-alice")] == ["ACTIVE"]


def test_transient_faults_end_after_bounded_boots(fake_cloud, alice):
    """A fault that keeps coming back: SERVER_ATTEMPTS boots, then a message that says so."""
    fake_cloud.faults.server_error(name="node-0-alice", message=RETRIES_EXHAUSTED, count=-1)
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    [kept] = boots(fake_cloud, "node-0-alice")  # the earlier ones were deleted
    assert kept["status"] == "ERROR"
    assert f"went to ERROR {SERVER_ATTEMPTS} times" in err.value.message
    assert f"retrying build failures for instance {kept['id']}" in err.value.message
    assert "help desk" in err.value.hint and kept["id"] in err.value.hint
    # one request per boot, no more
    posts = [m for m in mutations(fake_cloud) if m == "POST /compute/v2.1/servers"]
    assert len(posts) == 3 + SERVER_ATTEMPTS - 1


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        (NO_VALID_HOST, False),
        ("No valid host was found. ", False),  # Placement had no candidate: empty reason
        (RETRIES_EXHAUSTED.format(uuid="u"), True),
        (NETWORK.format(uuid="u"), True),
        (BUILD_ABORTED.format(uuid="u", reason="Failure prepping block device."), True),
        (MEMORY.format(uuid="u"), False),
        (BUILD_ABORTED.format(uuid="u", reason="Image x is not active."), False),
        ("Build of instance u aborted: The created instance's disk would be too small.", False),
        ("Build of instance u was re-scheduled: Insufficient compute resources.", True),
        ("libvirtError: internal error: process exited while connecting to monitor", True),
        ("", True),
    ],
)
def test_fault_classes(message, transient):
    """Nova's texts (nova/exception.py msg_fmt; compute/manager.py picks which)."""
    assert classify_server_fault(message).transient is transient


def test_ggctl_reserve_says_it_in_one_message(fake_cloud, monkeypatch, tmp_path, capsys):
    """The same through the command: exit 1, one message, the traceback only in errors.log
    and with -v."""
    from cloud_helpers import FAST, make_key

    from ggctl.cli import main

    clean_os_env(monkeypatch, tmp_path)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(fake_cloud.clouds_yaml(tmp_path / "c.yaml")))
    monkeypatch.setenv("OS_CLOUD", "fake")
    for key, value in FAST.items():
        monkeypatch.setenv(f"GGCTL_CLOUD__{key.upper()}", str(value))
    monkeypatch.setenv("COLUMNS", "200")
    fake_cloud.faults.server_error(name="node-1-alice", message=NO_VALID_HOST, count=-1)
    state = tmp_path / "state"
    argv = ["--state-dir", str(state), "reserve", "--key", str(make_key(tmp_path))]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = " ".join(capsys.readouterr().err.split())
    assert exit_.value.code == 1 and "Traceback" not in err and err.count("error:") == 1
    assert "server node-1-alice (" in err and NO_VALID_HOST in err and "hint:" in err
    assert "Traceback" in (state / "errors.log").read_text()
    with pytest.raises(SystemExit) as exit_:
        main(["-v", *argv])
    assert exit_.value.code == 1 and "Traceback" in capsys.readouterr().err
