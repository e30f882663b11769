"""Polling with a deadline, and retrying transient API errors with backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ggctl.provision.errors import CloudError, error_text, http_status, is_timeout, is_transient

T = TypeVar("T")
log = logging.getLogger("ggctl.provision")


@dataclass(frozen=True)
class Timing:
    """How long to wait and how often to look; tests shrink all of it."""

    poll: float = 5.0
    lease_timeout: float = 600.0
    server_timeout: float = 1200.0
    delete_timeout: float = 600.0
    retries: int = 5
    backoff: float = 2.0


def wait_for(check: Callable[[], T | None], *, timeout: float, poll: float, what: str) -> T:
    """Call `check` every `poll` seconds until it returns a value; it raises to give up."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise CloudError(
                f"timed out after {timeout:.0f} s waiting for {what}",
                hint="rerun the same command: it resumes from what exists",
            )
        time.sleep(poll)


def retrying(
    call: Callable[[], T],
    *,
    timing: Timing,
    what: str,
    recheck: Callable[[], T | None] | None = None,
) -> T:
    """Run `call`, retrying transient failures (409, 5xx, resets) with doubling backoff.

    `recheck` runs before each retry: a create whose answer was lost (connection reset)
    may have happened, and adopting what it made beats making a duplicate.
    """
    delay = timing.backoff
    timeouts = 0
    for attempt in range(timing.retries + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == timing.retries:
                raise
            # A timed-out request is retried once only: each costs a whole api_timeout,
            # and a service silent twice in a row is down, not busy.
            timeouts += is_timeout(exc)
            if timeouts > 1:
                raise
            status = http_status(exc)
            log.warning(
                "%s: %s (%s); retry %d/%d in %.2g s",
                what,
                f"HTTP {status}" if status else type(exc).__name__,
                error_text(exc)[:200],
                attempt + 1,
                timing.retries,
                delay,
            )
            time.sleep(delay)
            delay *= 2
            if recheck is not None:
                found = recheck()
                if found is not None:
                    return found
    raise AssertionError("unreachable")
