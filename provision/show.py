"""Rendering for the CLI: plans, status (table/json/yaml), leak reports, and -v logging."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from ggctl.provision.auth import REDACTOR
from ggctl.provision.plan import Action


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (not the one of the first command run in this
    process, which a test harness or a redirect may have closed since)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(verbose: int) -> None:
    """-v: ggctl's steps and retries; -vv: also every HTTP call (secrets redacted)."""
    if verbose <= 0:
        return
    handler = _StderrHandler()
    handler.addFilter(REDACTOR)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # one handler however many commands run in one process
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("ggctl").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    if verbose > 1:
        for name in ("keystoneauth", "openstack", "blazarclient"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def print_plan(console: Console, actions: list[Action], *, title: str) -> None:
    if not actions:
        console.print(f"[green]{title}: nothing to do[/]", highlight=False)
        return
    table = Table(title=f"{title}: {len(actions)} action(s)", title_justify="left")
    for col in ("op", "kind", "name", "detail"):
        table.add_column(col)
    for a in actions:
        table.add_row(a.op, a.kind, a.name, a.reason)
    console.print(table)


def status_table(data: dict[str, Any]) -> Table:
    lease = data.get("lease") or {}
    title = (
        f"{data.get('suffix')} at {data.get('site')} ({data.get('project') or '?'}): "
        f"lease {lease.get('name', 'none')} {lease.get('status', '')}"
    )
    if lease.get("end"):
        from ggctl.provision.status import remaining

        title += f", ends {lease['end']} ({lease.get('remaining') or remaining(lease['end'])})"
    table = Table(title=title, title_justify="left")
    for col in ("node", "server", "status", "private IP", "public-net IP", "floating IP"):
        table.add_column(col)
    for n in data.get("nodes") or []:
        fip = data.get("floating_ip") if n["node"] == "node-0" else ""
        table.add_row(
            n["node"],
            n["name"],
            n["status"],
            n.get("private_ip") or "",
            n.get("public_net_ip") or "",
            fip or "",
        )
    return table


def print_status(console: Console, data: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        console.print_json(json.dumps(data, default=str))
        return
    if fmt == "yaml":
        import yaml

        console.print(yaml.safe_dump(data, sort_keys=False), end="", highlight=False, markup=False)
        return
    console.print(status_table(data))
    for n in data.get("nodes") or []:
        if n.get("status") == "ERROR":  # Nova's text, printed as it is (no markup)
            console.print(
                f"{n['name']} is in ERROR: {n.get('fault') or 'no fault message'}",
                style="yellow",
                markup=False,
                highlight=False,
            )
    counts = {k: len(v) for k, v in (data.get("resources") or {}).items()}
    console.print(
        "resources: " + (", ".join(f"{v} {k}" for k, v in counts.items()) or "none"),
        highlight=False,
    )
    for key in ("inventory", "ssh_config"):
        if data.get(key):
            console.print(f"{key}: {data[key]}", highlight=False)
    for name, section in data.items():
        if name not in _CORE and isinstance(section, dict):
            console.print(f"[bold]{name}[/]: " + json.dumps(section, default=str), highlight=False)


_CORE = {
    "suffix",
    "site",
    "project",
    "user",
    "lease",
    "floating_ip",
    "nodes",
    "resources",
    "public_key",
    "private_key",
    "updated_at",
    "inventory",
    "ssh_config",
}


def print_leaks(console: Console, leaks: dict[str, list[str]]) -> None:
    if not leaks:
        console.print("[green]leak report: nothing of yours is left[/]")
        return
    table = Table(title="leak report: still there", title_justify="left")
    table.add_column("kind")
    table.add_column("resources")
    for kind, items in leaks.items():
        table.add_row(kind, "\n".join(items))
    console.print(table)
