"""`ggctl report` and the plots, on run directories written here with the real writers, so
every number in them is known: time buckets, labels, the table, the CSV, valid PNGs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from ggctl.evaluate.compare import report_table, run_report
from ggctl.evaluate.k8s import DETAIL_COLUMNS
from ggctl.evaluate.monitor import SAMPLE_COLUMNS, Sample
from ggctl.evaluate.plots import COMPARE_PLOTS, RUN_PLOTS, plot_run, plot_runs
from ggctl.evaluate.profile import Profile, Stage
from ggctl.evaluate.report import write_results
from ggctl.evaluate.runs import RunDirError, label_runs, load_run, request_buckets
from ggctl.evaluate.scoring import REQUEST_COLUMNS, RequestRecord, score

T0 = 1_700_000_000.0


def write_run(
    root: Path,
    name: str,
    *,
    speed: float = 1.0,
    strategy: str | None = "hpa",
    kind: str = "evaluate",
    latencies: list[tuple[float, float, bool]] = (),
    samples: list[Sample] = (),
    details: bool = True,
    accuracy: float | None = None,
) -> Path:
    """A run dir: `latencies` are (profile seconds since start, latency ms, ok)."""
    run = root / name
    run.mkdir(parents=True)
    profile = Profile("two", (Stage(20, 2, 1.0), Stage(20, 4, 1.0))).scaled(speed)
    reqs = [
        RequestRecord(
            start=T0 + t / speed,
            offset_s=t / speed,
            stage=profile.stage_at(t / speed) or 0,
            users=2,
            latency_ms=ms,
            status=200 if ok else 503,
            ok=ok,
            error="" if ok else "HTTP 503",
        )
        for t, ms, ok in latencies
    ]
    with (run / "requests.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REQUEST_COLUMNS)
        for r in reqs:
            w.writerow(
                [r.start, r.offset_s, r.stage, r.users, r.latency_ms, r.status, int(r.ok), r.error]
            )
    with (run / "samples.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SAMPLE_COLUMNS)
        for s in samples:
            w.writerow(
                [
                    "" if v is None else v
                    for v in (
                        s.time,
                        s.n_replica,
                        s.cpu_req_core,
                        s.mem_req_KB,
                        s.cpu_lim_core,
                        s.mem_lim_KB,
                        s.cpu_use_core,
                        s.mem_use_KB,
                    )
                ]
            )
    if details and samples:
        with (run / "cluster.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(DETAIL_COLUMNS)
            for s in samples:
                w.writerow(
                    [
                        s.time,
                        s.n_replica,
                        0,
                        0,
                        s.n_replica,
                        s.n_replica,
                        s.n_replica,
                        s.n_replica,
                        s.n_replica,
                        "",
                    ]
                )
    extra = {"kind": kind, "t0": T0}
    if strategy:
        extra["strategy"] = strategy
    if accuracy is not None:
        extra["accuracy"] = {"accuracy": accuracy}
    write_results(
        run / "results.json", score(reqs, list(samples), profile.total_duration_s), profile, **extra
    )
    return run


def cluster_samples(speed: float, replicas: list[int]) -> list[Sample]:
    """One sample per 5 profile seconds, `replicas[i]` pods of 1 core / 2 GiB each."""
    return [
        Sample(
            time=T0 + 5 * (i + 1) / speed,
            n_replica=n,
            cpu_req_core=float(n),
            mem_req_KB=n * 2 * 1024 * 1024.0,
            cpu_lim_core=2.0 * n,
            mem_lim_KB=n * 4 * 1024 * 1024.0,
            cpu_use_core=0.3 * n,
            mem_use_KB=n * 150 * 1024.0,
        )
        for i, n in enumerate(replicas)
    ]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as img:
        img.verify()


def test_buckets_are_5_profile_seconds_whatever_the_speed(tmp_path):
    # Speed 2: a 5 profile-second bucket is 2.5 wall seconds.
    lat = [
        (1, 10, True),
        (2, 30, True),
        (4, 20, True),
        (6, 100, True),
        (7, 0, False),
        (39.99, 50, True),
    ]
    run = load_run(write_run(tmp_path, "r", speed=2.0, latencies=lat))
    b = request_buckets(run)
    assert len(b) == 8  # 40 profile seconds
    assert [x.t for x in b[:2]] == [2.5, 7.5]
    assert (b[0].successes, b[0].failures, b[0].p50_ms) == (3, 0, 20)
    assert b[0].p95_ms == pytest.approx(20 + 0.9 * 10)  # linear between ranks, like numpy
    assert b[0].rate == pytest.approx(3 / 2.5)
    assert (b[1].successes, b[1].failures, b[1].p95_ms) == (1, 1, 100)
    assert b[2].p50_ms is None and b[2].rate == 0
    assert b[-1].successes == 1


def test_report_table_csv_and_one_plot_per_metric(tmp_path):
    a = write_run(
        tmp_path,
        "20250101-000000-evaluate-hpa",
        speed=10,
        latencies=[(t, 40 + t, True) for t in range(0, 40, 2)],
        samples=cluster_samples(10, [1, 1, 2, 3, 3, 2, 1, 1]),
        accuracy=0.8123,
    )
    b = write_run(
        tmp_path,
        "20250101-010000-evaluate-lb",
        speed=10,
        strategy="lb",
        latencies=[(t, 30, True) for t in range(0, 40, 1)],
        samples=cluster_samples(10, [5] * 8),
    )
    out = tmp_path / "report"
    rep = run_report([a, b], out)
    assert [r.label for r in rep.runs] == ["hpa", "lb"]
    for name in COMPARE_PLOTS:
        assert_png(out / f"{name}.png")
    with (out / "report.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["strategy"] for r in rows] == ["hpa", "lb"]
    assert float(rows[1]["memory requested (mean)"]) == pytest.approx(5 * 2 * 1024 * 1024)
    assert float(rows[0]["accuracy"]) == pytest.approx(0.8123) and rows[1]["accuracy"] == ""
    console = Console(width=200, record=True)
    console.print(rep.table)
    text = console.export_text()
    assert "81.23%" in text and "10,240 MiB" in text  # lb: 5 x 2 GiB requested
    assert json.loads((out / "report.json").read_text())["runs"][1]["strategy"] == "lb"


def test_runs_of_one_strategy_are_told_apart_by_directory(tmp_path):
    runs = label_runs(
        [
            load_run(write_run(tmp_path, n, latencies=[(1, 5, True)]))
            for n in ("a-evaluate-hpa", "b-evaluate-hpa")
        ]
    )
    assert [r.label for r in runs] == ["hpa (a-evaluate-hpa)", "hpa (b-evaluate-hpa)"]
    console = Console(width=200, record=True)
    console.print(report_table(runs))
    assert "hpa (a-evaluate-hpa)" in console.export_text()


def test_a_demo_run_and_an_empty_run_still_plot(tmp_path):
    demo_samples = [
        Sample(T0 + i, 1, None, None, None, None, 0.5, 200 * 1024.0) for i in range(1, 8)
    ]
    demo = load_run(
        write_run(
            tmp_path,
            "demo",
            strategy=None,
            kind="demo",
            latencies=[(i, 12, True) for i in range(30)],
            samples=demo_samples,
            details=False,
        )
    )
    empty = load_run(write_run(tmp_path, "empty", latencies=[], samples=[]))
    assert demo.strategy == "demo"
    for run in label_runs([demo, empty]):
        files = plot_run(run, tmp_path / f"plots-{run.label}")
        assert sorted(files) == sorted(RUN_PLOTS)
        for f in files.values():
            assert_png(f)
    for f in plot_runs([demo, empty], tmp_path / "cmp").values():
        assert_png(f)


def test_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="not a finished run"):
        load_run(tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ggctl",
            "--state-dir",
            str(tmp_path / "st"),
            "report",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "not a finished run" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr


def test_report_defaults_to_a_run_dir_in_the_state_dir(tmp_path):
    a = write_run(tmp_path, "x-evaluate-k8s", strategy="k8s", latencies=[(1, 5, True)])
    rep = run_report([a], state_dir=tmp_path / "st", stamp="20250101-000000")
    assert rep.out_dir == tmp_path / "st" / "runs" / "20250101-000000-report"
    assert (rep.out_dir / "replicas.png").is_file()
