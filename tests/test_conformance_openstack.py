"""Conformance tier: the real `openstack` CLI (python-openstackclient, with
python-blazarclient's `openstack reservation ...` plugin) against the fake cloud, run the
way a user runs it on Chameleon. What it shows of the fake is what any client would see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloud_helpers import make_key

pytestmark = pytest.mark.conformance

pytest.importorskip("openstackclient", reason="python-openstackclient (test extra) missing")
OPENSTACK = shutil.which("openstack", path=str(Path(sys.executable).parent)) or "openstack"


@pytest.fixture
def osc(fake_cloud, tmp_path):
    """Run `openstack ARGS` as alice; -f json output parsed. Raises on a non-zero exit."""
    clouds = fake_cloud.clouds_yaml(tmp_path / "clouds.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GGCTL_"))} | {
        "OS_CLIENT_CONFIG_FILE": str(clouds),
        "OS_CLOUD": "fake",
        "HOME": str(tmp_path),
    }

    def run(*args: str, ok: bool = True, as_json: bool = True) -> object:
        argv = [OPENSTACK, *args, *(["-f", "json"] if as_json else [])]
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        if ok and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
        if not ok:
            assert r.returncode != 0, f"{' '.join(args)} should have failed: {r.stdout}"
            return r.stderr
        if not (as_json and r.stdout.strip()):
            return r.stdout
        # blazarclient's create prints "Created a new lease:" before the document
        start = min(i for i in (r.stdout.find("{"), r.stdout.find("[")) if i >= 0)
        return json.loads(r.stdout[start:])

    return run


def test_user_builds_and_removes_a_node_with_the_openstack_cli(fake_cloud, osc, tmp_path):
    key = make_key(tmp_path)
    osc("keypair", "create", "--public-key", str(key), "k1")
    net = osc("network", "create", "n1")
    osc("subnet", "create", "--network", "n1", "--subnet-range", "192.168.77.0/24", "s1")
    osc("router", "create", "r1")
    osc("router", "set", "--external-gateway", "public", "r1", as_json=False)
    osc("router", "add", "subnet", "r1", "s1", as_json=False)
    osc("security", "group", "create", "sg1")
    osc("security", "group", "rule", "create", "--proto", "tcp", "--dst-port", "22", "sg1")
    # Neutron's duplicate test: no remote prefix equals 0.0.0.0/0, "6" equals "tcp"
    err = osc(
        "security",
        "group",
        "rule",
        "create",
        "--proto",
        "6",
        "--dst-port",
        "22",
        "--remote-ip",
        "0.0.0.0/0",
        "sg1",
        ok=False,
    )
    assert "already exists" in err
    port = osc(
        "port",
        "create",
        "--network",
        "n1",
        "--fixed-ip",
        "subnet=s1,ip-address=192.168.77.10",
        "--security-group",
        "sg1",
        "p1",
    )
    assert port["fixed_ips"][0]["ip_address"] == "192.168.77.10"

    end = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
    lease = osc(
        "reservation",
        "lease",
        "create",
        "--reservation",
        "resource_type=flavor:instance,flavor_id=4,amount=1",
        "--end-date",
        end,
        "l1",
    )
    assert lease["status"] == "PENDING"
    # (a show by name lists first: each show is two polls of the lease's clock)
    assert osc("reservation", "lease", "show", "l1")["status"] == "ACTIVE"
    assert [x["name"] for x in osc("reservation", "lease", "list")] == ["l1"]
    reservations = osc("reservation", "lease", "show", "l1")["reservations"]
    if isinstance(reservations, str):  # blazarclient prints it as a JSON text
        reservations = json.loads(reservations)
    rid = (reservations[0] if isinstance(reservations, list) else reservations)["id"]
    flavors = {f["Name"]: f["ID"] for f in osc("flavor", "list", "--all")}
    assert flavors[f"reservation:{rid}"] == rid
    assert "CC-Ubuntu24.04" in {i["Name"] for i in osc("image", "list")}

    server = osc(
        "server",
        "create",
        "--flavor",
        rid,
        "--image",
        "CC-Ubuntu24.04",
        "--port",
        "p1",
        "--key-name",
        "k1",
        "--wait",
        "vm1",
    )
    assert server["status"] == "ACTIVE"
    fip = osc("floating", "ip", "create", "public")
    osc("floating", "ip", "set", "--port", "p1", fip["floating_ip_address"], as_json=False)
    assert osc("floating", "ip", "show", fip["id"])["port_id"] == port["id"]

    osc("server", "delete", "--wait", "vm1", as_json=False)
    osc("floating", "ip", "delete", fip["id"], as_json=False)
    osc("port", "delete", "p1", as_json=False)
    osc("router", "remove", "subnet", "r1", "s1", as_json=False)
    osc("router", "unset", "--external-gateway", "r1", as_json=False)
    osc("router", "delete", "r1", as_json=False)
    osc("network", "delete", net["id"], as_json=False)
    osc("security", "group", "delete", "sg1", as_json=False)
    osc("keypair", "delete", "k1", as_json=False)
    osc("reservation", "lease", "delete", "l1", as_json=False)
    assert fake_cloud.world.count(user="alice") == {}
