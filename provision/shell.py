"""`ggctl ssh node-N [-- CMD]`: ssh through node-0 with the ssh_config written by reserve."""

from __future__ import annotations

import re
from pathlib import Path

from ggctl.errors import GgctlError
from ggctl.inventory.sshconfig import ssh_argv


def ssh_command(state_dir: Path, node: str, command: list[str]) -> list[str]:
    """The ssh argv for a node, or a clear error when there is no reservation."""
    if not re.fullmatch(r"node-\d+", node):
        raise GgctlError(f"unknown node {node!r}", hint="use node-0, node-1 or node-2")
    config = Path(state_dir).expanduser() / "ssh_config"
    if not config.is_file():
        raise GgctlError(
            "no ssh_config: nothing reserved yet (or it was torn down)",
            hint="run `ggctl reserve` (or `ggctl status` to check)",
        )
    if not re.search(rf"^Host {re.escape(node)}(\s|$)", config.read_text(), re.MULTILINE):
        raise GgctlError(f"{node} is not among the reserved nodes", hint=f"see {config}")
    if command and command[0] == "--":
        command = command[1:]
    return ssh_argv(config, node, command)
