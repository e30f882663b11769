"""`ggctl build`: the service image on node-0 (image/)."""

from __future__ import annotations

from pathlib import Path

import rich_click as click

from ggctl.commands.base import (
    Ctx,
    choice_options,
    chosen_model,
    console,
    err_console,
    kv_table,
    model_option,
    pass_ctx,
)


@click.command()
@model_option
@choice_options
@click.option("--tag", help="Push under this tag instead of the content hash (always built).")
@click.option("--dry-run", is_flag=True, help="List the context's files and the tag; send nothing.")
@pass_ctx
def build(
    ctx: Ctx,
    model: Path | None,
    int8_if_better: bool,
    data: Path | None,
    max_drop: float,
    tag: str | None,
    dry_run: bool,
) -> None:
    """Build the service image on node-0 (BuildKit) and push it to node-0:5000; no local Docker."""
    from ggctl.image.build import prepare, run_build

    settings = ctx.settings()
    model = chosen_model(settings, model, int8_if_better, data, max_drop, dry_run=dry_run)
    plan = prepare(settings, model, tag, dry_run=dry_run)
    if dry_run:
        rows = [(f.name, f"{f.size:,} B") for f in plan.context.files]
        console.print(
            kv_table(
                f"dry run: {len(rows)} files, {plan.context.size:,} B (nothing sent)",
                [
                    *rows,
                    ("model", str(plan.context.model)),
                    ("tag", plan.tag),
                    ("image", plan.image),
                ],
            )
        )
        return
    result = run_build(settings, plan=plan, console=err_console)
    done = "pushed" if result.outcome.pushed else "already in the registry, not rebuilt:"
    console.print(
        f"{done} {result.outcome.image} ({result.outcome.seconds:.0f} s)", highlight=False
    )
