"""`ggctl model compare RUN_DIR...`: the summaries of several training runs side by side.

Each run directory's summary.json (written at the end of `ggctl model train`) gives the
accuracy of the fp32 and int8 models on the evaluation split, their p50 CPU latency at batch
1 and their size; a user picks the point on the accuracy / latency curve that fits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ggctl.errors import GgctlError


class CompareError(GgctlError):
    """A run directory has no usable summary."""


def load_summary(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        hint = (
            "Its training has not finished, or ran with --no-export; rerun "
            f"`ggctl model train --data DIR --out {run_dir}` to finish it."
            if (run_dir / "config.json").is_file()
            else "Pass run directories written by `ggctl model train --out`."
        )
        raise CompareError(f"{run_dir} has no summary.json", hint=hint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path} is not readable JSON: {exc}") from None
    for key in ("fp32", "int8", "backbone"):
        if key not in data:
            raise CompareError(f"{path} has no {key!r}; not a `ggctl model train` summary")
    return data


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _ms(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _mb(value: Any) -> str:
    return "—" if value is None else f"{float(value) / 1e6:.1f}"


def overview_table(summaries: list[dict[str, Any]]) -> Any:
    """One column per run; rows: model, accuracy fp32/int8, p50 latency, size, training."""
    from rich.table import Table

    table = Table(
        title="training runs (accuracy on the evaluation split; p50: ONNX Runtime "
        "inference at batch 1 on this CPU)",
        title_justify="left",
    )
    table.add_column("")
    for s in summaries:
        table.add_column(s.get("run", "?"), justify="right", overflow="fold")
    rows: list[tuple[str, list[str]]] = [
        (
            "backbone",
            [
                s["backbone"] + (f" x{s['width']:g}" if s.get("width", 1.0) != 1.0 else "")
                for s in summaries
            ],
        ),
        ("input", [f"{s.get('img_size', '?')} px" for s in summaries]),
        (
            "parameters",
            [f"{s['parameters'] / 1e6:.2f} M" if s.get("parameters") else "—" for s in summaries],
        ),
        ("best val accuracy", [_pct(s.get("best_val_accuracy")) for s in summaries]),
        ("accuracy fp32", [_pct(s["fp32"].get("accuracy")) for s in summaries]),
        ("accuracy int8", [_pct(s["int8"].get("accuracy")) for s in summaries]),
        (
            "int8 drop",
            [
                "—"
                if s.get("int8_accuracy_drop") is None
                else f"{100 * s['int8_accuracy_drop']:+.1f} pt"
                for s in summaries
            ],
        ),
        ("p50 fp32", [_ms(s["fp32"].get("p50_ms")) + " ms" for s in summaries]),
        ("p50 int8", [_ms(s["int8"].get("p50_ms")) + " ms" for s in summaries]),
        ("size fp32", [_mb(s["fp32"].get("size_bytes")) + " MB" for s in summaries]),
        ("size int8", [_mb(s["int8"].get("size_bytes")) + " MB" for s in summaries]),
        (
            "epochs",
            [
                f"{s.get('epochs_run', '?')}/{s.get('epochs_planned', '?')}"
                + (" (early stop)" if s.get("stopped_early") else "")
                for s in summaries
            ],
        ),
        ("weights", [str(s.get("weights", "?")) for s in summaries]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    return table


def per_class_table(summaries: list[dict[str, Any]]) -> Any:
    """Per-class fp32 accuracy, one column per run."""
    from rich.table import Table

    table = Table(title="per-class accuracy (fp32)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    for s in summaries:
        table.add_column(s.get("run", "?"), justify="right", overflow="fold")
    first = summaries[0]
    names = first.get("class_names") or [c["name"] for c in first["fp32"]["per_class"]]
    for i, name in enumerate(names):
        cells = []
        for s in summaries:
            per = {c["index"]: c for c in s["fp32"].get("per_class", [])}
            cells.append(_pct(per[i]["accuracy"]) if i in per else "—")
        table.add_row(str(i), name, *cells)
    return table


def compare_tables(run_dirs: list[Path]) -> list[Any]:
    """The rich tables `ggctl model compare` prints."""
    if not run_dirs:
        raise CompareError("name at least one run directory")
    summaries = [load_summary(d) for d in run_dirs]
    return [overview_table(summaries), per_class_table(summaries)]
