"""The fake's HTTP face: one werkzeug WSGI app on 127.0.0.1, a controller thread, and the
`FakeKubernetes` handle tests use (URL, kubeconfig, store, fault and load injection)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import discovery, openapi, selectors, tables, tls
from .controllers import FAULTS, Controllers, Fault, Timings
from .httpfaults import HttpFault, HttpFaults
from .metrics import Metrics
from .objects import FIELD_VALIDATION, WARNINGS, Objects
from .resources import ResourceType, by_kind, find
from .store import ApiError, Clock, Obj, Store

TRUE = ("true", "True", "1")
#: The Kubernetes release the cluster installs (roles/kube_packages: kube_packages_version)
VERSION = "v1.35.0"
#: Body formats this fake decodes; others (protobuf, CBOR) get 415 as from a server
#: that does not serve them (apiserver handlers/rest.go negotiateInputSerializer)
DECODABLE = ("application/json", "application/yaml", "")
#: kube-apiserver's health checks, answered by /healthz, /livez and /readyz (?verbose)
HEALTH_CHECKS = ("ping", "log", "etcd", "poststarthook/start-apiserver-admission-initializer")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # the request log is in the store
        pass


def _json(body: Any, code: int = 200) -> Response:
    return Response(json.dumps(body), status=code, mimetype="application/json")


def user_agent_manager(user_agent: str) -> str:
    """prefixFromUserAgent: printable characters before the first "/", at most 128."""
    return "".join(ch for ch in user_agent.split("/")[0] if ch.isprintable())[:128]


def address_pool(text: str) -> list[str]:
    """MetalLB's IPAddressPool notation: `a.b.c.d-a.b.c.e` or a CIDR, comma-separated."""
    import ipaddress

    out: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if "-" in part:
            lo, hi = (ipaddress.ip_address(x.strip()) for x in part.split("-", 1))
            out += [str(lo + i) for i in range(int(hi) - int(lo) + 1)]
        else:
            out += [str(ip) for ip in ipaddress.ip_network(part, strict=False)]
    return out


class FakeKubernetes:
    """A small Kubernetes API server. Use as a context manager, or start()/stop().

    speed: cluster seconds per wall second (50: a 5 s probe delay takes 0.1 s).
    lb_pool: addresses for LoadBalancer Services, as a MetalLB IPAddressPool ("a-b" or
    a CIDR); None: they stay <pending>, as on a cluster without a load-balancer provider.
    """

    def __init__(
        self,
        *,
        speed: float = 1.0,
        tick_s: float = 0.02,
        version: str = VERSION,
        nodes: int = 3,
        node_cpu: str = "4",
        node_memory: str = "8Gi",
        token: str | None = "fake-token",
        validate: bool = True,
        timings: Timings | None = None,
        port: int = 0,
        lb_pool: str | None = None,
        tls: bool = True,
        bookmark_interval: float = 1.0,
    ):
        self.clock = Clock(speed)
        self.store = Store(self.clock)
        self.version = version
        self.objects = Objects(self.store, k8s_version=version.lstrip("v"), validate=validate)
        self.controllers = Controllers(self.store, self.objects, timings)
        if lb_pool:
            self.controllers.lb_pool = address_pool(lb_pool)
        self.metrics = Metrics(self.store, self.controllers)
        self.token = token
        #: serve HTTPS with a generated CA (in the kubeconfig), as a real cluster does
        self.tls = tls
        #: wall seconds between BOOKMARK events on watches that allow them
        self.bookmark_interval = bookmark_interval
        self.tick_s = tick_s
        self._port = port
        self._server: Any = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.paused = False
        self.http_faults = HttpFaults()
        with self.store.lock:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.objects.create(by_kind("Namespace"), None, {"metadata": {"name": ns}}, None)
            for i in range(nodes):
                self._add_node(f"node-{i}", node_cpu, node_memory)

    def _add_node(self, name: str, cpu: str, memory: str) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
            "spec": {},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "nodeInfo": {"kubeletVersion": self.version},
            },
        }
        self.store.insert(by_kind("Node"), node)

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes | None:
        """The CA that signed the serving certificate (None on plain HTTP)."""
        return tls.bundle().ca_pem if self.tls else None

    def start(self) -> FakeKubernetes:
        self._server = make_server(
            "127.0.0.1",
            self._port,
            self.wsgi,
            threaded=True,
            request_handler=_QuietHandler,
            ssl_context=tls.bundle().server_context() if self.tls else None,
        )
        self._server.daemon_threads = True
        serve = threading.Thread(
            target=self._server.serve_forever, name="fake-k8s-http", daemon=True
        )
        tick = threading.Thread(target=self._tick_loop, name="fake-k8s-controllers", daemon=True)
        self._threads = [serve, tick]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.http_faults.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            if not self.paused:
                self.controllers.tick()

    # ------------------------------------------------------------------ test helpers
    def kubeconfig(self, path: str | Path, context: str = "fake") -> Path:
        """Write a kubeconfig for this server (bearer token; its CA on TLS); returns its path."""
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": "default"},
                }
            ],
            "current-context": context,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def inject(
        self,
        kind: str,
        image: str | None = None,
        message: str | None = None,
        log: str = "",
        heal_after_s: float | None = None,
    ) -> Fault:
        """Pods created from now on whose image contains `image` get fault `kind`:
        image-pull, crash-loop, unschedulable or never-ready (image-pull: until
        `heal_after_s` cluster seconds after scheduling, if given)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        fault = Fault(kind, image, message, log, heal_after_s)
        self.controllers.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.controllers.faults.clear()
        self.http_faults.clear()

    def fail_http(
        self,
        code: int = 500,
        reason: str = "InternalError",
        message: str = "Internal error occurred",
        **kw: Any,
    ) -> HttpFault:
        """Answer matching requests with an error instead (see httpfaults.HttpFault)."""
        return self.http_faults.add(HttpFault(code, reason, message, **kw))

    def set_load(self, fn: Callable[[float], float]) -> None:
        """Total CPU cores of work offered to each app (pods sharing an `app` label) at
        cluster time t, shared evenly by its ready pods and capped at their CPU limit."""
        self.controllers.load = fn

    def set_usage(self, fn: Callable[[Obj, float], tuple[float, float]] | None) -> None:
        """Exact usage per pod: fn(pod, t) → (cpu cores, memory bytes)."""
        self.controllers.usage_fn = fn

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.controllers.tick()

    def advance(self, seconds: float) -> None:
        """Jump the cluster clock ahead and run the controllers once."""
        self.clock.advance(seconds)
        self.controllers.tick()

    def list(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        """Stored objects of `kind` (a deep copy, safe to keep)."""
        import copy

        with self.store.lock:
            return copy.deepcopy(self.store.kind_items(kind, namespace, label_selector))

    def get(self, kind: str, name: str, namespace: str | None = "default") -> Obj | None:
        import copy

        with self.store.lock:
            obj = self.store.get(by_kind(kind), namespace, name)
            return copy.deepcopy(obj) if obj else None

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise TimeoutError(f"fake cluster: {what} not reached in {timeout} s")

    @property
    def requests(self) -> list[tuple[str, str, str, str, bytes]]:
        return self.store.requests

    # ------------------------------------------------------------------ HTTP
    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            response = self.handle(request)
        except ApiError as exc:
            response = _json(exc.status(), exc.code)
        except HTTPException as exc:
            response = _json(
                ApiError(exc.code or 500, "BadRequest", str(exc)).status(), exc.code or 500
            )
        except Exception as exc:  # a bug in the fake: still a Status, as clients expect
            response = _json(
                ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500
            )
        return response(environ, start_response)

    def handle(self, req: Request) -> Response:
        body = req.get_data()
        with self.store.lock:
            self.store.requests.append(
                (
                    req.method,
                    req.path,
                    req.query_string.decode(),
                    req.headers.get("Content-Type", ""),
                    body,
                )
            )
        injected = self.http_faults.answer(req)
        if injected is not None:
            return injected
        parts = [p for p in req.path.split("/") if p]
        # public without credentials, as upstream's system:public-info-viewer role allows
        if parts[:1] in (["healthz"], ["livez"], ["readyz"]):
            return self._health(req, parts)
        if parts == ["version"]:
            return _json(discovery.version_info(self.version))
        if self.token and req.headers.get("Authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if parts[:1] == ["openapi"]:
            return self._openapi(parts[1:])
        if len(parts) > 2 and parts[:2] == ["api", "v1"] and parts[2] == "watch":
            parts = parts[:2] + parts[3:]  # the deprecated /watch/ paths
            return self._route(req, parts, body, watch=True)
        if len(parts) > 3 and parts[0] == "apis" and parts[3] == "watch":
            parts = parts[:3] + parts[4:]
            return self._route(req, parts, body, watch=True)
        return self._route(req, parts, body)

    def _route(self, req: Request, parts: list[str], body: bytes, watch: bool = False) -> Response:
        if parts == ["api"]:
            return _json(discovery.core_versions(f"127.0.0.1:{self.port}"))
        if parts == ["apis"]:
            return _json(discovery.group_list())
        if parts in (["api", "v1"],) or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            doc = discovery.resource_list(group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if len(parts) == 2 and parts[0] == "apis":
            doc = discovery.group(parts[1])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if parts[:1] == ["api"] and len(parts) > 2 and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) > 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns, plural, name, sub = self._parse(group, version, rest)
        rt = find(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.virtual:
            return self._metrics(req, rt, ns, name)
        if watch or (req.method == "GET" and req.args.get("watch") in TRUE):
            if name is not None and sub is None and not watch:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return self._watch(req, rt, ns, name)
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip()
        if req.method in ("POST", "PUT") and ctype not in DECODABLE:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json, application/yaml (got {ctype})",
            )
        dry = req.args.getlist("dryRun")
        if req.method == "DELETE" and not dry:  # kubectl sends DeleteOptions in the body
            opts = _decode(body, req.headers.get("Content-Type", ""))
            dry = (opts or {}).get("dryRun") or [] if isinstance(opts, dict) else []
        if dry and req.method in ("POST", "PUT", "PATCH", "DELETE"):
            if any(v != "All" for v in dry):
                raise ApiError(
                    400,
                    "BadRequest",
                    f'dryRun: Unsupported value: "{dry[0]}": supported values: "All"',
                )
            with self.store.dry_run():
                live = self.store.get(rt, ns, name) if name else None
                live_rv = live["metadata"]["resourceVersion"] if live else None
                next_ip = self.objects._next_ip
                try:
                    response = self._rest(req, rt, ns, name, sub, body)
                finally:
                    self.objects._next_ip = next_ip
            if req.method == "POST" and response.status_code == 201:
                # a dry-run create was never stored: upstream answers without resourceVersion
                doc = json.loads(response.get_data())
                doc.get("metadata", {}).pop("resourceVersion", None)
                return _json(doc, 201)
            if live_rv and req.method in ("PUT", "PATCH") and response.status_code == 200:
                # nothing was written: the answer carries the live resourceVersion, as
                # DryRunnableStorage.GuaranteedUpdate answers (registry/generic/registry)
                doc = json.loads(response.get_data())
                if doc.get("kind") not in (None, "Status") and "metadata" in doc:
                    doc["metadata"]["resourceVersion"] = live_rv
                    return _json(doc)
            return response
        return self._rest(req, rt, ns, name, sub, body)

    @staticmethod
    def _parse(
        group: str, version: str, rest: list[str]
    ) -> tuple[str | None, str, str | None, str | None]:
        if rest[0] == "namespaces" and len(rest) >= 3 and find(group, version, rest[2]):
            ns, rest = rest[1], rest[2:]
        else:
            ns = None
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return ns, plural, name, sub

    def _metrics(
        self, req: Request, rt: ResourceType, ns: str | None, name: str | None
    ) -> Response:
        if req.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if rt.plural == "pods":
            doc = self.metrics.pods(ns, name, req.args.get("labelSelector"))
        else:
            doc = self.metrics.nodes(name)
        if doc is None:
            raise ApiError(404, "NotFound", f'podmetrics.metrics.k8s.io "{name}" not found')
        return _json(doc)

    def _rest(
        self,
        req: Request,
        rt: ResourceType,
        ns: str | None,
        name: str | None,
        sub: str | None,
        body: bytes,
    ) -> Response:
        """One REST call; writes honour fieldValidation (unknown fields -> `Warning`
        headers, 299 as the warning code, "-" as agent: endpoints/warning)."""
        mode = req.args.get("fieldValidation") or "Warn"
        if req.method in ("POST", "PUT", "PATCH") and mode not in ("Ignore", "Warn", "Strict"):
            raise ApiError(
                400,
                "BadRequest",
                f'fieldValidation parameter unsupported: "{mode}". Supported values: '
                '"Ignore", "Warn", "Strict"',
            )
        warnings: list[str] = []
        tokens = FIELD_VALIDATION.set(mode), WARNINGS.set(warnings)
        try:
            response = self._serve(req, rt, ns, name, sub, body)
        finally:
            FIELD_VALIDATION.reset(tokens[0])
            WARNINGS.reset(tokens[1])
        for text in dict.fromkeys(warnings):
            response.headers.add("Warning", f"299 - {json.dumps(text)}")
        return response

    def _serve(
        self,
        req: Request,
        rt: ResourceType,
        ns: str | None,
        name: str | None,
        sub: str | None,
        body: bytes,
    ) -> Response:
        q = req.args
        m = req.method
        manager = q.get("fieldManager")
        # managerOrUserAgent (endpoints/handlers/rest.go): an Update without fieldManager
        # is recorded under the User-Agent up to its first "/" ("kubectl", ...)
        writer = manager or user_agent_manager(req.headers.get("User-Agent", ""))
        if sub and sub not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if m == "GET":
            if name is None:
                self._check_list(rt, q)
                limit = int(q["limit"]) if q.get("limit") else None
                doc = self.objects.list(
                    rt,
                    ns,
                    q.get("labelSelector"),
                    q.get("fieldSelector"),
                    limit,
                    q.get("continue"),
                )
                if tables.wants_table(req.headers.get("Accept", "")):
                    return _json(
                        tables.table(
                            rt.kind,
                            doc["items"],
                            self._now(),
                            q.get("includeObject", "Metadata"),
                            doc["metadata"],
                        )
                    )
                return _json(doc)
            if sub == "scale":
                return _json(self.objects.get_scale(rt, ns, name))
            if sub == "log":
                with self.store.lock:
                    pod = self.store.require(rt, ns, name)
                    text = self.controllers.pod_log(pod)
                if q.get("tailLines"):
                    text = "\n".join(text.splitlines()[-int(q["tailLines"]) :]) + "\n"
                return Response(text, mimetype="text/plain")
            obj = self.objects.get(rt, ns, name)
            if sub is None and tables.wants_table(req.headers.get("Accept", "")):
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return _json(
                    tables.table(
                        rt.kind, [obj], self._now(), q.get("includeObject", "Metadata"), meta
                    )
                )
            return _json(obj)
        doc = (
            _decode(body, req.headers.get("Content-Type", ""))
            if m in ("POST", "PUT", "DELETE")
            else None
        )
        if m == "POST" and name is None:
            return _json(self.objects.create(rt, ns, doc or {}, writer), 201)
        if m == "PUT" and name is not None:
            if sub == "scale":
                return _json(self.objects.set_scale(rt, ns, name, doc["spec"]["replicas"], writer))
            return _json(self.objects.replace(rt, ns, name, doc or {}, writer, sub))
        if m == "PATCH" and name is not None:
            ctype = req.headers.get("Content-Type", "application/json")
            force = q.get("force") in TRUE
            if sub == "scale":
                patch = json.loads(body or b"{}")
                replicas = (patch.get("spec") or {}).get("replicas")
                if replicas is None:
                    return _json(self.objects.get_scale(rt, ns, name))
                return _json(self.objects.set_scale(rt, ns, name, replicas, writer))
            apply = ctype.split(";")[0].strip() == "application/apply-patch+yaml"
            code, obj = self.objects.patch(
                rt, ns, name, ctype, body, manager if apply else writer, force, sub
            )
            return _json(obj, code)
        if m == "DELETE":
            opts = doc or {}
            policy = q.get("propagationPolicy") or opts.get("propagationPolicy")
            grace = q.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
            grace = int(grace) if grace is not None else None
            orphan = q.get("orphanDependents", opts.get("orphanDependents"))
            orphan = None if orphan is None else str(orphan).lower() in ("true", "1")
            if name is None:
                self._check_list(rt, q)
                with self.store.lock:
                    victims = [
                        o["metadata"]["name"]
                        for o in self.store.items(
                            rt, ns, q.get("labelSelector"), q.get("fieldSelector")
                        )
                    ]
                for victim in victims:
                    self.objects.delete(rt, ns, victim, policy, grace, orphan)
                return _json(
                    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
                )
            code, obj = self.objects.delete(rt, ns, name, policy, grace, orphan)
            return _json(obj, code)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    # ------------------------------------------------------------------ list and watch
    def _now(self) -> dt.datetime:
        return dt.datetime.strptime(self.clock.stamp(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)

    def _check_list(self, rt: ResourceType, q: Any, watch: bool = False) -> None:
        """The list options kube-apiserver refuses (apimachinery internalversion/validation
        ValidateListOptions; selectors as labels.Parse and fields.ParseSelector parse them)."""
        selectors.parse_labels(q.get("labelSelector"))
        selectors.parse_fields(q.get("fieldSelector"), rt.kind)
        rv, match = q.get("resourceVersion", ""), q.get("resourceVersionMatch", "")

        def forbidden(field: str, text: str) -> ApiError:
            return ApiError(
                422,
                "Invalid",
                f'ListOptions.meta.k8s.io "" is invalid: {field}: Forbidden: {text}',
            )

        if q.get("sendInitialEvents") is not None and not watch:
            raise forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list")
        if watch:
            if match and q.get("sendInitialEvents") is None:
                raise forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents "
                    "is provided",
                )
            if q.get("sendInitialEvents") is not None and match != "NotOlderThan":
                raise forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )
            return
        if match and not rv:
            raise forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        if match and q.get("continue"):
            raise forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            )
        if match not in ("", "Exact", "NotOlderThan"):
            raise ApiError(
                422,
                "Invalid",
                f'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported '
                f'value: "{match}": supported values: "Exact", "NotOlderThan", ""',
            )
        if match == "Exact" and rv == "0":
            raise forbidden(
                "resourceVersionMatch",
                'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
            )
        if rv and rv != "0":
            try:
                n = int(rv)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: {rv}") from None
            current = self.store.rv
            if n > current:
                raise ApiError(
                    504,
                    "Timeout",
                    f"Too large resource version: {n}, current: {current}",
                    {
                        "causes": [
                            {
                                "reason": "ResourceVersionTooLarge",
                                "message": "Too large resource version",
                            }
                        ],
                        "retryAfterSeconds": 1,
                    },
                )
            if match == "Exact" and n != current:
                # the fake keeps no history of object states: only "now" can be listed
                raise ApiError(
                    410,
                    "Expired",
                    "The resourceVersion for the provided list is too old.",
                )

    def _watch(self, req: Request, rt: ResourceType, ns: str | None, name: str | None) -> Response:
        """A watch stream (newline-delimited WatchEvents), as the watch cache serves it:
        initial ADDED events when starting from "" / "0" or with sendInitialEvents, then
        every change after the start resourceVersion that matches the selectors (an object
        leaving the selection is a DELETED event), BOOKMARKs when allowed, an ERROR event
        with 410 Expired for a resourceVersion older than the kept history, and the end of
        the stream after timeoutSeconds."""
        q = req.args
        self._check_list(rt, q, watch=True)
        lsel = selectors.parse_labels(q.get("labelSelector"))
        fsel = selectors.parse_fields(q.get("fieldSelector"), rt.kind)
        if name is not None:  # /watch/namespaces/ns/pods/name
            fsel.append(("metadata.name", False, name))
        rv = q.get("resourceVersion", "")
        initial = q.get("sendInitialEvents") in TRUE or rv in ("", "0")
        bookmarks = q.get("allowWatchBookmarks") in TRUE
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 1800.0
        as_table = tables.wants_table(req.headers.get("Accept", ""))
        include = q.get("includeObject", "Metadata")

        def selected(obj: Obj | None) -> bool:
            if obj is None or (
                obj["metadata"].get("namespace") and ns and obj["metadata"]["namespace"] != ns
            ):
                return False
            return selectors.labels_match(
                obj["metadata"].get("labels") or {}, lsel
            ) and selectors.fields_match(obj, fsel)

        def event(kind: str, obj: Obj) -> bytes:
            shown = self.objects.present(rt, obj) if kind != "BOOKMARK" else obj
            if as_table and kind in ("ADDED", "MODIFIED", "DELETED"):
                shown = tables.table(
                    rt.kind,
                    [shown],
                    self._now(),
                    include,
                    {"resourceVersion": obj["metadata"]["resourceVersion"]},
                )
            return json.dumps({"type": kind, "object": shown}).encode() + b"\n"

        def bookmark(at: int, end_of_initial: bool = False) -> bytes:
            meta: Obj = {"resourceVersion": str(at)}
            if end_of_initial:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return event(
                "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}
            )

        with self.store.lock:
            if initial:
                start = self.store.rv
                first = [copy.deepcopy(o) for o in self.store.items(rt, ns) if selected(o)]
            else:
                try:
                    start = int(rv)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {rv}") from None
                first = []
                floor = self.store.oldest_watchable()
                if start < floor:
                    gone = ApiError(
                        410, "Expired", f"too old resource version: {start} ({floor})"
                    ).status()
                    line = json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n"
                    return Response(iter([line]), mimetype="application/json")

        def stream() -> Iterator[bytes]:
            deadline = time.monotonic() + timeout
            for o in first:
                yield event("ADDED", o)
            seen = start
            if q.get("sendInitialEvents") in TRUE and bookmarks:
                yield bookmark(start, end_of_initial=True)
            last_out = time.monotonic()
            while not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                with self.store.lock:
                    changes = [c for c in self.store.log if c.rv > seen]
                    if not changes:
                        self.store.changed.wait(min(left, 0.5, self.bookmark_interval))
                        changes = [c for c in self.store.log if c.rv > seen]
                    current = self.store.rv
                out = []
                for c in changes:
                    seen = c.rv
                    if c.key[:2] != rt.store_key:
                        continue
                    now_in, was_in = selected(c.obj), selected(c.old)
                    if c.kind == "DELETED":
                        if was_in:
                            out.append(event("DELETED", c.obj))
                    elif now_in and (was_in or c.kind == "ADDED"):
                        out.append(event(c.kind, c.obj))
                    elif now_in:
                        out.append(event("ADDED", c.obj))
                    elif was_in:
                        out.append(event("DELETED", c.obj))
                yield from out
                if out:
                    last_out = time.monotonic()
                elif bookmarks and time.monotonic() - last_out >= self.bookmark_interval:
                    seen = max(seen, current)
                    yield bookmark(seen)
                    last_out = time.monotonic()

        return Response(stream(), mimetype="application/json", direct_passthrough=True)

    # ------------------------------------------------------------------ health, openapi
    def _health(self, req: Request, parts: list[str]) -> Response:
        if req.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        endpoint = parts[0]
        if len(parts) > 1:  # /livez/ping: one check
            if "/".join(parts[1:]) not in HEALTH_CHECKS:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return Response("ok", mimetype="text/plain")
        if "verbose" in req.args:
            lines = [f"[+]{c} ok" for c in HEALTH_CHECKS]
            lines.append(f"{endpoint} check passed")
            return Response("\n".join(lines) + "\n", mimetype="text/plain")
        return Response("ok", mimetype="text/plain")

    def _openapi(self, rest: list[str]) -> Response:
        if rest == ["v2"]:
            return Response(openapi.v2(self.version), mimetype="application/json")
        if rest == ["v3"]:
            return Response(openapi.v3_index(self.version), mimetype="application/json")
        if rest[:1] == ["v3"]:
            doc = openapi.v3(self.version, "/".join(rest[1:]))
            if doc is not None:
                return Response(doc, mimetype="application/json")
        raise ApiError(404, "NotFound", "the server could not find the requested resource")


def _decode(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    try:
        if content_type.split(";")[0].strip() == "application/yaml":
            return yaml.safe_load(body)
        return json.loads(body)
    except ValueError as exc:
        raise ApiError(
            400, "BadRequest", f"the body of the request could not be decoded: {exc}"
        ) from None
