"""`ggctl teardown`: release everything of yours (provision/)."""

from __future__ import annotations

import rich_click as click

from ggctl.commands.base import (
    Ctx,
    api_timeout_option,
    cloud_flags,
    console,
    err_console,
    name_option,
    os_cloud_option,
    pass_ctx,
    site_option,
)
from ggctl.errors import GgctlError


@click.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@name_option
@site_option
@os_cloud_option
@api_timeout_option
@pass_ctx
def teardown(
    ctx: Ctx,
    dry_run: bool,
    yes: bool,
    name: str | None,
    site: str | None,
    os_cloud: str | None,
    api_timeout: float | None,
) -> None:
    """Release everything of yours: floating IP, servers, router, networks, group, lease."""
    from ggctl.provision.show import configure_logging, print_leaks, print_plan
    from ggctl.provision.teardown import teardown as do_teardown

    settings = ctx.settings(
        **cloud_flags(name=name, site=site, os_cloud=os_cloud, api_timeout=api_timeout)
    )
    configure_logging(settings.verbose)
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
