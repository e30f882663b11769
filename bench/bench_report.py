"""The figures against the targets, as rich tables and Markdown."""

from __future__ import annotations

import shutil
from typing import Any

from bench_procs import (
    TARGET_CEILING_FRACTION,
    TARGET_COLD_START_S,
    TARGET_PREDICT_OVER_FLOOR_MS,
    TARGET_PREPROCESS_MS,
    TARGET_RSS_MIB,
    TARGET_TEST_P50_MS,
)


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
