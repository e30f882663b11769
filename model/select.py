"""fp32 or int8? The int8 model only where it measured faster and lost at most `max_drop` points.

    Measured    one model's p50 latency (batch 1, this CPU), accuracy (None: unknown) and size
    decide      the pure rule: int8 iff faster beyond the noise margin AND drop <= max_drop
    choose_model  quantize (or take a given int8 file), measure both, evaluate both, decide,
                  and write choice.json into the output folder

Latency is measured by the quantizer's own interleaved p50 (ggctl.model.quantize), accuracy
by ggctl.model.evaluate through the service's preprocessing. Without a data set the accuracy
drop is unknown, and an unknown drop is never assumed small: fp32 is kept.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ggctl.model.quantize import DEFAULT_MAX_IMAGES, SAME_SPEED

CHOICE_FILE = "choice.json"


@dataclass(frozen=True)
class Measured:
    """What was measured of one model."""

    path: str
    p50_ms: float  # batch 1, this CPU, `threads` intra-op threads
    accuracy: float | None  # top-1 fraction on the data set; None when not measured
    size_bytes: int
    images: int = 0  # images the accuracy was measured on


def decide(
    fp32: Measured, int8: Measured, max_drop: float, margin: float = SAME_SPEED
) -> tuple[str, str]:
    """("fp32" or "int8", the reason in words). `max_drop` is in percentage points."""
    ratio = fp32.p50_ms / int8.p50_ms if int8.p50_ms > 0 else 0.0
    faster = ratio > 1 + margin
    speed = (
        f"int8 measured {ratio:.2f}x faster (p50 {int8.p50_ms:#.3g} vs {fp32.p50_ms:#.3g} ms)"
        if faster
        else f"int8 did not measure faster than fp32 beyond the {margin:.0%} noise margin "
        f"(p50 {int8.p50_ms:#.3g} vs {fp32.p50_ms:#.3g} ms)"
    )
    if fp32.accuracy is None or int8.accuracy is None:
        return "fp32", (
            f"accuracy unknown (no data set given), so int8's accuracy drop is not known to be "
            f"within the bound of {max_drop:g} points ({speed})"
        )
    drop = (fp32.accuracy - int8.accuracy) * 100
    within = drop <= max_drop
    accuracy = (
        f"accuracy drop {drop:.2f} points ({fp32.accuracy:.2%} → {int8.accuracy:.2%}) "
        f"{'within' if within else 'above'} the bound of {max_drop:g}"
    )
    if faster and within:
        return "int8", f"{speed} and its {accuracy}"
    return "fp32", f"{speed}; {accuracy}"


@dataclass(frozen=True)
class Choice:
    """The model chosen, both models' figures and why."""

    chosen: str  # "fp32" or "int8"
    path: str  # the chosen model file
    reason: str
    fp32: Measured
    int8: Measured
    max_drop: float  # percentage points
    margin: float  # relative p50 difference below which the speeds count as equal
    threads: int
    data: str | None
    calibration: str

    @property
    def drop_points(self) -> float | None:
        if self.fp32.accuracy is None or self.int8.accuracy is None:
            return None
        return (self.fp32.accuracy - self.int8.accuracy) * 100

    @property
    def verdict(self) -> str:
        return f"{self.chosen} chosen: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(drop_points=self.drop_points, verdict=self.verdict)
        return data

    def write_json(self, path: Path) -> None:
        """Write `to_dict()` as JSON, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def _accuracy(model: Path, data_dir: Path | None, **kw: Any) -> tuple[float | None, int]:
    if data_dir is None:
        return None, 0
    from ggctl.model.evaluate import evaluate_model

    r = evaluate_model(model, data_dir, **kw)
    return r.accuracy, r.images


def choose_model(
    fp32_path: Path,
    data_dir: Path | None,
    max_drop: float,
    out_dir: Path,
    threads: int = 1,
    *,
    int8_path: Path | None = None,
    margin: float = SAME_SPEED,
    split: str | None = None,
    limit: int | None = None,
    max_images: int = DEFAULT_MAX_IMAGES,
    runs: int = 30,
    progress: bool = False,
    console: Any = None,
) -> Choice:
    """Quantize `fp32_path` (unless `int8_path` is given), measure and evaluate both, decide.

    The int8 model is written to `out_dir/<stem>.int8.onnx`, calibrated on `data_dir`'s
    training split where it has one, else on `data_dir`, else on synthetic images. Accuracy
    is measured on `data_dir` (Food-11 layout; `split`, `limit` as in `ggctl model evaluate`).
    `out_dir/choice.json` records the choice; `Choice.path` is the file to serve.
    """
    from ggctl.model.quantize import _load_inputs, p50_latencies, quantize_model

    fp32_path, out_dir = Path(fp32_path), Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    if int8_path is None:
        calib = data_dir
        if data_dir is not None and (data_dir / "training").is_dir():
            calib = data_dir / "training"
        int8_path = out_dir / f"{fp32_path.stem}.int8.onnx"
        report = quantize_model(
            fp32_path, int8_path, calib, max_images=max_images, threads=threads, runs=runs
        )
        p50_fp32, p50_int8, calibration = report.p50_fp32_ms, report.p50_int8_ms, report.calibration
    else:
        from ggctl.app.inference import Classifier

        int8_path = Path(int8_path)
        meta = Classifier(fp32_path, ort_threads=threads, max_inflight=1).meta
        inputs, _ = _load_inputs(meta, data_dir, 1, 0)
        p50_fp32, p50_int8 = p50_latencies([fp32_path, int8_path], inputs[0], threads, runs)
        calibration = f"given int8 model {int8_path}"

    kw = dict(split=split, limit=limit, ort_threads=threads, progress=progress, console=console)
    measured = []
    for path, p50 in ((fp32_path, p50_fp32), (int8_path, p50_int8)):
        acc, images = _accuracy(path, data_dir, **kw)
        measured.append(Measured(str(path.absolute()), p50, acc, path.stat().st_size, images))
    fp32, int8 = measured
    chosen, reason = decide(fp32, int8, max_drop, margin)
    choice = Choice(
        chosen=chosen,
        path=int8.path if chosen == "int8" else fp32.path,
        reason=reason,
        fp32=fp32,
        int8=int8,
        max_drop=max_drop,
        margin=margin,
        threads=threads,
        data=str(data_dir) if data_dir is not None else None,
        calibration=calibration,
    )
    choice.write_json(out_dir / CHOICE_FILE)
    return choice
