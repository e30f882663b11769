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
        hint = ("Its training has not finished, or ran with --no-export; rerun "
                f"`ggctl model train --data DIR --out {run_dir}` to finish it."
                if (run_dir / "config.json").is_file() else
                "Pass run directories written by `ggctl model train --out`.")
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
    """One row per run: model, accuracy fp32/int8, p50 latency, size, training."""
    from rich.table import Table

    table = Table(title="training runs (evaluation split; p50 = ONNX Runtime inference at "
                        "batch 1, CPU)", title_justify="left")
    for col, justify in (("run", "left"), ("backbone", "left"), ("px", "right"),
                         ("params M", "right"), ("val acc", "right"), ("acc fp32", "right"),
                         ("acc int8", "right"), ("int8 drop", "right"),
                         ("p50 fp32 ms", "right"), ("p50 int8 ms", "right"),
                         ("MB fp32", "right"), ("MB int8", "right"), ("epochs", "right")):
        table.add_column(col, justify=justify)
    for s in summaries:
        fp32, int8 = s["fp32"], s["int8"]
        backbone = s["backbone"] + (f" ×{s['width']:g}" if s.get("width", 1.0) != 1.0 else "")
        drop = s.get("int8_accuracy_drop")
        epochs = f"{s.get('epochs_run', '?')}/{s.get('epochs_planned', '?')}"
        if s.get("stopped_early"):
            epochs += " (early)"
        table.add_row(
            s.get("run", "?"), backbone, str(s.get("img_size", "?")),
            f"{s['parameters'] / 1e6:.2f}" if s.get("parameters") else "—",
            _pct(s.get("best_val_accuracy")), _pct(fp32.get("accuracy")),
            _pct(int8.get("accuracy")),
            "—" if drop is None else f"{100 * drop:+.1f} pt",
            _ms(fp32.get("p50_ms")), _ms(int8.get("p50_ms")),
            _mb(fp32.get("size_bytes")), _mb(int8.get("size_bytes")), epochs,
        )
    return table


def per_class_table(summaries: list[dict[str, Any]]) -> Any:
    """Per-class fp32 accuracy, one column per run."""
    from rich.table import Table

    table = Table(title="per-class accuracy (fp32)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    for s in summaries:
        table.add_column(s.get("run", "?"), justify="right")
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
