"""Fake Blazar v1 (Chameleon's fork as KVM@TACC runs it): leases with ``flavor:instance``
reservations.

Wire format (chameleon.md section 5): the request takes ``start_date`` "now" or
``"%Y-%m-%d %H:%M"`` and ``end_date`` ``"%Y-%m-%d %H:%M"`` (UTC); the lease answers
``start_date``/``end_date`` as ``"%Y-%m-%dT%H:%M:%S.%f"`` and ``created_at``/``updated_at``
as ``"%Y-%m-%d %H:%M:%S"`` -- python-chi parses exactly these and crashes on others.

Lifecycle: ``POST`` -> 201 PENDING; after ``settings.lease_start_polls`` GETs of it the
lease is ACTIVE, its reservation ``active``, and Nova holds the private flavor
``reservation:<reservation id>`` (id = reservation id; extra specs
``aggregate_instance_extra_specs:reservation`` and ``resources:CUSTOM_RESERVATION_<ID>``),
shared with the project. A start date in the future keeps it PENDING until that time.
Past ``end_date`` it is TERMINATED. ``DELETE`` (and termination) removes the flavor and
the servers booted on it, as Blazar's instance plugin does at lease end.

Errors: ``{"error_code", "error_message", "error_name"}``; ``error_name`` is the code for
Blazar's own exceptions and "INTERNAL_SERVER_ERROR" for unexpected ones
(blazar/api/v1/utils.py). Capacity: ``CAPACITY`` instances per flavor across overlapping
leases, else 500 "Not enough hosts available" (NotEnoughHostsAvailable has no code, so
BlazarException's 500 applies). A ``flavor:instance`` lease takes new dates (answered as
UPDATING; Not enough hosts available if the flavor is booked in the new period) but not new
reservation parameters: 409 "Updating parameters for 'flavor:instance' type reservations is
not yet supported."
(manager/service.py). ``affinity`` is required and only values that oslo's
``bool_from_string`` reads as None pass (flavor_plugin.py). Lease names may repeat.
Followed: openstack/blazar at 17.0.0-6-gacc44dc (2026-06), lease updates blazar 18.0.0 (the
real tier's package, which contradicted the earlier reading), files named above. Guesses:
Chameleon's fork may word things differently; the capacity numbers, the 6-month maximum
and ``degraded``/``trust_id`` values.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

from . import nova
from .base import ApiError, Ctx, Reply, Router
from .state import World, new_id, public, utcnow

LEASE_FMT = "%Y-%m-%dT%H:%M:%S.%f"
CREATED_FMT = "%Y-%m-%d %H:%M:%S"
API_FMT = "%Y-%m-%d %H:%M"
MAX_LENGTH = timedelta(days=183)  # "standard KVM leases up to 6 months"
# Instances of each flavor the site can host at once (guess; large enough for a class).
CAPACITY = {"m1.large": 30}
DEFAULT_CAPACITY = 20
_AGGREGATES = itertools.count(100)  # Nova aggregate ids are integers
BEFORE_END_MINUTES = 60  # [manager] minutes_before_end_lease default
RESTRICTED_TRUST_500 = "Internal Server Error"


def render_error(err: ApiError) -> Reply:
    """Blazar's error body."""
    if err.status == 401:
        return Reply(
            401,
            {"error": {"code": 401, "title": "Unauthorized", "message": err.message}},
            err.headers,
        )
    # Blazar's own exceptions (BlazarException subclasses, even code-less ones answering 500)
    # carry their code as error_name; anything unexpected is INTERNAL_SERVER_ERROR
    # (blazar/api/v1/utils.py: bad_request, RemoteError handling, internal_error).
    name = "INTERNAL_SERVER_ERROR" if err.status >= 500 and err.kind != "blazar" else err.status
    return Reply(
        err.status,
        {"error_code": err.status, "error_message": err.message, "error_name": name},
        err.headers,
    )


router = Router("reservation", render_error)


def _versions(ctx: Ctx) -> Reply:
    return Reply(
        300,
        {
            "versions": [
                {
                    "id": "v1.0",
                    "status": "CURRENT",
                    "links": [{"href": ctx.service_url + "/v1", "rel": "self"}],
                }
            ]
        },
    )


@router.route("GET", "/", auth=False)
def versions(ctx: Ctx) -> Reply:
    """300 with the v1 entry."""
    return _versions(ctx)


@router.route("GET", "/v1", auth=False)
def versions_v1(ctx: Ctx) -> Reply:
    """The same list under /v1 (the catalog URL keystoneauth discovers from)."""
    return _versions(ctx)


def _parse(value: object, field: str) -> datetime:
    try:
        return datetime.strptime(str(value), API_FMT)
    except ValueError as exc:
        raise ApiError(400, f"{value} is an invalid date. Required format: {API_FMT}") from exc


def _visible(ctx: Ctx, lease_id: str) -> dict:
    lease = ctx.world.table("leases").get(lease_id)
    if lease is None or lease["project_id"] != ctx.project_id:
        raise ApiError(404, f"Object with {{'lease_id': '{lease_id}'}} not found")
    return lease


def _reserved_flavor_id(res: dict) -> str:
    # flavor_plugin._create_flavor: flavorid = the reservation id
    return res["id"]


def _activate(world: World, lease: dict) -> None:
    now = utcnow().strftime(CREATED_FMT)
    for res in lease["reservations"]:
        base = world.table("flavors")[res["_source_flavor_id"]]
        rid = res["id"]
        world.add(
            "flavors",
            nova.new_flavor(
                _reserved_flavor_id(res),
                f"reservation:{rid}",
                base["vcpus"],
                base["ram"],
                base["disk"],
                {
                    "aggregate_instance_extra_specs:reservation": rid,
                    f"resources:CUSTOM_RESERVATION_{rid.upper().replace('-', '_')}": "1",
                },
                public=False,
                access=[lease["project_id"]],
            )
            | {"_project_id": lease["project_id"], "_user_id": lease["user_id"]},
        )
        res.update(status="active", updated_at=now)
    lease.update(status="ACTIVE", updated_at=now)
    _event(lease, "start_lease").update(status="DONE")


def _release(world: World, lease: dict) -> None:
    for res in lease["reservations"]:
        fid = _reserved_flavor_id(res)
        if fid in world.table("flavors"):
            nova.forget_servers_on_flavor(world, fid)
            world.remove("flavors", fid)
        res["status"] = "deleted"


def _advance(world: World, lease: dict) -> None:
    """One poll of the lease's clock."""
    now = world.now()
    if _ended(lease, now):
        _terminate(world, lease, now)
        return
    if lease["status"] not in ("PENDING", "STARTING") or lease["_fate"] == "PENDING":
        return
    if datetime.strptime(lease["start_date"], LEASE_FMT) > now:
        return
    if lease["_polls"] > 0:
        lease["_polls"] -= 1
        return
    if lease["status"] == "PENDING" and lease["_fate"] != "ERROR":
        # status.py LeaseStatus: PENDING -> STARTING (start_lease event running) -> ACTIVE;
        # clients see STARTING for one poll.
        lease.update(status="STARTING", updated_at=now.strftime(CREATED_FMT))
        return
    _start(world, lease, now)


def tick(world: World) -> None:
    """Time-driven transitions (Blazar's manager runs events on its own periodic task): a
    lease past its end date terminates and frees its hosts; one whose start date is
    ``settings.lease_start_time`` behind (counted from its creation if that is later)
    starts, whether or not anyone polls it."""
    now = world.now()
    for lease in list(world.table("leases").values()):
        if _ended(lease, now):
            _terminate(world, lease, now)
        elif (
            lease["status"] in ("PENDING", "STARTING")
            and lease["_fate"] != "PENDING"
            and lease["_start_due"] <= now
        ):
            _start(world, lease, now)


def seed(world: World) -> None:
    """The leases' clock."""
    world.tickers.append(tick)


def _ended(lease: dict, now: datetime) -> bool:
    return (
        lease["status"] in ("ACTIVE", "PENDING", "STARTING")
        and datetime.strptime(lease["end_date"], LEASE_FMT) <= now
    )


def _terminate(world: World, lease: dict, now: datetime) -> None:
    _release(world, lease)
    lease.update(status="TERMINATED", updated_at=now.strftime(CREATED_FMT))
    _event(lease, "end_lease").update(status="DONE")


def _start(world: World, lease: dict, now: datetime) -> None:
    if lease["_fate"] == "ERROR":
        lease.update(
            status="ERROR", status_reason=lease["_message"], updated_at=now.strftime(CREATED_FMT)
        )
        for res in lease["reservations"]:
            res["status"] = "error"
        _event(lease, "start_lease").update(status="ERROR")
        return
    _activate(world, lease)


def _event(lease: dict, event_type: str) -> dict:
    return next(e for e in lease["events"] if e["event_type"] == event_type)


def _before_end(start: datetime, end: datetime) -> str:
    """manager/service.py: end - minutes_before_end_lease (default 60), not before start."""
    return max(start, end - timedelta(minutes=BEFORE_END_MINUTES)).strftime(LEASE_FMT)


def _capacity(world: World, flavor: dict) -> int:
    """Instances of `flavor` the site can hold at once (settings override the defaults)."""
    name = flavor.get("name")
    return world.settings.flavor_capacity.get(name, CAPACITY.get(name, DEFAULT_CAPACITY))


def _in_use(
    world: World, flavor_id: str, start: datetime, end: datetime, skip: str | None = None
) -> int:
    """Instances of `flavor_id` that other leases (all but `skip`) hold in [start, end)."""
    total = 0
    for lease in world.table("leases").values():
        if lease["status"] in ("TERMINATED", "ERROR", "DELETING") or lease["id"] == skip:
            continue
        s = datetime.strptime(lease["start_date"], LEASE_FMT)
        e = datetime.strptime(lease["end_date"], LEASE_FMT)
        if s < end and start < e:
            total += sum(
                int(r["amount"])
                for r in lease["reservations"]
                if r["_source_flavor_id"] == flavor_id
            )
    return total


def _check_reservation(ctx: Ctx, req: dict, start: datetime, end: datetime) -> dict:
    if req.get("resource_type") != "flavor:instance":
        raise ApiError(400, f"The {req.get('resource_type')} resource type is not supported")
    flavor = ctx.world.table("flavors").get(str(req.get("flavor_id")))
    if flavor is None or not flavor["os-flavor-access:is_public"]:
        raise ApiError(404, f"Flavor {req.get('flavor_id')} could not be found")
    try:
        amount = int(req.get("amount"))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "amount must be a positive integer") from exc
    if amount < 1:
        raise ApiError(400, "amount must be a positive integer")
    # flavor_plugin._validate_reservation_params: all of these are required.
    missing = {"amount", "flavor_id", "affinity"} - set(req)
    if missing:
        raise ApiError(400, f"Missing parameter {','.join(sorted(missing))}", "blazar")
    if _in_use(ctx.world, flavor["id"], start, end) + amount > _capacity(ctx.world, flavor):
        # NotEnoughHostsAvailable sets no code: BlazarException's 500.
        raise ApiError(500, "Not enough hosts available", "blazar")
    if _affinity(req.get("affinity")) is not None:
        raise ApiError(409, "Affinity not supported yet", "blazar")
    return {
        "_source_flavor_id": flavor["id"],
        "amount": amount,
        "affinity": None,
        # flavor_plugin.reserve_resource: the source flavor's display values
        "vcpus": flavor["vcpus"],
        "memory_mb": flavor["ram"],
        "disk_gb": flavor["disk"],
        "resource_properties": json.dumps(public(flavor)),
    }


def _affinity(value: object) -> bool | None:
    """oslo strutils.bool_from_string(value, default=None): only these spellings count."""
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    return None


@router.route("POST", "/v1/leases")
def create_lease(ctx: Ctx) -> Reply:
    """Create a lease (201, PENDING)."""
    body = ctx.json()
    name = body.get("name")
    if not name:
        raise ApiError(400, "Lease name is required")
    # manager/service.py _parse_lease_dates: "now" is the current minute (seconds dropped)
    now = utcnow().replace(second=0, microsecond=0)
    start = now if body.get("start_date", "now") == "now" else _parse(body["start_date"], "start")
    if "end_date" not in body:
        raise ApiError(400, "end_date is required")
    end = _parse(body["end_date"], "end")
    if start < now:
        raise ApiError(400, "Start date must be later than current date")
    if end <= start:
        raise ApiError(400, "End date must be later than start date.")
    if end - start > MAX_LENGTH:
        raise ApiError(400, "Lease duration must not exceed 183 days on this site")
    reservations = body.get("reservations") or []
    if not reservations:
        raise ApiError(400, "No reservations provided")
    if ((ctx.token or {}).get("application_credential") or {}).get("restricted"):
        # Blazar creates a trust from the caller's token; Keystone refuses it for a
        # restricted application credential (403 "Using method 'application_credential'
        # is not allowed for managing trusts.") and Blazar's API turns that into a 500.
        raise ApiError(500, RESTRICTED_TRUST_500)
    world = ctx.world
    with world.lock:
        # Upstream Blazar has no unique constraint on lease names (a project may hold two
        # leases of one name), so no 409 here.
        checked = [_check_reservation(ctx, r, start, end) for r in reservations]
        lease_id, created = new_id(), now.strftime(CREATED_FMT)
        fate = ctx.faults.take_lease_fate(name) if ctx.faults else None
        lease = {
            "id": lease_id,
            "name": name,
            "start_date": start.strftime(LEASE_FMT),
            "end_date": end.strftime(LEASE_FMT),
            "created_at": created,
            "updated_at": None,
            "status": "PENDING",
            "degraded": False,
            "user_id": ctx.user_id,
            "project_id": ctx.project_id,
            "trust_id": new_id().replace("-", ""),
            "reservations": [
                {
                    "id": rid,
                    "lease_id": lease_id,
                    "resource_id": new_id(),
                    "resource_type": "flavor:instance",
                    "status": "pending",
                    "missing_resources": False,
                    "resources_changed": False,
                    "created_at": created,
                    "updated_at": None,
                    **r,
                    # flavor_plugin: the reserved flavor's id (= reservation id) and the
                    # reservation's host aggregate, recorded once they are made
                    "flavor_id": rid,
                    "aggregate_id": next(_AGGREGATES),
                }
                for rid, r in ((new_id(), r) for r in checked)
            ],
            "events": [
                {
                    "id": new_id(),
                    "lease_id": lease_id,
                    "event_type": et,
                    "time": t,
                    "status": "UNDONE",
                    "created_at": created,
                    "updated_at": None,
                }
                for et, t in (
                    ("start_lease", start.strftime(LEASE_FMT)),
                    ("before_end_lease", _before_end(start, end)),
                    ("end_lease", end.strftime(LEASE_FMT)),
                )
            ],
            "_polls": world.settings.lease_start_polls,
            # "now" is truncated to the minute: count the start time from creation then.
            "_start_due": max(start, world.now()) + world.settings.lease_start_time,
            "_fate": fate[0] if fate else "ACTIVE",
            "_message": fate[1] if fate else "",
            **ctx.owner(),
        }
        world.add("leases", lease)
        return Reply(201, {"lease": public(lease)})


@router.route("GET", "/v1/leases")
def list_leases(ctx: Ctx) -> Reply:
    """The project's leases (each listing is a poll of their clocks)."""
    with ctx.world.lock:
        leases = [
            lease
            for lease in ctx.world.table("leases").values()
            if lease["project_id"] == ctx.project_id
        ]
        for lease in leases:
            _advance(ctx.world, lease)
        return Reply(200, {"leases": [public(lease) for lease in leases]})


@router.route("GET", "/v1/leases/{lease_id}")
def show_lease(ctx: Ctx, lease_id: str) -> Reply:
    """One lease by id (names 404; python-chi then lists and matches the name)."""
    with ctx.world.lock:
        lease = _visible(ctx, lease_id)
        _advance(ctx.world, lease)
        return Reply(200, {"lease": public(lease)})


@router.route("PUT", "/v1/leases/{lease_id}")
def update_lease(ctx: Ctx, lease_id: str) -> Reply:
    """Rename or move the end date (extend/shorten)."""
    body = ctx.json()
    with ctx.world.lock:
        lease = _visible(ctx, lease_id)
        _advance(ctx.world, lease)
        if lease["status"] in ("TERMINATED", "ERROR"):
            raise ApiError(
                409, f"Lease {lease_id} is in status {lease['status']} and cannot be updated"
            )
        if body.get("reservations") and any(
            r["resource_type"] == "flavor:instance" for r in lease["reservations"]
        ):
            # manager/service.py update_lease -> _handle_resource_type_exception
            # (NotImplemented, code 409), only when reservation parameters are sent: new
            # dates alone go through (flavor_plugin.update_reservation "only supports
            # updating lease start and end date"; the real tier extends a lease).
            raise ApiError(
                409,
                "Updating parameters for 'flavor:instance' type reservations is not yet supported.",
                "blazar",
            )
        if "end_date" in body:
            end = _parse(body["end_date"], "end")
            start = datetime.strptime(lease["start_date"], LEASE_FMT)
            if end <= max(start, utcnow()):
                raise ApiError(400, "End date must be later than current and start date.")
            if end - start > MAX_LENGTH:
                raise ApiError(400, "Lease duration must not exceed 183 days on this site")
            # flavor_plugin.update_reservation: the lease's hosts must stay free for the
            # whole new period, else NotEnoughHostsAvailable (no code: 500).
            for r in lease["reservations"]:
                flavor = ctx.world.table("flavors").get(r["_source_flavor_id"]) or {}
                held = _in_use(ctx.world, r["_source_flavor_id"], start, end, skip=lease["id"])
                if held + int(r["amount"]) > _capacity(ctx.world, flavor):
                    raise ApiError(500, "Not enough hosts available", "blazar")
            lease["end_date"] = end.strftime(LEASE_FMT)
            _event(lease, "end_lease")["time"] = lease["end_date"]
            _event(lease, "before_end_lease")["time"] = _before_end(start, end)
        if body.get("name"):
            lease["name"] = body["name"]
        lease["updated_at"] = utcnow().strftime(CREATED_FMT)
        if set(body) - {"name"}:
            # status.lease.lease_status(transition=UPDATING): the answer is read while the
            # update runs, so it says UPDATING (as Blazar 18 answered the real tier); the
            # lease is back to its stable status when the call returns.
            return Reply(200, {"lease": {**public(lease), "status": "UPDATING"}})
        return Reply(200, {"lease": public(lease)})


@router.route("DELETE", "/v1/leases/{lease_id}")
def delete_lease(ctx: Ctx, lease_id: str) -> Reply:
    """Delete a lease: its reserved flavor and the servers on it go too."""
    with ctx.world.lock:
        lease = _visible(ctx, lease_id)
        _release(ctx.world, lease)
        ctx.world.remove("leases", lease_id)
    return Reply(204)
