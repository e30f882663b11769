"""`ggctl reserve`, `status` and `teardown` against real Keystone, Nova, Neutron, Placement,
Glance and Blazar (stack.py), counted afterwards with the real admin API.

The tests share one stack and run in file order: interrupted reserves first (each ends in
a teardown that must leave nothing), then the full journey of two users of one project,
then the error paths. Every ggctl call is the real CLI in its own process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cloud_helpers import make_key

from openstack_real.stack import COMPUTE_HOST, HOST_SLOTS, Stack

pytestmark = [pytest.mark.openstack, pytest.mark.slow]

CLI_TIMEOUT = 600  # hang detector for one ggctl command on a loaded machine
POLL = 0.3
# Waits as a user would configure them, but polling every second (the stack is local).
FAST_ENV = {
    "GGCTL_CLOUD__POLL_INTERVAL": "1",
    "GGCTL_CLOUD__RETRY_BACKOFF": "1",
    "GGCTL_CLOUD__LEASE_TIMEOUT": "300",
    "GGCTL_CLOUD__SERVER_TIMEOUT": "300",
    "GGCTL_CLOUD__DELETE_TIMEOUT": "300",
}
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def env_for(stack: Stack, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GGCTL_"))}
    env.update(FAST_ENV)
    env["OS_CLIENT_CONFIG_FILE"] = str(stack.root / "clouds.yaml")
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env["COLUMNS"] = "200"
    return env


def argv(tmp: Path, cloud: str, *args: str, user: str | None = None) -> list[str]:
    user = user or cloud.split("-")[0]
    state = tmp / f"state-{user}"
    cmd = [sys.executable, "-m", "ggctl", "--state-dir", str(state), *args, "--os-cloud", cloud]
    if args[0] == "reserve":
        cmd += ["--key", str(make_key(tmp, user))]
    return cmd


def ggctl(
    stack: Stack, tmp: Path, cloud: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp / "home").mkdir(exist_ok=True)
    return subprocess.run(
        argv(tmp, cloud, *args),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env={**env_for(stack, tmp / "home"), **(env or {})},
        check=False,
    )


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return r


def clear_failure(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A failure the user can act on: non-zero exit, no traceback, the words we expect."""
    text = r.stdout + r.stderr
    assert r.returncode != 0, text[-3000:]
    assert "Traceback" not in text, text[-5000:]
    for needle in needles:
        assert re.search(needle, text, re.IGNORECASE), f"{needle!r} not in:\n{text[-3000:]}"
    return text


# ------------------------------------------------------------------ what the admin sees


def held(stack: Stack, suffix: str | None = None) -> dict[str, int]:
    """What exists in the demo project, counted with the admin API ({kind: n}, zeros left
    out). With `suffix`, only what is that user's (name suffix, or the owner marker on
    floating IPs); without, everything a user could have made there."""
    conn = stack.admin()
    project = stack.project_id

    def mine(name: str | None, description: str | None = None) -> bool:
        if suffix is None:
            return True
        return (name or "").endswith(f"-{suffix}") or f"owner={suffix}" in (description or "")

    counts: dict[str, int] = {}

    def add(kind: str, items: list[Any]) -> None:
        if items:
            counts[kind] = len(items)

    add(
        "servers",
        [s for s in conn.compute.servers(all_projects=True, project_id=project) if mine(s.name)],
    )
    add(
        "ports",
        [
            p
            for p in conn.network.ports(project_id=project)
            if not (p.device_owner or "").startswith("network:") and mine(p.name)
        ],
    )
    add(
        "floatingips",
        [f for f in conn.network.ips(project_id=project) if mine(None, f.description)],
    )
    add("routers", [r for r in conn.network.routers(project_id=project) if mine(r.name)])
    add("networks", [n for n in conn.network.networks(project_id=project) if mine(n.name)])
    add("subnets", [s for s in conn.network.subnets(project_id=project) if mine(s.name)])
    add(
        "security_groups",
        [
            g
            for g in conn.network.security_groups(project_id=project)
            if g.name != "default" and mine(g.name)
        ],
    )
    keypairs = []
    for name, info in stack.users.items():
        if suffix is None or name == suffix:
            keypairs += list(conn.compute.keypairs(user_id=info["user_id"]))
    add("keypairs", keypairs)
    leases = [
        lease
        for lease in stack.blazar_admin().lease.list()
        if lease.get("project_id") == project and mine(lease.get("name"))
    ]
    add("leases", leases)
    lease_rids = {r["id"] for lease in leases for r in lease.get("reservations", [])}
    add(
        "reserved_flavors",
        [
            f
            for f in conn.compute.flavors(details=True, is_public=None)
            if f.name.startswith("reservation:")
            and (suffix is None or f.name.split(":", 1)[1] in lease_rids)
        ],
    )
    return counts


FULL = {
    "servers": 3,
    "ports": 6,
    "floatingips": 1,
    "routers": 1,
    "networks": 2,
    "subnets": 2,
    "security_groups": 1,
    "keypairs": 1,
    "leases": 1,
    "reserved_flavors": 1,
}


def mutations_since(stack: Stack, mark: int) -> list[str]:
    """Mutating requests any API served after access-log line `mark` (token issue aside)."""
    return [
        line
        for line in stack.access_log()[mark:]
        if line.split()[1] in MUTATING and "/auth/tokens" not in line
    ]


def run_watching(
    stack: Stack, tmp: Path, cloud: str, watch: Callable[[], bool], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run `ggctl ARGS`, calling `watch()` every POLL s meanwhile; SIGKILL ggctl (and
    return None as its output) the moment `watch()` is true."""
    (tmp / "home").mkdir(exist_ok=True)
    log = tmp / "ggctl-watched.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv(tmp, cloud, *args),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env_for(stack, tmp / "home"),
        )
        try:
            for _ in range(int(CLI_TIMEOUT / POLL)):
                if watch():
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    return subprocess.CompletedProcess(proc.args, -9, "", "")
                if proc.poll() is not None:
                    text = log.read_text()
                    return subprocess.CompletedProcess(proc.args, proc.returncode, text, "")
                time.sleep(POLL)
            pytest.fail(f"ggctl {' '.join(args)} still running after {CLI_TIMEOUT} s")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def kill_when(stack: Stack, tmp: Path, cloud: str, condition: Callable[[], bool], what: str):
    """Start `ggctl reserve` and SIGKILL it the moment `condition()` holds."""
    r = run_watching(stack, tmp, cloud, condition, "reserve")
    assert r.returncode == -9, f"reserve ended ({r.returncode}) before {what}:\n{r.stdout}"


# ------------------------------------------------------------------ the tests


def _lease_pending(stack: Stack) -> Callable[[], bool]:
    blazar = stack.blazar_admin()
    return lambda: any(
        lease["project_id"] == stack.project_id and lease["status"] != "ACTIVE"
        for lease in blazar.lease.list()
    )


def _between_servers(stack: Stack) -> Callable[[], bool]:
    conn = stack.admin()
    return lambda: (
        1 <= len(list(conn.compute.servers(all_projects=True, project_id=stack.project_id))) < 3
    )


def _floating_ip(stack: Stack) -> Callable[[], bool]:
    conn = stack.admin()
    return lambda: bool(list(conn.network.ips(project_id=stack.project_id)))


@pytest.mark.parametrize(
    "point,condition,resume",
    [
        ("lease PENDING", _lease_pending, False),
        # Killed half-way through the servers, reserve is run again first: it keeps what
        # was made and makes the rest (one resume on the real stack; the fake's crash tests
        # resume after every mutating step).
        ("between servers", _between_servers, True),
        ("floating IP association", _floating_ip, False),
    ],
)
def test_killed_reserve_then_teardown_leaves_nothing(stack, tmp_path, point, condition, resume):
    kill_when(stack, tmp_path, "alice", condition(stack), point)
    assert held(stack) != {}
    if resume:
        ok(ggctl(stack, tmp_path, "alice", "reserve"))
        assert held(stack, "alice") == FULL
    ok(ggctl(stack, tmp_path, "alice", "teardown", "--yes"))
    assert held(stack) == {}


def test_two_users_reserve_status_teardown(stack, tmp_path):
    """alice reserves (lease PENDING → ACTIVE, 3 servers ACTIVE on the reserved flavor),
    a second reserve changes nothing, status -o json tells it; bob reserves in the same
    project; each teardown removes only its own, and then nothing is left."""
    blazar = stack.blazar_admin()
    seen: list[str] = []

    def lease_status() -> bool:
        for x in blazar.lease.list():
            if x["name"] == "ggctl-alice" and (not seen or seen[-1] != x["status"]):
                seen.append(x["status"])
        return False

    r = ok(run_watching(stack, tmp_path, "alice", lease_status, "reserve"))
    assert "node-0-alice" in r.stdout
    assert held(stack, "alice") == FULL
    # the lease was seen waiting for Blazar's start event, then ACTIVE (Blazar 18 says
    # CREATING before PENDING and STARTING after it: seen ['CREATING', 'PENDING',
    # 'STARTING', 'ACTIVE'], polls permitting)
    assert "PENDING" in seen and seen[-1] == "ACTIVE", seen

    conn = stack.admin()
    (lease,) = [x for x in blazar.lease.list() if x["name"] == "ggctl-alice"]
    rid = lease["reservations"][0]["id"]
    servers = list(conn.compute.servers(all_projects=True, project_id=stack.project_id))
    assert sorted(s.name for s in servers) == ["node-0-alice", "node-1-alice", "node-2-alice"]
    for s in servers:
        assert s.status == "ACTIVE"
        assert s.flavor["original_name"] == f"reservation:{rid}"
        assert s.compute_host == COMPUTE_HOST
    (router,) = [x for x in conn.network.routers(project_id=stack.project_id)]
    assert (
        router.external_gateway_info["network_id"]
        == conn.network.find_network("public", ignore_missing=False).id
    )
    (fip,) = list(conn.network.ips(project_id=stack.project_id))
    node0_ports = {
        p.id
        for p in conn.network.ports(
            device_id=next(s.id for s in servers if s.name == "node-0-alice")
        )
    }
    assert fip.port_id in node0_ports

    mark = len(stack.access_log())
    r = ok(ggctl(stack, tmp_path, "alice", "reserve"))
    assert mutations_since(stack, mark) == []

    status = json.loads(ok(ggctl(stack, tmp_path, "alice", "status", "-o", "json")).stdout)
    assert status["lease"]["status"] == "ACTIVE" and len(status["nodes"]) == 3
    assert fip.floating_ip_address in json.dumps(status)

    # Blazar 18 takes new dates for a flavor:instance lease (flavor_plugin.update_reservation
    # checks the hosts stay free; only new reservation parameters are NotImplemented): the
    # end moves by the hour, the lease is ACTIVE again, the servers are untouched.
    r = ok(ggctl(stack, tmp_path, "alice", "extend", "--hours", "1"))
    assert "ACTIVE" in r.stdout, r.stdout
    (after,) = [x for x in blazar.lease.list() if x["name"] == "ggctl-alice"]
    assert after["status"] == "ACTIVE"
    moved = datetime.fromisoformat(after["end_date"]) - datetime.fromisoformat(lease["end_date"])
    assert moved == timedelta(hours=1), (lease["end_date"], after["end_date"])
    assert held(stack, "alice") == FULL

    ok(ggctl(stack, tmp_path, "bob", "reserve"))
    assert held(stack, "bob") == FULL
    assert held(stack, "alice") == FULL

    ok(ggctl(stack, tmp_path, "bob", "teardown", "--yes"))
    assert held(stack, "bob") == {}
    assert held(stack, "alice") == FULL
    ok(ggctl(stack, tmp_path, "alice", "teardown", "--yes"))
    assert held(stack) == {}


def test_wrong_application_credential(stack, tmp_path):
    r = ggctl(stack, tmp_path, "wrong-secret", "reserve")
    clear_failure(r, "Keystone", "refused")
    assert held(stack) == {}


def test_restricted_application_credential(stack, tmp_path):
    """Keystone refuses trusts from a restricted application credential's token; Blazar
    answers the lease create with a bare 500. ggctl names the cause and the fix."""
    if not stack.procs:
        pytest.skip("attached to a stack another process runs: this test restarts Keystone")
    # Keystone 30 refuses trusts from every application credential by default (older ones,
    # as the fake models Chameleon's, only from restricted ones): run it that way here.
    with stack.keystone_refusing_app_cred_trusts():
        r = ggctl(stack, tmp_path, "alice-restricted", "reserve")
    clear_failure(r, "restricted", '"unrestricted"', "application credential")
    assert "lease" not in held(stack)
    ok(ggctl(stack, tmp_path, "alice-restricted", "teardown", "--yes"))
    assert held(stack) == {}


def test_not_enough_hosts(stack, tmp_path):
    """More instances than the one compute host holds: Blazar refuses the lease."""
    r = ggctl(stack, tmp_path, "alice", "reserve", env={"GGCTL_CLOUD__NODES": str(HOST_SLOTS + 1)})
    # Blazar's NotEnoughHostsAvailable (a 500 without retries), in ggctl's words and with
    # where to look.
    clear_failure(r, "has no room for", "Not enough hosts available", "Flavor Calendar")
    assert held(stack) == {}


def test_quota_exceeded(stack, tmp_path):
    """A real Neutron project quota (one network) stops reserve with a clear message;
    teardown then removes what was made."""
    conn = stack.admin()
    conn.network.update_quota(stack.project_id, networks=1)
    try:
        r = ggctl(stack, tmp_path, "alice", "reserve")
        clear_failure(r, "quota")
    finally:
        conn.network.update_quota(stack.project_id, networks=100)
    ok(ggctl(stack, tmp_path, "alice", "teardown", "--yes"))
    assert held(stack) == {}
