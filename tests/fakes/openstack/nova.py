"""Fake Nova v2.1 (microversions 2.1-2.90, Xena): flavors and extra specs, servers,
server actions, metadata and tags, key pairs, limits and quota sets.

Server lifecycle: ``POST /servers`` -> 202 and BUILD; each GET that renders the server
counts a poll; after ``settings.server_build_polls`` polls (or ``server_build_time`` on the
world's clock, whatever is polled) it is ACTIVE, or ERROR with a
``fault`` when a fault was injected or the flavor is not bookable. Ports are created (or
bound, for ``networks: [{"port": ...}]``) in Neutron's state at POST time; on ERROR Nova
frees them again, as it does when a build fails. ``DELETE`` -> 204; the server is still
listed (task_state ``deleting``) for ``settings.server_delete_polls`` polls (or
``server_delete_time``), then 404, and
only then are its ports released (so deleting a network right after a server 409s, as on
the real cloud).

KVM@TACC rule (since 2025-08): a server only gets a host on the private reserved flavor
``reservation:<id>`` of an ACTIVE lease, and at most ``amount`` servers per reservation.
Anything else ends in ERROR with "No valid host was found" -- a guess at the exact
behaviour: Chameleon documents *that* a lease is needed, not the error a user sees; this is
what Nova reports when Blazar's filters leave no host.

Other guesses: flavor ids other than m1.large's "4"; the ``networks`` default when none are
given (``sharednet1``); quota defaults (upstream Nova's).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime

from . import neutron
from .base import ApiError, Ctx, Reply, Router, paginate
from .faults import NO_VALID_HOST
from .state import World, iso, new_id, public

MAX_MICROVERSION = "2.90"
MIN_MICROVERSION = "2.1"
HOST_ID = hashlib.sha224(b"kvm-tacc-fake-host").hexdigest()

_ERROR_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    500: "computeFault",
    503: "serviceUnavailable",
}


def render_error(err: ApiError) -> Reply:
    """Nova's error body: ``{"itemNotFound": {"code": 404, "message": ...}}`` and kin."""
    if err.status == 401:  # keystonemiddleware answers before Nova does
        return Reply(
            401,
            {"error": {"code": 401, "title": "Unauthorized", "message": err.message}},
            err.headers,
        )
    key = _ERROR_KEYS.get(err.status, "computeFault")
    return Reply(err.status, {key: {"code": err.status, "message": err.message}}, err.headers)


router = Router("compute", render_error)


def _mv_tuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


def requested_microversion(ctx: Ctx) -> str | None:
    """The version string the request names, as microversion_parse.get_version reads it:
    ``OpenStack-API-Version: compute X`` first, then the legacy
    ``X-OpenStack-Nova-API-Version``; None when neither is sent."""
    h = ctx.request.headers
    for item in h.get("OpenStack-API-Version", "").split(","):
        service, _, value = item.strip().partition(" ")
        if service.lower() == "compute" and value.strip():
            return value.strip()
    return h.get("X-OpenStack-Nova-API-Version") or None


def microversion(ctx: Ctx) -> str:
    """The microversion the request asked for (``2.1`` when none), as Nova's
    ``wsgi.Request.set_api_version_request`` resolves it: ``latest`` is the maximum, a
    malformed string is 400 (InvalidAPIVersionString), one outside [min, max] is 406
    (InvalidGlobalAPIVersion), both with Nova's messages."""
    asked = requested_microversion(ctx)
    if asked is None:
        return MIN_MICROVERSION
    if asked.lower() == "latest":
        return MAX_MICROVERSION
    m = re.fullmatch(r"([1-9]\d*)\.([1-9]\d*|0)", asked)
    if not m:
        raise ApiError(
            400,
            f"API Version String {asked} is of invalid format. Must be of format "
            "MajorNum.MinorNum.",
        )
    normalised = f"{int(m.group(1))}.{int(m.group(2))}"
    if not _mv_tuple(MIN_MICROVERSION) <= _mv_tuple(normalised) <= _mv_tuple(MAX_MICROVERSION):
        raise ApiError(
            406,
            f"Version {normalised} is not supported by the API. Minimum is "
            f"{MIN_MICROVERSION} and maximum is {MAX_MICROVERSION}.",
        )
    return normalised


def _at_least(ctx: Ctx, v: str) -> bool:
    return _mv_tuple(microversion(ctx)) >= _mv_tuple(v)


# ------------------------------------------------------------------ seed


# (id, name, vcpus, ram MB, disk GB): Chameleon's KVM list; only m1.large's id is documented.
FLAVORS = (
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 40),
    ("5", "m1.xlarge", 8, 16384, 40),
    ("6", "m1.xxlarge", 16, 32768, 40),
    ("7b0d6f5e-4a36-4c2e-9d7f-1b8a2c3d4e5f", "g1.h100.pci.1", 48, 250000, 40),
)


def seed(world: World) -> None:
    """The stock public flavors; the servers' clock."""
    world.tickers.append(tick)
    for fid, name, vcpus, ram, disk in FLAVORS:
        specs = {"trait:CUSTOM_GPU": "required"} if name.startswith("g1.") else {}
        world.add("flavors", new_flavor(fid, name, vcpus, ram, disk, specs, public=True, seed=True))


def new_flavor(
    fid: str,
    name: str,
    vcpus: int,
    ram: int,
    disk: int,
    extra_specs: dict,
    public: bool,
    access: list[str] | None = None,
    seed: bool = False,
    description: str | None = None,
) -> dict:
    """A flavor record (Blazar creates the private reserved ones through this)."""
    return {
        "id": fid,
        "name": name,
        "vcpus": vcpus,
        "ram": ram,
        "disk": disk,
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": public,
        "description": description,
        "extra_specs": dict(extra_specs),
        "_access": list(access or []),
        "_seed": seed,
    }


# ------------------------------------------------------------------ discovery


def _version_doc(ctx: Ctx) -> dict:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX_MICROVERSION,
        "min_version": MIN_MICROVERSION,
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": ctx.service_url + "/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


@router.route("GET", "/", auth=False)
def versions(ctx: Ctx) -> Reply:
    """The version list (v2.1 only, as a Xena cloud with the legacy v2.0 disabled)."""
    return Reply(200, {"versions": [_version_doc(ctx)]})


@router.route("GET", "/v2.1", auth=False)
def version(ctx: Ctx) -> Reply:
    """The v2.1 version document with the microversion range."""
    return Reply(200, {"version": _version_doc(ctx)})


# ------------------------------------------------------------------ flavors


def _flavor_visible(ctx: Ctx, f: dict) -> bool:
    return f["os-flavor-access:is_public"] or ctx.project_id in f["_access"]


def _get_flavor(ctx: Ctx, fid: str) -> dict:
    f = ctx.world.table("flavors").get(fid)
    if f is None or not _flavor_visible(ctx, f):
        raise ApiError(404, f"Flavor {fid} could not be found.")
    return f


def _render_flavor(ctx: Ctx, f: dict, detail: bool = True) -> dict:
    links = [
        {"rel": "self", "href": f"{ctx.service_url}/v2.1/flavors/{f['id']}"},
        {"rel": "bookmark", "href": f"{ctx.service_url}/flavors/{f['id']}"},
    ]
    if not detail:
        out = {"id": f["id"], "name": f["name"], "links": links}
        if _at_least(ctx, "2.55"):
            out["description"] = f["description"]
        return out
    out = public(f)
    out["links"] = links
    # Before 2.75 Nova says "" for no swap; from 2.75 it says 0.
    out["swap"] = 0 if _at_least(ctx, "2.75") else ""
    if not _at_least(ctx, "2.61"):
        del out["extra_specs"]
    if not _at_least(ctx, "2.55"):
        del out["description"]
    return out


def _list_flavors(ctx: Ctx, detail: bool) -> Reply:
    with ctx.world.lock:
        items = [f for f in ctx.world.table("flavors").values() if _flavor_visible(ctx, f)]
        min_ram, min_disk = ctx.args.get("minRam", type=int), ctx.args.get("minDisk", type=int)
        items = [
            f
            for f in items
            if (min_ram is None or f["ram"] >= min_ram)
            and (min_disk is None or f["disk"] >= min_disk)
        ]
        items.sort(key=lambda f: f["id"])
        page, _ = paginate(items, ctx.args)
        return Reply(200, {"flavors": [_render_flavor(ctx, f, detail) for f in page]})


@router.route("GET", "/v2.1/flavors")
def list_flavors(ctx: Ctx) -> Reply:
    """Public flavors plus private ones shared with the project (the reserved flavors)."""
    return _list_flavors(ctx, detail=False)


@router.route("GET", "/v2.1/flavors/detail")
def list_flavors_detail(ctx: Ctx) -> Reply:
    """Same, with every field (extra_specs embedded at >= 2.61)."""
    return _list_flavors(ctx, detail=True)


@router.route("GET", "/v2.1/flavors/{fid}")
def show_flavor(ctx: Ctx, fid: str) -> Reply:
    """One flavor by id (names 404: clients then list and match names)."""
    with ctx.world.lock:
        return Reply(200, {"flavor": _render_flavor(ctx, _get_flavor(ctx, fid))})


@router.route("GET", "/v2.1/flavors/{fid}/os-extra_specs")
def flavor_extra_specs(ctx: Ctx, fid: str) -> Reply:
    """All extra specs of a flavor."""
    with ctx.world.lock:
        return Reply(200, {"extra_specs": dict(_get_flavor(ctx, fid)["extra_specs"])})


@router.route("GET", "/v2.1/flavors/{fid}/os-extra_specs/{key}")
def flavor_extra_spec(ctx: Ctx, fid: str, key: str) -> Reply:
    """One extra spec."""
    with ctx.world.lock:
        specs = _get_flavor(ctx, fid)["extra_specs"]
        if key not in specs:
            raise ApiError(404, f"Flavor {fid} has no extra specs with key {key}.")
        return Reply(200, {key: specs[key]})


# ------------------------------------------------------------------ key pairs


def _fingerprint(public_key: str) -> str:
    parts = public_key.split()
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (IndexError, ValueError) as exc:
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint") from exc
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def _keypairs(ctx: Ctx) -> list[dict]:
    return [k for k in ctx.world.table("keypairs").values() if k["user_id"] == ctx.user_id]


def _render_keypair(k: dict, full: bool = True) -> dict:
    out = {
        "name": k["name"],
        "public_key": k["public_key"],
        "fingerprint": k["fingerprint"],
        "type": k["type"],
    }
    if full:
        out.update(
            user_id=k["user_id"],
            id=k["_num"],
            created_at=k["created_at"],
            deleted=False,
            deleted_at=None,
            updated_at=None,
        )
    return out


def _get_keypair(ctx: Ctx, name: str) -> dict:
    k = next((k for k in _keypairs(ctx) if k["name"] == name), None)
    if k is None:
        raise ApiError(404, f"Keypair {name} not found for user {ctx.user_id}")
    return k


@router.route("GET", "/v2.1/os-keypairs")
def list_keypairs(ctx: Ctx) -> Reply:
    """The caller's key pairs (key pairs belong to users, not projects)."""
    with ctx.world.lock:
        return Reply(
            200, {"keypairs": [{"keypair": _render_keypair(k, full=False)} for k in _keypairs(ctx)]}
        )


@router.route("GET", "/v2.1/os-keypairs/{name}")
def show_keypair(ctx: Ctx, name: str) -> Reply:
    """One key pair by name."""
    with ctx.world.lock:
        return Reply(200, {"keypair": _render_keypair(_get_keypair(ctx, name))})


@router.route("POST", "/v2.1/os-keypairs")
def create_keypair(ctx: Ctx) -> Reply:
    """Import a public key (or generate one: the private key is returned once)."""
    body = ctx.json().get("keypair") or {}
    name = body.get("name", "")
    if not re.fullmatch(r"[\w\-. @]{1,255}", name or ""):
        raise ApiError(400, "Keypair data is invalid: Keypair name contains unsafe characters")
    with ctx.world.lock:
        if any(k["name"] == name for k in _keypairs(ctx)):
            raise ApiError(409, f"Key pair '{name}' already exists.")
        limit = ctx.world.quota(ctx.project_id)["key_pairs"]
        if 0 <= limit <= len(_keypairs(ctx)):
            raise ApiError(403, "Quota exceeded, too many key pairs.")
        private = None
        public_key = body.get("public_key")
        if not public_key:
            blob = b"\x00\x00\x00\x07ssh-rsa" + secrets.token_bytes(64)
            public_key = "ssh-rsa " + base64.b64encode(blob).decode() + " generated-by-nova"
            private = (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n"
            )
        k = {
            "id": new_id(),
            "_num": len(ctx.world.table("keypairs")) + 1,
            "name": name,
            "public_key": public_key,
            "fingerprint": _fingerprint(public_key),
            "type": body.get("type", "ssh"),
            "user_id": ctx.user_id,
            "created_at": iso(),
            **ctx.owner(),
        }
        ctx.world.add("keypairs", k)
        out = _render_keypair(k, full=False) | {"user_id": ctx.user_id}
    if private:
        out["private_key"] = private
    return Reply(201 if _at_least(ctx, "2.2") else 200, {"keypair": out})


@router.route("DELETE", "/v2.1/os-keypairs/{name}")
def delete_keypair(ctx: Ctx, name: str) -> Reply:
    """Delete a key pair (202 before 2.2, 204 after)."""
    with ctx.world.lock:
        ctx.world.remove("keypairs", _get_keypair(ctx, name)["id"])
    return Reply(204 if _at_least(ctx, "2.2") else 202)


# ------------------------------------------------------------------ servers


def _usage(world: World, project_id: str) -> dict[str, int]:
    used = {"instances": 0, "cores": 0, "ram": 0}
    for s in world.table("servers").values():
        if s["tenant_id"] == project_id and not s.get("_gone"):
            f = s["_flavor"]
            used["instances"] += 1
            used["cores"] += f["vcpus"]
            used["ram"] += f["ram"]
    return used


def _check_quota(ctx: Ctx, flavor: dict, count: int) -> None:
    limits = ctx.world.quota(ctx.project_id)
    used = _usage(ctx.world, ctx.project_id)
    want = {"instances": count, "cores": flavor["vcpus"] * count, "ram": flavor["ram"] * count}
    for res in ("instances", "cores", "ram"):
        if limits[res] >= 0 and used[res] + want[res] > limits[res]:
            raise ApiError(
                403,
                f"Quota exceeded for {res}: Requested {want[res]}, but already "
                f"used {used[res]} of {limits[res]} {res}",
            )


def _bookable(world: World, flavor: dict) -> bool:
    """Whether Blazar's scheduling would find a host: the flavor is a reserved one, its
    reservation is active and not yet full."""
    rid = flavor["extra_specs"].get("aggregate_instance_extra_specs:reservation")
    if not rid:
        return False
    for lease in world.table("leases").values():
        for res in lease["reservations"]:
            if res["id"] == rid:
                if lease["status"] != "ACTIVE" or res["status"] != "active":
                    return False
                placed = sum(
                    1
                    for s in world.table("servers").values()
                    if s["_flavor"]["id"] == flavor["id"]
                    and s["_fate"] == "ACTIVE"
                    and not s.get("_gone")
                )
                return placed < int(res["amount"])
    return False


def _attach_networks(ctx: Ctx, server: dict, networks: object, groups: list[str]) -> None:
    world = ctx.world
    if networks in (None, "auto"):
        networks = [{"uuid": neutron.network_by_name(world, neutron.SHAREDNET)["id"]}]
    if networks == "none":
        return
    if not isinstance(networks, list):
        raise ApiError(400, "Invalid input for field/attribute networks.")
    sg_ids = []
    for name in groups:
        sg = next(
            (
                g
                for g in world.table("security_groups").values()
                if g["project_id"] == ctx.project_id and name in (g["name"], g["id"])
            ),
            None,
        )
        if sg is None:
            raise ApiError(400, f"Security group {name} not found for project {ctx.project_id}.")
        sg_ids.append(sg["id"])
    for entry in networks:
        if entry.get("port"):
            port = world.table("ports").get(entry["port"])
            if port is None or port["project_id"] != ctx.project_id:
                raise ApiError(400, f"Port id {entry['port']} could not be found.")
            if port["device_id"]:
                raise ApiError(409, f"Port {port['id']} is still in use.")
            port.update(device_id=server["id"], device_owner="compute:nova")
            continue
        net = world.table("networks").get(entry.get("uuid", ""))
        if net is None or not (net["project_id"] == ctx.project_id or net["shared"]):
            raise ApiError(400, f"Network {entry.get('uuid')} could not be found.")
        fixed = [{"ip_address": entry["fixed_ip"]}] if entry.get("fixed_ip") else None
        body = {"device_id": server["id"], "device_owner": "compute:nova", "fixed_ips": fixed}
        if net["port_security_enabled"] and sg_ids:
            body["security_groups"] = sg_ids
        try:
            port = neutron.new_port(world, net, body, ctx.project_id, ctx.user_id)
        except ApiError as err:  # Nova reports Neutron's refusal as its own 400
            raise ApiError(400, err.message) from err
        port["_nova_created"] = True


def _release_networks(world: World, server_id: str) -> None:
    for port in [p for p in world.table("ports").values() if p["device_id"] == server_id]:
        if port.get("_nova_created"):
            neutron.remove_port(world, port)
        else:
            neutron.unbind_port(world, port)


@router.route("POST", "/v2.1/servers")
def create_server(ctx: Ctx) -> Reply:
    """Boot a server: validate, check quota, create its ports, start the BUILD clock."""
    body = ctx.json()
    req = body.get("server")
    if not isinstance(req, dict) or not req.get("name"):
        raise ApiError(
            400, "Invalid input for field/attribute server. 'name' is a required property"
        )
    world = ctx.world
    with world.lock:
        flavor_ref = str(req.get("flavorRef", "")).rstrip("/").rsplit("/", 1)[-1]
        flavor = world.table("flavors").get(flavor_ref)
        if flavor is None or not _flavor_visible(ctx, flavor):
            raise ApiError(400, f"Flavor {flavor_ref} could not be found.")
        image_ref = str(req.get("imageRef", "")).rstrip("/").rsplit("/", 1)[-1]
        image = world.table("images").get(image_ref)
        if image is None and not req.get("block_device_mapping_v2"):
            raise ApiError(400, f"Image {image_ref} could not be found.")
        if req.get("key_name") and not any(k["name"] == req["key_name"] for k in _keypairs(ctx)):
            raise ApiError(400, "Invalid key_name provided.")
        if _at_least(ctx, "2.37") and "networks" not in req:
            raise ApiError(
                400, "Invalid input for field/attribute server. 'networks' is a required property"
            )
        count = max(int(req.get("max_count", 1) or 1), int(req.get("min_count", 1) or 1))
        _check_quota(ctx, flavor, count)
        groups = [g.get("name") for g in req.get("security_groups") or [] if g.get("name")]
        made = []
        for i in range(count):
            name = req["name"] if count == 1 else f"{req['name']}-{i + 1}"
            made.append(_new_server(ctx, req, name, flavor, image_ref, groups))
    first = made[0]
    resp = {
        "id": first["id"],
        "links": _links(ctx, first["id"]),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": g} for g in (groups or ["default"])],
        "adminPass": secrets.token_urlsafe(9),
    }
    if req.get("return_reservation_id"):
        return Reply(202, {"reservation_id": "r-" + first["id"][:8]})
    return Reply(202, {"server": resp})


def _new_server(
    ctx: Ctx, req: dict, name: str, flavor: dict, image_ref: str, groups: list[str]
) -> dict:
    world = ctx.world
    sid = new_id()
    fault = ctx.faults.take_server_error(name) if ctx.faults else None
    slow = ctx.faults.take_server_polls(name) if ctx.faults else None
    if fault is None and not _bookable(world, flavor):
        fault = {"message": NO_VALID_HOST, "code": 500, "details": ""}
    server = {
        "id": sid,
        "name": name,
        "status": "BUILD",
        "tenant_id": ctx.project_id,
        "user_id": ctx.user_id,
        "metadata": dict(req.get("metadata") or {}),
        "image": {
            "id": image_ref,
            "links": [{"rel": "bookmark", "href": f"{ctx.service_url}/images/{image_ref}"}],
        }
        if image_ref
        else "",
        "key_name": req.get("key_name"),
        "created": iso(),
        "updated": iso(),
        "hostId": "",
        "accessIPv4": "",
        "accessIPv6": "",
        "config_drive": "",
        "progress": 0,
        "locked": False,
        "locked_reason": None,
        "description": req.get("description"),
        "tags": [],
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": "",
        "OS-EXT-STS:vm_state": "building",
        "OS-EXT-STS:task_state": "scheduling",
        "OS-EXT-STS:power_state": 0,
        "OS-SRV-USG:launched_at": None,
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [],
        "_flavor": flavor,
        "_polls": world.settings.server_build_polls if slow is None else slow,
        # A slowed server (faults) waits for its polls only.
        "_ready_at": world.now() + world.settings.server_build_time
        if slow is None
        else datetime.max,
        "_fate": "ERROR" if fault else "ACTIVE",
        "_fault": fault,
        "_groups": groups or ["default"],
        **ctx.owner(),
    }
    world.add("servers", server)
    try:
        _attach_networks(ctx, server, req.get("networks"), groups)
    except ApiError:
        _release_networks(world, sid)
        world.remove("servers", sid)
        raise
    return server


def _links(ctx: Ctx, sid: str) -> list[dict]:
    return [
        {"rel": "self", "href": f"{ctx.service_url}/v2.1/servers/{sid}"},
        {"rel": "bookmark", "href": f"{ctx.service_url}/servers/{sid}"},
    ]


def _advance(world: World, s: dict) -> None:
    """One poll of the server's state machine."""
    if s.get("_gone") is not None:
        if s["_gone"] <= 0:
            _finish_delete(world, s)
        else:
            s["_gone"] -= 1
        return
    if s["status"] != "BUILD":
        return
    if s["_polls"] > 0:
        s["_polls"] -= 1
        s["OS-EXT-STS:task_state"] = "spawning"
        return
    _finish_build(world, s)


def tick(world: World) -> None:
    """Time-driven transitions: builds and deletions whose time has come finish whether or
    not anyone polls the server (nova-compute works on its own clock)."""
    now = world.now()
    for s in list(world.table("servers").values()):
        if s.get("_gone_at") is not None and s["_gone_at"] <= now:
            _finish_delete(world, s)
        elif s["status"] == "BUILD" and s["_ready_at"] <= now:
            _finish_build(world, s)


def _finish_delete(world: World, s: dict) -> None:
    _release_networks(world, s["id"])
    world.remove("servers", s["id"])


def _finish_build(world: World, s: dict) -> None:
    now = iso(world.now())
    if s["_fate"] == "ACTIVE":
        s.update(
            status="ACTIVE",
            hostId=HOST_ID,
            progress=100,
            **{
                "OS-EXT-STS:vm_state": "active",
                "OS-EXT-STS:task_state": None,
                "OS-EXT-STS:power_state": 1,
                "OS-EXT-AZ:availability_zone": "nova",
                "OS-SRV-USG:launched_at": now.replace("Z", ".000000"),
            },
        )
        for port in world.table("ports").values():
            if port["device_id"] == s["id"]:
                port["status"] = "ACTIVE"
    else:
        fault = s["_fault"]
        shown = {
            "code": fault["code"],
            "created": now,
            # Nova formats instance_uuid into the message and keeps 255 characters
            # (compute/utils.py exception_to_dict, utils.safe_truncate)
            "message": fault["message"].replace("{uuid}", s["id"])[:255],
        }
        # details (the traceback) only for admins or a code other than 500
        # (views/servers.py _get_fault); the fake's callers are never admins
        if fault["details"] and fault["code"] != 500:
            shown["details"] = fault["details"]
        s.update(
            status="ERROR",
            fault=shown,
            **{"OS-EXT-STS:vm_state": "error", "OS-EXT-STS:task_state": None},
        )
        _release_networks(world, s["id"])  # Nova deallocates networking of a failed build
    s["updated"] = now


def _addresses(world: World, sid: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    nets = world.table("networks")
    for port in world.table("ports").values():
        if port["device_id"] != sid:
            continue
        entries = out.setdefault(nets[port["network_id"]]["name"], [])
        for ip in port["fixed_ips"]:
            version = 6 if ":" in ip["ip_address"] else 4
            entries.append(
                {
                    "addr": ip["ip_address"],
                    "version": version,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                }
            )
        for fip in world.table("floatingips").values():
            if fip["port_id"] == port["id"]:
                entries.append(
                    {
                        "addr": fip["floating_ip_address"],
                        "version": 4,
                        "OS-EXT-IPS:type": "floating",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
    return out


def _render_server(ctx: Ctx, s: dict) -> dict:
    world = ctx.world
    out = public(s)
    f = s["_flavor"]
    if _at_least(ctx, "2.47"):
        out["flavor"] = {
            "original_name": f["name"],
            "vcpus": f["vcpus"],
            "ram": f["ram"],
            "disk": f["disk"],
            "ephemeral": 0,
            "swap": 0,
            "extra_specs": dict(f["extra_specs"]),
        }
    else:
        out["flavor"] = {
            "id": f["id"],
            "links": [{"rel": "bookmark", "href": f"{ctx.service_url}/flavors/{f['id']}"}],
        }
    out["addresses"] = _addresses(world, s["id"])
    groups = set()
    for port in world.table("ports").values():
        if port["device_id"] == s["id"]:
            groups |= {world.table("security_groups")[g]["name"] for g in port["security_groups"]}
    out["security_groups"] = (
        [{"name": g} for g in sorted(groups)]
        if groups
        else ([{"name": g} for g in s["_groups"]] if s["status"] == "BUILD" else [])
    )
    out["links"] = _links(ctx, s["id"])
    if s.get("_gone") is not None:
        out["OS-EXT-STS:task_state"] = "deleting"
    return out


def _visible_server(ctx: Ctx, s: dict) -> bool:
    return s["tenant_id"] == ctx.project_id


def _get_server(ctx: Ctx, sid: str) -> dict:
    s = ctx.world.table("servers").get(sid)
    if s is None or not _visible_server(ctx, s):
        raise ApiError(404, f"Instance {sid} could not be found.")
    return s


def _server_matches(s: dict, args) -> bool:
    if args.get("name"):
        try:  # Nova's name filter is a regular expression
            if not re.search(args["name"], s["name"]):
                return False
        except re.error as exc:
            raise ApiError(400, f"Invalid regular expression for name: {exc}") from exc
    if args.get("status") and s["status"] != args["status"].upper():
        return False
    if args.get("flavor") and s["_flavor"]["id"] != args["flavor"]:
        return False
    if args.get("image") and (s["image"] or {}).get("id") != args["image"]:
        return False
    if args.get("key_name") and s["key_name"] != args["key_name"]:
        return False
    if args.get("user_id") and s["user_id"] != args["user_id"]:
        return False
    if args.get("tags"):
        return set(args["tags"].split(",")) <= set(s["tags"])
    return True


def _list_servers(ctx: Ctx, detail: bool) -> Reply:
    world = ctx.world
    with world.lock:
        for s in list(world.table("servers").values()):
            if _visible_server(ctx, s):
                _advance(world, s)
        items = [
            s
            for s in world.table("servers").values()
            if _visible_server(ctx, s) and _server_matches(s, ctx.args)
        ]
        items.sort(key=lambda s: s["created"], reverse=True)
        page, more = paginate(items, ctx.args)
        if detail:
            body: dict = {"servers": [_render_server(ctx, s) for s in page]}
        else:
            body = {
                "servers": [
                    {"id": s["id"], "name": s["name"], "links": _links(ctx, s["id"])} for s in page
                ]
            }
    if more:
        body["servers_links"] = [
            {
                "rel": "next",
                "href": f"{ctx.service_url}/v2.1/servers"
                f"{'/detail' if detail else ''}?limit={ctx.args['limit']}"
                f"&marker={page[-1]['id']}",
            }
        ]
    return Reply(200, body)


@router.route("GET", "/v2.1/servers")
def list_servers(ctx: Ctx) -> Reply:
    """Servers of the project (id, name, links); filters name (regex), status, flavor ..."""
    return _list_servers(ctx, detail=False)


@router.route("GET", "/v2.1/servers/detail")
def list_servers_detail(ctx: Ctx) -> Reply:
    """Servers of the project with every field; each listing counts as a poll."""
    return _list_servers(ctx, detail=True)


@router.route("GET", "/v2.1/servers/{sid}")
def show_server(ctx: Ctx, sid: str) -> Reply:
    """One server; each GET is a poll of its BUILD/delete clock."""
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        _advance(ctx.world, s)
        s = _get_server(ctx, sid)
        return Reply(200, {"server": _render_server(ctx, s)})


@router.route("PUT", "/v2.1/servers/{sid}")
def update_server(ctx: Ctx, sid: str) -> Reply:
    """Rename or re-describe a server."""
    req = ctx.json().get("server") or {}
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        for key in ("name", "description"):
            if key in req:
                s[key] = req[key]
        s["updated"] = iso()
        return Reply(200, {"server": _render_server(ctx, s)})


@router.route("DELETE", "/v2.1/servers/{sid}")
def delete_server(ctx: Ctx, sid: str) -> Reply:
    """204 now; the server lingers in ``deleting`` for a poll or two, then 404."""
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        if s.get("locked"):
            raise ApiError(409, f"Instance {sid} is locked")
        if s.get("_gone") is None:
            s["_gone"] = ctx.world.settings.server_delete_polls
            s["_gone_at"] = ctx.world.now() + ctx.world.settings.server_delete_time
            s["OS-EXT-STS:task_state"] = "deleting"
    return Reply(204)


def forget_servers_on_flavor(world: World, flavor_id: str) -> None:
    """Blazar's lease end: servers on the reserved flavor are deleted (gone at once)."""
    for s in list(world.table("servers").values()):
        if s["_flavor"]["id"] == flavor_id:
            _release_networks(world, s["id"])
            world.remove("servers", s["id"])


@router.route("POST", "/v2.1/servers/{sid}/action")
def server_action(ctx: Ctx, sid: str) -> Reply:
    """addSecurityGroup, removeSecurityGroup, os-start, os-stop, reboot, lock, unlock."""
    body = ctx.json()
    if len(body) != 1:
        raise ApiError(400, "There is no such action: " + ",".join(body))
    action, arg = next(iter(body.items()))
    world = ctx.world
    with world.lock:
        s = _get_server(ctx, sid)
        ports = [p for p in world.table("ports").values() if p["device_id"] == sid]
        if action in ("addSecurityGroup", "removeSecurityGroup"):
            name = (arg or {}).get("name")
            sg = next(
                (
                    g
                    for g in world.table("security_groups").values()
                    if g["project_id"] == ctx.project_id and name in (g["name"], g["id"])
                ),
                None,
            )
            if sg is None:
                raise ApiError(
                    404, f"Security group {name} not found for project {ctx.project_id}."
                )
            for port in ports:
                if not port["port_security_enabled"]:
                    continue
                if action == "addSecurityGroup" and sg["id"] not in port["security_groups"]:
                    port["security_groups"].append(sg["id"])
                elif action == "removeSecurityGroup":
                    if sg["id"] not in port["security_groups"]:
                        raise ApiError(
                            400, f"Security group {name} not associated with the instance"
                        )
                    port["security_groups"].remove(sg["id"])
        elif action in ("os-stop", "os-start", "reboot"):
            want = {"os-stop": "ACTIVE", "os-start": "SHUTOFF", "reboot": "ACTIVE"}[action]
            if s["status"] != want:
                raise ApiError(
                    409,
                    f"Cannot '{action}' instance {sid} while it is in "
                    f"vm_state {s['OS-EXT-STS:vm_state']}",
                )
            if action != "reboot":
                s["status"] = "SHUTOFF" if action == "os-stop" else "ACTIVE"
                s["OS-EXT-STS:vm_state"] = "stopped" if action == "os-stop" else "active"
        elif action in ("lock", "unlock"):
            s["locked"] = action == "lock"
        else:
            raise ApiError(400, f"There is no such action: {action}")
        s["updated"] = iso()
    return Reply(202)


# -- metadata and tags


@router.route("GET", "/v2.1/servers/{sid}/metadata")
def get_metadata(ctx: Ctx, sid: str) -> Reply:
    """All metadata of a server."""
    with ctx.world.lock:
        return Reply(200, {"metadata": dict(_get_server(ctx, sid)["metadata"])})


def _set_metadata(ctx: Ctx, sid: str, replace: bool) -> Reply:
    meta = ctx.json().get("metadata")
    if not isinstance(meta, dict):
        raise ApiError(400, "Malformed request body: metadata must be an object")
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        s["metadata"] = {
            **({} if replace else s["metadata"]),
            **{k: str(v) for k, v in meta.items()},
        }
        return Reply(200, {"metadata": dict(s["metadata"])})


@router.route("PUT", "/v2.1/servers/{sid}/metadata")
def replace_metadata(ctx: Ctx, sid: str) -> Reply:
    """Replace all metadata."""
    return _set_metadata(ctx, sid, replace=True)


@router.route("POST", "/v2.1/servers/{sid}/metadata")
def update_metadata(ctx: Ctx, sid: str) -> Reply:
    """Merge metadata."""
    return _set_metadata(ctx, sid, replace=False)


@router.route("GET", "/v2.1/servers/{sid}/metadata/{key}")
def get_metadata_item(ctx: Ctx, sid: str, key: str) -> Reply:
    """One metadata item."""
    with ctx.world.lock:
        meta = _get_server(ctx, sid)["metadata"]
        if key not in meta:
            raise ApiError(404, "Metadata item was not found")
        return Reply(200, {"meta": {key: meta[key]}})


@router.route("PUT", "/v2.1/servers/{sid}/metadata/{key}")
def set_metadata_item(ctx: Ctx, sid: str, key: str) -> Reply:
    """Set one metadata item: body ``{"meta": {key: value}}``."""
    meta = ctx.json().get("meta")
    if not isinstance(meta, dict) or list(meta) != [key]:
        raise ApiError(400, "Request body and URI mismatch")
    with ctx.world.lock:
        _get_server(ctx, sid)["metadata"][key] = str(meta[key])
    return Reply(200, {"meta": {key: str(meta[key])}})


@router.route("DELETE", "/v2.1/servers/{sid}/metadata/{key}")
def delete_metadata_item(ctx: Ctx, sid: str, key: str) -> Reply:
    """Delete one metadata item."""
    with ctx.world.lock:
        meta = _get_server(ctx, sid)["metadata"]
        if key not in meta:
            raise ApiError(404, "Metadata item was not found")
        del meta[key]
    return Reply(204)


@router.route("GET", "/v2.1/servers/{sid}/tags")
def get_server_tags(ctx: Ctx, sid: str) -> Reply:
    """Server tags (2.26+)."""
    with ctx.world.lock:
        return Reply(200, {"tags": list(_get_server(ctx, sid)["tags"])})


@router.route("PUT", "/v2.1/servers/{sid}/tags")
def replace_server_tags(ctx: Ctx, sid: str) -> Reply:
    """Replace all server tags."""
    tags = ctx.json().get("tags")
    if not isinstance(tags, list):
        raise ApiError(400, "Invalid input for field/attribute tags.")
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        s["tags"] = sorted(set(map(str, tags)))
        return Reply(200, {"tags": s["tags"]})


@router.route("PUT", "/v2.1/servers/{sid}/tags/{tag}")
def add_server_tag(ctx: Ctx, sid: str, tag: str) -> Reply:
    """Add one server tag (201 new, 204 present)."""
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        if tag in s["tags"]:
            return Reply(204)
        s["tags"].append(tag)
    return Reply(201, None, {"Location": f"{ctx.service_url}/v2.1/servers/{sid}/tags/{tag}"})


@router.route("DELETE", "/v2.1/servers/{sid}/tags/{tag}")
def delete_server_tag(ctx: Ctx, sid: str, tag: str) -> Reply:
    """Remove one server tag."""
    with ctx.world.lock:
        s = _get_server(ctx, sid)
        if tag not in s["tags"]:
            raise ApiError(404, f"Tag '{tag}' could not be found.")
        s["tags"].remove(tag)
    return Reply(204)


# ------------------------------------------------------------------ limits & quotas


@router.route("GET", "/v2.1/limits")
def limits(ctx: Ctx) -> Reply:
    """Absolute limits and usage of the caller's project."""
    with ctx.world.lock:
        q = ctx.world.quota(ctx.project_id)
        used = _usage(ctx.world, ctx.project_id)
        return Reply(
            200,
            {
                "limits": {
                    "rate": [],
                    "absolute": {
                        "maxTotalInstances": q["instances"],
                        "maxTotalCores": q["cores"],
                        "maxTotalRAMSize": q["ram"],
                        "maxTotalKeypairs": q["key_pairs"],
                        "maxServerMeta": 128,
                        "maxImageMeta": 128,
                        "maxPersonality": 5,
                        "maxPersonalitySize": 10240,
                        "maxServerGroups": 10,
                        "maxServerGroupMembers": 10,
                        "totalInstancesUsed": used["instances"],
                        "totalCoresUsed": used["cores"],
                        "totalRAMUsed": used["ram"],
                        "totalServerGroupsUsed": 0,
                    },
                }
            },
        )


def _quota_set(ctx: Ctx, project_id: str, detail: bool) -> Reply:
    if project_id != ctx.project_id:
        raise ApiError(
            403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."
        )
    with ctx.world.lock:
        q = ctx.world.quota(project_id)
        used = _usage(ctx.world, project_id)
        keys = ("instances", "cores", "ram", "key_pairs")
        if detail:
            body = {k: {"limit": q[k], "in_use": used.get(k, 0), "reserved": 0} for k in keys}
        else:
            body = {k: q[k] for k in keys}
        body.update(id=project_id)
        return Reply(200, {"quota_set": body})


@router.route("GET", "/v2.1/os-quota-sets/{project_id}")
def quota_set(ctx: Ctx, project_id: str) -> Reply:
    """The project's compute quota."""
    return _quota_set(ctx, project_id, detail=False)


@router.route("GET", "/v2.1/os-quota-sets/{project_id}/detail")
def quota_set_detail(ctx: Ctx, project_id: str) -> Reply:
    """The project's compute quota with usage."""
    return _quota_set(ctx, project_id, detail=True)
