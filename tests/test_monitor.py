"""The psutil sampler on a real process tree, and the background monitor's CSV."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ggctl.evaluate.monitor import SAMPLE_COLUMNS, Monitor, ProcessSampler, Sample, read_samples

pytestmark = pytest.mark.timeout(60)

# A parent that sleeps and a child that spins, holding ~50 MB: like a gunicorn master
# with one busy worker.
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "b = bytearray(50 * 1024 * 1024)\\nwhile True: pass"])
time.sleep(60)
"""


@pytest.fixture
def busy_tree():
    proc = subprocess.Popen([sys.executable, "-c", TREE])
    try:
        yield proc
    finally:
        import psutil

        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait(5)


def test_process_sampler_sums_the_tree(busy_tree):
    import psutil

    deadline = time.monotonic() + 10
    while not psutil.Process(busy_tree.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = [psutil.Process(busy_tree.pid), *psutil.Process(busy_tree.pid).children()]

    def cpu_seconds() -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in tree)

    before, t0 = cpu_seconds(), time.monotonic()
    sampler = ProcessSampler(busy_tree.pid)
    time.sleep(1.0)
    s = sampler.sample()
    expected = (cpu_seconds() - before) / (time.monotonic() - t0)
    # Whatever share of a core the spinning child got on a busy machine, the sampler saw
    # the same, counted once (the parent sleeps).
    assert expected > 0.1
    assert s.cpu_use_core == pytest.approx(expected, abs=0.15), s
    assert s.cpu_use_core <= 1.2
    assert s.mem_use_KB > 50 * 1024
    assert s.n_replica == 1
    assert s.cpu_req_core is None and s.mem_lim_KB is None


def test_process_sampler_on_a_gone_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    sampler = ProcessSampler(proc.pid)
    proc.wait(10)
    s = sampler.sample()
    assert (s.n_replica, s.cpu_use_core, s.mem_use_KB) == (0, 0.0, 0.0)


class CountingSampler:
    def __init__(self, fail_on: int = 0):
        self.calls = 0
        self.fail_on = fail_on

    def sample(self) -> Sample:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("metrics API hiccup")
        return Sample(time.time(), 1, None, None, None, None, float(self.calls), 100.0)


def test_monitor_writes_csv_and_survives_a_sampler_error(tmp_path: Path):
    out = tmp_path / "samples.csv"
    sampler = CountingSampler(fail_on=2)
    with Monitor(sampler, 0.05, out) as monitor:
        time.sleep(0.6)
    samples = monitor.samples
    assert monitor.errors == 1
    assert 5 <= len(samples) <= 13
    with out.open() as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == SAMPLE_COLUMNS
    assert len(rows) == len(samples) + 1
    assert rows[1][2] == ""  # no CPU request: an empty cell, not "None"
    assert read_samples(out) == samples
    calls = sampler.calls
    time.sleep(0.2)
    assert sampler.calls == calls  # stopped means stopped


def test_monitor_rejects_a_bad_interval():
    with pytest.raises(ValueError):
        Monitor(CountingSampler(), 0)
