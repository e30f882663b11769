"""`ggctl up` (reserve → cluster → build → deploy, each skipped when done) and `ggctl down`.

When is a step done?

    reserve   its plan is empty (reserve is called anyway: with nothing to do it only re-reads
              the cloud and refreshes provision.json, the inventory and the ssh_config)
    cluster   <state>/kubeconfig exists and <state>/cluster.json (written by `ggctl cluster`
              after a successful run) says it finished, and the nodes are the ones it ran on
              (up.json records their server ids; VMs replaced since then → run again)
    build     build.json's context tag equals the tag of the context now, and the cluster step
              did not just run (a new registry is empty); otherwise `build` itself skips the
              push when node-0's registry already has the tag
    deploy    deploy.json has this strategy, image and namespace, and no earlier step ran

Every step calls the same function as its own command; nothing shells out to ggctl. A failed
step stops `up`; rerunning resumes there, since the steps before it are then skipped.
`ggctl down` is `ggctl teardown`, then forgets the markers of what it deleted (cluster.json,
kubeconfig, build.json, deploy.json, up.json), so that the next `up` starts clean.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ggctl.cluster.tunnel import api_access, kubeconfig_server  # noqa: F401 - used by up and its tests
from ggctl.errors import GgctlError
from ggctl.state import StateDir

log = logging.getLogger(__name__)

STEPS = ("reserve", "cluster", "build", "deploy")
STATE_NAME = "up"
MARKERS = ("cluster.json", "kubeconfig", "build.json", "deploy.json", "up.json")


@dataclass
class Step:
    name: str
    status: str = "pending"  # ran, skipped, failed, pending
    seconds: float = 0.0
    detail: str = ""


@dataclass
class UpResult:
    steps: list[Step] = field(default_factory=lambda: [Step(n) for n in STEPS])
    strategy: str = ""
    image: str = ""
    url: str | None = None
    #: the LoadBalancer address (MetalLB's pool on the cluster network: reachable from the
    #: nodes and the other VMs of the lease, not from outside), when the Service has one
    lb_url: str | None = None

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    @property
    def skipped_all(self) -> bool:
        return all(s.status == "skipped" for s in self.steps)


# --------------------------------------------------------------------------- done checks


def server_ids(provision: dict[str, Any] | None) -> list[str]:
    return sorted(str(n["id"]) for n in (provision or {}).get("nodes") or [] if n.get("id"))


def cluster_done(state: StateDir, servers: list[str]) -> tuple[bool, str]:
    """Whether the cluster step can be skipped, and why (or why not)."""
    if not state.path("kubeconfig").is_file():
        return False, "no kubeconfig yet"
    marker = state.read("cluster") or {}
    if not marker.get("finished"):
        return False, "ggctl cluster never finished"
    recorded = (state.read(STATE_NAME) or {}).get("cluster_servers")
    if recorded is not None and sorted(recorded) != servers:
        return False, "the nodes were replaced since the cluster was made"
    return True, f"cluster made {marker['finished']}"


def build_done(state: StateDir, context_tag: str) -> tuple[bool, str]:
    built = state.read("build") or {}
    if built.get("context_tag", built.get("tag")) == context_tag and built.get("image"):
        return True, f"{built['image']} already built"
    return False, "new build context"


def deploy_done(state: StateDir, strategy: str, image: str, namespace: str) -> tuple[bool, str]:
    rec = state.read("deploy") or {}
    if (rec.get("strategy"), rec.get("image"), rec.get("namespace", namespace)) == (
        strategy,
        image,
        namespace,
    ):
        return True, f"{strategy} with {image} already deployed"
    return (
        False,
        "not deployed yet"
        if not rec
        else f"deployed: {rec.get('strategy')} with {rec.get('image')}",
    )


def service_url(provision: dict[str, Any] | None, node_port: int) -> str | None:
    fip = (provision or {}).get("floating_ip")
    return f"http://{fip}:{node_port}/" if fip else None


def load_balancer_url(settings: Any, strategy: Any) -> str | None:
    """http://<ingress address>:<port>/ of the strategy's Service, as its status reports it
    (`kubectl get svc` EXTERNAL-IP); None for a NodePort Service or while it is <pending>.
    Read once after the rollout; MetalLB assigns within a second of the Service's creation."""
    if strategy.service_type != "LoadBalancer":
        return None
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from ggctl.manifests.apply import Cluster
    from ggctl.manifests.deploy import resolve_kubeconfig

    cluster = Cluster.from_kubeconfig(resolve_kubeconfig(settings))
    try:
        svc = CoreV1Api(cluster.api_client).read_namespaced_service(
            strategy.service, settings.deploy.namespace, _request_timeout=cluster.timeout
        )
    except (ApiException, HTTPError) as exc:
        # only a display: the deploy itself succeeded, the node-port URL still works
        log.debug("cannot read Service %s: %s", strategy.service, exc)
        return None
    finally:
        cluster.close()
    for ingress in (svc.status.load_balancer.ingress if svc.status.load_balancer else None) or []:
        host = ingress.ip or ingress.hostname
        if host:
            return f"http://{host}:{strategy.service_port}/"
    return None


# --------------------------------------------------------------------------- up


def _timed(result: UpResult, name: str, on_step: Callable[[Step], None] | None) -> Any:
    @contextlib.contextmanager
    def run() -> Iterator[Step]:
        step = result.step(name)
        start = time.monotonic()
        try:
            yield step
        except BaseException:
            step.status = "failed"
            raise
        finally:
            step.seconds = time.monotonic() - start
            if on_step is not None:
                on_step(step)

    return run()


def _inventory(state: StateDir, provision: dict[str, Any] | None) -> Path | None:
    """The inventory `ggctl reserve` wrote (it names it in provision.json)."""
    named = (provision or {}).get("inventory")
    for candidate in (
        Path(named) if named else None,
        state.path("inventory.yaml"),
        state.path("inventory.yml"),
    ):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def run_up(
    settings: Any,
    *,
    model: Path | None = None,
    console: Any,
    on_step: Callable[[Step], None] | None = None,
) -> UpResult:
    """reserve → cluster → build → deploy for the settings, skipping what is done."""
    from ggctl.cluster.run import run_from_settings
    from ggctl.image.build import image_name, prepare, run_build
    from ggctl.manifests.deploy import run_deploy
    from ggctl.manifests.strategy import get_strategy
    from ggctl.provision.reserve import reserve
    from ggctl.provision.show import print_plan

    state = StateDir(settings.state_dir)
    state.ensure()
    strategy = get_strategy(settings.deploy.strategy)
    result = UpResult(strategy=strategy.name)
    # Check the model before anything costs money or time.
    plan = prepare(settings, model)

    with _timed(result, "reserve", on_step) as step:
        reserved = reserve(settings, dry_run=False, console=console)
        provision = reserved.state or {}
        if reserved.actions:
            print_plan(console, reserved.actions, title="reserve")
            step.status, step.detail = "ran", f"{len(reserved.actions)} action(s)"
        else:
            step.status, step.detail = "skipped", "everything exists"
        if not provision.get("floating_ip"):
            raise GgctlError(
                "reserve left node-0 without a floating IP",
                hint="run `ggctl status`, then `ggctl up` again",
            )
    servers = server_ids(provision)
    inventory = _inventory(state, provision)

    with _timed(result, "cluster", on_step) as step:
        done, why = cluster_done(state, servers)
        if done:
            step.status, step.detail = "skipped", why
        else:
            ran = run_from_settings(
                settings, playbook="cluster", inventory=inventory, console=console
            )
            step.status, step.detail = "ran", f"{why}; log {ran.log_path}"
        _remember(state, cluster_servers=servers)
    cluster_ran = result.step("cluster").status == "ran"

    with _timed(result, "build", on_step) as step:
        done, why = build_done(state, plan.context.tag)
        if done and not cluster_ran and plan.image == image_name(plan.context.tag):
            step.status, step.detail = "skipped", why
            image = str((state.read("build") or {})["image"])
        else:
            built = run_build(settings, plan=plan, console=console)
            image = built.outcome.image
            step.status = "ran"
            step.detail = (
                f"pushed {image} ({built.outcome.sent_bytes / 1e6:.1f} MB sent)"
                if built.outcome.pushed
                else f"{image} already in the registry"
            )
    result.image = image

    deploy_settings = settings.model_copy(
        update={
            "deploy": settings.deploy.model_copy(update={"image": image, "strategy": strategy.name})
        }
    )
    with _timed(result, "deploy", on_step) as step:
        done, why = deploy_done(state, strategy.name, image, settings.deploy.namespace)
        if done and not cluster_ran:
            step.status, step.detail = "skipped", why
        else:
            with api_access(deploy_settings, state, inventory):
                deployed = run_deploy(deploy_settings, console=console)
                result.lb_url = load_balancer_url(deploy_settings, strategy)
            changed = sum(c.action != "unchanged" for c in deployed.changes)
            step.status = "ran"
            step.detail = (
                f"{strategy.name}: {changed} object(s) changed, rollout {deployed.rollout_s:.0f} s"
            )

    result.url = service_url(provision, strategy.node_port)
    if result.step("deploy").status == "skipped":
        result.lb_url = (state.read(STATE_NAME) or {}).get("lb_url")
    _remember(
        state,
        strategy=strategy.name,
        image=image,
        url=result.url,
        lb_url=result.lb_url,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        steps={s.name: {"status": s.status, "seconds": round(s.seconds, 2)} for s in result.steps},
    )
    return result


def _remember(state: StateDir, **values: Any) -> None:
    state.write(STATE_NAME, {**(state.read(STATE_NAME) or {}), **values})


def steps_table(result: UpResult) -> Any:
    from rich.table import Table

    total = sum(s.seconds for s in result.steps)
    table = Table(title=f"ggctl up: {result.strategy} in {total:.0f} s", title_justify="left")
    for col in ("step", "result", "time", "detail"):
        table.add_column(col, justify="right" if col == "time" else "left")
    style = {"ran": "green", "skipped": "dim", "failed": "red", "pending": "yellow"}
    for s in result.steps:
        took = f"{s.seconds:.1f} s" if s.status != "pending" else ""
        table.add_row(s.name, f"[{style[s.status]}]{s.status}[/]", took, s.detail)
    return table


# --------------------------------------------------------------------------- down


def forget_markers(state_dir: Path) -> list[str]:
    """After a clean teardown: drop the records of the cluster, image and deployment that went
    with the VMs, so that the next `up` does not skip steps on their account."""
    state = StateDir(state_dir)
    removed = []
    for name in MARKERS:
        path = state.path(name)
        if path.exists():
            path.unlink()
            removed.append(name)
    return removed
