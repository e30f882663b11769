"""One keystoneauth session from whatever credentials the user has, for every client.

Sources, in order: `--os-cloud NAME` / $OS_CLOUD (a clouds.yaml entry, as Chameleon's
application-credential page downloads it), else OS_* variables (password, application
credential or token). python-chi reads only OS_* and oslo options, so rather than feed it
through its global context we build the session here and hand the same session to
openstacksdk and to the Blazar client. Secrets stay in memory: never in state, logs or
errors (the Redactor scrubs any that slips into a log line or message).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ggctl.provision.errors import (
    TIMEOUT_HINT,
    AuthError,
    error_text,
    is_connection_error,
    is_timeout,
)

SECRET_KEYS = (
    "password",
    "application_credential_secret",
    "token",
    "access_token",
    "client_secret",
    "passcode",
    "secret",
)
NO_CREDENTIALS_HINT = (
    "download a clouds.yaml from Chameleon (KVM@TACC > Identity > Application Credentials) "
    "into ~/.config/openstack/ and pass --os-cloud NAME (or set OS_CLOUD), or source an "
    "openrc that sets OS_AUTH_URL and friends"
)


class Redactor(logging.Filter):
    """Replaces every known secret by *** in log records and messages."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: Any) -> None:
        if isinstance(secret, str) and len(secret) >= 4:
            self.secrets.add(secret)

    def redact(self, text: str) -> str:
        for s in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            record.msg = self.redact(record.getMessage())
            record.args = ()
        return True


REDACTOR = Redactor()


@dataclass
class Cloud:
    """Authenticated clients for one cloud region, sharing one keystoneauth session."""

    conn: Any  # openstack.connection.Connection
    session: Any  # keystoneauth1.session.Session
    region: str
    interface: str
    auth_url: str
    user_name: str
    user_id: str
    project_id: str
    project_name: str
    services: set[str] = field(default_factory=set)
    _blazar: Any = None

    def blazar(self) -> Any:
        """The Blazar client over the shared session (python-blazarclient's v1 Client)."""
        if self._blazar is None:
            from ggctl.provision.lease import blazar_client

            self._blazar = blazar_client(self.session, self.region, self.interface)
        return self._blazar


def credential_source(os_cloud: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The clouds.yaml entry to use, "" for OS_* variables, None when there is nothing."""
    env = os.environ if environ is None else environ
    name = os_cloud or env.get("OS_CLOUD")
    if name:
        return name
    return "" if env.get("OS_AUTH_URL") else None


def load_region(os_cloud: str | None, site: str, api_timeout: float | None = None) -> Any:
    """openstacksdk's CloudRegion for the clouds.yaml entry or the OS_* variables.

    `api_timeout` (seconds) becomes the keystoneauth session's timeout, for every request
    of every client on it (openstacksdk, Blazar, the token itself): without one, requests
    wait for ever on a cloud that accepts connections and never answers. Ours overrides
    an `api_timeout` in clouds.yaml, as a command-line flag would."""
    from openstack import exceptions as sdk_exc
    from openstack.config import loader

    source = credential_source(os_cloud)
    if source is None:
        raise AuthError(
            "no OpenStack credentials: neither --os-cloud/OS_CLOUD nor OS_AUTH_URL is set",
            hint=NO_CREDENTIALS_HINT,
        )
    config = loader.OpenStackConfig(load_envvars=True)
    extra = {} if api_timeout is None else {"api_timeout": api_timeout}
    try:
        region = config.get_one(cloud=source or None, **extra)
        if not region.region_name:
            region = config.get_one(cloud=source or None, region_name=site, **extra)
    except sdk_exc.ConfigException as exc:
        known = ", ".join(sorted(config.get_cloud_names())) or "none"
        raise AuthError(
            f"cannot use cloud {source or 'from OS_* variables'!r}: "
            f"{REDACTOR.redact(str(exc))} (clouds found: {known})",
            hint=NO_CREDENTIALS_HINT,
        ) from None
    for key in SECRET_KEYS:
        REDACTOR.add((region.config.get("auth") or {}).get(key))
    if region.region_name and region.region_name != site:
        raise AuthError(
            f"the credentials are for region {region.region_name!r}, not the site {site!r}",
            hint=f"pass --site {region.region_name} or use {site}'s credentials",
        )
    return region


def connect(os_cloud: str | None, site: str, api_timeout: float | None = None) -> Cloud:
    """Authenticate once and return clients sharing the session; clear errors otherwise."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import connection

    region = load_region(os_cloud, site, api_timeout)
    auth = region.config.get("auth") or {}
    auth_url = str(auth.get("auth_url", "?"))
    project = auth.get("project_name") or auth.get("project_id")
    try:
        session = region.get_session()
        access = session.auth.get_access(session)
    except ks_exc.MissingRequiredOptions as exc:
        names = ", ".join(o.dest for o in exc.options)
        raise AuthError(
            f"incomplete credentials: missing {names}", hint=NO_CREDENTIALS_HINT
        ) from None
    except (ks_exc.Unauthorized, ks_exc.AuthorizationFailure) as exc:
        scope = f" for project {project!r}" if project else ""
        raise AuthError(
            f"Keystone at {auth_url} refused the credentials{scope}: "
            f"{REDACTOR.redact(error_text(exc))}",
            hint="check the application credential (it may be expired or deleted) and "
            "that it belongs to your CHI-XXXXXX project",
        ) from None
    except Exception as exc:
        if is_timeout(exc):
            raise AuthError(
                f"Keystone at {auth_url} did not answer within {api_timeout or '?'} s "
                f"({REDACTOR.redact(error_text(exc))})",
                hint=TIMEOUT_HINT,
            ) from exc
        if is_connection_error(exc):
            raise AuthError(
                f"cannot reach Keystone at {auth_url}", hint="check the network and the auth_url"
            ) from None
        raise
    REDACTOR.add(access.auth_token)
    if not access.project_id:
        raise AuthError(
            "the credentials are not scoped to a project",
            hint="set project_name (CHI-XXXXXX) in clouds.yaml or OS_PROJECT_NAME",
        )
    services = {entry.get("type") for entry in access.service_catalog.catalog or []}
    return Cloud(
        conn=connection.Connection(config=region),
        session=session,
        region=region.region_name or site,
        interface=region.interface or "public",
        auth_url=auth_url,
        user_name=access.username or access.user_id or "",
        user_id=access.user_id or "",
        project_id=access.project_id,
        project_name=access.project_name or "",
        services={s for s in services if s},
    )


def restricted_application_credential(session: Any) -> dict[str, Any] | None:
    """The application credential behind `session` if it is a restricted one, else None.

    Keystone's token says `"application_credential": {"id", "name", "restricted"}`; from
    a restricted credential's token Keystone refuses to create trusts, which every Blazar
    lease needs (Blazar then answers the lease create with a bare HTTP 500).
    """
    try:
        cred = session.auth.get_access(session).application_credential
    except Exception:  # no token body, or not an application credential (KeyError)
        return None
    return cred if isinstance(cred, dict) and cred.get("restricted") else None
