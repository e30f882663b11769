"""GGCTL_SERVE__KEEPALIVE: the container's entrypoint closes every connection after its
response when it is 0 (so kube-proxy balances each request), keeps it open otherwise."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
from conftest import start_entrypoint, stop_process

from ggctl.ports import LOOPBACK


def _two_requests(port: int) -> tuple[str | None, bool]:
    """The first response's Connection header, and whether the same socket served a second."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    conn.request("GET", "/healthz")
    r1 = conn.getresponse()
    r1.read()
    sock = conn.sock
    conn.request("GET", "/healthz")  # http.client reconnects if the server closed it
    conn.getresponse().read()
    reused = sock is not None and conn.sock is sock
    conn.close()
    return r1.getheader("Connection"), reused


@pytest.mark.timeout(240)
def test_keepalive_zero_closes_each_connection(demo_model: Path):
    model = demo_model
    for keepalive, want_close in ((None, False), ("0", True)):
        proc, port = start_entrypoint(
            model, {} if keepalive is None else {"GGCTL_SERVE__KEEPALIVE": keepalive}
        )
        try:
            header, reused = _two_requests(port)
        finally:
            stop_process(proc)
        assert (header == "close") is want_close, (keepalive, header)
        assert reused is not want_close, keepalive
