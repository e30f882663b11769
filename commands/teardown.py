"""`ggctl teardown`: release everything of yours (provision/)."""

from __future__ import annotations

from typing import Any

import rich_click as click

from ggctl.commands.base import (
    Ctx,
    cloud_options,
    console,
    err_console,
    pass_ctx,
)
from ggctl.errors import GgctlError


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@cloud_options
@pass_ctx
def teardown(
    ctx: Ctx,
    dry_run: bool,
    yes: bool,
    cloud: dict[str, Any],
) -> None:
    """Release everything of yours: floating IP, servers, router, networks, group, lease."""
    from ggctl.provision.show import print_leaks, print_plan
    from ggctl.provision.teardown import teardown as do_teardown

    settings = ctx.cloud_settings(cloud)
    if not dry_run and not yes:
        preview = do_teardown(settings, dry_run=True, console=err_console)
        print_plan(err_console, preview.actions, title=f"teardown of {preview.suffix}")
        if not preview.actions:
            return
        click.confirm("Delete all of the above?", abort=True, err=True)
    result = do_teardown(settings, dry_run=dry_run, console=err_console)
    print_plan(
        err_console,
        result.actions,
        title="teardown (dry run)" if dry_run else f"teardown of {result.suffix}",
    )
    if not dry_run:
        print_leaks(console, result.leaks)
        if result.leaks:
            raise GgctlError(
                "teardown left resources behind (listed above)",
                hint="rerun `ggctl teardown --yes`; it is safe to repeat",
            )
