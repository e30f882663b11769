"""One typed settings object: defaults → TOML config file → GGCTL_* environment → flags."""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ggctl.errors import GgctlError

ENV_PREFIX = "GGCTL_"


class ConfigError(GgctlError):
    """A configuration file or value that cannot be used; the message says which and why."""


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("ggctl"))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir("ggctl")) / "config.toml"


class Section(BaseModel):
    """A [section] of the config file; a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ServeSettings(Section):
    """How the classifier service runs (`ggctl serve`, `ggctl demo`, the container)."""

    model: Path | None = Field(None, description="ONNX model; None means the built-in demo model")
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="gunicorn worker processes")
    threads: int = Field(4, ge=1, le=256, description="request threads per worker")
    ort_threads: int = Field(
        0, ge=0, le=64, description="ONNX Runtime intra-op threads per inference (0: 2 on 2+ CPUs)"
    )
    max_inflight: int = Field(
        0, ge=0, le=256, description="concurrent inferences per worker (0: fill the CPUs)"
    )
    max_upload_mb: float = Field(10.0, gt=0, le=1024)
    timeout: int = Field(30, ge=1, description="gunicorn worker timeout, seconds")
    keepalive: int = Field(
        5, ge=0, description="seconds an idle connection stays open (0: one request each)"
    )
    master: Literal["auto", "yes", "no", "1", "0"] = Field(
        "auto", description="gunicorn's master process (auto: none for one worker)"
    )
    ort_arena: bool = Field(True, description="ONNX Runtime's CPU memory arena")


class DemoSettings(Section):
    """The local load test of `ggctl demo`."""

    profile: str = "challenge"
    speed: float = Field(15.0, gt=0, description="time compression of the load profile")
    duration: float | None = Field(None, gt=0, description="cut the run after this many seconds")
    sample_interval: float = Field(5.0, gt=0, description="resource sample period, profile seconds")
    max_users: int | None = Field(None, ge=1, description="cap concurrent users (small machines)")


class CloudSettings(Section):
    """Where and what `ggctl reserve` reserves on Chameleon. Credentials never live here:
    they come from clouds.yaml (`os_cloud`) or OS_* variables, read by ggctl.provision.auth."""

    site: str = Field("KVM@TACC", description="Chameleon site (the OpenStack region)")
    flavor: str = Field("m1.large", description="flavor reserved through the Blazar lease")
    image: str = Field("CC-Ubuntu24.04", description="Glance image of the three nodes")
    hours: int = Field(6, ge=1, le=24 * 183, description="lease length for a new reservation")
    nodes: int = Field(3, ge=1, le=9, description="servers node-0..node-N-1")
    name: str | None = Field(
        None, description="suffix on every resource name (default: the OpenStack user name)"
    )
    os_cloud: str | None = Field(None, description="clouds.yaml entry (default: $OS_CLOUD)")
    public_key: Path | None = Field(
        None, description="SSH public key (default: ~/.ssh/id_ed25519.pub, else id_rsa.pub)"
    )
    external_network: str = Field("public", description="Neutron network floating IPs come from")
    public_cidr: str = "192.168.10.0/24"
    private_cidr: str = "192.168.1.0/24"
    poll_interval: float = Field(5.0, gt=0, description="seconds between status polls")
    lease_timeout: float = Field(600.0, gt=0, description="seconds to wait for the lease")
    server_timeout: float = Field(1200.0, gt=0, description="seconds to wait for ACTIVE")
    delete_timeout: float = Field(600.0, gt=0, description="seconds to wait for a deletion")
    api_timeout: float = Field(
        60.0,
        gt=0,
        description="seconds one cloud API request may go unanswered (connect or reply) "
        "before it fails; a timed-out request is retried once",
    )
    retries: int = Field(5, ge=0, le=20, description="retries of a transient API error")
    retry_backoff: float = Field(2.0, ge=0, description="first retry delay, doubled each time")


class DeploySettings(Section):
    """Where and how `ggctl deploy` puts the service on Kubernetes."""

    strategy: Literal["k8s", "lb", "hpa", "optimized"] = Field(
        "optimized", description="k8s, lb, hpa (the course's) or optimized (ours)"
    )
    namespace: str = Field("default", min_length=1, max_length=63)
    image: str | None = Field(
        None,
        description="image reference (default: the last `ggctl build`, else "
        "node-0:5000/ml-app:latest)",
    )
    kubeconfig: Path | None = Field(
        None,
        description="kubeconfig (default: <state dir>/kubeconfig, else $KUBECONFIG "
        "or ~/.kube/config)",
    )
    timeout: float = Field(600.0, gt=0, description="seconds to wait for the rollout")


class ClusterSettings(Section):
    """How `ggctl cluster` runs Ansible. Cluster choices (Kubernetes minor, CNI, ports)
    are role variables: set them in extra_vars (see playbooks/group_vars/all/ggctl.yml)."""

    inventory: Path | None = Field(
        None, description="Ansible inventory (default: <state dir>/inventory.yaml from reserve)"
    )
    forks: int = Field(10, ge=1, le=100, description="hosts Ansible works on in parallel")
    tunnel_port: int = Field(
        16443, ge=1, le=65535, description="local port of the SSH tunnel to the API server"
    )
    extra_vars: dict[str, Any] = Field(
        default_factory=dict, description="Ansible extra-vars, e.g. cluster_kube_version"
    )
    dockerhub_mirror: str = Field(
        "",
        pattern=r"^(https?://[^/\s]+/?)?$",
        description="an existing Docker Hub mirror for every node (e.g. the class's shared "
        "cache, http://HOST:PORT) instead of the cache ggctl runs on node-0",
    )


class Settings(BaseSettings):
    """All of ggctl's settings. Secrets never live here: credentials stay with their owners."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    verbose: int = Field(0, ge=0, le=3)
    quiet: bool = False
    serve: ServeSettings = Field(default_factory=ServeSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    cloud: CloudSettings = Field(default_factory=CloudSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @field_validator("state_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: flags (init kwargs), then GGCTL_* variables, then the TOML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


_config_path: ContextVar[Path | None] = ContextVar("ggctl_config_path", default=None)


def resolve_config_file(config_file: Path | None) -> Path | None:
    """The config file to read: the flag, else $GGCTL_CONFIG, else the user's default if present."""
    explicit = config_file or (
        Path(os.environ[f"{ENV_PREFIX}CONFIG"]) if os.environ.get(f"{ENV_PREFIX}CONFIG") else None
    )
    if explicit is not None:
        explicit = explicit.expanduser()
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    default = default_config_file()
    return default if default.is_file() else None


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings: defaults, then the TOML file, then GGCTL_* variables, then `overrides`.

    `overrides` holds the command-line flags, nested like the file ({"serve": {"port": 8000}});
    None values mean "flag not given" and are dropped.
    """
    path = resolve_config_file(config_file)
    if path is not None:
        _check_toml(path)
    token = _config_path.set(path)
    try:
        return Settings(**_drop_none(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None
    finally:
        _config_path.reset(token)


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def _explain(exc: ValidationError, path: Path | None) -> str:
    where = f"config file {path}, " if path else ""
    lines = [f"invalid settings (from {where}GGCTL_* variables or flags):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)
