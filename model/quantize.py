"""Static int8 quantization (QDQ) with ONNX Runtime, and an honest before/after report.

Measured on AVX2 CPUs without VNNI (this machine, and Chameleon's Haswell m1 hosts): static
QDQ int8 ran MobileNetV2 at the same speed as fp32 or up to ~19% slower, and dynamic int8 was
~5x slower; only the file got 4x smaller. So the report states measured latencies of both
models at batch 1 on the same threads, and calls int8 faster only when it measured faster.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from ggctl.app.inference import Classifier
from ggctl.app.preprocess import ImageError, preprocess
from ggctl.errors import GgctlError
from ggctl.model.dataset import list_images
from ggctl.model.metadata import clean_extra, set_metadata
from ggctl.model.mobilenet import save_model_atomic

DEFAULT_MAX_IMAGES = 64
# Within this relative difference two p50s are reported as equal: run-to-run noise on a
# shared 2-core machine is of this order.
SAME_SPEED = 0.05


class QuantizeError(GgctlError):
    """Quantization could not run; the message says why."""


@dataclass(frozen=True)
class QuantizeReport:
    """Size, latency and agreement of the int8 model against its fp32 source."""

    source: str
    output: str
    size_fp32_bytes: int
    size_int8_bytes: int
    p50_fp32_ms: float
    p50_int8_ms: float
    threads: int
    agreement: float  # fraction of images with the same top-1 class in both models
    images: int
    calibration: str  # "N images from DIR" or "N synthetic images"
    cpu: str
    vnni: bool
    seconds: float

    @property
    def size_ratio(self) -> float:
        return self.size_fp32_bytes / max(self.size_int8_bytes, 1)

    @property
    def speed_ratio(self) -> float:
        """fp32 p50 / int8 p50: above 1 means int8 measured faster."""
        return self.p50_fp32_ms / self.p50_int8_ms if self.p50_int8_ms > 0 else float("nan")

    @property
    def verdict(self) -> str:
        """One sentence on speed that claims only what the measurement shows."""
        r = self.speed_ratio
        if r > 1 + SAME_SPEED:
            return f"int8 measured {r:.2f}x faster than fp32 here (p50, batch 1)"
        if r < 1 - SAME_SPEED:
            return f"int8 measured {1 / r:.2f}x slower than fp32 here (p50, batch 1)"
        return "int8 and fp32 measured the same speed here (within 5%)"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(size_ratio=self.size_ratio, speed_ratio=self.speed_ratio, verdict=self.verdict)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def cpu_description() -> tuple[str, bool]:
    """CPU model name and whether it has VNNI (the int8 dot-product instructions)."""
    name, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = line.split(":", 1)[1]
                if name and flags:
                    break
    except OSError:
        pass
    return name, any(f in flags.split() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _synthetic_images(n: int, size: tuple[int, int], seed: int) -> list[bytes]:
    from ggctl.model.synthetic import encode, photo

    return [encode(photo(size, seed=seed + i)) for i in range(n)]


def _load_inputs(
    meta, calibration_dir: Path | None, max_images: int, seed: int
) -> tuple[list[np.ndarray], str]:
    if calibration_dir is None:
        size = (max(meta.input_width, 64) * 2, max(meta.input_height, 64) * 2)
        blobs = _synthetic_images(max_images, size, seed)
        source = f"{len(blobs)} synthetic images (no --calibration DIR)"
    else:
        paths = list_images(Path(calibration_dir), limit=max_images)
        blobs = [p.read_bytes() for p in paths]
        source = f"{len(blobs)} images from {calibration_dir}"
    inputs: list[np.ndarray] = []
    for blob in blobs:
        try:
            inputs.append(preprocess(blob, meta))
        except ImageError:
            continue  # an unreadable file is not worth failing a calibration over
    if not inputs:
        raise QuantizeError(f"none of the calibration images could be decoded ({source})")
    return inputs, source


class _Reader:
    """ORT's CalibrationDataReader protocol over preprocessed batches of one."""

    def __init__(self, name: str, inputs: Sequence[np.ndarray]):
        self._it: Iterator[np.ndarray] = iter(inputs)
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self) -> None:  # pragma: no cover - only some ORT versions call it
        pass


def _session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def p50_latencies(
    paths: Sequence[Path], x: np.ndarray, threads: int, runs: int = 30, warmup: int = 5
) -> list[float]:
    """Batch-1 p50 latency (ms) of each model on input `x`, runs interleaved.

    Interleaving makes both models see the same background load, so a busy neighbour
    slows both rather than biasing the comparison.
    """
    sessions = [_session(p, threads) for p in paths]
    names = [s.get_inputs()[0].name for s in sessions]
    for s, n in zip(sessions, names, strict=True):
        for _ in range(warmup):
            s.run(None, {n: x})
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for i, (s, n) in enumerate(zip(sessions, names, strict=True)):
            t = time.perf_counter()
            s.run(None, {n: x})
            times[i].append((time.perf_counter() - t) * 1e3)
    return [float(np.median(t)) for t in times]


def _preprocess_for_quantization(src: Path, dst: Path) -> Path:
    """ORT's recommended pre-pass (graph optimisation, shape inference); `src` if unavailable."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:  # needs sympy, which onnxruntime no longer pulls in
        return src
    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except Exception:
        return src
    return dst


def quantize_model(
    model_path: Path,
    output_path: Path,
    calibration_dir: Path | None = None,
    *,
    max_images: int = DEFAULT_MAX_IMAGES,
    threads: int = 1,
    per_channel: bool = True,
    runs: int = 30,
    seed: int = 0,
) -> QuantizeReport:
    """Quantize `model_path` to int8 (static, QDQ) into `output_path` and measure both.

    Calibration uses up to `max_images` images under `calibration_dir` (any names,
    recursively), or synthetic photos when it is None; the same images measure top-1
    agreement between the two models. Latency is the p50 at batch 1 with `threads` intra-op
    threads for both models. The ggctl metadata of the source is carried over.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    start = time.perf_counter()
    model_path, output_path = Path(model_path), Path(output_path)
    if model_path.resolve() == output_path.resolve():
        raise QuantizeError("the output would overwrite the fp32 model; choose another -o path")
    try:
        fp32 = Classifier(model_path, ort_threads=threads, max_inflight=1)
    except Exception as exc:
        raise QuantizeError(f"cannot load {model_path}: {exc}") from None
    meta = fp32.meta
    inputs, source = _load_inputs(meta, calibration_dir, max_images, seed)

    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess_for_quantization(model_path, Path(tmp) / "prepared.onnx")
        staged = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(prepared),
                str(staged),
                _Reader(fp32.input_name, inputs),
                quant_format=QuantFormat.QDQ,
                # u8 activations with s8 weights is ORT's fast path on x86 CPUs.
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as exc:
            raise QuantizeError(f"ONNX Runtime could not quantize {model_path}: {exc}") from None
        quantized = onnx.load(str(staged))
        # The quantizer copies metadata_props only in some versions; the service needs them.
        source_meta = {
            p.key: p.value
            for p in onnx.load(str(model_path), load_external_data=False).metadata_props
        }
        for key, value in source_meta.items():
            if key not in {p.key for p in quantized.metadata_props}:
                quantized.metadata_props.add(key=key, value=value)
        extra = clean_extra(meta.extra)
        extra["quantization"] = "static QDQ int8 (u8 activations, s8 weights)"
        set_metadata(quantized, replace(meta, name=f"{meta.name}-int8", extra=extra))
        save_model_atomic(quantized, output_path)

    int8 = Classifier(output_path, ort_threads=threads, max_inflight=1)
    # One image at a time: an exported model may fix its batch size to 1.
    agree = np.array([fp32.run_batch(x).argmax() == int8.run_batch(x).argmax() for x in inputs])
    p50_fp32, p50_int8 = p50_latencies([model_path, output_path], inputs[0], threads, runs)
    cpu, vnni = cpu_description()
    return QuantizeReport(
        source=str(model_path),
        output=str(output_path),
        size_fp32_bytes=model_path.stat().st_size,
        size_int8_bytes=output_path.stat().st_size,
        p50_fp32_ms=p50_fp32,
        p50_int8_ms=p50_int8,
        threads=threads,
        agreement=float(agree.mean()),
        images=len(inputs),
        calibration=source,
        cpu=cpu,
        vnni=vnni,
        seconds=time.perf_counter() - start,
    )
