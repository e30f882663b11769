"""GGCTL_SERVE__KEEPALIVE: the container's entrypoint closes every connection after its
response when it is 0 (so kube-proxy balances each request), keeps it open otherwise."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import stop_process

from ggctl.ports import LOOPBACK, free_port


def _serve(model: Path, keepalive: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env.update(GGCTL_SERVE__HOST=LOOPBACK, GGCTL_SERVE__PORT=str(port), ORT_DISABLE_TELEMETRY="1")
    if keepalive is not None:
        env["GGCTL_SERVE__KEEPALIVE"] = keepalive
    proc = subprocess.Popen(
        [sys.executable, "-m", "ggctl.app.server", str(model)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                c.close()
                return proc, port
        except OSError:
            time.sleep(0.1)
    stop_process(proc)
    raise AssertionError("the server did not become ready")


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
        proc, port = _serve(model, keepalive)
        try:
            header, reused = _two_requests(port)
        finally:
            stop_process(proc)
        assert (header == "close") is want_close, (keepalive, header)
        assert reused is not want_close, keepalive
