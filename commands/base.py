"""What every command module shares: the context the root group passes, the consoles, and
the options that several commands take. Command modules import from here, never from each other
(`down` alone invokes the `teardown` command, as a user would)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import rich_click as click
from rich.console import Console

from ggctl.config import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


class Ctx:
    """What the group passes to every command: the settings source and the console."""

    def __init__(self, config: Path | None, flags: dict[str, Any]):
        self.config = config
        self.flags = flags
        #: The last settings a command loaded: main() reports a failure with their
        #: verbosity and state dir.
        self.loaded: Settings | None = None

    def settings(self, **overrides: Any) -> Settings:
        merged: dict[str, Any] = dict(self.flags)
        for key, value in overrides.items():
            if isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        self.loaded = load_settings(self.config, merged)
        return self.loaded

    def cloud_settings(self, flags: dict[str, Any], **overrides: Any) -> Settings:
        """Settings with the command line's [cloud] flags (from `cloud_options`), and the
        cloud libraries' logging set to the verbosity: what a command needs before it
        talks to the cloud."""
        from ggctl.provision.show import configure_logging

        settings = self.settings(cloud={**flags, **overrides.pop("cloud", {})}, **overrides)
        configure_logging(settings.verbose)
        return settings


pass_ctx = click.make_pass_decorator(Ctx)


os_cloud_option = click.option(
    "--os-cloud", help="clouds.yaml entry (default: $OS_CLOUD, else OS_* variables)."
)
name_option = click.option(
    "--name", help="Suffix on every resource name (default: your OpenStack user name)."
)
site_option = click.option("--site", help="Chameleon site (default KVM@TACC).")
api_timeout_option = click.option(
    "--api-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds one cloud API request may go unanswered (default 60; [cloud] api_timeout).",
)


def cloud_options(f: Any) -> Any:
    """--name, --site, --os-cloud and --api-timeout, which every command that talks to the
    cloud takes, handed to it as one `cloud` dict of [cloud] settings (None: not given)."""

    @functools.wraps(f)
    def with_cloud(
        *args: Any,
        name: str | None,
        site: str | None,
        os_cloud: str | None,
        api_timeout: float | None,
        **kwargs: Any,
    ) -> Any:
        cloud = {"name": name, "site": site, "os_cloud": os_cloud, "api_timeout": api_timeout}
        return f(*args, cloud=cloud, **kwargs)

    for option in (api_timeout_option, os_cloud_option, site_option, name_option):
        with_cloud = option(with_cloud)
    return with_cloud


model_option = click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to bake in (default: [serve] model, else the untrained demo model).",
)


def choice_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--int8-if-better",
                is_flag=True,
                help="Bake in the model's int8 twin where it measures faster and its accuracy "
                "drop is within --max-drop (needs --data; see `ggctl model choose`).",
            ),
            click.option(
                "--data",
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                help="Food-11 layout folder the accuracy drop is measured on.",
            ),
            click.option(
                "--max-drop",
                type=float,
                default=1.0,
                show_default=True,
                help="Largest accepted accuracy drop of int8, in percentage points.",
            ),
        ]
    ):
        f = option(f)
    return f


def choice_table(choice: Any) -> Any:
    from rich.table import Table

    table = Table(title="fp32 or int8", title_justify="left")
    for column in ("", "fp32", "int8"):
        table.add_column(column, style="bold" if not column else None)
    models = (choice.fp32, choice.int8)
    table.add_row("p50 latency, batch 1", *(f"{m.p50_ms:#.3g} ms" for m in models))
    table.add_row(
        "accuracy",
        *("unknown" if m.accuracy is None else f"{m.accuracy:.2%} of {m.images}" for m in models),
    )
    table.add_row(
        "size",
        *(
            f"{m.size_bytes / 1e6:.2f} MB"
            if m.size_bytes >= 1e5
            else f"{m.size_bytes / 1e3:.1f} kB"
            for m in models
        ),
    )
    table.add_row("file", *(m.path for m in models))
    return table


def chosen_model(
    settings: Settings,
    model: Path | None,
    int8_if_better: bool,
    data: Path | None,
    max_drop: float,
    *,
    dry_run: bool = False,
) -> Path | None:
    """--int8-if-better: run the choice, show it, and return the chosen file; else `model`."""
    if not int8_if_better:
        if data is not None:
            raise click.UsageError("--data goes with --int8-if-better")
        return model
    from ggctl.image.build import choose_for_build

    with err_console.status("quantizing, measuring and evaluating fp32 and int8…"):
        choice = choose_for_build(settings, model, data, max_drop, dry_run=dry_run)
    err_console.print(choice_table(choice))
    err_console.print(f"[bold]{choice.chosen}[/] chosen: {choice.reason}", highlight=False)
    return Path(choice.path)


def kv_table(title: str, rows: list[tuple[str, str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table
