"""Backbones `ggctl model train` fine-tunes, and the classifier built around them.

Every model built here takes NHWC RGB pixels scaled to [0, 1] — the course's input, which the
service produces from the ONNX metadata (scale 1/255, mean 0, std 1, bicubic resize). Each
backbone's own ImageNet preprocessing (caffe-style BGR mean subtraction for VGG16, [-1, 1]
for MobileNetV2, the built-in rescaling of the newer ones) is a layer *inside* the Keras
model, so it is exported with it and the service needs to know nothing about it. (The
models that carry their own preprocessing are built without it, and ours replaces it.)

The ImageNet top-1 figures are the ones Keras / TensorFlow publish for these weights
(keras.io/api/applications; tf.keras.applications.MobileNetV3Large). With the batch-1 p50
latency of each exported model in ONNX Runtime (one thread, 224 px, fp32; measured on a
shared 2-vCPU AMD EPYC VM): VGG16 337 ms, MobileNetV2 9.4 ms, MobileNetV3-Large 8.8 ms,
EfficientNetV2-B0 21.9 ms. MobileNetV3-Large dominates both course backbones; EfficientNetV2-B0
buys 3 more ImageNet points for 2.5x its CPU time and is the default, since accuracy is the
first problem this command addresses and 22 ms is still far below VGG16's cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ggctl.app.modelmeta import IMAGENET_MEAN, IMAGENET_STD
from ggctl.errors import GgctlError

# VGG16's caffe preprocessing: BGR order, ImageNet mean subtracted from 0..255 pixels.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Backbone:
    """One entry of the registry."""

    name: str
    keras_name: str  # the keras.applications constructor
    preprocessing: str  # "caffe" (VGG), "tf" ([-1, 1]) or "imagenet" (mean/std on [0, 1])
    imagenet_top1: float  # published top-1 of the Keras ImageNet weights
    has_width: bool = False  # takes the `alpha` width multiplier
    builtin_flag: bool = False  # has include_preprocessing (set False: ours replaces it)
    course: bool = False  # one of the course notebook's backbones
    note: str = ""


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "vgg16",
            "VGG16",
            "caffe",
            0.713,
            course=True,
            note="the course's default; ~340 ms per image on one CPU thread",
        ),
        Backbone(
            "mobilenetv2",
            "MobileNetV2",
            "tf",
            0.713,
            has_width=True,
            course=True,
            note="the course's light option; --width 0.35..1.4",
        ),
        Backbone(
            "mobilenetv3-large",
            "MobileNetV3Large",
            "tf",
            0.756,
            has_width=True,
            builtin_flag=True,
            note="fastest: as fast as MobileNetV2 (~9 ms) with 4 points more ImageNet top-1",
        ),
        Backbone(
            "efficientnetv2-b0",
            "EfficientNetV2B0",
            "imagenet",
            0.787,
            builtin_flag=True,
            note="the default: most accurate that converts, ~22 ms (15x faster than VGG16)",
        ),
    )
}
# Not offered: ConvNeXt-Tiny (81.3%) does not convert — tf2onnx 1.17 has no Erfc (its exact
# GELU) and leaves Keras 3's depthwise convolutions as StatefulPartitionedCall nodes, which
# ONNX Runtime cannot run; EfficientNetB0 (V1) always carries a Normalization layer, whose
# captured constants tf2onnx turns into graph inputs.
BACKBONE_NAMES = tuple(BACKBONES)


class BackboneError(GgctlError):
    """The backbone cannot be built (unknown name, weights not downloadable, ...)."""


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise BackboneError(
            f"unknown backbone {name!r}", hint=f"One of: {', '.join(BACKBONE_NAMES)}."
        ) from None


def preprocessing_layers(spec: Backbone) -> list[Any]:
    """Keras layers mapping [0, 1] RGB to what `spec`'s backbone expects.

    The per-channel maps (VGG16's channel swap and mean subtraction, ImageNet mean/std) are a
    frozen 1x1 convolution rather than Keras' Normalization layer: Normalization keeps its
    constants as captured tensors, which tf2onnx turns into extra graph inputs. The saved
    model holds only built-in layers and loads without custom objects; the convolution's
    weights are set by `build_classifier`.
    """
    import keras

    if spec.preprocessing == "tf":
        return [keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")]
    if spec.preprocessing in ("caffe", "imagenet"):
        return [keras.layers.Conv2D(3, 1, trainable=False, name=f"to_{spec.preprocessing}")]
    raise BackboneError(f"unknown preprocessing {spec.preprocessing!r}")


def affine_kernel(mode: str) -> tuple[Any, Any]:
    """(kernel, bias) of the 1x1 conv taking [0, 1] RGB to the backbone's input.

    caffe: out = 255 * in[::-1] - mean_bgr (VGG16's preprocess_input);
    imagenet: out = (in - mean) / std (the Normalization the newer Keras models carry).
    """
    import numpy as np

    kernel = np.zeros((1, 1, 3, 3), np.float32)
    if mode == "caffe":
        for out_c in range(3):
            kernel[0, 0, 2 - out_c, out_c] = 255.0
        return kernel, -np.asarray(CAFFE_MEAN_BGR, np.float32)
    mean, std = np.asarray(IMAGENET_MEAN, np.float64), np.asarray(IMAGENET_STD, np.float64)
    for c in range(3):
        kernel[0, 0, c, c] = 1.0 / std[c]
    return kernel, (-mean / std).astype(np.float32)


def add_preprocessing(spec: Backbone, x: Any) -> Any:
    """`x` ([0, 1] RGB) through `spec`'s preprocessing layers."""
    for layer in preprocessing_layers(spec):
        x = layer(x)
    return x


def set_preprocessing_weights(model: Any, spec: Backbone) -> None:
    """Load the fixed per-channel map into a model built with `add_preprocessing`."""
    if spec.preprocessing in ("caffe", "imagenet"):
        model.get_layer(f"to_{spec.preprocessing}").set_weights(
            list(affine_kernel(spec.preprocessing))
        )


def build_backbone(spec: Backbone, img_size: int, weights: str | None, width: float) -> Any:
    """The keras.applications model without its top, global-average pooled."""
    import keras

    kwargs: dict[str, Any] = {
        "include_top": False,
        "weights": weights,
        "input_shape": (img_size, img_size, 3),
        "pooling": "avg",
    }
    if spec.has_width:
        kwargs["alpha"] = width
    if spec.builtin_flag:
        kwargs["include_preprocessing"] = False  # done by preprocessing_layers
    constructor: Callable[..., Any] = getattr(keras.applications, spec.keras_name)
    try:
        base = constructor(**kwargs)
    except ValueError as exc:  # e.g. no ImageNet weights for this width
        raise BackboneError(f"cannot build {spec.name}: {exc}") from None
    except Exception as exc:  # downloads fail with URL/HTTP/OS errors
        if weights is None:
            raise
        raise BackboneError(
            f"could not get the ImageNet weights of {spec.name}: {exc}",
            hint="Keras downloads them to $KERAS_HOME/models (default ~/.keras/models); "
            "put the file there, or train from scratch with --weights none.",
        ) from None
    base.name = "backbone"
    return base


def build_classifier(
    backbone: str,
    img_size: int,
    num_classes: int,
    *,
    weights: str = "imagenet",
    width: float = 1.0,
    dropout: float = 0.2,
) -> Any:
    """Input [0, 1] RGB → backbone's preprocessing → backbone → dropout → softmax head.

    The head is float32 even under a mixed-precision policy, so the probabilities (and the
    loss) keep full precision.
    """
    import keras

    spec = get_backbone(backbone)
    inputs = keras.Input((img_size, img_size, 3), name="input")
    x = add_preprocessing(spec, inputs)
    base = build_backbone(spec, img_size, None if weights == "none" else weights, width)
    x = base(x)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
    model = keras.Model(inputs, outputs, name=f"ggctl_{spec.name.replace('-', '_')}")
    set_preprocessing_weights(model, spec)
    return model


def backbone_of(model: Any) -> Any:
    return model.get_layer("backbone")


def set_stage(
    model: Any, stage: int, unfreeze: float, bn_frozen: bool, bn_momentum: float | None = None
) -> int:
    """Make stage 1 (backbone frozen) or stage 2 (top `unfreeze` fraction trainable).

    Frozen batch-norm layers run in inference mode (Keras' rule for trainable=False), which
    keeps the pretrained statistics when fine-tuning on a small data set; batch-norm layers
    that train get `bn_momentum`. Returns the number of trainable backbone layers.
    """
    import keras

    base = backbone_of(model)
    if stage == 1:
        base.trainable = False
        return 0
    base.trainable = True
    layers = base.layers
    cut = len(layers) - max(1, round(unfreeze * len(layers)))
    trainable = 0
    for i, layer in enumerate(layers):
        on = i >= cut and not (bn_frozen and isinstance(layer, keras.layers.BatchNormalization))
        layer.trainable = on
        if on and bn_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
        trainable += bool(on and layer.weights)
    return trainable
