"""The simulation's invariants on small bounded runs (no calibration, no server)."""

from __future__ import annotations

import random

import pytest

from ggctl.evaluate.profile import Profile, Stage
from ggctl.evaluate.scoring import score
from ggctl.predict.hpa import HpaSpec
from ggctl.predict.sim import ClusterParams, PodParams, ProbeParams, Simulation


def pod(**kw) -> PodParams:
    rng = random.Random(7)
    base = dict(
        service_s=tuple(0.010 + 0.004 * rng.random() for _ in range(50)),  # mean 12 ms
        capacity_rps=100.0,
        cpu_per_request_s=0.018,
        threads=4,
        cpu_limit=2.0,
        cpu_request=1.0,
        mem_request_mib=256.0,
        mem_start_mib=100.0,
        mem_load_mib=120.0,
        cold_start_s=2.0,
        probe_work_s=0.012,
    )
    return PodParams(**{**base, **kw})


def run(profile: Profile, p: PodParams, c: ClusterParams):
    res = Simulation(profile, p, c, max_events=2_000_000).run()
    return res, score(res.requests, res.samples, profile.total_duration_s)


def test_littles_law_holds_for_the_closed_loop():
    # N users = X (R + Z): throughput times (response time + mean think time).
    prof = Profile("one", (Stage(600, 10, 2.0),))
    _res, s = run(prof, pod(), ClusterParams(replicas=1, readiness=None))
    mean_think = 1.0  # uniform(0, 2)
    n = s.transaction_rate * (s.mean_response_ms / 1e3 + mean_think)
    assert n == pytest.approx(10, rel=0.03)
    assert s.failures == 0


def test_throughput_never_exceeds_capacity_and_saturates_near_it():
    prof = Profile("busy", (Stage(120, 40, 0.0),))
    for replicas in (1, 3):
        _res, s = run(prof, pod(), ClusterParams(replicas=replicas, readiness=None))
        assert s.transaction_rate <= replicas * 100.0 * 1.01
        assert s.transaction_rate >= replicas * 100.0 * 0.9
        # Little's law at saturation: R = N / X.
        assert s.mean_response_ms / 1e3 == pytest.approx(40 / s.transaction_rate, rel=0.03)


def test_every_request_is_accounted_for_once():
    prof = Profile("steps", (Stage(60, 5, 1.0), Stage(60, 30, 0.2), Stage(60, 10, 3.0)))
    hpa = HpaSpec(1, 4, 40)
    res, _s = run(prof, pod(), ClusterParams(replicas=1, hpa=hpa))
    assert res.sent == len(res.requests) + res.in_flight
    assert res.in_flight <= 30
    ok = sum(1 for r in res.requests if r.ok)
    # Each successful request was served by exactly one pod (the rest ended before the end).
    assert sum(p["served"] for p in res.pods) >= ok
    assert sum(p["served"] for p in res.pods) <= ok + res.in_flight
    # No stage has more requests in flight at once than users.
    events = sorted(
        [(r.start, 1) for r in res.requests]
        + [(r.start + r.latency_ms / 1e3, -1) for r in res.requests]
    )
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak <= 30


def test_cpu_limit_below_demand_throttles_to_the_quota():
    prof = Profile("busy", (Stage(120, 20, 0.0),))
    # 18 ms of CPU per request: a 0.9-core quota allows 50 requests/s, below the 100 of capacity.
    res, s = run(prof, pod(cpu_limit=0.9), ClusterParams(replicas=1, readiness=None))
    assert s.transaction_rate == pytest.approx(0.9 / 0.018, rel=0.02)
    # metrics-server's view once its first full window is inside the load
    steady = [x.cpu_use_core for x in res.samples if x.time >= 30]
    assert sum(steady) / len(steady) == pytest.approx(0.9, rel=0.03)


def test_new_pod_serves_only_after_cold_start_and_three_test_probes():
    # The course's readiness probe: /test after 5 s, every 5 s, 3 successes.
    prof = Profile("surge", (Stage(60, 2, 2.0), Stage(240, 30, 0.05)))
    c = ClusterParams(replicas=1, hpa=HpaSpec(1, 3, 40), readiness=ProbeParams(5, 5, 1, 3, 3))
    res, s = run(prof, pod(), c)
    added = [p for p in res.pods if p["created"] > 0]
    assert added, "the HPA added no pod under a surge"
    for p in added:
        assert p["first_ready"] is not None
        # schedule + container start + 5 s delay + two more periods, and after the cold start
        assert p["first_ready"] - p["created"] >= c.schedule_s + c.container_start_s + 5 + 10 - 1e-9
    assert s.max_replicas == 3
    assert res.probe_requests > 0


def test_hpa_scales_back_down_after_the_load_and_prestop_avoids_failures():
    prof = Profile("wave", (Stage(120, 30, 0.02), Stage(600, 30, 5.0)))
    fails = {}
    for pre_stop in (0.0, 5.0):
        c = ClusterParams(
            replicas=1,
            hpa=HpaSpec(1, 4, 40, downscale_stabilization_s=60),
            readiness=ProbeParams(5, 0, 1, 1, 3),
            pre_stop_s=pre_stop,
            endpoint_delay_s=2.0,
            keepalive_s=0.0,  # a new connection per request: routing sees endpoint changes
        )
        res, s = run(prof, pod(), c)
        assert s.max_replicas >= 3
        assert res.samples[-1].n_replica == 1, "no scale-down after the load"
        fails[pre_stop] = s.failures
    # Without preStop, SIGTERM comes before the endpoints are updated: refused requests.
    assert fails[0.0] > 0
    assert fails[5.0] == 0


def test_same_seed_same_result():
    prof = Profile("one", (Stage(60, 5, 1.0),))
    a = run(prof, pod(), ClusterParams(seed=3))[1]
    b = run(prof, pod(), ClusterParams(seed=3))[1]
    assert a.to_dict() == b.to_dict()
