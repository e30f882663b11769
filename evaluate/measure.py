"""One measured load run: the profile's load and the resource samples, side by side, scored.

`ggctl demo` (a local server, psutil) and `ggctl evaluate` (a cluster, metrics.k8s.io) differ
only in where the service runs and which sampler watches it; this is what they share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ggctl.evaluate.loadgen import LoadResult, Progress, run_load
from ggctl.evaluate.monitor import Monitor, Sample, Sampler
from ggctl.evaluate.profile import Profile
from ggctl.evaluate.runs import SAMPLES_CSV
from ggctl.evaluate.scoring import RequestRecord, Scores, read_request_log, score

# Sampling faster than this measures the sampler, not the service.
MIN_SAMPLE_PERIOD_S = 0.1


@dataclass
class Measured:
    """The load run, its samples and its scores."""

    load: LoadResult
    requests: list[RequestRecord]
    samples: list[Sample]
    scores: Scores
    sample_period_s: float
    sampler_errors: int


def progress_display(console: Any, quiet: bool) -> Any:
    """The one-line progress bar of a load run."""
    from rich.progress import BarColumn, TextColumn
    from rich.progress import Progress as Bar

    # Narrow on purpose: a stage line that wraps in an 80-column terminal is unreadable.
    return Bar(
        BarColumn(bar_width=24),
        TextColumn("{task.completed:>5.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=quiet,
    )


def measured_load(
    url: str,
    profile: Profile,
    sampler: Sampler,
    run_dir: Path,
    *,
    sample_interval_s: float,
    console: Any,
    quiet: bool,
    request_timeout_s: float,
    status: Callable[[Monitor], str] | None = None,
) -> Measured:
    """Drive `profile` at `url` while `sampler` samples every `sample_interval_s` of profile
    time; write requests.csv and samples.csv into `run_dir`; score the run.

    `status` adds a word about the samples to the progress line (e.g. the pod count).
    """
    period = max(sample_interval_s / profile.speed, MIN_SAMPLE_PERIOD_S)
    monitor = Monitor(sampler, period, run_dir / SAMPLES_CSV)
    try:
        with progress_display(console, quiet) as bar:
            task = bar.add_task("load", total=profile.total_duration_s, info="starting Locust…")

            def on_progress(p: Progress) -> None:
                # Sample from the first request on: Locust's start-up is not the service's load.
                if not monitor.started:
                    monitor.start()
                rate = p.requests / p.elapsed_s if p.elapsed_s > 0 else 0.0
                info = (
                    f"stage {p.stage + 1}/{p.stages} · {p.users} users · {p.requests:,} req "
                    f"· {rate:,.0f}/s · {p.failures:,} failed"
                )
                if status is not None:
                    info += f" · {status(monitor)}"
                bar.update(task, completed=min(p.elapsed_s, p.total_s), info=info)

            load = run_load(
                url, profile, run_dir, on_progress=on_progress, request_timeout_s=request_timeout_s
            )
            bar.update(task, completed=profile.total_duration_s)
        samples = monitor.stop()
    finally:
        monitor.stop()
    requests = read_request_log(load.requests_csv)
    scores = score(requests, samples, profile.total_duration_s)
    return Measured(load, requests, samples, scores, period, monitor.errors)
