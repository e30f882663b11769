"""`ggctl report RUN_DIR...`: several runs side by side, one table and one plot per metric."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from ggctl.errors import GgctlError
from ggctl.evaluate.runs import RunData, label_runs, load_run

REPORT_CSV = "report.csv"
REPORT_JSON = "report.json"


def _num(spec: str, unit: str = "", scale: float = 1.0) -> Callable[[Any], str]:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{float(v) / scale:{spec}}{unit}"

    return fmt


def _profile(run: RunData) -> str:
    prof = run.results.get("profile") or {}
    return f"{prof.get('name', '?')} x{run.speed:g}"


def _accuracy(run: RunData) -> Any:
    acc = run.results.get("accuracy")
    return acc.get("accuracy") if isinstance(acc, dict) else None


#: (row name, value of a run, format): the challenge's scores first, then the context.
ROWS: list[tuple[str, Callable[[RunData], Any], Callable[[Any], str]]] = [
    ("strategy", lambda r: r.strategy, str),
    ("profile", _profile, str),
    ("duration", lambda r: r.scores.get("duration_s"), _num(",.0f", " s")),
    (
        "memory requested (mean)",
        lambda r: r.scores.get("mean_mem_requested_KB"),
        _num(",.0f", " MiB", 1024),
    ),
    ("memory used (mean)", lambda r: r.scores.get("mean_mem_used_KB"), _num(",.0f", " MiB", 1024)),
    ("transaction rate", lambda r: r.scores.get("transaction_rate"), _num(",.2f", " /s")),
    ("mean response time", lambda r: r.scores.get("mean_response_ms"), _num(",.1f", " ms")),
    ("p95 response time", lambda r: r.scores.get("p95_ms"), _num(",.1f", " ms")),
    ("successes", lambda r: r.scores.get("successes"), _num(",.0f")),
    ("failures", lambda r: r.scores.get("failures"), _num(",.0f")),
    ("accuracy", _accuracy, lambda v: "n/a" if v is None else f"{float(v):.2%}"),
    ("CPU used (mean)", lambda r: r.scores.get("mean_cpu_used_cores"), _num(".2f", " cores")),
    ("max replicas", lambda r: r.scores.get("max_replicas"), _num(".0f")),
    ("samples", lambda r: r.scores.get("samples"), _num(",.0f")),
]


def report_table(runs: Sequence[RunData], title: str = "Runs side by side") -> Table:
    """One row per score, one column per run."""
    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("")
    for run in runs:
        table.add_column(run.label or run.strategy, justify="right")
    for name, get, fmt in ROWS:
        table.add_row(name, *(fmt(get(run)) for run in runs))
    return table


def _write_csv(path: Path, runs: Sequence[RunData]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "path", *(name for name, _, _ in ROWS)])
        for run in runs:
            w.writerow(
                [
                    run.label,
                    str(run.path),
                    *("" if (v := get(run)) is None else v for _, get, _ in ROWS),
                ]
            )
    return path


@dataclass
class Report:
    """What `run_report` produced."""

    runs: list[RunData]
    out_dir: Path
    table: Table
    files: dict[str, Path] = field(default_factory=dict)


def run_report(
    paths: Sequence[Path],
    out_dir: Path | None = None,
    *,
    state_dir: Path | None = None,
    stamp: str | None = None,
) -> Report:
    """Read the runs, write report.csv, report.json and one PNG per metric into `out_dir`
    (default: a fresh `<state dir>/runs/<stamp>-report`)."""
    if not paths:
        raise GgctlError("no run to report on", hint="ggctl report RUN_DIR [RUN_DIR...]")
    runs = label_runs([load_run(Path(p)) for p in paths])
    if out_dir is None:
        from ggctl.state import StateDir

        if state_dir is None:
            raise GgctlError("no output directory", hint="pass --out DIR")
        out_dir = StateDir(state_dir).run_dir("report", stamp or time.strftime("%Y%m%d-%H%M%S"))
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    from ggctl.evaluate.plots import plot_runs

    files = plot_runs(runs, out_dir)
    files["csv"] = _write_csv(out_dir / REPORT_CSV, runs)
    doc = {
        "runs": [
            {
                "label": r.label,
                "path": str(r.path),
                "strategy": r.strategy,
                "profile": r.results.get("profile"),
                "scores": r.scores,
                "accuracy": r.results.get("accuracy"),
            }
            for r in runs
        ]
    }
    (out_dir / REPORT_JSON).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    files["json"] = out_dir / REPORT_JSON
    return Report(runs, out_dir, report_table(runs), files)
