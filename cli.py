"""The `ggctl` command line: parse flags, call one function, print. No logic worth testing here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import rich_click as click
from rich.markup import escape

from ggctl import __version__
from ggctl.commands import COMMANDS
from ggctl.commands.base import Ctx, err_console
from ggctl.errors import GgctlError


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
    ctx.obj = Ctx(config, flags)
    _RUN["ctx"] = ctx.obj  # for main(): where the failure log goes, and -v


for _command in COMMANDS:
    cli.add_command(_command)


_RUN: dict[str, Any] = {}


def _failed(exc: BaseException, argv: list[str] | None) -> None:
    """Keep the traceback of a failure in the state dir's log; print it too with -v."""
    run_ctx = _RUN.get("ctx")
    verbose = bool(run_ctx and run_ctx.flags.get("verbose"))
    try:
        state_dir = run_ctx.settings().state_dir if run_ctx else None
    except Exception:  # a broken config file: its own error is what the user sees
        state_dir = None
    from ggctl.errors import log_failure

    path = log_failure(state_dir, list(sys.argv[1:] if argv is None else argv), exc)
    if verbose:
        err_console.print_exception(show_locals=False)
    elif path is not None:
        err_console.print(f"[dim]details: {path} (or rerun with -v)[/]", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning expected failures into one readable message."""
    from ggctl.provision.errors import describe

    try:
        cli.main(args=argv, prog_name="ggctl", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("[yellow]Aborted.[/]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        # A client library's failure that no step turned into a message yet (the outside
        # world: cloud, network) still ends in one; anything else is a bug and shows.
        err = exc if isinstance(exc, GgctlError) else describe(exc, "finish the command")
        _failed(exc, argv)
        if err is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(err.message)}", highlight=False)
        if err.hint:
            err_console.print(f"[dim]hint:[/] {escape(err.hint)}", highlight=False)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        sys.exit(130)
    else:
        sys.exit(0)
