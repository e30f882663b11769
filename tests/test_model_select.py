"""fp32 or int8: int8 only where it measured faster AND lost at most `max_drop` points.

The rule (`decide`) is tested with hand-made figures, so "faster" is deterministic; one real
run on a tiny colour model and a Food-11 layout folder checks that the files and choice.json
agree with what was measured, whichever way the choice goes. No timing is asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_model_evaluate import colour_model, draw

from ggctl.cli import main
from ggctl.model.select import CHOICE_FILE, Measured, choose_model, decide


def measured(p50: float, accuracy: float | None, name: str = "m") -> Measured:
    return Measured(f"{name}.onnx", p50, accuracy, 1000, 100 if accuracy is not None else 0)


@pytest.mark.parametrize(
    ("p50_int8", "acc_int8", "max_drop", "chosen", "words"),
    [
        (5.0, 0.895, 1.0, "int8", ["2.00x faster", "drop 0.50 points", "within the bound of 1"]),
        (5.0, 0.85, 1.0, "fp32", ["2.00x faster", "drop 5.00 points", "above the bound of 1"]),
        (10.3, 0.90, 1.0, "fp32", ["did not measure faster", "5% noise margin", "within"]),
        (12.0, 0.80, 1.0, "fp32", ["did not measure faster", "above the bound"]),
        (5.0, 0.92, 0.0, "int8", ["drop -2.00 points", "within the bound of 0"]),
    ],
)
def test_decide_needs_both_faster_and_within_the_bound(
    p50_int8, acc_int8, max_drop, chosen, words
) -> None:
    got, reason = decide(measured(10.0, 0.90), measured(p50_int8, acc_int8), max_drop)
    assert got == chosen
    for word in words:
        assert word in reason, reason


def test_without_accuracy_fp32_is_kept_even_when_int8_is_faster() -> None:
    got, reason = decide(measured(10.0, None), measured(2.0, None), max_drop=100.0)
    assert got == "fp32"
    assert "accuracy unknown" in reason and "5.00x faster" in reason


def test_the_margin_is_the_callers() -> None:
    fp32, int8 = measured(10.0, 0.9), measured(9.0, 0.9)  # int8 1.11x faster
    assert decide(fp32, int8, 1.0)[0] == "int8"  # beyond the default 5 %
    got, reason = decide(fp32, int8, 1.0, margin=0.2)
    assert got == "fp32" and "20% noise margin" in reason


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def food(tmp_path_factory) -> tuple[Path, Path]:
    """The colour model and a Food-11 layout folder it classifies (training + evaluation)."""
    root = tmp_path_factory.mktemp("select")
    data = root / "food"
    for split in ("training", "evaluation"):
        for i in range(3):
            draw(data / split, f"0_{i}.png", "red")
            draw(data / split, f"1_{i}.jpg", "green")
            draw(data / split, f"2_{i}.png", "blue")
    return colour_model(root / "colour.onnx"), data


def test_choose_model_writes_files_consistent_with_what_it_measured(food, tmp_path) -> None:
    model, data = food
    c = choose_model(model, data, 1.0, tmp_path / "out", runs=5)
    record = json.loads((tmp_path / "out" / CHOICE_FILE).read_text())
    assert Path(c.int8.path) == tmp_path / "out" / "colour.int8.onnx"
    assert Path(c.int8.path).is_file() and c.fp32.path == str(model)
    assert c.fp32.accuracy == 1.0 and c.fp32.images == 9 and c.int8.images == 9
    assert "training" in c.calibration
    # The verdict follows from the figures recorded, by the same rule.
    assert (c.chosen, c.reason) == decide(c.fp32, c.int8, 1.0)
    assert c.path == (c.int8.path if c.chosen == "int8" else c.fp32.path)
    assert record["chosen"] == c.chosen and record["path"] == c.path
    assert record["reason"] == c.reason and record["max_drop"] == 1.0
    assert record["fp32"]["p50_ms"] == c.fp32.p50_ms and record["int8"]["p50_ms"] == c.int8.p50_ms
    assert record["int8"]["accuracy"] == c.int8.accuracy
    assert record["int8"]["size_bytes"] == Path(c.int8.path).stat().st_size
    assert record["drop_points"] == pytest.approx((c.fp32.accuracy - c.int8.accuracy) * 100)


def test_a_drop_above_the_bound_keeps_fp32(food, tmp_path) -> None:
    model, data = food
    given = tmp_path / "given.int8.onnx"
    choose_model(model, None, 1.0, tmp_path / "q", runs=3)  # any int8 file will do
    (tmp_path / "q" / "colour.int8.onnx").rename(given)
    # A bound below zero: no drop (not even none) is within it.
    c = choose_model(model, data, -1.0, tmp_path / "out", int8_path=given, runs=3)
    assert c.chosen == "fp32" and c.path == str(model)
    assert "above the bound of -1" in c.reason
    assert c.int8.path == str(given) and "given int8" in c.calibration


def test_no_data_keeps_fp32_and_says_accuracy_is_unknown(food, tmp_path) -> None:
    model, _data = food
    c = choose_model(model, None, 100.0, tmp_path / "out", runs=3)
    assert c.chosen == "fp32" and c.path == str(model)
    assert "accuracy unknown" in c.reason
    assert c.fp32.accuracy is None and c.int8.accuracy is None and c.drop_points is None
    assert json.loads((tmp_path / "out" / CHOICE_FILE).read_text())["drop_points"] is None


# --------------------------------------------------------------------------- CLI


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_cli_model_choose_prints_the_table_and_verdict(food, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    model, data = food
    out_dir = tmp_path / "out"
    code, out, err = run(
        [
            "model",
            "choose",
            str(model),
            "--data",
            str(data),
            "--max-drop",
            "-1",
            "-o",
            str(out_dir),
        ],
        capsys,
    )
    assert code == 0, err
    assert "p50 latency" in out and "accuracy" in out and "size" in out
    assert "fp32 chosen" in out and "above the bound of -1" in out
    assert json.loads((out_dir / CHOICE_FILE).read_text())["chosen"] == "fp32"


def test_cli_build_dry_run_lists_the_chosen_model(food, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    model, data = food
    state = tmp_path / "state"
    argv = ["--state-dir", str(state), "build", "--model", str(model), "--dry-run"]
    code, out, err = run([*argv, "--int8-if-better", "--data", str(data)], capsys)
    assert code == 0, err
    chosen = "int8" if "int8 chosen" in err else "fp32"
    assert f"{chosen} chosen" in err and "p50 latency" in err
    if chosen == "fp32":
        assert str(model.resolve()) in out
    else:
        assert "colour.int8.onnx" in out
    assert "context/model.onnx" in out and "nothing sent" in out
    assert not state.exists()  # a dry run's choice goes to a temporary folder

    # A bound below zero: fp32, whatever the speeds.
    code, out, err = run(
        [*argv, "--int8-if-better", "--data", str(data), "--max-drop", "-1"], capsys
    )
    assert code == 0 and "fp32 chosen" in err and str(model.resolve()) in out


def test_cli_data_without_int8_if_better_is_a_usage_error(food, tmp_path, capsys):
    model, data = food
    code, _out, err = run(
        [
            "--state-dir",
            str(tmp_path),
            "build",
            "--model",
            str(model),
            "--dry-run",
            "--data",
            str(data),
        ],
        capsys,
    )
    assert code == 2 and "--int8-if-better" in err
