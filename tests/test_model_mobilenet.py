"""The built-in demo model: MobileNetV2's structure and cost, deterministic, labelled untrained."""

from __future__ import annotations

import io
import time
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from PIL import Image

from ggctl.app.inference import Classifier
from ggctl.app.modelmeta import FOOD11_CLASSES
from ggctl.cli import cli
from ggctl.model import mobilenet
from ggctl.model.metadata import read_metadata
from ggctl.model.mobilenet import build_mobilenet_v2, ensure_demo_model


@pytest.fixture(scope="module")
def full_model() -> tuple[onnx.ModelProto, mobilenet.GraphCost]:
    return build_mobilenet_v2()


def _session(model: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def test_full_size_has_mobilenet_v2_cost(full_model) -> None:
    _, cost = full_model
    # Published MobileNetV2 1.0 @224: 300 M multiply-adds, 2.2 M parameters without the
    # 1000-class head (3.4 M with it).
    assert 290e6 < cost.macs < 310e6
    assert 2.1e6 < cost.parameters < 2.4e6


def test_full_size_has_mobilenet_v2_structure(full_model) -> None:
    model, _ = full_model
    ops = Counter(n.op_type for n in model.graph.node)
    depthwise = [
        n
        for n in model.graph.node
        if n.op_type == "Conv" and next(a.i for a in n.attribute if a.name == "group") > 1
    ]
    assert len(depthwise) == 17  # one per inverted residual block
    assert ops["Conv"] == 52  # stem + 17 blocks (2 or 3 convs each) + final 1x1
    assert ops["Add"] == 10  # residual connections where stride 1 and channels match
    assert ops["Clip"] == 35  # ReLU6
    assert ops["GlobalAveragePool"] == ops["Gemm"] == ops["Softmax"] == 1
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 224, 224, 3]


def test_full_size_runs_fast_enough_in_onnxruntime(full_model) -> None:
    model, _ = full_model
    sess = _session(model, threads=1)
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    sess.run(None, {"input": x})
    times = []
    for _ in range(5):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        times.append(time.perf_counter() - t)
    # ~9 ms on one 2020s core; the bound only catches a graph that lost its MobileNet shape
    # (e.g. full instead of depthwise convs costs ~10x).
    assert np.median(times) < 0.08


def test_outputs_are_probabilities_and_depend_on_input() -> None:
    model, _ = build_mobilenet_v2(resolution=64, width=0.35)
    sess = _session(model)
    x = np.random.default_rng(1).random((3, 64, 64, 3), dtype=np.float32)
    (p,) = sess.run(None, {"input": x})
    assert p.shape == (3, 11)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(p[0], p[1], atol=1e-4)


def test_same_seed_same_bytes_other_seed_other_weights() -> None:
    a, _ = build_mobilenet_v2(resolution=32, width=0.35, seed=3)
    b, _ = build_mobilenet_v2(resolution=32, width=0.35, seed=3)
    c, _ = build_mobilenet_v2(resolution=32, width=0.35, seed=4)
    assert a.SerializeToString() == b.SerializeToString()
    assert a.graph.initializer[2].raw_data != c.graph.initializer[2].raw_data


def test_width_and_classes_change_the_graph() -> None:
    _, small = build_mobilenet_v2(resolution=224, width=0.5)
    _, full = build_mobilenet_v2(resolution=224, width=1.0)
    assert small.macs < full.macs / 2
    model, _ = build_mobilenet_v2(resolution=32, width=0.35, num_classes=4)
    assert read_meta(model).class_names == ("class_0", "class_1", "class_2", "class_3")


@pytest.mark.parametrize("kwargs", [{"resolution": 100}, {"width": 5.0}, {"num_classes": 1}])
def test_bad_parameters_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        build_mobilenet_v2(**kwargs)


def read_meta(model: onnx.ModelProto):
    from ggctl.model.metadata import get_metadata

    meta = get_metadata(model)
    assert meta is not None
    return meta


def test_metadata_is_the_course_contract_and_says_untrained(tmp_path) -> None:
    path = ensure_demo_model(tmp_path, resolution=32, width=0.35)
    meta = read_metadata(path)
    assert meta.class_names == FOOD11_CLASSES
    assert (meta.input_height, meta.input_width, meta.layout) == (32, 32, "NHWC")
    assert meta.scale == pytest.approx(1 / 255)
    assert meta.mean == (0.0, 0.0, 0.0) and meta.std == (1.0, 1.0, 1.0)
    assert meta.resample == "bicubic" and meta.output == "probabilities"
    assert "UNTRAINED" in meta.description and "meaningless" in meta.description
    assert meta.extra["untrained"] is True


def test_the_service_loads_and_classifies_with_it(tmp_path) -> None:
    path = ensure_demo_model(tmp_path, resolution=64, width=0.35)
    clf = Classifier(path)
    assert clf.meta.name == mobilenet.DEMO_NAME
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 120, 40)).save(buf, "JPEG")
    pred = clf.classify_bytes(buf.getvalue())
    assert pred.label in FOOD11_CLASSES
    assert 0.0 < pred.confidence <= 1.0


def test_ensure_demo_model_builds_once_and_leaves_no_temp_files(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    first = ensure_demo_model(cache, resolution=32, width=0.35)
    assert first.is_file() and first.parent == cache
    before = first.stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(mobilenet, "build_mobilenet_v2", boom)
    assert ensure_demo_model(cache, resolution=32, width=0.35) == first
    assert first.stat().st_mtime_ns == before
    assert [p.name for p in cache.iterdir()] == [first.name]
    assert first.stat().st_mode & 0o044 == 0o044  # readable by a container's other user


def test_ensure_demo_model_keys_the_cache_on_parameters(tmp_path) -> None:
    a = ensure_demo_model(tmp_path, resolution=32, width=0.35)
    b = ensure_demo_model(tmp_path, resolution=64, width=0.35)
    assert a != b and a.is_file() and b.is_file()


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mobilenet.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        ensure_demo_model(tmp_path, resolution=32, width=0.35)
    assert list(tmp_path.iterdir()) == []


def test_script_entry_writes_a_model(tmp_path, capsys) -> None:
    out = tmp_path / "demo.onnx"
    assert mobilenet.main(["-o", str(out), "--resolution", "64", "--width", "0.5"]) == 0
    assert read_metadata(out).input_height == 64
    assert "UNTRAINED" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        mobilenet.main(["-o", str(out), "--resolution", "50"])
    assert exc.value.code == 2


def test_cli_build_demo(tmp_path) -> None:
    out = tmp_path / "demo.onnx"
    result = CliRunner().invoke(
        cli, ["model", "build-demo", "-o", str(out), "--resolution", "32", "--width", "0.35"]
    )
    assert result.exit_code == 0, result.output
    assert "UNTRAINED" in result.output
    assert read_metadata(out).name == mobilenet.DEMO_NAME
