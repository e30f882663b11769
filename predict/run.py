"""`ggctl predict`: calibrate, simulate each strategy, score, and write a run directory.

A predicted run directory has the shape of `ggctl evaluate`'s (results.json, requests.csv,
samples.csv, stages.csv, PNG plots), with `kind: predict` and the strategy labelled
"(predicted)", so `ggctl report` puts predicted and measured runs side by side.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggctl.evaluate.monitor import SAMPLE_COLUMNS
from ggctl.evaluate.profile import Profile
from ggctl.evaluate.report import RESULTS_JSON, STAGES_CSV, write_results, write_stages_csv
from ggctl.evaluate.runs import REQUESTS_CSV, SAMPLES_CSV
from ggctl.evaluate.scoring import REQUEST_COLUMNS, Scores, score
from ggctl.predict import scenario as sc
from ggctl.predict.calibrate import Calibration, calibrate
from ggctl.predict.sim import SimResult, Simulation

PREDICTED = "predicted"


@dataclass
class Prediction:
    """One simulated strategy (one point of a sweep)."""

    strategy: str
    params: dict[str, sc.Param]
    calibration: Calibration
    scores: Scores
    result: SimResult
    sweep: tuple[str, str] | None = None
    run_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = f", {self.sweep[0]}={self.sweep[1]}" if self.sweep else ""
        return f"{self.strategy} ({PREDICTED}{extra})"


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise sc.ScenarioError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def parse_sweep(item: str | None) -> tuple[str, list[str]] | None:
    if not item:
        return None
    key, sep, values = item.partition("=")
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not vals:
        raise sc.ScenarioError(f"--sweep {item!r}: expected KEY=A,B,C")
    return key.strip(), vals


def predict_one(
    settings: Any,
    strategy: str,
    profile: Profile,
    model: Path,
    sets: dict[str, str],
    *,
    cache_dir: Path,
    refresh: bool = False,
    seed: int = 1,
    log: Callable[[str], None] = lambda _m: None,
    calibration_budget: dict[str, Any] | None = None,
) -> Prediction:
    """Calibrate (or read the cache) and simulate one strategy with `sets` applied."""
    base = sc.strategy_params(sc.get_strategy(strategy))
    sc.check_keys(base, sets)
    early = sc.apply_sets(base, {k: v for k, v in sets.items() if k in base})
    cal = calibrate(
        settings,
        model,
        sc.layout_of(early),
        cache_dir,
        refresh=refresh,
        log=log,
        **(calibration_budget or {}),
    )
    params = sc.apply_sets(sc.with_calibration(early, cal), sets)
    pod, cluster = sc.build(strategy, params, seed=seed)
    result = Simulation(profile, pod, cluster).run()
    scores = score(result.requests, result.samples, profile.total_duration_s)
    return Prediction(strategy, params, cal, scores, result)


def write_run(pred: Prediction, profile: Profile, run_dir: Path, plots: bool = True) -> Prediction:
    """The run directory of one prediction, in `ggctl evaluate`'s shapes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / REQUESTS_CSV).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(REQUEST_COLUMNS)
        for r in pred.result.requests:
            w.writerow(
                [
                    f"{r.start:.6f}",
                    f"{r.offset_s:.6f}",
                    r.stage,
                    r.users,
                    f"{r.latency_ms:.3f}",
                    r.status,
                    1 if r.ok else 0,
                    r.error,
                ]
            )
    with (run_dir / SAMPLES_CSV).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SAMPLE_COLUMNS)
        for s in pred.result.samples:
            w.writerow(["" if getattr(s, c) is None else getattr(s, c) for c in SAMPLE_COLUMNS])
    files = {
        "requests": run_dir / REQUESTS_CSV,
        "samples": run_dir / SAMPLES_CSV,
        "stages": write_stages_csv(run_dir / STAGES_CSV, pred.scores, profile),
    }
    extra = {
        "kind": "predict",
        "strategy": pred.label,
        "predicted": True,
        "t0": 0.0,
        "parameters": {
            k: {"value": p.value, "source": p.source}
            for k, p in pred.params.items()
            if not k.startswith("_")
        },
        "calibration": {k: v for k, v in pred.calibration.to_dict().items() if k != "service_ms"},
        "simulation": {"events": pred.result.events, "probe_requests": pred.result.probe_requests},
    }
    files["results"] = write_results(run_dir / RESULTS_JSON, pred.scores, profile, **extra)
    if plots:
        from ggctl.evaluate.plots import plot_run
        from ggctl.evaluate.runs import label_runs, load_run

        files.update(plot_run(label_runs([load_run(run_dir)])[0], run_dir))
    pred.run_dir, pred.files = run_dir, files
    return pred


def stamp_now() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
