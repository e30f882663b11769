"""`ggctl predict` end to end: a real calibration of the demo model on loopback (bounded:
one server, 80 + a few seconds of requests), a small profile, the run directory in
`ggctl evaluate`'s shapes, the cache, a sweep, and `ggctl report` reading it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ggctl.evaluate.runs import load_run


def ggctl(tmp_path: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    env["GGCTL_CONFIG"] = ""
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "ggctl", "--state-dir", str(tmp_path / "state"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def small_profile(tmp_path: Path) -> Path:
    p = tmp_path / "small.yaml"
    p.write_text(
        "name: small\nstages:\n"
        "  - {duration_s: 60, users: 5, max_delay_s: 2}\n"
        "  - {duration_s: 60, users: 10, max_delay_s: 0.5}\n"
    )
    return p


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_predict_end_to_end(tmp_path: Path, demo_model: Path, small_profile: Path):
    out = tmp_path / "p.json"
    r = ggctl(
        tmp_path,
        "predict",
        "--strategy",
        "k8s",
        "--model",
        str(demo_model),
        "--profile",
        str(small_profile),
        "--json",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    # Every number is printed with its source.
    for source in ("measured (calibration", "strategy k8s", "Kubernetes default", "assumed"):
        assert source in r.stdout
    assert "k8s (predicted)" in r.stdout
    doc = json.loads(out.read_text())
    (pred,) = doc["predictions"]
    run = load_run(Path(pred["run_dir"]))
    s = run.scores
    assert run.results["kind"] == "predict" and run.strategy == "k8s (predicted)"
    assert s["duration_s"] == 120 and s["successes"] > 100 and s["failures"] == 0
    # The course's k8s pod: 2Gi requested, whatever the load.
    assert s["mean_mem_requested_KB"] == pytest.approx(2048 * 1024)
    assert 20 * 1024 < s["mean_mem_used_KB"] < 2048 * 1024
    assert len(run.samples) == 120 // 5 and all(x.n_replica == 1 for x in run.samples)
    assert len(run.requests) == s["requests"]
    for name in ("requests.csv", "samples.csv", "stages.csv", "results.json", "latency.png"):
        assert (run.path / name).is_file(), name
    cal_files = list((tmp_path / "state" / "predict").glob("calibration-*.json"))
    assert len(cal_files) == 1
    cal = json.loads(cal_files[0].read_text())
    assert cal["capacity_rps"] > 0 and len(cal["service_ms"]) == 80
    # Memory as metrics-server reports it, wherever this machine lets us make a cgroup.
    from ggctl.predict.footprint import MemoryCgroup

    probe = MemoryCgroup.create("ggctl-test-probe")
    if probe is not None:
        probe.remove()
        assert cal["mem_method"] == "cgroup working set"
        assert "cgroup working set after load" in r.stdout
    stamp = cal_files[0].stat().st_mtime_ns

    # Second run: the cached calibration, a sweep, no plots; `report` reads the runs back.
    r2 = ggctl(
        tmp_path,
        "predict",
        "--strategy",
        "k8s",
        "--model",
        str(demo_model),
        "--profile",
        str(small_profile),
        "--no-plots",
        "--sweep",
        "service_ms_mean=5,500",
        "--json",
        str(out),
    )
    assert r2.returncode == 0, r2.stderr
    assert cal_files[0].stat().st_mtime_ns == stamp, "the calibration was not reused"
    fast, slow = json.loads(out.read_text())["predictions"]
    assert fast["sweep"] == ["service_ms_mean", "5"]
    assert fast["scores"]["mean_response_ms"] < slow["scores"]["mean_response_ms"]
    assert fast["scores"]["transaction_rate"] > slow["scores"]["transaction_rate"]
    rep = ggctl(
        tmp_path, "report", pred["run_dir"], fast["run_dir"], "--out", str(tmp_path / "rep")
    )
    assert rep.returncode == 0, rep.stderr
    assert "k8s (predicted)" in rep.stdout and "service_ms_mean=5" in rep.stdout


def test_unknown_parameter_is_one_clear_error(tmp_path: Path, demo_model: Path):
    r = ggctl(
        tmp_path,
        "predict",
        "--strategy",
        "hpa",
        "--model",
        str(demo_model),
        "--set",
        "warp_factor=9",
        timeout=120,
    )
    assert r.returncode != 0
    assert "warp_factor" in r.stderr and "Traceback" not in r.stderr
    assert "target_cpu_percent" in r.stderr  # the hint lists what can be set
    assert not (tmp_path / "state" / "predict").exists()  # failed before measuring


def test_unknown_strategy_is_one_clear_error(tmp_path: Path):
    r = ggctl(tmp_path, "predict", "--strategy", "k9s", timeout=120)
    assert r.returncode != 0 and "k9s" in r.stderr and "Traceback" not in r.stderr
