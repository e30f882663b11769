"""`ggctl cluster` (and `reset`, `registry`) and `ggctl kubectl`: the cluster step (cluster/)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import Ctx, console, err_console, pass_ctx


def _cluster_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--inventory",
                "-i",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Ansible inventory (default: the one `ggctl reserve` wrote).",
            ),
            click.option("--check", is_flag=True, help="Ansible check mode: show, change nothing."),
            click.option("--tags", "-t", multiple=True, help="Only tasks with these tags."),
            click.option("--skip-tags", multiple=True, help="Skip tasks with these tags."),
            click.option("--limit", "-l", help="Only these hosts (an Ansible pattern)."),
            click.option(
                "-e",
                "--extra-var",
                "extra",
                multiple=True,
                metavar="KEY=VALUE",
                help="Override a role variable, e.g. cluster_kube_version=1.36.",
            ),
        ]
    ):
        f = option(f)
    return f


def _run_cluster(ctx: Ctx, playbook: str, **kw: Any) -> None:
    from ggctl.cluster.run import run_from_settings

    result = run_from_settings(ctx.settings(), playbook=playbook, console=err_console, **kw)
    if result.kubeconfig:
        console.print(
            f"kubeconfig: {result.kubeconfig} (ggctl kubectl -- get nodes)", highlight=False
        )
    console.print(
        f"[green]done[/] in {result.model.elapsed():.0f} s; log: {result.log_path}", highlight=False
    )


@click.group(invoke_without_command=True)
@_cluster_options
@click.pass_context
def cluster(cctx: click.Context, **kw: Any) -> None:
    """Turn the VMs into a Kubernetes cluster with a registry (Ansible; safe to rerun)."""
    if cctx.invoked_subcommand is None:
        _run_cluster(cctx.find_object(Ctx), "cluster", **kw)


@cluster.command("reset")
@_cluster_options
@click.option("--registry", is_flag=True, help="Also delete the registry and its images.")
@pass_ctx
def cluster_reset(ctx: Ctx, registry: bool, extra: tuple[str, ...], **kw: Any) -> None:
    """Undo kubeadm on every node (packages and registry stay, unless --registry)."""
    extra = (*extra, "reset_registry=true") if registry else extra
    _run_cluster(ctx, "reset", extra=extra, **kw)


@cluster.command("registry")
@_cluster_options
@pass_ctx
def cluster_registry(ctx: Ctx, **kw: Any) -> None:
    """Only the registry, Docker Hub cache and image builder, and trust them on every node."""
    _run_cluster(ctx, "registry", **kw)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def kubectl(ctx: Ctx, args: tuple[str, ...]) -> None:
    """Run kubectl against the cluster through an SSH tunnel via node-0: ggctl kubectl -- ARGS."""
    from ggctl.cluster.tunnel import kubectl_from_settings

    sys.exit(kubectl_from_settings(ctx.settings(), args))
