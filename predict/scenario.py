"""A strategy's numbers + a calibration → the simulation's parameters, each with its source.

Every number `ggctl predict` uses is one `Param`: its value and where it came from (the
strategy's manifest, a measurement on this machine, a Kubernetes default, an assumption,
or the user's --set), so the printout can show each next to its source.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ggctl.errors import GgctlError
from ggctl.manifests.strategy import Strategy, get_strategy
from ggctl.predict.calibrate import Calibration, Layout, cores_for_limit
from ggctl.predict.hpa import (
    CPU_INITIALIZATION_PERIOD_S,
    DOWNSCALE_STABILIZATION_S,
    INITIAL_READINESS_DELAY_S,
    SYNC_PERIOD_S,
    TOLERANCE,
    HpaSpec,
)
from ggctl.predict.sim import ClusterParams, PodParams, ProbeParams

K8S = "Kubernetes default"
ASSUMED = "assumed (not measured)"


@dataclass(frozen=True)
class Param:
    value: Any
    source: str


class ScenarioError(GgctlError):
    """A --set or --sweep that names no parameter, or a value that does not fit it."""


def _cores(q: str) -> float:
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(q))


def _mib(q: str) -> float:
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(q)) / (1024 * 1024)


def _env(strategy: Strategy) -> dict[str, str]:
    return {e["name"]: e["value"] for e in strategy.container_env()}


def strategy_params(strategy: Strategy) -> dict[str, Param]:
    """The strategy's own numbers (its manifests), plus the cluster's defaults around them."""
    src = f"strategy {strategy.name} (manifests/strategy.py)"
    res = strategy.resources
    env = _env(strategy)
    p: dict[str, Param] = {
        "replicas": Param(strategy.initial_replicas, src),
        "cpu_limit": Param(_cores(res.cpu_limit), src),
        "cpu_request": Param(_cores(res.cpu_request), src),
        "mem_request_mib": Param(_mib(res.memory_request), src),
        "threads": Param(int(env.get("GGCTL_SERVE__THREADS", 4)), src + " / server default"),
        "ort_threads": Param(int(env.get("GGCTL_SERVE__ORT_THREADS", 0)), src + " (0: auto)"),
        "max_inflight": Param(int(env.get("GGCTL_SERVE__MAX_INFLIGHT", 0)), src + " (0: auto)"),
        "pre_stop_s": Param(float(strategy.pre_stop_sleep_s or 0), src),
        "graceful_s": Param(25.0, "gunicorn graceful_timeout (app/server.py)"),
        "keepalive_s": Param(
            float(env.get("GGCTL_SERVE__KEEPALIVE", 5)),
            src if "GGCTL_SERVE__KEEPALIVE" in env else "gunicorn keepalive (app/server.py)",
        ),
        "schedule_s": Param(0.5, ASSUMED),
        "container_start_s": Param(
            2.0 if strategy.image_pull_policy == "Always" else 1.0,
            ASSUMED + f"; imagePullPolicy {strategy.image_pull_policy}",
        ),
        "endpoint_delay_s": Param(1.0, ASSUMED),
        "net_ms": Param(0.5, ASSUMED + ": NodePort hop inside the cluster"),
        "request_timeout_s": Param(30.0, "ggctl evaluate's request timeout"),
        "metric_resolution_s": Param(15.0, "metrics-server --metric-resolution default"),
        "hpa_sync_s": Param(SYNC_PERIOD_S, K8S + " (--horizontal-pod-autoscaler-sync-period)"),
        "cpu_ratio": Param(1.0, "this machine = the cluster's nodes, unless --cpu-ratio"),
    }
    r = strategy.readiness
    if r is not None:
        p["readiness_path"] = Param(r.path, src)
        p["readiness_period_s"] = Param(
            float(r.period_seconds or 10), src if r.period_seconds else K8S
        )
        p["readiness_delay_s"] = Param(float(r.initial_delay_seconds or 0), src)
        p["readiness_timeout_s"] = Param(
            float(r.timeout_seconds or 1), src if r.timeout_seconds else K8S
        )
        p["readiness_successes"] = Param(
            int(r.success_threshold or 1), src if r.success_threshold else K8S
        )
        p["readiness_failures"] = Param(
            int(r.failure_threshold or 3), src if r.failure_threshold else K8S
        )
    if strategy.startup is not None:
        p["startup_period_s"] = Param(float(strategy.startup.period_seconds or 10), src)
    a = strategy.autoscaling
    if a is not None:
        p["min_replicas"] = Param(a.min_replicas, src)
        p["max_replicas"] = Param(a.max_replicas, src)
        p["target_cpu_percent"] = Param(a.target_cpu_percent, src)
        behavior = a.behavior if a.api_version == "autoscaling/v2" else None
        spec = HpaSpec.from_manifest(a.min_replicas, a.max_replicas, a.target_cpu_percent, behavior)
        how = "spec.behavior" if spec.has_behavior else f"{a.api_version}: no behavior"
        p["scale_down_window_s"] = Param(
            spec.scale_down.stabilization_s if spec.scale_down else DOWNSCALE_STABILIZATION_S,
            f"{src}, {how}",
        )
        p["tolerance"] = Param(TOLERANCE, K8S)
        p["cpu_init_s"] = Param(CPU_INITIALIZATION_PERIOD_S, K8S)
        p["readiness_delay_hpa_s"] = Param(INITIAL_READINESS_DELAY_S, K8S)
    return p


CALIBRATION_KEYS = (
    "service_ms_mean",
    "capacity_rps",
    "cpu_ms_per_request",
    "cold_start_s",
    "mem_start_mib",
    "mem_load_mib",
    "cpu_share",
)


def check_keys(params: dict[str, Param], sets: dict[str, str]) -> None:
    """Fail before any measurement on a --set/--sweep key that names no parameter."""
    known = set(params) | set(CALIBRATION_KEYS)
    unknown = sorted(set(sets) - known)
    if unknown:
        raise ScenarioError(
            f"no parameter {', '.join(unknown)} for this strategy",
            hint="known: " + ", ".join(sorted(known)),
        )


def calibration_params(cal: Calibration) -> dict[str, Param]:
    src = "measured (calibration)"
    return {
        "service_ms_mean": Param(
            round(cal.mean_service_ms, 2), src + f", {len(cal.service_ms)} requests, 1 client"
        ),
        "capacity_rps": Param(cal.capacity_rps, src + f", {cal.load_clients} clients"),
        "cpu_ms_per_request": Param(cal.cpu_ms_per_request, src),
        "cold_start_s": Param(cal.cold_start_s, src + ", spawn to /readyz 200"),
        "mem_start_mib": Param(cal.mem_start_mib, f"{src}, {cal.mem_method} after start"),
        "mem_load_mib": Param(cal.mem_load_mib, f"{src}, {cal.mem_method} after load"),
        "cpu_share": Param(
            cal.cpu_share,
            src + ": share of a pinned CPU a spin loop got (1 = quiet); wall-clock "
            "figures are divided by it",
        ),
    }


_INT = {
    "replicas",
    "threads",
    "ort_threads",
    "max_inflight",
    "readiness_successes",
    "readiness_failures",
    "min_replicas",
    "max_replicas",
    "target_cpu_percent",
}


def apply_sets(params: dict[str, Param], sets: dict[str, str]) -> dict[str, Param]:
    """--set KEY=VALUE on top of the parameters."""
    out = dict(params)
    for key, raw in sets.items():
        if key not in out:
            raise ScenarioError(
                f"--set {key}: no such parameter for this strategy",
                hint="known: " + ", ".join(sorted(out)),
            )
        old = out[key].value
        try:
            if isinstance(old, str):
                value: Any = raw
            elif key in _INT:
                value = int(raw)
            else:
                value = float(raw)
        except ValueError:
            raise ScenarioError(f"--set {key}={raw}: not a number") from None
        out[key] = Param(value, "--set")
    return out


def layout_of(params: dict[str, Param]) -> Layout:
    return Layout(
        cores=cores_for_limit(params["cpu_limit"].value),
        threads=int(params["threads"].value),
        ort_threads=int(params["ort_threads"].value),
        max_inflight=int(params["max_inflight"].value),
    )


def build(
    strategy_name: str, params: dict[str, Param], seed: int = 1
) -> tuple[PodParams, ClusterParams]:
    """The simulation's inputs from the (calibrated, overridden) parameters."""
    strategy = get_strategy(strategy_name)
    v = {k: p.value for k, p in params.items()}
    share = float(v["cpu_share"])
    if not 0 < share <= 1:
        raise ScenarioError(f"cpu_share must be within (0, 1], got {share}")
    if not float(v["cpu_ratio"]) > 0:
        raise ScenarioError(f"cpu_ratio must be > 0, got {v['cpu_ratio']}")
    # Wall-clock figures measured on a busy machine are stretched by 1/share; CPU seconds
    # per request are not. On the cluster the pod has its CPUs: undo the stretch.
    ratio = float(v["cpu_ratio"])
    samples = v["_service_ms"]
    measured_mean = sum(samples) / len(samples)
    # --set service_ms_mean=X: the measured distribution's shape, moved to that mean.
    shift = 1.0
    if abs(v["service_ms_mean"] - round(measured_mean, 2)) > 1e-9:
        shift = v["service_ms_mean"] / measured_mean
    service = tuple(s * shift * share / 1e3 / ratio for s in samples)
    capacity = v["capacity_rps"] / share * ratio
    cpu_per_req = v["cpu_ms_per_request"] / 1e3 / ratio
    mean_service = sum(service) / len(service)
    probe_work = mean_service if v.get("readiness_path") == "/test" else 1e-4
    limit = v["cpu_limit"]
    pod = PodParams(
        service_s=service,
        capacity_rps=capacity,
        cpu_per_request_s=cpu_per_req,
        threads=int(v["threads"]),
        # The calibration ran on whole CPUs; a fractional limit below them is the CFS quota.
        cpu_limit=limit,
        cpu_request=v["cpu_request"],
        mem_request_mib=v["mem_request_mib"],
        mem_start_mib=v["mem_start_mib"],
        mem_load_mib=v["mem_load_mib"],
        cold_start_s=v["cold_start_s"] * share / ratio,
        probe_work_s=probe_work,
    )
    readiness = None
    if "readiness_period_s" in v:
        readiness = ProbeParams(
            v["readiness_period_s"],
            v["readiness_delay_s"],
            v["readiness_timeout_s"],
            int(v["readiness_successes"]),
            int(v["readiness_failures"]),
        )
    startup = (
        ProbeParams(v["startup_period_s"], 0.0, 1.0, 1, 30) if "startup_period_s" in v else None
    )
    hpa = None
    if strategy.autoscaling is not None:
        a = strategy.autoscaling
        behavior = a.behavior if a.api_version == "autoscaling/v2" else None
        hpa = HpaSpec.from_manifest(
            int(v["min_replicas"]), int(v["max_replicas"]), int(v["target_cpu_percent"]), behavior
        )
        hpa = replace(
            hpa,
            tolerance=v["tolerance"],
            cpu_initialization_s=v["cpu_init_s"],
            initial_readiness_delay_s=v["readiness_delay_hpa_s"],
        )
        if hpa.scale_down is not None:
            hpa = replace(
                hpa, scale_down=replace(hpa.scale_down, stabilization_s=v["scale_down_window_s"])
            )
        else:
            hpa = replace(hpa, downscale_stabilization_s=v["scale_down_window_s"])
    replicas = int(v["replicas"]) if hpa is None else max(hpa.min_replicas, int(v["replicas"]))
    cluster = ClusterParams(
        replicas=replicas,
        hpa=hpa,
        readiness=readiness,
        startup=startup,
        schedule_s=v["schedule_s"],
        container_start_s=v["container_start_s"],
        endpoint_delay_s=v["endpoint_delay_s"],
        pre_stop_s=v["pre_stop_s"],
        graceful_s=v["graceful_s"],
        keepalive_s=v["keepalive_s"],
        request_timeout_s=v["request_timeout_s"],
        net_s=v["net_ms"] / 1e3,
        metric_resolution_s=v["metric_resolution_s"],
        hpa_sync_s=v["hpa_sync_s"],
        seed=seed,
    )
    return pod, cluster


def with_calibration(params: dict[str, Param], cal: Calibration) -> dict[str, Param]:
    """Strategy params + the measurement; --set values stay on top (applied after)."""
    out = {**params, **calibration_params(cal)}
    out["_service_ms"] = Param(tuple(cal.service_ms), "measured")
    return out
