"""What every part of the service benchmark shares: the child processes it starts (killed
with it, whatever happens), small statistics, the layouts and the budget of a run."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    with _CHILDREN_LOCK:
        _CHILDREN.append(proc)
    return proc


def kill(proc: subprocess.Popen, sig: int = signal.SIGINT, grace_s: float = 5.0) -> None:
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


def kill_all() -> None:
    with _CHILDREN_LOCK:
        procs = list(_CHILDREN)
    for proc in procs:
        kill(proc, grace_s=3.0)


def on_sigterm(_signum: int, _frame: Any) -> None:
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


def script_cmd(mode: str, cfg: dict[str, Any]) -> list[str]:
    # Child modes run through the entry script, which dispatches them before parsing flags.
    return [
        sys.executable,
        str(Path(__file__).resolve().with_name("service_bench.py")),
        mode,
        json.dumps(cfg),
    ]


def pin(cpus: list[int] | None) -> list[str]:
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
    proc = spawn(
        pin(cpus) + script_cmd(mode, cfg),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise RuntimeError(f"{mode} child ran past {timeout:.0f} s") from None
    finally:
        kill(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def readline_bounded(proc: subprocess.Popen, timeout: float) -> str:
    box: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""
