"""`ggctl evaluate`: the challenge's evaluation against the deployed service on Kubernetes.

Same shape as `ggctl demo` (local/demo.py), with the cluster in place of the local server: find
the service's URL, check it answers /readyz, run the profile with the Locust engine while a
`KubernetesSampler` samples the app's pods every 5 s of *profile* time (every 5 / speed
wall seconds for a compressed profile), then score the run exactly as the demo does and
keep requests.csv, samples.csv, cluster.csv, stages.csv, results.json and PNG plots in
`<state dir>/runs/<stamp>-evaluate-<strategy>/`.

The URL: `--url`, else `http://<node-0's floating IP>:32000` from the provisioning state
(provision.json) of the cluster `ggctl deploy` recorded (deploy.json). Every strategy's
Service claims node port 32000, and the security group opens only that port.

Accuracy (`--data DIR --model FILE`): the accuracy of the ONNX file given, on the Food-11
folder, computed here with `ggctl.model.evaluate` through the serving code path (the
service's own decode and resize), before the load test starts. It is the served model's
accuracy only if that file is the one the image was built from; when the service's /info
names another model, a warning says so and results.json records both names. Classifying
3,347 images through the service instead would add load the scores must not include.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ggctl.config import Settings
from ggctl.errors import GgctlError
from ggctl.evaluate.k8s import KubernetesSampler
from ggctl.evaluate.loadgen import LoadResult
from ggctl.evaluate.measure import measured_load
from ggctl.evaluate.profile import Profile, ProfileError, load_profile
from ggctl.evaluate.report import RESULTS_JSON, STAGES_CSV, write_results, write_stages_csv
from ggctl.evaluate.runs import CLUSTER_CSV, SAMPLES_CSV, load_start
from ggctl.evaluate.scoring import Scores
from ggctl.manifests.strategy import NODE_PORT, POD_SELECTOR
from ggctl.state import StateDir

#: The course's resource monitor samples every 5 s; so do we, in profile time.
SAMPLE_INTERVAL_S = 5.0
READY_PATH = "/readyz"


class EvaluateError(GgctlError):
    """The evaluation could not run: no target, service not answering, cluster unreachable."""


@dataclass(frozen=True)
class Target:
    """What to load and what to sample."""

    url: str
    url_source: str
    strategy: str
    namespace: str
    kubeconfig: Path | None
    image: str | None


@dataclass
class EvaluationRun:
    """A finished evaluation: where its files are and what it measured."""

    run_dir: Path
    target: Target
    profile: Profile
    scores: Scores
    load: LoadResult
    accuracy: dict[str, Any] | None
    wall_s: float
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def evaluation_profile(
    profile: str | Path = "challenge", speed: float = 1.0, duration: float | None = None
) -> Profile:
    """The profile as run: named or from a file, compressed `speed` times, then cut to
    `duration` (compressed) seconds."""
    p = load_profile(profile)
    try:
        p = p.scaled(speed)
        if duration:
            p = p.truncated(duration)
    except ValueError as exc:
        raise ProfileError(str(exc)) from None
    return p


def normalize_url(url: str) -> str:
    """`host:port` or `http://host:port/` → `http://host:port` (an error if it is no URL)."""
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EvaluateError(
            f"not a service URL: {url!r}", hint="e.g. --url http://129.114.25.10:32000"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def resolve_target(
    settings: Settings, url: str | None = None, namespace: str | None = None
) -> Target:
    """The service URL, the strategy and where its pods are, from the flags and the state."""
    from ggctl.manifests.deploy import resolve_kubeconfig

    state = StateDir(settings.state_dir)
    deployed = state.read("deploy") or {}
    if url:
        the_url, source = normalize_url(url), "--url"
    elif not deployed:
        raise EvaluateError(
            f"nothing to evaluate: no service URL given and no deployment recorded in {state.root}",
            hint="run `ggctl deploy` first, or pass --url http://HOST:PORT of a running service",
        )
    else:
        fip = (state.read("provision") or {}).get("floating_ip")
        if not fip:
            raise EvaluateError(
                "cannot tell the service's URL: the deployment is recorded, but no floating "
                "IP of node-0 (no provisioning state from `ggctl reserve`)",
                hint=f"pass --url http://HOST:{NODE_PORT} (a node's address and the node port)",
            )
        the_url, source = f"http://{fip}:{NODE_PORT}", "node-0's floating IP"
    if settings.deploy.kubeconfig is not None:
        kubeconfig = resolve_kubeconfig(settings)
    elif deployed.get("kubeconfig") and Path(deployed["kubeconfig"]).is_file():
        kubeconfig = Path(deployed["kubeconfig"])
    else:
        kubeconfig = resolve_kubeconfig(settings)
    return Target(
        url=the_url,
        url_source=source,
        strategy=str(deployed.get("strategy") or ""),
        namespace=namespace or deployed.get("namespace") or settings.deploy.namespace,
        kubeconfig=kubeconfig,
        image=deployed.get("image"),
    )


def check_service(url: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """Poll GET url/readyz until 200 (a service warming up answers 503); then GET /info.
    Returns what they said; EvaluateError with the last reason otherwise."""
    import requests

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            r = requests.get(url + READY_PATH, timeout=min(5.0, max(timeout_s, 0.5)))
            if r.status_code == 200:
                break
            last = f"HTTP {r.status_code} {r.text[:120].strip()}"
        except requests.RequestException as exc:
            last = type(exc).__name__ + (f": {exc.args[0]}" if exc.args else "")
        if time.monotonic() >= deadline:
            raise EvaluateError(
                f"the service at {url} does not answer {READY_PATH} ({last})",
                hint="check that `ggctl deploy` finished and its pods are ready "
                "(ggctl kubectl -- get pods), that the node port is open, or pass "
                "--url of a running service",
            )
        time.sleep(0.5)
    info: dict[str, Any] = {"readyz": _json_or_text(r)}
    try:
        ri = requests.get(url + "/info", timeout=5)
        if ri.ok:
            info["info"] = _json_or_text(ri)
    except requests.RequestException:
        pass
    return info


def _json_or_text(r: Any) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text[:200]


def _accuracy(
    model: Path | None, data: Path | None, console: Any, quiet: bool, served: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[str]]:
    if data is None and model is None:
        return None, []
    if data is None or model is None:
        raise EvaluateError(
            "accuracy needs both --data DIR (Food-11 images) and --model FILE "
            "(the ONNX model the image was built from)"
        )
    model, data = Path(model).expanduser(), Path(data).expanduser()
    if not model.is_file():
        raise EvaluateError(f"model {model} does not exist")
    if not data.is_dir():
        raise EvaluateError(f"data folder {data} does not exist")
    from ggctl.model.evaluate import evaluate_model

    r = evaluate_model(model, data, progress=not quiet, console=console)
    served_name = (
        (served.get("info") or {}).get("model") if isinstance(served.get("info"), dict) else None
    )
    acc = {
        "accuracy": r.accuracy,
        "correct": r.correct,
        "images": r.images,
        "model": str(model),
        "model_name": r.model_name,
        "data": str(data),
        "served_model_name": served_name,
        "skipped": len(r.skipped),
        "how": "computed locally on the model file through the serving code path",
    }
    warnings = []
    if served_name and served_name != r.model_name:
        warnings.append(
            f"the service serves model {served_name!r} but --model is "
            f"{r.model_name!r}: the accuracy is that of {model.name}"
        )
    return acc, warnings


METRICS_HINT = (
    "`ggctl kubectl get apiservice v1beta1.metrics.k8s.io` and "
    "`ggctl kubectl -n kube-system get pods -l k8s-app=metrics-server` show why; "
    "`ggctl cluster` installs metrics-server"
)


def _metrics_failures(sampler: KubernetesSampler) -> list[str]:
    return [d.metrics_error for d in sampler.details if d.metrics_error]


def _metrics_warning(sampler: KubernetesSampler) -> str:
    """A warning if metrics.k8s.io failed on any sample so far, else ''."""
    failures = _metrics_failures(sampler)
    if not failures:
        return ""
    autoscaled = any(d.hpa_desired is not None for d in sampler.details)
    return (
        f"the resource metrics API does not work ({failures[-1]}): CPU and memory used read "
        "n/a"
        + (
            ", and the HorizontalPodAutoscaler cannot scale without metrics, so this run "
            "measured a fixed number of pods"
            if autoscaled
            else ""
        )
        + f". {METRICS_HINT}"
    )


def _metrics_record(sampler: KubernetesSampler) -> dict[str, Any]:
    failures = _metrics_failures(sampler)
    return {
        "available": not failures,
        "failed_samples": len(failures),
        "samples": len(sampler.details),
        "last_error": failures[-1] if failures else "",
    }


def run_evaluation(
    settings: Settings,
    *,
    url: str | None = None,
    profile: str | Path = "challenge",
    speed: float = 1.0,
    duration: float | None = None,
    namespace: str | None = None,
    data: Path | None = None,
    model: Path | None = None,
    json_path: Path | None = None,
    console: Any = None,
    stamp: str | None = None,
    ready_timeout_s: float = 15.0,
    on_result: Callable[[EvaluationRun], None] | None = None,
) -> EvaluationRun:
    """Run the evaluation end to end (see the module doc) and return its result."""
    from rich.console import Console

    console = console or Console(stderr=True)
    quiet = settings.quiet
    started = time.monotonic()
    prof = evaluation_profile(profile, speed, duration)
    target = resolve_target(settings, url, namespace)
    served = check_service(target.url, ready_timeout_s)
    accuracy, warnings = _accuracy(model, data, console, quiet, served)

    sampler = KubernetesSampler.from_kubeconfig(target.kubeconfig, target.namespace)
    try:
        first = sampler.check()
        live = sorted(sampler.strategies)
        strategy = target.strategy or (live[0] if len(live) == 1 else "") or "unknown"
        if target.strategy and live and live != [target.strategy]:
            warnings.append(
                f"deploy.json says strategy {target.strategy!r} but the pods are "
                f"labelled {', '.join(live)}"
            )
        metrics_warning = _metrics_warning(sampler)
        if metrics_warning:
            warnings.append(metrics_warning)
        if first.n_replica == 0:
            warnings.append(
                f"no running pod matches {POD_SELECTOR} in namespace "
                f"{target.namespace!r} at {sampler.host}: resources will read 0"
            )
        stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
        run_dir = StateDir(settings.state_dir).run_dir(f"evaluate-{strategy}", stamp)
        sampler.open_details(run_dir / CLUSTER_CSV)
        if not quiet:
            for w in warnings:
                console.print(f"[yellow]warning:[/] {w}", highlight=False)
            console.print(
                f"service ready at {target.url} ({target.url_source}) · strategy "
                f"[bold]{strategy}[/] · {first.n_replica} pod(s) in {target.namespace} · "
                f"profile [bold]{prof.name}[/] x{prof.speed:g}: {len(prof.stages)} stages, "
                f"{prof.total_duration_s:,.0f} s, up to {prof.max_users} users",
                highlight=False,
            )
        m = measured_load(
            target.url,
            prof,
            sampler,
            run_dir,
            sample_interval_s=SAMPLE_INTERVAL_S,
            console=console,
            quiet=quiet,
            request_timeout_s=30.0,
            status=lambda mon: f"{mon.samples[-1].n_replica if mon.samples else '?'} pods",
        )
        load, scores, samples, requests_log = m.load, m.scores, m.samples, m.requests
        if not metrics_warning and (later := _metrics_warning(sampler)):
            warnings.append(later)  # the metrics API failed during the run
        files = {
            "requests": load.requests_csv,
            "samples": run_dir / SAMPLES_CSV,
            "cluster": run_dir / CLUSTER_CSV,
            "stages": write_stages_csv(run_dir / STAGES_CSV, scores, prof),
        }
        wall_s = time.monotonic() - started
        extra = {
            "kind": "evaluate",
            "strategy": strategy,
            "image": target.image,
            "url": target.url,
            "url_source": target.url_source,
            "namespace": target.namespace,
            "kubernetes": {
                "server": sampler.host,
                "kubeconfig": str(target.kubeconfig or ""),
                "selector": POD_SELECTOR,
                "pods_counted": "phase Running and not terminating",
                "requests_counted": "bound to a node and not finished, terminating included "
                "(as the scheduler accounts them)",
            },
            "service": served,
            "accuracy": accuracy,
            "warnings": warnings,
            "metrics_api": _metrics_record(sampler),
            "t0": load_start(requests_log, samples),
            "sample_interval_profile_s": SAMPLE_INTERVAL_S,
            "sample_period_s": m.sample_period_s,
            "sampler_errors": m.sampler_errors,
            "loadgen": load.summary(),
            "wall_s": round(wall_s, 3),
        }
        files["results"] = write_results(run_dir / RESULTS_JSON, scores, prof, **extra)
        try:
            from ggctl.evaluate.plots import plot_run
            from ggctl.evaluate.runs import label_runs, load_run

            files.update(plot_run(label_runs([load_run(run_dir)])[0], run_dir))
        except Exception as exc:  # a plot must never cost the measurements
            warnings.append(f"plots failed: {type(exc).__name__}: {exc}")
        if json_path is not None:
            json_path = Path(json_path).expanduser()
            json_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(files["results"], json_path)
            files["json"] = json_path
        result = EvaluationRun(
            run_dir, target, prof, scores, load, accuracy, wall_s, files, warnings
        )
        if on_result is not None:
            on_result(result)
        return result
    finally:
        sampler.close()


__all__ = [
    "EvaluateError",
    "EvaluationRun",
    "Target",
    "check_service",
    "evaluation_profile",
    "normalize_url",
    "resolve_target",
    "run_evaluation",
]
