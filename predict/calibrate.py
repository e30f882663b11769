"""Measure the user's model as one pod of a strategy would serve it, on this machine; cache it.

The service is the real one, started as the container starts it (`python -m app.server`
with GGCTL_SERVE__* settings, through ggctl.local.demo.LocalServer), pinned with `taskset` to as
many CPUs as the strategy's CPU limit gives a pod (its thread layout then follows the CPU
count as in the container). Measured:
- the cold start: process spawn to the first 200 on /readyz (the model on disk);
- the service time of `GET /test` with one client, `requests` times (its distribution);
- the capacity: `clients` closed-loop clients for `load_s` seconds, requests/s;
- the server's CPU seconds per request under that load;
- how busy the machine is: the share of each pinned CPU a spin loop gets before and
  after (1.0 when quiet). The simulation divides the wall-clock figures by it (a pod on
  the cluster has its CPUs), unless told otherwise (`--set cpu_share=1`);
- the memory metrics-server would report, after start and after the load: the working set
  of a transient memory cgroup holding the service's processes (predict/footprint.py; as
  root), else the sum of their PSS (see `working_set_mib`).
The bench code under bench/ is not installed with ggctl, so this module carries the small
closed-loop client it needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ggctl.errors import GgctlError
from ggctl.predict.footprint import MemoryCgroup, evict_page_cache

MIB = 1024 * 1024
#: Bump when what is measured or how changes: old cache files are then ignored.
METHOD_VERSION = 4


class CalibrationError(GgctlError):
    """The model could not be measured."""


@dataclass(frozen=True)
class Layout:
    """The service's thread layout in one pod (0: the server chooses for its CPUs)."""

    cores: int
    threads: int = 4
    ort_threads: int = 0
    max_inflight: int = 0
    workers: int = 1

    @property
    def label(self) -> str:
        return (
            f"{self.cores} CPU, {self.workers}x{self.threads} threads, "
            f"ORT {self.ort_threads or 'auto'}, in flight {self.max_inflight or 'auto'}"
        )


@dataclass
class Calibration:
    """One measurement of one model in one layout on this machine."""

    model: str
    model_sha256: str
    layout: Layout
    service_ms: list[float]
    capacity_rps: float
    load_clients: int
    cpu_ms_per_request: float
    cold_start_s: float
    mem_start_mib: float
    mem_load_mib: float
    rss_start_mib: float
    #: Share of a pinned CPU a busy thread got around the measurement (1.0: a quiet machine).
    cpu_share: float = 1.0
    #: How memory was measured: "cgroup working set" (metrics-server's figure) or
    #: "summed PSS" (the closest per-process figure, where no cgroup could be made).
    mem_method: str = "summed PSS"
    machine: dict[str, Any] = field(default_factory=dict)
    measured_at: str = ""
    method_version: int = METHOD_VERSION
    cache_file: str = ""

    @property
    def mean_service_ms(self) -> float:
        return sum(self.service_ms) / len(self.service_ms)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        data = dict(data)
        data["layout"] = Layout(**data["layout"])
        return cls(**data)


def working_set_mib(pid: int) -> tuple[float, float]:
    """(working set, RSS) of a process and its descendants, MiB.

    The working set metrics-server reports is the container cgroup's usage minus inactive
    file pages: every page charged once, whichever processes map it, the libraries' file
    pages included. Of the per-process figures, the sum of PSS comes closest: it splits
    each shared page between its sharers, so a page the forked worker shares with
    gunicorn's master counts once. (RSS minus shared pages, summed, counts those
    copy-on-write pages twice and leaves the mapped libraries out.)"""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    ws = rss = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = p.memory_full_info()
            rss += info.rss
            ws += getattr(info, "pss", info.rss)
    return ws / MIB, rss / MIB


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def closed_loop(
    host: str, port: int, path: str, clients: int, *, requests: int, duration_s: float
) -> tuple[list[float], float, int]:
    """`clients` threads, each with one keep-alive connection, sending GET `path` back to
    back until `requests` in all or `duration_s`; returns (latencies s, wall s, failures)."""
    lock = threading.Lock()
    latencies: list[float] = []
    failures = [0]
    budget = [requests]
    stop_at = time.perf_counter() + duration_s

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while time.perf_counter() < stop_at:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                if conn is not None:
                    conn.close()
                conn = None
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    latencies.append(dt)
                else:
                    failures[0] += 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 60)
    return latencies, time.perf_counter() - t0, failures[0]


def cpu_share(cpus: list[int], seconds: float = 0.4) -> float:
    """The share of each of `cpus` a CPU-bound thread gets right now: 1.0 on a quiet
    machine, lower when other work competes for the same cores. A spin loop pinned to each
    CPU in turn; thread CPU time over wall time."""
    shares = []
    old = os.sched_getaffinity(0)
    try:
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            w0, c0 = time.perf_counter(), time.thread_time()
            while time.perf_counter() - w0 < seconds:
                pass
            shares.append((time.thread_time() - c0) / (time.perf_counter() - w0))
    finally:
        os.sched_setaffinity(0, old)
    return min(1.0, sum(shares) / len(shares))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def cache_path(cache_dir: Path, sha: str, layout: Layout) -> Path:
    key = f"{sha[:16]}-c{layout.cores}-w{layout.workers}t{layout.threads}"
    key += f"o{layout.ort_threads}i{layout.max_inflight}-v{METHOD_VERSION}"
    return Path(cache_dir) / f"calibration-{key}.json"


def calibrate(
    settings: Any,
    model: Path,
    layout: Layout,
    cache_dir: Path,
    *,
    requests: int = 80,
    clients: int = 20,
    load_s: float = 8.0,
    refresh: bool = False,
    log: Callable[[str], None] = lambda _m: None,
) -> Calibration:
    """The cached calibration of `model` in `layout`, else a new measurement (cached)."""
    model = Path(model).expanduser()
    if not model.is_file():
        raise CalibrationError(f"model {model} does not exist", hint="pass --model FILE.onnx")
    sha = _sha256(model)
    path = cache_path(cache_dir, sha, layout)
    if path.is_file() and not refresh:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            cal = Calibration.from_dict(json.loads(path.read_text()))
            cal.cache_file = str(path)
            return cal
    cal = measure(settings, model, sha, layout, requests, clients, load_s, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cal.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)
    cal.cache_file = str(path)
    return cal


def measure(
    settings: Any,
    model: Path,
    sha: str,
    layout: Layout,
    requests: int,
    clients: int,
    load_s: float,
    log: Callable[[str], None],
) -> Calibration:
    """Start the service pinned to `layout.cores` CPUs and measure it (see the module doc)."""
    import tempfile

    from ggctl.app.server import PROCESS_ENV
    from ggctl.local.demo import DemoError, LocalServer
    from ggctl.ports import LOOPBACK, free_port

    cpus = sorted(os.sched_getaffinity(0))
    if layout.cores > len(cpus):
        raise CalibrationError(
            f"the layout needs {layout.cores} CPUs; this machine gives ggctl {len(cpus)}",
            hint="calibrate on a machine with as many CPUs as the pod's limit, or "
            "--set cpu_limit=N",
        )
    serve = settings.serve.model_copy(
        update={
            "workers": layout.workers,
            "threads": layout.threads,
            "ort_threads": layout.ort_threads,
            "max_inflight": layout.max_inflight,
        }
    )
    run_settings = settings.model_copy(update={"serve": serve})
    taskset = shutil.which("taskset")
    with tempfile.TemporaryDirectory(prefix="ggctl-calibrate-") as tmp:
        port = free_port()
        server = LocalServer(run_settings, model, port, Path(tmp) / "server.log")
        pinned = cpus[: layout.cores]
        # The container's own entrypoint and configuration (app/Dockerfile): its process
        # tree is what metrics-server measures in the pod, not `ggctl serve`'s.
        server.cmd = [sys.executable, "-m", "ggctl.app.server", str(model)]
        server.env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
        server.env.update(PROCESS_ENV)  # as the image sets it
        server.env.update(
            {
                "GGCTL_SERVE__HOST": LOOPBACK,
                "GGCTL_SERVE__PORT": str(port),
                "GGCTL_SERVE__WORKERS": str(layout.workers),
                "GGCTL_SERVE__THREADS": str(layout.threads),
                "GGCTL_SERVE__ORT_THREADS": str(layout.ort_threads),
                "GGCTL_SERVE__MAX_INFLIGHT": str(layout.max_inflight),
            }
        )
        if taskset and layout.cores < len(cpus):
            server.cmd = [taskset, "-c", ",".join(map(str, pinned)), *server.cmd]
        log(f"measuring {model.name} as one pod ({layout.label}) …")
        share_before = cpu_share(pinned)
        # The pod's working set as metrics-server reports it; a fresh pod reads its
        # libraries itself, so they are dropped from the page cache to be charged to it.
        evict_page_cache([*_service_files(), model])
        cgroup = MemoryCgroup.create("ggctl-calibrate")
        if cgroup is not None:
            server.cmd = cgroup.wrap(server.cmd)

        def memory() -> tuple[float, float]:
            ws, rss = working_set_mib(server.pid)
            return (cgroup.working_set_mib(), rss) if cgroup is not None else (ws, rss)

        try:
            server.start()
            cold = server.wait_ready(120.0)
            time.sleep(0.5)  # let the worker settle before reading its memory
            mem_start, rss_start = memory()
            # Warm-up: the first requests pay one-off costs (connection, allocator growth).
            closed_loop(LOOPBACK, port, "/test", 1, requests=5, duration_s=30)
            seq, _, fail1 = closed_loop(
                LOOPBACK, port, "/test", 1, requests=requests, duration_s=60
            )
            cpu0 = tree_cpu_s(server.pid)
            lat, wall, fail2 = closed_loop(
                LOOPBACK, port, "/test", clients, requests=10**9, duration_s=load_s
            )
            cpu1 = tree_cpu_s(server.pid)
            mem_load, _ = memory()
            share_after = cpu_share(pinned)
        except DemoError as exc:
            raise CalibrationError(f"calibration failed: {exc.message}", hint=exc.hint) from None
        finally:
            server.stop()
            if cgroup is not None:
                cgroup.remove()
    if not seq or not lat or fail1 or fail2:
        raise CalibrationError(
            f"calibration failed: {fail1 + fail2} failed requests, {len(seq)}/{len(lat)} ok",
            hint="run `ggctl serve --model MODEL` and check GET /test answers",
        )
    return Calibration(
        model=str(model),
        model_sha256=sha,
        layout=layout,
        service_ms=[round(1e3 * s, 3) for s in seq],
        capacity_rps=round(len(lat) / wall, 2),
        load_clients=clients,
        cpu_ms_per_request=round(1e3 * (cpu1 - cpu0) / len(lat), 3),
        cold_start_s=round(cold, 3),
        mem_start_mib=round(mem_start, 1),
        mem_load_mib=round(max(mem_load, mem_start), 1),
        rss_start_mib=round(rss_start, 1),
        cpu_share=round((share_before + share_after) / 2, 3),
        mem_method="cgroup working set" if cgroup is not None else "summed PSS",
        machine={"cpu": _cpu_model(), "cpus": len(cpus), "pinned": pinned},
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def _service_files() -> list[Path]:
    """The service's code and the packages it maps, found without importing them."""
    import importlib.util

    out = [Path(__file__).resolve().parents[1] / "app"]
    for name in ("onnxruntime", "numpy", "PIL", "flask", "werkzeug", "jinja2", "gunicorn"):
        spec = importlib.util.find_spec(name)
        for where in (spec.submodule_search_locations or []) if spec else []:
            out.append(Path(where))
            # Wheels put a package's bundled shared libraries beside it (numpy.libs ...).
            out.extend(Path(where).parent.glob(f"{name.lower()}*.libs"))
    return out


def cores_for_limit(cpu_limit: float | None) -> int:
    """CPUs a pod with this limit gets to size its threads (app/cpus.py rounds the quota up)."""
    n = len(os.sched_getaffinity(0))
    if cpu_limit is None:
        return n
    return max(1, min(n, math.ceil(cpu_limit)))
