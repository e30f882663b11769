"""`ggctl evaluate` and `ggctl report`: the challenge load, scores and plots (evaluate/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import Ctx, console, err_console, pass_ctx


@click.command()
@click.option("--url", help="Service base URL (default: http://<node-0's floating IP>:32000).")
@click.option(
    "--profile",
    default="challenge",
    show_default=True,
    help="Load profile: challenge, smoke, or a YAML file.",
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Time compression of the profile (1: the challenge's 30 minutes).",
)
@click.option("--duration", type=float, help="Stop after this many (compressed) seconds.")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to sample (default: the one `ggctl deploy` used).",
)
@click.option("-n", "--namespace", help="Namespace of the pods (default: the deployment's).")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Food-11 folder: also report the accuracy of --model on it.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model the image was built from (with --data).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results JSON here.",
)
@pass_ctx
def evaluate(
    ctx: Ctx,
    url: str | None,
    profile: str,
    speed: float,
    duration: float | None,
    kubeconfig: Path | None,
    namespace: str | None,
    data: Path | None,
    model: Path | None,
    json_path: Path | None,
) -> None:
    """Load-test the deployed service with the challenge's profile while sampling its pods."""
    from ggctl.evaluate.cluster_run import run_evaluation
    from ggctl.evaluate.report import scores_table, stages_table

    settings = ctx.settings(deploy={"kubeconfig": kubeconfig})

    def show(r: Any) -> None:
        if not settings.quiet:
            console.print(stages_table(r.scores, r.profile))
        console.print(
            scores_table(
                r.scores,
                title=f"{r.run_dir.name}: {r.profile.name} x{r.profile.speed:g} at {r.target.url}",
            )
        )
        if r.accuracy:
            console.print(
                f"accuracy {r.accuracy['accuracy']:.2%} ({r.accuracy['correct']}/"
                f"{r.accuracy['images']}) of {r.accuracy['model']}",
                highlight=False,
            )
        for w in r.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
        console.print(f"[dim]files and plots in {r.run_dir}[/]", highlight=False)

    from ggctl.cluster.tunnel import api_access
    from ggctl.state import StateDir

    # The sampler reaches ggctl's own cluster through the SSH tunnel, as deploy does.
    with api_access(settings, StateDir(settings.state_dir)):
        run_evaluation(
            settings,
            url=url,
            profile=profile,
            speed=speed,
            duration=duration,
            namespace=namespace,
            data=data,
            model=model,
            json_path=json_path,
            console=err_console,
            on_result=show,
        )


@click.command()
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the table and plots go (default: <state dir>/runs/<stamp>-report).",
)
@pass_ctx
def report(ctx: Ctx, runs: tuple[Path, ...], out: Path | None) -> None:
    """Put evaluate (or demo) runs side by side: one table, one plot per metric."""
    from ggctl.evaluate.compare import run_report

    r = run_report(list(runs), out, state_dir=ctx.settings().state_dir)
    console.print(r.table)
    console.print(f"[dim]plots and report.csv in {r.out_dir}[/]", highlight=False)
