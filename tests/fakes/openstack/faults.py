"""Fault injection for the fake cloud.

    faults.fail("POST", r"/network/v2.0/routers$", status=503)       # next router create
    faults.fail("DELETE", r"/subnets/", status=409, nth=2, times=3)  # 2nd..4th subnet delete
    faults.fail("POST", r"/compute/v2.1/servers$", drop=True)        # connection reset
    faults.fail("GET", r"/compute/v2.1/servers", hang=True, times=-1) # never answers
    faults.fail("POST", r"/v2.0/ports$", status=409, kind="IpAddressAlreadyAllocated")
    faults.fail("POST", r"/reservation/v1/leases$", drop=True, after=True)  # done, reply lost
    faults.fail("DELETE", r"/servers/", status=500, after=True)   # done, yet a 500
    faults.fail("DELETE", r"/floatingips/", status=204)          # "deleted", yet still there
    faults.server_error(name="node-1")          # next boot of node-1 ends in ERROR + fault
    faults.server_error(name="node-2", message=BUILD_ABORTED.format(uuid="{uuid}",
                        reason="Failed to allocate the network(s), not rescheduling."))
    faults.slow_server(name="node-2", polls=20) # next node-2 stays BUILD for 20 GETs
    faults.expire_tokens()                      # every client's next call gets a 401
    faults.lease_pending(name="lease-.*")       # the lease never leaves PENDING
    faults.lease_error(name="lease-.*")         # the lease goes to ERROR instead of ACTIVE
    faults.expire_lease("lease-alice")          # its end date is now: TERMINATED on next poll
    faults.quota("CHI-251409", instances=2, floatingip=0)

Paths are regular expressions searched in the full request path, service prefix included
(``/compute``, ``/network``, ``/image``, ``/reservation``, ``/identity``). Bodies of
injected HTTP errors are in the shape of the service that was hit.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from .state import World, utcnow

# Nova's fault messages for a build that failed (nova/exception.py msg_fmt; "{uuid}" is
# replaced by the server's id when its build fails, as Nova formats instance_uuid).
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
BUILD_ABORTED = "Build of instance {uuid} aborted: {reason}"  # BuildAbortException
# MaxRetriesExceeded (a NoValidHost) after builds failed on every alternate host
# (nova/conductor/manager.py build_instances).
RETRIES_EXHAUSTED = (
    "Exceeded maximum number of retries. Exhausted all hosts available for retrying "
    "build failures for instance {uuid}."
)

# What a real cloud tends to say for each injected status.
DEFAULT_MESSAGES = {
    409: "Conflict: the resource is busy (injected fault).",
    500: "An unexpected error prevented the server from fulfilling your request.",
    503: "The server is currently unavailable. Please try again at a later time.",
}


@dataclass
class Rule:
    """One injected HTTP failure: calls matching ``method`` + ``path`` are counted, and the
    ``nth`` .. ``nth + times - 1`` of them fail."""

    method: str
    path: re.Pattern
    status: int = 500
    nth: int = 1
    times: int = 1
    drop: bool = False  # close the connection instead of answering
    hang: bool = False  # accept the request and never answer (until the fake stops)
    after: bool = False  # carry the request out first, then fail or drop the reply
    message: str = ""
    kind: str = ""  # the service's error type (Neutron's NeutronError.type), e.g. RouterInUse
    calls: int = 0  # matching calls seen so far
    fired: int = 0  # how many times this rule has failed a call

    def hit(self, method: str, path: str) -> bool:
        """Count a call; True when this one must fail (``times`` -1: every one from nth)."""
        if method != self.method or not self.path.search(path):
            return False
        self.calls += 1
        if self.nth <= self.calls and (self.times < 0 or self.calls < self.nth + self.times):
            self.fired += 1
            return True
        return False


@dataclass
class _Fate:
    name: re.Pattern
    message: str
    count: int  # how many more matching resources get this fate (-1: all)
    code: int = 500
    details: str = ""


@dataclass
class Faults:
    """Fault knobs of one fake cloud. Thread-safe; ``clear()`` resets them all."""

    world: World
    rules: list[Rule] = field(default_factory=list)
    # set when the fake stops: hung requests return then (no thread outlives the fake)
    released: threading.Event = field(default_factory=threading.Event)
    server_errors: list[_Fate] = field(default_factory=list)
    server_slow: list[_Fate] = field(default_factory=list)
    lease_fates: list[tuple[str, _Fate]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        nth: int = 1,
        times: int = 1,
        drop: bool = False,
        hang: bool = False,
        after: bool = False,
        message: str = "",
        kind: str = "",
    ) -> Rule:
        """Fail the ``nth`` (1-based) and the following ``times - 1`` calls matching
        ``method`` and the ``path`` regex (``times=-1``: all of them), with ``status``
        (409, 500, 503 ...) or, with ``drop=True``, by closing the connection without a
        reply, or with ``hang=True`` by never answering: the connection is accepted and
        the request read, then nothing (a wedged API process behind a live load balancer)
        until the fake stops; the client's timeout must end it. By default the failed
        call changes nothing; ``after=True`` lets it take effect first (the reply is lost
        or is an error anyway, as with a gateway timeout). Returns the rule; its ``calls``
        and ``fired`` count what it saw. Logged with status 0 when dropped."""
        rule = Rule(
            method.upper(),
            re.compile(path),
            status,
            nth,
            times,
            drop,
            hang,
            after,
            message or DEFAULT_MESSAGES.get(status, "Injected fault."),
            kind,
        )
        with self._lock:
            self.rules.append(rule)
        return rule

    def match(self, method: str, path: str) -> Rule | None:
        """Called by the server for every request: the rule that fails it, if any."""
        with self._lock:
            hit = None
            for rule in self.rules:
                if rule.hit(method, path) and hit is None:
                    hit = rule
            return hit

    def server_error(
        self,
        name: str = ".*",
        message: str = NO_VALID_HOST,
        count: int = 1,
        *,
        code: int = 500,
        details: str = "",
    ) -> None:
        """The next ``count`` servers whose name fully matches ``name`` end their build in
        ERROR with this fault (-1: every one). ``{uuid}`` in ``message`` becomes the
        server's id (BUILD_ABORTED, RETRIES_EXHAUSTED). ``code`` is 500 for every build
        fault Nova records (none of those exceptions sets a code: compute/utils.py
        exception_to_dict); ``details`` (Nova keeps the traceback there) is shown only
        when ``code`` is not 500, as to a non-admin caller (views/servers.py _get_fault)."""
        with self._lock:
            self.server_errors.append(
                _Fate(re.compile(name), message, count, code=code, details=details)
            )

    def slow_server(self, name: str = ".*", polls: int = 10, count: int = 1) -> None:
        """The next ``count`` servers named like ``name`` stay in BUILD for ``polls`` GETs
        (instead of ``world.settings.server_build_polls``)."""
        with self._lock:
            self.server_slow.append(_Fate(re.compile(name), str(polls), count))

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far: the next call of each client gets a 401
        and must authenticate again (keystoneauth does so once, by itself)."""
        with self.world.lock:
            self.world.tokens.clear()

    def lease_pending(self, name: str = ".*", count: int = 1) -> None:
        """The next ``count`` leases named like ``name`` stay PENDING forever."""
        self._lease("PENDING", name, "", count)

    def lease_error(
        self,
        name: str = ".*",
        message: str = "Lease failed to start (injected fault).",
        count: int = 1,
    ) -> None:
        """The next ``count`` leases named like ``name`` go to ERROR instead of ACTIVE."""
        self._lease("ERROR", name, message, count)

    def expire_lease(self, name: str) -> None:
        """Move the end of the lease named ``name`` to now: its next poll says
        TERMINATED, and its reserved flavor and servers are gone."""
        world = self.world
        with world.lock:
            for lease in world.table("leases").values():
                if lease["name"] == name:
                    now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")
                    lease["end_date"] = min(lease["end_date"], now)
                    lease["start_date"] = min(lease["start_date"], now)

    def quota(self, project: str | None = None, **limits: int) -> None:
        """Set Nova/Neutron limits (instances, cores, ram, key_pairs, floatingip, network,
        subnet, port, router, security_group, security_group_rule) of a project (name or
        id; default: every seeded project)."""
        world = self.world
        with world.lock:
            targets = [world.project(project).id] if project else list(world.projects)
            for pid in targets:
                world.quotas.setdefault(pid, {}).update(limits)

    def clear(self) -> None:
        """Forget every injected fault and quota."""
        with self._lock:
            self.rules.clear()
            self.server_errors.clear()
            self.server_slow.clear()
            self.lease_fates.clear()
        with self.world.lock:
            self.world.quotas.clear()

    # -- consumed by the services

    def take_server_error(self, name: str) -> dict | None:
        """The fault (message, code, details) for a server being booted now, if one was
        injected."""
        with self._lock:
            for fate in self.server_errors:
                if fate.count != 0 and fate.name.fullmatch(name):
                    fate.count -= 1 if fate.count > 0 else 0
                    return {"message": fate.message, "code": fate.code, "details": fate.details}
            return None

    def take_server_polls(self, name: str) -> int | None:
        """BUILD polls for a server being booted now, if a slow build was injected."""
        with self._lock:
            polls = self._take(self.server_slow, name)
            return None if polls is None else int(polls)

    def take_lease_fate(self, name: str) -> tuple[str, str] | None:
        """(status, message) for a lease being created now, if one was injected."""
        with self._lock:
            for status, fate in self.lease_fates:
                if fate.count != 0 and fate.name.fullmatch(name):
                    fate.count -= 1 if fate.count > 0 else 0
                    return status, fate.message
            return None

    def _lease(self, status: str, name: str, message: str, count: int) -> None:
        with self._lock:
            self.lease_fates.append((status, _Fate(re.compile(name), message, count)))

    @staticmethod
    def _take(fates: list[_Fate], name: str) -> str | None:
        for fate in fates:
            if fate.count != 0 and fate.name.fullmatch(name):
                fate.count -= 1 if fate.count > 0 else 0
                return fate.message
        return None
