"""Classifying cloud errors: transient (retry), quota, auth, and the text fit for a person."""

from __future__ import annotations

import re

from ggctl.errors import GgctlError

TRANSIENT_STATUS = {409, 500, 502, 503, 504}
_QUOTA = re.compile(r"quota|over ?limit|not enough (hosts|resources)", re.IGNORECASE)


class CloudError(GgctlError):
    """A cloud API refused something; the message names what and why."""


class AuthError(GgctlError):
    """No usable credentials, or Keystone refused them."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind an openstacksdk, keystoneauth or blazarclient exception."""
    for attr in ("status_code", "http_status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    kwargs = getattr(exc, "kwargs", None)
    if isinstance(kwargs, dict) and isinstance(kwargs.get("code"), int):
        return kwargs["code"]
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def error_text(exc: BaseException) -> str:
    """The server's own words, without the client's boilerplate."""
    for attr in ("details", "message"):
        # instance attributes only: blazarclient's class-level `message` is a template
        value = vars(exc).get(attr)
        if isinstance(value, str) and value.strip():
            text = value
            break
    else:
        text = str(exc)
    return text.removeprefix("ERROR: ").strip()


def is_quota(exc: BaseException) -> bool:
    """Quota or capacity refusals (Nova 403, Neutron 409 OverQuota, Blazar's "not enough")."""
    return http_status(exc) in (400, 403, 409, 413) and bool(_QUOTA.search(error_text(exc)))


def is_connection_error(exc: BaseException) -> bool:
    """A reset or refused connection (keystoneauth, requests, or plain OSError)."""
    from keystoneauth1 import exceptions as ks_exc
    from requests import exceptions as rq_exc

    return isinstance(
        exc,
        ks_exc.ConnectFailure | ks_exc.ConnectionError | rq_exc.ConnectionError | ConnectionError,
    )


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: 409 (busy), 5xx, connection resets. Never quota refusals."""
    if is_quota(exc):
        return False
    if is_connection_error(exc):
        return True
    return http_status(exc) in TRANSIENT_STATUS


def is_auth_failure(exc: BaseException) -> bool:
    from keystoneauth1 import exceptions as ks_exc

    return (
        isinstance(
            exc, ks_exc.Unauthorized | ks_exc.MissingAuthPlugin | ks_exc.AuthorizationFailure
        )
        or http_status(exc) == 401
    )
