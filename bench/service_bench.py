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

This file is the entry point and the run's order; each measurement reads alone in its part:

    floor.py         1-3: the in-process floor and the ceiling of a thread layout
    load_http.py     4-6: `ggctl serve` over HTTP, the load client, memory, cold start
    layout_sweep.py  the sweep of layouts for a 1- and a 2-CPU pod
    bench_report.py  the figures against the targets, as tables and Markdown
    bench_procs.py   the child processes, small statistics, layouts and the run's budget
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench_procs import BUSY_FRACTION, Budget, Layout, kill_all, on_sigterm
from bench_report import evaluate_targets, markdown, print_rich
from floor import ceiling_worker, measure_floor
from layout_sweep import bench_layout, pick_best, sweep_layouts
from load_http import bench_service, load_client

from ggctl.app.inference import thread_layout

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

    signal.signal(signal.SIGTERM, on_sigterm)
    atexit.register(kill_all)
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
        kill_all()
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
        kill_all()
        print("interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
