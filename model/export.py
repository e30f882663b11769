"""Export a trained Keras or PyTorch classifier to ONNX, with ggctl's metadata embedded.

Keras (`.keras`, `.h5`, or a SavedModel folder) goes through tf2onnx's `from_function` over
a `tf.function` with a fixed input signature: tf2onnx 1.17's `from_keras` fails on Keras 3
models, while this path matches Keras to ~1e-8. PyTorch (a TorchScript file or a whole
pickled module) goes through torch.onnx's TorchScript exporter. Both converters are optional
extras; serving never needs them.

Every export is checked: the ONNX model runs in ONNX Runtime on random input and is compared
with the framework's own output, and the report says how far apart they are.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from ggctl.app.modelmeta import IMAGENET_MEAN, IMAGENET_STD, ModelMeta
from ggctl.errors import GgctlError
from ggctl.model.metadata import set_metadata
from ggctl.model.mobilenet import save_model_atomic

OPSET = 17
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".pkl")

# Named normalisations: (scale, mean, std).
NORMALIZATIONS: dict[str, tuple[float, tuple[float, ...], tuple[float, ...]]] = {
    "course": (1.0 / 255.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # Keras course model: [0, 1]
    "imagenet": (1.0 / 255.0, IMAGENET_MEAN, IMAGENET_STD),  # torchvision
    "raw": (1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # 0..255, model normalises itself
    "tf": (2.0 / 255.0, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),  # keras mobilenet_v2 preprocess_input
}


class ExportError(GgctlError):
    """The source model cannot be exported; the message says why."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely ONNX Runtime reproduces the source model."""

    source: str
    output: str
    framework: str
    meta: ModelMeta
    max_abs_diff: float
    seconds: float
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "output": self.output,
            "framework": self.framework,
            "meta": json.loads(self.meta.to_json()),
            "max_abs_diff": self.max_abs_diff,
            "seconds": round(self.seconds, 3),
            "size_bytes": self.size_bytes,
        }


def detect_framework(src: Path) -> str:
    """`keras` or `torch`, from the file suffix or a SavedModel folder's saved_model.pb."""
    src = Path(src)
    if src.is_dir():
        if (src / "saved_model.pb").is_file():
            return "keras"
        raise ExportError(f"{src} is a folder without saved_model.pb, so not a SavedModel")
    suffix = src.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    raise ExportError(
        f"cannot tell the framework of {src.name} from its suffix",
        hint=f"Keras: {', '.join(KERAS_SUFFIXES)} or a SavedModel folder; PyTorch: "
        f"{', '.join(TORCH_SUFFIXES)}; or pass --framework keras|torch.",
    )


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names from a JSON list or a text file with one name per line."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise ExportError(f"{path} holds JSON that is not a list of class names")
        names = data
    if not names:
        raise ExportError(f"{path} names no classes")
    return tuple(names)


def parse_size(text: str) -> tuple[int, int]:
    """`224` or `224x192` (height x width) → (height, width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise ExportError(f"input size {text!r} is not N or HxW") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 8:
        raise ExportError(f"input size {text!r} is not N or HxW with sides of at least 8")
    return parts[0], parts[1]


def _missing_extra(extra: str, what: str, exc: ImportError) -> ExportError:
    return ExportError(
        f"exporting a {what} model needs the `{extra}` extra ({exc.name or exc} is not installed)",
        hint=f"pip install 'ggctl[{extra}]'",
    )


# --- Keras -------------------------------------------------------------------------------


def _keras_export(src: Path, size: tuple[int, int] | None, opset: int):
    """Convert; returns (onnx model, (H, W), a callable running the source on NHWC arrays)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as exc:
        raise _missing_extra("tensorflow", "Keras", exc) from None

    if src.is_dir():
        loaded = tf.saved_model.load(str(src))
        sig = loaded.signatures.get("serving_default")
        if sig is None:
            raise ExportError(f"SavedModel {src} has no serving_default signature")
        ((arg_name, spec),) = sig.structured_input_signature[1].items()
        out_key = sorted(sig.structured_outputs)[0]
        shape = list(spec.shape)

        def call(x):
            return sig(**{arg_name: x})[out_key]
    else:
        import keras

        try:
            model = keras.models.load_model(str(src), compile=False)
        except Exception as exc:
            raise ExportError(f"Keras cannot load {src}: {exc}") from None
        shape = list(model.inputs[0].shape)

        def call(x):
            return model(x, training=False)

    if len(shape) != 4 or shape[-1] != 3:
        raise ExportError(f"expected an NHWC RGB image input [N, H, W, 3], the model takes {shape}")
    if size is None:
        if shape[1] is None or shape[2] is None:
            raise ExportError(
                "the model does not fix its input size",
                hint="Pass --input-size, e.g. --input-size 224.",
            )
        size = (int(shape[1]), int(shape[2]))
    # A fixed H, W (only the batch free) is what makes from_function work on Keras 3.
    signature = [tf.TensorSpec([None, size[0], size[1], 3], tf.float32, name="input")]
    function = tf.function(call, input_signature=signature)
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset)
    except Exception as exc:
        raise ExportError(f"tf2onnx could not convert {src}: {exc}") from None

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(call(tf.constant(x)))

    return proto, size, run


# --- PyTorch -----------------------------------------------------------------------------


def _torch_export(src: Path, size: tuple[int, int] | None, opset: int):
    try:
        import torch
    except ImportError as exc:
        raise _missing_extra("torch", "PyTorch", exc) from None

    try:
        with warnings.catch_warnings():
            # TorchScript files are what users have today, deprecated or not.
            warnings.filterwarnings(
                "ignore", r"`torch\.jit\.load` is deprecated", DeprecationWarning
            )
            module = torch.jit.load(str(src), map_location="cpu")
    except Exception:
        try:
            # Unpickling runs code from the file: only export models you trust.
            module = torch.load(str(src), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ExportError(
                f"{src} is neither TorchScript nor a pickled torch module: {exc}"
            ) from None
    if isinstance(module, dict):
        raise ExportError(
            f"{src} holds a state_dict (weights only), not a model",
            # TorchScript files are still read, but not recommended: torch deprecates them.
            hint="Save the whole model, not only its weights: torch.save(model, 'model.pt').",
        )
    if not isinstance(module, torch.nn.Module):
        raise ExportError(f"{src} holds a {type(module).__name__}, not a torch.nn.Module")
    module.eval()
    size = size or (224, 224)
    dummy = torch.zeros(1, 3, size[0], size[1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            # The TorchScript exporter takes both ScriptModules and eager modules; the dynamo
            # exporter (torch's new default) refuses ScriptModules. Its deprecation warnings
            # (the legacy exporter's, and those of the torch.jit calls it makes) are about that
            # deliberate choice, so they are not shown to users; any other still is.
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore",
                    "You are using the legacy TorchScript-based ONNX export",
                    DeprecationWarning,
                )
                warnings.filterwarnings(
                    "ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning
                )
                warnings.filterwarnings(  # its verbose logging switch, inside the exporter
                    "ignore", "The feature will be removed", DeprecationWarning, r"torch\.onnx\."
                )
                warnings.filterwarnings("ignore", message="no signature found")
                torch.onnx.export(
                    module,
                    (dummy,),
                    str(path),
                    input_names=["input"],
                    output_names=["output"],
                    dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                    opset_version=opset,
                    dynamo=False,
                )
        except Exception as exc:
            raise ExportError(f"torch.onnx could not export {src}: {exc}") from None
        proto = onnx.load(str(path))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.from_numpy(x))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.numpy()

    return proto, size, run


# --- both ----------------------------------------------------------------------------------


def _looks_like_probabilities(out: np.ndarray) -> bool:
    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def export_model(
    src: Path,
    out: Path,
    *,
    framework: str | None = None,
    class_names: tuple[str, ...] | None = None,
    input_size: tuple[int, int] | None = None,
    normalization: str | None = None,
    scale: float | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    resample: str | None = None,
    output: str | None = None,
    name: str | None = None,
    description: str = "",
    opset: int = OPSET,
    seed: int = 0,
) -> ExportReport:
    """Export `src` to the ONNX file `out` with ModelMeta embedded, and verify it in ORT.

    Defaults: Keras models take NHWC pixels scaled to [0, 1] (the course's preprocessing);
    PyTorch models NCHW with ImageNet mean/std and bilinear resize (torchvision's). The
    output kind (probabilities or logits) is detected from the model's outputs unless given.
    """
    start = time.perf_counter()
    src, out = Path(src), Path(out)
    if not src.exists():
        raise ExportError(f"source model {src} does not exist")
    framework = framework or detect_framework(src)
    if framework == "keras":
        proto, size, run = _keras_export(src, input_size, opset)
        layout, default_norm, default_resample = "NHWC", "course", "bicubic"
    elif framework == "torch":
        proto, size, run = _torch_export(src, input_size, opset)
        layout, default_norm, default_resample = "NCHW", "imagenet", "bilinear"
    else:
        raise ExportError(f"unknown framework {framework!r}; use keras or torch")

    norm = normalization or default_norm
    if norm not in NORMALIZATIONS:
        raise ExportError(f"unknown normalisation {norm!r}; one of {', '.join(NORMALIZATIONS)}")
    n_scale, n_mean, n_std = NORMALIZATIONS[norm]

    shape = (2, size[0], size[1], 3) if layout == "NHWC" else (2, 3, size[0], size[1])
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    expected = np.asarray(run(x), dtype=np.float32).reshape(2, -1)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0].reshape(2, -1)
    max_abs_diff = float(np.max(np.abs(got - expected)))

    num_classes = got.shape[1]
    if class_names is None:
        from ggctl.app.modelmeta import FOOD11_CLASSES

        if num_classes != len(FOOD11_CLASSES):
            raise ExportError(
                f"the model outputs {num_classes} scores, not Food-11's 11 classes",
                hint="Pass --class-names FILE (one name per line, or a JSON list).",
            )
        class_names = FOOD11_CLASSES
    if len(class_names) != num_classes:
        raise ExportError(
            f"{len(class_names)} class names given, the model outputs {num_classes} scores"
        )

    meta = ModelMeta(
        class_names=tuple(class_names),
        input_height=size[0],
        input_width=size[1],
        layout=layout,
        scale=n_scale,
        mean=tuple(n_mean),
        std=tuple(n_std),
        resample=default_resample,
        output="probabilities" if _looks_like_probabilities(got) else "logits",
        name=name or src.stem,
        description=description,
    )
    overrides: dict[str, Any] = {
        "scale": scale,
        "mean": mean,
        "std": std,
        "resample": resample,
        "output": output,
    }
    meta = replace(
        meta,
        **{
            k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
        },
    )
    set_metadata(proto, meta)
    save_model_atomic(proto, out)
    return ExportReport(
        str(src),
        str(out),
        framework,
        meta,
        max_abs_diff,
        time.perf_counter() - start,
        out.stat().st_size,
    )
