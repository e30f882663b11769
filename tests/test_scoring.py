"""Scores from a hand-made request log and samples, against numbers worked out by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from ggctl.evaluate.monitor import Sample
from ggctl.evaluate.profile import Profile, Stage
from ggctl.evaluate.report import scores_table, stages_table, write_results, write_stages_csv
from ggctl.evaluate.scoring import (
    REQUEST_COLUMNS,
    RequestRecord,
    percentile,
    read_request_log,
    score,
)


def req(
    stage: int, latency_ms: float, ok: bool = True, status: int = 200, error: str = ""
) -> RequestRecord:
    return RequestRecord(
        start=1_700_000_000.0 + stage,
        offset_s=float(stage),
        stage=stage,
        users=20,
        latency_ms=latency_ms,
        status=status,
        ok=ok,
        error=error,
    )


def sample(mem_kb: float, cpu: float, req_kb: float | None = None) -> Sample:
    return Sample(
        time=0.0,
        n_replica=1,
        cpu_req_core=None,
        mem_req_KB=req_kb,
        cpu_lim_core=None,
        mem_lim_KB=None,
        cpu_use_core=cpu,
        mem_use_KB=mem_kb,
    )


# Stage 0: one slow success; stage 1: three fast ones; plus two failures that must not
# count toward the response time.
LOG = [
    req(0, 1000.0),
    req(1, 100.0),
    req(1, 100.0),
    req(1, 100.0),
    req(1, 5000.0, ok=False, status=500, error="HTTP 500"),
    req(0, 30000.0, ok=False, status=0, error="ConnectionRefusedError: refused"),
]


def test_weighted_mean_is_over_requests_not_stage_means():
    s = score(LOG, [], duration_s=8.0)
    assert s.successes == 4 and s.failures == 2 and s.requests == 6
    # (1000 + 3 x 100) / 4 requests = 325 ms ...
    assert s.mean_response_ms == pytest.approx(325.0)
    # ... which the mean of the per-stage means, (1000 + 100) / 2 = 550 ms, is not.
    stage_means = [st.mean_response_ms for st in s.stages]
    assert stage_means == [pytest.approx(1000.0), pytest.approx(100.0)]
    assert sum(stage_means) / len(stage_means) == pytest.approx(550.0)
    assert s.max_ms == 1000.0


def test_transaction_rate_uses_the_profile_duration():
    assert score(LOG, [], duration_s=8.0).transaction_rate == pytest.approx(0.5)
    # The full challenge: successes / (30 x 60 s).
    assert score(LOG, [], duration_s=1800).transaction_rate == pytest.approx(4 / 1800)


def test_failures_are_counted_and_grouped_by_error():
    s = score(LOG, [], duration_s=1)
    assert s.errors == {"HTTP 500": 1, "ConnectionRefusedError: refused": 1}
    assert s.failure_ratio == pytest.approx(2 / 6)
    assert [(st.successes, st.failures) for st in s.stages] == [(1, 1), (3, 1)]


def test_percentiles_match_numpy_linear():
    rng = np.random.default_rng(0)
    values = sorted(rng.gamma(2.0, 30.0, 501).tolist())
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_percentiles_cover_successes_only():
    s = score(LOG, [], duration_s=1)
    assert s.p50_ms == pytest.approx(100.0)
    assert s.p99_ms == pytest.approx(np.percentile([100, 100, 100, 1000], 99))


def test_resource_means():
    samples = [sample(1000, 0.5), sample(3000, 1.5), sample(2000, 1.0)]
    s = score(LOG, samples, duration_s=1)
    assert s.mean_mem_used_KB == pytest.approx(2000)
    assert s.mean_cpu_used_cores == pytest.approx(1.0)
    assert s.mean_mem_requested_KB is None  # nothing requests memory for a local process
    assert s.samples == 3 and s.max_replicas == 1
    with_requests = score(LOG, [sample(1, 1, req_kb=2048), sample(1, 1, req_kb=4096)], 1)
    assert with_requests.mean_mem_requested_KB == pytest.approx(3072)


def test_no_requests_at_all():
    s = score([], [], duration_s=10)
    assert (s.successes, s.failures, s.transaction_rate) == (0, 0, 0.0)
    assert s.mean_response_ms is None and s.p95_ms is None and s.failure_ratio == 0.0
    with pytest.raises(ValueError):
        score([], [], duration_s=0)


def test_request_log_round_trip(tmp_path: Path):
    path = tmp_path / "requests.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REQUEST_COLUMNS)
        for r in LOG:
            w.writerow(
                [
                    r.start,
                    r.offset_s,
                    r.stage,
                    r.users,
                    r.latency_ms,
                    r.status,
                    1 if r.ok else 0,
                    r.error,
                ]
            )
    assert read_request_log(path) == LOG
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_request_log(tmp_path / "bad.csv")


def test_report_files_and_table(tmp_path: Path):
    profile = Profile("p", (Stage(4, 20, 1), Stage(4, 30, 1)))
    s = score(LOG, [sample(2048, 1.0)], profile.total_duration_s)
    out = write_results(tmp_path / "results.json", s, profile, kind="test")
    doc = json.loads(out.read_text())
    assert doc["scores"]["mean_response_ms"] == pytest.approx(325.0)
    assert doc["scores"]["transaction_rate"] == pytest.approx(0.5)
    assert doc["profile"]["stages"][1]["users"] == 30 and doc["kind"] == "test"
    rows = list(csv.DictReader(write_stages_csv(tmp_path / "stages.csv", s, profile).open()))
    assert [r["successes"] for r in rows] == ["1", "3"]
    assert float(rows[1]["transaction_rate"]) == pytest.approx(3 / 4)
    console = Console(record=True, width=120)
    console.print(scores_table(s))
    console.print(stages_table(s, profile))
    text = console.export_text()
    assert "325.0 ms" in text and "0.50 /s" in text and "2.0 MiB" in text
