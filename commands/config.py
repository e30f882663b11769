"""`ggctl config show`: the effective settings (config.py)."""

from __future__ import annotations

from typing import Any

import rich_click as click

from ggctl.commands.base import Ctx, pass_ctx


@click.group("config")
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
