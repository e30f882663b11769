"""Execute a plan: each action with retries, waits with timeouts, progress on the console.

Nothing here decides *what* to do (plan.py does); this module only knows how to do one
action and how to tell it worked. After each action `on_change` gets the refreshed
picture so the caller can record ids (state file) as it goes: an interrupted run leaves
a state file that is right up to the last finished step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from ggctl.provision import floatingip, keypair, lease, network, port, router, secgroup, server
from ggctl.provision.actual import Actual, Found
from ggctl.provision.auth import REDACTOR
from ggctl.provision.discover import deleters, holdings, listers
from ggctl.provision.errors import (
    AuthError,
    CloudError,
    classify_server_fault,
    describe,
    error_text,
    find_or_none,
    is_quota,
)
from ggctl.provision.plan import Action
from ggctl.provision.topology import Topology
from ggctl.provision.wait import Timing, retrying, wait_for

log = logging.getLogger("ggctl.provision")
SERVER_ATTEMPTS = 3  # boots per node before giving up on a server that keeps going to ERROR
NOUNS = {
    "floatingip": "floating IPs",
    "server": "servers (instances)",
    "network": "networks",
    "subnet": "subnets",
    "router": "routers",
    "port": "ports",
    "secgroup": "security groups",
    "lease": "leases",
    "keypair": "key pairs",
}


@dataclass
class Context:
    """What executing actions needs: clients, the goal, timings, and what exists so far."""

    cloud: Any
    top: Topology
    timing: Timing
    actual: Actual
    console: Console
    on_change: Callable[[Actual], None] = lambda actual: None
    cache: dict[str, str] = field(default_factory=dict)

    @property
    def conn(self) -> Any:
        return self.cloud.conn

    def found(self, kind: str, name: str) -> Found:
        f = self.actual.first(kind, name)
        if f is None:
            raise CloudError(
                f"{kind} {name} should exist by now but does not",
                hint="rerun the command: it resumes from what exists",
            )
        return f

    def replace(self, old: Found | None, new: Found | None) -> None:
        items = self.actual.items.setdefault((old or new).kind, [])  # type: ignore[union-attr]
        if old is not None:
            items[:] = [f for f in items if f.id != old.id]
        if new is not None:
            items.append(new)
        self.on_change(self.actual)


# --------------------------------------------------------------------------- lookups


def external_id(ctx: Context) -> str:
    if "external" not in ctx.cache:
        name = ctx.top.router.external_network
        ext = network.external_network_id(ctx.conn, name)
        if ext is None:
            raise CloudError(
                f"external network {name!r} not found at {ctx.top.site}",
                hint="Chameleon's is called `public`; check --site",
            )
        ctx.cache["external"] = ext
    return ctx.cache["external"]


def image_id(ctx: Context) -> str:
    if "image" not in ctx.cache:
        name = ctx.top.servers[0].image
        img = pick_image(ctx, name)
        if img is None:
            names = sorted(
                {i.name for i in ctx.conn.image.images() if (i.name or "").startswith("CC-Ubuntu")}
            )
            raise CloudError(
                f"image {name!r} not found at {ctx.top.site}",
                hint=f"pass --image with one of: {', '.join(names) or 'none'}",
            )
        ctx.cache["image"] = img.id
    return ctx.cache["image"]


def pick_image(ctx: Context, name: str) -> Any:
    """The image called `name` (or with that id). Glance allows several images of one name
    (a project's snapshot may take a stock image's name, and sites publish new builds
    under the old name): take the newest active public one, else the newest active one,
    and say which (openstacksdk's find_image raises DuplicateResource instead)."""
    same = [i for i in ctx.conn.image.images(name=name) if i.status == "active"]
    if not same:
        # an id, or nothing: a GET by id, since openstacksdk's image find always makes a
        # deprecated ignore_missing=True call of its own
        from openstack.exceptions import NotFoundException

        try:
            return ctx.conn.image.get_image(name)
        except NotFoundException:
            return None
    if len(same) == 1:
        return same[0]
    public = [i for i in same if i.visibility == "public"]
    chosen = max(public or same, key=lambda i: (i.created_at or "", i.id))
    others = ", ".join(f"{i.id} ({i.visibility}, {i.created_at})" for i in same if i is not chosen)
    ctx.console.print(
        escape(
            f"{len(same)} active images are called {name!r}; using {chosen.id} "
            f"({chosen.visibility}, created {chosen.created_at}); not {others}. "
            "Pass --image ID to choose another."
        ),
        style="yellow",
        highlight=False,
    )
    return chosen


def flavor_id(ctx: Context) -> str:
    if "flavor" not in ctx.cache:
        name = ctx.top.lease.flavor
        flavor = find_or_none(ctx.conn.compute.find_flavor, name)
        if flavor is None:
            names = sorted(
                f.name for f in ctx.conn.compute.flavors() if not f.name.startswith("reservation:")
            )
            raise CloudError(
                f"flavor {name!r} not found at {ctx.top.site}",
                hint=f"pass --flavor with one of: {', '.join(names) or 'none'}",
            )
        ctx.cache["flavor"] = flavor.id
    return ctx.cache["flavor"]


def preflight(ctx: Context, actions: list[Action]) -> None:
    """Fail before changing anything when the image, flavor or external net is missing."""
    kinds = {(a.op, a.kind) for a in actions}
    if ("create", "lease") in kinds:
        flavor_id(ctx)
    if ("create", "server") in kinds or ("replace", "server") in kinds:
        image_id(ctx)
    if {("create", "router"), ("create", "floatingip")} & kinds:
        external_id(ctx)


# --------------------------------------------------------------------------- errors


def explain(ctx: Context, kind: str, what: str, exc: Exception) -> Exception:
    """Turn a refused call into a message for people (quota: say what is held)."""
    if isinstance(exc, CloudError | AuthError):
        return exc
    text = REDACTOR.redact(error_text(exc))
    if is_quota(exc):
        mine = len(ctx.actual.of(kind))
        total = holdings(ctx.cloud, kind)
        held = f"the project holds {total} {NOUNS.get(kind, kind)} in all, " if total else ""
        return CloudError(
            f"quota exceeded: could not {what}: {text}",
            hint=f"{held}{mine} of them yours (suffix {ctx.top.suffix}); free some "
            "(e.g. an old `ggctl teardown`) or ask the project's PI for more quota",
        )
    return describe(exc, what) or exc


def call(
    ctx: Context,
    kind: str,
    what: str,
    fn: Callable[[], Any],
    recheck: Callable[[], Any] | None = None,
) -> Any:
    """One API step with retries of transient errors and readable failures."""
    try:
        return retrying(fn, timing=ctx.timing, what=what, recheck=recheck)
    except Exception as exc:
        err = explain(ctx, kind, what, exc)
        if err is exc:
            raise
        raise err from exc  # chained: -v and the failure log show the client's traceback


def _recheck(ctx: Context, kind: str, name: str) -> Callable[[], Found | None]:
    def again() -> Found | None:
        found = [f for f in listers(ctx.cloud, ctx.top)[kind]() if f.name == name]
        return found[0] if found else None

    return again


# --------------------------------------------------------------------------- creates


def create(ctx: Context, a: Action) -> Found:
    """Create what `a` names, resolving the ids it depends on from what exists."""
    top, conn, m = ctx.top, ctx.conn, ctx.top.marker
    spec = a.spec
    if a.kind == "lease":
        fn = lambda: lease.create_lease(ctx.cloud.blazar(), spec, flavor_id(ctx), top.site)  # noqa: E731
    elif a.kind == "keypair":
        fn = lambda: keypair.create_keypair(conn, spec.name, spec.public_key)  # noqa: E731
    elif a.kind == "network":
        fn = lambda: network.create_network(conn, spec, m)  # noqa: E731
    elif a.kind == "subnet":
        net = ctx.found("network", spec.name)
        fn = lambda: network.create_subnet(conn, spec, net.id, m)  # noqa: E731
    elif a.kind == "router":
        ext = external_id(ctx)
        fn = lambda: router.create_router(conn, spec, ext, m)  # noqa: E731
    elif a.kind == "secgroup":
        fn = lambda: secgroup.create_secgroup(conn, spec, m)  # noqa: E731
    elif a.kind == "port":
        net = top.network(spec.network)
        net_id = ctx.found("network", net.name).id
        subnet_id = ctx.found("subnet", net.subnet_name).id
        sg_id = ctx.found("secgroup", top.secgroup.name).id if spec.secgroup else None
        fn = lambda: port.create_port(conn, spec, net_id, subnet_id, sg_id, m)  # noqa: E731
    elif a.kind == "server":
        kwargs = {
            "image_id": image_id(ctx),
            "flavor_id": reserved_flavor(ctx),
            "port_ids": [ctx.found("port", p).id for p in spec.ports],
            "key_name": top.keypair.name,
            "marker": m,
        }
        fn = lambda: server.create_server(conn, spec, **kwargs)  # noqa: E731
    elif a.kind == "floatingip":
        ext = external_id(ctx)
        port_id = ctx.found("port", spec.port).id
        fn = lambda: floatingip.create_floatingip(conn, spec, ext, port_id)  # noqa: E731
    else:
        raise ValueError(f"cannot create {a.kind}")
    name = a.name if a.kind != "floatingip" else ""
    recheck = _recheck(ctx, a.kind, name) if name else _recheck_fip(ctx)
    found = call(ctx, a.kind, f"create {a.kind} {a.name}", fn, recheck)
    ctx.replace(None, found)
    if a.kind == "router":  # recorded before wiring, so an interruption finds it
        found = update(ctx, Action("update", "router", a.name, target=found, spec=spec))
    return found


def _recheck_fip(ctx: Context) -> Callable[[], Found | None]:
    def again() -> Found | None:
        found = listers(ctx.cloud, ctx.top)["floatingip"]()
        return found[0] if found else None

    return again


def update(ctx: Context, a: Action) -> Found:
    """Repair a resource that exists but is incomplete (after an interrupted run)."""
    conn, f = ctx.conn, a.target
    assert f is not None
    if a.kind == "network":
        fn = lambda: network.update_network(conn, f, a.spec)  # noqa: E731
    elif a.kind == "router":
        ext = external_id(ctx)
        subnet = ctx.found("subnet", ctx.top.network(a.spec.network).subnet_name)
        fn = lambda: router.ensure_wiring(conn, f, ext, subnet.id)  # noqa: E731
    elif a.kind == "secgroup":
        fn = lambda: secgroup.add_rules(conn, f, a.spec)  # noqa: E731
    elif a.kind == "floatingip":
        port_id = ctx.found("port", a.spec.port).id
        fn = lambda: floatingip.associate(conn, f, port_id)  # noqa: E731
    else:
        raise ValueError(f"cannot update {a.kind}")
    found = call(ctx, a.kind, f"update {a.kind} {a.name}", fn)
    ctx.replace(f, found)
    return found


# --------------------------------------------------------------------------- waits


def reserved_flavor(ctx: Context) -> str:
    """The lease's reserved flavor, waiting for the lease to be ACTIVE and the flavor to show."""
    if "reserved" in ctx.cache:
        return ctx.cache["reserved"]
    wait_lease(ctx)
    found = ctx.found("lease", ctx.top.lease.name)
    flavor = wait_for(
        lambda: lease.reserved_flavor_id(ctx.conn, found),
        timeout=ctx.timing.lease_timeout,
        poll=ctx.timing.poll,
        what=f"the reserved flavor reservation:{found.attrs.get('reservation_id')}",
    )
    ctx.cache["reserved"] = flavor
    return flavor


def wait_lease(ctx: Context) -> Found:
    """Wait for ACTIVE; ERROR or the end date passing fails at once (not python-chi's way)."""
    found = ctx.found("lease", ctx.top.lease.name)

    def check() -> Found | None:
        now = call(
            ctx,
            "lease",
            f"read lease {found.name}",
            lambda: lease.get_lease(ctx.cloud.blazar(), found),
        )
        if now is None:
            raise CloudError(
                f"lease {found.name} disappeared", hint="rerun `ggctl reserve` to make a new one"
            )
        ctx.replace(ctx.actual.first("lease", found.name), now)
        return lease.check_active(now)

    return wait_for(
        check,
        timeout=ctx.timing.lease_timeout,
        poll=ctx.timing.poll,
        what=f"lease {found.name} to become ACTIVE",
    )


def wait_server(ctx: Context, a: Action) -> Found:
    """Wait for ACTIVE. A server in ERROR (or vanished) on a transient fault is deleted and
    booted again, up to SERVER_ATTEMPTS boots; on a permanent fault (no host on the
    reserved flavor, an image that does not fit) the run stops at once and the server is
    kept: booting again would fail the same way, and deleting it would take away its
    fault, the one record of why (a deleted server's fault is not shown to users), which
    `openstack server show` and a help-desk ticket need. A rerun replaces it."""
    spec = a.spec
    for attempt in range(1, SERVER_ATTEMPTS + 1):
        failed: list[Found] = []

        def check(failed: list[Found] = failed) -> Found | None:
            current = ctx.found("server", spec.name)
            now = call(
                ctx,
                "server",
                f"read server {spec.name}",
                lambda: server.get_server(ctx.conn, current),
            )
            if now is None or now.status == "ERROR":
                failed.append(now or current)
                return now or current
            ctx.replace(current, now)
            return now if now.status == "ACTIVE" else None

        result = wait_for(
            check,
            timeout=ctx.timing.server_timeout,
            poll=ctx.timing.poll,
            what=f"server {spec.name} to become ACTIVE",
        )
        if not failed:
            return result
        text = result.attrs.get("fault") or ""
        fault = text or "no fault message from Nova"
        kind = classify_server_fault(text)
        if not kind.transient:
            raise CloudError(
                f"server {spec.name} ({result.id}) went to ERROR: {fault} ({kind.why})",
                hint=f"{kind.hint}. The server is kept for `openstack server show "
                f"{result.id}`; rerun `ggctl reserve` once that is fixed (it replaces the "
                "server), or `ggctl teardown` to free everything",
            )
        if attempt == SERVER_ATTEMPTS:
            raise CloudError(
                f"server {spec.name} ({result.id}) went to ERROR {attempt} times on "
                f"faults that usually pass ({kind.why}); last: {fault}",
                hint="the cloud has trouble building servers now: rerun `ggctl reserve` in "
                "a few minutes (it replaces the server); if it keeps failing, ask "
                f"Chameleon's help desk, quoting the fault (`openstack server show "
                f"{result.id}`); `ggctl teardown` frees everything",
            )
        ctx.console.print(
            escape(
                f"{spec.name} went to ERROR ({fault}; {kind.why}); replacing it "
                f"(attempt {attempt + 1} of {SERVER_ATTEMPTS})"
            ),
            style="yellow",
            highlight=False,
        )
        replace_server(ctx, ctx.found("server", spec.name), spec)
    raise AssertionError("unreachable")


def replace_server(ctx: Context, old: Found, spec: Any) -> Found:
    """Delete the broken server, wait until it is gone, boot a new one."""
    delete(ctx, Action("delete", "server", old.name, target=old))
    return create(ctx, Action("create", "server", spec.name, spec=spec))


# --------------------------------------------------------------------------- deletes


def delete(ctx: Context, a: Action) -> None:
    """Delete, then wait until the cloud says it is gone; re-issue the delete now and then
    (a delete that silently did nothing, like python-chi's floating-IP delete, is caught)."""
    f = a.target
    assert f is not None
    remove, exists = deleters(ctx.cloud)[a.kind]
    call(ctx, a.kind, f"delete {f.label()}", lambda: remove(f))
    polls = 0

    def gone() -> bool | None:
        nonlocal polls
        polls += 1
        if not call(ctx, a.kind, f"check {f.label()}", lambda: exists(f)):
            return True
        if polls % 10 == 0:
            call(ctx, a.kind, f"delete {f.label()}", lambda: remove(f))
        return None

    wait_for(
        gone,
        timeout=ctx.timing.delete_timeout,
        poll=ctx.timing.poll,
        what=f"{f.label()} to be deleted",
    )
    ctx.replace(f, None)


# --------------------------------------------------------------------------- the loop


def execute(ctx: Context, a: Action) -> None:
    """Run one action."""
    if a.op == "create":
        create(ctx, a)
    elif a.op == "update":
        update(ctx, a)
    elif a.op == "delete":
        delete(ctx, a)
    elif a.op == "replace" and a.kind == "server":
        replace_server(ctx, a.target, a.spec)  # type: ignore[arg-type]
    elif a.op == "replace":
        delete(ctx, Action("delete", a.kind, a.name, target=a.target))
        create(ctx, Action("create", a.kind, a.name, spec=a.spec))
    elif a.op == "wait" and a.kind == "lease":
        wait_lease(ctx)
    elif a.op == "wait" and a.kind == "server":
        wait_server(ctx, a)
    else:
        raise ValueError(f"unknown action {a}")


def apply(ctx: Context, actions: list[Action], *, title: str = "reserve") -> None:
    """Execute the actions in order, showing progress; the first failure stops the run."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    preflight(ctx, actions)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=ctx.console,
        transient=False,
    )
    with progress:
        task = progress.add_task(title, total=len(actions))
        for a in actions:
            progress.update(task, description=f"{title}: {a.op} {a.kind} {a.name}")
            start = time.monotonic()
            execute(ctx, a)
            log.info("%s %s %s done in %.1f s", a.op, a.kind, a.name, time.monotonic() - start)
            progress.advance(task)
        progress.update(task, description=f"{title}: done")
