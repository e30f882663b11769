"""`ggctl model train`: Food-11 folder → fine-tuned Keras model → ONNX + int8, measured.

One run lives in one directory:

    config.json        the recipe, the data, the environment (rewritten on each resume)
    history.csv        one row per epoch: stage, learning rate, loss/accuracy, validation
    curves.png         learning curves (matplotlib, Agg)
    best.weights.h5    weights of the best validation epoch so far
    checkpoint/        last epoch: weights, optimizer state, epoch counter, early-stop state
    best.keras         the best model in float32 (written at the end)
    model.onnx         exported with the metadata the service reads
    model.int8.onnx    static QDQ int8
    eval-fp32.json, eval-int8.json, summary.json

Rerunning the same command continues after the last checkpointed epoch; flags not given
again keep the run's stored values, and `--epochs` may be raised to train further.
Export, quantization and evaluation reuse `ggctl.model.export`, `.quantize` and `.evaluate`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from ggctl.app.modelmeta import FOOD11_CLASSES
from ggctl.errors import GgctlError
from ggctl.model.dataset import (
    DatasetError,
    Sample,
    class_counts,
    load_samples,
    missing_classes,
    resolve_split_dir,
)
from ggctl.model.recipe import Recipe, resolve_recipe

HISTORY_FIELDS = (
    "epoch",
    "stage",
    "lr",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "best",
)
SUMMARY_VERSION = 1
PARITY_IMAGES = 16  # evaluation images on which Keras and ONNX Runtime outputs are compared


class TrainError(GgctlError):
    """Training could not run or continue; the message says why."""


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps each of its files."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        files = {
            "config": "config.json",
            "history": "history.csv",
            "curves": "curves.png",
            "best_weights": "best.weights.h5",
            "checkpoint": "checkpoint",
            "best_model": "best.keras",
            "onnx": "model.onnx",
            "int8": "model.int8.onnx",
            "eval_fp32": "eval-fp32.json",
            "eval_int8": "eval-int8.json",
            "summary": "summary.json",
            "cache": "cache",
        }
        if name not in files:
            raise AttributeError(name)
        return self.root / files[name]


@dataclass
class TrainState:
    """What a checkpoint records beside the weights: where the run is and its early stop."""

    epoch: int = 0  # epochs completed
    optimizer_stage: int = 0  # stage whose optimizer state is saved (0: none)
    best: float | None = None
    best_epoch: int = 0
    wait: int = 0  # stage-2 epochs without improvement
    train_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Splits:
    training: list[Sample]
    validation: list[Sample]
    evaluation: list[Sample]


# --- data ---------------------------------------------------------------------------------


def load_splits(data: Path, class_names: tuple[str, ...]) -> Splits:
    """The three Food-11 splits, checked before TensorFlow is even imported."""
    n = len(class_names)
    got = {
        split: load_samples(Path(data), split, num_classes=n)
        for split in ("training", "validation", "evaluation")
    }
    absent = missing_classes(got["training"], n)
    if absent:
        names = ", ".join(f"{c} ({class_names[c]})" for c in absent)
        raise DatasetError(
            f"the training split of {data} has no images of class {names}",
            hint="Every class needs training images; check the file names.",
        )
    return Splits(**got)


# --- small file helpers -------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        parsed: dict[str, Any] = {}
        for key, value in row.items():
            if key in ("epoch", "stage"):
                parsed[key] = int(value)
            elif key == "best":
                parsed[key] = value == "1"
            else:
                parsed[key] = float(value) if value not in ("", None) else float("nan")
        out.append(parsed)
    return out


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(row[k]) if k == "best" else row[k]) for k in HISTORY_FIELDS})
    os.replace(tmp, path)


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str, head_epochs: int) -> None:
    """Loss and accuracy, training and validation, per epoch; the stage switch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [r[key] for r in rows], "o-", ms=3, label="training")
        ax.plot(epochs, [r[f"val_{key}"] for r in rows], "o-", ms=3, label="validation")
        if 0 < head_epochs < (epochs[-1] if epochs else 0):
            ax.axvline(head_epochs + 0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


# --- checkpoints --------------------------------------------------------------------------


def save_checkpoint(paths: RunPaths, model: Any, state: TrainState) -> None:
    """Weights, optimizer variables and state of the last epoch, swapped in whole."""
    final = paths.checkpoint
    tmp = final.with_name("checkpoint.tmp")
    old = final.with_name("checkpoint.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_weights(str(tmp / "model.weights.h5"))
    arrays = [np.asarray(v.numpy()) for v in model.optimizer.variables]
    np.savez(tmp / "optimizer.npz", *arrays)
    _write_json(tmp / "state.json", asdict(state))
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(paths: RunPaths) -> Path | None:
    """The newest complete checkpoint folder (one interrupted mid-swap is `.old`)."""
    for folder in (paths.checkpoint, paths.checkpoint.with_name("checkpoint.old")):
        if (folder / "state.json").is_file() and (folder / "model.weights.h5").is_file():
            return folder
    return None


def restore_optimizer(model: Any, folder: Path) -> None:
    """Load the saved optimizer variables into the (freshly compiled) model's optimizer."""
    with np.load(folder / "optimizer.npz") as data:
        arrays = [data[f"arr_{i}"] for i in range(len(data.files))]
    opt = model.optimizer
    opt.build(model.trainable_variables)
    variables = list(opt.variables)
    shapes_ok = len(variables) == len(arrays) and all(
        tuple(v.shape) == a.shape for v, a in zip(variables, arrays, strict=False)
    )
    if not shapes_ok:
        raise TrainError(
            f"the optimizer state in {folder} does not fit this model",
            hint="Start a new run with another --out.",
        )
    for var, array in zip(variables, arrays, strict=True):
        var.assign(array)


# --- the Keras part -----------------------------------------------------------------------


def _tensorflow() -> tuple[Any, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as exc:
        raise TrainError(
            f"training needs TensorFlow ({exc.name or exc} is not installed)",
            hint="pip install 'ggctl[train]'",
        ) from None
    return tf, keras


def compile_stage(model: Any, recipe: Recipe, stage: int, steps_per_epoch: int) -> None:
    """AdamW + cosine schedule of `stage`, label-smoothed cross-entropy, accuracy."""
    import keras

    if stage == 1:
        lr, epochs, warmup = recipe.head_lr, recipe.head_epochs, 0.0
    else:
        lr, epochs, warmup = recipe.fine_tune_lr, recipe.fine_tune_epochs, recipe.warmup_epochs
    total = max(1, epochs * steps_per_epoch)
    warmup_steps = min(round(warmup * steps_per_epoch), total - 1)
    if warmup_steps > 0:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup_steps, warmup_target=lr, warmup_steps=warmup_steps
        )
    else:
        schedule = keras.optimizers.schedules.CosineDecay(lr, total)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay)
    # No decay on biases and batch-norm scales/offsets (the usual AdamW practice).
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )


def _use_mixed_precision(recipe: Recipe, tf: Any) -> bool:
    if recipe.mixed_precision == "on":
        return True
    if recipe.mixed_precision == "off":
        return False
    return bool(tf.config.list_physical_devices("GPU"))


class _BatchBar:
    """A Keras callback driving a transient rich progress bar over one epoch's batches."""

    def __init__(self, console: Console, enabled: bool):
        import keras
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not enabled,
        )
        bar = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                logs = logs or {}
                info = " ".join(
                    f"{k} {float(v):.3f}" for k, v in logs.items() if k in ("loss", "accuracy")
                )
                bar.progress.update(bar.task, advance=1, info=info)

            def on_test_begin(self, logs=None):
                bar.progress.update(bar.task, info="validating…")

        self.callback = Callback()
        self.task: Any = None

    def start(self, description: str, total: int) -> None:
        self.task = self.progress.add_task(description, total=total, info="")

    def stop(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


def _environment(tf: Any, keras: Any, mixed: bool) -> dict[str, Any]:
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "gpus": gpus,
        "mixed_precision": mixed,
        "host": platform.node(),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _improved(value: float, best: float | None, monitor: str, min_delta: float) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    if monitor == "val_loss":
        return value < best - min_delta
    return value > best + min_delta


def _done(recipe: Recipe, state: TrainState) -> bool:
    if state.epoch >= recipe.epochs:
        return True
    return recipe.stage_of(state.epoch - 1) == 2 and state.wait >= recipe.patience


@dataclass
class TrainOutcome:
    """What `train` did: the run directory, the epochs, and the summary when finalized."""

    run_dir: Path
    recipe: Recipe
    resumed_from: int  # epochs already done when this call started
    epochs_done: int
    best_epoch: int
    best: float | None
    stopped_early: bool
    summary: dict[str, Any] | None


def train(
    data: Path,
    run_dir: Path,
    overrides: dict[str, Any] | None = None,
    *,
    class_names: tuple[str, ...] | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train (or resume) the run in `run_dir` on the Food-11 folder `data`, then finalize.

    `overrides` are the recipe fields given explicitly (CLI flags); a new run takes the
    recipe's defaults for the rest, a resumed run its stored values.
    """
    console = console or Console()
    data, run_dir = Path(data), Path(run_dir)
    paths = RunPaths(run_dir)
    recipe, resuming = resolve_recipe(run_dir, dict(overrides or {}))
    config = None
    if resuming:
        config = json.loads(paths.config.read_text(encoding="utf-8"))
        stored_names = tuple(config.get("class_names") or FOOD11_CLASSES)
        if class_names is not None and tuple(class_names) != stored_names:
            raise TrainError(
                f"{run_dir} was trained with other class names",
                hint="Pass another --out for a new run.",
            )
        class_names = stored_names
    class_names = tuple(class_names or FOOD11_CLASSES)
    splits = load_splits(data, class_names)

    tf, keras = _tensorflow()
    mixed = _use_mixed_precision(recipe, tf)
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")

    checkpoint = find_checkpoint(paths) if resuming else None
    state = (
        TrainState.from_dict(json.loads((checkpoint / "state.json").read_text()))
        if checkpoint
        else TrainState()
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    history = [r for r in read_history(paths.history) if r["epoch"] <= state.epoch]
    now = _now()
    config = {
        "recipe": recipe.to_dict(),
        "data": str(data.resolve()),
        "class_names": list(class_names),
        "counts": {s: len(getattr(splits, s)) for s in ("training", "validation", "evaluation")},
        "training_class_counts": {str(k): v for k, v in class_counts(splits.training).items()},
        "environment": _environment(tf, keras, mixed),
        "created": (config or {}).get("created", now),
        "resumed": [*(config or {}).get("resumed", []), *([now] if checkpoint else [])],
    }
    _write_json(paths.config, config)

    resumed_from = state.epoch
    if checkpoint:
        console.print(
            f"[bold]resuming[/] {run_dir} after epoch {state.epoch} "
            f"(best {recipe.monitor} {state.best:.4f} at epoch {state.best_epoch})"
            if state.best is not None
            else f"[bold]resuming[/] {run_dir} after epoch {state.epoch}",
            highlight=False,
        )
    if not _done(recipe, state):
        _fit(
            recipe,
            splits,
            class_names,
            paths,
            state,
            history,
            checkpoint,
            mixed,
            console,
            progress,
            tf,
            keras,
        )
    stopped_early = state.epoch < recipe.epochs
    summary = None
    if recipe.export:
        summary = _summary_if_current(paths, state)
        if summary is None:
            summary = finalize(
                data, paths, recipe, class_names, state, console=console, progress=progress
            )
    return TrainOutcome(
        run_dir,
        recipe,
        resumed_from,
        state.epoch,
        state.best_epoch,
        state.best,
        stopped_early,
        summary,
    )


def _fit(
    recipe: Recipe,
    splits: Splits,
    class_names: tuple[str, ...],
    paths: RunPaths,
    state: TrainState,
    history: list[dict[str, Any]],
    checkpoint: Path | None,
    mixed: bool,
    console: Console,
    progress: bool,
    tf: Any,
    keras: Any,
) -> None:
    from ggctl.model.backbones import build_classifier, set_stage
    from ggctl.model.pipeline import Skipped, class_weights, make_dataset

    n = len(class_names)
    keras.utils.set_random_seed(recipe.seed + state.epoch)
    skipped = Skipped()
    weights = class_weights(splits.training, n) if recipe.class_weights else None
    train_ds = make_dataset(
        splits.training,
        recipe,
        n,
        training=True,
        weights=weights,
        cache_path=paths.cache / "training",
        skipped=skipped,
    )
    val_ds = make_dataset(
        splits.validation,
        recipe,
        n,
        training=False,
        cache_path=paths.cache / "validation",
        skipped=skipped,
    )
    steps = math.ceil(len(splits.training) / recipe.batch)

    model = build_classifier(
        recipe.backbone,
        recipe.img_size,
        n,
        weights=recipe.weights,
        width=recipe.width,
        dropout=recipe.dropout,
    )
    if checkpoint:
        model.load_weights(str(checkpoint / "model.weights.h5"))
    console.print(
        f"[bold]{model.name}[/]: {model.count_params() / 1e6:.2f} M parameters, "
        f"{recipe.img_size}x{recipe.img_size}, weights {recipe.weights}, "
        f"{'mixed' if mixed else 'float32'} precision; {len(splits.training)} training / "
        f"{len(splits.validation)} validation images",
        highlight=False,
    )
    bar = _BatchBar(console, progress)
    stage = 0
    first = state.epoch
    started = time.perf_counter()
    try:
        with bar.progress:
            for epoch in range(state.epoch, recipe.epochs):
                if recipe.stage_of(epoch) != stage:
                    stage = recipe.stage_of(epoch)
                    layers = set_stage(
                        model, stage, recipe.unfreeze, recipe.bn_frozen, recipe.bn_momentum
                    )
                    compile_stage(model, recipe, stage, steps)
                    if checkpoint and state.optimizer_stage == stage and epoch == state.epoch:
                        restore_optimizer(model, checkpoint)
                    elif stage == 2:
                        state.wait = 0
                    what = (
                        "head only, backbone frozen"
                        if stage == 1
                        else f"fine-tuning {layers} backbone layers"
                    )
                    console.print(f"[bold cyan]stage {stage}[/]: {what}", highlight=False)
                t0 = time.perf_counter()
                lr = float(np.asarray(model.optimizer.learning_rate))
                bar.start(f"epoch {epoch + 1}/{recipe.epochs}", steps)
                with warnings.catch_warnings():
                    # The pipeline filters undecodable files, so its length is unknown to
                    # Keras, which then warns at each epoch's end; and tf.data shuffles.
                    warnings.filterwarnings("ignore", message=".*ran out of data")
                    warnings.filterwarnings("ignore", message=".*shuffle=True")
                    fit = model.fit(
                        train_ds,
                        validation_data=val_ds,
                        epochs=epoch + 1,
                        initial_epoch=epoch,
                        verbose=0,
                        shuffle=False,
                        callbacks=[bar.callback],
                    )
                bar.stop()
                logs = {k: float(v[-1]) for k, v in fit.history.items()}
                seconds = time.perf_counter() - t0
                value = logs.get(recipe.monitor, float("nan"))
                best = _improved(value, state.best, recipe.monitor, recipe.min_delta)
                if best:
                    state.best, state.best_epoch = value, epoch + 1
                    tmp = paths.root / ".best.tmp.weights.h5"
                    model.save_weights(str(tmp))
                    os.replace(tmp, paths.best_weights)
                    if stage == 2:
                        state.wait = 0
                elif stage == 2:
                    state.wait += 1
                state.epoch = epoch + 1
                state.optimizer_stage = stage
                state.train_seconds += seconds
                row = {
                    "epoch": epoch + 1,
                    "stage": stage,
                    "lr": lr,
                    "loss": logs.get("loss"),
                    "accuracy": logs.get("accuracy"),
                    "val_loss": logs.get("val_loss"),
                    "val_accuracy": logs.get("val_accuracy"),
                    "seconds": round(seconds, 2),
                    "best": best,
                }
                history.append(row)
                write_history(paths.history, history)
                save_checkpoint(paths, model, state)
                plot_curves(
                    history,
                    paths.curves,
                    f"{recipe.backbone} {recipe.img_size}px — {paths.root.name}",
                    recipe.head_epochs,
                )
                console.print(
                    f"epoch {epoch + 1:>3}/{recipe.epochs} [dim]s{stage}[/] "
                    f"lr {row['lr']:.2e}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}  "
                    f"val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}  "
                    f"{seconds:5.1f}s" + ("  [green]★ best[/]" if best else ""),
                    highlight=False,
                )
                if stage == 2 and state.wait >= recipe.patience:
                    console.print(
                        f"[yellow]early stop[/]: no {recipe.monitor} improvement "
                        f"for {state.wait} epochs; best epoch {state.best_epoch}",
                        highlight=False,
                    )
                    break
    except KeyboardInterrupt:
        raise TrainError(
            f"interrupted after epoch {state.epoch}",
            hint="Run the same command again to continue from there.",
        ) from None
    if skipped.paths:
        console.print(
            f"[yellow]skipped {len(skipped.paths)} undecodable image(s)[/]: "
            + ", ".join(Path(p).name for p in skipped.paths[:5]),
            highlight=False,
        )
    console.print(
        f"trained epochs {first + 1}..{state.epoch} in "
        f"{time.perf_counter() - started:.0f} s; best {recipe.monitor} "
        f"{state.best:.4f} at epoch {state.best_epoch}",
        highlight=False,
    )


# --- the end of a run: export, quantize, evaluate -------------------------------------------


def _summary_if_current(paths: RunPaths, state: TrainState) -> dict[str, Any] | None:
    """The existing summary when it describes the current best weights, else None."""
    if not paths.summary.is_file():
        return None
    with contextlib.suppress(OSError, json.JSONDecodeError):
        summary = json.loads(paths.summary.read_text(encoding="utf-8"))
        if (
            summary.get("best_epoch") == state.best_epoch
            and summary.get("epochs_run") == state.epoch
        ):
            return summary
    return None


def _model_stats(result: Any, path: Path) -> dict[str, Any]:
    d = result.to_dict()
    return {
        "path": path.name,
        "size_bytes": path.stat().st_size,
        "accuracy": d["accuracy"],
        "images": d["images"],
        "correct": d["correct"],
        "per_class": d["per_class"],
        "confusion": d["confusion"],
        "p50_ms": d["p50_inference_ms"],
        "mean_preprocess_ms": d["mean_preprocess_ms"],
        "threads": d["ort_threads"],
        "skipped": d["skipped"],
    }


def parity(
    keras_model: Any, onnx_path: Path, samples: list[Sample], img_size: int, resample: str
) -> float:
    """Largest |Keras - ONNX Runtime| probability over real images, same input tensor."""
    import onnxruntime as ort

    from ggctl.model.pipeline import SCALE, load_pixels

    batch = [
        p for p in (load_pixels(str(s.path), img_size, resample) for s in samples) if p is not None
    ]
    if not batch:
        return float("nan")
    x = np.stack(batch).astype(np.float32) * SCALE
    expected = np.asarray(keras_model(x, training=False), np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float(np.max(np.abs(got - expected)))


def finalize(
    data: Path,
    paths: RunPaths,
    recipe: Recipe,
    class_names: tuple[str, ...],
    state: TrainState,
    *,
    console: Console,
    progress: bool = True,
) -> dict[str, Any]:
    """Best weights → best.keras (float32) → model.onnx → model.int8.onnx; evaluate both."""
    from ggctl.model.backbones import build_classifier
    from ggctl.model.evaluate import evaluate_model
    from ggctl.model.export import export_model
    from ggctl.model.quantize import quantize_model

    if not paths.best_weights.is_file():
        raise TrainError(f"{paths.root} has no best weights yet; nothing to export")
    _, keras = _tensorflow()
    keras.mixed_precision.set_global_policy("float32")  # ONNX on CPU wants float32
    # Built without downloading: every weight is then read from the run's best epoch.
    model = build_classifier(
        recipe.backbone,
        recipe.img_size,
        len(class_names),
        weights="none",
        width=recipe.width,
        dropout=recipe.dropout,
    )
    model.load_weights(str(paths.best_weights))
    model.save(str(paths.best_model))
    name = f"{recipe.backbone}-{recipe.img_size}"
    description = (
        f"ggctl model train: {recipe.backbone} at {recipe.img_size}px, weights "
        f"{recipe.weights}, best epoch {state.best_epoch} of {state.epoch}"
    )
    with console.status("exporting to ONNX…"):
        exported = export_model(
            paths.best_model,
            paths.onnx,
            class_names=class_names,
            normalization="course",
            resample=recipe.resample,
            name=name,
            description=description,
        )
    evaluation = load_samples(data, "evaluation", num_classes=len(class_names))
    spread = evaluation[:: max(1, len(evaluation) // PARITY_IMAGES)][:PARITY_IMAGES]
    image_diff = parity(model, paths.onnx, spread, recipe.img_size, recipe.resample)
    with console.status("quantizing to int8…"):
        quant = quantize_model(
            paths.onnx,
            paths.int8,
            resolve_split_dir(data, "training"),
            max_images=recipe.calibration_images,
            threads=recipe.eval_threads,
            seed=recipe.seed,
        )
    results = {}
    for key, path, json_path in (
        ("fp32", paths.onnx, paths.eval_fp32),
        ("int8", paths.int8, paths.eval_int8),
    ):
        results[key] = _model_stats(
            evaluate_model(
                path,
                data,
                split="evaluation",
                ort_threads=recipe.eval_threads,
                progress=progress,
                console=console,
                json_path=json_path,
            ),
            path,
        )
    history = read_history(paths.history)
    best_row = next((r for r in history if r["epoch"] == state.best_epoch), {})
    summary = {
        "version": SUMMARY_VERSION,
        "run": paths.root.name,
        "run_dir": str(paths.root),
        "finished": _now(),
        "backbone": recipe.backbone,
        "img_size": recipe.img_size,
        "width": recipe.width,
        "weights": recipe.weights,
        "parameters": int(model.count_params()),
        "epochs_run": state.epoch,
        "epochs_planned": recipe.epochs,
        "best_epoch": state.best_epoch,
        "monitor": recipe.monitor,
        "best_monitor_value": state.best,
        "best_val_accuracy": best_row.get("val_accuracy"),
        "stopped_early": state.epoch < recipe.epochs,
        "train_seconds": state.train_seconds,
        "class_names": list(class_names),
        "fp32": results["fp32"],
        "int8": results["int8"],
        "int8_accuracy_drop": results["fp32"]["accuracy"] - results["int8"]["accuracy"],
        "export": {
            "max_abs_diff_random_input": exported.max_abs_diff,
            "max_abs_diff_evaluation_images": image_diff,
            "parity_images": len(spread),
            "meta": json.loads(exported.meta.to_json()),
        },
        "quantization": quant.to_dict(),
    }
    _write_json(paths.summary, summary)
    return summary
