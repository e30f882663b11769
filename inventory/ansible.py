"""The provisioning state → the Ansible inventory (YAML) the cluster playbooks use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ggctl.errors import GgctlError

SSH_USER = "cc"  # the default user of Chameleon's CC-Ubuntu images
JUMP_HOST = "node-0"  # the only node with a floating IP


# Where `ggctl reserve` writes it in the state dir and `ggctl cluster` looks for it.
INVENTORY_FILE = "inventory.yaml"


def proxy_jump(floating_ip: str) -> str:
    return f"-o ProxyJump={SSH_USER}@{floating_ip} -o StrictHostKeyChecking=accept-new"


def build_inventory(state: dict[str, Any]) -> dict[str, Any]:
    """The inventory as data: node-0 reached on its floating IP, the others through it."""
    fip = state.get("floating_ip")
    nodes = state.get("nodes") or []
    if not fip or not nodes:
        raise GgctlError(
            "no reserved nodes with a floating IP in the state", hint="run `ggctl reserve` first"
        )
    hosts: dict[str, dict[str, Any]] = {}
    key = state.get("private_key")
    for n in nodes:
        host: dict[str, Any] = {
            "ansible_user": SSH_USER,
            "node_ip": n["private_ip"],
        }
        if n["node"] == JUMP_HOST:
            host["ansible_host"] = fip
            host["ansible_ssh_common_args"] = "-o StrictHostKeyChecking=accept-new"
        else:
            host["ansible_host"] = n["private_ip"]
            host["ansible_ssh_common_args"] = proxy_jump(fip)
        if key:
            host["ansible_ssh_private_key_file"] = key
        hosts[n["node"]] = host
    names = list(hosts)
    first = {JUMP_HOST: {}} if JUMP_HOST in hosts else {names[0]: {}}
    return {
        "all": {
            "vars": {
                "ansible_python_interpreter": "/usr/bin/python3",
                "floating_ip": fip,
                # Outside the experiment subnet's DHCP pool (provision/topology.py).
                **({"metallb_address_pool": state["lb_pool"]} if state.get("lb_pool") else {}),
            },
            "hosts": hosts,
            "children": {
                "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
                "kube_control_plane": {"hosts": dict(first)},
                "kube_node": {"hosts": {n: {} for n in names}},
                # One etcd member, stacked on the single control plane: what kubeadm's
                # stacked default gives with one control plane (three would need three
                # control planes to be worth it, and quorum across 3 small VMs costs).
                "etcd": {"hosts": dict(first)},
                # The private image registry (node-0:5000) lives on the jump host.
                "registry": {"hosts": dict(first)},
            },
        }
    }


def write_inventory(state: dict[str, Any], path: Path) -> Path:
    """Write the inventory YAML (0600: it names hosts and key paths, nothing secret)."""
    import os

    text = "# Written by `ggctl reserve` from the provisioning state; rewritten on each run.\n"
    text += yaml.safe_dump(build_inventory(state), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
