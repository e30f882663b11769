"""Resource samples of the service while it is under load, in the course's CSV columns.

`Monitor` calls a `Sampler` every interval in a background thread and writes each sample
as a CSV row as soon as it is taken, so an interrupted run keeps what it measured. The
local `ProcessSampler` reads a process tree with psutil; a Kubernetes sampler (metrics
API) implements the same one-method protocol.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import IO, Any, Protocol

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One row of the course's `resource_monitor.py` CSV. Requests and limits are None
    where nothing enforces them (a local process); `time` is seconds since the epoch."""

    time: float
    n_replica: int
    cpu_req_core: float | None
    mem_req_KB: float | None
    cpu_lim_core: float | None
    mem_lim_KB: float | None
    cpu_use_core: float | None
    mem_use_KB: float | None


SAMPLE_COLUMNS = tuple(f.name for f in fields(Sample))


class Sampler(Protocol):
    """Something that can measure the service's replicas now."""

    def sample(self) -> Sample:
        """Take one measurement; CPU use is the average since the previous call."""
        ...


class ProcessSampler:
    """CPU and memory of a process and all its descendants (gunicorn master + workers).

    CPU: cores used since the previous sample (CPU seconds / wall seconds), counting
    workers that were started in between. Memory: the sum of PSS where the kernel gives
    it, which counts pages shared by forked workers once, as a container's working set
    does; RSS summed would count the model's pages once per worker.
    """

    def __init__(self, pid: int, clock: Callable[[], float] = time.time):
        self.pid = pid
        self._clock = clock
        self._root = psutil.Process(pid)
        self._cpu: dict[tuple[int, float], float] = {}
        self._last_wall = time.monotonic()
        self._pss_ok = True
        for proc in self._tree():
            cpu = self._cpu_seconds(proc)
            if cpu is not None:
                self._cpu[self._key(proc)] = cpu

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    @staticmethod
    def _key(proc: psutil.Process) -> tuple[int, float]:
        # pid + create time: a recycled pid must not inherit an old process's CPU count.
        return (proc.pid, proc.create_time())

    @staticmethod
    def _cpu_seconds(proc: psutil.Process) -> float | None:
        try:
            t = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
        return t.user + t.system

    def _memory_bytes(self, proc: psutil.Process) -> int | None:
        try:
            if self._pss_ok:
                try:
                    return proc.memory_full_info().pss
                except (psutil.AccessDenied, AttributeError):
                    self._pss_ok = False
            return proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None

    def sample(self) -> Sample:
        """Measure the tree now."""
        now_wall = time.monotonic()
        elapsed = max(now_wall - self._last_wall, 1e-6)
        procs = self._tree()
        cpu_total = 0.0
        mem_total = 0
        seen: dict[tuple[int, float], float] = {}
        for proc in procs:
            try:
                key = self._key(proc)
            except psutil.NoSuchProcess:
                continue
            cpu = self._cpu_seconds(proc)
            mem = self._memory_bytes(proc)
            if cpu is not None:
                # A process first seen now was started since the last sample: all its CPU is new.
                cpu_total += cpu - self._cpu.get(key, 0.0)
                seen[key] = cpu
            if mem is not None:
                mem_total += mem
        self._cpu = seen
        self._last_wall = now_wall
        alive = bool(procs)
        return Sample(
            time=self._clock(),
            n_replica=1 if alive else 0,
            cpu_req_core=None,
            mem_req_KB=None,
            cpu_lim_core=None,
            mem_lim_KB=None,
            cpu_use_core=max(cpu_total, 0.0) / elapsed if alive else 0.0,
            mem_use_KB=mem_total / 1024 if alive else 0.0,
        )


def _cell(value: object) -> object:
    return "" if value is None else value


class Monitor:
    """Samples every `interval_s` seconds in a daemon thread; optionally appends to a CSV.

    Use as a context manager, or `start()` / `stop()`. A sampler error is logged and
    counted, never fatal: a gap in the samples must not abort a 30-minute load test.
    """

    def __init__(self, sampler: Sampler, interval_s: float, csv_path: Path | None = None):
        if not interval_s > 0:
            raise ValueError(f"interval must be > 0, got {interval_s!r}")
        self.sampler = sampler
        self.interval_s = interval_s
        self.csv_path = Path(csv_path) if csv_path else None
        self.samples: list[Sample] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fh: IO[str] | None = None
        self._writer: Any = None

    @property
    def started(self) -> bool:
        """Whether `start()` was called."""
        return self._thread is not None

    def start(self) -> Monitor:
        """Start sampling; the first sample comes one interval from now."""
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        if self.csv_path is not None:
            self._fh = self.csv_path.open("w", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(SAMPLE_COLUMNS)
            self._fh.flush()
        self._thread = threading.Thread(target=self._run, name="ggctl-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Deadlines on a fixed grid, so a slow sample does not make every later one late.
        next_at = time.monotonic() + self.interval_s
        while not self._stop.wait(max(next_at - time.monotonic(), 0.0)):
            self._take()
            next_at += self.interval_s
            if next_at < time.monotonic():
                next_at = time.monotonic() + self.interval_s

    def _take(self) -> None:
        try:
            s = self.sampler.sample()
        except Exception:
            self.errors += 1
            log.warning("resource sample failed", exc_info=True)
            return
        self.samples.append(s)
        if self._writer is not None and self._fh is not None:
            self._writer.writerow([_cell(v) for v in astuple(s)])
            self._fh.flush()

    def stop(self) -> list[Sample]:
        """Stop sampling, close the CSV, and return all samples taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self._writer = None
        return list(self.samples)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_samples(path: Path) -> list[Sample]:
    """Read a samples CSV written by `Monitor` (empty cells are None)."""

    def num(v: str) -> float | None:
        return float(v) if v != "" else None

    with Path(path).open(newline="") as fh:
        return [
            Sample(
                time=float(row["time"]),
                n_replica=int(float(row["n_replica"])),
                cpu_req_core=num(row["cpu_req_core"]),
                mem_req_KB=num(row["mem_req_KB"]),
                cpu_lim_core=num(row["cpu_lim_core"]),
                mem_lim_KB=num(row["mem_lim_KB"]),
                cpu_use_core=num(row["cpu_use_core"]),
                mem_use_KB=num(row["mem_use_KB"]),
            )
            for row in csv.DictReader(fh)
        ]
