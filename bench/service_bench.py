#!/usr/bin/env python3
"""Service benchmark: the classifier under gunicorn against its in-process floor and ceiling.

    .venv/bin/python bench/service_bench.py [--quick] [--json out.json] [--markdown out.md]

One run, one model (the built-in untrained MobileNetV2-shaped demo model unless --model):

1. floor      raw ONNX Runtime batch-1 latency, 1 and 2 intra-op threads, in this process;
2. in-process the same work as POST /predict (decode + resize + ORT run) and preprocessing
              alone, on the bundled 1280x1280 test JPEG;
3. ceiling    images/s with the service's thread layout calling that pipeline concurrently
              in-process (one process per gunicorn worker, as many threads as it has);
4. service    `ggctl serve` as a subprocess on a free 127.0.0.1 port: GET /test and
              POST /predict p50/p95 with 1 sequential client, throughput + p50/p95 + failures
              with 20 closed-loop clients (no think time);
5. memory     RSS (and PSS) of master + workers after start and after load;
6. cold start process spawn to the first 200 on /readyz;

then a layout sweep (workers x threads x ORT intra-op threads x max in-flight) for a "pod" of
1 CPU (server pinned with `taskset -c 0`, the load client on the other core) and of 2 CPUs
(server pinned to both cores; the load client shares them — there is no third core). The
in-process ceiling of each layout runs under the same pinning, alone.

The load client is a separate process (stdlib http.client, one keep-alive connection per
client thread, requests prepared once) so that its CPU cost is small and measured: it is
reported as CPU seconds and ms per request. All traffic goes to 127.0.0.1. Every loop is
bounded in count and time; every process this script starts is killed on exit or Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ggctl.app.inference import thread_layout
from ggctl.ports import free_port

MIB = 1024 * 1024
HOST = "127.0.0.1"

# The targets (issue 3, section 5) on a 2-core machine, MobileNetV2-class model.
TARGET_PREDICT_OVER_FLOOR_MS = 3.0
TARGET_PREPROCESS_MS = 3.0
TARGET_RSS_MIB = 250.0
TARGET_COLD_START_S = 3.0
TARGET_CEILING_FRACTION = 0.85
TARGET_TEST_P50_MS = 14.0  # the "10x the seed app" latency goal
BUSY_FRACTION = 0.75  # a sweep row whose ceiling used less of its pod's CPUs is marked "busy"

# ---------------------------------------------------------------------------------------------
# Child processes we start: tracked so that they die with us, whatever happens.
# ---------------------------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen] = []
_CHILDREN_LOCK = threading.Lock()


def _spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    with _CHILDREN_LOCK:
        _CHILDREN.append(proc)
    return proc


def _kill(proc: subprocess.Popen, sig: int = signal.SIGINT, grace_s: float = 5.0) -> None:
    """Stop a child and its process group (gunicorn's workers): `sig`, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    # Workers may outlive a master that died first: the group goes regardless.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    with _CHILDREN_LOCK:
        if proc in _CHILDREN:
            _CHILDREN.remove(proc)


def _kill_all() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    for proc in procs:
        _kill(proc, grace_s=3.0)


def _on_sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)


# ---------------------------------------------------------------------------------------------
# Small statistics
# ---------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1e3 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "min_ms": round(min(ms), 3) if ms else float("nan"),
        "mean_ms": round(sum(ms) / len(ms), 3) if ms else float("nan"),
    }


# ---------------------------------------------------------------------------------------------
# Child mode 1: the load client (stdlib only, so it starts fast and costs little CPU)
# ---------------------------------------------------------------------------------------------


def _multipart(field: str, filename: str, data: bytes, ctype: str) -> tuple[bytes, str]:
    boundary = "ggctlbench" + os.urandom(8).hex()
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={boundary}"


def load_client(cfg: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop clients against one route; each thread keeps one keep-alive connection."""
    import http.client

    host, port = cfg["host"], int(cfg["port"])
    clients = int(cfg["clients"])
    duration = float(cfg["duration_s"])
    warmup_s = float(cfg.get("warmup_s", 0.0))
    warm_n = int(cfg.get("warmup_requests", 0))
    per_client_cap = int(cfg["max_requests_per_client"])
    timeout = float(cfg.get("timeout_s", 30.0))
    method, path = cfg["method"], cfg["path"]
    body: bytes | None = None
    headers = {"Connection": "keep-alive", "Accept": "application/json"}
    if cfg.get("upload"):
        data = Path(cfg["upload"]).read_bytes()
        body, ctype = _multipart("file", Path(cfg["upload"]).name, data, "image/jpeg")
        headers["Content-Type"] = ctype
        headers["Content-Length"] = str(len(body))

    records: list[list[tuple[float, float, bool]]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    t_start = 0.0
    t_stop = 0.0

    def worker(i: int) -> None:
        conn: http.client.HTTPConnection | None = None
        out, errs = records[i], errors[i]
        try:
            barrier.wait(timeout=30)
        except threading.BrokenBarrierError:
            return
        for _ in range(per_client_cap):
            if time.perf_counter() >= t_stop:
                break
            t0 = time.perf_counter()
            ok = False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                if not ok:
                    errs.append(f"HTTP {resp.status}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as exc:  # every failure is counted, by type
                errs.append(type(exc).__name__)
                if conn is not None:
                    conn.close()
                conn = None
            t1 = time.perf_counter()
            out.append((t1, t1 - t0, ok))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    cpu0 = os.times()
    t_start = time.perf_counter()
    t_stop = t_start + warmup_s + duration
    barrier.wait(timeout=30)
    for t in threads:
        t.join(timeout=warmup_s + duration + timeout + 10)
    t_end = time.perf_counter()
    cpu1 = os.times()
    hung = sum(t.is_alive() for t in threads)

    t_measure = t_start + warmup_s
    lat: list[float] = []
    last_end = t_measure
    measured_ok = 0
    all_ok = 0
    all_n = 0
    for recs in records:
        for k, (end, latency, ok) in enumerate(recs):
            all_n += 1
            all_ok += ok
            if k < warm_n or end - latency < t_measure:
                continue
            if ok:
                lat.append(latency)
                measured_ok += 1
                last_end = max(last_end, end)
    window = max(last_end - t_measure, 1e-9)
    err_counts: dict[str, int] = {}
    for errs in errors:
        for e in errs:
            err_counts[e] = err_counts.get(e, 0) + 1
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    raw = {"raw_s": [round(x, 6) for x in lat]} if cfg.get("raw") else {}
    return {
        **raw,
        "clients": clients,
        "requests": all_n,
        "ok": all_ok,
        "failures": all_n - all_ok + hung,
        "errors": err_counts,
        "measured": measured_ok,
        "window_s": round(window, 3),
        "rps": round(measured_ok / window, 2) if measured_ok else 0.0,
        **summarize_ms(lat),
        "wall_s": round(t_end - t_start, 3),
        "client_cpu_s": round(cpu_s, 3),
        "client_cpu_pct_of_core": round(100 * cpu_s / max(t_end - t_start, 1e-9), 1),
        "client_cpu_ms_per_req": round(1e3 * cpu_s / all_n, 3) if all_n else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Child mode 2: the in-process ceiling of one worker process (synchronised start over stdin)
# ---------------------------------------------------------------------------------------------


def ceiling_worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """One worker process's worth of the in-process ceiling; a round per "go" line on stdin."""
    from ggctl.app.inference import Classifier
    from ggctl.app.service import TEST_IMAGE

    clf = Classifier(cfg["model"], ort_threads=int(cfg["ort"]), max_inflight=int(cfg["inflight"]))
    data = TEST_IMAGE.read_bytes()
    nthreads = int(cfg["threads"])
    cap = int(cfg["max_images_per_thread"])
    for _ in range(3):
        clf.classify_bytes(data)
    print("ready", flush=True)
    for _round in range(int(cfg.get("max_rounds", 20))):
        line = sys.stdin.readline().split()
        if not line or line[0] != "go":
            break
        duration = float(line[1])
        ends: list[list[float]] = [[] for _ in range(nthreads)]
        t_stop = time.perf_counter() + duration

        def worker(i: int, out: list[float], t_stop: float = t_stop) -> None:
            for _ in range(cap):
                if time.perf_counter() >= t_stop:
                    break
                clf.classify_bytes(data)
                out.append(time.perf_counter())

        cpu0 = os.times()
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=worker, args=(i, ends[i]), daemon=True) for i in range(nthreads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=duration + 30)
        cpu1 = os.times()
        n = sum(len(e) for e in ends)
        last = max((e[-1] for e in ends if e), default=t0 + 1e-9)
        print(
            json.dumps(
                {
                    "images": n,
                    "window_s": round(last - t0, 3),
                    "ips": round(n / max(last - t0, 1e-9), 2),
                    "cpu_s": round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 3),
                }
            ),
            flush=True,
        )
    return {"done": True}


# ---------------------------------------------------------------------------------------------
# The parent: orchestration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int
    ort: int
    inflight: int

    @property
    def label(self) -> str:
        return f"w{self.workers} t{self.threads} ort{self.ort} inflight{self.inflight}"


@dataclass
class Budget:
    iters: int  # in-process iterations per floor measurement (over all rounds)
    seq_requests: int  # sequential requests per route (over all rounds)
    load_s: float  # measured window of one 20-client round
    load_warmup_s: float
    ceiling_s: float  # one in-process ceiling round
    rounds: int  # interleaved rounds: the machine is shared, so compare like with like
    sweep_rounds: int
    clients: int
    sweep: bool
    quick: bool


def _script_cmd(mode: str, cfg: dict[str, Any]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), mode, json.dumps(cfg)]


def _pin(cpus: list[int] | None) -> list[str]:
    if not cpus or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cpus)]


def http_get_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


def run_child(
    mode: str, cfg: dict[str, Any], cpus: list[int] | None, timeout: float
) -> dict[str, Any]:
    proc = _spawn(
        _pin(cpus) + _script_cmd(mode, cfg),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise RuntimeError(f"{mode} child ran past {timeout:.0f} s") from None
    finally:
        _kill(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


class Ceiling:
    """In-process images/s at a layout: one process per worker, `threads` threads each, pinned
    like the server, started together; kept alive so that rounds can interleave with load."""

    def __init__(self, model: Path, layout: Layout, cpus: list[int] | None):
        self.cfg = {
            "model": str(model),
            "threads": layout.threads,
            "ort": layout.ort,
            "inflight": layout.inflight,
            "max_images_per_thread": 100_000,
        }
        self.cpus, self.workers = cpus, layout.workers
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Ceiling:
        self.procs = [
            _spawn(
                _pin(self.cpus) + _script_cmd("--_ceiling", self.cfg),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(self.workers)
        ]
        for p in self.procs:
            line = _readline_bounded(p, 60.0)
            if line.strip() != "ready":
                raise RuntimeError(f"ceiling child did not start (said {line!r})")
        return self

    def round(self, duration: float) -> dict[str, Any]:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(f"go {duration}\n")
            p.stdin.flush()
        results = []
        for p in self.procs:
            line = _readline_bounded(p, duration + 60)
            if not line.strip():
                raise RuntimeError("ceiling child stopped answering")
            results.append(json.loads(line))
        cpu_s = sum(r["cpu_s"] for r in results)
        return {
            "ips": round(sum(r["ips"] for r in results), 2),
            "images": sum(r["images"] for r in results),
            "cpu_s": round(cpu_s, 3),
            "cores": round(cpu_s / max(max(r["window_s"] for r in results), 1e-9), 2),
            "processes": len(results),
        }

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError, ValueError):
                assert p.stdin is not None
                p.stdin.close()
            _kill(p, grace_s=2.0)


def _readline_bounded(proc: subprocess.Popen, timeout: float) -> str:
    box: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


class Server:
    """`ggctl serve` in its own process group, optionally pinned with taskset."""

    def __init__(self, model: Path, layout: Layout, cpus: list[int] | None, workdir: Path):
        self.model, self.layout, self.cpus = model, layout, cpus
        self.port = free_port()
        self.log_path = workdir / f"serve-{self.port}.log"
        self.state_dir = workdir / "state"
        self.proc: subprocess.Popen | None = None
        self.cold_start_s = float("nan")

    def start(self, timeout: float = 60.0) -> None:
        lay = self.layout
        cmd = [
            *_pin(self.cpus),
            sys.executable,
            "-m",
            "ggctl",
            "--quiet",
            "--state-dir",
            str(self.state_dir),
            "serve",
            "--model",
            str(self.model),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(lay.workers),
            "--threads",
            str(lay.threads),
            "--ort-threads",
            str(lay.ort),
            "--max-inflight",
            str(lay.inflight),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
        env["GGCTL_CONFIG"] = ""  # the developer's config must not change what is measured
        log = self.log_path.open("wb")
        t0 = time.perf_counter()
        self.proc = _spawn(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ggctl serve exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            if http_get_status(self.port, "/readyz", timeout=1.0) == 200:
                self.cold_start_s = time.perf_counter() - t0
                return
            time.sleep(0.02)
        raise RuntimeError(f"ggctl serve not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def processes(self) -> list[Any]:
        import psutil

        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> dict[str, Any]:
        import psutil

        rss, pss, per = 0, 0, []
        for p in self.processes():
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            per.append(round(info.rss / MIB, 1))
        return {
            "rss_mib": round(rss / MIB, 1),
            "pss_mib": round(pss / MIB, 1),
            "rss_per_process_mib": per,
        }

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def drive(
    server: Server,
    route: str,
    clients: int,
    budget: Budget,
    client_cpus: list[int] | None,
    sequential: bool,
    upload: Path | None = None,
) -> dict[str, Any]:
    """Run the load client against `server`; adds the server's CPU cost per request."""
    if sequential:
        cfg = {
            "clients": 1,
            "duration_s": 60.0,
            "warmup_s": 0.0,
            "warmup_requests": 3,
            "max_requests_per_client": max(3, budget.seq_requests // budget.rounds) + 3,
            "raw": True,
        }
    else:
        cfg = {
            "clients": clients,
            "duration_s": budget.load_s,
            "warmup_s": budget.load_warmup_s,
            "warmup_requests": 1,
            "max_requests_per_client": 100_000,
        }
    method, path = ("POST", "/predict") if route == "predict" else ("GET", "/test")
    cfg.update(
        host=HOST,
        port=server.port,
        method=method,
        path=path,
        upload=str(upload) if upload else None,
        timeout_s=30.0,
    )
    cpu0 = server.cpu_seconds()
    res = run_child("--_load", cfg, client_cpus, timeout=float(cfg["duration_s"]) + 120)
    cpu1 = server.cpu_seconds()
    res["server_cpu_s"] = round(cpu1 - cpu0, 3)
    # Cores the server kept busy: below the ceiling's, it waited for work or for the CPU.
    res["server_cores"] = round((cpu1 - cpu0) / max(res["wall_s"], 1e-9), 2)
    res["server_cpu_ms_per_req"] = (
        round(1e3 * (cpu1 - cpu0) / res["requests"], 3) if res["requests"] else 0.0
    )
    return res


# --------------------------------------------------------------------------------------------
# In-process floor
# --------------------------------------------------------------------------------------------


def time_calls(fn: Any, n: int, warm: int = 3) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def measure_floor(model: Path, image: Path, budget: Budget) -> dict[str, Any]:
    """Every in-process measurement, interleaved round by round so that a busy spell of the
    machine hits them all alike."""
    import gc

    from ggctl.app.inference import Classifier
    from ggctl.app.preprocess import decode, preprocess, to_tensor

    data = image.read_bytes()
    # (2, concurrent): how the service builds a 2-thread session when max_inflight > 1, with
    # ORT's intra-op spinning off.
    clfs = {
        "1": Classifier(model, ort_threads=1, max_inflight=1),
        "2": Classifier(model, ort_threads=2, max_inflight=1),
        "2_nospin": Classifier(model, ort_threads=2, max_inflight=2),
    }
    meta = clfs["1"].meta
    size = (meta.input_width, meta.input_height)
    x = preprocess(data, meta)
    img = decode(data, size)
    calls: dict[str, Any] = {}
    for key, clf in clfs.items():
        sess, feed = clf.session, {clf.input_name: x}
        calls[f"ort/{key}"] = lambda s=sess, f=feed: s.run(None, f)
        if key != "2_nospin":
            calls[f"pipeline/{key}"] = lambda c=clf: c.classify_bytes(data)
    calls["preprocess"] = lambda: preprocess(data, meta)
    calls["decode"] = lambda: decode(data, size)
    calls["to_tensor"] = lambda: to_tensor(img, meta)
    per_round = max(3, budget.iters // budget.rounds)
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(budget.rounds):
        for key, fn in calls.items():
            samples[key] += time_calls(fn, per_round)
    res: dict[str, Any] = {"ort": {}, "pipeline": {}, "decoded_size": list(img.size)}
    for key, xs in samples.items():
        group, _, sub = key.partition("/")
        if sub:
            res[group][sub] = summarize_ms(xs)
        else:
            res[group] = summarize_ms(xs)
    del clfs, calls
    gc.collect()
    return res


def _best_round(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The least disturbed round (highest throughput), with every round's figure beside it."""
    best = dict(max(rounds, key=lambda r: r[key]))
    best[f"{key}_rounds"] = [r[key] for r in rounds]
    best["failures"] = sum(r.get("failures", 0) for r in rounds)
    if "errors" in best:
        errs: dict[str, int] = {}
        for r in rounds:
            for e, n in r["errors"].items():
                errs[e] = errs.get(e, 0) + n
        best["errors"] = errs
    return best


def _pool_seq(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    raw = [x for r in rounds for x in r.pop("raw_s", [])]
    out = {
        **summarize_ms(raw),
        "failures": sum(r["failures"] for r in rounds),
        "errors": {},
        "rounds": len(rounds),
    }
    for r in rounds:
        for e, n in r["errors"].items():
            out["errors"][e] = out["errors"].get(e, 0) + n
    return out


def bench_service(
    model: Path, image: Path, layout: Layout, budget: Budget, workdir: Path, log: Any
) -> dict[str, Any]:
    """Sections 4-6: the service on the whole machine (no pinning), both routes, each round
    interleaved with its in-process counterpart (pipeline for 1 client, ceiling for 20)."""
    from ggctl.app.inference import Classifier

    out: dict[str, Any] = {"layout": asdict(layout), "label": layout.label}
    clf = Classifier(model, ort_threads=layout.ort, max_inflight=1)
    data = image.read_bytes()
    per_round = max(3, budget.iters // budget.rounds)
    with Server(model, layout, None, workdir) as srv, Ceiling(model, layout, None) as ceiling:
        out["cold_start_s"] = round(srv.cold_start_s, 3)
        time.sleep(0.3)
        out["memory_after_start"] = srv.memory()
        log(f"  1 sequential client vs in-process, {budget.rounds} interleaved round(s)")
        pipe: list[float] = []
        seq: dict[str, list[dict[str, Any]]] = {"test": [], "predict": []}
        for _ in range(budget.rounds):
            pipe += time_calls(lambda: clf.classify_bytes(data), per_round)
            for route in seq:
                up = image if route == "predict" else None
                seq[route].append(drive(srv, route, 1, budget, None, True, up))
        out["inprocess_pipeline"] = summarize_ms(pipe)
        for route, rounds in seq.items():
            out[f"{route}_seq"] = _pool_seq(rounds)
        log(f"  {budget.clients} clients vs in-process ceiling, {budget.rounds} round(s)")
        ceil: list[dict[str, Any]] = []
        load: dict[str, list[dict[str, Any]]] = {"test": [], "predict": []}
        for _ in range(budget.rounds):
            ceil.append(ceiling.round(budget.ceiling_s))
            for route in load:
                up = image if route == "predict" else None
                load[route].append(drive(srv, route, budget.clients, budget, None, False, up))
        out["ceiling"] = _best_round(ceil, "ips")
        for route, rounds in load.items():
            out[f"{route}_load"] = _best_round(rounds, "rps")
        out["memory_after_load"] = srv.memory()
    return out


def bench_layout(
    model: Path,
    layout: Layout,
    pod_cpus: list[int],
    client_cpus: list[int],
    budget: Budget,
    workdir: Path,
) -> dict[str, Any]:
    row: dict[str, Any] = {"cpus": len(pod_cpus), "layout": asdict(layout), "label": layout.label}
    try:
        with (
            Server(model, layout, pod_cpus, workdir) as srv,
            Ceiling(model, layout, pod_cpus) as ceiling,
        ):
            row["cold_start_s"] = round(srv.cold_start_s, 3)
            time.sleep(0.2)
            row["rss_after_start_mib"] = srv.memory()["rss_mib"]
            row["seq"] = _pool_seq(
                [drive(srv, "test", 1, budget, client_cpus, True) for _ in range(budget.rounds)]
            )
            ceil, load = [], []
            for _ in range(budget.rounds):
                ceil.append(ceiling.round(budget.ceiling_s))
                load.append(drive(srv, "test", budget.clients, budget, client_cpus, False))
            row["ceiling"] = _best_round(ceil, "ips")
            row["load"] = _best_round(load, "rps")
            mem = srv.memory()
            row["rss_after_load_mib"] = mem["rss_mib"]
            row["pss_after_load_mib"] = mem["pss_mib"]
        row["ceiling_fraction"] = round(row["load"]["rps"] / row["ceiling"]["ips"], 3)
        # The in-process ceiling of a pod of n CPUs keeps about n cores busy on an idle machine;
        # well below that, other work on the machine took the pinned cores.
        row["contended"] = row["ceiling"]["cores"] < BUSY_FRACTION * len(pod_cpus)
    except RuntimeError as exc:
        row["error"] = str(exc)[:2000]
    return row


def sweep_layouts(ncpus: int, quick: bool) -> list[Layout]:
    if ncpus == 1:
        full = [
            Layout(1, 4, 1, 1),  # the default on a 1-CPU pod (max_inflight 0 -> 1 CPU)
            Layout(1, 2, 1, 1),
            Layout(1, 8, 1, 1),
            Layout(1, 4, 1, 4),  # no in-flight bound: every request's inference shares the core
            Layout(2, 2, 1, 1),  # two processes on one core: memory for nothing?
        ]
    else:
        full = [
            Layout(1, 4, 1, 2),  # one inference per CPU, one thread each
            Layout(1, 4, 2, 1),  # the default on a 2-CPU pod: one inference, 2 threads
            Layout(2, 2, 1, 1),
            Layout(1, 8, 1, 2),
            Layout(1, 2, 1, 2),
            Layout(1, 4, 2, 2),  # oversubscribed: 2 inferences x 2 threads on 2 cores
        ]
    return full[:1] if quick else full


def pick_best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Highest throughput with 0 failures; within 3% of it, lowest 1-client p50, then RSS."""
    good = [
        r
        for r in rows
        if "error" not in r and r["load"]["failures"] == 0 and r["seq"]["failures"] == 0
    ]
    if any(not r["contended"] for r in good):
        good = [r for r in good if not r["contended"]]
    if not good:
        return None
    top = max(r["load"]["rps"] for r in good)
    near = [r for r in good if r["load"]["rps"] >= 0.97 * top]
    return min(near, key=lambda r: (r["seq"]["p50_ms"], r["rss_after_start_mib"]))


def evaluate_targets(floor: dict[str, Any], svc: dict[str, Any]) -> list[dict[str, Any]]:
    pipe = svc["inprocess_pipeline"]["p50_ms"]
    ceiling = svc["ceiling"]["ips"]
    rows = []

    def add(name: str, value: float, target: str, ok: bool, unit: str) -> None:
        rows.append(
            {"target": name, "value": value, "unit": unit, "goal": target, "pass": bool(ok)}
        )

    pred = svc["predict_seq"]["p50_ms"]
    add(
        "POST /predict p50 (1 client) - in-process floor",
        round(pred - pipe, 2),
        f"<= {TARGET_PREDICT_OVER_FLOOR_MS:g} ms (floor {pipe:.2f} ms)",
        pred - pipe <= TARGET_PREDICT_OVER_FLOOR_MS,
        "ms",
    )
    prep = floor["preprocess"]["p50_ms"]
    add(
        "preprocessing p50, 1280x1280 JPEG",
        prep,
        f"<= {TARGET_PREPROCESS_MS:g} ms",
        prep <= TARGET_PREPROCESS_MS,
        "ms",
    )
    test_p50 = svc["test_seq"]["p50_ms"]
    add(
        "GET /test p50 (1 client)",
        test_p50,
        f"<= {TARGET_TEST_P50_MS:g} ms (10x the seed)",
        test_p50 <= TARGET_TEST_P50_MS,
        "ms",
    )
    rss = svc["memory_after_start"]["rss_mib"]
    add(
        "RSS after start (master + workers)",
        rss,
        f"< {TARGET_RSS_MIB:g} MiB",
        rss < TARGET_RSS_MIB,
        "MiB",
    )
    cold = svc["cold_start_s"]
    add(
        "cold start (spawn -> first 200 /readyz)",
        cold,
        f"< {TARGET_COLD_START_S:g} s",
        cold < TARGET_COLD_START_S,
        "s",
    )
    fails = svc["test_load"]["failures"] + svc["predict_load"]["failures"]
    add(
        f"failures at {svc['test_load']['clients']} clients (both routes)",
        fails,
        "0",
        fails == 0,
        "",
    )
    for route in ("test", "predict"):
        rps = svc[f"{route}_load"]["rps"]
        frac = rps / ceiling if ceiling else 0.0
        add(
            f"{'GET /test' if route == 'test' else 'POST /predict'} throughput / ceiling",
            round(frac, 3),
            f">= {TARGET_CEILING_FRACTION:g} ({rps:.1f} vs {ceiling:.1f} img/s)",
            frac >= TARGET_CEILING_FRACTION,
            "",
        )
    return rows


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _tables(result: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    f, s = result["floor"], result["service"]
    tables = []
    rows = [
        [
            "ORT run, 1 intra-op thread",
            f"{f['ort']['1']['p50_ms']:.2f}",
            f"{f['ort']['1']['p95_ms']:.2f}",
            "raw floor",
        ],
        [
            "ORT run, 2 intra-op threads",
            f"{f['ort']['2']['p50_ms']:.2f}",
            f"{f['ort']['2']['p95_ms']:.2f}",
            "spinning on",
        ],
        [
            "ORT run, 2 threads, spinning off",
            f"{f['ort']['2_nospin']['p50_ms']:.2f}",
            f"{f['ort']['2_nospin']['p95_ms']:.2f}",
            "as the service builds it when inflight > 1",
        ],
        [
            "decode+resize+ORT, 1 thread",
            f"{f['pipeline']['1']['p50_ms']:.2f}",
            f"{f['pipeline']['1']['p95_ms']:.2f}",
            "floor of POST /predict",
        ],
        [
            "decode+resize+ORT, 2 threads",
            f"{f['pipeline']['2']['p50_ms']:.2f}",
            f"{f['pipeline']['2']['p95_ms']:.2f}",
            "",
        ],
        [
            "preprocess (decode+resize+float32)",
            f"{f['preprocess']['p50_ms']:.2f}",
            f"{f['preprocess']['p95_ms']:.2f}",
            "1280x1280 JPEG, 440 KB",
        ],
        [
            "  of which JPEG draft decode",
            f"{f['decode']['p50_ms']:.2f}",
            f"{f['decode']['p95_ms']:.2f}",
            f"decoded at {f['decoded_size'][0]}x{f['decoded_size'][1]}",
        ],
        [
            "  of which resize + to float32",
            f"{f['to_tensor']['p50_ms']:.2f}",
            f"{f['to_tensor']['p95_ms']:.2f}",
            "bicubic to 224x224",
        ],
    ]
    tables.append(
        (
            "In-process floor (batch 1, this process, unpinned)",
            ["measurement", "p50 ms", "p95 ms", "note"],
            rows,
        )
    )

    rows = []
    for route, name in (("test", "GET /test"), ("predict", "POST /predict")):
        q, ld = s[f"{route}_seq"], s[f"{route}_load"]
        rows.append(
            [
                name,
                f"{q['p50_ms']:.2f}",
                f"{q['p95_ms']:.2f}",
                f"{ld['rps']:.1f}",
                f"{ld['p50_ms']:.1f}",
                f"{ld['p95_ms']:.1f}",
                str(ld["failures"]),
                f"{ld['server_cpu_ms_per_req']:.1f}",
                f"{ld['client_cpu_ms_per_req']:.2f} ({ld['client_cpu_pct_of_core']:.0f}%)",
            ]
        )
    ip = s["inprocess_pipeline"]
    rows.append(
        [
            "in-process decode+resize+ORT (interleaved)",
            f"{ip['p50_ms']:.2f}",
            f"{ip['p95_ms']:.2f}",
            f"{s['ceiling']['ips']:.1f} (ceiling)",
            "",
            "",
            "",
            "",
            "",
        ]
    )
    tables.append(
        (
            f"Service ({s['label']}, unpinned, {result['meta']['cpus']} CPUs shared with the "
            "client)"
            f"; cold start {s['cold_start_s']:.2f} s; RSS {s['memory_after_start']['rss_mib']:.0f}"
            f" MiB after start (PSS {s['memory_after_start']['pss_mib']:.0f}), "
            f"{s['memory_after_load']['rss_mib']:.0f} MiB after load; 20-client figures are the "
            f"best of {result['meta']['budget']['rounds']} round(s), interleaved with the ceiling",
            [
                "route",
                "1 client p50 ms",
                "1 client p95 ms",
                f"{result['meta']['clients']} clients req/s",
                "p50 ms",
                "p95 ms",
                "failures",
                "server CPU ms/req",
                "client CPU ms/req (% core)",
            ],
            rows,
        )
    )

    rows = [
        [
            t["target"],
            f"{t['value']}{(' ' + t['unit']) if t['unit'] else ''}",
            t["goal"],
            "PASS" if t["pass"] else "MISS",
        ]
        for t in result["targets"]
    ]
    tables.append(("Targets (issue 3, section 5)", ["target", "measured", "goal", "result"], rows))

    if result.get("sweep"):
        rows = []
        for r in result["sweep"]:
            lay = r["layout"]
            base = [
                str(r["cpus"]),
                str(lay["workers"]),
                str(lay["threads"]),
                str(lay["ort"]),
                str(lay["inflight"]),
            ]
            if "error" in r:
                rows.append([*base, "error", "", "", "", "", "", "", "", r["error"][:60]])
                continue
            best = result["best"].get(str(r["cpus"]), {}).get("label") == r["label"]
            rows.append(
                [
                    *base,
                    f"{r['load']['rps']:.1f}",
                    f"{r['ceiling']['ips']:.1f}",
                    f"{r['ceiling_fraction']:.2f}",
                    f"{r['seq']['p50_ms']:.1f}",
                    f"{r['load']['p95_ms']:.0f}",
                    str(r["load"]["failures"]),
                    f"{r['load']['server_cores']:.2f}/{r['ceiling']['cores']:.2f}",
                    f"{r['rss_after_start_mib']:.0f}/{r['rss_after_load_mib']:.0f}",
                    " ".join(
                        x for x in ("best" if best else "", "busy" if r["contended"] else "") if x
                    ),
                ]
            )
        tables.append(
            (
                "Layout sweep, GET /test (1-CPU pod: server on CPU 0, client on CPU 1; "
                "2-CPU pod: server on CPUs 0-1, client shares them); throughput: best of "
                f"{result['meta']['budget']['sweep_rounds']} round(s) interleaved with the "
                "in-process ceiling at the same layout and pinning",
                [
                    "CPUs",
                    "workers",
                    "threads",
                    "ORT",
                    "inflight",
                    f"{result['meta']['clients']} cl req/s",
                    "ceiling img/s",
                    "ratio",
                    "1 cl p50 ms",
                    f"{result['meta']['clients']} cl p95 ms",
                    "fail",
                    "cores srv/ceil",
                    "RSS MiB start/load",
                    "",
                ],
                rows,
            )
        )
    return tables


def print_rich(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output gets 160 columns instead of rich's 80, so that the sweep table fits.
    console = Console(width=shutil.get_terminal_size((160, 40)).columns)
    for title, header, rows in _tables(result):
        table = Table(title=title, title_justify="left")
        for h in header:
            table.add_column(
                h,
                justify="left"
                if h in ("measurement", "route", "target", "goal", "note", "")
                else "right",
            )
        for row in rows:
            styled = [
                ("[green]PASS[/]" if c == "PASS" else "[red]MISS[/]" if c == "MISS" else c)
                for c in row
            ]
            table.add_row(*styled)
        console.print(table)
    for cpus, best in result.get("best", {}).items():
        console.print(f"[bold]{cpus}-CPU pod:[/] {best['why']}")
    m = result["meta"]
    console.print(f"client: {m['client_note']}")
    console.print(
        f"machine busy without the benchmark: {m['background_before']['busy_pct']:.0f}%"
        f" before, {m['background_after']['busy_pct']:.0f}% after; took "
        f"{m['elapsed_s']:.0f} s"
    )


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    lines = [
        "# ggctl service benchmark",
        "",
        f"`{m['command']}` — {m['date']}, {m['cpu_model']}, {m['cpus']} CPUs, "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}, model `{m['model_name']}` "
        f"(untrained MobileNetV2-shaped demo unless stated), mode: "
        f"{'quick' if m['quick'] else 'full'}. Machine busy without the benchmark: "
        f"{m['background_before']['busy_pct']:.0f}% before, "
        f"{m['background_after']['busy_pct']:.0f}% after.",
        "",
    ]
    for title, header, rows in _tables(result):
        lines += [
            f"**{title}**",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
        ]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    for cpus, best in result.get("best", {}).items():
        lines.append(f"- **{cpus}-CPU pod:** {best['why']}")
    lines += ["", f"Client: {m['client_note']}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def _meta(args: argparse.Namespace, model: Path, budget: Budget) -> dict[str, Any]:
    import onnxruntime

    cpu_model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "command": "python bench/service_bench.py" + (" --quick" if args.quick else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu_model": cpu_model,
        "cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "model": str(model),
        "model_name": model.name,
        "quick": budget.quick,
        "clients": budget.clients,
        "budget": asdict(budget),
        "taskset": bool(shutil.which("taskset")),
        "client_note": (
            "a separate process, stdlib http.client, one keep-alive connection per client "
            "thread, closed loop with no think time; its CPU use is in the service table "
            "(ms of client CPU per request). It shares the 2 cores with the server in the "
            "unpinned run and in the 2-CPU sweep; in the 1-CPU sweep it runs on the other core. "
            "'cores srv/ceil': CPU cores the server kept busy under load / the in-process "
            "ceiling kept busy; 'busy': the ceiling got under "
            f"{BUSY_FRACTION:.0%} of its pod's CPUs, i.e. other work on the machine took them."
        ),
    }


def background_cpu(seconds: float) -> dict[str, Any]:
    """How busy the machine is without us: other work skews every figure, so it is recorded."""
    import psutil

    psutil.cpu_percent(interval=None)
    time.sleep(seconds)
    return {
        "busy_pct": psutil.cpu_percent(interval=None),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--_load", "--_ceiling"):
        cfg = json.loads(argv[1])
        out = load_client(cfg) if argv[0] == "--_load" else ceiling_worker(cfg)
        print(json.dumps(out), flush=True)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes (< 60 s)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--markdown", type=Path, help="write the tables to this Markdown file")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the built-in demo model)")
    parser.add_argument("--iters", type=int, help="in-process iterations and sequential requests")
    parser.add_argument("--duration", type=float, help="seconds per load / ceiling round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (quick 1, full 3)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the layout sweep")
    args = parser.parse_args(argv)

    budget = (
        Budget(
            iters=30,
            seq_requests=20,
            load_s=2.0,
            load_warmup_s=0.5,
            ceiling_s=1.5,
            rounds=1,
            sweep_rounds=1,
            clients=args.clients,
            sweep=not args.no_sweep,
            quick=True,
        )
        if args.quick
        else Budget(
            iters=150,
            seq_requests=60,
            load_s=2.0,
            load_warmup_s=0.5,
            ceiling_s=1.2,
            rounds=3,
            sweep_rounds=2,
            clients=args.clients,
            sweep=not args.no_sweep,
            quick=False,
        )
    )
    if args.iters:
        budget.iters = budget.seq_requests = max(3, args.iters)
    if args.rounds:
        budget.rounds = budget.sweep_rounds = max(1, args.rounds)
    if args.duration:
        budget.load_s = budget.ceiling_s = max(0.5, args.duration)
        budget.load_warmup_s = min(budget.load_warmup_s, budget.load_s / 2)

    signal.signal(signal.SIGTERM, _on_sigterm)
    atexit.register(_kill_all)
    t_begin = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_begin:6.1f}s] {msg}", file=sys.stderr, flush=True)

    from ggctl.app.service import TEST_IMAGE
    from ggctl.config import ServeSettings

    workdir = Path(tempfile.mkdtemp(prefix="ggctl-bench-"))
    try:
        if args.model:
            model = args.model.resolve()
        else:
            from ggctl.model.mobilenet import ensure_demo_model

            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ggctl-bench"
            try:
                model = ensure_demo_model(cache)
            except OSError:
                model = ensure_demo_model(workdir / "models")
        cpus = sorted(os.sched_getaffinity(0))
        result: dict[str, Any] = {"meta": _meta(args, model, budget)}
        result["meta"]["background_before"] = bg = background_cpu(0.5 if budget.quick else 2.0)
        if bg["busy_pct"] > 10:
            log(
                f"warning: the machine is {bg['busy_pct']:.0f}% busy before the benchmark "
                "starts; figures will be slower and noisier than on an idle machine"
            )

        log(f"in-process floor ({budget.iters} iterations each)")
        result["floor"] = measure_floor(model, TEST_IMAGE, budget)

        d = ServeSettings()
        ort, inflight = thread_layout(d.ort_threads, d.max_inflight, len(cpus))
        default = Layout(d.workers, d.threads, ort, inflight)
        log(f"service, default layout {default.label}")
        result["service"] = bench_service(model, TEST_IMAGE, default, budget, workdir, log)
        result["targets"] = evaluate_targets(result["floor"], result["service"])

        result["sweep"] = []
        result["best"] = {}
        if budget.sweep:
            pods = [(1, cpus[:1], cpus[1:2] or cpus[:1])]
            if len(cpus) >= 2:
                pods.append((2, cpus[:2], cpus[:2]))
            for n, pod, client in pods:
                rows = []
                for layout in sweep_layouts(n, budget.quick):
                    log(f"sweep: {n}-CPU pod, {layout.label}")
                    rows.append(
                        bench_layout(
                            model,
                            layout,
                            pod,
                            client,
                            replace(budget, rounds=budget.sweep_rounds),
                            workdir,
                        )
                    )
                result["sweep"] += rows
                best = pick_best(rows)
                if best:
                    others = sorted(
                        (r for r in rows if r is not best and "error" not in r),
                        key=lambda r: -r["load"]["rps"],
                    )
                    runner = (
                        (
                            f"; next {others[0]['label']} {others[0]['load']['rps']:.1f} req/s,"
                            f" p50 {others[0]['seq']['p50_ms']:.1f} ms"
                        )
                        if others
                        else ""
                    )
                    result["best"][str(n)] = {
                        "label": best["label"],
                        "layout": best["layout"],
                        "why": (
                            f"{best['label']}: {best['load']['rps']:.1f} req/s at "
                            f"{budget.clients} clients ({best['ceiling_fraction']:.0%} of its"
                            f" in-process ceiling {best['ceiling']['ips']:.1f} img/s), "
                            f"1-client p50 {best['seq']['p50_ms']:.1f} ms, RSS "
                            f"{best['rss_after_start_mib']:.0f} MiB{runner}"
                            + (
                                "; CAUTION: the machine was busy (other work took the pinned "
                                "cores) during this row, so the ranking is unreliable"
                                if best["contended"]
                                else ""
                            )
                        ),
                    }
        result["meta"]["background_after"] = background_cpu(0.5 if budget.quick else 2.0)
        result["meta"]["elapsed_s"] = round(time.perf_counter() - t_begin, 1)
        log(f"done in {result['meta']['elapsed_s']:.0f} s")
    finally:
        _kill_all()
        shutil.rmtree(workdir, ignore_errors=True)

    print_rich(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        _kill_all()
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
