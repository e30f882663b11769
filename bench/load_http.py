"""The service over HTTP: `ggctl serve` as a subprocess, and a stdlib load client (child
mode) driving it with sequential and concurrent closed-loop clients."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench_procs import (
    HOST,
    MIB,
    Budget,
    Layout,
    http_get_status,
    kill,
    pin,
    run_child,
    spawn,
    summarize_ms,
)
from floor import Ceiling, time_calls

from ggctl.ports import free_port

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
            *pin(self.cpus),
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
        self.proc = spawn(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
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
            kill(self.proc)

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


def best_round(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
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


def pool_seq(rounds: list[dict[str, Any]]) -> dict[str, Any]:
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
            out[f"{route}_seq"] = pool_seq(rounds)
        log(f"  {budget.clients} clients vs in-process ceiling, {budget.rounds} round(s)")
        ceil: list[dict[str, Any]] = []
        load: dict[str, list[dict[str, Any]]] = {"test": [], "predict": []}
        for _ in range(budget.rounds):
            ceil.append(ceiling.round(budget.ceiling_s))
            for route in load:
                up = image if route == "predict" else None
                load[route].append(drive(srv, route, budget.clients, budget, None, False, up))
        out["ceiling"] = best_round(ceil, "ips")
        for route, rounds in load.items():
            out[f"{route}_load"] = best_round(rounds, "rps")
        out["memory_after_load"] = srv.memory()
    return out
