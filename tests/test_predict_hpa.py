"""The HPA model against the worked examples of the Kubernetes documentation
("Horizontal Pod Autoscaling": algorithm details, scaling policies, stabilization window,
default behavior) and the controller's source (pkg/controller/podautoscaler)."""

from __future__ import annotations

import itertools

from ggctl.predict.hpa import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    HpaController,
    HpaSpec,
    PodView,
    Policy,
    Rules,
    replicas_for_cpu,
)


def pods(usages_m: list[int | None], request_m: int = 1000, **kw) -> list[PodView]:
    """Ready pods long past their CPU-initialization period, with these CPU usages."""
    return [
        PodView(
            f"p{i}",
            request_m,
            start_time=-3600,
            ready_transition=-3600,
            usage_m=u,
            metric_time=0.0,
            **kw,
        )
        for i, u in enumerate(usages_m)
    ]


def drive(ctl: HpaController, start: int, usage_per_pod: callable, steps: int, sync: float = 15.0):
    """Run `steps` syncs; each pod uses usage_per_pod(t) millicores. Returns replicas per sync."""
    current, out = start, []
    for k in range(steps):
        t = k * sync
        current = ctl.reconcile(t, current, pods([usage_per_pod(t)] * current))
        out.append(current)
    return out


# --- algorithm details: desiredReplicas = ceil(currentReplicas * current / desired) --------


def test_ratio_rule_doubles_and_halves():
    # Docs: current 200m, desired 100m → doubled; 50m → halved.
    spec = HpaSpec(1, 100, 10)  # target 10 % of a 1000m request = 100m
    assert replicas_for_cpu(pods([200] * 4), 4, spec, 0.0) == 8
    assert replicas_for_cpu(pods([50] * 4), 4, spec, 0.0) == 2


def test_tolerance_skips_ratios_within_ten_percent():
    spec = HpaSpec(1, 100, 50)
    assert replicas_for_cpu(pods([540] * 4), 4, spec, 0.0) == 4  # ratio 1.08: within 0.1
    assert replicas_for_cpu(pods([460] * 4), 4, spec, 0.0) == 4  # ratio 0.92
    assert replicas_for_cpu(pods([600] * 4), 4, spec, 0.0) == 5  # ratio 1.2: ceil(4.8)


def test_missing_metrics_count_as_request_on_scale_down():
    # Docs: missing metrics → "100 % of the desired value in case of a scale down".
    # 3 pods at 10 % + 1 without a metric, target 50 %: naive ceil(0.2 * 3) = 1;
    # with the missing pod at 100 %: (300 + 1000) / 4000 = 32 % → ceil(0.64 * 4) = 3.
    spec = HpaSpec(1, 10, 50)
    assert replicas_for_cpu(pods([100, 100, 100, None]), 4, spec, 0.0) == 3


def test_missing_metrics_count_as_zero_on_scale_up():
    # 2 pods at 100 % + 1 missing, target 50 %: missing as 0 → 2000/3000 = 66 % →
    # ratio 1.32 → ceil(1.32 * 3) = 4 (not ceil(2 * 2) = 4 … nor 6 from ratio x current).
    spec = HpaSpec(1, 10, 50)
    assert replicas_for_cpu(pods([1000, 1000, None]), 3, spec, 0.0) == 4


def test_unready_pods_count_as_zero_and_a_reversal_means_no_change():
    # Docs: not-yet-ready pods are assumed to use 0 % on a scale-up; if that reverses the
    # direction, no scaling. 1 ready pod at 100 %, 1 unready (just started), target 55 %:
    # raw ratio 1.81 would double to 4 counted over both pods; with the unready one at 0
    # the ratio is 50/55 < 1 → reversed → stays 2.
    spec = HpaSpec(1, 10, 55)
    ready = PodView("a", 1000, start_time=-3600, ready_transition=-3600, usage_m=1000)
    starting = PodView(
        "b", 1000, start_time=-10, ready=False, ready_transition=-10, usage_m=1000, metric_time=0.0
    )
    assert replicas_for_cpu([ready, starting], 2, spec, 0.0) == 2


def test_cpu_initialization_window_ignores_a_sample_taken_before_a_full_window_ready():
    spec = HpaSpec(1, 10, 50)
    # Started 60 s ago (inside the 5-minute CPU-initialization period), ready 10 s ago:
    # its metric's 15 s window began before it was ready → ignored (treated as unready).
    young = PodView(
        "y",
        1000,
        start_time=-60,
        ready=True,
        ready_transition=-10,
        usage_m=1000,
        metric_time=0.0,
        metric_window_s=15,
    )
    old = PodView("o", 1000, start_time=-3600, ready_transition=-3600, usage_m=600)
    # Without the rule: (1000 + 600) / 2000 = 80 % → ratio 1.6 → ceil(3.2) = 4.
    # With it: only `o` counts: 60 % → 1.2 > 1 and `y` unready → y as 0: 600/2000 = 30 %
    # → reversed → no change.
    assert replicas_for_cpu([young, old], 2, spec, 0.0) == 2
    # The same pod ready 20 s before a metric whose window is 15 s: counted.
    settled = PodView(
        "y",
        1000,
        start_time=-60,
        ready=True,
        ready_transition=-20,
        usage_m=1000,
        metric_time=0.0,
        metric_window_s=15,
    )
    assert replicas_for_cpu([settled, old], 2, spec, 0.0) == 4


def test_after_initialization_an_unready_pod_that_was_ready_counts():
    spec = HpaSpec(1, 10, 50)
    # Started long ago, unready since a while (it was ready after the initial 30 s delay):
    # its metric is used.
    flapped = PodView("f", 1000, start_time=-3600, ready=False, ready_transition=-100, usage_m=1000)
    assert replicas_for_cpu([flapped], 1, spec, 0.0) == 2
    # Never been ready (its last transition within 30 s of start): ignored → no metric.
    never = PodView("n", 1000, start_time=-3600, ready=False, ready_transition=-3590, usage_m=1000)
    assert replicas_for_cpu([never], 1, spec, 0.0) is None


# --- behavior: scaling policies -------------------------------------------------------------


def test_docs_scale_down_policies_80_to_10():
    # Docs example: scaleDown policies Pods 4 / 60 s and Percent 10 / 60 s (selectPolicy Max
    # by default): from 80 replicas to 10, 8 pods go first, then 10 % of 72 = 7.2 → 8, …;
    # below 40 replicas the Pods policy (4) removes more. One step per 60-s period.
    rules = Rules(0, "Max", (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    # minReplicas 10 makes "scale to 10" the recommendation whatever the count.
    spec = HpaSpec(10, 100, 50, scale_up=DEFAULT_SCALE_UP, scale_down=rules)
    ctl = HpaController(spec)
    got = drive(ctl, 80, lambda t: 62, steps=4 * 14)
    per_minute = got[::4]
    assert per_minute == [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    # Within a period nothing more happens (the syncs between the minutes keep the count).
    assert got[1:4] == [72, 72, 72]
    assert got[-1] == 10


def test_default_scale_up_four_pods_or_double_every_15s():
    # Docs, default behavior: no scale-up stabilization; at most 4 pods or 100 % added
    # every 15 s, whichever is more.
    spec = HpaSpec(1, 100, 50, scale_up=DEFAULT_SCALE_UP, scale_down=DEFAULT_SCALE_DOWN)
    ctl = HpaController(spec)
    got = drive(ctl, 1, lambda t: 1000, steps=5)  # 200 % of target: wants to double
    assert got == [2, 4, 8, 16, 32]
    # Demand far above: 1 → max(1+4, 2) = 5 → 10 → 20.
    ctl = HpaController(spec)
    assert drive(ctl, 1, lambda t: 1000 * 40, steps=3) == [5, 10, 20]


def test_v1_without_behavior_scale_up_limit_is_max_of_double_and_four():
    # horizontal.go normalizeDesiredReplicas: at most max(2 x current, 4) per sync.
    ctl = HpaController(HpaSpec(1, 100, 40))
    assert drive(ctl, 1, lambda t: 1000 * 40, steps=3) == [4, 8, 16]
    ctl = HpaController(HpaSpec(1, 5, 40))  # the course's hpa: 1..5
    assert drive(ctl, 1, lambda t: 2000, steps=2) == [4, 5]  # wants 5: limited to 4 first


def test_default_downscale_stabilization_keeps_the_highest_recommendation_for_300s():
    # Docs: on a scale-down the controller uses the highest recommendation of the last
    # 300 s (v1: --horizontal-pod-autoscaler-downscale-stabilization).
    ctl = HpaController(HpaSpec(1, 10, 50))
    busy = drive(ctl, 4, lambda t: 500, steps=1)  # at target: recommendation 4
    assert busy == [4]
    current, out = 4, []
    for k in range(1, 30):
        t = k * 15.0
        current = ctl.reconcile(t, current, pods([50] * current))  # 10 % → wants 1
        out.append((t, current))
    first_down = next(t for t, n in out if n < 4)
    assert first_down == 315.0  # the last recommendation of 4 was at t = 0; 300 s later
    assert out[-1][1] == 1  # v1 has no rate policy on the way down


def test_scale_up_stabilization_window_uses_the_lowest_recent_recommendation():
    up = Rules(60, "Max", DEFAULT_SCALE_UP.policies)
    spec = HpaSpec(1, 10, 50, scale_up=up, scale_down=Rules(0, "Max", DEFAULT_SCALE_DOWN.policies))
    ctl = HpaController(spec)
    current = ctl.reconcile(0.0, 2, pods([500, 500]))  # at target: recommends 2
    assert current == 2
    out = []
    for k in range(1, 7):
        current = ctl.reconcile(k * 15.0, current, pods([1000] * current))  # wants double
        out.append(current)
    # Scale-up waits until the recommendation of 2 at t=0 has left the 60 s window.
    assert out[:3] == [2, 2, 2] and out[3] > 2


def test_select_policy_disabled_never_scales_down():
    down = Rules(0, "Disabled", DEFAULT_SCALE_DOWN.policies)
    ctl = HpaController(HpaSpec(1, 10, 50, scale_up=DEFAULT_SCALE_UP, scale_down=down))
    assert drive(ctl, 5, lambda t: 10, steps=10) == [5] * 10


def test_select_policy_min_picks_the_smallest_change():
    down = Rules(0, "Min", (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    ctl = HpaController(HpaSpec(10, 100, 50, scale_up=DEFAULT_SCALE_UP, scale_down=down))
    assert drive(ctl, 80, lambda t: 62, steps=1) == [76]  # 4 pods, not 8


def test_from_manifest_fills_behavior_defaults_as_the_api_server_does():
    spec = HpaSpec.from_manifest(
        1, 5, 100, {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    )
    assert spec.scale_up == DEFAULT_SCALE_UP
    assert spec.scale_down == Rules(300.0, "Max", (Policy("Pods", 1, 60),))
    assert HpaSpec.from_manifest(1, 5, 40).has_behavior is False


def test_optimized_behavior_scales_up_fast_and_down_one_pod_a_minute():
    from ggctl.manifests.strategy import OPT_BEHAVIOR

    spec = HpaSpec.from_manifest(1, 5, 100, OPT_BEHAVIOR)
    ctl = HpaController(spec)
    assert drive(ctl, 1, lambda t: 500 * 10, steps=3) == [3, 5, 5]  # +2 or x2 per 15 s
    current, seen = 5, []
    for k in range(3, 3 + 4 * 8):
        current = ctl.reconcile(k * 15.0, current, pods([10] * current))
        seen.append(current)
    # 120 s of stabilization after the last high recommendation (t = 30 s), then −1 a minute.
    assert seen[: (150 - 45) // 15] == [5] * ((150 - 45) // 15)
    drops = [b - a for a, b in itertools.pairwise(seen) if b != a]
    assert drops and all(d == -1 for d in drops)
