"""`ggctl deploy`: a strategy onto the cluster (manifests/)."""

from __future__ import annotations

from pathlib import Path

import rich_click as click

from ggctl.commands.base import Ctx, console, err_console, kv_table, pass_ctx


@click.command()
@click.option(
    "--strategy",
    type=click.Choice(["k8s", "lb", "hpa", "optimized"]),
    help="k8s, lb, hpa (the course's) or optimized (ours; the default).",
)
@click.option("--image", help="Image reference (default: the last `ggctl build`).")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Cluster to use (default: <state dir>/kubeconfig, else $KUBECONFIG).",
)
@click.option("-n", "--namespace", help="Namespace (default: default).")
@click.option("--dry-run", is_flag=True, help="Render only; contact no cluster.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    help="Print the manifests (with --dry-run: instead of applying).",
)
@click.option("--timeout", type=float, help="Seconds to wait for the rollout (default 600).")
@pass_ctx
def deploy(
    ctx: Ctx,
    strategy: str | None,
    image: str | None,
    kubeconfig: Path | None,
    namespace: str | None,
    dry_run: bool,
    output: str | None,
    timeout: float | None,
) -> None:
    """Deploy the service with a strategy; switching removes the previous one's objects."""
    from ggctl.manifests.deploy import plan, render_output, run_deploy

    settings = ctx.settings(
        deploy={
            "strategy": strategy,
            "image": image,
            "namespace": namespace,
            "kubeconfig": kubeconfig,
            "timeout": timeout,
        }
    )
    if output:
        click.echo(render_output(plan(settings), output), nl=False)
    if dry_run:
        if not output:
            p = plan(settings)
            console.print(
                kv_table(
                    f"dry run: strategy {p.strategy} (nothing applied)",
                    [(f"{o['kind']}", o["metadata"]["name"]) for o in p.objects]
                    + [("image", f"{p.image} ({p.image_source})"), ("namespace", p.namespace)],
                )
            )
        return
    from ggctl.cluster.tunnel import api_access
    from ggctl.state import StateDir

    with api_access(settings, StateDir(settings.state_dir)):
        result = run_deploy(settings, console=err_console)
    console.print(
        kv_table(
            f"deployed in {result.namespace} ("
            + (f"{result.prune_s:.0f} s removing the previous objects, " if result.prune_s else "")
            + f"{result.rollout_s:.0f} s rollout)",
            [(f"{c.kind} {c.name}", c.action) for c in result.changes],
        )
    )
