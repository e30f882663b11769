"""An ssh_config next to the state: `ssh -F <state>/ssh_config node-1` just works."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ggctl.inventory.ansible import JUMP_HOST, SSH_USER


def build_ssh_config(state: dict[str, Any]) -> str:
    """node-0 on its floating IP; every other node through node-0 (ProxyJump)."""
    fip = state["floating_ip"]
    key = state.get("private_key")
    lines = ["# Written by `ggctl reserve`; use: ssh -F THIS_FILE node-1", ""]
    for n in state["nodes"]:
        jump = n["node"] != JUMP_HOST
        lines += [
            f"Host {n['node']}",
            f"    HostName {n['private_ip'] if jump else fip}",
            f"    User {SSH_USER}",
        ]
        if jump:
            lines.append(f"    ProxyJump {JUMP_HOST}")
        if key:
            lines += [f"    IdentityFile {key}", "    IdentitiesOnly yes"]
        lines += ["    StrictHostKeyChecking accept-new", ""]
    return "\n".join(lines)


def write_ssh_config(state: dict[str, Any], path: Path) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(build_ssh_config(state))
    return path


def ssh_argv(config: Path, node: str, command: list[str]) -> list[str]:
    """The ssh command line for `ggctl ssh node-N [-- CMD]`."""
    return ["ssh", "-F", str(config), node, *command]
