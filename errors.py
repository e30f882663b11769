"""Errors for people: what failed, why, and what to do next."""

from __future__ import annotations


class GgctlError(Exception):
    """An expected failure with a message fit to show a user (no traceback)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
