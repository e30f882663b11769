"""Classifying cloud errors: transient (retry), permanent (act or explain), quota, auth,
and the text fit for a person.

Classification reads the error's type where the service sends one (Neutron's
``NeutronError.type``, Nova's top-level fault key) and its body otherwise (Blazar sends
only ``error_message``; blazarclient keeps nothing but that text and the status).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ggctl.errors import GgctlError

TRANSIENT_STATUS = {409, 500, 502, 503, 504}
_QUOTA = re.compile(r"quota|over ?limit|not enough (hosts|resources)", re.IGNORECASE)
# Blazar's NotEnoughHostsAvailable sets no `code`, so BlazarException's 500 applies and the
# API renders {"error_code": 500, "error_message": "Not enough hosts available", ...}
# (blazar/manager/exceptions.py, blazar/api/v1/utils.py render_error_message).
_NO_CAPACITY = re.compile(r"not enough (hosts|resources) available", re.IGNORECASE)
# Blazar's NotImplemented (code 409) for changing a flavor:instance lease's reservation
# parameters: "Updating parameters for 'flavor:instance' type reservations is not yet
# supported." (blazar 18 manager/service.py _handle_resource_type_exception). New dates
# alone go through in Blazar 18; a fork that refused them would presumably say the same.
_UPDATE_UNSUPPORTED = re.compile(r"not yet supported", re.IGNORECASE)
# 409s that no amount of waiting resolves: something must be done about them first.
PERMANENT_CONFLICTS = frozenset(
    {
        "IpAddressAlreadyAllocated",
        "IpAddressGenerationFailure",
        "RouterInUse",
        "NetworkInUse",
        "SubnetInUse",
        "SecurityGroupRuleExists",
        "SecurityGroupInUse",
        "SecurityGroupExists",
        "PortInUse",
        "OverQuota",
        "RouterInterfaceInUseByFloatingIP",
        "RouterExternalGatewayInUseByFloatingIp",
    }
)
# The same, recognised by text where no type is sent (Blazar, and Nova's key-pair 409).
_PERMANENT_TEXT = re.compile(
    r"already exists|already allocated|not yet supported|"
    r"Security group rule already exists",
    re.IGNORECASE,
)
# Nova's build faults, as GET /servers/{id} shows them in "fault".message (the code is 500
# for all of them: none of these exceptions sets one, compute/utils.py exception_to_dict; so
# the text is all there is to go by). Sources: nova/exception.py, compute/manager.py
# (_build_and_run_instance, _do_build_and_run_instance), conductor/manager.py,
# scheduler/manager.py.
#
# MaxRetriesExceeded, a NoValidHost: the build failed on each host Nova tried.
_RETRIES_EXHAUSTED = re.compile(r"^Exceeded maximum number of retries", re.IGNORECASE)
# NoValidHost: the scheduler found no host at all ("No valid host was found. " with an
# empty reason when Placement has no candidate, or "... There are not enough hosts
# available."). On a lease's reserved flavor that means the reservation's hosts are full
# or down: booting again changes neither. (Not a race with the lease's start: Blazar marks a
# lease ACTIVE only once its plugin's on_start has set the hosts up, manager/service.py
# start_lease, and ggctl boots only then.)
_NO_VALID_HOST = re.compile(r"^No valid host was found", re.IGNORECASE)
# BuildAbortException: "Build of instance <uuid> aborted: <reason>". Nova aborts instead of
# rescheduling both for passing trouble (network allocation or a VIF plug timing out,
# "Failure prepping block device.") and for image/flavor mismatches that fail on any host.
BUILD_ABORTED = re.compile(r"Build of instance \S+ aborted: ?(?P<reason>.*)", re.IGNORECASE | re.S)
# RescheduledException: "Build of instance <uuid> was re-scheduled: <reason>" (logged; when
# rescheduling is off the fault is the bare reason instead, which lands in "unknown").
_RESCHEDULED = re.compile(r"Build of instance \S+ was re-scheduled", re.IGNORECASE)
# The image/flavor reasons (FlavorDiskTooSmall, FlavorMemoryTooSmall, ImageNotActive,
# ImageUnacceptable, InvalidDiskFormat, InvalidDiskInfo, signature/certificate checks): the
# same image on the same flavor fails the same way on every host.
_IMAGE_OR_FLAVOR = re.compile(
    r"disk would be too small|memory is too small for requested image|"
    r"Image \S+ is not active|Image \S+ is unacceptable|Disk format \S+ is not acceptable|"
    r"Disk info file is invalid|Signature verification for the image failed|"
    r"Certificate validation failed",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ServerFault:
    """What a server's ERROR fault means for us: worth another boot, or not."""

    transient: bool
    why: str  # what it means, for people
    hint: str = ""  # what to do about a permanent one


def classify_server_fault(message: str) -> ServerFault:
    """Transient (boot again, a bounded number of times) or permanent (stop and say what
    to do) by Nova's fault message. Unknown texts count as transient: for an unexpected
    error on the compute host Nova itself reschedules (RescheduledException), so one more
    boot is what Nova would have tried."""
    text = message.strip()
    if _IMAGE_OR_FLAVOR.search(text):
        return ServerFault(
            False,
            "the image does not fit the flavor or cannot be used; every host would fail "
            "the same way",
            "choose another image (`openstack image list --name CC-Ubuntu24.04` and "
            "`ggctl reserve --image NAME`)",
        )
    if _RETRIES_EXHAUSTED.search(text):
        return ServerFault(True, "the build failed on every host Nova tried")
    if _NO_VALID_HOST.search(text):
        return ServerFault(
            False,
            "Nova found no host for it: the lease's reserved hosts are all in use (by "
            "servers booted on its flavor, yours or a project member's) or down",
            "`ggctl status` shows the lease and your servers; `openstack server list "
            "--flavor FLAVOR` shows what else runs on the reserved flavor. If the lease "
            "is ACTIVE and nothing else holds its hosts, its hosts are down: "
            "`ggctl teardown`, then `ggctl reserve` again, or ask Chameleon's help desk",
        )
    aborted = BUILD_ABORTED.search(text)
    if aborted:
        return ServerFault(True, "the compute host gave up on this boot")
    if _RESCHEDULED.search(text):
        return ServerFault(True, "the build failed on its host")
    return ServerFault(True, "an unexpected build failure")


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


def error_type(exc: BaseException) -> str:
    """The service's name for the error: Neutron's ``NeutronError.type``, Nova's fault key
    (``conflictingRequest``, ``overLimit`` ...), else ''."""
    response = getattr(exc, "response", None)
    if response is None:
        return ""
    try:
        body = json.loads(response.text or "")
    except (ValueError, AttributeError, TypeError):
        return ""
    if not isinstance(body, dict):
        return ""
    neutron = body.get("NeutronError")
    if isinstance(neutron, dict):
        return str(neutron.get("type") or "")
    if len(body) == 1:
        key = next(iter(body))
        if isinstance(body[key], dict) and "message" in body[key]:
            return key
    return ""


def is_quota(exc: BaseException) -> bool:
    """Quota or capacity refusals (Nova 403/413, Neutron 409 OverQuota, Blazar's "not enough")."""
    if error_type(exc) == "OverQuota":
        return True
    if is_no_capacity(exc):
        return False  # the site's capacity, not the project's quota: lease.blazar_error says so
    return http_status(exc) in (400, 403, 409, 413) and bool(_QUOTA.search(error_text(exc)))


def is_no_capacity(exc: BaseException) -> bool:
    """Blazar's "Not enough hosts available" (HTTP 500 upstream; 409 in older forks)."""
    return http_status(exc) in (409, 500) and bool(_NO_CAPACITY.search(error_text(exc)))


def is_update_unsupported(exc: BaseException) -> bool:
    """Blazar's 409 for updating a flavor:instance lease (not implemented upstream)."""
    return http_status(exc) == 409 and bool(_UPDATE_UNSUPPORTED.search(error_text(exc)))


def is_permanent_conflict(exc: BaseException) -> bool:
    """A 409 that waiting does not resolve (address taken, still in use, exists already)."""
    if http_status(exc) != 409:
        return False
    return error_type(exc) in PERMANENT_CONFLICTS or bool(_PERMANENT_TEXT.search(error_text(exc)))


def is_connection_error(exc: BaseException) -> bool:
    """A reset, refused or timed-out connection (keystoneauth, requests, or plain OSError)."""
    from keystoneauth1 import exceptions as ks_exc
    from requests import exceptions as rq_exc

    return isinstance(
        exc,
        ks_exc.ConnectFailure
        | ks_exc.ConnectionError
        | ks_exc.RequestTimeout
        | rq_exc.ConnectionError
        | rq_exc.Timeout
        | ConnectionError
        | TimeoutError,
    )


def is_timeout(exc: BaseException) -> bool:
    """No answer within the session's timeout (keystoneauth turns requests' connect and read
    timeouts alike into ConnectTimeout "Request to URL timed out")."""
    import socket

    from keystoneauth1 import exceptions as ks_exc
    from requests import exceptions as rq_exc

    return isinstance(exc, ks_exc.ConnectTimeout | rq_exc.Timeout | socket.timeout | TimeoutError)


TIMEOUT_HINT = (
    "the cloud accepted the connection but did not answer in time: it may be overloaded or "
    "down (Chameleon posts outages at chameleoncloud.org); rerun the same command later "
    "(it resumes from what exists), or allow more time with --api-timeout SECONDS "
    "([cloud] api_timeout, 60 by default)"
)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: busy 409s, 5xx, connection resets and timeouts. Never quota or
    capacity refusals, never the permanent conflicts (they need an action, not time)."""
    if is_quota(exc) or is_no_capacity(exc) or is_permanent_conflict(exc):
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


# Exceptions of these packages are the outside world answering (or not): never a bug of ours.
CLOUD_PACKAGES = ("openstack", "keystoneauth1", "blazarclient", "chi")
OUTSIDE_PACKAGES = (*CLOUD_PACKAGES, "requests", "urllib3")


def from_cloud_library(exc: BaseException) -> bool:
    """Raised by openstacksdk, keystoneauth, blazarclient or python-chi."""
    return type(exc).__module__.partition(".")[0] in CLOUD_PACKAGES


def is_outside(exc: BaseException) -> bool:
    """Raised by a cloud client library, or a network failure: worth a message, not a trace."""
    root = type(exc).__module__.partition(".")[0]
    return root in OUTSIDE_PACKAGES or isinstance(exc, ConnectionError | TimeoutError)


def _url(exc: BaseException) -> str:
    """Where the failed request went (no query string: it may carry names, never secrets)."""
    for holder in (getattr(exc, "response", None), getattr(exc, "request", None), exc):
        url = getattr(holder, "url", None)
        if isinstance(url, str) and url:
            return url.split("?", 1)[0]
    return ""


def describe(exc: BaseException, what: str) -> GgctlError | None:
    """One message for people for a failure the cloud client libraries raised while trying
    to `what`: the service's own text, the HTTP status, and what to run next. None when
    `exc` is not from the outside world (a bug: let it show)."""
    if isinstance(exc, GgctlError):
        return exc
    if not is_outside(exc):
        return None
    from ggctl.provision.auth import REDACTOR

    text = REDACTOR.redact(error_text(exc)) or type(exc).__name__
    status = http_status(exc)
    where = _url(exc)
    rerun = "rerun the same command: it resumes from what exists"
    if is_auth_failure(exc):
        return AuthError(
            f"the cloud refused our credentials while trying to {what}: {text}",
            hint="the token or application credential may have expired or been deleted; "
            "check with `openstack token issue`, then rerun",
        )
    if is_timeout(exc):
        return CloudError(
            f"could not {what}: {where or 'the cloud'} did not answer within the API "
            f"timeout ({text})",
            hint=TIMEOUT_HINT,
        )
    if is_connection_error(exc):
        return CloudError(
            f"could not {what}: no answer from {where or 'the cloud'} ({text})",
            hint=f"check your network (and the auth_url in clouds.yaml); {rerun}",
        )
    if status == 403:
        return CloudError(
            f"not allowed to {what} (HTTP 403): {text}",
            hint="the cloud's policy forbids this for your credentials: check that the "
            "application credential is unrestricted and belongs to your CHI-XXXXXX project",
        )
    if status == 404:
        return CloudError(
            f"could not {what}: not found (HTTP 404): {text}",
            hint=f"it may have gone meanwhile (an expired lease takes its servers): "
            f"`ggctl status` shows what exists; {rerun}",
        )
    if status == 409:
        return CloudError(
            f"could not {what}: conflict (HTTP 409): {text}",
            hint=f"`ggctl status` shows what exists; {rerun}",
        )
    if status == 413:
        return CloudError(
            f"could not {what}: over a limit (HTTP 413): {text}",
            hint="a quota or the API's rate limit: wait a minute, or free resources "
            "(`ggctl teardown`), then rerun",
        )
    if status is not None and status >= 500:
        return CloudError(
            f"could not {what}: the cloud failed (HTTP {status}) at {where or '?'}: {text}",
            hint=f"a fault on the cloud's side, retried already; {rerun} in a few minutes, "
            "and if it persists ask Chameleon's help desk, quoting this message",
        )
    label = f"HTTP {status}" if status else type(exc).__name__
    return CloudError(f"could not {what} ({label}): {text}", hint=rerun)


@contextlib.contextmanager
def cloud_errors(what: str) -> Iterator[None]:
    """``with cloud_errors("reserve"):`` turns any client-library failure into one message
    for people (the original stays chained for -v and the failure log)."""
    try:
        yield
    except GgctlError:
        raise
    except Exception as exc:
        err = describe(exc, what)
        if err is None:
            raise
        raise err from exc


def find_or_none(find: Any, name_or_id: str) -> Any:
    """An openstacksdk `find_*` proxy call that answers None when nothing matches.

    openstacksdk 4 deprecates `ignore_missing=True` on every find_* (its default turns to False
    in 6.0), so ask for the exception and turn NotFound into None here, once.
    """
    from openstack.exceptions import NotFoundException

    try:
        return find(name_or_id, ignore_missing=False)
    except NotFoundException:
        return None
