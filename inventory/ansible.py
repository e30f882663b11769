"""The provisioning state → the Ansible inventory (YAML) the cluster playbooks use."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from ggctl.errors import GgctlError
from ggctl.inventory.sshconfig import JUMP_HOST, SSH_CONFIG_FILE, SSH_USER

__all__ = ["INVENTORY_FILE", "JUMP_HOST", "SSH_USER", "build_inventory", "write_inventory"]


# Where `ggctl reserve` writes it in the state dir and `ggctl cluster` looks for it.
INVENTORY_FILE = "inventory.yaml"


def build_inventory(state: dict[str, Any], ssh_config: Path | None = None) -> dict[str, Any]:
    """The inventory as data: node-0 reached on its floating IP, the others through it.

    How ssh gets there (ProxyJump, key, known hosts) is the ssh_config's job: every host
    gets `-F <ssh_config>`, because `-o` options on ssh's command line never reach the
    jump host (see inventory/sshconfig.py). Without an ssh_config (data only), the
    connection settings are left out.
    """
    fip = state.get("floating_ip")
    nodes = state.get("nodes") or []
    if not fip or not nodes:
        raise GgctlError(
            "no reserved nodes with a floating IP in the state", hint="run `ggctl reserve` first"
        )
    hosts: dict[str, dict[str, Any]] = {}
    for n in nodes:
        host: dict[str, Any] = {
            # The address the ssh_config's Host line also names (node-0: floating IP).
            "ansible_host": fip if n["node"] == JUMP_HOST else n["private_ip"],
            "ansible_user": SSH_USER,
            "node_ip": n["private_ip"],
        }
        if ssh_config is not None:
            host["ansible_ssh_common_args"] = "-F " + shlex.quote(str(ssh_config))
            # The ssh_config decides on host keys (a new server is accepted once, into its
            # own known_hosts; a changed key is refused). Ansible's host_key_checking=False,
            # ggctl's default for hand-written inventories as it is kubespray's, would put
            # StrictHostKeyChecking=no ahead of it and let a changed host key through.
            host["ansible_host_key_checking"] = True
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
    """Write the inventory YAML (0600: it names hosts and paths, nothing secret); it uses
    the ssh_config that `write_ssh_config` writes next to it."""
    text = "# Written by `ggctl reserve` from the provisioning state; rewritten on each run.\n"
    inventory = build_inventory(state, ssh_config=path.parent / SSH_CONFIG_FILE)
    text += yaml.safe_dump(inventory, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
