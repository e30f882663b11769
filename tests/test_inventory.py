"""State → Ansible inventory and ssh_config; checked with the real ansible-inventory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ggctl.errors import GgctlError
from ggctl.inventory.ansible import build_inventory, write_inventory
from ggctl.inventory.sshconfig import build_ssh_config, write_ssh_config
from ggctl.provision.shell import ssh_command

STATE = {
    "suffix": "alice",
    "floating_ip": "129.114.27.5",
    "private_key": "/home/alice/.ssh/id_ed25519",
    "nodes": [
        {
            "node": f"node-{i}",
            "name": f"node-{i}-alice",
            "private_ip": f"192.168.1.1{i}",
            "public_net_ip": f"192.168.10.{20 + i}",
            "status": "ACTIVE",
            "id": f"s{i}",
        }
        for i in range(3)
    ],
}
ANSIBLE_INVENTORY = Path(sys.executable).with_name("ansible-inventory")


def run_ansible_inventory(path: Path, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
    }
    r = subprocess.run(
        [str(ANSIBLE_INVENTORY), "--list", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    return json.loads(r.stdout)


@pytest.mark.skipif(not ANSIBLE_INVENTORY.exists(), reason="ansible-core not installed")
def test_real_ansible_inventory_accepts_it(tmp_path):
    path = write_inventory(STATE, tmp_path / "inventory.yaml")
    assert path.stat().st_mode & 0o777 == 0o600
    inv = run_ansible_inventory(path, tmp_path)
    assert set(inv["kube_control_plane"]["hosts"]) == {"node-0"}
    assert set(inv["kube_node"]["hosts"]) == {"node-0", "node-1", "node-2"}
    assert set(inv["etcd"]["hosts"]) == {"node-0"}
    assert set(inv["registry"]["hosts"]) == {"node-0"}
    assert set(inv["k8s_cluster"]["children"]) == {"kube_control_plane", "kube_node"}
    hv = inv["_meta"]["hostvars"]
    assert hv["node-0"]["ansible_host"] == "129.114.27.5"
    for i in (1, 2):
        assert hv[f"node-{i}"]["ansible_host"] == f"192.168.1.1{i}"
        assert "-o ProxyJump=cc@129.114.27.5" in hv[f"node-{i}"]["ansible_ssh_common_args"]
    for i in range(3):
        assert hv[f"node-{i}"]["ansible_user"] == "cc"
        assert hv[f"node-{i}"]["node_ip"] == f"192.168.1.1{i}"
        assert hv[f"node-{i}"]["ansible_ssh_private_key_file"] == STATE["private_key"]


def test_lb_pool_reaches_metallb_and_stays_out_of_dhcp(tmp_path):
    from ggctl.provision.topology import PRIVATE, build_topology

    top = build_topology("alice", "ssh-ed25519 AAAA test")
    net = top.network(PRIVATE)
    assert net.dhcp_pool == ("192.168.1.2", "192.168.1.239")
    inv = build_inventory({**STATE, "lb_pool": "192.168.1.240-192.168.1.250"})
    assert inv["all"]["vars"]["metallb_address_pool"] == "192.168.1.240-192.168.1.250"
    assert "metallb_address_pool" not in build_inventory(STATE)["all"]["vars"]


def test_cluster_reads_the_inventory_reserve_writes(tmp_path):
    from ggctl.cluster.run import default_inventory
    from ggctl.inventory.ansible import INVENTORY_FILE
    from ggctl.state import StateDir

    assert default_inventory(StateDir(tmp_path)) == tmp_path / INVENTORY_FILE


def test_node0_is_not_its_own_jump_host():
    hosts = build_inventory(STATE)["all"]["hosts"]
    assert "ProxyJump" not in hosts["node-0"]["ansible_ssh_common_args"]


def test_no_floating_ip_no_inventory():
    with pytest.raises(GgctlError):
        build_inventory({**STATE, "floating_ip": None})


def test_ssh_config_jumps_through_node0(tmp_path):
    text = build_ssh_config(STATE)
    assert "Host node-0\n    HostName 129.114.27.5\n    User cc\n" in text
    assert "Host node-2\n    HostName 192.168.1.12\n    User cc\n    ProxyJump node-0\n" in text
    assert "IdentityFile /home/alice/.ssh/id_ed25519" in text
    path = write_ssh_config(STATE, tmp_path / "ssh_config")
    # ssh itself parses it: -G prints the resolved options without connecting
    r = subprocess.run(["ssh", "-G", "-F", str(path), "node-1"], capture_output=True, text=True)
    if r.returncode == 0:
        opts = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        assert opts["hostname"] == "192.168.1.11"
        assert opts["proxyjump"] == "node-0"
        assert opts["user"] == "cc"


def test_ggctl_ssh_command(tmp_path):
    write_ssh_config(STATE, tmp_path / "ssh_config")
    assert ssh_command(tmp_path, "node-1", ["--", "uptime"]) == [
        "ssh",
        "-F",
        str(tmp_path / "ssh_config"),
        "node-1",
        "uptime",
    ]
    with pytest.raises(GgctlError):
        ssh_command(tmp_path, "node-7", [])
    with pytest.raises(GgctlError):
        ssh_command(tmp_path, "rm -rf", [])
    with pytest.raises(GgctlError, match="nothing reserved"):
        ssh_command(tmp_path / "empty", "node-1", [])
