"""Errors for people: what failed, why, and what to do next.

`GgctlError` is an expected failure with a message fit to show a user. `for_person` turns the
exceptions the client libraries raise for a failure of the outside world (an API server's
error answer, a refused connection, a timeout, a missing program) into one; `report` is the
one place a failure is printed (cli.main) and kept in the state dir's error log.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import subprocess
import traceback
from pathlib import Path
from typing import Any

ERROR_LOG = "errors.log"
#: Only the newest tracebacks are kept: the file is for "what happened just now".
ERROR_LOG_MAX_BYTES = 256 * 1024


class GgctlError(Exception):
    """An expected failure with a message fit to show a user (no traceback)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def status_message(body: Any) -> str:
    """The `message` of a Kubernetes Status error body (bytes or str), else the body's text."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        return str(json.loads(body)["message"])
    return str(body or "").strip()


#: Next step per HTTP status of a Kubernetes API answer.
_K8S_HINTS = {
    401: "the cluster did not accept the kubeconfig's credentials: pass --kubeconfig with a "
    "current one (ggctl's own: <state dir>/kubeconfig, rewritten by `ggctl cluster`)",
    403: "the kubeconfig's user lacks that permission (RBAC): use the cluster's admin "
    "kubeconfig, or ask its owner for a Role",
    404: "the cluster does not serve that resource or object: check the namespace "
    "and `ggctl kubectl api-resources`",
    409: "another client changed the object at the same time: run the command again",
    422: "the cluster rejected the object as invalid: the message above names the field",
    429: "the API server is throttling requests: wait a minute and run the command again",
}
_K8S_SERVER_HINT = (
    "the API server failed or is unavailable: check the control plane "
    "(`ggctl kubectl get --raw /readyz?verbose`) and run the command again"
)
_UNREACHABLE_HINT = "check the kubeconfig (--kubeconfig) and that the cluster is up"


def _kubernetes(exc: BaseException) -> GgctlError | None:
    try:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config.config_exception import ConfigException
    except ImportError:  # pragma: no cover - kubernetes is a dependency
        return None
    if isinstance(exc, ApiException):
        status = exc.status or 0
        text = status_message(exc.body) or str(exc.reason or "")
        hint = _K8S_HINTS.get(status, _K8S_SERVER_HINT if status >= 500 else None)
        return GgctlError(f"the Kubernetes API answered HTTP {status} {exc.reason}: {text}", hint)
    if isinstance(exc, ConfigException):
        return GgctlError(f"cannot use the kubeconfig: {exc}", "pass --kubeconfig FILE")
    return None


def _transport(exc: BaseException) -> GgctlError | None:
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, Urllib3Error):
        reason = getattr(exc, "reason", None) or exc
        return GgctlError(f"cannot reach the server: {reason}", _UNREACHABLE_HINT)
    with contextlib.suppress(ImportError):
        import requests

        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            r = exc.response
            return GgctlError(
                f"{r.request.method if r.request else 'request'} {r.url} answered HTTP "
                f"{r.status_code} {r.reason}: {r.text.strip()[:500]}",
                "check the URL and that the service is up, then run the command again",
            )
        if isinstance(exc, requests.RequestException):
            req = exc.request
            inner = exc.args[0] if exc.args else exc
            reason = getattr(inner, "reason", None) or inner  # urllib3's own, not its wrapper
            where = f"{req.method} {req.url}" if req is not None else "a request"
            return GgctlError(
                f"{where} failed: {reason}", "check the URL and that the service is up"
            )
    return None


def _processes(exc: BaseException) -> GgctlError | None:
    with contextlib.suppress(ImportError):
        from ansible_runner.exceptions import AnsibleRunnerException

        if isinstance(exc, AnsibleRunnerException):
            return GgctlError(
                f"ansible-runner failed: {exc}",
                "run again with -v; the run's files are under <state dir>/ansible",
            )
    if isinstance(exc, subprocess.CalledProcessError):
        cmd = exc.cmd if isinstance(exc.cmd, str) else " ".join(map(str, exc.cmd))
        out = exc.stderr or exc.output or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        tail = "\n".join(str(out).strip().splitlines()[-10:])
        return GgctlError(
            f"`{cmd}` exited with status {exc.returncode}" + (f":\n{tail}" if tail else ""),
            "run the command again with -v for details",
        )
    if isinstance(exc, subprocess.TimeoutExpired):
        return GgctlError(
            f"`{exc.cmd}` did not finish within {exc.timeout:g} s",
            "check that the host is reachable (`ggctl ssh node-0`) and run the command again",
        )
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return GgctlError(
            f"{exc.filename}: {exc.strerror}", "install it, or check the path you gave"
        )
    if isinstance(exc, ConnectionError | TimeoutError):
        return GgctlError(f"network failure: {exc}", "check the network and run the command again")
    return None


#: A file or folder this machine will not let us use: a failure of the surroundings (a full
#: or read-only disk, a path that is a file), not of ggctl.
_FILESYSTEM_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def _filesystem(exc: BaseException) -> GgctlError | None:
    if isinstance(exc, OSError) and exc.filename and exc.errno in _FILESYSTEM_ERRNOS:
        return GgctlError(
            f"cannot use {exc.filename}: {exc.strerror}",
            "check that path: its permissions, free space, and that no file stands where a "
            "folder should be (the state dir is --state-dir, else $XDG_STATE_HOME/ggctl)",
        )
    return None


def _cloud(exc: BaseException) -> GgctlError | None:
    """openstacksdk, keystoneauth, blazarclient and python-chi failures that escaped the cloud
    steps' own handling: provision.errors.describe knows their bodies and statuses."""
    from ggctl.provision.errors import describe, from_cloud_library

    if not from_cloud_library(exc):
        return None
    return describe(exc, "finish the command")


#: Translators tried in order; each returns None for an exception it does not know.
TRANSLATORS = [_kubernetes, _cloud, _transport, _processes, _filesystem]


def for_person(exc: BaseException) -> GgctlError | None:
    """`exc` as one GgctlError if it is a failure of the outside world, else None (a bug)."""
    if isinstance(exc, GgctlError):
        return exc
    for translate in TRANSLATORS:
        found = translate(exc)
        if found is not None:
            return found
    return None


def write_log(state_dir: Path | None, exc: BaseException, argv: list[str]) -> Path | None:
    """Append the traceback of `exc` to <state dir>/errors.log (0600); its path, or None."""
    if state_dir is None:
        return None
    from ggctl.provision.auth import REDACTOR

    path = Path(state_dir) / ERROR_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and path.stat().st_size > ERROR_LOG_MAX_BYTES:
            path.replace(path.with_suffix(".log.1"))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            entry = f"--- {stamp} ggctl {' '.join(argv)}\n" + "".join(
                traceback.format_exception(exc)
            )
            # A traceback can quote a request's headers or a credential: never keep a secret.
            fh.write(REDACTOR.redact(entry))
    except OSError:
        return None
    return path


def report(
    exc: BaseException,
    console: Any,
    *,
    verbose: int = 0,
    state_dir: Path | None = None,
    argv: list[str] | None = None,
) -> int | None:
    """Print `exc` for a person and log its traceback; its exit code, or None if it is not
    a failure ggctl knows (a bug: the caller lets it propagate with its traceback).

    Messages carry outside text (API servers' messages, events, log lines, Ansible task
    names such as `[role : task]`): printed as plain text, never read as rich markup."""
    from rich.markup import escape

    err = for_person(exc)
    if err is None:
        write_log(state_dir, exc, argv or [])
        return None
    log = write_log(state_dir, exc, argv or [])
    if verbose:
        console.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    console.print(f"[bold red]error:[/] {escape(err.message)}", highlight=False)
    if err.hint:
        console.print(f"[dim]hint:[/] {escape(err.hint)}", highlight=False)
    if log is not None and err is not exc and not verbose:
        console.print(f"[dim](traceback in {escape(str(log))}; -v shows it)[/]", highlight=False)
    return err.exit_code
