"""Static QDQ int8: smaller file, metadata kept, a report that claims only what it measured."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ggctl.app.inference import Classifier
from ggctl.app.modelmeta import ModelMeta
from ggctl.cli import cli
from ggctl.model.metadata import read_metadata, set_metadata
from ggctl.model.mobilenet import ensure_demo_model
from ggctl.model.quantize import QuantizeError, QuantizeReport, quantize_model

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 210)}


def colour_model(path: Path) -> Path:
    """Dominant colour classifier: 1x1 conv (identity) → global mean → logits."""
    w = (np.eye(3, dtype=np.float32) * 20).reshape(3, 3, 1, 1)
    nodes = [
        helper.make_node("Transpose", ["input"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["y"], ["p"]),
        helper.make_node("Flatten", ["p"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_metadata(
        model,
        ModelMeta(
            class_names=tuple(COLOURS),
            input_height=32,
            input_width=32,
            output="logits",
            name="colour",
        ),
    )
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return ensure_demo_model(tmp_path_factory.mktemp("cache"), resolution=64, width=0.35)


@pytest.fixture
def colour_images(tmp_path) -> Path:
    folder = tmp_path / "calib"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, rgb in enumerate(list(COLOURS.values()) * 4):
        pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (40, 40, 3)), 0, 255)
        where = folder / "sub" if i % 2 else folder
        Image.fromarray(pixels.astype(np.uint8)).save(where / f"img{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return folder


def test_demo_model_becomes_qdq_int8_with_metadata_and_report(demo, tmp_path) -> None:
    out = tmp_path / "int8.onnx"
    r = quantize_model(demo, out, max_images=6, runs=5)
    ops = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    weights = [i for i in onnx.load(str(out)).graph.initializer if i.data_type == TensorProto.INT8]
    assert weights, "weights were not stored as int8"
    assert r.size_int8_bytes == out.stat().st_size < r.size_fp32_bytes / 2
    assert r.p50_fp32_ms > 0 and r.p50_int8_ms > 0 and r.threads == 1
    assert 0.0 <= r.agreement <= 1.0 and r.images == 6
    assert "synthetic" in r.calibration
    meta = read_metadata(out)
    src = read_metadata(demo)
    assert meta.class_names == src.class_names and meta.scale == src.scale
    assert meta.name == f"{src.name}-int8"
    assert "UNTRAINED" in meta.description
    assert meta.extra["untrained"] is True and "QDQ" in meta.extra["quantization"]
    assert "metadata_source" not in meta.extra and "extra" not in meta.extra
    Classifier(out).run_batch(np.zeros((1, 64, 64, 3), np.float32))


def test_agreement_is_measured_on_the_calibration_images(colour_images, tmp_path) -> None:
    model = colour_model(tmp_path / "colour.onnx")
    r = quantize_model(model, tmp_path / "c8.onnx", colour_images, runs=3)
    assert r.images == 12  # 12 good images, the broken one skipped
    assert r.agreement == 1.0  # colours this clear survive 8 bits
    assert str(colour_images) in r.calibration
    assert Classifier(tmp_path / "c8.onnx").meta.class_names == tuple(COLOURS)


@pytest.mark.parametrize(
    ("fp32", "int8", "word"),
    [(10.0, 10.3, "same speed"), (10.0, 12.0, "1.20x slower"), (10.0, 5.0, "2.00x faster")],
)
def test_verdict_claims_only_what_was_measured(fp32, int8, word) -> None:
    r = QuantizeReport(
        "a", "b", 4_000_000, 1_000_000, fp32, int8, 1, 1.0, 10, "synthetic", "cpu", False, 1.0
    )
    assert word in r.verdict
    assert r.size_ratio == 4.0
    data = json.loads(r.to_json())
    assert data["verdict"] == r.verdict and data["speed_ratio"] == pytest.approx(fp32 / int8)


def test_refuses_to_overwrite_the_source_and_unloadable_models(demo, tmp_path) -> None:
    with pytest.raises(QuantizeError, match="overwrite"):
        quantize_model(demo, demo)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    with pytest.raises(QuantizeError, match="cannot load"):
        quantize_model(bad, tmp_path / "out.onnx")


def test_calibration_folder_without_images(demo, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "quantize",
            str(demo),
            "-o",
            str(tmp_path / "o.onnx"),
            "--calibration",
            str(empty),
        ],
    )
    assert result.exit_code == 1
    assert "no images" in result.exception.message


def test_cli_quantize_prints_the_report(demo, tmp_path) -> None:
    out, report = tmp_path / "q.onnx", tmp_path / "q.json"
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "quantize",
            str(demo),
            "-o",
            str(out),
            "--max-images",
            "4",
            "--json",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "top-1 agreement" in result.output and "p50 latency" in result.output
    data = json.loads(report.read_text())
    assert data["images"] == 4
    assert "measured" in data["verdict"] and "measured" in result.output
