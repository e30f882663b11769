"""python-chi 1.x's known traps (chameleon.md §8), each shown handled against the fake."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from cloud_helpers import FULL, clean_os_env, held, quiet, settings, use_env

from ggctl.errors import GgctlError
from ggctl.provision.reserve import reserve
from ggctl.provision.teardown import teardown


@pytest.fixture
def alice(fake_cloud, monkeypatch, tmp_path):
    clean_os_env(monkeypatch, tmp_path)
    use_env(monkeypatch, fake_cloud, "alice")
    return settings(tmp_path, "alice")


def test_lease_in_error_fails_instead_of_returning(fake_cloud, alice):
    """Trap: Lease.wait() returns on ERROR. Ours raises at once, naming the state."""
    fake_cloud.faults.lease_error(name="ggctl-alice")
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    assert "ERROR" in err.value.message
    assert "ggctl teardown" in err.value.hint
    assert fake_cloud.world.count("servers") == 0  # nothing booted on a dead lease


def test_server_in_error_is_replaced(fake_cloud, alice):
    """Trap: Server.wait() returns on ERROR. Ours replaces the server (on a transient fault:
    see test_server_faults for the permanent ones) and goes on."""
    console = quiet()
    fault = "Build of instance {uuid} aborted: Failure prepping block device."
    fake_cloud.faults.server_error(name="node-1-alice", message=fault)
    reserve(alice, dry_run=False, console=console)
    assert held(fake_cloud) == FULL
    assert {s["status"] for s in fake_cloud.world.resources("servers")} == {"ACTIVE"}
    out = " ".join(console.file.getvalue().split())
    assert "node-1-alice went to ERROR (Build of instance" in out
    assert "replacing it" in out


def test_blazar_error_text_reaches_the_user(fake_cloud, alice):
    """Trap: create_lease logs Blazar's error and returns None ("Unable to make lease")."""
    text = "Not enough resources available with query flavor_id=4, amount=3"
    fake_cloud.faults.fail("POST", r"/reservation/v1/leases$", status=409, message=text)
    with pytest.raises(GgctlError) as err:
        reserve(alice, dry_run=False, console=quiet())
    assert text in err.value.message
    assert "Unable to make lease" not in err.value.message
    assert "Flavor Calendar" in err.value.hint


def test_a_classmates_free_floating_ip_is_never_taken(fake_cloud, alice, monkeypatch, tmp_path):
    """Trap: python-chi reuses any unbound floating IP of the project."""
    from ggctl.provision.auth import connect

    use_env(monkeypatch, fake_cloud, "bob")
    bobs = connect(None, "KVM@TACC").conn
    public = bobs.network.find_network("public", ignore_missing=False)
    free = bobs.network.create_ip(floating_network_id=public.id)
    use_env(monkeypatch, fake_cloud, "alice")
    state = reserve(alice, dry_run=False, console=quiet()).state
    assert state["floating_ip"] != free.floating_ip_address
    theirs = [f for f in fake_cloud.world.resources("floatingips") if f["id"] == free.id]
    assert theirs and theirs[0]["port_id"] is None  # untouched, still free
    teardown(alice, dry_run=False, console=quiet())
    assert [f["id"] for f in fake_cloud.world.resources("floatingips")] == [free.id]


def test_floating_ip_delete_that_did_nothing_is_caught(fake_cloud, alice):
    """Trap: python-chi's floating-IP delete can silently miss. Ours waits for the 404 and
    deletes again, so a DELETE that answered 204 without deleting does not leak."""
    reserve(alice, dry_run=False, console=quiet())
    rule = fake_cloud.faults.fail("DELETE", r"/v2.0/floatingips/", status=204, message=" ")
    td = teardown(alice, dry_run=False, console=quiet())
    assert rule.fired == 1
    assert td.leaks == {} and held(fake_cloud) == {}


def test_missing_blazarclient_is_a_clear_error():
    """Trap: python-chi's PyPI package does not depend on python-blazarclient."""
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "blazarclient" or name.startswith("blazarclient."):
                    raise ImportError("No module named 'blazarclient'")
        sys.meta_path.insert(0, Block())
        from ggctl.errors import GgctlError
        from ggctl.provision.lease import blazar_client
        try:
            blazar_client(None, "KVM@TACC", "public")
        except GgctlError as e:
            print("GGCTL:", e.message, "|", e.hint)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "GGCTL: python-blazarclient is not installed" in r.stdout, r.stderr
    assert "pip install" in r.stdout
