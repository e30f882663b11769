"""`ggctl predict`: each strategy's challenge scores from a simulation calibrated on your model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import Ctx, console, err_console, pass_ctx


@click.command()
@click.option(
    "--strategy",
    default="all",
    show_default=True,
    help="k8s, lb, hpa, optimized, or all.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to calibrate with (default: the built-in demo model).",
)
@click.option(
    "--profile", default="challenge", show_default=True, help="challenge, smoke, or a YAML file."
)
@click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a parameter (repeatable)."
)
@click.option("--sweep", metavar="KEY=A,B,C", help="Simulate once per value of one parameter.")
@click.option("--cpu-ratio", type=float, help="Cluster CPU speed / this machine's (e.g. 0.8).")
@click.option("--recalibrate", is_flag=True, help="Measure again instead of using the cache.")
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Random seed of the simulation."
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (faster).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a summary JSON here.",
)
@pass_ctx
def predict(ctx: Ctx, **kw: Any) -> None:
    """Each strategy's challenge scores, simulated before a cluster run.

    Measures your model as one pod of each strategy serves it (cached), then simulates the
    profile on the cluster: users, the Service, pods with their threads and CPU limits, the
    HPA's algorithm, metrics-server, pod start-up and termination. Writes run directories
    that `ggctl report` shows beside measured runs, labelled "predicted".
    """
    from ggctl.predict.show import run_predict

    run_predict(ctx.settings(), console=console, err=err_console, **kw)
