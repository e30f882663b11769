"""`ggctl status` and `ggctl extend`: what exists, the lease's expiry, addresses.

Later steps (cluster, deploy) add their own sections with `register_section`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ggctl.errors import GgctlError
from ggctl.provision import lease as lease_mod
from ggctl.provision import record
from ggctl.provision.context import open_session
from ggctl.provision.discover import read_actual
from ggctl.provision.errors import cloud_errors

# name → function(settings) returning a JSON-able dict (or None to leave the section out).
SECTIONS: dict[str, Callable[[Any], dict[str, Any] | None]] = {}


def register_section(name: str, fn: Callable[[Any], dict[str, Any] | None]) -> None:
    """Hook for later steps: `status` shows `fn(settings)` under `name`."""
    SECTIONS[name] = fn


def remaining(end_iso: str | None, now: datetime | None = None) -> str:
    """'5h 12m left' / 'expired' for a lease end date."""
    if not end_iso:
        return ""
    delta = datetime.fromisoformat(end_iso) - (now or datetime.now(UTC))
    if delta.total_seconds() <= 0:
        return "expired"
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    return f"{hours}h {rest // 60:02d}m left"


def status(settings: Any) -> dict[str, Any]:
    """Live view of this user's reservation (read from the cloud, then recorded)."""
    with cloud_errors("read the reservation"):
        s = open_session(settings, need_key=False)
        actual = read_actual(s.cloud, s.top)
        previous = record.load(s.state) or {}
        data = record.to_state(
            s.top,
            actual,
            project=s.cloud.project_name,
            user=s.cloud.user_name,
            public_key=previous.get("public_key"),
            private_key=previous.get("private_key"),
        )
        for key in ("inventory", "ssh_config"):
            if previous.get(key):
                data[key] = previous[key]
        if actual.count():
            record.save(s.state, data)
        if data["lease"]:
            data["lease"]["remaining"] = remaining(data["lease"].get("end"))
    for name, fn in SECTIONS.items():
        section = fn(settings)
        if section is not None:
            data[name] = section
    return data


def extend(settings: Any, hours: int) -> dict[str, Any]:
    """Lengthen the lease by `hours`; returns the lease's new state."""
    with cloud_errors(f"extend the lease by {hours} h"):
        s = open_session(settings, need_key=False)
        leases = lease_mod.list_leases(s.cloud.blazar(), s.top.lease.name)
        if not leases:
            raise GgctlError(f"no lease {s.top.lease.name} to extend", hint="run `ggctl reserve`")
        found = lease_mod.extend_lease(s.cloud.blazar(), leases[0], hours)
        previous = record.load(s.state)
        if previous is not None:
            previous["lease"] = {
                "id": found.id,
                "name": found.name,
                "status": found.status,
                **found.attrs,
            }
            record.save(s.state, previous)
        return {
            "name": found.name,
            "status": found.status,
            "end": found.attrs["end"],
            "remaining": remaining(found.attrs["end"]),
        }
