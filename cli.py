"""The `ggctl` command line: parse flags, call one function, print. No logic worth testing here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import rich_click as click
from rich.console import Console

from ggctl import __version__
from ggctl.config import Settings, load_settings
from ggctl.errors import GgctlError, NotYetAvailable

console = Console()
err_console = Console(stderr=True)


class Ctx:
    """What the group passes to every command: the settings source and the console."""

    def __init__(self, config: Path | None, flags: dict[str, Any]):
        self.config = config
        self.flags = flags

    def settings(self, **overrides: Any) -> Settings:
        merged: dict[str, Any] = dict(self.flags)
        for key, value in overrides.items():
            if isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        return load_settings(self.config, merged)


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
def cli(ctx: click.Context, config: Path | None, verbose: int, quiet: bool | None,
        state_dir: Path | None) -> None:
    """ggctl: from nothing to a fast, autoscaled food-photo classifier on Kubernetes.

    \b
    The journey:   reserve → cluster → build → deploy → evaluate → teardown
    Locally:       demo (serve + load test + scores), serve, model
    """
    flags: dict[str, Any] = {"state_dir": state_dir, "quiet": quiet}
    if verbose:
        flags["verbose"] = verbose
    ctx.obj = Ctx(config, flags)


def _not_yet(name: str, issue: str) -> None:
    raise NotYetAvailable(
        f"`ggctl {name}` is not yet available in ggctl {__version__}.",
        hint=f"It arrives with {issue}; nothing was changed.",
    )


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def reserve(args: tuple[str, ...]) -> None:
    """Reserve the three VMs, networks and lease on Chameleon (not yet available)."""
    _not_yet("reserve", "the provisioning release")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cluster(args: tuple[str, ...]) -> None:
    """Turn the VMs into a Kubernetes cluster with a registry (not yet available)."""
    _not_yet("cluster", "the cluster release")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def build(args: tuple[str, ...]) -> None:
    """Build the service image and push it to the cluster's registry (not yet available)."""
    _not_yet("build", "the deploy release")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def deploy(args: tuple[str, ...]) -> None:
    """Deploy the service with a strategy: k8s, lb, hpa, optimized (not yet available)."""
    _not_yet("deploy", "the deploy release")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate(args: tuple[str, ...]) -> None:
    """Load-test the deployed service and monitor its pods (not yet available)."""
    _not_yet("evaluate", "the deploy release")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def status(args: tuple[str, ...]) -> None:
    """Show what exists: lease, servers, cluster, deployment (not yet available)."""
    _not_yet("status", "the provisioning release")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def teardown(args: tuple[str, ...]) -> None:
    """Release everything ggctl reserved (not yet available)."""
    _not_yet("teardown", "the provisioning release")


@cli.command()
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX model to serve (default: the built-in, untrained demo model).")
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 to expose).")
@click.option("--port", type=int, help="Port (default 5000).")
@click.option("--workers", type=int, help="gunicorn worker processes (default 1).")
@click.option("--threads", type=int, help="Request threads per worker (default 4).")
@click.option("--ort-threads", type=int, help="ONNX Runtime intra-op threads per inference.")
@click.option("--max-inflight", type=int, help="Concurrent inferences per worker (0: per CPU).")
@click.option("--max-upload-mb", type=float, help="Largest accepted upload (default 10).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@pass_ctx
def serve(ctx: Ctx, model: Path | None, host: str | None, port: int | None,
          workers: int | None, threads: int | None, ort_threads: int | None,
          max_inflight: int | None, max_upload_mb: float | None, access_log: bool) -> None:
    """Serve the classifier locally under gunicorn (page, /predict, /test, /metrics)."""
    from ggctl.serving import serve_options, start_foreground

    settings = ctx.settings(serve={
        "model": model, "host": host, "port": port, "workers": workers, "threads": threads,
        "ort_threads": ort_threads, "max_inflight": max_inflight, "max_upload_mb": max_upload_mb,
    })
    opts = serve_options(settings, access_log=access_log)
    if not settings.quiet:
        err_console.print(
            f"[bold]ggctl serve[/] {opts.model} on http://{opts.host}:{opts.port}/ "
            f"({opts.workers} worker(s) x {opts.threads} threads, ORT {opts.ort_threads} "
            f"thread(s)); Ctrl-C stops", highlight=False,
        )
    start_foreground(opts)


@cli.group("config")
def config_group() -> None:
    """Inspect the effective settings."""


@config_group.command("show")
@click.option("-o", "--output", type=click.Choice(["toml", "json"]), default="json")
@pass_ctx
def config_show(ctx: Ctx, output: str) -> None:
    """Print the settings after defaults, config file, GGCTL_* variables and flags."""
    settings = ctx.settings()
    data = settings.model_dump(mode="json")
    if output == "json":
        import json

        click.echo(json.dumps(data, indent=2))
    else:
        for section, values in data.items():
            if not isinstance(values, dict):
                click.echo(f"{section} = {_toml_value(values)}")
        for section, values in data.items():
            if isinstance(values, dict):
                click.echo(f"\n[{section}]")
                for key, value in values.items():
                    if value is not None:
                        click.echo(f"{key} = {_toml_value(value)}")


def _toml_value(value: Any) -> str:
    import json

    return json.dumps(value)


@cli.command()
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX model to serve (default: the built-in, untrained demo model).")
@click.option("--speed", type=float,
              help="Time compression of the profile (default 15: 30 min in 2 min).")
@click.option("--duration", type=float, help="Stop after this many (compressed) seconds.")
@click.option("--profile", help="Load profile: challenge, smoke, or a YAML file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results JSON here.")
@click.option("--keep-serving", is_flag=True, help="Leave the service up until Ctrl-C.")
@click.option("--workers", type=int, help="gunicorn worker processes.")
@click.option("--threads", type=int, help="Request threads per worker.")
@click.option("--ort-threads", type=int, help="ONNX Runtime intra-op threads per inference.")
@pass_ctx
def demo(ctx: Ctx, model: Path | None, speed: float | None, duration: float | None,
         profile: str | None, json_path: Path | None, keep_serving: bool,
         workers: int | None, threads: int | None, ort_threads: int | None) -> None:
    """Serve locally and run the challenge's load test on it, time-compressed, with scores."""
    from ggctl.demo import run_demo
    from ggctl.evaluate.report import scores_table, stages_table

    settings = ctx.settings(
        demo={"speed": speed, "duration": duration, "profile": profile},
        serve={"model": model, "workers": workers, "threads": threads,
               "ort_threads": ort_threads},
    )

    def show(result: Any) -> None:
        if not settings.quiet:
            console.print(stages_table(result.scores, result.profile))
        console.print(scores_table(
            result.scores,
            title=f"{result.profile.name} profile x{result.profile.speed:g} on "
                  f"{result.model.name} ({result.scores.duration_s:.0f} s)",
        ))
        warned = " (Locust warned of CPU saturation)" if result.load.cpu_warning else ""
        console.print(f"[dim]load generator used {result.load.cpu_cores:.2f} CPU cores{warned}; "
                      f"files in {result.run_dir}[/]", highlight=False)

    run_demo(settings, keep_serving=keep_serving, json_path=json_path, console=err_console,
             on_result=show)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning expected failures into one readable message."""
    try:
        cli.main(args=argv, prog_name="ggctl", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("[yellow]Aborted.[/]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GgctlError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"[dim]hint:[/] {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]Interrupted.[/]")
        sys.exit(130)
    else:
        sys.exit(0)
