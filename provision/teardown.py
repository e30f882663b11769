"""`ggctl teardown`: plan to nothing, delete in dependency order, wait, report leaks.

Works without the state file (everything of ours is found by marker and suffixed name)
and is safe to rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console

from ggctl.provision import record
from ggctl.provision.actual import Actual
from ggctl.provision.apply import Context, apply
from ggctl.provision.context import open_session
from ggctl.provision.discover import read_actual
from ggctl.provision.errors import cloud_errors
from ggctl.provision.plan import Action, plan_teardown


@dataclass
class TeardownResult:
    """What was (or would be) deleted, and what of ours is still there afterwards."""

    suffix: str
    actions: list[Action]
    dry_run: bool
    leaks: dict[str, list[str]]


def leak_report(actual: Actual) -> dict[str, list[str]]:
    """Anything of ours still there, per kind."""
    return {k: [f"{f.name} ({f.id})" for f in v] for k, v in actual.items.items() if v}


def teardown(settings: Any, *, dry_run: bool, console: Console) -> TeardownResult:
    """Delete everything of this user's, or list it with dry_run."""
    with cloud_errors("tear down"):
        s = open_session(settings, need_key=False)
        actual = read_actual(s.cloud, s.top)
        actions = plan_teardown(actual)
        if dry_run:
            return TeardownResult(s.top.suffix, actions, True, {})
        ctx = Context(s.cloud, s.top, s.timing, actual, console)
        if actions:
            apply(ctx, actions, title="teardown")
        leaks = leak_report(read_actual(s.cloud, s.top))
        if not leaks:
            record.forget(s.state)
        return TeardownResult(s.top.suffix, actions, False, leaks)
