"""`ggctl demo`: profile choice, start-up errors, and (slow) the whole run end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ggctl.config import load_settings
from ggctl.errors import GgctlError
from ggctl.evaluate.scoring import read_request_log
from ggctl.local.demo import DemoError, demo_profile, free_port, run_demo


def settings_for(tmp_path: Path, **demo):
    return load_settings(None, {"state_dir": tmp_path / "state", "quiet": True, "demo": demo})


def test_default_profile_is_the_challenge_in_two_minutes(tmp_path: Path):
    p = demo_profile(settings_for(tmp_path))
    assert p.name == "challenge" and p.speed == 15
    assert p.total_duration_s == pytest.approx(120)
    assert len(p.stages) == 9


def test_profile_options_compose(tmp_path: Path):
    p = demo_profile(settings_for(tmp_path, speed=60, duration=10, max_users=25))
    assert p.total_duration_s == pytest.approx(10)
    assert p.stages[0].max_delay_s == pytest.approx(100 / 60)
    # 10 s at 60x = the first 10 profile minutes: stages 1-4 (5+2+2+1 minutes).
    assert len(p.stages) == 4 and p.max_users == 20
    assert demo_profile(settings_for(tmp_path, max_users=25)).max_users == 25


def test_unknown_profile_is_a_user_error(tmp_path: Path):
    with pytest.raises(GgctlError, match="unknown profile"):
        demo_profile(settings_for(tmp_path, profile="no-such-profile"))


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_broken_model_fails_with_the_server_log(tmp_path: Path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    settings = load_settings(
        None, {"state_dir": tmp_path / "state", "quiet": True, "serve": {"model": bad}}
    )
    # "exited": the server's exit was seen, not the 60 s readiness wait running out
    with pytest.raises(DemoError, match="exited") as err:
        run_demo(settings, ready_timeout_s=60)
    assert "server.log" in (err.value.hint or "")
    assert "broken.onnx" in (err.value.hint or "")


def test_a_missing_model_is_a_user_error(tmp_path: Path):
    settings = load_settings(
        None,
        {
            "state_dir": tmp_path / "state",
            "quiet": True,
            "serve": {"model": tmp_path / "nope.onnx"},
        },
    )
    with pytest.raises(DemoError, match="does not exist"):
        run_demo(settings)


# ------------------------------------------------------------------------- end to end


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["COLUMNS"] = "160"
    return env


def _processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (the demo's state dir)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(path) in cmdline and proc.pid != os.getpid():
            found.append(cmdline)
    return found


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_end_to_end_with_keep_serving(tmp_path: Path, demo_model: Path):
    import requests

    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "ggctl",
        "--state-dir",
        str(tmp_path / "state"),
        "demo",
        "--model",
        str(demo_model),
        "--speed",
        "60",
        "--duration",
        "20",
        "--json",
        str(out),
        "--keep-serving",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path)
    )
    try:
        deadline = time.monotonic() + 90
        stderr_lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            stderr_lines.append(line)
            if "still serving" in line or time.monotonic() > deadline:
                break
        assert any("still serving" in ln for ln in stderr_lines), "".join(stderr_lines)
        doc = json.loads(out.read_text())
        url = doc["url"]
        # --keep-serving: the service answers after the load test ended.
        r = requests.get(url + "/test", timeout=10)
        assert r.status_code == 200 and "class" in r.json()
        proc.send_signal(signal.SIGINT)
        stdout, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, rest
    assert not _port_open(url), "the server outlived the demo"

    scores = doc["scores"]
    assert scores["duration_s"] == pytest.approx(20)
    assert scores["failures"] == 0, scores["errors"]
    assert scores["successes"] > 100
    assert scores["transaction_rate"] == pytest.approx(scores["successes"] / 20)
    assert 0 < scores["p50_ms"] <= scores["p95_ms"] <= scores["max_ms"] < 10_000
    assert scores["mean_mem_used_KB"] > 20 * 1024  # a loaded model is tens of MB at least
    assert scores["mean_cpu_used_cores"] > 0.1
    assert scores["samples"] >= 20  # 5 s of profile time at 60x: every 0.1 s floor

    (run_dir,) = (tmp_path / "state" / "runs").glob("*-demo")
    log = read_request_log(run_dir / "requests.csv")
    assert len(log) == scores["requests"] == doc["loadgen"]["locust_totals"]["num_requests"]
    assert sum(r.latency_ms for r in log) / len(log) == pytest.approx(scores["mean_response_ms"])
    for name in ("samples.csv", "stages.csv", "results.json", "server.log", "profile.json"):
        assert (run_dir / name).is_file(), name
    assert 0 < doc["loadgen"]["cpu_cores"] < 2
    assert "transaction rate" in stdout and str(run_dir) in stdout.replace("\n", "")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_ctrl_c_during_the_load_stops_everything(tmp_path: Path, demo_model: Path):
    cmd = [
        sys.executable,
        "-m",
        "ggctl",
        "--state-dir",
        str(tmp_path / "state"),
        "demo",
        "--model",
        str(demo_model),
        "--speed",
        "15",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path)
    )
    try:
        url = None
        for line in proc.stderr:  # type: ignore[union-attr]
            if "service ready at" in line:
                url = line.split("service ready at ")[1].split()[0]
                break
        assert url, "the demo never reported a ready service"
        time.sleep(3)  # into the load test
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, rest
    assert "Interrupted" in rest or "Aborted" in rest
    assert not _port_open(url), "the server outlived the demo"
    assert not _processes_under(tmp_path), "a child process outlived the demo"
