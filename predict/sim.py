"""A discrete-event simulation of the challenge on the cluster: users, Service, pods, HPA.

A small event loop of our own (a heap of timed callbacks) rather than SimPy: the pods are
processor-sharing servers whose completion times move whenever a request arrives or
leaves, which is a recomputed event here and a pile of interrupts in a process-based
library. Time is profile seconds from the start of the load.

What is modelled, and the upstream behaviour each part follows:
- users: the profile's closed loop, as the Locust engine runs it (ggctl.evaluate.loadgen):
  a user sends a request, waits for the answer, thinks uniform(0, d) (Profile.think_time),
  and keeps its keep-alive connection to one pod while it is never idle longer than the
  server's keep-alive (gunicorn `keepalive`, 5 s): kube-proxy balances connections, not
  requests, so a busy user sticks to its pod and only new connections see new pods.
- the Service: a new connection goes to a ready endpoint chosen at random (kube-proxy's
  iptables mode, `statistic --mode random`); none ready: the connection fails.
- a pod: `threads` request threads (gunicorn gthread), the rest wait FIFO; the requests in
  service share the pod's measured capacity (processor sharing: each alone takes its
  measured service time; n together progress at min(1, c/n), c = capacity x mean service
  time); CPU demand above the CPU limit slows every request in proportion (CFS quota,
  averaged over its 100 ms periods); readiness probes are requests too (the course's
  /test costs an inference), with timeoutSeconds, successThreshold, failureThreshold.
- start-up: scheduling, image and container start, the measured cold start (process to
  /readyz), then the startup and readiness probes' ticks; endpoints follow readiness after
  a propagation delay.
- termination: out of the endpoints, preStop sleep, SIGTERM: no new connection is
  accepted, in-flight requests finish (gunicorn graceful timeout); requests routed there
  after SIGTERM fail as refused connections.
- metrics-server: scrapes every `metric_resolution_s`; a pod's CPU is the rate between its
  last two scrapes, memory its working set at the last one (kubelet resource metrics).
- the HPA: ggctl.predict.hpa, every `hpa_sync_s`, on the pods' latest metrics.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ggctl.evaluate.monitor import Sample
from ggctl.evaluate.profile import Profile
from ggctl.evaluate.scoring import RequestRecord
from ggctl.predict.hpa import HpaController, HpaSpec, PodView

KIB_PER_MIB = 1024.0


@dataclass(frozen=True)
class PodParams:
    """One pod's behaviour, in profile seconds (already scaled to the cluster's CPU)."""

    service_s: tuple[float, ...]  # time of one request served alone (samples)
    capacity_rps: float  # requests/s when saturated
    cpu_per_request_s: float  # CPU seconds one request costs
    threads: int = 4
    cpu_limit: float | None = None  # cores (None: no limit)
    cpu_request: float | None = None  # cores (the HPA's denominator)
    mem_request_mib: float | None = None
    mem_start_mib: float = 0.0  # working set after start
    mem_load_mib: float = 0.0  # working set once it has served load
    cold_start_s: float = 1.0  # container start → /readyz answers 200
    probe_work_s: float = 0.0  # readiness probe's cost (the /test probe: one inference)

    @property
    def mean_service_s(self) -> float:
        return sum(self.service_s) / len(self.service_s)

    @property
    def parallelism(self) -> float:
        """How many requests the pod serves at full speed at once (c)."""
        return max(self.capacity_rps * self.mean_service_s, 1e-9)

    @property
    def cpu_per_busy_s(self) -> float:
        """Cores one request keeps busy while it progresses at full speed."""
        return self.cpu_per_request_s / self.mean_service_s


@dataclass(frozen=True)
class ProbeParams:
    """A readiness (or startup) probe: None fields are Kubernetes' defaults."""

    period_s: float = 10.0
    initial_delay_s: float = 0.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class ClusterParams:
    """Everything about the cluster that is not the pod's own measurement."""

    replicas: int = 1  # fixed replicas, or the HPA's starting count
    hpa: HpaSpec | None = None
    readiness: ProbeParams | None = ProbeParams(5, 5, 1, 3, 3)
    startup: ProbeParams | None = None
    schedule_s: float = 0.5  # pod created → bound and seen by the kubelet (status.startTime)
    container_start_s: float = 1.5  # image check/pull of a cached image + container start
    endpoint_delay_s: float = 1.0  # readiness change → kube-proxy rules on every node
    pre_stop_s: float = 0.0
    graceful_s: float = 25.0  # gunicorn graceful_timeout
    keepalive_s: float = 5.0  # gunicorn keepalive: idle connections closed after this
    request_timeout_s: float = 30.0  # the load generator's timeout
    net_s: float = 0.0  # network round trip added to every request
    metric_resolution_s: float = 15.0  # metrics-server --metric-resolution
    hpa_sync_s: float = 15.0
    sample_interval_s: float = 5.0  # the resource monitor's period
    seed: int = 1


@dataclass
class _Job:
    user: int | None  # None: a probe
    arrive: float
    work: float
    start: float = 0.0
    done: bool = False
    on_done: Callable[[float, bool], None] | None = None


@dataclass
class _Pod:
    name: str
    created: float
    params: PodParams
    start_time: float | None = None  # status.startTime
    container_start: float | None = None
    process_up: float | None = None
    started: bool = False  # startup probe passed (or none)
    ready: bool = False
    ready_transition: float = 0.0
    in_endpoints: bool = False
    deleting: bool = False
    sigterm: bool = False
    gone: bool = False
    active: list[_Job] = field(default_factory=list)
    queue: deque[_Job] = field(default_factory=deque)
    rate: float = 0.0  # progress per second of each active job
    cpu_rate: float = 0.0
    last: float = 0.0
    cpu_s: float = 0.0
    version: int = 0
    served: int = 0
    first_ready: float | None = None
    deleted_at: float | None = None
    probe_ok: int = 0
    probe_fail: int = 0
    scrapes: list[tuple[float, float, float]] = field(default_factory=list)  # (t, cpu_s, mem)

    def mem_mib(self) -> float:
        if self.process_up is None:
            return 0.0
        return self.params.mem_load_mib if self.served else self.params.mem_start_mib

    def metric(self) -> tuple[float, float, float, float] | None:
        """(cpu cores, memory MiB, timestamp, window) from the last two scrapes."""
        if len(self.scrapes) < 2:
            return None
        (t0, c0, _), (t1, c1, m1) = self.scrapes[-2], self.scrapes[-1]
        return ((c1 - c0) / (t1 - t0), m1, t1, t1 - t0)


@dataclass
class SimResult:
    """What one simulated run produced."""

    requests: list[RequestRecord]
    samples: list[Sample]
    hpa: HpaController | None
    probe_requests: int
    events: int
    sent: int  # user requests sent; each is in `requests` once, or still in flight at the end
    in_flight: int
    pods: list[dict[str, float | None]]  # per pod: created, ready at, gone at, served


class Simulation:
    """One run of `profile` against a deployment of pods with `pod` behaviour."""

    def __init__(
        self,
        profile: Profile,
        pod: PodParams,
        cluster: ClusterParams,
        max_events: int = 20_000_000,
    ):
        self.profile = profile
        self.pod_params = pod
        self.c = cluster
        self.rng = random.Random(cluster.seed)  # noqa: S311 - a seeded simulation, no secret
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.max_events = max_events
        self.events = 0
        self.pods: list[_Pod] = []
        self._names = itertools.count()
        self.records: list[RequestRecord] = []
        self.samples: list[Sample] = []
        self.probes = 0
        self.hpa = HpaController(cluster.hpa) if cluster.hpa else None
        self.replicas = cluster.replicas  # the Deployment's spec.replicas
        self.user_pod: dict[int, _Pod] = {}
        self.user_idle_since: dict[int, float] = {}
        self._running: set[int] = set()
        self._in_flight: set[int] = set()
        self.sent = 0

    # -- the event loop ---------------------------------------------------------------------
    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), fn))

    def run(self) -> SimResult:
        end = self.profile.total_duration_s
        for _ in range(self.replicas):
            self._create_pod(0.0, ready_now=True)
        self._start_users()
        offset = self.rng.uniform(0, self.c.metric_resolution_s)
        self.at(offset, self._scrape)
        if self.hpa is not None:
            self.at(self.rng.uniform(0, self.c.hpa_sync_s), self._hpa_sync)
        self.at(0.0, self._sample)
        while self._heap:
            t, _, fn = heapq.heappop(self._heap)
            if t >= end:  # the profile is [0, end): nothing starts at its end
                break
            self.now = t
            self.events += 1
            if self.events > self.max_events:
                raise RuntimeError(f"simulation exceeded {self.max_events:,} events")
            fn()
        in_flight = len(self._in_flight)
        pods = [
            {
                "created": p.created,
                "first_ready": p.first_ready,
                "deleted": p.deleted_at,
                "served": float(p.served),
            }
            for p in self.pods
        ]
        return SimResult(
            self.records,
            self.samples,
            self.hpa,
            self.probes,
            self.events,
            self.sent,
            in_flight,
            pods,
        )

    # -- users ------------------------------------------------------------------------------
    def _start_users(self) -> None:
        start = 0.0
        for stage in self.profile.stages:
            self.at(start, lambda n=stage.users: self._spawn(n))
            start += stage.duration_s

    def _spawn(self, users: int) -> None:
        # Users beyond a stage's count stop at their next request (Locust stops them at
        # once); a later, bigger stage starts the ones not running.
        for user in range(users):
            if user not in self._running:
                self._running.add(user)
                self._user_request(user)

    def _user_active(self, user: int, t: float) -> int | None:
        i = self.profile.stage_at(t)
        if i is None or user >= self.profile.stages[i].users:
            return None
        return i

    def _user_request(self, user: int) -> None:
        stage = self._user_active(user, self.now)
        if stage is None:
            self._running.discard(user)
            return
        t_send = self.now
        if user in self._in_flight:
            raise AssertionError(f"user {user} sent a request while one was in flight")
        self._in_flight.add(user)
        self.sent += 1
        pod = self.user_pod.get(user)
        idle = t_send - self.user_idle_since.get(user, -math.inf)
        if (
            pod is None
            or pod.gone
            or pod.sigterm
            or idle > self.c.keepalive_s
            or self.c.keepalive_s <= 0
        ):
            pod = self._pick_endpoint()
            self.user_pod[user] = pod  # type: ignore[assignment]
        users = self.profile.stages[stage].users

        def finish(t_done: float, ok: bool, error: str = "") -> None:
            latency = t_done - t_send + self.c.net_s
            if ok and latency > self.c.request_timeout_s:
                ok, error = False, "timeout"
            self.records.append(
                RequestRecord(
                    start=t_send,
                    offset_s=t_send,
                    stage=stage,
                    users=users,
                    latency_ms=1e3 * min(latency, self.c.request_timeout_s),
                    status=200 if ok else 0,
                    ok=ok,
                    error=error,
                )
            )
            self._in_flight.discard(user)
            self.user_idle_since[user] = t_done
            think = self.profile.think_time(t_done, self.rng)
            self.at(t_done + think, lambda: self._user_request(user))

        if pod is None or pod.sigterm or pod.gone:
            self.user_pod.pop(user, None)
            self.at(self.now + self.c.net_s, lambda: finish(self.now, False, "connection refused"))
            return
        timeout_at = t_send + self.c.request_timeout_s
        job = _Job(user, t_send, self._service_sample())
        done_box = {"done": False}

        def on_done(t_done: float, ok: bool) -> None:
            if done_box["done"]:
                return
            done_box["done"] = True
            finish(t_done, ok, "" if ok else "pod terminated")

        def on_timeout() -> None:
            if done_box["done"]:
                return
            done_box["done"] = True
            self.user_pod.pop(user, None)  # the client drops the connection
            finish(self.now, False, "timeout")

        job.on_done = on_done
        self._arrive(pod, job)
        self.at(timeout_at, on_timeout)

    def _pick_endpoint(self) -> _Pod | None:
        # A pod that is gone stays in the endpoints until their update reaches kube-proxy:
        # connections to it are refused meanwhile.
        ready = [p for p in self.pods if p.in_endpoints]
        return self.rng.choice(ready) if ready else None

    def _service_sample(self) -> float:
        return self.rng.choice(self.pod_params.service_s)

    # -- pods: processor sharing with a thread pool and a CPU limit ------------------------
    def _advance(self, pod: _Pod) -> None:
        dt = self.now - pod.last
        if dt > 0 and pod.active:
            for job in pod.active:
                job.work -= pod.rate * dt
            pod.cpu_s += pod.cpu_rate * dt
        pod.last = self.now

    def _reschedule(self, pod: _Pod) -> None:
        p = pod.params
        while pod.queue and len(pod.active) < p.threads:
            job = pod.queue.popleft()
            job.start = self.now
            pod.active.append(job)
        n = len(pod.active)
        pod.version += 1
        if n == 0:
            pod.rate = pod.cpu_rate = 0.0
            return
        rate = min(1.0, p.parallelism / n)
        demand = n * rate * p.cpu_per_busy_s
        if p.cpu_limit is not None and demand > p.cpu_limit:
            rate *= p.cpu_limit / demand  # CFS quota: everyone waits for the next period
            demand = p.cpu_limit
        pod.rate, pod.cpu_rate = rate, demand
        first = min(pod.active, key=lambda j: j.work)
        eta = self.now + max(first.work, 0.0) / rate
        version = pod.version
        self.at(eta, lambda: self._complete(pod, version))

    def _arrive(self, pod: _Pod, job: _Job) -> None:
        self._advance(pod)
        pod.queue.append(job)
        self._reschedule(pod)

    def _complete(self, pod: _Pod, version: int) -> None:
        if version != pod.version:
            return
        self._advance(pod)
        finished = [j for j in pod.active if j.work <= 1e-12]
        pod.active = [j for j in pod.active if j.work > 1e-12]
        for job in finished:
            if job.user is not None:
                pod.served += 1
            if job.on_done is not None:
                job.on_done(self.now, True)
        self._reschedule(pod)
        if pod.sigterm and not pod.active and not pod.queue:
            self._gone(pod)

    # -- pod lifecycle ----------------------------------------------------------------------
    def _create_pod(self, t: float, ready_now: bool = False) -> _Pod:
        pod = _Pod(f"pod-{next(self._names)}", t, self.pod_params, last=t)
        self.pods.append(pod)
        if ready_now:
            # The run starts after `ggctl deploy` waited for the rollout: pods are ready,
            # their CPU-initialization period long past.
            pod.start_time = t - 3600
            pod.container_start = pod.process_up = t - 3600
            pod.started = pod.ready = pod.in_endpoints = True
            pod.ready_transition = pod.first_ready = t - 3600
            # It has been scraped before the load starts: a metric exists from the start.
            pod.scrapes = [(t - self.c.metric_resolution_s, 0.0, self.pod_params.mem_start_mib)]
            self._schedule_probes(pod)
            return pod
        pod.start_time = t + self.c.schedule_s
        pod.container_start = pod.start_time + self.c.container_start_s
        up = pod.container_start + self.pod_params.cold_start_s
        self.at(up, lambda: setattr(pod, "process_up", up))
        self._schedule_probes(pod)
        return pod

    def _schedule_probes(self, pod: _Pod) -> None:
        assert pod.container_start is not None
        base = max(pod.container_start, self.now)
        if self.c.startup is not None and not pod.started:
            s = self.c.startup
            self.at(base + s.initial_delay_s + s.period_s, lambda: self._startup_tick(pod))
        else:
            pod.started = True
        r = self.c.readiness
        if r is None:
            if not pod.ready:
                # No readiness probe: ready as soon as the container runs.
                self.at(base, lambda: self._set_ready(pod, True))
            return
        first = base + r.initial_delay_s if not pod.ready else self.now + r.period_s
        self.at(first, lambda: self._readiness_tick(pod))

    def _startup_tick(self, pod: _Pod) -> None:
        if pod.deleting or pod.gone:
            return
        if pod.process_up is not None:
            pod.started = True
            return
        self.at(self.now + self.c.startup.period_s, lambda: self._startup_tick(pod))  # type: ignore[union-attr]

    def _readiness_tick(self, pod: _Pod) -> None:
        r = self.c.readiness
        assert r is not None
        if pod.gone or pod.sigterm:
            return
        self.at(self.now + r.period_s, lambda: self._readiness_tick(pod))
        if not pod.started:
            return
        if pod.process_up is None:
            self._probe_result(pod, False)
            return
        self.probes += 1
        box = {"done": False}

        def on_done(_t: float, ok: bool) -> None:
            if not box["done"]:
                box["done"] = True
                self._probe_result(pod, ok)

        def on_timeout() -> None:
            if not box["done"]:
                box["done"] = True
                self._probe_result(pod, False)

        job = _Job(None, self.now, self.pod_params.probe_work_s or 1e-4, on_done=on_done)
        self._arrive(pod, job)
        self.at(self.now + r.timeout_s, on_timeout)

    def _probe_result(self, pod: _Pod, ok: bool) -> None:
        r = self.c.readiness
        assert r is not None
        if ok:
            pod.probe_ok += 1
            pod.probe_fail = 0
            if not pod.ready and pod.probe_ok >= r.success_threshold:
                self._set_ready(pod, True)
        else:
            pod.probe_fail += 1
            pod.probe_ok = 0
            if pod.ready and pod.probe_fail >= r.failure_threshold:
                self._set_ready(pod, False)

    def _set_ready(self, pod: _Pod, ready: bool) -> None:
        if pod.deleting:
            return
        pod.ready = ready
        pod.ready_transition = self.now
        if ready and pod.first_ready is None:
            pod.first_ready = self.now

        def apply() -> None:
            if not pod.deleting:
                pod.in_endpoints = pod.ready

        self.at(self.now + self.c.endpoint_delay_s, apply)

    def _delete_pod(self, pod: _Pod) -> None:
        pod.deleting = True
        pod.deleted_at = self.now
        self.at(self.now + self.c.endpoint_delay_s, lambda: setattr(pod, "in_endpoints", False))
        self.at(self.now + self.c.pre_stop_s, lambda: self._sigterm(pod))

    def _sigterm(self, pod: _Pod) -> None:
        pod.sigterm = True
        if not pod.active and not pod.queue:
            self._gone(pod)
            return
        self.at(self.now + self.c.graceful_s, lambda: self._kill(pod))

    def _kill(self, pod: _Pod) -> None:
        if pod.gone:
            return
        self._advance(pod)
        for job in [*pod.active, *pod.queue]:
            if job.on_done is not None:
                job.on_done(self.now, False)
        pod.active.clear()
        pod.queue.clear()
        self._gone(pod)

    def _gone(self, pod: _Pod) -> None:
        pod.gone = True
        pod.version += 1

    # -- the control loops ------------------------------------------------------------------
    def _alive(self) -> list[_Pod]:
        return [p for p in self.pods if not p.gone]

    def _scrape(self) -> None:
        for pod in self._alive():
            if pod.process_up is None or pod.process_up > self.now:
                continue
            self._advance(pod)
            pod.scrapes = [*pod.scrapes[-1:], (self.now, pod.cpu_s, pod.mem_mib())]
        self.at(self.now + self.c.metric_resolution_s, self._scrape)

    def _hpa_sync(self) -> None:
        assert self.hpa is not None
        views = []
        for pod in self._alive():
            m = pod.metric()
            views.append(
                PodView(
                    pod.name,
                    round(1000 * (pod.params.cpu_request or 0.0)),
                    running=pod.start_time is not None and pod.start_time <= self.now,
                    deleting=pod.deleting,
                    start_time=pod.start_time,
                    ready=pod.ready if pod.container_start <= self.now else False,  # type: ignore[operator]
                    ready_transition=pod.ready_transition,
                    usage_m=None if m is None else round(1000 * m[0]),
                    metric_time=0.0 if m is None else m[2],
                    metric_window_s=0.0 if m is None else m[3],
                )
            )
        desired = self.hpa.reconcile(self.now, self.replicas, views)
        if desired != self.replicas:
            self.replicas = desired
            self._reconcile_replicaset()
        self.at(self.now + self.c.hpa_sync_s, self._hpa_sync)

    def _reconcile_replicaset(self) -> None:
        live = [p for p in self.pods if not p.deleting and not p.gone]
        if len(live) < self.replicas:
            for _ in range(self.replicas - len(live)):
                self._create_pod(self.now)
        elif len(live) > self.replicas:
            # ReplicaSet's deletion order (controller.ActivePods): not ready first, then
            # the most recently created.
            ranked = sorted(live, key=lambda p: (p.ready, -p.created))
            for pod in ranked[: len(live) - self.replicas]:
                self._delete_pod(pod)

    def _sample(self) -> None:
        pods = self._alive()
        mem_req = [p.params.mem_request_mib for p in pods]
        cpu_req = [p.params.cpu_request for p in pods]
        metrics = [m for p in pods if (m := p.metric()) is not None]
        self.samples.append(
            Sample(
                time=self.now,
                n_replica=len(pods),
                cpu_req_core=sum(cpu_req) if all(v is not None for v in cpu_req) else None,  # type: ignore[arg-type]
                mem_req_KB=KIB_PER_MIB * sum(mem_req)  # type: ignore[arg-type]
                if all(v is not None for v in mem_req)
                else None,
                cpu_lim_core=(self.pod_params.cpu_limit or 0) * len(pods)
                if self.pod_params.cpu_limit is not None
                else None,
                mem_lim_KB=None,
                cpu_use_core=sum(m[0] for m in metrics) if metrics else None,
                mem_use_KB=KIB_PER_MIB * sum(m[1] for m in metrics) if metrics else None,
            )
        )
        self.at(self.now + self.c.sample_interval_s, self._sample)
