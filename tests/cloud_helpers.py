"""Helpers for provisioning tests against the fake cloud: settings with fast waits,
credentials in the environment, counting what a user holds."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from ggctl.config import load_settings

FAST = {
    "poll_interval": 0.02,
    "retry_backoff": 0.01,
    "retries": 3,
    "lease_timeout": 15,
    "server_timeout": 15,
    "delete_timeout": 15,
}
# What every reserve makes for one user (fake world kinds → count).
FULL = {
    "leases": 1,
    "keypairs": 1,
    "networks": 2,
    "subnets": 2,
    "routers": 1,
    "security_groups": 1,
    "ports": 6,
    "servers": 3,
    "floatingips": 1,
}
OURS = (
    "leases",
    "keypairs",
    "networks",
    "subnets",
    "routers",
    "security_groups",
    "ports",
    "servers",
    "floatingips",
)


def clean_os_env(monkeypatch: Any, tmp_path: Path) -> None:
    """No OS_*/GGCTL_* from the developer's shell; no user clouds.yaml or config."""
    for name in list(os.environ):
        if name.startswith(("OS_", "GGCTL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir(exist_ok=True)


def make_key(tmp_path: Path, user: str = "alice") -> Path:
    """A public key file (the private half is never needed by reserve)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pub = tmp_path / f"{user}_ed25519.pub"
    if not pub.exists():
        key = (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        )
        pub.write_text(f"{key.decode()} {user}@laptop\n")
    return pub


def settings(tmp_path: Path, user: str = "alice", state: str | None = None, **cloud: Any) -> Any:
    """Settings for `user`: own state dir and key, fast waits."""
    return load_settings(
        None,
        {
            "state_dir": tmp_path / f"state-{state or user}",
            "cloud": {**FAST, "public_key": make_key(tmp_path, user), **cloud},
        },
    )


def use_env(monkeypatch: Any, fake: Any, user: str = "alice", **kw: Any) -> None:
    """Put `user`'s OS_* credentials in the environment (dropping any others)."""
    for name in list(os.environ):
        if name.startswith("OS_"):
            monkeypatch.delenv(name)
    for key, value in fake.env(user, **kw).items():
        monkeypatch.setenv(key, value)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def held(fake: Any, user: str | None = None) -> dict[str, int]:
    """What exists in the fake of the kinds reserve makes ({kind: n}, zeros left out)."""
    owner = {"user": user} if user else {}
    counts = {k: fake.world.count(k, **owner) for k in OURS if k != "ports"}
    # DHCP and router-interface ports belong to Neutron and go with their network/router.
    counts["ports"] = sum(
        1
        for p in fake.world.resources("ports", **owner)
        if not (p.get("device_owner") or "").startswith("network:")
    )
    return {k: v for k, v in counts.items() if v}


def mutations(fake: Any) -> list[str]:
    """Mutating requests the fake has seen (method path)."""
    return [
        f"{e.method} {e.path}"
        for e in fake.world.log
        if e.method in ("POST", "PUT", "DELETE", "PATCH") and "/auth/tokens" not in e.path
    ]


def cli_setup(fake: Any, monkeypatch: Any, tmp_path: Path) -> tuple[Path, Path]:
    """The user's side of a CLI test against the fake cloud: a clean environment, a
    clouds.yaml entry `fake`, fast retries, a wide terminal. Returns (state dir, key)."""
    clean_os_env(monkeypatch, tmp_path)
    clouds = fake.clouds_yaml(tmp_path / "clouds.yaml")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    monkeypatch.setenv("OS_CLOUD", "fake")
    for key, value in FAST.items():
        monkeypatch.setenv(f"GGCTL_CLOUD__{key.upper()}", str(value))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "state", make_key(tmp_path)


def ggctl(argv: list[str], capsys: Any) -> tuple[Any, str, str]:
    """`ggctl ARGV` through the CLI's own entry point: (exit code, stdout, stderr)."""
    import pytest

    from ggctl.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def argv_for(command: str, key: Path) -> list[str]:
    """The arguments that run a cloud command to its first API call."""
    return {
        "reserve": ["reserve", "--key", str(key)],
        "status": ["status"],
        "extend": ["extend", "--hours", "1"],
        "teardown": ["teardown", "--yes"],
    }[command]
