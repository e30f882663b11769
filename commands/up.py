"""`ggctl up` / `ggctl down`: the whole journey, each step skipped when done (up.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import (
    Ctx,
    choice_options,
    chosen_model,
    cloud_options,
    console,
    err_console,
    model_option,
    pass_ctx,
)
from ggctl.commands.teardown import teardown as teardown_command


@click.command()
@click.option(
    "--strategy",
    type=click.Choice(["k8s", "lb", "hpa", "optimized"]),
    help="Deploy strategy (default: [deploy] strategy, optimized).",
)
@model_option
@choice_options
@click.option(
    "--key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SSH public key (default ~/.ssh/id_ed25519.pub, else id_rsa.pub).",
)
@cloud_options
@pass_ctx
def up(
    ctx: Ctx,
    strategy: str | None,
    model: Path | None,
    int8_if_better: bool,
    data: Path | None,
    max_drop: float,
    public_key: Path | None,
    cloud: dict[str, Any],
) -> None:
    """From nothing to a URL: reserve → cluster → build → deploy, skipping what is done."""
    from ggctl.up import run_up, steps_table

    settings = ctx.cloud_settings(
        cloud, cloud={"public_key": public_key}, deploy={"strategy": strategy}
    )
    model = chosen_model(settings, model, int8_if_better, data, max_drop)

    def show(step: Any) -> None:
        mark = {"ran": "[green]✓[/]", "skipped": "[dim]–[/]", "failed": "[red]✗[/]"}
        err_console.print(
            f"{mark.get(step.status, '?')} [bold]{step.name}[/] {step.status} "
            f"in {step.seconds:.1f} s: {step.detail}",
            highlight=False,
        )

    result = run_up(settings, model=model, console=err_console, on_step=show)
    console.print(steps_table(result))
    console.print(
        f"service: {result.url}  (open it in a browser to classify a photo; "
        f"{result.url}test runs the bundled test image)",
        highlight=False,
    )
    if result.lb_url:
        console.print(
            f"load balancer: {result.lb_url}  (the Service's EXTERNAL-IP, on the cluster "
            "network: from the nodes and the lease's other VMs)",
            highlight=False,
        )


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@cloud_options
@click.pass_context
def down(cctx: click.Context, dry_run: bool, yes: bool, cloud: dict[str, Any]) -> None:
    """Undo `ggctl up`: teardown, then forget the cluster, image and deployment records."""
    from ggctl.up import forget_markers

    # the teardown command as a user would give it: its own flags, by name
    cctx.invoke(teardown_command, dry_run=dry_run, yes=yes, **cloud)
    if not dry_run:
        forgot = forget_markers(cctx.find_object(Ctx).settings().state_dir)
        if forgot:
            console.print(f"forgot {', '.join(forgot)}", highlight=False)
