"""Accuracy of an ONNX classifier on a Food-11 layout folder, through the serving code path.

Images go through `Classifier.classify_bytes` — the very decode, resize and normalisation the
service runs — so the accuracy measured here is the accuracy users get, with no train/serve
preprocessing skew.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ggctl.app.inference import Classifier
from ggctl.app.preprocess import ImageError
from ggctl.errors import GgctlError
from ggctl.model.dataset import load_samples, subsample


class EvaluateError(GgctlError):
    """Evaluation could not run; the message says why."""


@dataclass(frozen=True)
class ClassAccuracy:
    """Accuracy on the images of one class."""

    index: int
    name: str
    images: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else float("nan")


@dataclass
class EvaluationResult:
    """Accuracy, per-class accuracy, confusion matrix and latency of one evaluation run."""

    model: str
    model_name: str
    data: str
    class_names: list[str]
    images: int
    correct: int
    per_class: list[ClassAccuracy]
    confusion: list[list[int]]  # confusion[true][predicted]
    mean_inference_ms: float
    mean_preprocess_ms: float
    p50_inference_ms: float
    ort_threads: int
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded
    description: str = ""

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else float("nan")

    @property
    def mean_latency_ms(self) -> float:
        """Mean per-image time of preprocessing plus inference."""
        return self.mean_inference_ms + self.mean_preprocess_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_name": self.model_name,
            "data": self.data,
            "description": self.description,
            "images": self.images,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "per_class": [
                {
                    "index": c.index,
                    "name": c.name,
                    "images": c.images,
                    "correct": c.correct,
                    "accuracy": c.accuracy if c.images else None,
                }
                for c in self.per_class
            ],
            "confusion": self.confusion,
            "class_names": self.class_names,
            "mean_latency_ms": self.mean_latency_ms,
            "mean_inference_ms": self.mean_inference_ms,
            "mean_preprocess_ms": self.mean_preprocess_ms,
            "p50_inference_ms": self.p50_inference_ms,
            "ort_threads": self.ort_threads,
            "skipped": self.skipped,
        }

    def write_json(self, path: Path) -> None:
        """Write `to_dict()` as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from other users
        os.replace(tmp, path)


def evaluate_model(
    model_path: Path,
    data_dir: Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    ort_threads: int = 1,
    progress: bool = True,
    console: Console | None = None,
    json_path: Path | None = None,
) -> EvaluationResult:
    """Classify every image of a Food-11 layout folder and score the predictions.

    `data_dir` is a flat folder of `<class>_<n>.jpg` files or a root with split folders
    (default split: evaluation). `limit` evaluates an evenly spread subset. Images that
    cannot be decoded are listed in `skipped` and left out of the accuracy.
    """
    try:
        clf = Classifier(Path(model_path), ort_threads=ort_threads, max_inflight=1)
    except Exception as exc:
        raise EvaluateError(f"cannot load {model_path}: {exc}") from None
    meta = clf.meta
    samples = subsample(load_samples(Path(data_dir), split, num_classes=meta.num_classes), limit)
    n = meta.num_classes
    confusion = np.zeros((n, n), dtype=np.int64)
    infer_ms: list[float] = []
    prep_ms: list[float] = []
    skipped: list[str] = []

    bar = Progress(
        TextColumn("[bold]evaluating[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[acc]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task("eval", total=len(samples), acc="")
        for sample in samples:
            try:
                pred = clf.classify_bytes(sample.path.read_bytes())
            except ImageError:
                skipped.append(str(sample.path))
            else:
                confusion[sample.label, pred.index] += 1
                infer_ms.append(pred.inference_ms)
                prep_ms.append(pred.preprocess_ms)
            done = int(confusion.sum())
            acc = f"acc {np.trace(confusion) / done:.1%}" if done else ""
            bar.update(task, advance=1, acc=acc)

    if not infer_ms:
        raise EvaluateError(f"none of the {len(samples)} images could be decoded")
    per_class = [
        ClassAccuracy(i, meta.class_names[i], int(confusion[i].sum()), int(confusion[i, i]))
        for i in range(n)
    ]
    result = EvaluationResult(
        model=str(model_path),
        model_name=meta.name,
        data=str(data_dir),
        class_names=list(meta.class_names),
        images=int(confusion.sum()),
        correct=int(np.trace(confusion)),
        per_class=per_class,
        confusion=confusion.tolist(),
        mean_inference_ms=float(np.mean(infer_ms)),
        mean_preprocess_ms=float(np.mean(prep_ms)),
        p50_inference_ms=float(np.median(infer_ms)),
        ort_threads=ort_threads,
        skipped=skipped,
        description=meta.description,
    )
    if json_path is not None:
        result.write_json(json_path)
    return result
