"""The `ggctl` command line: parse flags, call one function, print. No logic worth testing here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import rich_click as click

from ggctl import __version__
from ggctl.commands import COMMANDS
from ggctl.commands.base import Ctx, err_console


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
# Help lists the commands in the journey's order, not alphabetically.
@click.command_panel(
    "The journey",
    commands=["reserve", "cluster", "build", "deploy", "evaluate", "teardown", "up", "down"],
)
@click.command_panel("While it runs", commands=["status", "extend", "ssh", "kubectl", "report"])
@click.command_panel("On your machine", commands=["demo", "predict", "serve", "model", "config"])
@click.version_option(__version__, prog_name="ggctl")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config file (default: $GGCTL_CONFIG, else ~/.config/ggctl/config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More output; repeat for more.")
@click.option("-q", "--quiet", is_flag=True, default=None, help="Only errors and results.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where ggctl keeps state and run results (default: XDG state dir).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config: Path | None,
    verbose: int,
    quiet: bool | None,
    state_dir: Path | None,
) -> None:
    """ggctl: from nothing to a fast, autoscaled food-photo classifier on Kubernetes.

    \b
    The journey:   reserve → cluster → build → deploy → evaluate → teardown
    Locally:       demo (serve + load test + scores), serve, model
    """
    flags: dict[str, Any] = {"state_dir": state_dir, "quiet": quiet}
    if verbose:
        flags["verbose"] = verbose
    if isinstance(ctx.obj, Ctx):  # main()'s, so that it can report a failure
        ctx.obj.config, ctx.obj.flags = config, flags
    else:
        ctx.obj = Ctx(config, flags)


for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning failures of the outside world into one readable
    message (errors.report: -v shows the traceback, <state dir>/errors.log keeps it)."""
    from ggctl.errors import report

    run = Ctx(None, {})
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="ggctl", standalone_mode=False, obj=run)
    except click.exceptions.Abort:
        err_console.print("[yellow]Aborted.[/]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        sys.exit(130)
    except Exception as exc:
        settings = run.loaded
        verbose = settings.verbose if settings else int(run.flags.get("verbose") or 0)
        code = report(
            exc,
            err_console,
            verbose=verbose,
            state_dir=settings.state_dir if settings else None,
            argv=args,
        )
        if code is None:
            raise  # a bug in ggctl: its traceback is what a report needs
        sys.exit(code)
    else:
        sys.exit(0)
