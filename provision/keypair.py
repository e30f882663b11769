"""The user's SSH public key as a Nova key pair (Nova key pairs have no description: the
name, which carries the suffix, is what marks it as ours)."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found


def _keypair(k: Any) -> Found:
    return Found(
        "keypair",
        k.name,
        k.name,
        "",
        {
            "public_key": (k.public_key or "").strip(),
            "fingerprint": k.fingerprint or "",
        },
    )


def list_keypairs(conn: Any, name: str) -> list[Found]:
    """Our key pair, found by its exact name."""
    return [_keypair(k) for k in conn.compute.keypairs() if k.name == name]


def create_keypair(conn: Any, name: str, public_key: str) -> Found:
    return _keypair(conn.compute.create_keypair(name=name, public_key=public_key))


def delete_keypair(conn: Any, found: Found) -> None:
    conn.compute.delete_keypair(found.name, ignore_missing=True)


def keypair_exists(conn: Any, found: Found) -> bool:
    return any(k.name == found.name for k in conn.compute.keypairs())
