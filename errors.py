"""Errors for people: what failed, why, and what to do next."""

from __future__ import annotations

from pathlib import Path


class GgctlError(Exception):
    """An expected failure with a message fit to show a user (no traceback)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


# The failure log: every command that ends in an error appends its full traceback here
# (secrets redacted), so a user can send it along without rerunning with -v.
FAILURE_LOG = "ggctl-errors.log"
_LOG_LIMIT = 1_000_000  # bytes; the previous log is kept as .1 beyond this


def log_failure(state_dir: Path | None, argv: list[str], exc: BaseException) -> Path | None:
    """Append `exc`'s traceback (with its causes) to <state_dir>/ggctl-errors.log; the path,
    or None when it cannot be written (a failure log must never cause a failure)."""
    if state_dir is None:
        return None
    import datetime
    import os
    import traceback

    from ggctl.provision.auth import REDACTOR

    path = Path(state_dir).expanduser() / FAILURE_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and path.stat().st_size > _LOG_LIMIT:
            path.replace(path.with_name(FAILURE_LOG + ".1"))
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        text = "".join(traceback.format_exception(exc))
        entry = f"--- {stamp} ggctl {' '.join(argv)}\n{text}\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(REDACTOR.redact(entry))
    except OSError:
        return None
    return path
