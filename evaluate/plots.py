"""PNG plots of a run (replicas, CPU, memory, latency, throughput) and of several runs overlaid.

matplotlib's object API with the Agg canvas: no pyplot, no global backend, nothing opens a
window, safe next to other threads. The x axis is profile time (see runs.py), in minutes
for profiles longer than 5 minutes, so compressed and real-time runs compare directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ggctl.evaluate.monitor import Sample
from ggctl.evaluate.runs import BUCKET_PROFILE_S, Bucket, RunData, request_buckets

KIB_PER_MIB = 1024.0
DPI = 110
SIZE = (9.0, 4.2)

#: One file per metric; `ggctl report` overlays runs on each.
RUN_PLOTS = ("replicas", "cpu", "memory", "latency", "throughput")
COMPARE_PLOTS = (
    "replicas",
    "cpu_used",
    "memory_used",
    "memory_requested",
    "latency_p50",
    "latency_p95",
    "throughput",
)


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


class _Axis:
    """Profile seconds → the unit of the x axis."""

    def __init__(self, total_profile_s: float):
        self.minutes = total_profile_s > 300
        self.label = "profile time (min)" if self.minutes else "profile time (s)"

    def __call__(self, seconds: Sequence[float]) -> list[float]:
        return [t / 60 for t in seconds] if self.minutes else list(seconds)


def _profile_s(run: RunData) -> float:
    prof = run.results.get("profile") or {}
    total = sum(float(s["duration_s"]) for s in prof.get("stages") or [])
    return total * run.speed if total else float(run.scores.get("duration_s") or 0) * run.speed


def _stage_ends(run: RunData) -> list[float]:
    ends, t = [], 0.0
    for s in ((run.results.get("profile") or {}).get("stages") or [])[:-1]:
        t += float(s["duration_s"]) * run.speed
        ends.append(t)
    return ends


def _figure(title: str, ylabel: str, axis: _Axis) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(axis.label)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _stages(ax: Any, run: RunData, axis: _Axis) -> None:
    """Stage boundaries as dotted lines; the x axis from 0 to the profile's end."""
    total = _profile_s(run)
    if total > 0:
        ax.set_xlim(0, axis([total])[0])
    for x in axis(_stage_ends(run)):
        ax.axvline(x, color="0.6", linewidth=0.6, linestyle=":", zorder=0)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _title(run: RunData, what: str) -> str:
    prof = run.results.get("profile") or {}
    return f"{what} · {run.label or run.strategy} · {prof.get('name', '?')} x{run.speed:g}"


def _sample_xy(
    run: RunData, axis: _Axis, value: Callable[[Sample], float | None]
) -> tuple[list[float], list[float]]:
    samples = sorted(run.samples, key=lambda s: s.time)
    return (axis([run.profile_time(s.time) for s in samples]), [_nan(value(s)) for s in samples])


# --------------------------------------------------------------------------- one run


def plot_run(
    run: RunData, out_dir: Path, bucket_profile_s: float = BUCKET_PROFILE_S
) -> dict[str, Path]:
    """Write replicas.png, cpu.png, memory.png, latency.png, throughput.png for one run."""
    out_dir = Path(out_dir)
    axis = _Axis(_profile_s(run))
    buckets = request_buckets(run, bucket_profile_s)
    files: dict[str, Path] = {}

    fig, ax = _figure(_title(run, "replicas"), "pods", axis)
    x, y = _sample_xy(run, axis, lambda s: s.n_replica)
    ax.step(x, y, where="post", label="running pods (counted)", linewidth=2)
    if run.details:
        det = sorted(run.details, key=lambda d: d.time)
        dx = axis([run.profile_time(d.time) for d in det])
        if any(d.hpa_desired is not None for d in det):
            ax.step(
                dx,
                [_nan(d.hpa_desired) for d in det],
                where="post",
                label="HPA desired",
                linestyle="--",
            )
        if any(d.deployment_ready is not None for d in det):
            ax.step(
                dx,
                [_nan(d.deployment_ready) for d in det],
                where="post",
                label="Deployment ready",
                linestyle=":",
            )
    top = max(
        [v for v in y if not math.isnan(v)]
        + [v for d in run.details for v in (d.hpa_desired, d.deployment_ready) if v is not None]
        + [1]
    )
    ax.set_ylim(0, top + 1.5)  # room for the legend above the lines
    ax.yaxis.get_major_locator().set_params(integer=True)
    _stages(ax, run, axis)
    _legend(ax)
    files["replicas"] = _save(fig, out_dir / "replicas.png")

    fig, ax = _figure(_title(run, "CPU"), "cores", axis)
    for label, get, style in (
        ("used", lambda s: s.cpu_use_core, "-"),
        ("requested", lambda s: s.cpu_req_core, "--"),
        ("limit", lambda s: s.cpu_lim_core, ":"),
    ):
        x, y = _sample_xy(run, axis, get)
        if any(not math.isnan(v) for v in y):
            ax.plot(x, y, linestyle=style, label=label, marker="." if style == "-" else None)
    ax.set_ylim(bottom=0)
    _stages(ax, run, axis)
    _legend(ax)
    files["cpu"] = _save(fig, out_dir / "cpu.png")

    fig, ax = _figure(_title(run, "memory"), "MiB", axis)
    for label, get, style in (
        ("used", lambda s: s.mem_use_KB, "-"),
        ("requested", lambda s: s.mem_req_KB, "--"),
        ("limit", lambda s: s.mem_lim_KB, ":"),
    ):
        x, y = _sample_xy(run, axis, get)
        y = [v / KIB_PER_MIB for v in y]
        if any(not math.isnan(v) for v in y):
            ax.plot(x, y, linestyle=style, label=label, marker="." if style == "-" else None)
    ax.set_ylim(bottom=0)
    _stages(ax, run, axis)
    _legend(ax)
    files["memory"] = _save(fig, out_dir / "memory.png")

    fig, ax = _figure(
        _title(run, f"latency per {bucket_profile_s:g} s of profile time"), "ms", axis
    )
    bx = axis([b.t for b in buckets])
    ax.plot(bx, [_nan(b.p50_ms) for b in buckets], marker=".", label="p50")
    ax.plot(bx, [_nan(b.p95_ms) for b in buckets], marker=".", label="p95")
    mean = run.scores.get("mean_response_ms")
    if mean is not None:
        ax.axhline(
            mean,
            color="0.3",
            linestyle="--",
            linewidth=1,
            label=f"mean of all successes {mean:,.0f} ms",
        )
    ax.set_ylim(bottom=0)
    _stages(ax, run, axis)
    _legend(ax)
    files["latency"] = _save(fig, out_dir / "latency.png")

    fig, ax = _figure(_title(run, "throughput"), "requests / s (wall clock)", axis)
    ax.plot(bx, [b.rate for b in buckets], marker=".", label="successful")
    wall = bucket_profile_s / run.speed
    if any(b.failures for b in buckets):
        ax.plot(
            bx, [b.failures / wall for b in buckets], marker="x", color="tab:red", label="failed"
        )
    ax.set_ylim(bottom=0)
    _stages(ax, run, axis)
    users = _users_steps(run)
    if users:
        twin = ax.twinx()
        twin.step(axis(users[0]), users[1], where="post", color="0.5", linewidth=1, label="users")
        twin.set_ylabel("concurrent users", color="0.4")
        twin.set_ylim(bottom=0)
    _legend(ax)
    files["throughput"] = _save(fig, out_dir / "throughput.png")
    return files


def _users_steps(run: RunData) -> tuple[list[float], list[float]] | None:
    stages = (run.results.get("profile") or {}).get("stages") or []
    if not stages:
        return None
    xs, ys, t = [], [], 0.0
    for s in stages:
        xs.append(t)
        ys.append(float(s["users"]))
        t += float(s["duration_s"]) * run.speed
    xs.append(t)
    ys.append(ys[-1])
    return xs, ys


# --------------------------------------------------------------------------- several runs


def _series(
    run: RunData, metric: str, axis: _Axis, bucket_profile_s: float
) -> tuple[list[float], list[float], str] | None:
    sample_metrics: dict[str, tuple[Callable[[Sample], float | None], float]] = {
        "replicas": (lambda s: s.n_replica, 1.0),
        "cpu_used": (lambda s: s.cpu_use_core, 1.0),
        "memory_used": (lambda s: s.mem_use_KB, KIB_PER_MIB),
        "memory_requested": (lambda s: s.mem_req_KB, KIB_PER_MIB),
    }
    if metric in sample_metrics:
        get, div = sample_metrics[metric]
        x, y = _sample_xy(run, axis, get)
        return x, [v / div for v in y], "step" if metric == "replicas" else "line"
    buckets: list[Bucket] = request_buckets(run, bucket_profile_s)
    bx = axis([b.t for b in buckets])
    if metric == "latency_p50":
        return bx, [_nan(b.p50_ms) for b in buckets], "line"
    if metric == "latency_p95":
        return bx, [_nan(b.p95_ms) for b in buckets], "line"
    if metric == "throughput":
        return bx, [b.rate for b in buckets], "line"
    raise ValueError(f"unknown metric {metric!r}")


_COMPARE_LABELS = {
    "replicas": ("replicas (running pods)", "pods"),
    "cpu_used": ("CPU used", "cores"),
    "memory_used": ("memory used", "MiB"),
    "memory_requested": ("memory requested", "MiB"),
    "latency_p50": ("latency p50 per 5 s of profile time", "ms"),
    "latency_p95": ("latency p95 per 5 s of profile time", "ms"),
    "throughput": ("successful requests per second", "requests / s (wall clock)"),
}


def plot_runs(
    runs: Sequence[RunData], out_dir: Path, bucket_profile_s: float = BUCKET_PROFILE_S
) -> dict[str, Path]:
    """One PNG per metric (COMPARE_PLOTS) with every run overlaid, labelled `run.label`."""
    out_dir = Path(out_dir)
    axis = _Axis(max((_profile_s(r) for r in runs), default=0.0))
    files: dict[str, Path] = {}
    for metric in COMPARE_PLOTS:
        title, ylabel = _COMPARE_LABELS[metric]
        if metric.startswith("latency"):
            title = title.replace("5 s", f"{bucket_profile_s:g} s")
        fig, ax = _figure(title, ylabel, axis)
        drawn = False
        for run in runs:
            series = _series(run, metric, axis, bucket_profile_s)
            if series is None:
                continue
            x, y, style = series
            if not x or all(math.isnan(v) for v in y):
                continue
            label = run.label or run.strategy
            if style == "step":
                ax.step(x, y, where="post", label=label, linewidth=1.8)
            else:
                ax.plot(x, y, label=label, marker=".", markersize=3, linewidth=1.2)
            drawn = True
        if runs:
            _stages(ax, runs[0], axis)
            longest = max(_profile_s(r) for r in runs)
            if longest > 0:
                ax.set_xlim(0, axis([longest])[0])
        if drawn:
            _legend(ax)
        else:
            ax.text(
                0.5,
                0.5,
                "no data in these runs",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
        ax.set_ylim(bottom=0)
        if metric == "replicas":
            ax.yaxis.get_major_locator().set_params(integer=True)
        files[metric] = _save(fig, out_dir / f"{metric}.png")
    return files
