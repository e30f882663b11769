"""The in-process floor and ceiling: raw ONNX Runtime and the /predict pipeline in this
process, and images/s of a thread layout calling that pipeline concurrently (child mode)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_procs import Budget, Layout, kill, pin, readline_bounded, script_cmd, spawn, summarize_ms

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
            spawn(
                pin(self.cpus) + script_cmd("--_ceiling", self.cfg),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(self.workers)
        ]
        for p in self.procs:
            line = readline_bounded(p, 60.0)
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
            line = readline_bounded(p, duration + 60)
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
            kill(p, grace_s=2.0)
