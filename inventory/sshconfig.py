"""An ssh_config next to the state: `ssh -F <state>/ssh_config node-1` just works.

It is the one description of how to reach the nodes: `ggctl ssh`, Ansible (the inventory
passes `-F` to it), the API tunnel and `ggctl build` all use it. Options given on ssh's
command line apply only to the final host, never to the ProxyJump hop (ssh starts the
jump as `ssh -F <this file> -W host:port node-0` and passes no `-o`), so the key and the
host-key settings must live here, in node-0's block too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SSH_USER = "cc"  # the default user of Chameleon's CC-Ubuntu images
JUMP_HOST = "node-0"  # the only node with a floating IP
SSH_CONFIG_FILE = "ssh_config"
KNOWN_HOSTS_FILE = "known_hosts"


def _quoted(value: str | Path) -> str:
    """An ssh_config argument; double quotes keep paths with spaces in one piece."""
    return '"' + str(value).replace('"', "") + '"'


def host_key_alias(node: dict[str, Any]) -> str:
    """Under which name a node's host key is remembered: its server, not its address.

    Floating IPs and the private .10/.11/.12 addresses come back with every new
    reservation, each time with a new host key; keyed by the server's id, a new server
    is a new entry (accepted on first use), never a "host key changed" refusal.
    """
    server = str(node.get("id") or node.get("name") or "")
    return f"{node['node']}-{server[:12]}" if server else str(node["node"])


def build_ssh_config(state: dict[str, Any], known_hosts: Path | None = None) -> str:
    """node-0 on its floating IP; every other node through node-0 (ProxyJump).

    Each Host line also names the address (floating or private IP), so that Ansible,
    which connects to `ansible_host`, picks the same block with `-F`.
    """
    fip = state["floating_ip"]
    key = state.get("private_key")
    lines = ["# Written by `ggctl reserve`; use: ssh -F THIS_FILE node-1", ""]
    for n in state["nodes"]:
        jump = n["node"] != JUMP_HOST
        address = n["private_ip"] if jump else fip
        lines += [
            f"Host {n['node']} {address}",
            f"    HostName {address}",
            f"    User {SSH_USER}",
        ]
        if jump:
            lines.append(f"    ProxyJump {JUMP_HOST}")
        if key:
            lines += [f"    IdentityFile {_quoted(key)}", "    IdentitiesOnly yes"]
        lines.append("    StrictHostKeyChecking accept-new")
        if known_hosts is not None:
            lines += [
                f"    UserKnownHostsFile {_quoted(known_hosts)}",
                f"    HostKeyAlias {host_key_alias(n)}",
            ]
        lines.append("")
    return "\n".join(lines)


def write_ssh_config(state: dict[str, Any], path: Path) -> Path:
    """Write it (0600) with its own known_hosts file next to it."""
    text = build_ssh_config(state, known_hosts=path.parent / KNOWN_HOSTS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def ssh_argv(config: Path, node: str, command: list[str]) -> list[str]:
    """The ssh command line for `ggctl ssh node-N [-- CMD]`."""
    return ["ssh", "-F", str(config), node, *command]
