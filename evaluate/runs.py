"""A finished run read back from its directory, and the time series the plots draw.

A run directory (from `ggctl evaluate` or `ggctl demo`) holds results.json, requests.csv,
samples.csv and, for a cluster run, cluster.csv. Time in the series is *profile* time:
seconds since the load started, multiplied by the profile's speed, so that a run
compressed 15x and a real-time run line up on the same axis.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggctl.errors import GgctlError
from ggctl.evaluate.monitor import Sample, read_samples
from ggctl.evaluate.scoring import RequestRecord, percentile, read_request_log

RESULTS_JSON = "results.json"
REQUESTS_CSV = "requests.csv"
SAMPLES_CSV = "samples.csv"
CLUSTER_CSV = "cluster.csv"
#: Width of a latency/throughput bucket, in profile seconds (the course samples every 5 s).
BUCKET_PROFILE_S = 5.0


class RunDirError(GgctlError):
    """A directory that is not a finished run."""


@dataclass
class RunData:
    """Everything a report needs about one run."""

    path: Path
    results: dict[str, Any]
    requests: list[RequestRecord]
    samples: list[Sample]
    details: list[Any] = field(default_factory=list)  # ClusterDetail, cluster runs only
    label: str = ""

    @property
    def kind(self) -> str:
        return str(self.results.get("kind", "run"))

    @property
    def strategy(self) -> str:
        """The deploy strategy (cluster runs), else the run's kind (`demo`)."""
        return str(self.results.get("strategy") or self.kind)

    @property
    def speed(self) -> float:
        return float((self.results.get("profile") or {}).get("speed") or 1.0)

    @property
    def scores(self) -> dict[str, Any]:
        return dict(self.results.get("scores") or {})

    @property
    def t0(self) -> float:
        """Epoch second the load started (the zero of the series)."""
        if self.results.get("t0") is not None:
            return float(self.results["t0"])
        return load_start(self.requests, self.samples)

    def profile_time(self, epoch: float) -> float:
        """Profile seconds since the load started at wall-clock `epoch`."""
        return (epoch - self.t0) * self.speed


def load_start(requests: list[RequestRecord], samples: list[Sample]) -> float:
    """The load generator's start (epoch s): request start minus its offset, else the
    first sample's time, else 0."""
    if requests:
        return min(r.start - r.offset_s for r in requests)
    if samples:
        return min(s.time for s in samples)
    return 0.0


def load_run(path: Path) -> RunData:
    """Read a run directory; a clear error when it is not one."""
    path = Path(path).expanduser()
    results_path = path / RESULTS_JSON
    if not results_path.is_file():
        raise RunDirError(
            f"{path} is not a finished run: no {RESULTS_JSON}",
            hint="give directories written by `ggctl evaluate` or `ggctl demo` "
            "(<state dir>/runs/...)",
        )
    try:
        results = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{results_path}: cannot read it: {exc}") from None
    try:
        requests = read_request_log(path / REQUESTS_CSV) if (path / REQUESTS_CSV).is_file() else []
        samples = read_samples(path / SAMPLES_CSV) if (path / SAMPLES_CSV).is_file() else []
        details: list[Any] = []
        if (path / CLUSTER_CSV).is_file():
            from ggctl.evaluate.k8s import read_details

            details = read_details(path / CLUSTER_CSV)
    except (OSError, ValueError, KeyError) as exc:
        raise RunDirError(f"{path}: a damaged run file: {exc}") from None
    return RunData(path, results, requests, samples, details)


def label_runs(runs: list[RunData]) -> list[RunData]:
    """Give each run a short label: its strategy, with the directory name where two share one."""
    names = [r.strategy for r in runs]
    for run, name in zip(runs, names, strict=True):
        run.label = name if names.count(name) == 1 else f"{name} ({run.path.name})"
    return runs


@dataclass(frozen=True)
class Bucket:
    """Requests that started within one bucket of profile time."""

    t: float  # profile seconds at the bucket's middle
    successes: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    rate: float  # successful requests per wall-clock second within the bucket


def request_buckets(run: RunData, bucket_profile_s: float = BUCKET_PROFILE_S) -> list[Bucket]:
    """Per-bucket counts, p50 and p95 of successful requests, over the whole profile."""
    duration = float(run.scores.get("duration_s") or 0.0) * run.speed
    if duration <= 0:
        duration = max((run.profile_time(r.start) for r in run.requests), default=0.0) + 1e-9
    # A request that started in the last instant, as the generator stopped, counts in the
    # last bucket rather than making a near-empty bucket of its own.
    n = max(1, math.ceil(duration / bucket_profile_s - 1e-9))
    ok: list[list[float]] = [[] for _ in range(n)]
    failed = [0] * n
    t0 = run.t0
    for r in run.requests:
        i = min(max(int((r.start - t0) * run.speed // bucket_profile_s), 0), n - 1)
        if r.ok:
            ok[i].append(r.latency_ms)
        else:
            failed[i] += 1
    wall = bucket_profile_s / run.speed
    out = []
    for i in range(n):
        lat = sorted(ok[i])
        out.append(
            Bucket(
                t=(i + 0.5) * bucket_profile_s,
                successes=len(lat),
                failures=failed[i],
                p50_ms=percentile(lat, 50),
                p95_ms=percentile(lat, 95),
                rate=len(lat) / wall,
            )
        )
    return out
