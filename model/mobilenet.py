"""A MobileNetV2-shaped classifier built directly as an ONNX graph, with random weights.

This is the built-in demo model: it has the layer structure and compute cost of the
MobileNetV2 that course users fine-tune (inverted residual blocks, depthwise 3x3 convs,
ReLU6, global average pool, a dense head), so serving and load-test figures measured with it
carry over to a real model. It is UNTRAINED — its weights are seeded random numbers and its
predictions are meaningless. Nothing is downloaded: the graph is written with onnx.helper.

Batch norm is left out on purpose: at inference it folds into the preceding conv's weights
and bias, so the exported graph of a trained MobileNetV2 has the same ops as this one.

Run `python -m ggctl.model.mobilenet -o demo.onnx` to write one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ggctl.app.modelmeta import FOOD11_CLASSES, ModelMeta
from ggctl.model.metadata import set_metadata

# (expansion t, output channels c, repeats n, first stride s) — Table 2 of the MobileNetV2
# paper (Sandler et al., 2018).
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

OPSET = 17
# IR 8 keeps the file loadable by every onnxruntime the package allows (>= 1.18).
IR_VERSION = 8
DEMO_NAME = "mobilenetv2-demo-untrained"
DEMO_DESCRIPTION = (
    "UNTRAINED demo model: a MobileNetV2-shaped network with random weights. "
    "Its predictions are meaningless; it exists only to measure serving cost "
    "(latency, throughput, memory) with the compute of a real MobileNetV2."
)
# Bump when the graph this module writes changes, so cached demo models are rebuilt.
BUILDER_VERSION = 1


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count the way MobileNetV2 does (to a multiple of 8, losing < 10%)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class GraphCost:
    """Size and compute of a built graph, counted layer by layer while building it."""

    parameters: int
    macs: int  # multiply-accumulates per image; FLOPs are about twice this

    @property
    def mflops(self) -> float:
        return 2 * self.macs / 1e6


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.params = 0
        self.macs = 0
        self._count = 0

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def _init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        self.params += array.size
        return name

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        k: int,
        stride: int,
        hw: int,
        *,
        groups: int = 1,
        act: bool = True,
    ) -> tuple[str, int]:
        """Conv (with folded-BN bias), optional ReLU6; returns (output name, output size)."""
        name = self._name("conv")
        fan_in = (cin // groups) * k * k
        # He init for layers followed by ReLU6, a smaller gain for the linear projections,
        # so activations neither vanish nor saturate through 17 blocks.
        gain = 2.0 if act else 1.0
        w = self.rng.normal(0.0, np.sqrt(gain / fan_in), (cout, cin // groups, k, k))
        b = self.rng.normal(0.0, 0.01, (cout,))
        pad = k // 2
        out_hw = (hw + 2 * pad - k) // stride + 1
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self._init(f"{name}.w", w), self._init(f"{name}.b", b)],
                [name],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad] * 4,
                group=groups,
                name=name,
            )
        )
        self.macs += out_hw * out_hw * cout * fan_in
        if not act:
            return name, out_hw
        relu = self._name("relu6")
        self.nodes.append(
            helper.make_node("Clip", [name, "clip_min", "clip_max"], [relu], name=relu)
        )
        return relu, out_hw

    def block(self, x: str, cin: int, cout: int, stride: int, t: int, hw: int) -> tuple[str, int]:
        hidden = cin * t
        y = x
        if t != 1:
            y, _ = self.conv(y, cin, hidden, 1, 1, hw)
        y, out_hw = self.conv(y, hidden, hidden, 3, stride, hw, groups=hidden)
        y, out_hw = self.conv(y, hidden, cout, 1, 1, out_hw, act=False)
        if stride == 1 and cin == cout:
            add = self._name("add")
            self.nodes.append(helper.make_node("Add", [x, y], [add], name=add))
            y = add
        return y, out_hw


def build_mobilenet_v2(
    resolution: int = 224,
    width: float = 1.0,
    num_classes: int = 11,
    seed: int = 0,
    class_names: tuple[str, ...] | None = None,
) -> tuple[onnx.ModelProto, GraphCost]:
    """Build the untrained MobileNetV2-shaped classifier as an ONNX model.

    Input `input`: float32 NHWC [N, resolution, resolution, 3], pixels scaled to [0, 1]
    (as a Keras model would take them); output `probabilities`: [N, num_classes] softmax.
    The same seed gives byte-identical weights. Returns the model and its cost.
    """
    if resolution < 32 or resolution % 32:
        raise ValueError(f"resolution must be a multiple of 32 and >= 32, not {resolution}")
    if not 0.1 <= width <= 2.0:
        raise ValueError(f"width multiplier must be in 0.1..2.0, not {width}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, not {num_classes}")
    if class_names is None:
        class_names = (
            FOOD11_CLASSES
            if num_classes == len(FOOD11_CLASSES)
            else tuple(f"class_{i}" for i in range(num_classes))
        )
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")

    b = _Builder(np.random.default_rng(seed))
    b.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "clip_min"))
    b.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "clip_max"))
    b.nodes.append(
        helper.make_node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2], name="to_nchw")
    )

    cin = make_divisible(32 * width)
    x, hw = b.conv("input_nchw", 3, cin, 3, 2, resolution)
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        cout = make_divisible(c * width)
        for i in range(n):
            x, hw = b.block(x, cin, cout, s if i == 0 else 1, t, hw)
            cin = cout
    last = make_divisible(1280 * max(1.0, width))
    x, hw = b.conv(x, cin, last, 1, 1, hw)

    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    b.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1, name="flatten"))
    head_w = b.rng.normal(0.0, np.sqrt(1.0 / last), (num_classes, last))
    head_b = np.zeros(num_classes)
    b.nodes.append(
        helper.make_node(
            "Gemm",
            ["features", b._init("head.w", head_w), b._init("head.b", head_b)],
            ["logits"],
            transB=1,
            name="head",
        )
    )
    b.macs += last * num_classes
    b.nodes.append(
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1, name="softmax")
    )

    graph = helper.make_graph(
        b.nodes,
        "mobilenetv2_demo",
        [
            helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["N", resolution, resolution, 3]
            )
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", num_classes])],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ggctl.model.mobilenet"
    )
    model.ir_version = IR_VERSION
    model.doc_string = DEMO_DESCRIPTION
    cost = GraphCost(parameters=b.params, macs=b.macs)
    meta = ModelMeta(
        class_names=tuple(class_names),
        input_height=resolution,
        input_width=resolution,
        layout="NHWC",
        scale=1.0 / 255.0,
        resample="bicubic",
        output="probabilities",
        name=DEMO_NAME,
        description=DEMO_DESCRIPTION,
        extra={
            "untrained": True,
            "architecture": "MobileNetV2",
            "width_multiplier": width,
            "seed": seed,
            "parameters": cost.parameters,
            "macs": cost.macs,
        },
    )
    set_metadata(model, meta)
    onnx.checker.check_model(model)
    return model, cost


def save_model_atomic(model: onnx.ModelProto, path: Path) -> Path:
    """Write `model` to `path` through a temporary file and os.replace.

    A reader (another worker, a concurrent `ggctl demo`) sees either no file or a whole one,
    never a half-written model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        # mkstemp makes the file 0600; a model mounted into a container that runs as
        # another user must stay readable.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def demo_model_filename(resolution: int = 224, width: float = 1.0, seed: int = 0) -> str:
    """Cache file name; it encodes every input of the build so a stale file is never reused."""
    return f"{DEMO_NAME}-v{BUILDER_VERSION}-r{resolution}-w{width:g}-s{seed}.onnx"


def ensure_demo_model(
    cache_dir: Path, resolution: int = 224, width: float = 1.0, seed: int = 0
) -> Path:
    """Path of the demo model in `cache_dir`, building it there once if it is missing."""
    path = Path(cache_dir) / demo_model_filename(resolution, width, seed)
    if path.is_file() and path.stat().st_size > 0:
        return path
    model, _ = build_mobilenet_v2(resolution=resolution, width=width, seed=seed)
    return save_model_atomic(model, path)


def main(argv: list[str] | None = None) -> int:
    """Script entry: write the demo model to -o PATH and print its cost."""
    parser = argparse.ArgumentParser(
        prog="python -m ggctl.model.mobilenet",
        description="Write the UNTRAINED MobileNetV2-shaped demo model (random weights).",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--resolution", type=int, default=224, help="input size (default 224)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    parser.add_argument("--num-classes", type=int, default=11, help="classes (default 11)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        model, cost = build_mobilenet_v2(args.resolution, args.width, args.num_classes, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    save_model_atomic(model, args.output)
    took = time.perf_counter() - start
    size_mb = args.output.stat().st_size / 1e6
    print(
        f"wrote {args.output} ({size_mb:.1f} MB, {cost.parameters / 1e6:.2f} M parameters, "
        f"{cost.mflops:.0f} MFLOPs/image) in {took:.1f} s — UNTRAINED, predictions meaningless"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
