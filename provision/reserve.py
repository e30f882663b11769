"""`ggctl reserve`: plan from what exists, print or apply it, record state and inventory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console

from ggctl.inventory.ansible import INVENTORY_FILE, write_inventory
from ggctl.inventory.sshconfig import SSH_CONFIG_FILE, write_ssh_config
from ggctl.provision import record
from ggctl.provision.actual import Actual
from ggctl.provision.apply import Context, apply
from ggctl.provision.context import Session, open_session, private_key_for
from ggctl.provision.discover import read_actual
from ggctl.provision.errors import cloud_errors
from ggctl.provision.plan import Action, plan_reserve


@dataclass
class ReserveResult:
    """What a reserve did (or would do, with dry_run) and the state it left."""

    actions: list[Action]
    dry_run: bool
    state: dict[str, Any] | None


def _recorder(s: Session) -> Any:
    key = s.public_key_path

    def save(actual: Actual) -> dict[str, Any]:
        data = record.to_state(
            s.top,
            actual,
            project=s.cloud.project_name,
            user=s.cloud.user_name,
            public_key=str(key) if key else None,
            private_key=private_key_for(key) if key else None,
        )
        record.save(s.state, data)
        return data

    return save


def reserve(settings: Any, *, dry_run: bool, console: Console) -> ReserveResult:
    """Make (or, with dry_run, show) what is missing of the user's topology."""
    with cloud_errors("reserve"):
        s = open_session(settings, need_key=True)
        actual = read_actual(s.cloud, s.top)
        actions = plan_reserve(s.top, actual)
        if dry_run:
            return ReserveResult(actions, True, None)
        save = _recorder(s)
        ctx = Context(s.cloud, s.top, s.timing, actual, console, on_change=save)
        if actions:
            apply(ctx, actions, title="reserve")
        data = save(read_actual(s.cloud, s.top))
        if data.get("floating_ip"):
            data["inventory"] = str(write_inventory(data, s.state.path(INVENTORY_FILE)))
            data["ssh_config"] = str(write_ssh_config(data, s.state.path(SSH_CONFIG_FILE)))
            record.save(s.state, data)
        return ReserveResult(actions, False, data)
