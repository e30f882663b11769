"""`ggctl reserve`, `status`, `extend`, `ssh`: the reservation on Chameleon (provision/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import (
    Ctx,
    cloud_options,
    console,
    err_console,
    pass_ctx,
)


@click.command()
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@cloud_options
@click.option("--flavor", help="Flavor to reserve (default m1.large).")
@click.option("--image", help="Node image (default CC-Ubuntu24.04).")
@click.option("--hours", type=int, help="Length of a new lease (default 6).")
@click.option(
    "--key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SSH public key (default ~/.ssh/id_ed25519.pub, else id_rsa.pub).",
)
@pass_ctx
def reserve(
    ctx: Ctx,
    dry_run: bool,
    cloud: dict[str, Any],
    flavor: str | None,
    image: str | None,
    hours: int | None,
    public_key: Path | None,
) -> None:
    """Reserve the lease, networks and three VMs on Chameleon; resumes, never duplicates."""
    from ggctl.provision.reserve import reserve as do_reserve
    from ggctl.provision.show import print_plan, print_status

    settings = ctx.cloud_settings(
        cloud, cloud={"flavor": flavor, "image": image, "hours": hours, "public_key": public_key}
    )
    result = do_reserve(settings, dry_run=dry_run, console=err_console)
    print_plan(err_console, result.actions, title="reserve (dry run)" if dry_run else "reserve")
    if result.state is not None:
        print_status(console, result.state, "table")


@click.command()
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
@cloud_options
@pass_ctx
def status(
    ctx: Ctx,
    output: str,
    cloud: dict[str, Any],
) -> None:
    """Show what exists: lease and its expiry, servers, addresses, floating IP."""
    from ggctl.provision.show import print_status
    from ggctl.provision.status import status as do_status

    settings = ctx.cloud_settings(cloud)
    print_status(console, do_status(settings), output)


@click.command()
@click.option(
    "--hours", type=click.IntRange(1, 24 * 183), required=True, help="Hours to add to the lease."
)
@cloud_options
@pass_ctx
def extend(
    ctx: Ctx,
    hours: int,
    cloud: dict[str, Any],
) -> None:
    """Lengthen the lease by some hours."""
    from ggctl.provision.status import extend as do_extend

    settings = ctx.cloud_settings(cloud)
    lease = do_extend(settings, hours)
    console.print(
        f"lease {lease['name']} {lease['status']}: ends {lease['end']} ({lease['remaining']})",
        highlight=False,
    )


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def ssh(ctx: Ctx, node: str, command: tuple[str, ...]) -> None:
    """SSH to node-N through node-0 (`ggctl ssh node-1 -- uptime`)."""
    import os

    from ggctl.provision.shell import ssh_command

    argv = ssh_command(ctx.settings().state_dir, node, list(command))
    os.execvp(argv[0], argv)  # noqa: S606 (replace ggctl by ssh: a tty, signals, exit code)
