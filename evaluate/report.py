"""Show and keep a run's scores: a rich table for people, JSON and CSV for tools."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from rich.table import Table

from ggctl.evaluate.profile import Profile
from ggctl.evaluate.scoring import Scores

RESULTS_JSON = "results.json"
STAGES_CSV = "stages.csv"


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _mib(kb: float | None) -> str:
    return "n/a" if kb is None else f"{kb / 1024:,.1f} MiB"


def scores_table(scores: Scores, title: str = "Scores") -> Table:
    """The challenge's scores as a two-column table, the scored figures first."""
    table = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")
    rows = [
        (
            "transaction rate",
            _fmt(scores.transaction_rate, ",.2f", " /s"),
            f"successes / {scores.duration_s:,.1f} s",
        ),
        (
            "mean response time",
            _fmt(scores.mean_response_ms, ",.1f", " ms"),
            "over every successful request",
        ),
        (
            "p50 / p95 / p99",
            " / ".join(_fmt(v, ",.1f") for v in (scores.p50_ms, scores.p95_ms, scores.p99_ms))
            + " ms",
            "",
        ),
        ("max response time", _fmt(scores.max_ms, ",.1f", " ms"), ""),
        ("successes", f"{scores.successes:,}", ""),
        (
            "failures",
            f"{scores.failures:,}",
            f"{scores.failure_ratio:.2%} of {scores.requests:,}" if scores.requests else "",
        ),
        ("memory used (mean)", _mib(scores.mean_mem_used_KB), f"{scores.samples} samples"),
        (
            "memory requested (mean)",
            _mib(scores.mean_mem_requested_KB),
            "" if scores.mean_mem_requested_KB is not None else "no requests set locally",
        ),
        ("CPU used (mean)", _fmt(scores.mean_cpu_used_cores, ".2f", " cores"), ""),
    ]
    for name, value, note in rows:
        table.add_row(name, value, note)
    return table


def stages_table(scores: Scores, profile: Profile) -> Table:
    """Per-stage counts and mean latency, to see where the service saturated."""
    table = Table(title="Per stage", header_style="bold", title_justify="left")
    for col in ("stage", "users", "max delay", "successes", "failures", "req/s", "mean ms"):
        table.add_column(col, justify="right")
    by_index = {s.stage: s for s in scores.stages}
    for i, stage in enumerate(profile.stages):
        s = by_index.get(i)
        ok = s.successes if s else 0
        table.add_row(
            str(i + 1),
            str(stage.users),
            f"{stage.max_delay_s:.3g} s",
            f"{ok:,}",
            f"{s.failures if s else 0:,}",
            f"{ok / stage.duration_s:,.1f}",
            _fmt(s.mean_response_ms if s else None, ",.1f"),
        )
    return table


def write_results(path: Path, scores: Scores, profile: Profile, **extra: Any) -> Path:
    """Write the scores, the profile as run and `extra` facts as one JSON document."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"scores": scores.to_dict(), "profile": profile.to_dict(), **extra}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def write_stages_csv(path: Path, scores: Scores, profile: Profile) -> Path:
    """One row per stage: its shape, its counts, its own mean latency and rate."""
    path = Path(path)
    by_index = {s.stage: s for s in scores.stages}
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "stage",
                "duration_s",
                "users",
                "max_delay_s",
                "successes",
                "failures",
                "transaction_rate",
                "mean_response_ms",
            ]
        )
        for i, stage in enumerate(profile.stages):
            s = by_index.get(i)
            ok = s.successes if s else 0
            w.writerow(
                [
                    i + 1,
                    f"{stage.duration_s:g}",
                    stage.users,
                    f"{stage.max_delay_s:g}",
                    ok,
                    s.failures if s else 0,
                    f"{ok / stage.duration_s:.4f}",
                    "" if s is None or s.mean_response_ms is None else f"{s.mean_response_ms:.3f}",
                ]
            )
    return path
