"""The HorizontalPodAutoscaler's replica computation, as kube-controller-manager does it.

Follows kubernetes `pkg/controller/podautoscaler/` (horizontal.go: reconcileAutoscaler,
normalizeDesiredReplicas[WithBehaviors], stabilizeRecommendation[WithBehaviors],
convertDesiredReplicas*, calculateScale{Up,Down}Limit*; replica_calculator.go:
calcPlainMetricReplicas, groupPods; metrics/utilization.go: GetResourceUtilizationRatio)
and `pkg/apis/autoscaling/v2/defaults.go` (behavior defaults), as of Kubernetes 1.30-1.35,
and the documentation page "Horizontal Pod Autoscaling" (algorithm details, scaling
policies, stabilization window, default behavior). Only the CPU-utilization metric is
modelled: it is the only one the strategies use.

Time is passed in explicitly (seconds), so a simulation and a test drive the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: kube-controller-manager flag defaults.
SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
CPU_INITIALIZATION_PERIOD_S = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY_S = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
DOWNSCALE_STABILIZATION_S = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization
#: Without `behavior` (autoscaling/v1): at most max(2x, 4) replicas per sync (horizontal.go).
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


@dataclass(frozen=True)
class Policy:
    """One scaling policy: at most `value` pods or percent per `period_s`."""

    kind: str  # "Pods" | "Percent"
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    """HPAScalingRules of one direction."""

    stabilization_s: float
    select: str  # "Max" | "Min" | "Disabled"
    policies: tuple[Policy, ...]


# autoscaling/v2 defaults.go: GenerateHPAScaleUpRules / GenerateHPAScaleDownRules.
DEFAULT_SCALE_UP = Rules(0.0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_SCALE_DOWN = Rules(DOWNSCALE_STABILIZATION_S, "Max", (Policy("Percent", 100, 15),))


def _rules(raw: Mapping[str, Any] | None, default: Rules) -> Rules:
    if raw is None:
        return default
    policies = tuple(
        Policy(str(p["type"]), int(p["value"]), float(p["periodSeconds"]))
        for p in raw.get("policies") or ()
    )
    window = raw.get("stabilizationWindowSeconds")
    return Rules(
        default.stabilization_s if window is None else float(window),
        str(raw.get("selectPolicy") or "Max"),
        policies or default.policies,
    )


@dataclass(frozen=True)
class HpaSpec:
    """What the controller needs of one HorizontalPodAutoscaler (CPU utilization target)."""

    min_replicas: int
    max_replicas: int
    target_cpu_percent: int
    #: None: no `behavior` (autoscaling/v1, or v2 without the field): the old rules apply.
    scale_up: Rules | None = None
    scale_down: Rules | None = None
    tolerance: float = TOLERANCE
    cpu_initialization_s: float = CPU_INITIALIZATION_PERIOD_S
    initial_readiness_delay_s: float = INITIAL_READINESS_DELAY_S
    downscale_stabilization_s: float = DOWNSCALE_STABILIZATION_S

    @property
    def has_behavior(self) -> bool:
        return self.scale_up is not None

    @classmethod
    def from_manifest(
        cls,
        min_replicas: int,
        max_replicas: int,
        target_cpu_percent: int,
        behavior: Mapping[str, Any] | None = None,
    ) -> HpaSpec:
        """From the manifest's fields; a given `behavior` gets the API server's defaults for
        what it leaves out (defaults.go), an absent one stays absent (nil)."""
        if behavior is None:
            return cls(min_replicas, max_replicas, target_cpu_percent)
        return cls(
            min_replicas,
            max_replicas,
            target_cpu_percent,
            _rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP),
            _rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN),
        )


@dataclass(frozen=True)
class PodView:
    """A pod as the controller sees it: phase, readiness, CPU request, latest metric."""

    name: str
    cpu_request_m: int  # millicores
    running: bool = True  # False: Pending (ignored)
    deleting: bool = False  # deletionTimestamp set (ignored)
    start_time: float | None = 0.0  # status.startTime
    ready: bool | None = True  # the Ready condition; None: no condition yet
    ready_transition: float = 0.0  # the Ready condition's lastTransitionTime
    usage_m: int | None = None  # metrics.k8s.io CPU usage (millicores); None: no metric
    metric_time: float = 0.0  # the metric's timestamp (end of its window)
    metric_window_s: float = 15.0


def group_pods(pods: Sequence[PodView], now: float, spec: HpaSpec) -> tuple[int, set, set, set]:
    """replica_calculator.go groupPods for the CPU resource: (ready count, unready names,
    missing names, ignored names)."""
    ready = 0
    unready, missing, ignored = set(), set(), set()
    for pod in pods:
        if pod.deleting or not pod.running:
            ignored.add(pod.name)
            continue
        if pod.usage_m is None:
            missing.add(pod.name)
            continue
        if pod.ready is None or pod.start_time is None:
            is_unready = True
        elif pod.start_time + spec.cpu_initialization_s > now:
            # Within the CPU-initialization period: ignore the sample if the pod is unready,
            # or if a whole metric window has not passed since it became ready.
            is_unready = (not pod.ready) or (
                pod.metric_time - pod.metric_window_s < pod.ready_transition
            )
        else:
            # Later: ignore it only if it is unready and has never been ready.
            is_unready = (not pod.ready) and (
                pod.start_time + spec.initial_readiness_delay_s > pod.ready_transition
            )
        if is_unready:
            unready.add(pod.name)
        else:
            ready += 1
    return ready, unready, missing, ignored


def _utilization_ratio(usage: Mapping[str, int], requests: Mapping[str, int], target: int) -> float:
    """metrics/utilization.go GetResourceUtilizationRatio: integer percent of the requests."""
    used = sum(usage.values())
    requested = sum(requests[name] for name in usage)
    utilization = (used * 100) // requested
    return utilization / target


def replicas_for_cpu(
    pods: Sequence[PodView], current_replicas: int, spec: HpaSpec, now: float
) -> int | None:
    """calcPlainMetricReplicas for CPU utilization; None when no pod has a usable metric
    (the controller then reports an error and does not scale)."""
    by_name = {p.name: p for p in pods}
    ready_count, unready, missing, ignored = group_pods(pods, now, spec)
    usage = {
        p.name: int(p.usage_m)
        for p in pods
        if p.usage_m is not None and p.name not in unready and p.name not in ignored
    }
    if not usage:
        return None
    requests = {p.name: p.cpu_request_m for p in pods}
    if any(requests[n] <= 0 for n in usage):
        return None  # "missing request for cpu"
    ratio = _utilization_ratio(usage, requests, spec.target_cpu_percent)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= spec.tolerance:
            return current_replicas
        return math.ceil(ratio * ready_count)
    if missing:
        if ratio < 1.0:
            # On a scale-down, a pod without a metric counts as using its request (or the
            # target, above 100 %): the conservative guess.
            fallback = max(100, spec.target_cpu_percent)
            for name in missing:
                usage[name] = by_name[name].cpu_request_m * fallback // 100
        elif ratio > 1.0:
            for name in missing:
                usage[name] = 0  # on a scale-up, as using nothing
    if scale_up_with_unready:
        for name in unready:
            usage[name] = 0
    new_ratio = _utilization_ratio(usage, requests, spec.target_cpu_percent)
    if (
        abs(1.0 - new_ratio) <= spec.tolerance
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current_replicas  # the correction reversed the direction, or is within tolerance
    new_replicas = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas
    return new_replicas


@dataclass
class HpaController:
    """One HPA's controller state: past recommendations and scale events."""

    spec: HpaSpec
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[tuple[float, int]] = field(default_factory=list)
    down_events: list[tuple[float, int]] = field(default_factory=list)
    #: (time, current, metric recommendation, desired): every sync, for plots and tests.
    history: list[tuple[float, int, int | None, int]] = field(default_factory=list)

    def reconcile(self, now: float, current: int, pods: Sequence[PodView]) -> int:
        """One sync: the replica count the controller sets (== current: no change)."""
        spec = self.spec
        metric_desired: int | None = None
        if current == 0 and spec.min_replicas != 0:
            desired = 0  # autoscaling is disabled for a target scaled to zero
            self.history.append((now, current, None, current))
            return current
        if current > spec.max_replicas:
            desired = spec.max_replicas
        elif current < spec.min_replicas:
            desired = spec.min_replicas
        else:
            metric_desired = replicas_for_cpu(pods, current, spec, now)
            if metric_desired is None:
                self.history.append((now, current, None, current))
                return current
            if spec.has_behavior:
                desired = self._normalize_with_behavior(now, current, metric_desired)
            else:
                desired = self._normalize(now, current, metric_desired)
        if desired != current and spec.has_behavior:
            events = self.up_events if desired > current else self.down_events
            events.append((now, abs(desired - current)))
            self._forget_events()
        self.history.append((now, current, metric_desired, desired))
        return desired

    # -- without behavior (autoscaling/v1) ---------------------------------------------------
    def _normalize(self, now: float, current: int, desired: int) -> int:
        cutoff = now - self.spec.downscale_stabilization_s
        self.recommendations = [(t, r) for t, r in self.recommendations if t >= cutoff]
        stabilized = max([desired, *(r for _, r in self.recommendations)])
        self.recommendations.append((now, desired))
        limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
        maximum = min(self.spec.max_replicas, limit)
        if stabilized < self.spec.min_replicas:
            return self.spec.min_replicas
        return min(stabilized, maximum)

    # -- with behavior (autoscaling/v2) ------------------------------------------------------
    def _normalize_with_behavior(self, now: float, current: int, desired: int) -> int:
        up, down = self.spec.scale_up, self.spec.scale_down
        assert up is not None and down is not None
        up_rec = down_rec = desired
        for t, rec in self.recommendations:
            if t > now - up.stabilization_s:
                up_rec = min(up_rec, rec)
            if t > now - down.stabilization_s:
                down_rec = max(down_rec, rec)
        keep = max(up.stabilization_s, down.stabilization_s)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep]
        self.recommendations.append((now, desired))
        stabilized = min(max(current, up_rec), down_rec)

        if stabilized > current:
            limit = max(self._scale_up_limit(now, current, up), current)
            return min(stabilized, min(self.spec.max_replicas, limit))
        if stabilized < current:
            limit = min(self._scale_down_limit(now, current, down), current)
            return max(stabilized, max(self.spec.min_replicas, limit))
        return stabilized

    @staticmethod
    def _changed_within(events: list[tuple[float, int]], now: float, period_s: float) -> int:
        return sum(n for t, n in events if t > now - period_s)

    def _period_start(self, now: float, current: int, period_s: float) -> int:
        added = self._changed_within(self.up_events, now, period_s)
        deleted = self._changed_within(self.down_events, now, period_s)
        return current - added + deleted

    def _scale_up_limit(self, now: float, current: int, rules: Rules) -> int:
        if rules.select == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = self._period_start(now, current, p.period_s)
            if p.kind == "Pods":
                proposals.append(start + p.value)
            else:  # rounded up, so that a small percentage still adds a pod
                proposals.append(math.ceil(start * (1 + p.value / 100)))
        return min(proposals) if rules.select == "Min" else max(proposals)

    def _scale_down_limit(self, now: float, current: int, rules: Rules) -> int:
        if rules.select == "Disabled":
            return current
        proposals = []
        for p in rules.policies:
            start = self._period_start(now, current, p.period_s)
            if p.kind == "Pods":
                proposals.append(start - p.value)
            else:  # truncated: the removed share is rounded up
                proposals.append(int(start * (1 - p.value / 100)))
        # "Max" selects the biggest change, i.e. the lowest replica count.
        return max(proposals) if rules.select == "Min" else min(proposals)

    def _forget_events(self) -> None:
        longest = max(
            (
                p.period_s
                for r in (self.spec.scale_up, self.spec.scale_down)
                if r
                for p in r.policies
            ),
            default=0.0,
        )
        latest = max((t for t, _ in (*self.up_events, *self.down_events)), default=0.0)
        self.up_events = [(t, n) for t, n in self.up_events if t > latest - longest]
        self.down_events = [(t, n) for t, n in self.down_events if t > latest - longest]
