"""`ggctl deploy`: settings → image, kubeconfig, objects → (print | apply and wait)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ggctl.config import Settings
from ggctl.errors import GgctlError
from ggctl.state import StateDir

from .render import render, to_json, to_yaml
from .strategy import DEFAULT_IMAGE, get_strategy


@dataclass
class Plan:
    strategy: str
    image: str
    image_source: str
    namespace: str
    objects: list[dict[str, Any]]


def resolve_image(settings: Settings) -> tuple[str, str]:
    """(image, where it came from): --image/config, else the last `ggctl build`, else default."""
    if settings.deploy.image:
        return settings.deploy.image, "settings"
    built = StateDir(settings.state_dir).read("build") or {}
    if built.get("image"):
        return str(built["image"]), "last ggctl build"
    return DEFAULT_IMAGE, "default"


def resolve_kubeconfig(settings: Settings) -> Path | None:
    """--kubeconfig/config, else <state dir>/kubeconfig if `ggctl cluster` wrote one, else None
    (the client's own default: $KUBECONFIG, then ~/.kube/config)."""
    if settings.deploy.kubeconfig is not None:
        path = settings.deploy.kubeconfig.expanduser()
        if not path.is_file():
            raise GgctlError(f"kubeconfig {path} does not exist")
        return path
    own = settings.state_dir / "kubeconfig"
    return own if own.is_file() else None


def plan(settings: Settings) -> Plan:
    strategy = get_strategy(settings.deploy.strategy)
    image, source = resolve_image(settings)
    namespace = settings.deploy.namespace
    return Plan(strategy.name, image, source, namespace, render(strategy, image, namespace))


def render_output(p: Plan, output: str) -> str:
    return to_json(p.objects) if output == "json" else to_yaml(p.objects)


def run_deploy(
    settings: Settings, *, console: Console, poll: float = 1.0, unschedulable_grace: float = 60.0
) -> Any:
    """Apply the plan to the cluster and wait for it; returns the apply.DeployResult."""
    from .apply import Cluster, deploy

    p = plan(settings)
    if p.image_source == "default":
        console.print(
            f"[yellow]no image given and no `ggctl build` recorded: using {p.image}[/]",
            highlight=False,
        )
    cluster = Cluster.from_kubeconfig(resolve_kubeconfig(settings))
    try:
        console.print(
            f"[bold]ggctl deploy[/] strategy {p.strategy}, image {p.image}, "
            f"namespace {p.namespace} on {cluster.host}",
            highlight=False,
        )
        result = deploy(
            cluster,
            p.objects,
            p.namespace,
            timeout=settings.deploy.timeout,
            console=console,
            poll=poll,
            unschedulable_grace=unschedulable_grace,
        )
    finally:
        cluster.close()
    StateDir(settings.state_dir).write(
        "deploy",
        {
            "strategy": p.strategy,
            "image": p.image,
            "namespace": p.namespace,
            "server": cluster.host,
            "kubeconfig": str(resolve_kubeconfig(settings) or ""),
        },
    )
    return result
