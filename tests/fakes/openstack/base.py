"""HTTP plumbing shared by the fake services: request context, routing, errors.

Each service module owns a :class:`Router` of ``(method, path pattern) -> handler`` and an
error renderer, because every OpenStack service wraps its errors differently and the
clients parse those shapes (novaclient by status, neutronclient by ``NeutronError.type``,
blazarclient by ``error_message``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request

from .state import World


class ApiError(Exception):
    """Raised by handlers; the service's router renders it in that service's format."""

    def __init__(self, status: int, message: str, kind: str = "", headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers or {}


@dataclass
class Reply:
    """What a handler returns: a status, a JSON-able body (or text, or None) and headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    """Everything a handler may look at for one request."""

    world: World
    request: Request
    base_url: str  # http://127.0.0.1:PORT
    service_url: str  # base_url + "/compute" etc.
    token: dict | None = None  # the Keystone token body of X-Auth-Token, if valid
    faults: Any = None  # the Faults of this cloud (nova and blazar consult it)

    @property
    def args(self) -> MultiDict:
        """The query string."""
        return self.request.args

    @property
    def user_id(self) -> str | None:
        """The caller's user id (None before auth)."""
        return (self.token or {}).get("user", {}).get("id")

    @property
    def project_id(self) -> str | None:
        """The project the caller's token is scoped to."""
        return ((self.token or {}).get("project") or {}).get("id")

    def json(self) -> dict:
        """The request body as JSON; a 400 in the service's format if it is not."""
        raw = self.request.get_data(as_text=True)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"Malformed request body: {exc}", "BadRequest") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "Malformed request body", "BadRequest")
        return body

    def owner(self) -> dict:
        """Private ownership keys stamped on everything the caller creates."""
        return {"_project_id": self.project_id, "_user_id": self.user_id}


Handler = Callable[..., Reply]


def _compile(pattern: str) -> re.Pattern:
    # "/v2.0/networks/{id}" -> r"/v2\.0/networks/(?P<id>[^/]+)"; "{rest:path}" takes slashes.
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)(:path)?\}", pattern):
        out += re.escape(pattern[pos : m.start()])
        out += f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    out += re.escape(pattern[pos:])
    return re.compile(f"^{out}/?$")


class Router:
    """Maps ``(method, path)`` to handlers for one service and renders its errors."""

    def __init__(self, service: str, render_error: Callable[[ApiError], Reply]):
        self.service = service
        self.render_error = render_error
        self.routes: list[tuple[str, re.Pattern, Handler, bool]] = []

    def route(
        self, method: str, pattern: str, *, auth: bool = True
    ) -> Callable[[Handler], Handler]:
        """Decorator: register ``handler(ctx, **path_params) -> Reply``. ``auth=False`` for
        discovery documents and token issue, which clients fetch without a token."""

        def deco(fn: Handler) -> Handler:
            self.routes.append((method, _compile(pattern), fn, auth))
            return fn

        return deco

    def match(self, method: str, path: str) -> tuple[Handler, dict, bool] | None:
        """The handler, its path parameters and whether it needs a token; None for 404,
        and a 405 ApiError when the path exists under another method."""
        allowed = False
        for m, rx, fn, auth in self.routes:
            found = rx.match(path)
            if found:
                if m == method:
                    return fn, found.groupdict(), auth
                allowed = True
        if allowed:
            raise ApiError(405, f"The method {method} is not allowed for this resource.")
        return None


def paginate(items: list[dict], args: MultiDict, key: str = "id") -> tuple[list[dict], bool]:
    """Marker/limit paging as Glance, Nova and Neutron do it: items after ``marker``, at most
    ``limit``; also says whether more remain."""
    marker = args.get("marker")
    if marker:
        ids = [i[key] for i in items]
        if marker not in ids:
            raise ApiError(400, f"marker [{marker}] not found", "BadRequest")
        items = items[ids.index(marker) + 1 :]
    limit = args.get("limit", type=int)
    if limit is not None and limit >= 0 and len(items) > limit:
        return items[:limit], True
    return items, False
