"""The challenge's scores, computed from every request and every resource sample.

Pure functions over plain records, so the numbers can be checked by hand. The rules are
the course's (SPEC.md, "Scores"): transaction rate = successful requests / profile
duration; response time = mean over *all* successful requests (weighted by count, never a
mean of per-stage or per-run means); memory = mean of the samples.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ggctl.evaluate.monitor import Sample

# The per-request log the load generator writes, one row per request.
REQUEST_COLUMNS = ("start", "offset_s", "stage", "users", "latency_ms", "status", "ok", "error")


@dataclass(frozen=True)
class RequestRecord:
    """One request: when it started (epoch and seconds into the run), its stage, the
    number of users running then, how long it took, and whether it succeeded."""

    start: float
    offset_s: float
    stage: int
    users: int
    latency_ms: float
    status: int
    ok: bool
    error: str = ""


def read_request_log(path: Path) -> list[RequestRecord]:
    """Read the load generator's per-request CSV."""
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(REQUEST_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a request log, missing columns {sorted(missing)}")
        return [
            RequestRecord(
                start=float(row["start"]),
                offset_s=float(row["offset_s"]),
                stage=int(row["stage"]),
                users=int(row["users"]),
                latency_ms=float(row["latency_ms"]),
                status=int(row["status"]),
                ok=row["ok"] in ("1", "True", "true"),
                error=row["error"],
            )
            for row in reader
        ]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) of already sorted values, linear between ranks (numpy's
    default), or None for no values."""
    if not sorted_values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@dataclass(frozen=True)
class StageScores:
    """Counts and latency of one stage, for the report; never averaged into the totals."""

    stage: int
    successes: int
    failures: int
    mean_response_ms: float | None


@dataclass(frozen=True)
class Scores:
    """The challenge's scores for one run (latencies in ms, memory in KB, CPU in cores)."""

    duration_s: float
    requests: int
    successes: int
    failures: int
    transaction_rate: float
    mean_response_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_mem_used_KB: float | None
    mean_mem_requested_KB: float | None
    mean_cpu_used_cores: float | None
    max_replicas: int | None
    samples: int
    stages: tuple[StageScores, ...] = ()
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failure_ratio(self) -> float:
        """Failed requests / all requests (0 when there were none)."""
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, derived ratio included."""
        data = asdict(self)
        data["failure_ratio"] = self.failure_ratio
        return data


def score(
    requests: Sequence[RequestRecord],
    samples: Sequence[Sample],
    duration_s: float,
) -> Scores:
    """Score a run: `duration_s` is the profile's duration as run (the scaled one for a
    compressed profile), the denominator of the transaction rate."""
    if not duration_s > 0:
        raise ValueError(f"duration must be > 0, got {duration_s!r}")
    ok_latencies = sorted(r.latency_ms for r in requests if r.ok)
    successes = len(ok_latencies)
    failures = len(requests) - successes

    per_stage: dict[int, list[RequestRecord]] = {}
    for r in requests:
        per_stage.setdefault(r.stage, []).append(r)
    stages = tuple(
        StageScores(
            stage=i,
            successes=sum(1 for r in rs if r.ok),
            failures=sum(1 for r in rs if not r.ok),
            mean_response_ms=_mean(r.latency_ms for r in rs if r.ok),
        )
        for i, rs in sorted(per_stage.items())
    )
    errors = Counter((r.error or f"HTTP {r.status}") for r in requests if not r.ok)

    replicas = [s.n_replica for s in samples if s.n_replica is not None]
    return Scores(
        duration_s=duration_s,
        requests=len(requests),
        successes=successes,
        failures=failures,
        transaction_rate=successes / duration_s,
        mean_response_ms=_mean(ok_latencies),
        p50_ms=percentile(ok_latencies, 50),
        p95_ms=percentile(ok_latencies, 95),
        p99_ms=percentile(ok_latencies, 99),
        max_ms=ok_latencies[-1] if ok_latencies else None,
        mean_mem_used_KB=_mean(s.mem_use_KB for s in samples),
        mean_mem_requested_KB=_mean(s.mem_req_KB for s in samples),
        mean_cpu_used_cores=_mean(s.cpu_use_core for s in samples),
        max_replicas=max(replicas) if replicas else None,
        samples=len(samples),
        stages=stages,
        errors=dict(errors.most_common(10)),
    )
