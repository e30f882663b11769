"""Evaluation on a Food-11 layout folder, with a model whose every answer is known.

The model classifies an image by its dominant colour (red, green, blue), so the expected
accuracy, per-class figures and confusion matrix follow from how the test draws the images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ggctl.app.modelmeta import ModelMeta
from ggctl.cli import cli
from ggctl.model.dataset import DatasetError
from ggctl.model.evaluate import EvaluateError, evaluate_model
from ggctl.model.metadata import set_metadata

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 210)}


def colour_model(path: Path, size: int = 32) -> Path:
    """NHWC image → mean RGB → logits = 20 * mean: argmax is the dominant channel."""
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["rgb"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["rgb", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "colour",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.eye(3, dtype=np.float32) * 20, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_metadata(
        model,
        ModelMeta(
            class_names=tuple(COLOURS),
            input_height=size,
            input_width=size,
            output="logits",
            name="colour",
            description="picks the dominant colour",
        ),
    )
    onnx.save(model, str(path))
    return path


def draw(folder: Path, name: str, colour: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name) + sum(map(ord, name)))
    pixels = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 10, (48, 64, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(folder / name)


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "food"
    ev = root / "evaluation"
    for i in range(3):
        draw(ev, f"0_{i}.png", "red")
        draw(ev, f"1_{i}.jpg", "green")
    draw(ev, "2_0.png", "blue")
    draw(ev, "2_1.png", "blue")
    draw(ev, "2_9.png", "green")  # labelled blue, looks green: one known error
    (ev / "1_7.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    draw(root / "training", "0_0.png", "blue")  # must not be evaluated by default
    return root


@pytest.fixture
def model(tmp_path) -> Path:
    return colour_model(tmp_path / "colour.onnx")


def test_accuracy_per_class_and_confusion_are_exact(model, dataset) -> None:
    r = evaluate_model(model, dataset, progress=False)
    assert (r.images, r.correct) == (9, 8)
    assert r.accuracy == pytest.approx(8 / 9)
    assert [(c.name, c.images, c.correct) for c in r.per_class] == [
        ("red", 3, 3),
        ("green", 3, 3),
        ("blue", 3, 2),
    ]
    assert r.confusion == [[3, 0, 0], [0, 3, 0], [0, 1, 2]]
    assert [Path(p).name for p in r.skipped] == ["1_7.jpg"]
    assert r.mean_inference_ms > 0 and r.mean_preprocess_ms > 0
    assert r.mean_latency_ms == pytest.approx(r.mean_inference_ms + r.mean_preprocess_ms)


def test_split_and_limit(model, dataset) -> None:
    r = evaluate_model(model, dataset, split="training", progress=False)
    assert (r.images, r.correct, r.confusion[0][2]) == (1, 0, 1)
    r = evaluate_model(model, dataset, limit=3, progress=False)
    assert r.images + len(r.skipped) == 3


def test_json_output(model, dataset, tmp_path) -> None:
    out = tmp_path / "out" / "eval.json"
    evaluate_model(model, dataset, progress=False, json_path=out)
    data = json.loads(out.read_text())
    assert data["accuracy"] == pytest.approx(8 / 9)
    assert data["confusion"][2] == [0, 1, 2]
    assert data["per_class"][2] == {
        "index": 2,
        "name": "blue",
        "images": 3,
        "correct": 2,
        "accuracy": pytest.approx(2 / 3),
    }


def test_labels_beyond_the_model_are_refused(model, tmp_path) -> None:
    draw(tmp_path / "d", "5_0.png", "red")
    with pytest.raises(DatasetError, match=r"5_0\.png"):
        evaluate_model(model, tmp_path / "d", progress=False)


def test_unloadable_model_and_undecodable_data(tmp_path, dataset) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(EvaluateError, match="cannot load"):
        evaluate_model(bad, dataset, progress=False)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "0_0.jpg").write_bytes(b"junk")
    with pytest.raises(EvaluateError, match="none of the 1 images"):
        evaluate_model(colour_model(tmp_path / "m.onnx"), junk, progress=False)


def test_cli_evaluate_prints_tables_and_writes_json(model, dataset, tmp_path) -> None:
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli, ["model", "evaluate", str(model), "--data", str(dataset), "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "88.89%" in result.output and "(8/9)" in result.output
    assert "confusion matrix" in result.output
    assert json.loads(out.read_text())["images"] == 9


def test_cli_evaluate_bad_layout_is_a_user_error(model, tmp_path) -> None:
    draw(tmp_path / "d", "lasagne.png", "red")
    result = CliRunner().invoke(
        cli, ["model", "evaluate", str(model), "--data", str(tmp_path / "d")]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, DatasetError)
    assert "lasagne.png" in result.exception.message
