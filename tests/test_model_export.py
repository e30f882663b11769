"""Export from Keras and PyTorch: ORT reproduces the framework, and the metadata is written.

The converters are optional extras; their tests skip where the extra is not installed.
Models are a few conv layers at 32x32 so that TensorFlow's import dominates the run time.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from ggctl.app.inference import Classifier
from ggctl.app.modelmeta import FOOD11_CLASSES, IMAGENET_MEAN, IMAGENET_STD
from ggctl.cli import cli
from ggctl.model.export import (
    ExportError,
    detect_framework,
    export_model,
    parse_size,
    read_class_names,
)
from ggctl.model.metadata import read_metadata


def ort_run(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


# --- no framework needed ---------------------------------------------------------------------


def test_detect_framework(tmp_path) -> None:
    assert detect_framework(tmp_path / "m.keras") == "keras"
    assert detect_framework(tmp_path / "m.H5") == "keras"
    assert detect_framework(tmp_path / "m.pt") == "torch"
    (tmp_path / "sm").mkdir()
    with pytest.raises(ExportError, match=r"saved_model\.pb"):
        detect_framework(tmp_path / "sm")
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    assert detect_framework(tmp_path / "sm") == "keras"
    with pytest.raises(ExportError, match="cannot tell"):
        detect_framework(tmp_path / "m.onnx")


def test_parse_size_and_class_names(tmp_path) -> None:
    assert parse_size("224") == (224, 224)
    assert parse_size("192x256") == (192, 256)
    for bad in ("x", "4", "1x2x3"):
        with pytest.raises(ExportError):
            parse_size(bad)
    (tmp_path / "a.txt").write_text("cat\n\n dog \n")
    (tmp_path / "b.json").write_text('["x", "y"]')
    (tmp_path / "c.json").write_text('{"x": 1}')
    assert read_class_names(tmp_path / "a.txt") == ("cat", "dog")
    assert read_class_names(tmp_path / "b.json") == ("x", "y")
    with pytest.raises(ExportError, match="not a list"):
        read_class_names(tmp_path / "c.json")


@pytest.mark.parametrize(
    ("suffix", "module", "extra"),
    [(".keras", "tensorflow", "tensorflow"), (".pt", "torch", "torch")],
)
def test_missing_extra_says_what_to_install(tmp_path, monkeypatch, suffix, module, extra) -> None:
    src = tmp_path / f"model{suffix}"
    src.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ExportError) as exc:
        export_model(src, tmp_path / "out.onnx")
    assert exc.value.hint == f"pip install 'ggctl[{extra}]'"
    assert not (tmp_path / "out.onnx").exists()


def test_missing_source_is_a_user_error(tmp_path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_model(tmp_path / "nope.keras", tmp_path / "o.onnx")


# --- PyTorch -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_net():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, groups=8),
        torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 11),
    ).eval()
    return torch, net


def save_torchscript(torch, net, path: Path) -> None:
    """A TorchScript file, the format many users still have: making one uses the API torch
    2.10+ deprecates, which is this fixture's purpose, so its warnings are not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"`torch\.jit\.(script|save)` is deprecated", DeprecationWarning
        )
        torch.jit.save(torch.jit.script(net), str(path))


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["torchscript", "pickled"])
def test_torch_export_matches_and_writes_imagenet_nchw_metadata(torch_net, tmp_path, kind) -> None:
    torch, net = torch_net
    src = tmp_path / "net.pt"
    if kind == "torchscript":
        save_torchscript(torch, net, src)
    else:
        torch.save(net, str(src))
    out = tmp_path / "net.onnx"
    report = export_model(src, out, input_size=(32, 32))
    x = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ort_run(out, x), expected, atol=1e-5)
    assert report.max_abs_diff < 1e-5
    meta = read_metadata(out)
    assert (meta.layout, meta.input_height, meta.input_width) == ("NCHW", 32, 32)
    assert meta.mean == IMAGENET_MEAN and meta.std == IMAGENET_STD
    assert meta.scale == pytest.approx(1 / 255)
    assert meta.output == "logits"  # a Linear head, no softmax
    assert meta.class_names == FOOD11_CLASSES
    assert Classifier(out).meta.layout == "NCHW"


@pytest.mark.torch
def test_torch_state_dict_is_refused_with_a_hint(torch_net, tmp_path) -> None:
    torch, net = torch_net
    src = tmp_path / "weights.pth"
    torch.save(net.state_dict(), str(src))
    with pytest.raises(ExportError, match="state_dict") as exc:
        export_model(src, tmp_path / "o.onnx")
    # the way to save a whole model that torch does not deprecate
    assert "torch.save(model" in exc.value.hint and "torch.jit" not in exc.value.hint


@pytest.mark.torch
def test_cli_export_torch_with_class_names_and_overrides(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Softmax(dim=1),
    ).eval()
    src = tmp_path / "four.pt"
    save_torchscript(torch, net, src)
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\nd\n")
    out = tmp_path / "four.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "export",
            str(src),
            "-o",
            str(out),
            "--class-names",
            str(names),
            "--input-size",
            "40x48",
            "--normalization",
            "course",
            "--resample",
            "bicubic",
            "--mean",
            "0.5,0.5,0.5",
            "--name",
            "four",
        ],
    )
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta.class_names == ("a", "b", "c", "d") and meta.name == "four"
    assert (meta.input_height, meta.input_width) == (40, 48)
    assert meta.mean == (0.5, 0.5, 0.5) and meta.std == (1.0, 1.0, 1.0)
    assert meta.resample == "bicubic" and meta.output == "probabilities"

    wrong = CliRunner().invoke(cli, ["model", "export", str(src), "-o", str(out)])
    assert wrong.exit_code == 1 and "4 scores" in wrong.exception.message
    bad_mean = CliRunner().invoke(
        cli,
        ["model", "export", str(src), "-o", str(out), "--class-names", str(names), "--mean", "1,2"],
    )
    assert bad_mean.exit_code == 1 and "--mean" in bad_mean.exception.message


# --- Keras -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.DepthwiseConv2D(3, strides=2, activation="relu6"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(11, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    model.save(path)
    return model, path


@pytest.mark.tensorflow
def test_keras_export_matches_and_writes_course_metadata(keras_model, tmp_path) -> None:
    model, src = keras_model
    out = tmp_path / "tiny.onnx"
    report = export_model(src, out)
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(ort_run(out, x), model.predict(x, verbose=0), atol=1e-6)
    assert report.framework == "keras" and report.max_abs_diff < 1e-6
    meta = read_metadata(out)
    assert (meta.layout, meta.input_height, meta.input_width) == ("NHWC", 32, 32)
    assert meta.scale == pytest.approx(1 / 255) and meta.mean == (0.0, 0.0, 0.0)
    assert meta.resample == "bicubic" and meta.output == "probabilities"
    assert meta.name == "tiny"
    probs = Classifier(out).run_batch(x[:1])
    assert probs.shape == (1, 11)


@pytest.mark.tensorflow
def test_cli_export_keras(keras_model, tmp_path) -> None:
    _, src = keras_model
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(
        cli, ["model", "export", str(src), "-o", str(out), "--normalization", "tf"]
    )
    assert result.exit_code == 0, result.output
    assert "keras" in result.output
    meta = read_metadata(out)
    assert meta.scale == pytest.approx(2 / 255) and meta.mean == (1.0, 1.0, 1.0)


@pytest.mark.tensorflow
def test_savedmodel_folder_export(keras_model, tmp_path) -> None:
    model, _ = keras_model
    folder = tmp_path / "saved"
    model.export(str(folder), verbose=False)  # Keras 3: a TF SavedModel for serving
    out = tmp_path / "sm.onnx"
    report = export_model(folder, out)
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(ort_run(out, x), model.predict(x, verbose=0), atol=1e-6)
    assert report.max_abs_diff < 1e-6
    assert read_metadata(out).layout == "NHWC"
