"""What `ggctl predict` prints: the parameters with their sources, the scores per strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from ggctl.errors import GgctlError
from ggctl.evaluate.profile import ProfileError, load_profile
from ggctl.manifests.strategy import STRATEGY_NAMES
from ggctl.predict.run import Prediction, parse_sets, parse_sweep, predict_one, stamp_now, write_run


def _strategies(spec: str) -> list[str]:
    if spec == "all":
        return list(STRATEGY_NAMES)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in STRATEGY_NAMES:
            raise GgctlError(
                f"unknown strategy {n!r}", hint=f"choose from: all, {', '.join(STRATEGY_NAMES)}"
            )
    return names


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}"
    return str(v)


def params_table(pred: Prediction) -> Table:
    t = Table(
        title=f"{pred.strategy}: the numbers the simulation uses",
        title_justify="left",
        header_style="bold",
    )
    t.add_column("parameter")
    t.add_column("value", justify="right")
    t.add_column("source", style="dim")
    for key, p in sorted(pred.params.items()):
        if not key.startswith("_"):
            t.add_row(key, _fmt(p.value), p.source)
    return t


ROWS = (
    (
        "memory requested (mean)",
        lambda s: s.mean_mem_requested_KB,
        lambda v: f"{v / 1024:,.0f} MiB",
    ),
    ("memory used (mean)", lambda s: s.mean_mem_used_KB, lambda v: f"{v / 1024:,.0f} MiB"),
    ("transaction rate", lambda s: s.transaction_rate, lambda v: f"{v:,.2f} /s"),
    ("response time (weighted mean)", lambda s: s.mean_response_ms, lambda v: f"{v:,.1f} ms"),
    ("p95 response time", lambda s: s.p95_ms, lambda v: f"{v:,.1f} ms"),
    ("failures", lambda s: s.failures, lambda v: f"{v:,}"),
    ("max replicas", lambda s: s.max_replicas, lambda v: f"{v}"),
)


def scores_table(preds: list[Prediction], title: str) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    t.add_column("")
    for p in preds:
        t.add_column(p.label, justify="right")
    for name, get, fmt in ROWS:
        t.add_row(name, *("n/a" if (v := get(p.scores)) is None else fmt(v) for p in preds))
    return t


def run_predict(
    settings: Any,
    *,
    console: Any,
    err: Any,
    strategy: str,
    model: Path | None,
    profile: str,
    sets: tuple[str, ...],
    sweep: str | None,
    cpu_ratio: float | None,
    recalibrate: bool,
    seed: int,
    no_plots: bool,
    json_path: Path | None,
) -> list[Prediction]:
    from ggctl.state import StateDir

    try:
        prof = load_profile(profile)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
    names = _strategies(strategy)
    set_map = parse_sets(sets)
    if cpu_ratio is not None:
        set_map["cpu_ratio"] = str(cpu_ratio)
    sw = parse_sweep(sweep)
    if model is None:
        from ggctl.local.serving import default_model

        if not settings.quiet:
            err.print(
                "[dim]calibrating with the built-in demo model (untrained, MobileNetV2's cost)[/]"
            )
        model = default_model(settings)
    state = StateDir(settings.state_dir)
    cache_dir = state.path("predict")
    stamp = stamp_now()
    log = (lambda m: None) if settings.quiet else (lambda m: err.print(f"[dim]{m}[/]"))
    preds: list[Prediction] = []
    for name in names:
        points = (
            [(None, set_map)]
            if sw is None
            else [((sw[0], v), {**set_map, sw[0]: v}) for v in sw[1]]
        )
        for point, this_sets in points:
            pred = predict_one(
                settings,
                name,
                prof,
                Path(model),
                this_sets,
                cache_dir=cache_dir,
                refresh=recalibrate,
                seed=seed,
                log=log,
            )
            recalibrate = False  # once per run is enough; later strategies share the cache
            pred.sweep = point
            suffix = f"-{point[0]}-{point[1]}" if point else ""
            run_dir = state.run_dir(f"predict-{name}{suffix}", stamp)
            write_run(pred, prof, run_dir, plots=not no_plots)
            preds.append(pred)
            if not settings.quiet and this_sets is points[0][1]:
                console.print(params_table(pred))
    title = f"Predicted scores · profile {prof.name} ({prof.total_duration_s / 60:g} min)"
    console.print(scores_table(preds, title))
    for p in preds:
        console.print(f"[dim]{p.label}: {p.run_dir}[/]", highlight=False)
    console.print(
        "[dim]predicted, not measured: confirm with `ggctl evaluate` on the cluster; "
        "`ggctl report RUN_DIR...` shows predicted and measured side by side[/]"
    )
    if json_path is not None:
        doc = {
            "profile": prof.to_dict(),
            "predictions": [
                {
                    "label": p.label,
                    "strategy": p.strategy,
                    "sweep": p.sweep,
                    "run_dir": str(p.run_dir),
                    "scores": p.scores.to_dict(),
                }
                for p in preds
            ],
        }
        Path(json_path).expanduser().write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return preds
