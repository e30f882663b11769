"""A pod's footprint: the working set as metrics-server computes it, one process where one
worker serves, `ggctl serve` as light as the container, and ONNX Runtime's arena switch."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_entrypoint, stop_process

from ggctl.app.server import ServeOptions
from ggctl.ports import LOOPBACK, free_port
from ggctl.predict.footprint import (
    MIB,
    MemoryCgroup,
    breakdown_bytes,
    evict_page_cache,
    working_set_bytes,
)

# --------------------------------------------------------------------------- working set


def test_working_set_is_usage_minus_inactive_file_v2(tmp_path: Path):
    (tmp_path / "memory.current").write_text(f"{300 * MIB}\n")
    (tmp_path / "memory.stat").write_text(
        f"anon {200 * MIB}\nfile {100 * MIB}\nactive_file {30 * MIB}\n"
        f"inactive_file {70 * MIB}\nfile_mapped {20 * MIB}\n"
    )
    assert working_set_bytes(tmp_path) == 230 * MIB
    assert breakdown_bytes(tmp_path)["inactive_file"] == 70 * MIB


def test_working_set_is_usage_minus_total_inactive_file_v1(tmp_path: Path):
    (tmp_path / "memory.usage_in_bytes").write_text(f"{300 * MIB}\n")
    # v1 lists the cgroup's own counters and then the hierarchy's (total_*): cAdvisor uses
    # the total, which includes child cgroups.
    (tmp_path / "memory.stat").write_text(
        f"inactive_file {10 * MIB}\ntotal_rss {200 * MIB}\ntotal_inactive_file {70 * MIB}\n"
    )
    assert working_set_bytes(tmp_path) == 230 * MIB
    assert breakdown_bytes(tmp_path)["anon"] == 200 * MIB


def test_working_set_never_below_zero(tmp_path: Path):
    (tmp_path / "memory.current").write_text("100\n")
    (tmp_path / "memory.stat").write_text("inactive_file 4096\n")
    assert working_set_bytes(tmp_path) == 0


_ALLOCATE = """
import sys, time
block = bytearray(64 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page: resident and charged
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.mark.timeout(60)
def test_working_set_of_a_real_cgroup_counts_what_its_process_touched():
    cg = MemoryCgroup.create("ggctl-test")
    if cg is None:
        pytest.skip("no cgroup can be made here (needs root and the memory controller)")
    proc = subprocess.Popen(
        cg.wrap([sys.executable, "-c", _ALLOCATE]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        assert cg.pids() == [proc.pid]  # sh exec'd the command inside the cgroup
        ws = cg.working_set_mib()
        # 64 MiB touched, plus the interpreter's own heap (a few MiB; its shared library
        # pages are charged to whoever read them first).
        assert 64 <= ws < 64 + 40, ws
        assert cg.breakdown_mib()["anon"] >= 64
    finally:
        proc.communicate("\n", timeout=30)
        cg.remove()
    assert not cg.path.exists()


@pytest.mark.timeout(60)
def test_evicted_file_is_charged_to_the_cgroup_that_reads_it(tmp_path: Path):
    cg = MemoryCgroup.create("ggctl-test")
    if cg is None:
        pytest.skip("no cgroup can be made here (needs root and the memory controller)")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(16 * MIB))
    os.sync()
    try:
        for evict, at_least in ((False, 0), (True, 15)):
            if evict:
                assert evict_page_cache([tmp_path]) == 1
            before = breakdown_bytes(cg.path)["file"]
            subprocess.run(
                cg.wrap(["cat", str(data)]), stdout=subprocess.DEVNULL, check=True, timeout=30
            )
            charged = (breakdown_bytes(cg.path)["file"] - before) / MIB
            if evict:
                assert charged >= at_least, charged
            else:  # written by this process: cached, charged here, the reader pays nothing
                assert charged < 1, charged
    finally:
        cg.remove()


# --------------------------------------------------------------------------- options


def test_serve_options_round_trip_through_the_environment():
    opts = ServeOptions(model="/m.onnx", workers=1, threads=8, keepalive=0, master="no")
    opts.ort_arena = False
    again = ServeOptions.from_env(opts.to_env())
    assert again == opts
    assert opts.to_env()["GGCTL_SERVE__ORT_ARENA"] == "0"


def test_one_worker_runs_without_a_master_unless_asked():
    assert ServeOptions(workers=1).single_process
    assert not ServeOptions(workers=2).single_process
    assert not ServeOptions(workers=1, master="yes").single_process
    assert ServeOptions(workers=1, master="no").single_process
    with pytest.raises(ValueError, match="1 worker"):
        _ = ServeOptions(workers=2, master="no").single_process


def test_ort_arena_can_be_switched_off(demo_model: Path, monkeypatch):
    from ggctl.app import create_app

    def arena(app) -> bool:
        sess = app.extensions["ggctl.classifier"].session
        return sess.get_session_options().enable_cpu_mem_arena

    assert arena(create_app(demo_model, warmup=False)) is True
    assert arena(create_app(demo_model, warmup=False, ort_arena=False)) is False
    monkeypatch.setenv("GGCTL_SERVE__ORT_ARENA", "0")
    assert arena(create_app(demo_model, warmup=False)) is False


# --------------------------------------------------------------------------- processes


def _children(pid: int) -> list[int]:
    import psutil

    return [c.pid for c in psutil.Process(pid).children(recursive=True)]


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.timeout(240)
def test_one_worker_is_served_by_one_process_that_stops_gracefully(demo_model: Path):
    proc, port = start_entrypoint(demo_model, {})
    try:
        assert _children(proc.pid) == []  # no gunicorn master: this process serves
        assert "onnxruntime_pybind11_state" in _maps(proc.pid)
        # A request under way when SIGTERM comes (the kubelet's stop) is still answered:
        # half its headers are in, then the signal, then the rest.
        s = socket.create_connection((LOOPBACK, port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)  # accepted and waiting for the rest of the request
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        s.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        s.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)
    # Asked for, the master is still there: it forks the worker, and holds no ORT itself.
    proc, _ = start_entrypoint(demo_model, {"GGCTL_SERVE__MASTER": "1"})
    try:
        (worker,) = _children(proc.pid)
        assert "onnxruntime_pybind11_state" not in _maps(proc.pid)
        assert "onnxruntime_pybind11_state" in _maps(worker)
    finally:
        stop_process(proc)


@pytest.mark.timeout(120)
def test_one_process_outlives_the_shell_that_started_it(demo_model: Path):
    """Started in the background by a shell that exits once it serves, the server keeps
    serving, as gunicorn's master did (a worker alone takes its parent's exit for its
    master's death)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env.update(GGCTL_SERVE__HOST=LOOPBACK, GGCTL_SERVE__PORT=str(port))
    script = '"$0" -m ggctl.app.server "$1" >/dev/null 2>&1 & echo $!; read -r _'
    shell = subprocess.Popen(
        ["sh", "-c", script, sys.executable, str(demo_model)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = int(shell.stdout.readline())  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _status(port, "/readyz") != 200:
            time.sleep(0.05)
        assert _status(port, "/readyz") == 200
        shell.communicate("\n", timeout=30)  # the shell exits: the server is reparented
        time.sleep(2.5)  # the worker looks at its parent once a second
        assert _status(port, "/test") == 200
    finally:
        if shell.poll() is None:
            shell.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def _status(port: int, path: str) -> int | None:
    try:
        c = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        c.request("GET", path)
        status = c.getresponse().status
        c.close()
        return status
    except OSError:
        return None


@pytest.mark.timeout(240)
def test_ggctl_serve_leaves_the_command_line_behind(start_server, demo_model: Path):
    """The process that serves is the container's entrypoint, not the CLI that checked the
    model: no `onnx` (the check's), no ggctl command line, no ONNX Runtime in a master."""
    with start_server(demo_model, args=["--workers", "2"]) as srv:
        pid = srv.proc.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"ggctl.app.server" in cmdline and b"serve" not in cmdline, cmdline
        master = _maps(pid)
        assert "onnx_cpp2py_export" not in master
        # What the image's ENV sets for the C library reaches the server (read before Python).
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environ
        assert "onnxruntime_pybind11_state" not in master
        workers = _children(pid)
        assert len(workers) == 2
        # Ready means one worker answers; the other may still be loading its model.
        deadline = time.monotonic() + 120  # a hang detector only
        while time.monotonic() < deadline and not all(
            "onnxruntime_pybind11_state" in _maps(w) for w in workers
        ):
            time.sleep(0.2)
        assert all("onnxruntime_pybind11_state" in _maps(w) for w in workers)
        assert srv.get("/test").status_code == 200
    with start_server(demo_model) as srv:  # one worker: one process, the CLI gone too
        assert _children(srv.proc.pid) == []
        assert "onnx_cpp2py_export" not in _maps(srv.proc.pid)
        assert srv.get("/test").status_code == 200
