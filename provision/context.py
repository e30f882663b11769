"""From settings to what every command needs: the cloud session, the suffix, the
topology, the timings. Shared by reserve, status, extend and teardown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggctl.errors import GgctlError
from ggctl.provision import auth, record
from ggctl.provision.topology import Topology, build_topology, sanitize_suffix
from ggctl.provision.wait import Timing
from ggctl.state import StateDir

DEFAULT_KEYS = ("~/.ssh/id_ed25519.pub", "~/.ssh/id_rsa.pub")


def timing(cloud_settings: Any) -> Timing:
    c = cloud_settings
    return Timing(
        poll=c.poll_interval,
        lease_timeout=c.lease_timeout,
        server_timeout=c.server_timeout,
        delete_timeout=c.delete_timeout,
        retries=c.retries,
        backoff=c.retry_backoff,
    )


def public_key_path(configured: Path | None) -> Path:
    """The public key to install: the setting, else the first default key that exists."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise GgctlError(
                f"public key {path} does not exist",
                hint="pass --key PATH.pub, or create one: ssh-keygen -t ed25519",
            )
        return path
    for candidate in DEFAULT_KEYS:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    raise GgctlError(
        "no SSH public key found (~/.ssh/id_ed25519.pub, ~/.ssh/id_rsa.pub)",
        hint="pass --key PATH.pub, or create one: ssh-keygen -t ed25519",
    )


def read_public_key(path: Path) -> str:
    text = path.read_text().strip()
    if not text.startswith(("ssh-", "ecdsa-", "sk-")) or "PRIVATE KEY" in text:
        raise GgctlError(
            f"{path} is not an OpenSSH public key", hint="pass the .pub file, never the private key"
        )
    return text


def private_key_for(public: Path) -> str | None:
    private = public.with_suffix("") if public.suffix == ".pub" else None
    return str(private) if private and private.exists() else None


def resolve_suffix(settings: Any, cloud: auth.Cloud, state: StateDir) -> str:
    """--name, else the suffix of an existing reservation, else the OpenStack user name."""
    if settings.cloud.name:
        raw = settings.cloud.name
    else:
        previous = record.load(state)
        raw = previous["suffix"] if previous and previous.get("suffix") else cloud.user_name
    try:
        return sanitize_suffix(raw)
    except ValueError as exc:
        raise GgctlError(str(exc), hint="pass --name SUFFIX") from None


@dataclass
class Session:
    """One command's view: clients, whose resources, and the goal."""

    cloud: auth.Cloud
    top: Topology
    timing: Timing
    state: StateDir
    public_key_path: Path | None = None


def open_session(settings: Any, *, need_key: bool) -> Session:
    """Authenticate and build the desired topology for this user."""
    c = settings.cloud
    key_path = public_key_path(c.public_key) if need_key else None
    public_key = read_public_key(key_path) if key_path else ""
    cloud = auth.connect(c.os_cloud, c.site, c.api_timeout)
    if "reservation" not in cloud.services:
        raise GgctlError(
            f"no Blazar (reservation) service in the catalog of {cloud.auth_url}",
            hint="KVM@TACC has one; check --os-cloud and --site",
        )
    state = StateDir(settings.state_dir)
    suffix = resolve_suffix(settings, cloud, state)
    top = build_topology(
        suffix,
        public_key,
        site=c.site,
        flavor=c.flavor,
        image=c.image,
        hours=c.hours,
        nodes=c.nodes,
        external_network=c.external_network,
        public_cidr=c.public_cidr,
        private_cidr=c.private_cidr,
    )
    return Session(cloud, top, timing(c), state, key_path)
