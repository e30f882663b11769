"""The layout sweep: workers x threads x ORT threads x in-flight for a 1- and a 2-CPU "pod"."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench_procs import BUSY_FRACTION, Budget, Layout
from floor import Ceiling
from load_http import Server, best_round, drive, pool_seq


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
            row["seq"] = pool_seq(
                [drive(srv, "test", 1, budget, client_cpus, True) for _ in range(budget.rounds)]
            )
            ceil, load = [], []
            for _ in range(budget.rounds):
                ceil.append(ceiling.round(budget.ceiling_s))
                load.append(drive(srv, "test", budget.clients, budget, client_cpus, False))
            row["ceiling"] = best_round(ceil, "ips")
            row["load"] = best_round(load, "rps")
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
