"""What the service needs to know about a model, read from the ONNX file, a sidecar or defaults.

Precedence: the JSON under the ONNX metadata key `ggctl.meta`, then a sidecar JSON file
(`model.onnx.json` or `model.json` beside the model), then the course's defaults (224x224,
RGB scaled to [0, 1], bicubic resize, the 11 Food-11 classes). Shape facts the graph itself
states (layout, a fixed input size) fill whatever the metadata leaves out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

METADATA_KEY = "ggctl.meta"

FOOD11_CLASSES: tuple[str, ...] = (
    "Bread",
    "Dairy product",
    "Dessert",
    "Egg",
    "Fried food",
    "Meat",
    "Noodles/Pasta",
    "Rice",
    "Seafood",
    "Soup",
    "Vegetable/Fruit",
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESAMPLE_NAMES = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class MetadataError(ValueError):
    """The model's metadata is present but unusable; the message says which field and why."""


@dataclass(frozen=True)
class ModelMeta:
    """Preprocessing and labelling contract of one classifier.

    Pixels are transformed as ((pixel * scale) - mean) / std, per RGB channel.
    """

    class_names: tuple[str, ...] = FOOD11_CLASSES
    input_height: int = 224
    input_width: int = 224
    layout: str = "NHWC"  # NHWC (Keras) or NCHW (PyTorch)
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    resample: str = "bicubic"
    output: str = "probabilities"  # or "logits": the service applies softmax
    name: str = "model"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.layout not in ("NHWC", "NCHW"):
            raise MetadataError(f"layout must be NHWC or NCHW, not {self.layout!r}")
        if self.resample not in RESAMPLE_NAMES:
            raise MetadataError(f"resample must be one of {RESAMPLE_NAMES}, not {self.resample!r}")
        if self.output not in ("probabilities", "logits"):
            raise MetadataError(f"output must be probabilities or logits, not {self.output!r}")
        if not (8 <= self.input_height <= 4096 and 8 <= self.input_width <= 4096):
            raise MetadataError(
                f"input size {self.input_height}x{self.input_width} is outside 8..4096"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s == 0 for s in self.std):
            raise MetadataError("mean and std need three values each, std non-zero")
        if not self.class_names:
            raise MetadataError("class_names is empty")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        if not data["extra"]:
            del data["extra"]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], base: ModelMeta | None = None) -> ModelMeta:
        """Overlay the known keys of `data` on `base` (default: the course's defaults)."""
        base = base or cls()
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        unknown = {k: v for k, v in data.items() if k not in known and k != "extra"}
        if isinstance(data.get("extra"), dict):  # to_json() writes extras under "extra"
            unknown = {**data["extra"], **unknown}
        kwargs: dict[str, Any] = {}
        try:
            for key in known & data.keys():
                value = data[key]
                if key in ("class_names", "mean", "std"):
                    value = tuple(value)
                    if key != "class_names":
                        value = tuple(float(v) for v in value)
                    else:
                        value = tuple(str(v) for v in value)
                elif key in ("input_height", "input_width"):
                    value = int(value)
                elif key == "scale":
                    value = float(value)
                kwargs[key] = value
            if "input_size" in unknown:  # accept the common [H, W] shorthand
                h, w = unknown.pop("input_size")
                kwargs.setdefault("input_height", int(h))
                kwargs.setdefault("input_width", int(w))
            return replace(base, **kwargs, extra={**base.extra, **unknown})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MetadataError):
                raise
            raise MetadataError(f"bad model metadata: {exc}") from None

    @classmethod
    def imagenet(cls, **kw: Any) -> ModelMeta:
        """Metadata for a model trained with torchvision's ImageNet normalisation."""
        return cls(mean=IMAGENET_MEAN, std=IMAGENET_STD, **kw)


def sidecar_paths(model_path: Path) -> list[Path]:
    return [model_path.with_name(model_path.name + ".json"), model_path.with_suffix(".json")]


def embedded_metadata(props: dict[str, str]) -> dict[str, Any] | None:
    """The `ggctl.meta` JSON from an ONNX model's metadata_props (custom_metadata_map)."""
    raw = props.get(METADATA_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"metadata key {METADATA_KEY} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MetadataError(f"metadata key {METADATA_KEY} must hold a JSON object")
    return data


def shape_facts(input_shape: list[Any]) -> dict[str, Any]:
    """Layout and fixed size that an input shape like [N, 224, 224, 3] or [1, 3, H, W] states."""
    if len(input_shape) != 4:
        raise MetadataError(
            f"expected a 4-D image input, the model's input has shape {input_shape}"
        )
    facts: dict[str, Any] = {}
    if input_shape[3] == 3 and input_shape[1] != 3:
        facts["layout"], hw = "NHWC", input_shape[1:3]
    elif input_shape[1] == 3:
        facts["layout"], hw = "NCHW", input_shape[2:4]
    else:
        raise MetadataError(f"cannot tell the channel axis of input shape {input_shape}")
    if all(isinstance(d, int) and d > 0 for d in hw):
        facts["input_height"], facts["input_width"] = hw
    return facts


def resolve_metadata(
    model_path: Path, props: dict[str, str], input_shape: list[Any], num_outputs: int | None
) -> ModelMeta:
    """Combine graph facts, embedded metadata, sidecar and defaults into one ModelMeta."""
    meta = ModelMeta.from_mapping(shape_facts(input_shape))
    data = embedded_metadata(props)
    source = "onnx metadata"
    if data is None:
        for side in sidecar_paths(model_path):
            if side.is_file():
                try:
                    data = json.loads(side.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise MetadataError(f"sidecar {side} is not readable JSON: {exc}") from None
                source = f"sidecar {side.name}"
                break
    if data is not None:
        meta = ModelMeta.from_mapping(data, base=meta)
    else:
        source = "course defaults"
    if num_outputs is not None and num_outputs != meta.num_classes:
        raise MetadataError(
            f"the model outputs {num_outputs} scores but its labels ({source}) name "
            f"{meta.num_classes} classes"
        )
    return replace(meta, extra={**meta.extra, "metadata_source": source})
