#!/usr/bin/env python3
"""Prediction against measurement: `ggctl predict` for one local server vs `ggctl demo`.

    .venv/bin/python bench/predict_vs_demo.py [--speed 15] [--profile challenge]
        [--model M.onnx] [--json out.json] [--calibration-s 30]         # ~3 minutes

In one run, on one machine: (1) `ggctl demo` measures the service (one `ggctl serve`
process tree, 4 threads, the machine's CPUs) under the time-compressed profile with the
Locust engine; (2) `ggctl predict` calibrates the same model in the same layout (the
`k8s` strategy's single pod, its CPU limit set to this machine's CPUs) and simulates the
same compressed profile, with what does not exist locally switched off: no readiness
probe traffic (/readyz instead of /test), no network hop, the pod ready from the start,
no CPU-share correction (the demo runs on this same busy or quiet machine). Then each
score's error, against the aims of issue 14: transaction rate within 5 %, weighted mean
response time within 20 %.

Memory is reported side by side, not scored: the demo samples the summed PSS of its
server (`ggctl serve` execs the container's entrypoint, so the same process), the
prediction uses the working set the calibration measured (a cgroup's, as metrics-server
reports it, where this machine lets ggctl make one; else the summed PSS).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

AIMS = {"transaction_rate": 0.05, "mean_response_ms": 0.20}
SCORES = (
    ("transaction_rate", "transaction rate", "/s"),
    ("mean_response_ms", "weighted mean response time", "ms"),
    ("p50_ms", "p50", "ms"),
    ("p95_ms", "p95", "ms"),
    ("failures", "failures", ""),
    ("mean_mem_used_KB", "memory used (demo: PSS; predicted: calibration's)", "KiB"),
    ("mean_cpu_used_cores", "CPU used", "cores"),
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=15.0)
    ap.add_argument("--profile", default="challenge")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--state-dir", type=Path, help="default: a temporary directory")
    # ggctl predict's own 8 s capacity window gave 74.3 and 68.8 requests/s in two runs on
    # one quiet machine: the rate aim (5 %) needs a longer one than a user's quick look.
    ap.add_argument(
        "--calibration-s", type=float, default=30.0, help="capacity window (default 30 s)"
    )
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from ggctl.config import load_settings
    from ggctl.local.demo import demo_profile, run_demo
    from ggctl.predict.run import predict_one, write_run

    console = Console(stderr=True)
    tmp = tempfile.TemporaryDirectory(prefix="ggctl-bench-predict-")
    state = args.state_dir or Path(tmp.name)
    flags: dict[str, Any] = {
        "state_dir": state,
        "demo": {"speed": args.speed, "profile": args.profile},
    }
    if args.model:
        flags["serve"] = {"model": args.model}
    os.environ.pop("GGCTL_CONFIG", None)
    settings = load_settings(None, flags)
    profile = demo_profile(settings)

    load_before = os.getloadavg()[0]  # timing means something only on a quiet machine
    console.print(f"[bold]1/2 ggctl demo[/]: {profile.name} x{profile.speed:g}")
    demo = run_demo(settings, console=console)
    cpus = len(os.sched_getaffinity(0))
    sets = {
        "cpu_limit": str(cpus),
        "readiness_path": "/readyz",
        "net_ms": "0",
        "cpu_share": "1",
        "request_timeout_s": str(settings.serve.timeout),
        # No probe runs locally: one that never times out is the same as none.
        "readiness_timeout_s": "1000",
    }
    console.print(f"[bold]2/2 ggctl predict[/]: k8s, one pod of {cpus} CPUs, same profile")
    pred = predict_one(
        settings,
        "k8s",
        profile,
        demo.model,
        sets,
        cache_dir=state / "predict",
        refresh=True,  # measured now, beside the demo, under the same conditions
        log=console.print,
        calibration_budget={"load_s": args.calibration_s},
    )
    write_run(pred, profile, state / "runs" / "predict-vs-demo", plots=False)

    measured, predicted = demo.scores.to_dict(), pred.scores.to_dict()
    table = Table(title=f"predicted vs measured · {profile.name} x{profile.speed:g}")
    for col in ("score", "measured (demo)", "predicted", "error", "aim"):
        table.add_column(col, justify="right" if col != "score" else "left")
    rows = []
    for key, name, unit in SCORES:
        m, p = measured.get(key), predicted.get(key)
        err = (p - m) / m if m and p is not None else None
        aim = AIMS.get(key)
        verdict = "" if aim is None or err is None else ("met" if abs(err) <= aim else "MISSED")
        rows.append({"score": key, "measured": m, "predicted": p, "error": err, "aim": aim})
        table.add_row(
            name,
            "n/a" if m is None else f"{m:,.2f} {unit}",
            "n/a" if p is None else f"{p:,.2f} {unit}",
            "n/a" if err is None else f"{err:+.1%}",
            "" if aim is None else f"±{aim:.0%} {verdict}",
        )
    Console().print(table)
    cal = pred.calibration
    Console().print(
        f"calibration: {cal.layout.label}, service {cal.mean_service_ms:.1f} ms alone, "
        f"capacity {cal.capacity_rps:.1f}/s, {cal.cpu_ms_per_request:.1f} ms CPU/request, "
        f"CPU share {cal.cpu_share:.2f}; load average {load_before:.2f} → "
        f"{os.getloadavg()[0]:.2f}; demo's load generator used "
        f"{demo.load.cpu_cores:.2f} cores; demo run: {demo.run_dir}"
    )
    if args.json:
        doc = {
            "profile": profile.to_dict(),
            "loadavg_before": load_before,
            "loadgen_cpu_cores": demo.load.cpu_cores,
            "rows": rows,
            "calibration": {k: v for k, v in cal.to_dict().items() if k != "service_ms"},
            "per_stage": {
                "measured": [s.__dict__ for s in demo.scores.stages],
                "predicted": [s.__dict__ for s in pred.scores.stages],
            },
        }
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
