"""The model behind the service: an ONNX Runtime session, its metadata, one classify call."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# onnxruntime >= 1.32 on Linux turns telemetry on by default: it writes files under $TMPDIR
# and $HOME, tries to upload events, and its exit handler aborts forked gunicorn workers
# (std::system_error at SIGTERM). The variable must be set before the import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort

from .cpus import available_cpus
from .modelmeta import MetadataError, ModelMeta, resolve_metadata
from .preprocess import DEFAULT_MAX_PIXELS, preprocess

TOP_K = 5


class ModelLoadError(RuntimeError):
    """The model file is missing, not ONNX, or not an image classifier we can serve."""


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    confidence: float
    inference_ms: float
    preprocess_ms: float
    top: list[tuple[str, float]]

    def as_json(self) -> dict[str, object]:
        return {
            "class": self.label,
            "index": self.index,
            "confidence": round(self.confidence, 6),
            "inference_ms": round(self.inference_ms, 3),
            "preprocess_ms": round(self.preprocess_ms, 3),
            "top": [[label, round(p, 6)] for label, p in self.top],
        }


def thread_layout(
    ort_threads: int = 0, max_inflight: int = 0, cpus: int | None = None
) -> tuple[int, int]:
    """(intra-op threads per inference, inferences in flight) for this process's CPUs.

    0 means "choose": two intra-op threads per inference where there are two CPUs or more
    (measured on 2 CPUs, bench/: 1-client p50 13.2 ms against 17.3 ms with one thread, for
    6 % less throughput at saturation), then as many inferences in flight as fill the CPUs.
    More threads per inference scale poorly on a MobileNet-sized graph, so more CPUs buy
    more concurrent inferences instead.
    """
    cpus = cpus or available_cpus()
    ort_threads = ort_threads or min(2, cpus)
    max_inflight = max_inflight or max(1, cpus // ort_threads)
    return ort_threads, max_inflight


def session_options(ort_threads: int, arena: bool = True) -> ort.SessionOptions:
    """ORT options for a serving process where several requests may run at once."""
    opts = ort.SessionOptions()
    # The CPU arena keeps the peak of every tensor size it served, for reuse; without it
    # each run allocates from the C heap (bench/pod_footprint.py measures both).
    opts.enable_cpu_mem_arena = arena
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = ort_threads
    opts.inter_op_num_threads = 1
    # Spinning intra-op threads burn the CPU that HTTP threads, JPEG decoding and the other
    # in-flight request need, and a pod's CPU quota with it: measured 2-thread p50 of 17-41 ms
    # with spinning against 5-10 ms without (bench/).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class Classifier:
    """A loaded model ready to classify image bytes; safe to call from many threads."""

    def __init__(
        self,
        model_path: Path | str,
        ort_threads: int = 0,
        max_inflight: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        arena: bool = True,
    ):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelLoadError(f"model file {self.path} does not exist")
        self.ort_threads, self.max_inflight = thread_layout(ort_threads, max_inflight)
        self.max_pixels = max_pixels
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=session_options(self.ort_threads, arena),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:
            raise ModelLoadError(f"{self.path} is not a loadable ONNX model: {exc}") from None
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelLoadError(f"expected a model with one image input, it has {len(inputs)}")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        out_shape = outputs[0].shape
        num_outputs = out_shape[-1] if out_shape and isinstance(out_shape[-1], int) else None
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.meta: ModelMeta = resolve_metadata(self.path, props, inputs[0].shape, num_outputs)
        except MetadataError as exc:
            raise ModelLoadError(f"{self.path}: {exc}") from None
        # Bounds the work in flight so that a burst queues for a core instead of all requests
        # sharing the cores and all finishing late.
        self._slots = threading.BoundedSemaphore(self.max_inflight)

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for a preprocessed batch."""
        with self._slots:
            out = self.session.run([self.output_name], {self.input_name: x})[0]
        out = np.asarray(out, dtype=np.float32).reshape(x.shape[0], -1)
        if self.meta.output == "logits":
            out = _softmax(out)
        return out

    def classify_bytes(self, data: bytes) -> Prediction:
        """Decode, preprocess and classify one photo."""
        t0 = time.perf_counter()
        x = preprocess(data, self.meta, self.max_pixels)
        t1 = time.perf_counter()
        probs = self.run_batch(x)[0]
        t2 = time.perf_counter()
        return self._prediction(probs, (t2 - t1) * 1e3, (t1 - t0) * 1e3)

    def _prediction(self, probs: np.ndarray, infer_ms: float, prep_ms: float) -> Prediction:
        k = min(TOP_K, probs.shape[0])
        order = np.argsort(probs)[::-1][:k]
        names = self.meta.class_names
        top = [(names[i], float(probs[i])) for i in order]
        best = int(order[0])
        return Prediction(best, names[best], float(probs[best]), infer_ms, prep_ms, top)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
