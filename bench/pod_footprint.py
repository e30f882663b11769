#!/usr/bin/env python3
"""One pod's footprint: memory as metrics-server reports it, and time from start to ready,
for the service laid out as before (main's way) and as now, side by side in one run.

    .venv/bin/python bench/pod_footprint.py [--strategy optimized] [--rounds 3]
        [--variants main,ours,glibc-arenas,no-arena] [--model M.onnx] [--json out.json]
                                                                          # ~3 minutes

Each variant is the container's entrypoint (`python -m app.server`, run from a copy of app/
laid out as app/Dockerfile lays it out, in a virtualenv of app/requirements.txt only, as
the image has: built once under ~/.cache/ggctl-bench/, `--python-env current` uses this
interpreter and ggctl's own packages instead) with the strategy's GGCTL_SERVE__* settings,
pinned with `taskset` to the CPUs of the strategy's CPU limit, started inside a transient
memory cgroup of its own (root; ggctl.predict.footprint) after the page cache of its
files was dropped, so that the libraries it maps are charged to it as in a fresh pod.
Per start:
- cold start: spawn to the first 200 on /readyz (polled every 10 ms);
- working set (cgroup usage − inactive file pages, metrics-server's figure) after start
  and after load, the cgroup's peak, and each process's RSS / PSS / private memory;
- latency: 100 sequential `GET /test`, then 20 closed-loop clients for `--load-s` seconds
  (requests/s, p50, p95) from this process, pinned to the CPUs the pod does not use.
Variants: `main` = gunicorn master + one worker, ORT memory arena on, glibc's default malloc
arenas (main's layout: GGCTL_SERVE__MASTER=1, MALLOC_ARENA_MAX unset); `ours` = the image's
defaults now (no master for one worker, MALLOC_ARENA_MAX=2); `glibc-arenas` = ours with
glibc's default arenas; `no-arena` = ours with GGCTL_SERVE__ORT_ARENA=0. Rounds interleave
the variants, so that a change of the machine's load hits all of them; medians are
reported. Timing figures mean something only on a quiet machine: the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_procs import HOST, http_get_status, kill, on_sigterm, percentile, spawn

from ggctl.app.server import PROCESS_ENV
from ggctl.ports import free_port
from ggctl.predict.calibrate import closed_loop, working_set_mib
from ggctl.predict.footprint import MIB, MemoryCgroup, evict_page_cache

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
#: On top of the image's environment (PROCESS_ENV and the strategy's); None unsets.
VARIANTS: dict[str, dict[str, str | None]] = {
    "main": {"GGCTL_SERVE__MASTER": "1", "GGCTL_SERVE__ORT_ARENA": "1", "MALLOC_ARENA_MAX": None},
    "ours": {},
    "glibc-arenas": {"MALLOC_ARENA_MAX": None},  # ours with glibc's default arenas
    "no-arena": {"GGCTL_SERVE__ORT_ARENA": "0"},  # ours without ONNX Runtime's arena
}


def service_venv(cache: Path) -> Path:
    """A virtualenv with app/requirements.txt only (the image's), built once per file."""
    req = APP / "requirements.txt"
    key = hashlib.sha256(req.read_bytes() + sys.version.encode()).hexdigest()[:12]
    venv = cache / f"pod-venv-{key}"
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--only-binary=:all:", "-r", str(req)],
        check=True,
        timeout=900,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (venv / ".complete").write_text("")
    return venv


def image_layout(workdir: Path) -> Path:
    """app/ copied to workdir/srv/app as the Dockerfile copies it; returns srv."""
    srv = workdir / "srv"
    shutil.copytree(
        APP, srv / "app", ignore=shutil.ignore_patterns("__pycache__", "*.onnx", "*.txt")
    )
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(srv / "app")], check=True)
    return srv


def strategy_env(name: str) -> tuple[dict[str, str], int]:
    """The strategy's container env (less host and port) and the CPUs its limit gives."""
    from ggctl.manifests.strategy import get_strategy
    from ggctl.predict.calibrate import cores_for_limit

    st = get_strategy(name)
    env = {e["name"]: e["value"] for e in st.container_env()}
    env.pop("GGCTL_SERVE__HOST", None)
    env.pop("GGCTL_SERVE__PORT", None)
    limit = st.resources.cpu_limit
    cores = limit[:-1] if limit.endswith("m") else limit
    cpu = float(cores) / 1000 if limit.endswith("m") else float(cores)
    return env, cores_for_limit(cpu)


def process_memory(pids: list[int]) -> list[dict[str, float]]:
    import psutil

    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            out.append(
                {
                    "pid": pid,
                    "rss_mib": round(info.rss / MIB, 1),
                    "pss_mib": round(info.pss / MIB, 1),
                    "uss_mib": round(info.uss / MIB, 1),
                }
            )
    return out


def measure(
    variant: str,
    run: dict[str, Any],
    pod_cpus: list[int],
    model: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGCTL_")}
    if run["isolated"]:
        env.pop("PYTHONPATH", None)  # the image's packages only
    env.update(PROCESS_ENV)  # as the image's ENV sets it
    env.update(run["strategy_env"])
    env.update(
        {
            "GGCTL_SERVE__HOST": HOST,
            "GGCTL_SERVE__PORT": str(port),
            "GGCTL_SERVE__MODEL": str(model),
            "ORT_DISABLE_TELEMETRY": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key, value in VARIANTS[variant].items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    cmd = ["taskset", "-c", ",".join(map(str, pod_cpus)), *run["cmd"]]
    evict_page_cache(run["files"] + [model])
    cg = MemoryCgroup.create("ggctl-pod-footprint")
    if cg is not None:
        cmd = cg.wrap(cmd)
    log = run["workdir"] / f"{variant}.log"
    row: dict[str, Any] = {"variant": variant, "memory_method": "cgroup" if cg else "pss"}
    with log.open("ab") as fh:
        t0 = time.perf_counter()
        proc = spawn(cmd, cwd=run["cwd"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        while http_get_status(port, "/readyz", timeout=1.0) != 200:
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"{variant}: not ready; see {log}")
            time.sleep(0.01)
        row["cold_start_s"] = round(time.perf_counter() - t0, 3)
        time.sleep(1.0)  # the worker settles (gunicorn's master forks, logs) before reading

        def memory(tag: str) -> None:
            if cg is not None:
                row[f"ws_{tag}_mib"] = round(cg.working_set_mib(), 1)
                row[f"cgroup_{tag}"] = cg.breakdown_mib()
                row[f"processes_{tag}"] = process_memory(cg.pids())
            else:
                row[f"ws_{tag}_mib"] = round(working_set_mib(proc.pid)[0], 1)

        memory("start")
        closed_loop(HOST, port, "/test", 1, requests=5, duration_s=30)
        seq, _, f1 = closed_loop(HOST, port, "/test", 1, requests=args.requests, duration_s=60)
        lat, wall, f2 = closed_loop(
            HOST, port, "/test", args.clients, requests=10**9, duration_s=args.load_s
        )
        memory("load")
        if cg is not None:
            row["peak_mib"] = round(cg.peak_mib() or 0, 1)
            # Library pages the process maps: charged, but inactive unless the kernel saw
            # them used again, so outside the working set; a bound if a node counts them.
            row["mapped_mib"] = row["cgroup_load"]["file_mapped"]
        row["failures"] = f1 + f2
        row["seq_p50_ms"] = round(1e3 * percentile(seq, 50), 2)
        row["seq_mean_ms"] = round(1e3 * statistics.fmean(seq), 2)
        row["load_rps"] = round(len(lat) / wall, 1)
        row["load_p50_ms"] = round(1e3 * percentile(lat, 50), 1)
        row["load_p95_ms"] = round(1e3 * percentile(lat, 95), 1)
        t1 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)  # what the kubelet sends: a graceful stop
        proc.wait(timeout=40)
        row["stop_s"] = round(time.perf_counter() - t1, 2)
        row["exit_code"] = proc.returncode
    finally:
        kill(proc)
        if cg is not None:
            cg.remove()
    return row


def median_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
    out: dict[str, Any] = {"variant": rows[0]["variant"], "rounds": len(rows)}
    out.update({k: round(statistics.median(r[k] for r in rows), 3) for k in keys})
    out["memory_method"] = rows[0]["memory_method"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="optimized")
    ap.add_argument("--variants", default="main,ours,glibc-arenas,no-arena")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--load-s", type=float, default=5.0)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--python-env", choices=("image", "current"), default="image")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v}; known: {', '.join(VARIANTS)}")

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ggctl-bench"
    cache.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from ggctl.model.mobilenet import ensure_demo_model

        args.model = ensure_demo_model(cache)
    senv, cores = strategy_env(args.strategy)
    cpus = sorted(os.sched_getaffinity(0))
    pod_cpus = cpus[:cores]
    client_cpus = cpus[cores:] or cpus
    with tempfile.TemporaryDirectory(prefix="ggctl-pod-footprint-") as tmp:
        workdir = Path(tmp)
        if args.python_env == "image":
            console.print("virtualenv of app/requirements.txt (built once) …")
            venv = service_venv(cache)
            srv = image_layout(workdir)
            run = {
                "cmd": [str(venv / "bin" / "python"), "-m", "app.server"],
                "cwd": srv,
                "files": [venv, srv],
                "isolated": True,
            }
        else:
            import ggctl

            run = {
                "cmd": [sys.executable, "-m", "ggctl.app.server"],
                "cwd": workdir,
                "files": [Path(ggctl.__file__).parent / "app"],
                "isolated": False,
            }
        run.update(workdir=workdir, strategy_env=senv)
        # The load client runs here: on the CPUs the pod does not have, where there are any.
        os.sched_setaffinity(0, client_cpus)
        rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        load_before = os.getloadavg()
        for r in range(args.rounds):
            for v in variants:
                console.print(f"round {r + 1}/{args.rounds}: {v} …")
                rows[v].append(measure(v, run, pod_cpus, args.model, args))
        load_after = os.getloadavg()
    summary = [median_rows(rows[v]) for v in variants]

    title = (
        f"{args.strategy} pod ({len(pod_cpus)} CPU, {senv}) · medians of {args.rounds} · "
        f"load {load_before[0]:.2f} → {load_after[0]:.2f}"
    )
    table = Table(title=title)
    cols = (
        ("variant", "variant", ""),
        ("cold_start_s", "start→ready", "s"),
        ("ws_start_mib", "working set, started", "MiB"),
        ("ws_load_mib", "working set, after load", "MiB"),
        ("mapped_mib", "mapped files", "MiB"),
        ("peak_mib", "cgroup peak", "MiB"),
        ("seq_p50_ms", "1 client p50", "ms"),
        ("load_rps", f"{args.clients} clients", "req/s"),
        ("load_p95_ms", "p95", "ms"),
        ("stop_s", "SIGTERM→exit", "s"),
    )
    for _, name, unit in cols:
        table.add_column(f"{name} ({unit})" if unit else name, justify="right")
    for row in summary:
        table.add_row(*(str(row.get(k, "n/a")) for k, _, _ in cols))
    Console(width=200).print(table)
    if args.json:
        doc = {
            "strategy": args.strategy,
            "strategy_env": senv,
            "pod_cpus": pod_cpus,
            "python_env": args.python_env,
            "model": str(args.model),
            "loadavg": [load_before, load_after],
            "summary": summary,
            "rounds": rows,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
