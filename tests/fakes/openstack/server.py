"""The fake cloud: one werkzeug WSGI app serving every service under a path prefix,
run in a background thread on 127.0.0.1.

    /identity     Keystone v3        /compute/v2.1   Nova
    /network      Neutron v2.0       /image          Glance v2
    /reservation  Blazar v1

Every request is logged (method, path, status, caller; never bodies or tokens), checked
against injected faults, then authenticated (X-Auth-Token) unless it is a discovery or
token-issue call, then routed to its service.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import yaml
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import blazar, glance, keystone, neutron, nova
from .base import ApiError, Ctx, Reply
from .faults import Faults
from .state import DOMAIN, REGION, LogEntry, Project, User, World, utcnow

SERVICES = {
    "identity": keystone,
    "compute": nova,
    "network": neutron,
    "image": glance,
    "reservation": blazar,
}

# The seeded tenants: one course project shared by two students, plus a second project
# only alice belongs to (for wrong-project tests).
PROJECT = "CHI-251409"
OTHER_PROJECT = "CHI-231095"


def seed(world: World) -> None:
    """Fill a fresh world: projects, users with passwords and application credentials, and
    each service's stock resources (flavors, images, public networks, default groups)."""
    p1 = Project(id="a1b2c3d4e5f60718293a4b5c6d7e8f90", name=PROJECT)
    p2 = Project(id="0f9e8d7c6b5a49382716f5e4d3c2b1a0", name=OTHER_PROJECT)
    world.projects = {p1.id: p1, p2.id: p2}
    for name, projects in (("alice", [p1.id, p2.id]), ("bob", [p1.id])):
        cred_id, cred_secret = keystone.new_app_cred()
        uid = f"{name}-" + cred_id[:24]
        world.users[uid] = User(
            uid, name, f"{name}-password", projects, cred_id, cred_secret, p1.id
        )
    for service in SERVICES.values():
        if hasattr(service, "seed"):
            service.seed(world)


class _QuietHandler(WSGIRequestHandler):
    """No per-request lines on stderr: the world's request log has them."""

    def log_request(self, code: object = "-", size: object = "-") -> None:
        pass


class FakeCloud:
    """A running fake OpenStack. ``url`` is its base; ``world`` its state; ``faults`` its
    fault knobs. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.world = World()
        seed(self.world)
        self.faults = Faults(self.world)
        self._server = make_server(
            host, port, self.wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeCloud:
        """Serve in a daemon thread."""
        # A short shutdown poll: stop() then returns in ~50 ms instead of 0.5 s, which adds
        # up over fixtures started per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-openstack-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.faults.released.set()  # hung requests end: their threads must not outlive us
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ credentials

    @property
    def auth_url(self) -> str:
        """Keystone's v3 URL, as Chameleon's openrc/clouds.yaml give it."""
        return f"{self.url}/identity/v3"

    def env(
        self, user: str = "alice", auth: str = "password", project: str = PROJECT
    ) -> dict[str, str]:
        """``OS_*`` variables for ``user`` with ``auth`` = ``"password"``,
        ``"application_credential"`` (scoped to its own project, like Chameleon's) or
        ``"token"`` (a fresh token, ``OS_AUTH_TYPE=v3token``, python-chi's default)."""
        u = self.world.user(user)
        p = self.world.project(project)
        common = {
            "OS_AUTH_URL": self.auth_url,
            "OS_REGION_NAME": REGION,
            "OS_INTERFACE": "public",
            "OS_IDENTITY_API_VERSION": "3",
        }
        if auth == "token":
            token_id, _ = keystone.issue(self.world, self.url, u, p.id, ["password"])
            return {
                **common,
                "OS_AUTH_TYPE": "v3token",
                "OS_TOKEN": token_id,
                "OS_PROJECT_NAME": p.name,
                "OS_PROJECT_ID": p.id,
                "OS_PROJECT_DOMAIN_NAME": DOMAIN["name"],
            }
        if auth == "password":
            return {
                **common,
                "OS_AUTH_TYPE": "v3password",
                "OS_USERNAME": u.name,
                "OS_PASSWORD": u.password,
                "OS_USER_DOMAIN_NAME": DOMAIN["name"],
                "OS_PROJECT_NAME": p.name,
                "OS_PROJECT_ID": p.id,
                "OS_PROJECT_DOMAIN_NAME": DOMAIN["name"],
            }
        if auth == "application_credential":
            return {
                **common,
                "OS_AUTH_TYPE": "v3applicationcredential",
                "OS_APPLICATION_CREDENTIAL_ID": u.app_cred_id,
                "OS_APPLICATION_CREDENTIAL_SECRET": u.app_cred_secret,
            }
        raise ValueError(f"unknown auth {auth!r}")

    def clouds_yaml(
        self,
        path: str | Path,
        cloud: str = "fake",
        user: str = "alice",
        versioned_auth_url: bool = False,
    ) -> Path:
        """Write a clouds.yaml (mode 0600) with ``cloud`` using ``user``'s application
        credential, shaped like the one Chameleon's Horizon downloads: its ``auth_url`` is
        Keystone's root *without* ``/v3`` (openstacksdk appends it because of
        ``identity_api_version: 3``; a bare keystoneauth v3 plugin would POST to
        ``<root>/auth/tokens`` and get a 404, as on the real site). Returns the path."""
        u = self.world.user(user)
        auth_url = self.auth_url if versioned_auth_url else f"{self.url}/identity"
        doc = {
            "clouds": {
                cloud: {
                    "auth": {
                        "auth_url": auth_url,
                        "application_credential_id": u.app_cred_id,
                        "application_credential_secret": u.app_cred_secret,
                    },
                    "region_name": REGION,
                    "interface": "public",
                    "identity_api_version": 3,
                    "auth_type": "v3applicationcredential",
                }
            }
        }
        path = Path(path)
        # Written 0600 under a temporary name, then renamed: readers never see a partial
        # or world-readable file (it holds a secret).
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(yaml.safe_dump(doc, sort_keys=False))
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------ WSGI

    def wsgi(self, environ: dict, start_response: Any) -> Any:
        """The WSGI entry point."""
        request = Request(environ)
        path = request.path
        service_name, _, rest = path.lstrip("/").partition("/")
        service = SERVICES.get(service_name)
        rest = "/" + rest
        if service is neutron and rest.endswith(".json"):  # neutronclient's format suffix
            rest = rest[: -len(".json")]
        ctx = Ctx(self.world, request, self.url, f"{self.url}/{service_name}", faults=self.faults)

        self.world.tick()  # what came due since the last request happens now
        rule = self.faults.match(request.method, path)
        if service is None:
            reply = Reply(404, {"error": f"no service at {path}"})
        elif rule and not rule.after:  # fail before the request takes effect
            reply = self._injected(service, rule)
        else:
            reply = self._dispatch(service, ctx, request.method, rest)
            if rule:  # it took effect, but the caller hears of a failure
                reply = self._injected(service, rule)
        self._log(ctx, service_name, 0 if rule and (rule.drop or rule.hang) else reply.status)
        if rule and rule.hang:
            self.faults.released.wait()
            return self._drop(environ, start_response)
        if rule and rule.drop:
            return self._drop(environ, start_response)
        return self._respond(ctx, reply)(environ, start_response)

    @staticmethod
    def _injected(service: Any, rule: Any) -> Reply:
        # A success status (e.g. 204: "deleted", yet nothing was) has no error body.
        if rule.status < 400:
            return Reply(rule.status)
        return service.router.render_error(ApiError(rule.status, rule.message, rule.kind))

    def _dispatch(self, service: Any, ctx: Ctx, method: str, rest: str) -> Reply:
        try:
            found = service.router.match(method, rest)
            if found is None:
                raise ApiError(404, "The resource could not be found.", "NotFound")
            handler, params, needs_auth = found
            if needs_auth:
                self._authenticate(ctx, service)
            if service is nova:  # wsgi.Resource checks the version before any handler
                nova.microversion(ctx)
            return handler(ctx, **params)
        except ApiError as err:
            return service.router.render_error(err)

    def _authenticate(self, ctx: Ctx, service: Any) -> None:
        token = self.world.tokens.get(ctx.request.headers.get("X-Auth-Token", ""))
        if token is None or token["_expires"] < utcnow():
            raise ApiError(
                401, "The request you have made requires authentication.", "Unauthorized"
            )
        if service is not keystone and not token.get("project"):
            raise ApiError(
                401,
                "The request you have made requires authentication (unscoped token).",
                "Unauthorized",
            )
        ctx.token = token

    def _respond(self, ctx: Ctx, reply: Reply) -> Response:
        headers = dict(reply.headers)
        # novaclient warns unless the microversion it asked for is echoed back. Nova echoes
        # the version it resolved (``latest`` -> the maximum); a request refused for its
        # version (400/406) gets no version headers (wsgi.Fault: null version request).
        version = None
        if ctx.service_url.endswith("/compute"):
            with contextlib.suppress(ApiError):
                version = nova.microversion(ctx)
        if version is not None:
            headers.setdefault("X-OpenStack-Nova-API-Version", version)
            headers.setdefault("OpenStack-API-Version", f"compute {version}")
            headers.setdefault("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")
        headers.setdefault("X-OpenStack-Request-Id", "req-" + str(id(reply)))
        if reply.body is None:
            return Response(status=reply.status, headers=headers)
        if isinstance(reply.body, str):
            return Response(
                reply.body,
                status=reply.status,
                headers=headers,
                content_type="text/plain; charset=UTF-8",
            )
        return Response(
            json.dumps(reply.body),
            status=reply.status,
            headers=headers,
            content_type="application/json",
        )

    @staticmethod
    def _drop(environ: dict, start_response: Any) -> list[bytes]:
        # Shut the socket down under werkzeug: the client sees the connection reset / closed
        # without any response; werkzeug treats the failed write as a dropped connection.
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        start_response("500 Dropped", [("Content-Length", "0")])
        return [b""]

    def _log(self, ctx: Ctx, service: str, status: int) -> None:
        entry = LogEntry(
            ctx.request.method,
            ctx.request.path,
            ctx.request.query_string.decode(),
            status,
            service,
            ctx.user_id,
            ctx.project_id,
        )
        with self.world.lock:
            self.world.log.append(entry)
