"""Fake Keystone v3: version discovery, token issue/validation, project listings.

Auth methods: ``password`` (user by id, or name + domain), ``token`` (rescoping) and
``application_credential`` (id + secret, or name + secret + user). The token carries a
service catalog whose endpoints all point back at this fake, region ``KVM@TACC``,
interface ``public`` (plus internal/admin copies, as Keystone lists them).

Shapes follow the Keystone v3 API reference and keystoneauth's own fixtures. Guesses: the
exact error texts for scope failures, and that Chameleon's identity catalog URL is
unversioned (clients discover it either way).
"""

from __future__ import annotations

import secrets

from .base import ApiError, Ctx, Reply, Router
from .state import DOMAIN, REGION, User, World, new_id, utcnow


def render_error(err: ApiError) -> Reply:
    """Keystone's error body: ``{"error": {"code", "message", "title"}}``."""
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    body = {
        "error": {
            "code": err.status,
            "message": err.message,
            "title": err.kind or titles.get(err.status, "Error"),
        }
    }
    return Reply(err.status, body, err.headers)


router = Router("identity", render_error)

# (catalog type, catalog name, path under the fake, as devstack/Chameleon lay them out)
SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("reservation", "blazar", "/reservation/v1"),
)

UNAUTHORIZED = "The request you have made requires authentication."


def catalog(base_url: str) -> list[dict]:
    """The service catalog, every endpoint pointing back at ``base_url``."""
    out = []
    for stype, name, path in SERVICES:
        endpoints = [
            {
                "id": f"{name}-{iface}",
                "interface": iface,
                "region": REGION,
                "region_id": REGION,
                "url": base_url + path,
            }
            for iface in ("public", "internal", "admin")
        ]
        out.append({"id": f"{name}-svc", "type": stype, "name": name, "endpoints": endpoints})
    return out


def _version(ctx: Ctx) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": ctx.service_url + "/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


@router.route("GET", "/", auth=False)
def versions(ctx: Ctx) -> Reply:
    """Unversioned discovery: 300 Multiple Choices with the v3 entry."""
    return Reply(300, {"versions": {"values": [_version(ctx)]}})


@router.route("GET", "/v3", auth=False)
def version(ctx: Ctx) -> Reply:
    """The v3 version document."""
    return Reply(200, {"version": _version(ctx)})


def _unauthorized(message: str = UNAUTHORIZED) -> ApiError:
    return ApiError(401, message, "Unauthorized", {"WWW-Authenticate": 'Keystone uri="fake"'})


def _find_user(ctx: Ctx, spec: dict):
    world = ctx.world
    if "id" in spec:
        return world.users.get(spec["id"])
    domain = spec.get("domain") or {}
    if domain.get("id", DOMAIN["id"]) != DOMAIN["id"] and domain.get("name") != DOMAIN["name"]:
        return None
    return next((u for u in world.users.values() if u.name == spec.get("name")), None)


def _scope_project(ctx: Ctx, user, scope: dict | None) -> str | None:
    """The project id the token will be scoped to, or None for an unscoped token."""
    if not scope:
        return None
    proj = scope.get("project")
    if not proj:
        raise _unauthorized("Only project scope is supported by this cloud.")
    found = None
    for p in ctx.world.projects.values():
        if proj.get("id") == p.id or (proj.get("name") == p.name and "id" not in proj):
            found = p
    if found is None:
        raise _unauthorized(f"Could not find project: {proj.get('id') or proj.get('name')}.")
    if found.id not in user.projects:
        raise _unauthorized(f"User {user.id} has no access to project {found.id}")
    return found.id


def _issue(ctx: Ctx, user, project_id: str | None, methods: list[str], app_cred=None) -> Reply:
    token_id, token = issue(ctx.world, ctx.base_url, user, project_id, methods, app_cred)
    return Reply(201, {"token": token}, {"X-Subject-Token": token_id})


def issue(
    world: World,
    base_url: str,
    user: User,
    project_id: str | None,
    methods: list[str],
    app_cred: str | None = None,
) -> tuple[str, dict]:
    """Mint a token (id, body) for ``user``, scoped to ``project_id`` when given."""
    now = utcnow()
    token = {
        "methods": methods,
        "user": {
            "id": user.id,
            "name": user.name,
            "domain": dict(DOMAIN),
            "password_expires_at": None,
        },
        "audit_ids": [secrets.token_urlsafe(16)],
        "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "expires_at": (now + world.settings.token_ttl).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }
    if project_id:
        proj = world.projects[project_id]
        token.update(
            project={"id": proj.id, "name": proj.name, "domain": dict(DOMAIN)},
            is_domain=False,
            roles=[
                {"id": "member-role", "name": "member"},
                {"id": "reader-role", "name": "reader"},
            ],
            catalog=catalog(base_url),
        )
    if app_cred:
        token["application_credential"] = {
            "id": app_cred,
            "name": f"{user.name}-cred",
            "restricted": user.app_cred_restricted,
        }
    token_id = "gAAAA" + secrets.token_urlsafe(48)
    with world.lock:
        world.tokens[token_id] = {**token, "_expires": now + world.settings.token_ttl}
    return token_id, token


@router.route("POST", "/v3/auth/tokens", auth=False)
def issue_token(ctx: Ctx) -> Reply:
    """POST /v3/auth/tokens for the password, token and application_credential methods."""
    auth = ctx.json().get("auth") or {}
    identity = auth.get("identity") or {}
    methods = identity.get("methods") or []
    world = ctx.world
    if "application_credential" in methods:
        spec = identity.get("application_credential") or {}
        user = next(
            (
                u
                for u in world.users.values()
                if spec.get("id") == u.app_cred_id
                or (
                    spec.get("name") == f"{u.name}-cred" and _find_user(ctx, spec.get("user") or {})
                )
            ),
            None,
        )
        if user is None or not secrets.compare_digest(
            str(spec.get("secret", "")), user.app_cred_secret
        ):
            raise _unauthorized()
        if auth.get("scope"):
            raise _unauthorized("Application credentials cannot request a scope.")
        return _issue(
            ctx, user, user.app_cred_project, ["application_credential"], user.app_cred_id
        )
    if "password" in methods:
        spec = (identity.get("password") or {}).get("user") or {}
        user = _find_user(ctx, spec)
        if user is None or not secrets.compare_digest(str(spec.get("password", "")), user.password):
            raise _unauthorized()
        return _issue(ctx, user, _scope_project(ctx, user, auth.get("scope")), ["password"])
    if "token" in methods:
        old = world.tokens.get((identity.get("token") or {}).get("id", ""))
        if old is None or old["_expires"] < utcnow():
            raise _unauthorized()
        user = world.users[old["user"]["id"]]
        app_cred = (old.get("application_credential") or {}).get("id")
        if app_cred:  # an app-cred token keeps its project whatever is asked
            return _issue(ctx, user, user.app_cred_project, ["token", *old["methods"]], app_cred)
        project_id = _scope_project(ctx, user, auth.get("scope"))
        return _issue(ctx, user, project_id, ["token", *old["methods"]])
    raise ApiError(400, f"Unsupported authentication methods: {methods}", "Bad Request")


@router.route("GET", "/v3/auth/tokens")
def validate_token(ctx: Ctx) -> Reply:
    """GET /v3/auth/tokens: validate the token in X-Subject-Token."""
    tok = ctx.world.tokens.get(ctx.request.headers.get("X-Subject-Token", ""))
    if tok is None or tok["_expires"] < utcnow():
        raise ApiError(404, "Could not find token.", "Not Found")
    body = {k: v for k, v in tok.items() if not k.startswith("_")}
    return Reply(200, {"token": body})


def _project_doc(ctx: Ctx, pid: str) -> dict:
    p = ctx.world.projects[pid]
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": DOMAIN["id"],
        "description": "",
        "enabled": True,
        "is_domain": False,
        "parent_id": DOMAIN["id"],
        "tags": [],
        "options": {},
        "links": {"self": f"{ctx.service_url}/v3/projects/{p.id}"},
    }


@router.route("GET", "/v3/projects/{project_id}")
def get_project(ctx: Ctx, project_id: str) -> Reply:
    """GET /v3/projects/{id}: members may read their own projects."""
    user = ctx.world.users[ctx.user_id]
    if project_id not in ctx.world.projects:
        raise ApiError(404, f"Could not find project: {project_id}.", "Not Found")
    if project_id not in user.projects:
        raise ApiError(
            403,
            "You are not authorized to perform the requested action: identity:get_project.",
            "Forbidden",
        )
    return Reply(200, {"project": _project_doc(ctx, project_id)})


def _projects_of(ctx: Ctx, user_id: str) -> Reply:
    user = ctx.world.users[user_id]
    projects = [_project_doc(ctx, pid) for pid in user.projects]
    links = {"self": ctx.request.url, "previous": None, "next": None}
    return Reply(200, {"projects": projects, "links": links})


@router.route("GET", "/v3/users/{user_id}/projects")
def user_projects(ctx: Ctx, user_id: str) -> Reply:
    """GET /v3/users/{id}/projects: only one's own."""
    if user_id != ctx.user_id:
        raise ApiError(
            403,
            "You are not authorized to perform the requested action: identity:list_user_projects.",
            "Forbidden",
        )
    return _projects_of(ctx, user_id)


@router.route("GET", "/v3/auth/projects")
def auth_projects(ctx: Ctx) -> Reply:
    """GET /v3/auth/projects: the projects the token's user may scope to."""
    return _projects_of(ctx, ctx.user_id)


def new_app_cred() -> tuple[str, str]:
    """A fresh (id, secret) pair shaped like Keystone's."""
    return new_id().replace("-", ""), secrets.token_urlsafe(32)
