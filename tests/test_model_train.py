"""`ggctl model train` end to end on a synthetic Food-11, and `ggctl model compare`.

No Food-11 and no GPU here: the data set is drawn in the test (11 classes, each its own hue
and stripe direction, with noise and brightness jitter, in Food-11's file layout and
splits), the backbone is a real MobileNetV2 (width 0.35, 64 px) from random weights
(`--weights none`, KERAS_HOME in a temporary folder: nothing is downloaded). One training run
is interrupted after 2 epochs (`--epochs 2`) and resumed to the full count; a copy of the
interrupted run is finished as a second run, so `compare` has two real runs to show.
"""

from __future__ import annotations

import colorsys
import csv
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ggctl.app.modelmeta import FOOD11_CLASSES
from ggctl.app.preprocess import preprocess
from ggctl.model.dataset import DatasetError
from ggctl.model.recipe import Recipe, RecipeError

# The first test pays for the module's training runs (bounded: 10 epochs of 352 images at
# 64 px); on a busy 2-core machine that takes many minutes, so the hang detector is wide.
pytestmark = [pytest.mark.tensorflow, pytest.mark.timeout(3600)]
pytest.importorskip("tensorflow")

PER_SPLIT = {"training": 32, "validation": 6, "evaluation": 6}  # images per class
RECIPE = {
    "backbone": "mobilenetv2",
    "width": 0.35,
    "img_size": 64,
    "weights": "none",
    "head_epochs": 1,
    "batch": 16,
    "head_lr": 3e-3,
    "fine_tune_lr": 3e-3,
    "bn_momentum": 0.5,
    "calibration_images": 33,
    "patience": 4,
}
FIRST_LEG, EPOCHS = 2, 10


def draw(label: int, seed: int, size: int = 72) -> Image.Image:
    """Class = hue and stripe direction; noise, phase and brightness vary per image."""
    rng = np.random.default_rng(seed)
    rgb = np.array(colorsys.hsv_to_rgb(label / 11, 0.8, 0.9)) * 255
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = np.pi * (label % 4) / 4
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 0.35 + rng.uniform(0, 6))
    img = rgb[None, None, :] * (0.75 + 0.25 * stripes[..., None])
    img = img * rng.uniform(0.8, 1.1) + rng.normal(0, 20, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module", autouse=True)
def keras_home(tmp_path_factory):
    """Keras' cache in a temporary folder; it must stay without downloaded weights."""
    home = tmp_path_factory.mktemp("keras_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_HOME", str(home))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        yield home
    assert not list((home / "models").glob("*")) if (home / "models").exists() else True


@pytest.fixture(scope="module")
def food11(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("food11")
    seed = 0
    for split, n in PER_SPLIT.items():
        (root / split).mkdir()
        for label in range(11):
            for i in range(n):
                seed += 1
                draw(label, seed).save(root / split / f"{label}_{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def runs(food11, tmp_path_factory):
    """Run A: 2 epochs, then resumed to EPOCHS. Run B: a copy of A after 2 epochs, finished."""
    from ggctl.model.train import read_history, train

    base = tmp_path_factory.mktemp("runs")
    run_a, run_b = base / "run-a", base / "run-b"
    t0 = time.perf_counter()
    first = train(food11, run_a, {**RECIPE, "epochs": FIRST_LEG, "export": False}, progress=False)
    history_first = read_history(run_a / "history.csv")
    state_first = json.loads((run_a / "checkpoint" / "state.json").read_text())
    shutil.copytree(run_a, run_b)
    second = train(food11, run_a, {"epochs": EPOCHS, "export": True}, progress=False)
    finished_b = train(food11, run_b, {"export": True}, progress=False)
    return {
        "a": run_a,
        "b": run_b,
        "first": first,
        "second": second,
        "b_outcome": finished_b,
        "history_first": history_first,
        "state_first": state_first,
        "seconds": time.perf_counter() - t0,
    }


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


# --- the recipe learns, resumes and exports -----------------------------------------------


def test_training_reaches_high_accuracy_on_the_evaluation_split(runs) -> None:
    s = summary(runs["a"])
    assert s["fp32"]["accuracy"] >= 0.8, s["fp32"]
    assert s["fp32"]["images"] == 11 * PER_SPLIT["evaluation"]
    assert s["epochs_run"] <= EPOCHS and s["best_epoch"] >= 1
    confusion = np.array(s["fp32"]["confusion"])
    assert confusion.shape == (11, 11) and confusion.sum() == s["fp32"]["images"]
    assert np.trace(confusion) == s["fp32"]["correct"]
    assert [c["name"] for c in s["fp32"]["per_class"]] == list(FOOD11_CLASSES)


def test_resume_continues_from_the_checkpoint(runs) -> None:
    from ggctl.model.train import read_history

    first, second = runs["first"], runs["second"]
    assert first.epochs_done == FIRST_LEG and first.summary is None
    assert runs["state_first"]["epoch"] == FIRST_LEG
    assert runs["state_first"]["optimizer_stage"] == 2  # stage 2's optimizer state was saved
    assert second.resumed_from == FIRST_LEG
    history = read_history(runs["a"] / "history.csv")
    assert [r["epoch"] for r in history] == list(range(1, second.epochs_done + 1))
    assert second.epochs_done > FIRST_LEG
    # The first two epochs are the interrupted run's rows, not retrained ones.
    for old, new in zip(runs["history_first"], history[:FIRST_LEG], strict=True):
        assert old == new
    assert [r["stage"] for r in history[:2]] == [1, 2]
    # Stage 2's cosine schedule went on from the saved optimizer step: it decays.
    lrs = [r["lr"] for r in history[1:]]
    assert lrs[0] == pytest.approx(RECIPE["fine_tune_lr"])
    assert all(a > b for a, b in itertools.pairwise(lrs)), lrs
    config = json.loads((runs["a"] / "config.json").read_text())
    assert config["recipe"]["epochs"] == EPOCHS and config["recipe"]["backbone"] == "mobilenetv2"
    assert len(config["resumed"]) == 1


def test_rerunning_a_finished_run_does_nothing_but_report(runs, food11) -> None:
    from ggctl.model.train import train

    before = (runs["a"] / "history.csv").read_text()
    again = train(food11, runs["a"], {}, progress=False)
    assert again.resumed_from == again.epochs_done == runs["second"].epochs_done
    assert (runs["a"] / "history.csv").read_text() == before
    assert again.summary == summary(runs["a"])


def test_resuming_with_another_backbone_is_refused(runs, food11) -> None:
    from ggctl.model.train import train

    with pytest.raises(RecipeError, match="backbone: run has 'mobilenetv2'"):
        train(food11, runs["a"], {"backbone": "vgg16"}, progress=False)


def test_run_directory_holds_config_history_plot_and_models(runs) -> None:
    run = runs["a"]
    for name in (
        "config.json",
        "history.csv",
        "curves.png",
        "best.keras",
        "best.weights.h5",
        "model.onnx",
        "model.int8.onnx",
        "eval-fp32.json",
        "eval-int8.json",
        "summary.json",
        "checkpoint/state.json",
        "checkpoint/optimizer.npz",
    ):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (run / "history.csv").open() as f:
        header = next(csv.reader(f))
    assert header[:7] == ["epoch", "stage", "lr", "loss", "accuracy", "val_loss", "val_accuracy"]


def test_onnx_matches_keras_and_carries_the_service_metadata(runs, food11) -> None:
    import keras
    import onnxruntime as ort

    from ggctl.model.metadata import read_metadata

    run = runs["a"]
    meta = read_metadata(run / "model.onnx")
    assert (meta.input_height, meta.input_width) == (64, 64)
    assert meta.scale == pytest.approx(1 / 255) and meta.mean == (0, 0, 0)
    assert meta.resample == "bicubic" and meta.class_names == FOOD11_CLASSES
    assert meta.output == "probabilities"
    # The same tensor the service builds from the file, into both models.
    files = sorted((food11 / "evaluation").glob("*.jpg"))[::5]
    x = np.concatenate([preprocess(f.read_bytes(), meta) for f in files])
    model = keras.models.load_model(run / "best.keras", compile=False)
    expected = np.asarray(model(x, training=False))
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()
    assert summary(run)["export"]["max_abs_diff_evaluation_images"] < 1e-4


def test_int8_model_is_evaluated_and_its_drop_reported(runs) -> None:
    s = summary(runs["a"])
    fp32, int8 = s["fp32"], s["int8"]
    assert s["int8_accuracy_drop"] == pytest.approx(fp32["accuracy"] - int8["accuracy"])
    assert int8["accuracy"] >= 0.6, int8
    assert int8["size_bytes"] < fp32["size_bytes"] / 2
    assert fp32["p50_ms"] > 0 and int8["p50_ms"] > 0
    assert s["quantization"]["calibration"].startswith("33 images from")


def test_compare_prints_both_runs_side_by_side(runs) -> None:
    from ggctl.cli import cli

    a, b = summary(runs["a"]), summary(runs["b"])
    assert b["epochs_run"] == FIRST_LEG and runs["b_outcome"].resumed_from == FIRST_LEG
    result = CliRunner().invoke(
        cli, ["model", "compare", str(runs["a"]), str(runs["b"])], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "run-a" in out and "run-b" in out and "mobilenetv2" in out
    assert f"{100 * a['fp32']['accuracy']:.1f}%" in out
    assert f"{100 * b['int8']['accuracy']:.1f}%" in out
    assert "Vegetable/Fruit" in out  # the per-class table


def ggctl(argv: list[str], capsys) -> tuple[int, str]:
    """Run the real entry point (errors become a message and an exit code)."""
    from ggctl.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    return int(exit_.value.code), " ".join((captured.out + captured.err).split())


def test_compare_names_a_run_without_summary(tmp_path, capsys) -> None:
    code, out = ggctl(["model", "compare", str(tmp_path)], capsys)
    assert code == 1
    assert "has no summary.json" in out


# --- refusals before any training ---------------------------------------------------------


def test_folder_not_in_food11_layout_is_refused_naming_the_files(tmp_path, food11, capsys) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(food11, bad)
    for name in ("cat.jpg", "dessert-7.jpg"):
        shutil.copy(bad / "training" / "0_0.jpg", bad / "training" / name)
    code, out = ggctl(
        ["model", "train", "--data", str(bad), "--out", str(tmp_path / "run"), "--weights", "none"],
        capsys,
    )
    assert code == 1
    assert "cat.jpg" in out and "dessert-7.jpg" in out and "training" in out
    assert "<class index>_<n>" in out
    assert not (tmp_path / "run").exists()

    per_class = tmp_path / "per-class"
    for split in ("training", "validation", "evaluation"):
        (per_class / split / "class_00").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        from ggctl.model.train import load_splits

        load_splits(per_class, FOOD11_CLASSES)


def test_missing_split_and_missing_class_are_refused(tmp_path, food11) -> None:
    from ggctl.model.train import load_splits

    no_eval = tmp_path / "no-eval"
    shutil.copytree(food11 / "training", no_eval / "training")
    shutil.copytree(food11 / "validation", no_eval / "validation")
    with pytest.raises(DatasetError, match="no split folder 'evaluation'"):
        load_splits(no_eval, FOOD11_CLASSES)
    shutil.copytree(food11 / "evaluation", no_eval / "evaluation")
    for f in (no_eval / "training").glob("7_*.jpg"):
        f.unlink()
    with pytest.raises(DatasetError, match=r"no images of class 7 \(Rice\)"):
        load_splits(no_eval, FOOD11_CLASSES)


def test_recipe_defaults_and_bad_values() -> None:
    r = Recipe()
    assert (r.backbone, r.weights, r.img_size, r.batch) == (
        "efficientnetv2-b0",
        "imagenet",
        224,
        32,
    )
    assert r.head_epochs < r.epochs and r.fine_tune_lr < r.head_lr and r.bn_frozen
    assert not Recipe(weights="none").bn_frozen
    with pytest.raises(RecipeError, match=r"backbone 'resnet9'.*unfreeze"):
        Recipe(backbone="resnet9", unfreeze=0)


def test_every_recipe_field_is_a_flag() -> None:
    from dataclasses import fields

    from ggctl.cli import cli

    result = CliRunner().invoke(cli, ["model", "train", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for f in fields(Recipe):
        assert "--" + f.name.replace("_", "-") in result.output, f.name


# --- backbones ----------------------------------------------------------------------------


def _reference(name: str, x: np.ndarray) -> np.ndarray:
    """What Keras itself feeds each backbone, from [0, 1] pixels x."""
    import keras

    apps = keras.applications
    if name == "vgg16":
        return apps.vgg16.preprocess_input(x * 255.0)
    if name == "mobilenetv2":
        return apps.mobilenet_v2.preprocess_input(x * 255.0)
    if name == "mobilenetv3-large":  # its include_preprocessing: Rescaling(1/127.5, -1)
        return x * 255.0 / 127.5 - 1.0
    # EfficientNetV2-B*: Rescaling(1/255), then Normalization with ImageNet mean/variance.
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    return (x * 255.0 / 255.0 - mean) / std


@pytest.mark.parametrize("name", ["vgg16", "mobilenetv2", "mobilenetv3-large", "efficientnetv2-b0"])
def test_in_model_preprocessing_is_the_backbones_own(name) -> None:
    import keras

    from ggctl.model.backbones import add_preprocessing, get_backbone, set_preprocessing_weights

    spec = get_backbone(name)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, add_preprocessing(spec, inputs))
    set_preprocessing_weights(model, spec)
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), _reference(name, x), rtol=1e-5, atol=1e-3)


def test_a_seed_gives_the_same_augmented_batches_however_the_threads_run(food11) -> None:
    """The training data of one seed, epoch after epoch, is the same on any machine: the
    random augmentation layers must not draw their numbers in thread order. Several
    epochs of the training split are read twice, and every batch must match."""
    import keras

    from ggctl.model.dataset import load_samples
    from ggctl.model.pipeline import make_dataset

    samples = load_samples(food11, "training")
    recipe = Recipe.from_dict({**RECIPE, "epochs": 1})

    def epochs() -> list[np.ndarray]:
        keras.utils.set_random_seed(recipe.seed)
        ds = make_dataset(samples, recipe, len(FOOD11_CLASSES), training=True)
        return [x.numpy() for _ in range(3) for x, *_ in ds]

    first, second = epochs(), epochs()
    assert len(first) == len(second) == 3 * -(-len(samples) // RECIPE["batch"])
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
