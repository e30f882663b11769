"""Fake Neutron v2.0: networks, subnets, ports, routers, floating IPs, security groups
and rules, tags, quotas.

Seeded: the external network ``public`` (floating-IP pool) and the shared provider network
``sharednet1``, both owned by an admin project, with an admin router joining
``sharednet1`` to ``public`` so floating IPs can reach ports on it (as at KVM@TACC); and a
``default`` security group per project.

Semantics kept because clients and teardown depend on them: 409 NetworkInUse /
SubnetInUse / RouterInUse / SecurityGroupInUse / IpAddressAlreadyAllocated / OverQuota;
404 ExternalGatewayForFloatingIPNotFound when a port's subnet has no router to the
floating IP's network; 409 RouterInterfaceInUseByFloatingIP and
RouterExternalGatewayInUseByFloatingIp; router-owned ports cannot be deleted directly;
deleting a port disassociates its floating IP; new security groups get allow-all egress.

Guesses / simplifications (documented, not verified against KVM@TACC): subnet CIDRs of
``public`` and ``sharednet1``; no DHCP ports are modelled (so a subnet's first addresses are
free); MTU 1500; a floating IP may be moved from one port to another directly; filters
compare values as strings; sorting params are ignored.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable

from .base import ApiError, Ctx, Reply, Router, paginate
from .state import World, iso, mac, new_id, public

ADMIN_PROJECT = "admin-project-0000000000000000"
PUBLIC = "public"
SHAREDNET = "sharednet1"
# neutron_lib/constants.py ROUTER_INTERFACE_OWNERS (legacy, HA replicated, DVR).
ROUTER_INTERFACE_OWNERS = (
    "network:router_interface",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
)


def render_error(err: ApiError) -> Reply:
    """Neutron's error body: ``{"NeutronError": {"type", "message", "detail"}}``."""
    kind = err.kind or {
        400: "BadRequest",
        401: "NotAuthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
    }.get(err.status, "HTTPError")
    if err.status == 401:  # keystonemiddleware answers before Neutron does
        return Reply(
            401,
            {"error": {"code": 401, "title": "Unauthorized", "message": err.message}},
            err.headers,
        )
    return Reply(
        err.status,
        {"NeutronError": {"type": kind, "message": err.message, "detail": ""}},
        err.headers,
    )


router = Router("network", render_error)

# URL collection -> (world table, singular body key, NotFound type, label in messages)
COLLECTIONS = {
    "networks": ("networks", "network", "NetworkNotFound", "Network {} could not be found."),
    "subnets": ("subnets", "subnet", "SubnetNotFound", "Subnet {} could not be found."),
    "ports": ("ports", "port", "PortNotFound", "Port {} could not be found."),
    "routers": ("routers", "router", "RouterNotFound", "Router {} could not be found."),
    "floatingips": (
        "floatingips",
        "floatingip",
        "FloatingIPNotFound",
        "Floating IP {} could not be found",
    ),
    "security-groups": (
        "security_groups",
        "security_group",
        "SecurityGroupNotFound",
        "Security group {} does not exist",
    ),
    "security-group-rules": (
        "security_group_rules",
        "security_group_rule",
        "SecurityGroupRuleNotFound",
        "Security group rule {} does not exist",
    ),
}
QUOTA_KEY = {
    "networks": "network",
    "subnets": "subnet",
    "ports": "port",
    "routers": "router",
    "floatingips": "floatingip",
    "security_groups": "security_group",
    "security_group_rules": "security_group_rule",
}
EXTENSIONS = (
    "router",
    "external-net",
    "security-group",
    "port-security",
    "quotas",
    "quota_details",
    "standard-attr-tag",
    "standard-attr-description",
    "standard-attr-timestamp",
    "standard-attr-revisions",
    "fip-port-details",
    "extraroute",
    "net-mtu",
    "binding",
    "allowed-address-pairs",
    "availability_zone",
    "subnet_allocation",
    "project-id",
    "ext-gw-mode",
    "l3-ha",
    "dhcp_agent_scheduler",
)

_revision = itertools.count(1)


def _stamp(owner_project: str | None, **fields: object) -> dict:
    now = iso()
    return {
        "tenant_id": owner_project or "",
        "project_id": owner_project or "",
        "description": "",
        "tags": [],
        "created_at": now,
        "updated_at": now,
        "revision_number": next(_revision),
        **fields,
    }


def _touch(res: dict) -> None:
    res["updated_at"] = iso()
    res["revision_number"] = next(_revision)


# ------------------------------------------------------------------ seed & helpers


def seed(world: World) -> None:
    """``public`` and ``sharednet1`` with their subnets and an admin router, and a default
    security group per project."""

    def net(name: str, cidr: str, external: bool) -> dict:
        n = world.add(
            "networks",
            _stamp(
                ADMIN_PROJECT,
                id=new_id(),
                name=name,
                status="ACTIVE",
                admin_state_up=True,
                shared=not external,
                **{"router:external": external},
                port_security_enabled=True,
                mtu=1500,
                subnets=[],
                availability_zones=["nova"],
                _seed=True,
                _project_id=ADMIN_PROJECT,
            ),
        )
        s = _new_subnet(world, n, {"name": f"{name}-subnet", "cidr": cidr}, ADMIN_PROJECT)
        s["_seed"] = True
        return n

    pub = net(PUBLIC, "129.114.108.0/22", True)
    shared = net(SHAREDNET, "10.56.0.0/22", False)
    r = world.add(
        "routers",
        _stamp(
            ADMIN_PROJECT,
            id=new_id(),
            name="sharednet1-router",
            status="ACTIVE",
            admin_state_up=True,
            external_gateway_info=None,
            routes=[],
            _seed=True,
            _project_id=ADMIN_PROJECT,
        ),
    )
    _set_gateway(world, r, {"network_id": pub["id"]})
    _add_interface(world, r, world.table("subnets")[shared["subnets"][0]])
    for port in world.table("ports").values():
        port["_seed"] = True
    for pid in world.projects:
        sg = _new_security_group(world, pid, None, "default", "Default security group")
        sg["_seed"] = True
        for rule_id in [r["id"] for r in sg["security_group_rules"]]:
            world.table("security_group_rules")[rule_id]["_seed"] = True
        # The default group also lets its own members talk to each other.
        for eth in ("IPv4", "IPv6"):
            rule = _new_rule(
                world,
                sg,
                {"direction": "ingress", "ethertype": eth, "remote_group_id": sg["id"]},
                pid,
                None,
            )
            rule["_seed"] = True


def _visible(res: dict, ctx: Ctx, kind: str) -> bool:
    if res.get("_deleted"):
        return False
    if res.get("project_id") == ctx.project_id:
        return True
    if kind == "networks":
        return bool(res.get("shared") or res.get("router:external"))
    if kind == "subnets":
        n = ctx.world.table("networks").get(res["network_id"], {})
        return bool(n.get("shared") or n.get("router:external"))
    return False


def get_visible(ctx: Ctx, coll: str, res_id: str) -> dict:
    """A resource the caller may see, or Neutron's typed 404."""
    kind, _, nf_type, nf_msg = COLLECTIONS[coll]
    res = ctx.world.table(kind).get(res_id)
    if res is None or not _visible(res, ctx, kind):
        raise ApiError(404, nf_msg.format(res_id), nf_type)
    return res


def _check_quota(ctx: Ctx, kind: str, extra: int = 1) -> None:
    limit = ctx.world.quota(ctx.project_id)[QUOTA_KEY[kind]]
    used = sum(
        1
        for r in ctx.world.table(kind).values()
        if r.get("project_id") == ctx.project_id and not r.get("_deleted")
    )
    if limit >= 0 and used + extra > limit:
        raise ApiError(409, f"Quota exceeded for resources: ['{QUOTA_KEY[kind]}'].", "OverQuota")


def network_by_name(world: World, name: str) -> dict:
    """A seeded or created network by name (first match)."""
    return next(n for n in world.table("networks").values() if n["name"] == name)


# ------------------------------------------------------------------ discovery & generic


@router.route("GET", "/", auth=False)
def versions(ctx: Ctx) -> Reply:
    """Neutron's version list (clients mostly skip it and append /v2.0)."""
    return Reply(
        200,
        {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": ctx.service_url + "/v2.0/"}],
                }
            ]
        },
    )


@router.route("GET", "/v2.0", auth=False)
def v2(ctx: Ctx) -> Reply:
    """The v2.0 resource index."""
    return Reply(
        200,
        {
            "resources": [
                {
                    "name": s,
                    "collection": c,
                    "links": [{"rel": "self", "href": f"{ctx.service_url}/v2.0/{c}"}],
                }
                for c, (_, s, _, _) in COLLECTIONS.items()
            ]
        },
    )


@router.route("GET", "/v2.0/extensions")
def extensions(ctx: Ctx) -> Reply:
    """The extension aliases this fake implements."""
    return Reply(
        200,
        {
            "extensions": [
                {
                    "alias": a,
                    "name": a,
                    "description": a,
                    "links": [],
                    "updated": "2021-10-06T10:00:00-00:00",
                }
                for a in EXTENSIONS
            ]
        },
    )


@router.route("GET", "/v2.0/extensions/{alias}")
def extension(ctx: Ctx, alias: str) -> Reply:
    """One extension, or 404."""
    if alias not in EXTENSIONS:
        raise ApiError(404, f"Extension with alias {alias} does not exist", "NotFound")
    return Reply(
        200,
        {
            "extension": {
                "alias": alias,
                "name": alias,
                "description": alias,
                "links": [],
                "updated": "2021-10-06T10:00:00-00:00",
            }
        },
    )


def _quota_project(ctx: Ctx, project_id: str) -> str:
    if project_id != ctx.project_id:
        raise ApiError(403, "Non-admin users may only read their own quota.", "Forbidden")
    return project_id


@router.route("GET", "/v2.0/quotas/{project_id}/details")
def quota_details(ctx: Ctx, project_id: str) -> Reply:
    """Limits and usage per Neutron resource."""
    pid = _quota_project(ctx, project_id)
    limits = ctx.world.quota(pid)
    out = {}
    for kind, key in QUOTA_KEY.items():
        used = sum(
            1
            for r in ctx.world.table(kind).values()
            if r.get("project_id") == pid and not r.get("_deleted")
        )
        out[key] = {"limit": limits[key], "used": used, "reserved": 0}
    return Reply(200, {"quota": out})


@router.route("GET", "/v2.0/quotas/{project_id}")
def quota(ctx: Ctx, project_id: str) -> Reply:
    """Limits per Neutron resource."""
    limits = ctx.world.quota(_quota_project(ctx, project_id))
    return Reply(200, {"quota": {key: limits[key] for key in QUOTA_KEY.values()}})


def _coll(coll: str) -> tuple[str, str, str, str]:
    if coll not in COLLECTIONS:
        raise ApiError(404, "The resource could not be found.", "HTTPNotFound")
    return COLLECTIONS[coll]


def _matches(res: dict, args) -> bool:
    for key in set(args.keys()):
        values = args.getlist(key)
        if key in ("fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"):
            continue
        if key in ("tags", "tags-any", "not-tags", "not-tags-any"):
            wanted = {t for v in values for t in v.split(",") if t}
            have = set(res.get("tags", []))
            ok = {
                "tags": wanted <= have,
                "tags-any": bool(wanted & have),
                "not-tags": not wanted <= have,
                "not-tags-any": not wanted & have,
            }[key]
            if not ok:
                return False
            continue
        if key == "fixed_ips":  # ports?fixed_ips=ip_address=1.2.3.4&fixed_ips=subnet_id=...
            for v in values:
                k, _, want = v.partition("=")
                if not any(str(ip.get(k)) == want for ip in res.get("fixed_ips", [])):
                    return False
            continue
        if key not in res:
            continue  # Neutron ignores unknown filters
        actual = res[key]
        as_text = str(actual).lower() if isinstance(actual, bool) else str(actual)
        if actual is None:
            as_text = ""
        if not any(as_text == (v.lower() if isinstance(actual, bool) else v) for v in values):
            return False
    return True


def _project(res: dict, args) -> dict:
    fields = args.getlist("fields")
    out = public(res)
    if fields:
        out = {k: v for k, v in out.items() if k in fields}
    return out


@router.route("GET", "/v2.0/{coll}")
def list_resources(ctx: Ctx, coll: str) -> Reply:
    """List one collection with Neutron's filters (any field, tags*, fixed_ips) and paging."""
    kind, _, _, _ = _coll(coll)
    with ctx.world.lock:
        items = [
            r
            for r in ctx.world.table(kind).values()
            if _visible(r, ctx, kind) and _matches(r, ctx.args)
        ]
        page, more = paginate(items, ctx.args)
        body: dict = {kind: [_project(r, ctx.args) for r in page]}
    if more:
        body[f"{kind}_links"] = [
            {
                "rel": "next",
                "href": f"{ctx.service_url}/v2.0/{coll}?limit={ctx.args['limit']}"
                f"&marker={page[-1]['id']}",
            }
        ]
    return Reply(200, body)


@router.route("GET", "/v2.0/{coll}/{res_id}")
def show_resource(ctx: Ctx, coll: str, res_id: str) -> Reply:
    """Show one resource (404 for names: clients try the name first, then list)."""
    _, singular, _, _ = _coll(coll)
    with ctx.world.lock:
        return Reply(200, {singular: _project(get_visible(ctx, coll, res_id), ctx.args)})


@router.route("POST", "/v2.0/{coll}")
def create_resource(ctx: Ctx, coll: str) -> Reply:
    """Create one resource (bulk create, a list under the plural key, is supported too)."""
    kind, singular, _, _ = _coll(coll)
    body = ctx.json()
    with ctx.world.lock:
        if kind in body:  # bulk
            made = [CREATORS[kind](ctx, _require(item)) for item in body[kind]]
            return Reply(201, {kind: [public(r) for r in made]})
        if singular not in body or not isinstance(body[singular], dict):
            raise ApiError(400, f"Resource body required; expected '{singular}'.", "BadRequest")
        _check_quota(ctx, kind)
        return Reply(201, {singular: public(CREATORS[kind](ctx, body[singular]))})


def _require(item: object) -> dict:
    if not isinstance(item, dict):
        raise ApiError(400, "Malformed bulk request body", "BadRequest")
    return item


@router.route("DELETE", "/v2.0/{coll}")
def delete_collection(ctx: Ctx, coll: str) -> Reply:
    """No bulk delete. python-chi 1.x's ``Server.delete()`` sends ``DELETE /v2.0/<fip id>``
    (see chameleon.md section 8.6) and gets this 404, which it ignores."""
    _coll(coll)
    raise ApiError(
        405, "The method DELETE is not allowed for this resource.", "HTTPMethodNotAllowed"
    )


@router.route("PUT", "/v2.0/{coll}/{res_id}")
def update_resource(ctx: Ctx, coll: str, res_id: str) -> Reply:
    """Update one resource (only the attributes Neutron lets a project change)."""
    kind, singular, _, _ = _coll(coll)
    body = ctx.json().get(singular)
    if not isinstance(body, dict):
        raise ApiError(400, f"Resource body required; expected '{singular}'.", "BadRequest")
    with ctx.world.lock:
        res = get_visible(ctx, coll, res_id)
        if res.get("project_id") != ctx.project_id:
            raise ApiError(
                403,
                f"The request you have made requires authorization to update {singular} {res_id}.",
                "PolicyNotAuthorized",
            )
        UPDATERS.get(kind, _update_plain)(ctx, res, body)
        _touch(res)
        return Reply(200, {singular: public(res)})


@router.route("DELETE", "/v2.0/{coll}/{res_id}")
def delete_resource(ctx: Ctx, coll: str, res_id: str) -> Reply:
    """Delete one resource, refusing with Neutron's 409s while it is in use."""
    kind, _, _, _ = _coll(coll)
    with ctx.world.lock:
        res = get_visible(ctx, coll, res_id)
        if res.get("project_id") != ctx.project_id:
            raise ApiError(403, "Not authorized.", "PolicyNotAuthorized")
        DELETERS[kind](ctx, res)
        return Reply(204)


# -- tags


def _tagged(ctx: Ctx, coll: str, res_id: str) -> dict:
    _coll(coll)
    res = get_visible(ctx, coll, res_id)
    if res.get("project_id") != ctx.project_id:
        raise ApiError(403, "Not authorized.", "PolicyNotAuthorized")
    return res


@router.route("GET", "/v2.0/{coll}/{res_id}/tags")
def get_tags(ctx: Ctx, coll: str, res_id: str) -> Reply:
    """The tags of one resource."""
    with ctx.world.lock:
        return Reply(200, {"tags": list(_tagged(ctx, coll, res_id)["tags"])})


@router.route("PUT", "/v2.0/{coll}/{res_id}/tags")
def replace_tags(ctx: Ctx, coll: str, res_id: str) -> Reply:
    """Replace all tags."""
    tags = ctx.json().get("tags")
    if not isinstance(tags, list):
        raise ApiError(400, "Invalid input for tags.", "BadRequest")
    with ctx.world.lock:
        res = _tagged(ctx, coll, res_id)
        res["tags"] = sorted(set(map(str, tags)))
        _touch(res)
        return Reply(200, {"tags": res["tags"]})


@router.route("PUT", "/v2.0/{coll}/{res_id}/tags/{tag}")
def add_tag(ctx: Ctx, coll: str, res_id: str, tag: str) -> Reply:
    """Add one tag (201, no body)."""
    with ctx.world.lock:
        res = _tagged(ctx, coll, res_id)
        if tag not in res["tags"]:
            res["tags"] = sorted([*res["tags"], tag])
            _touch(res)
    return Reply(201)


@router.route("GET", "/v2.0/{coll}/{res_id}/tags/{tag}")
def has_tag(ctx: Ctx, coll: str, res_id: str, tag: str) -> Reply:
    """204 if the tag is there, else 404."""
    with ctx.world.lock:
        if tag not in _tagged(ctx, coll, res_id)["tags"]:
            raise ApiError(404, f"Tag {tag} could not be found.", "TagNotFound")
    return Reply(204)


@router.route("DELETE", "/v2.0/{coll}/{res_id}/tags/{tag}")
def remove_tag(ctx: Ctx, coll: str, res_id: str, tag: str) -> Reply:
    """Remove one tag."""
    with ctx.world.lock:
        res = _tagged(ctx, coll, res_id)
        if tag not in res["tags"]:
            raise ApiError(404, f"Tag {tag} could not be found.", "TagNotFound")
        res["tags"].remove(tag)
        _touch(res)
    return Reply(204)


@router.route("DELETE", "/v2.0/{coll}/{res_id}/tags")
def remove_tags(ctx: Ctx, coll: str, res_id: str) -> Reply:
    """Remove all tags."""
    with ctx.world.lock:
        res = _tagged(ctx, coll, res_id)
        res["tags"] = []
        _touch(res)
    return Reply(204)


# ------------------------------------------------------------------ networks & subnets


def _create_network(ctx: Ctx, body: dict) -> dict:
    if body.get("shared") or body.get("router:external"):
        raise ApiError(
            403, "(rule:create_network:shared) is disallowed by policy", "PolicyNotAuthorized"
        )
    return ctx.world.add(
        "networks",
        _stamp(
            ctx.project_id,
            id=new_id(),
            name=body.get("name", ""),
            status="ACTIVE",
            admin_state_up=body.get("admin_state_up", True),
            shared=False,
            **{"router:external": False},
            port_security_enabled=body.get("port_security_enabled", True),
            mtu=body.get("mtu", 1500),
            subnets=[],
            availability_zone_hints=[],
            availability_zones=["nova"],
            ipv4_address_scope=None,
            ipv6_address_scope=None,
            is_default=False,
            l2_adjacency=True,
            qos_policy_id=None,
            description=body.get("description", ""),
            **ctx.owner(),
        ),
    )


def _new_subnet(
    world: World, net: dict, body: dict, project_id: str | None, user_id: str | None = None
) -> dict:
    try:
        cidr = ipaddress.ip_network(body.get("cidr", ""), strict=False)
    except ValueError as exc:
        raise ApiError(
            400,
            f"Invalid input for cidr. Reason: '{body.get('cidr')}' is not a valid IP subnet.",
            "HTTPBadRequest",
        ) from exc
    version = body.get("ip_version", cidr.version)
    if version != cidr.version:
        raise ApiError(
            400, "Invalid input for operation: cidr and ip_version mismatch.", "InvalidInput"
        )
    for sid in net["subnets"]:
        other = ipaddress.ip_network(world.table("subnets")[sid]["cidr"])
        if other.version == cidr.version and other.overlaps(cidr):
            raise ApiError(
                400,
                f"Invalid input for operation: Requested subnet with cidr: "
                f"{cidr} for network: {net['id']} overlaps with another "
                f"subnet.",
                "InvalidInput",
            )
    hosts = list(itertools.islice(cidr.hosts(), 2)) or [cidr.network_address]
    gateway = body["gateway_ip"] if "gateway_ip" in body else str(hosts[0])
    if gateway is not None and ipaddress.ip_address(gateway) not in cidr:
        raise ApiError(
            400,
            f"Invalid input for operation: Gateway IP {gateway} is not in subnet {cidr}.",
            "InvalidInput",
        )
    pools = body.get("allocation_pools")
    if not pools:
        first = cidr.network_address + 1
        last = cidr.broadcast_address - 1 if cidr.version == 4 else cidr[-1]
        pools = [{"start": str(first), "end": str(last)}]
        if gateway is not None:  # the gateway is carved out of the default pool
            gw = ipaddress.ip_address(gateway)
            pools = [
                p
                for p in (
                    {"start": str(first), "end": str(gw - 1)} if gw > first else None,
                    {"start": str(gw + 1), "end": str(last)} if gw < last else None,
                )
                if p
            ]
    subnet = world.add(
        "subnets",
        _stamp(
            project_id,
            id=new_id(),
            name=body.get("name", ""),
            network_id=net["id"],
            cidr=str(cidr),
            ip_version=cidr.version,
            gateway_ip=gateway,
            enable_dhcp=body.get("enable_dhcp", True),
            allocation_pools=pools,
            dns_nameservers=body.get("dns_nameservers", []),
            host_routes=body.get("host_routes", []),
            ipv6_ra_mode=None,
            ipv6_address_mode=None,
            subnetpool_id=None,
            service_types=[],
            description=body.get("description", ""),
            _project_id=project_id,
            _user_id=user_id,
        ),
    )
    net["subnets"].append(subnet["id"])
    _touch(net)
    return subnet


def _create_subnet(ctx: Ctx, body: dict) -> dict:
    if "network_id" not in body or "cidr" not in body:
        raise ApiError(
            400,
            "Failed to parse request. Required attributes 'network_id' and "
            "'cidr' must be specified",
            "HTTPBadRequest",
        )
    net = get_visible(ctx, "networks", body["network_id"])
    if net["project_id"] != ctx.project_id:
        raise ApiError(
            403, "Tenant is not allowed to create subnet on this network", "PolicyNotAuthorized"
        )
    return _new_subnet(ctx.world, net, body, ctx.project_id, ctx.user_id)


def _ports_on(world: World, **match: str) -> list[dict]:
    return [
        p for p in world.table("ports").values() if all(p.get(k) == v for k, v in match.items())
    ]


def _delete_network(ctx: Ctx, net: dict) -> None:
    if _ports_on(ctx.world, network_id=net["id"]):
        raise ApiError(
            409,
            f"Unable to complete operation on network {net['id']}. There are "
            f"one or more ports still in use on the network.",
            "NetworkInUse",
        )
    for sid in list(net["subnets"]):
        ctx.world.remove("subnets", sid)
    ctx.world.remove("networks", net["id"])


def _subnet_ports(world: World, subnet_id: str) -> list[dict]:
    return [
        p
        for p in world.table("ports").values()
        if any(ip["subnet_id"] == subnet_id for ip in p["fixed_ips"])
    ]


def _delete_subnet(ctx: Ctx, subnet: dict) -> None:
    if _subnet_ports(ctx.world, subnet["id"]):
        raise ApiError(
            409,
            f"Unable to complete operation on subnet {subnet['id']}: One or "
            f"more ports have an IP allocation from this subnet.",
            "SubnetInUse",
        )
    net = ctx.world.table("networks")[subnet["network_id"]]
    net["subnets"].remove(subnet["id"])
    ctx.world.remove("subnets", subnet["id"])


def _update_plain(ctx: Ctx, res: dict, body: dict) -> None:
    for key in (
        "name",
        "description",
        "admin_state_up",
        "port_security_enabled",
        "mtu",
        "enable_dhcp",
        "dns_nameservers",
        "host_routes",
        "gateway_ip",
        "routes",
    ):
        if key in body and key in res:
            res[key] = body[key]


# ------------------------------------------------------------------ ports


def _allocate_ip(world: World, subnet: dict) -> str:
    used = {
        ip["ip_address"]
        for p in _subnet_ports(world, subnet["id"])
        for ip in p["fixed_ips"]
        if ip["subnet_id"] == subnet["id"]
    }
    for pool in subnet["allocation_pools"]:
        addr, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        while addr <= end:
            if str(addr) not in used:
                return str(addr)
            addr += 1
    raise ApiError(
        409,
        f"No more IP addresses available on network {subnet['network_id']}.",
        "IpAddressGenerationFailure",
    )


def _fixed_ips(world: World, net: dict, wanted: list[dict] | None) -> list[dict]:
    subnets = [world.table("subnets")[s] for s in net["subnets"]]
    if wanted is None:
        v4 = [s for s in subnets if s["ip_version"] == 4] or subnets
        return [{"subnet_id": v4[0]["id"], "ip_address": _allocate_ip(world, v4[0])}] if v4 else []
    out = []
    for want in wanted:
        ip, sid = want.get("ip_address"), want.get("subnet_id")
        if sid is not None and sid not in net["subnets"]:
            raise ApiError(
                400,
                f"Invalid input for operation: Failed to create port on network "
                f"{net['id']}, because fixed_ips included invalid subnet {sid}.",
                "InvalidInput",
            )
        if ip is None:
            subnet = world.table("subnets")[sid] if sid else subnets[0]
            out.append({"subnet_id": subnet["id"], "ip_address": _allocate_ip(world, subnet)})
            continue
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise ApiError(
                400,
                f"Invalid input for fixed_ips. Reason: '{ip}' is not a valid IP address.",
                "HTTPBadRequest",
            ) from exc
        subnet = next(
            (
                s
                for s in subnets
                if (sid in (None, s["id"])) and addr in ipaddress.ip_network(s["cidr"])
            ),
            None,
        )
        if subnet is None:
            raise ApiError(
                400,
                f"IP address {ip} is not a valid IP for any of the subnets on "
                f"the specified network.",
                "InvalidIpForNetwork",
            )
        if any(
            x["ip_address"] == ip
            for p in _subnet_ports(world, subnet["id"])
            for x in p["fixed_ips"]
        ):
            raise ApiError(
                409,
                f"IP address {ip} already allocated in subnet {subnet['id']}",
                "IpAddressAlreadyAllocated",
            )
        out.append({"subnet_id": subnet["id"], "ip_address": ip})
    return out


def _default_sg(world: World, project_id: str) -> dict:
    return next(
        g
        for g in world.table("security_groups").values()
        if g["project_id"] == project_id and g["name"] == "default"
    )


def new_port(
    world: World, net: dict, body: dict, project_id: str | None, user_id: str | None
) -> dict:
    """Create a port on ``net`` (used by the API and by Nova when it boots a server)."""
    port_security = body.get("port_security_enabled", net.get("port_security_enabled", True))
    groups = body.get("security_groups")
    if groups is None:
        groups = (
            [_default_sg(world, project_id)["id"]]
            if port_security and project_id in world.projects
            else []
        )
    if groups and not port_security:
        raise ApiError(
            400,
            "Port security must be enabled and port must have an IP address "
            "in order to use security groups.",
            "PortSecurityAndIPRequiredForSecurityGroups",
        )
    for gid in groups:
        g = world.table("security_groups").get(gid)
        if g is None or g["project_id"] != project_id:
            raise ApiError(404, f"Security group {gid} does not exist", "SecurityGroupNotFound")
    port = _stamp(
        project_id,
        id=new_id(),
        name=body.get("name", ""),
        network_id=net["id"],
        mac_address=body.get("mac_address") or mac(),
        admin_state_up=body.get("admin_state_up", True),
        status="DOWN",
        device_id=body.get("device_id", ""),
        device_owner=body.get("device_owner", ""),
        fixed_ips=_fixed_ips(world, net, body.get("fixed_ips")),
        allowed_address_pairs=body.get("allowed_address_pairs", []),
        extra_dhcp_opts=[],
        security_groups=list(groups),
        port_security_enabled=port_security,
        ip_allocation="immediate",
        dns_name="",
        **{"binding:vnic_type": body.get("binding:vnic_type", "normal")},
        description=body.get("description", ""),
        _project_id=project_id,
        _user_id=user_id,
    )
    return world.add("ports", port)


def _create_port(ctx: Ctx, body: dict) -> dict:
    if "network_id" not in body:
        raise ApiError(
            400,
            "Failed to parse request. Required attribute 'network_id' not specified",
            "HTTPBadRequest",
        )
    net = get_visible(ctx, "networks", body["network_id"])
    return new_port(ctx.world, net, body, ctx.project_id, ctx.user_id)


def _update_port(ctx: Ctx, port: dict, body: dict) -> None:
    world = ctx.world
    groups = body.get("security_groups", port["security_groups"])
    port_security = body.get("port_security_enabled", port["port_security_enabled"])
    if not port_security and groups:
        if "security_groups" in body:
            raise ApiError(
                400,
                "Port security must be enabled and port must have an IP "
                "address in order to use security groups.",
                "PortSecurityAndIPRequiredForSecurityGroups",
            )
        raise ApiError(
            409,
            "Port has security group associated. Cannot disable port security "
            "or ip address until security group is removed",
            "PortSecurityPortHasSecurityGroup",
        )
    for gid in groups:
        g = world.table("security_groups").get(gid)
        if g is None or g["project_id"] != ctx.project_id:
            raise ApiError(404, f"Security group {gid} does not exist", "SecurityGroupNotFound")
    if "fixed_ips" in body:
        net = world.table("networks")[port["network_id"]]
        old, port["fixed_ips"] = port["fixed_ips"], []
        try:
            port["fixed_ips"] = _fixed_ips(world, net, body["fixed_ips"])
        except ApiError:
            port["fixed_ips"] = old
            raise
    port["security_groups"] = list(groups)
    port["port_security_enabled"] = port_security
    for key in (
        "name",
        "description",
        "admin_state_up",
        "device_id",
        "device_owner",
        "allowed_address_pairs",
    ):
        if key in body:
            port[key] = body[key]


def _delete_port(ctx: Ctx, port: dict) -> None:
    if port["device_owner"] in (*ROUTER_INTERFACE_OWNERS, "network:router_gateway"):
        raise ApiError(
            409,
            f"Port {port['id']} cannot be deleted directly via the port API: "
            f"has device owner {port['device_owner']}.",
            "L3PortInUse",
        )
    remove_port(ctx.world, port)


def remove_port(world: World, port: dict) -> None:
    """Delete a port and disassociate any floating IP bound to it (as Neutron does)."""
    for fip in world.table("floatingips").values():
        if fip["port_id"] == port["id"]:
            _disassociate(fip)
    world.remove("ports", port["id"])


def unbind_port(world: World, port: dict) -> None:
    """Detach a user-created port from a deleted server: it stays, unbound."""
    port.update(device_id="", device_owner="", status="DOWN")
    _touch(port)


# ------------------------------------------------------------------ routers


def _set_gateway(world: World, router: dict, info: dict | None) -> None:
    old = router.get("external_gateway_info")
    if old and (not info or info.get("network_id") != old["network_id"]):
        if any(f["router_id"] == router["id"] for f in world.table("floatingips").values()):
            raise ApiError(
                409,
                f"Gateway cannot be updated for router {router['id']}, since a "
                f"gateway to external network {old['network_id']} is required "
                f"by one or more floating IPs.",
                "RouterExternalGatewayInUseByFloatingIp",
            )
        for p in _ports_on(world, device_id=router["id"], device_owner="network:router_gateway"):
            world.remove("ports", p["id"])
        router["external_gateway_info"] = None
    if info and not router.get("external_gateway_info"):
        net = world.table("networks").get(info.get("network_id", ""))
        if net is None:
            raise ApiError(
                404, f"Network {info.get('network_id')} could not be found.", "NetworkNotFound"
            )
        if not net["router:external"]:
            raise ApiError(
                400,
                f"Bad router request: Network {net['id']} is not an external network.",
                "BadRequest",
            )
        gw = new_port(
            world,
            net,
            {
                "device_id": router["id"],
                "device_owner": "network:router_gateway",
                "port_security_enabled": False,
            },
            None,
            None,
        )
        gw["status"] = "ACTIVE"
        router["external_gateway_info"] = {
            "network_id": net["id"],
            "enable_snat": info.get("enable_snat", True),
            "external_fixed_ips": [dict(ip) for ip in gw["fixed_ips"]],
        }


def _create_router(ctx: Ctx, body: dict) -> dict:
    router = _stamp(
        ctx.project_id,
        id=new_id(),
        name=body.get("name", ""),
        status="ACTIVE",
        admin_state_up=body.get("admin_state_up", True),
        external_gateway_info=None,
        routes=[],
        availability_zone_hints=[],
        availability_zones=["nova"],
        flavor_id=None,
        description=body.get("description", ""),
        **ctx.owner(),
    )
    if body.get("external_gateway_info"):
        _set_gateway(ctx.world, router, body["external_gateway_info"])
    return ctx.world.add("routers", router)


def _update_router(ctx: Ctx, router: dict, body: dict) -> None:
    if "external_gateway_info" in body:
        _set_gateway(ctx.world, router, body["external_gateway_info"])
    _update_plain(ctx, router, body)


def _interfaces(world: World, router_id: str) -> list[dict]:
    return [
        p
        for p in _ports_on(world, device_id=router_id)
        if p["device_owner"] in ROUTER_INTERFACE_OWNERS
    ]


def _delete_router(ctx: Ctx, router: dict) -> None:
    if _interfaces(ctx.world, router["id"]):
        raise ApiError(409, f"Router {router['id']} still has ports", "RouterInUse")
    _set_gateway(ctx.world, router, None)
    ctx.world.remove("routers", router["id"])


def _add_interface(world: World, router: dict, subnet: dict, port: dict | None = None) -> dict:
    for p in _interfaces(world, router["id"]):
        for ip in p["fixed_ips"]:
            if ip["subnet_id"] == subnet["id"]:
                raise ApiError(
                    400,
                    f"Bad router request: Router already has a port on subnet {subnet['id']}.",
                    "BadRequest",
                )
            other = world.table("subnets")[ip["subnet_id"]]["cidr"]
            if ipaddress.ip_network(other).overlaps(ipaddress.ip_network(subnet["cidr"])):
                raise ApiError(
                    400,
                    f"Bad router request: Cidr {subnet['cidr']} of subnet "
                    f"{subnet['id']} overlaps with cidr {other}.",
                    "BadRequest",
                )
    if port is None:
        if not subnet["gateway_ip"]:
            raise ApiError(
                400,
                f"Bad router request: Subnet {subnet['id']} does not have a gateway IP.",
                "BadRequest",
            )
        net = world.table("networks")[subnet["network_id"]]
        port = new_port(
            world,
            net,
            {
                "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}],
                "port_security_enabled": False,
            },
            router["project_id"],
            router.get("_user_id"),
        )
    owner = world.settings.router_interface_owner
    port.update(device_id=router["id"], device_owner=owner, status="ACTIVE")
    return port


def _interface_reply(router: dict, port: dict) -> Reply:
    subnet_ids = [ip["subnet_id"] for ip in port["fixed_ips"]]
    return Reply(
        200,
        {
            "id": router["id"],
            "tenant_id": router["project_id"],
            "project_id": router["project_id"],
            "port_id": port["id"],
            "network_id": port["network_id"],
            "subnet_id": subnet_ids[0],
            "subnet_ids": subnet_ids,
        },
    )


def _router_and_body(ctx: Ctx, router_id: str) -> tuple[dict, dict]:
    router = get_visible(ctx, "routers", router_id)
    body = ctx.json()
    if not body.get("subnet_id") and not body.get("port_id"):
        raise ApiError(
            400, "Bad router request: Either subnet_id or port_id must be specified.", "BadRequest"
        )
    return router, body


@router.route("PUT", "/v2.0/routers/{router_id}/add_router_interface")
def add_router_interface(ctx: Ctx, router_id: str) -> Reply:
    """Attach a subnet (a new port on its gateway IP) or an existing port to a router."""
    with ctx.world.lock:
        router, body = _router_and_body(ctx, router_id)
        if body.get("port_id"):
            port = get_visible(ctx, "ports", body["port_id"])
            if port["device_id"]:
                raise ApiError(
                    409,
                    f"Port {port['id']} is in use by another device {port['device_id']}.",
                    "PortInUse",
                )
            subnet = ctx.world.table("subnets")[port["fixed_ips"][0]["subnet_id"]]
            port = _add_interface(ctx.world, router, subnet, port)
        else:
            subnet = get_visible(ctx, "subnets", body["subnet_id"])
            port = _add_interface(ctx.world, router, subnet)
        _touch(router)
        return _interface_reply(router, port)


@router.route("PUT", "/v2.0/routers/{router_id}/remove_router_interface")
def remove_router_interface(ctx: Ctx, router_id: str) -> Reply:
    """Detach a subnet or port from a router (the interface port is deleted)."""
    with ctx.world.lock:
        router, body = _router_and_body(ctx, router_id)
        ports = _interfaces(ctx.world, router["id"])
        if body.get("port_id"):
            port = next((p for p in ports if p["id"] == body["port_id"]), None)
            if port is None:
                raise ApiError(
                    404,
                    f"Router {router['id']} does not have an interface with id {body['port_id']}",
                    "RouterInterfaceNotFound",
                )
        else:
            sid = body["subnet_id"]
            port = next(
                (p for p in ports if any(ip["subnet_id"] == sid for ip in p["fixed_ips"])), None
            )
            if port is None:
                raise ApiError(
                    404,
                    f"Router {router['id']} has no interface on subnet {sid}",
                    "RouterInterfaceNotFoundForSubnet",
                )
        for ip in port["fixed_ips"]:
            if _fips_via(ctx.world, router["id"], ip["subnet_id"]):
                raise ApiError(
                    409,
                    f"Router interface for subnet {ip['subnet_id']} on router "
                    f"{router['id']} cannot be deleted, as it is required by "
                    f"one or more floating IPs.",
                    "RouterInterfaceInUseByFloatingIP",
                )
        reply = _interface_reply(router, port)
        ctx.world.remove("ports", port["id"])
        _touch(router)
        return reply


# ------------------------------------------------------------------ floating IPs


def _fips_via(world: World, router_id: str, subnet_id: str) -> list[dict]:
    out = []
    for fip in world.table("floatingips").values():
        port = world.table("ports").get(fip["port_id"] or "")
        if (
            fip["router_id"] == router_id
            and port
            and any(ip["subnet_id"] == subnet_id for ip in port["fixed_ips"])
        ):
            out.append(fip)
    return out


def _disassociate(fip: dict) -> None:
    fip.update(
        port_id=None, fixed_ip_address=None, router_id=None, status="DOWN", port_details=None
    )
    _touch(fip)


def _associate(ctx: Ctx, fip: dict, port_id: str, fixed_ip: str | None) -> None:
    world = ctx.world
    port = get_visible(ctx, "ports", port_id)
    if not port["fixed_ips"]:
        raise ApiError(
            400,
            f"Bad floatingip request: Port {port_id} does not have any IP addresses.",
            "BadRequest",
        )
    ip = next(
        (
            i
            for i in port["fixed_ips"]
            if fixed_ip in (None, i["ip_address"])
            and ipaddress.ip_address(i["ip_address"]).version == 4
        ),
        None,
    )
    if ip is None:
        raise ApiError(
            400,
            f"Bad floatingip request: Cannot find port {port_id} with the fixed IP {fixed_ip}.",
            "BadRequest",
        )
    ext = fip["floating_network_id"]
    router = next(
        (
            r
            for r in world.table("routers").values()
            if (r.get("external_gateway_info") or {}).get("network_id") == ext
            and any(
                any(x["subnet_id"] == ip["subnet_id"] for x in p["fixed_ips"])
                for p in _interfaces(world, r["id"])
            )
        ),
        None,
    )
    if router is None:
        raise ApiError(
            404,
            f"External network {ext} is not reachable from subnet "
            f"{ip['subnet_id']}.  Therefore, cannot associate Port {port_id} "
            f"with a Floating IP.",
            "ExternalGatewayForFloatingIPNotFound",
        )
    for other in world.table("floatingips").values():
        if (
            other is not fip
            and other["port_id"] == port_id
            and other["fixed_ip_address"] == ip["ip_address"]
        ):
            raise ApiError(
                409,
                f"Cannot associate floating IP {fip['floating_ip_address']} "
                f"({fip['id']}) with port {port_id} using fixed IP "
                f"{ip['ip_address']}, as that fixed IP already has a floating "
                f"IP on external network {ext}.",
                "FloatingIPPortAlreadyAssociated",
            )
    fip.update(
        port_id=port_id,
        fixed_ip_address=ip["ip_address"],
        router_id=router["id"],
        status="ACTIVE",
        port_details={
            k: port[k]
            for k in (
                "name",
                "network_id",
                "mac_address",
                "admin_state_up",
                "status",
                "device_id",
                "device_owner",
            )
        },
    )


def _create_fip(ctx: Ctx, body: dict) -> dict:
    world = ctx.world
    net = world.table("networks").get(body.get("floating_network_id", ""))
    if net is None or not net["router:external"]:
        raise ApiError(
            400,
            f"Bad floatingip request: Network "
            f"{body.get('floating_network_id')} is not a valid external "
            f"network.",
            "BadRequest",
        )
    subnet = world.table("subnets")[net["subnets"][0]]
    taken = {f["floating_ip_address"] for f in world.table("floatingips").values()}
    addr = body.get("floating_ip_address")
    if addr and addr in taken:
        raise ApiError(
            409,
            f"IP address {addr} already allocated in subnet {subnet['id']}",
            "IpAddressAlreadyAllocated",
        )
    if not addr:
        # Skip addresses held by router gateway ports as well as other floating IPs.
        gw = {ip["ip_address"] for p in _subnet_ports(world, subnet["id"]) for ip in p["fixed_ips"]}
        pool = subnet["allocation_pools"][0]
        cand = ipaddress.ip_address(pool["start"])
        while str(cand) in taken or str(cand) in gw:
            cand += 1
        addr = str(cand)
    fip = _stamp(
        ctx.project_id,
        id=new_id(),
        floating_ip_address=addr,
        floating_network_id=net["id"],
        router_id=None,
        port_id=None,
        fixed_ip_address=None,
        status="DOWN",
        port_details=None,
        dns_domain="",
        dns_name="",
        port_forwardings=[],
        qos_policy_id=None,
        description=body.get("description", ""),
        **ctx.owner(),
    )
    if body.get("port_id"):
        _associate(ctx, fip, body["port_id"], body.get("fixed_ip_address"))
    return world.add("floatingips", fip)


def _update_fip(ctx: Ctx, fip: dict, body: dict) -> None:
    if "port_id" in body:
        if body["port_id"]:
            _associate(ctx, fip, body["port_id"], body.get("fixed_ip_address"))
        else:
            _disassociate(fip)
    if "description" in body:
        fip["description"] = body["description"]


def _delete_fip(ctx: Ctx, fip: dict) -> None:
    ctx.world.remove("floatingips", fip["id"])


# ------------------------------------------------------------------ security groups


def _new_security_group(
    world: World, project_id: str, user_id: str | None, name: str, description: str = ""
) -> dict:
    sg = world.add(
        "security_groups",
        _stamp(
            project_id,
            id=new_id(),
            name=name,
            description=description,
            stateful=True,
            shared=False,
            security_group_rules=[],
            _project_id=project_id,
            _user_id=user_id,
        ),
    )
    for eth in ("IPv4", "IPv6"):  # Neutron's default allow-all egress
        _new_rule(world, sg, {"direction": "egress", "ethertype": eth}, project_id, user_id)
    return sg


def _new_rule(world: World, sg: dict, body: dict, project_id: str, user_id: str | None) -> dict:
    rule = _stamp(
        project_id,
        id=new_id(),
        security_group_id=sg["id"],
        direction=body.get("direction"),
        ethertype=body.get("ethertype", "IPv4"),
        protocol=body.get("protocol"),
        port_range_min=body.get("port_range_min"),
        port_range_max=body.get("port_range_max"),
        remote_ip_prefix=body.get("remote_ip_prefix"),
        remote_group_id=body.get("remote_group_id"),
        remote_address_group_id=None,
        description=body.get("description", ""),
        _project_id=project_id,
        _user_id=user_id,
    )
    world.add("security_group_rules", rule)
    sg["security_group_rules"].append(rule)  # same dict: rule edits show in both places
    return rule


def _create_sg(ctx: Ctx, body: dict) -> dict:
    if body.get("name") == "default":
        raise ApiError(409, "Default security group already exists.", "SecurityGroupExists")
    return _new_security_group(
        ctx.world, ctx.project_id, ctx.user_id, body.get("name", ""), body.get("description", "")
    )


def _delete_sg(ctx: Ctx, sg: dict) -> None:
    if sg["name"] == "default":
        raise ApiError(
            409,
            "Insufficient rights for removing default security group.",
            "SecurityGroupCannotRemoveDefault",
        )
    if any(sg["id"] in p["security_groups"] for p in ctx.world.table("ports").values()):
        raise ApiError(409, f"Security Group {sg['id']} in use.", "SecurityGroupInUse")
    for rule in sg["security_group_rules"]:
        ctx.world.remove("security_group_rules", rule["id"])
    ctx.world.remove("security_groups", sg["id"])


_RULE_KEYS = (  # neutron/db/securitygroups_db.py `_rule_to_key` comparison_keys
    "direction",
    "ethertype",
    "port_range_max",
    "port_range_min",
    "protocol",
    "remote_group_id",
    "remote_address_group_id",
    "remote_ip_prefix",
    "security_group_id",
)
# neutron-lib IP_PROTOCOL_MAP (the part clients use): name -> number.
_PROTOCOLS = {"tcp": "6", "udp": "17", "icmp": "1", "ipv6-icmp": "58", "sctp": "132"}
_ANY_PREFIX = ("0.0.0.0/0", "::/0", None)


def _rule_to_key(rule: dict) -> tuple[str, ...]:
    """Neutron's duplicate test: a null remote prefix equals 0.0.0.0/0 and ::/0, a protocol
    name equals its number (both compare as [name, number]), other nulls are equal."""

    def norm(key: str, value: object) -> str:
        if key == "remote_ip_prefix" and value in _ANY_PREFIX:
            return "+"
        if value is None:
            return "+"
        if key == "protocol" and str(value) not in ("any", "0"):
            text = str(value)
            names = {v: k for k, v in _PROTOCOLS.items()}
            if text in _PROTOCOLS:
                return f"{text}/{_PROTOCOLS[text]}"
            if text in names:
                return f"{names[text]}/{text}"
        if key == "protocol":
            return "+"
        return str(value)

    return tuple(norm(k, rule.get(k)) for k in _RULE_KEYS)


def _create_rule(ctx: Ctx, body: dict) -> dict:
    sg = get_visible(ctx, "security-groups", body.get("security_group_id", ""))
    if body.get("direction") not in ("ingress", "egress"):
        raise ApiError(
            400,
            f"Invalid input for direction. Reason: {body.get('direction')} is not in valid_values.",
            "HTTPBadRequest",
        )
    lo, hi = body.get("port_range_min"), body.get("port_range_max")
    if lo is not None and hi is not None and int(lo) > int(hi):
        raise ApiError(
            400,
            "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            "SecurityGroupInvalidPortRange",
        )
    if body.get("remote_ip_prefix") and body.get("remote_group_id"):
        raise ApiError(
            400,
            "Only remote_ip_prefix or remote_group_id may be provided.",
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
        )
    body = {"ethertype": "IPv4", **body, "security_group_id": sg["id"]}
    for rule in sg["security_group_rules"]:
        if _rule_to_key(rule) == _rule_to_key(body):
            raise ApiError(
                409,
                f"Security group rule already exists. Rule id is {rule['id']}.",
                "SecurityGroupRuleExists",
            )
    return _new_rule(ctx.world, sg, body, ctx.project_id, ctx.user_id)


def _delete_rule(ctx: Ctx, rule: dict) -> None:
    sg = ctx.world.table("security_groups")[rule["security_group_id"]]
    sg["security_group_rules"] = [r for r in sg["security_group_rules"] if r["id"] != rule["id"]]
    ctx.world.remove("security_group_rules", rule["id"])


def _no_update(ctx: Ctx, res: dict, body: dict) -> None:
    raise ApiError(400, "Resource does not support update.", "BadRequest")


CREATORS: dict[str, Callable[[Ctx, dict], dict]] = {
    "networks": _create_network,
    "subnets": _create_subnet,
    "ports": _create_port,
    "routers": _create_router,
    "floatingips": _create_fip,
    "security_groups": _create_sg,
    "security_group_rules": _create_rule,
}
UPDATERS: dict[str, Callable[[Ctx, dict, dict], None]] = {
    "ports": _update_port,
    "routers": _update_router,
    "floatingips": _update_fip,
    "security_group_rules": _no_update,
}
DELETERS: dict[str, Callable[[Ctx, dict], None]] = {
    "networks": _delete_network,
    "subnets": _delete_subnet,
    "ports": _delete_port,
    "routers": _delete_router,
    "floatingips": _delete_fip,
    "security_groups": _delete_sg,
    "security_group_rules": _delete_rule,
}
