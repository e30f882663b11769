"""`ggctl model ...`: export, quantize, evaluate, choose, train, compare (model/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import rich_click as click

from ggctl.commands.base import choice_table, console, err_console, kv_table
from ggctl.errors import GgctlError


@click.group("model")
def model_group() -> None:
    """Export, quantize, evaluate and choose (fp32 or int8) ONNX classifiers; the demo model."""


def _floats3(text: str | None, flag: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise GgctlError(f"{flag} takes three comma-separated numbers (R,G,B), not {text!r}")
    return values  # type: ignore[return-value]


@model_group.command("export")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write.",
)
@click.option(
    "--framework",
    type=click.Choice(["keras", "torch"]),
    help="Source framework (default: from the file suffix).",
)
@click.option(
    "--class-names",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Class names: one per line, or a JSON list (default: Food-11's 11).",
)
@click.option("--input-size", help="Input size N or HxW (default: the model's, else 224).")
@click.option(
    "--normalization",
    help="course ([0,1], Keras default), imagenet (PyTorch default), raw (0..255) or tf ([-1,1]).",
)
@click.option("--mean", help="Per-channel mean R,G,B, applied after scaling.")
@click.option("--std", help="Per-channel std R,G,B.")
@click.option("--scale", type=float, help="Pixel scale factor (e.g. 0.00392 for 1/255).")
@click.option(
    "--resample",
    type=click.Choice(["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]),
    help="Resize filter (default: bicubic for Keras, bilinear for PyTorch).",
)
@click.option(
    "--output-kind",
    type=click.Choice(["probabilities", "logits"]),
    help="What the model outputs (default: detected).",
)
@click.option("--name", help="Model name shown by the service (default: the file's stem).")
@click.option("--description", default="", help="Free text stored with the model.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
def model_export(
    src: Path,
    out: Path,
    framework: str | None,
    class_names: Path | None,
    input_size: str | None,
    normalization: str | None,
    mean: str | None,
    std: str | None,
    scale: float | None,
    resample: str | None,
    output_kind: str | None,
    name: str | None,
    description: str,
    opset: int,
) -> None:
    """Export a Keras (.keras, .h5, SavedModel) or PyTorch (TorchScript, pickled) model."""
    from ggctl.model.export import export_model, parse_size, read_class_names

    report = export_model(
        src,
        out,
        framework=framework,
        class_names=read_class_names(class_names) if class_names else None,
        input_size=parse_size(input_size) if input_size else None,
        normalization=normalization,
        scale=scale,
        mean=_floats3(mean, "--mean"),
        std=_floats3(std, "--std"),
        resample=resample,
        output=output_kind,
        name=name,
        description=description,
        opset=opset,
    )
    m = report.meta
    console.print(
        kv_table(
            f"exported {report.framework} model",
            [
                ("output", report.output),
                ("size", f"{report.size_bytes / 1e6:.2f} MB"),
                ("input", f"{m.layout} {m.input_height}x{m.input_width}, {m.resample} resize"),
                ("normalisation", f"pixel*{m.scale:.6g}, mean {m.mean}, std {m.std}"),
                ("output", f"{m.output}, {m.num_classes} classes"),
                ("max |ORT - source|", f"{report.max_abs_diff:.3g} (random input)"),
                ("took", f"{report.seconds:.1f} s"),
            ],
        )
    )


@model_group.command("quantize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="int8 ONNX file to write.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of calibration images (default: synthetic images).",
)
@click.option(
    "--max-images", type=int, default=64, show_default=True, help="Calibration images used at most."
)
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="ORT intra-op threads for the latency comparison.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as JSON.",
)
def model_quantize(
    model: Path,
    out: Path,
    calibration: Path | None,
    max_images: int,
    threads: int,
    json_path: Path | None,
) -> None:
    """Quantize to int8 (static QDQ) and compare size, speed and top-1 with the fp32 model."""
    from ggctl.model.quantize import quantize_model

    with console.status("calibrating and quantizing…"):
        r = quantize_model(model, out, calibration, max_images=max_images, threads=threads)
    if json_path:
        json_path.write_text(r.to_json())
    console.print(
        kv_table(
            "int8 quantization (static, QDQ)",
            [
                ("output", r.output),
                (
                    "size",
                    f"{r.size_fp32_bytes / 1e6:.2f} MB → {r.size_int8_bytes / 1e6:.2f} MB "
                    f"({r.size_ratio:.1f}x smaller)",
                ),
                (
                    "p50 latency, batch 1",
                    f"fp32 {r.p50_fp32_ms:.2f} ms, int8 {r.p50_int8_ms:.2f} ms "
                    f"({r.threads} thread(s))",
                ),
                ("speed", r.verdict),
                ("top-1 agreement", f"{r.agreement:.1%} of {r.images} images"),
                ("calibration", r.calibration),
                ("cpu", f"{r.cpu} ({'with' if r.vnni else 'no'} VNNI)"),
            ],
        )
    )


@model_group.command("choose")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Food-11 layout folder for both accuracies (without it int8 is never chosen).",
)
@click.option(
    "--max-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Largest accepted accuracy drop of int8, in percentage points.",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the int8 model and choice.json (default: <model>.choice/ beside it).",
)
@click.option(
    "--int8",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compare with this int8 model instead of quantizing.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="ORT intra-op threads.")
def model_choose(
    model: Path,
    data: Path | None,
    max_drop: float,
    out: Path | None,
    int8: Path | None,
    threads: int,
) -> None:
    """fp32 or int8: int8 only where it measures faster here and loses at most --max-drop points."""
    from ggctl.model.select import choose_model

    out = out or model.with_name(model.stem + ".choice")
    with console.status("quantizing, measuring and evaluating fp32 and int8…"):
        c = choose_model(model, data, max_drop, out, threads, int8_path=int8)
    console.print(choice_table(c))
    console.print(f"[bold]{c.chosen}[/] chosen: {c.reason}", highlight=False)
    console.print(f"model to serve: {c.path}  (record: {out / 'choice.json'})", highlight=False)


@model_group.command("evaluate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Food-11 layout folder: <class>_<n>.jpg files, or split subfolders.",
)
@click.option(
    "--split",
    type=click.Choice(["training", "validation", "evaluation"]),
    help="Split folder to use (default: evaluation when present).",
)
@click.option("--limit", type=int, help="Evaluate an evenly spread subset of this many images.")
@click.option("--threads", type=int, default=1, show_default=True, help="ORT intra-op threads.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JSON.",
)
def model_evaluate(
    model: Path,
    data: Path,
    split: str | None,
    limit: int | None,
    threads: int,
    json_path: Path | None,
) -> None:
    """Accuracy, per-class accuracy, confusion matrix and latency on Food-11 images."""
    from rich.table import Table

    from ggctl.model.evaluate import evaluate_model

    r = evaluate_model(
        model,
        data,
        split=split,
        limit=limit,
        ort_threads=threads,
        console=console,
        json_path=json_path,
    )
    if r.description:
        console.print(f"[dim]{r.model_name}: {r.description}[/]", highlight=False)
    per_class = Table(
        title=f"accuracy {r.accuracy:.2%} ({r.correct}/{r.images}), mean "
        f"latency {r.mean_latency_ms:.1f} ms (preprocess "
        f"{r.mean_preprocess_ms:.1f} + inference "
        f"{r.mean_inference_ms:.1f})",
        title_justify="left",
    )
    for col in ("#", "class", "images", "correct", "accuracy"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for c in r.per_class:
        per_class.add_row(
            str(c.index),
            c.name,
            str(c.images),
            str(c.correct),
            f"{c.accuracy:.1%}" if c.images else "—",
        )
    console.print(per_class)
    confusion = Table(
        title="confusion matrix (rows: true class, columns: predicted)", title_justify="left"
    )
    confusion.add_column("")
    for i in range(len(r.class_names)):
        confusion.add_column(str(i), justify="right")
    for i, row in enumerate(r.confusion):
        confusion.add_row(
            str(i), *(f"[bold]{v}[/]" if i == j else str(v or "·") for j, v in enumerate(row))
        )
    console.print(confusion)
    if r.skipped:
        err_console.print(
            f"[yellow]skipped {len(r.skipped)} undecodable image(s)[/]: "
            + ", ".join(Path(p).name for p in r.skipped[:5]),
            highlight=False,
        )


@model_group.command("build-demo")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX file to write.",
)
@click.option("--resolution", type=int, default=224, show_default=True, help="Input size.")
@click.option("--width", type=float, default=1.0, show_default=True, help="Width multiplier.")
@click.option("--seed", type=int, default=0, show_default=True, help="Weight seed.")
def model_build_demo(out: Path, resolution: int, width: float, seed: int) -> None:
    """Write the UNTRAINED MobileNetV2-shaped demo model (random weights, meaningless output)."""
    from ggctl.model.mobilenet import build_mobilenet_v2, save_model_atomic

    try:
        model, cost = build_mobilenet_v2(resolution=resolution, width=width, seed=seed)
    except ValueError as exc:
        raise GgctlError(str(exc)) from None
    save_model_atomic(model, out)
    console.print(
        kv_table(
            "demo model (UNTRAINED: predictions are meaningless)",
            [
                ("output", str(out)),
                ("size", f"{out.stat().st_size / 1e6:.2f} MB"),
                ("parameters", f"{cost.parameters / 1e6:.2f} M"),
                (
                    "compute",
                    f"{cost.macs / 1e6:.0f} M multiply-adds ({cost.mflops:.0f} MFLOPs) per image",
                ),
                ("input", f"NHWC {resolution}x{resolution}, pixels scaled to [0, 1]"),
            ],
        )
    )


def _recipe_options(f: Any) -> Any:
    from ggctl.model.recipe import click_options

    for option in reversed(click_options()):
        f = option(f)
    return f


@model_group.command("train")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Food-11 folder: training/, validation/, evaluation/ of <class>_<n>.jpg.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (default: runs/<backbone>-<img-size>); rerun to resume.",
)
@click.option(
    "--class-names",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Class names: one per line, or a JSON list (default: Food-11's 11).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars (for log files).")
@_recipe_options
def model_train(
    data: Path, out: Path | None, class_names: Path | None, no_progress: bool, **flags: Any
) -> None:
    """Fine-tune a backbone on Food-11, then export ONNX + int8 and evaluate both (resumable)."""
    from ggctl.model.compare import overview_table
    from ggctl.model.export import read_class_names
    from ggctl.model.recipe import default_run_dir, given
    from ggctl.model.train import train

    overrides = given(flags)
    outcome = train(
        data,
        out or default_run_dir(overrides),
        overrides,
        class_names=read_class_names(class_names) if class_names else None,
        console=console,
        progress=not no_progress,
    )
    if outcome.summary:
        console.print(overview_table([outcome.summary]))
    console.print(f"run directory: {outcome.run_dir}", highlight=False)


@model_group.command("compare")
@click.argument(
    "runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def model_compare(runs: tuple[Path, ...]) -> None:
    """Accuracy (fp32, int8), p50 latency and size of `ggctl model train` runs, side by side."""
    from ggctl.model.compare import compare_tables

    for table in compare_tables(list(runs)):
        console.print(table)
