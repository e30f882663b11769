"""`ggctl demo`: serve locally and run the challenge load on it (local/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import Ctx, console, err_console, pass_ctx


@click.command()
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to serve (default: the built-in, untrained demo model).",
)
@click.option(
    "--speed", type=float, help="Time compression of the profile (default 15: 30 min in 2 min)."
)
@click.option("--duration", type=float, help="Stop after this many (compressed) seconds.")
@click.option("--profile", help="Load profile: challenge, smoke, or a YAML file.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results JSON here.",
)
@click.option("--keep-serving", is_flag=True, help="Leave the service up until Ctrl-C.")
@click.option("--workers", type=int, help="gunicorn worker processes.")
@click.option("--threads", type=int, help="Request threads per worker.")
@click.option(
    "--ort-threads", type=int, help="ONNX Runtime threads per inference (0: 2 on 2+ CPUs)."
)
@pass_ctx
def demo(
    ctx: Ctx,
    model: Path | None,
    speed: float | None,
    duration: float | None,
    profile: str | None,
    json_path: Path | None,
    keep_serving: bool,
    workers: int | None,
    threads: int | None,
    ort_threads: int | None,
) -> None:
    """Serve locally and run the challenge's load test on it, time-compressed, with scores."""
    from ggctl.evaluate.report import scores_table, stages_table
    from ggctl.local.demo import run_demo

    settings = ctx.settings(
        demo={"speed": speed, "duration": duration, "profile": profile},
        serve={"model": model, "workers": workers, "threads": threads, "ort_threads": ort_threads},
    )

    def show(result: Any) -> None:
        if not settings.quiet:
            console.print(stages_table(result.scores, result.profile))
        console.print(
            scores_table(
                result.scores,
                title=f"{result.profile.name} profile x{result.profile.speed:g} on "
                f"{result.model.name} ({result.scores.duration_s:.0f} s)",
            )
        )
        warned = " (Locust warned of CPU saturation)" if result.load.cpu_warning else ""
        console.print(
            f"[dim]load generator used {result.load.cpu_cores:.2f} CPU cores{warned}; "
            f"files in {result.run_dir}[/]",
            highlight=False,
        )

    run_demo(
        settings,
        keep_serving=keep_serving,
        json_path=json_path,
        console=err_console,
        on_result=show,
    )
