"""The Blazar lease: a `flavor:instance` reservation of 3 x m1.large, its reserved flavor,
its expiry, and extending it.

python-chi builds the request (`chi.lease.Lease`: end date in Blazar's format,
`add_flavor_reservation`) and parses Blazar's answer. Its traps are avoided on purpose:
- `chi.lease.create_lease` logs Blazar's error and returns None, so `Lease.submit` only
  says "Unable to make lease": we call the Blazar client ourselves and show its text;
- `Lease.wait()` returns when the lease reaches ERROR: our wait treats ERROR as failure;
- python-chi's PyPI package does not depend on python-blazarclient although `chi.lease`
  imports it: `blazar_client` says so plainly instead of an ImportError traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ggctl.errors import GgctlError
from ggctl.provision.actual import Found
from ggctl.provision.errors import (
    CloudError,
    error_text,
    http_status,
    is_no_capacity,
    is_transient,
    is_update_unsupported,
)
from ggctl.provision.topology import LeaseSpec

BLAZAR_MISSING_HINT = (
    "pip install 'python-blazarclient>=4,<5' (python-chi's PyPI package does not depend on "
    "it, although its chi.lease module needs it)"
)
FAILED = {"ERROR", "TERMINATING", "TERMINATED", "DELETING", "KILLED"}
API_TIME = "%Y-%m-%d %H:%M"


def blazar_client(session: Any, region: str, interface: str) -> Any:
    """python-blazarclient's v1 Client over our session, or a clear error if it is missing."""
    try:
        from blazarclient import client as blazar
    except ImportError:
        raise GgctlError("python-blazarclient is not installed", hint=BLAZAR_MISSING_HINT) from None
    return blazar.Client(
        "1", service_type="reservation", session=session, region_name=region, interface=interface
    )


def _chi_lease() -> Any:
    try:
        from chi import lease as chi_lease
    except ImportError as exc:
        if "blazarclient" in str(exc):
            raise GgctlError(
                "python-blazarclient is not installed", hint=BLAZAR_MISSING_HINT
            ) from None
        raise
    return chi_lease


def _iso(dt: datetime) -> str:
    return dt.replace(tzinfo=UTC).isoformat(timespec="seconds")


def lease_found(data: dict[str, Any]) -> Found:
    """A Blazar lease document → Found, parsed by python-chi's Lease (UTC datetimes)."""
    lease = _chi_lease().Lease(lease_json=data)
    flavor_res = lease.flavor_reservations[0] if lease.flavor_reservations else {}
    # Never read `lease.status`: python-chi's getter re-fetches the lease through its own
    # global session (built from OS_* at import), not ours.
    return Found(
        "lease",
        lease.id,
        lease.name,
        data.get("status") or "",
        {
            "start": _iso(lease.start_date),
            "end": _iso(lease.end_date),
            "reservation_id": flavor_res.get("id", ""),
            "reservation_status": flavor_res.get("status", ""),
            "flavor_id": flavor_res.get("flavor_id", ""),
            "amount": flavor_res.get("amount"),
            "degraded": bool(data.get("degraded")),
        },
    )


def list_leases(blazar: Any, name: str) -> list[Found]:
    """Our lease: Blazar lease names are unique per project, and ours carries the suffix."""
    return [lease_found(d) for d in blazar.lease.list() if d.get("name") == name]


def blazar_error(exc: Exception, spec: LeaseSpec, site: str) -> GgctlError:
    """Blazar's own words for a refused lease, which python-chi would have swallowed."""
    text = error_text(exc)
    if is_no_capacity(exc):
        return CloudError(
            f"{site} has no room for {spec.amount} x {spec.flavor} for {spec.hours} h from now "
            f"(Blazar: {text}); nothing was reserved",
            hint=f"try fewer hours (`ggctl reserve --hours {max(1, spec.hours // 2)}`) or "
            "another start time (later today), and check when the flavor is free in the "
            "Flavor Calendar (KVM@TACC dashboard → Reservations → Leases → Flavor Calendar)",
        )
    return CloudError(f"Blazar refused the lease {spec.name} (HTTP {http_status(exc)}): {text}")


def create_lease(blazar: Any, spec: LeaseSpec, flavor_id: str, site: str) -> Found:
    """Ask Blazar for the lease, starting now; it is PENDING/STARTING until ACTIVE."""
    from blazarclient import exception as blazar_exc

    lease = _chi_lease().Lease(spec.name, duration=timedelta(hours=spec.hours))
    lease.add_flavor_reservation(id=flavor_id, amount=spec.amount)
    try:
        data = blazar.lease.create(
            name=lease.name,
            start=lease.start_date,
            end=lease.end_date,
            reservations=lease.flavor_reservations,
            events=[],
        )
    except blazar_exc.BlazarClientException as exc:
        if http_status(exc) == 500:
            # A restricted application credential cannot create Blazar's trust: say so, once.
            restricted_credential_error(blazar, exc, spec)
        if is_transient(exc):
            raise  # the caller retries (and adopts a lease whose answer was lost)
        raise blazar_error(exc, spec, site) from None
    return lease_found(data)


def restricted_credential_error(blazar: Any, exc: Exception, spec: LeaseSpec) -> None:
    """Raise the real cause of Blazar's 500 when the user's credential is restricted.

    Blazar creates a Keystone trust from the user's token for every lease; Keystone
    refuses that for a restricted application credential and Blazar reports only
    "Internal Server Error". Retrying cannot help, a new credential does.
    """
    from ggctl.provision.auth import restricted_application_credential

    cred = restricted_application_credential(getattr(blazar.lease, "session", None))
    if cred is None:
        return
    raise CloudError(
        f"Blazar could not create the lease {spec.name} (HTTP 500: {error_text(exc)}): the "
        f"application credential {cred.get('name') or cred.get('id')!r} is restricted, and "
        "Keystone refuses to create the trust every Blazar lease needs from a restricted "
        "credential",
        hint='create an application credential with "unrestricted" ticked (KVM@TACC > '
        "Identity > Application Credentials), download its clouds.yaml, then run "
        "`ggctl reserve` again",
    ) from None


def get_lease(blazar: Any, found: Found) -> Found | None:
    """The lease now, or None once Blazar no longer has it."""
    from blazarclient import exception as blazar_exc

    try:
        return lease_found(blazar.lease.get(found.id))
    except blazar_exc.BlazarClientException as exc:
        if http_status(exc) == 404:
            return None
        raise


def expired(found: Found, now: datetime | None = None) -> bool:
    """True once the lease's end date has passed."""
    now = now or datetime.now(UTC)
    return datetime.fromisoformat(found.attrs["end"]) <= now


def check_active(found: Found) -> Found | None:
    """For waits: the lease if ACTIVE, None while starting; raise if it failed.

    (python-chi's Lease.wait() returns as if all were well when the lease hits ERROR.)
    """
    if found.status == "ACTIVE":
        return found
    if found.status in FAILED or expired(found):
        raise CloudError(
            f"lease {found.name} is {found.status} (ends {found.attrs.get('end')}); "
            "it will not become ACTIVE",
            hint="run `ggctl teardown`, then `ggctl reserve` for a new lease",
        )
    return None


def extend_lease(blazar: Any, found: Found, hours: int) -> Found:
    """Move the end date `hours` later (Blazar refuses if the flavor is booked after)."""
    from blazarclient import exception as blazar_exc

    end = datetime.fromisoformat(found.attrs["end"]) + timedelta(hours=hours)
    try:
        data = blazar.lease.update(found.id, end_date=end.strftime(API_TIME))
    except blazar_exc.BlazarClientException as exc:
        if is_update_unsupported(exc):
            raise CloudError(
                f"Blazar cannot extend {found.name}: this site refuses to change a "
                f"`flavor:instance` lease ({error_text(exc)}); the lease still ends "
                f"{found.attrs.get('end')}",
                hint="a lease on a standard KVM flavor may be made up to 6 months long when "
                "it is created: when this one ends (or after `ggctl teardown --yes`), run "
                "`ggctl reserve --hours N` with N as long as you need; `ggctl up` rebuilds "
                "the rest",
            ) from None
        if is_no_capacity(exc):
            raise CloudError(
                f"Blazar cannot extend {found.name} by {hours} h: the flavor is booked "
                f"after your lease ({error_text(exc)})",
                hint="try fewer hours; the Flavor Calendar shows when it is free",
            ) from None
        raise CloudError(
            f"Blazar refused to extend {found.name} by {hours} h "
            f"(HTTP {http_status(exc)}): {error_text(exc)}",
            hint="the flavor may be reserved by others after your lease; try fewer hours",
        ) from None
    # Blazar answers with the lease as it was while the update ran (UPDATING); by the time
    # the call returns it is back to ACTIVE: report that.
    updated = lease_found(data)
    return get_lease(blazar, updated) or updated


def delete_lease(blazar: Any, found: Found) -> None:
    from blazarclient import exception as blazar_exc

    try:
        blazar.lease.delete(found.id)
    except blazar_exc.BlazarClientException as exc:
        if http_status(exc) != 404:
            raise


def lease_exists(blazar: Any, found: Found) -> bool:
    return get_lease(blazar, found) is not None


def reserved_flavor_id(conn: Any, found: Found) -> str | None:
    """The private flavor `reservation:<reservation-id>` Blazar made for the lease."""
    rid = found.attrs.get("reservation_id")
    if not rid:
        return None
    wanted = f"reservation:{rid}"
    for flavor in conn.compute.flavors(details=True, is_public=None):
        if flavor.name == wanted or flavor.id == rid:
            return flavor.id
    return None
