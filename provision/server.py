"""Nova servers node-0..2, booted on the lease's reserved flavor with pre-made ports."""

from __future__ import annotations

from typing import Any

from ggctl.provision.actual import Found
from ggctl.provision.errors import find_or_none
from ggctl.provision.topology import OWNER_TAG, ServerSpec, is_ours


def _addresses(server: Any) -> list[dict[str, str]]:
    out = []
    for net, addrs in (server.addresses or {}).items():
        for a in addrs:
            out.append(
                {
                    "network": net,
                    "addr": a.get("addr", ""),
                    "type": a.get("OS-EXT-IPS:type", "fixed"),
                }
            )
    return out


def _server(s: Any) -> Found:
    fault = s.fault or {}
    return Found(
        "server",
        s.id,
        s.name,
        s.status or "",
        {
            "fault": fault.get("message", "") if isinstance(fault, dict) else str(fault),
            "addresses": _addresses(s),
            "node": (s.metadata or {}).get("ggctl-node", ""),
        },
    )


def list_servers(conn: Any, suffix: str) -> list[Found]:
    """Our servers: those whose metadata carries our marker."""
    return [
        _server(s)
        for s in conn.compute.servers(details=True)
        if is_ours((s.metadata or {}).get(OWNER_TAG), suffix)
    ]


def create_server(
    conn: Any,
    spec: ServerSpec,
    *,
    image_id: str,
    flavor_id: str,
    port_ids: list[str],
    key_name: str,
    marker: str,
) -> Found:
    """Ask Nova for the server (202: it boots in the background; apply waits)."""
    s = conn.compute.create_server(
        name=spec.name,
        image_id=image_id,
        flavor_id=flavor_id,
        key_name=key_name,
        networks=[{"port": p} for p in port_ids],
        metadata={OWNER_TAG: marker, "ggctl-node": spec.node},
    )
    return Found("server", s.id, spec.name, s.status or "BUILD", {"node": spec.node})


def get_server(conn: Any, found: Found) -> Found | None:
    """The server now, or None once it is gone."""
    s = find_or_none(conn.compute.find_server, found.id)
    if s is None:
        return None
    if s.status is None or s.addresses is None:  # find_server may return a summary
        s = conn.compute.get_server(s.id)
    return _server(s)


def delete_server(conn: Any, found: Found) -> None:
    conn.compute.delete_server(found.id, ignore_missing=True)


def server_exists(conn: Any, found: Found) -> bool:
    return get_server(conn, found) is not None
