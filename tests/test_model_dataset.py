"""Food-11 layout: labels from `<class>_<n>.jpg` names, split folders, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggctl.model.dataset import (
    DatasetError,
    class_counts,
    list_images,
    load_samples,
    resolve_split_dir,
    subsample,
)


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not decoded here")


def test_flat_folder_labels_come_from_names(tmp_path) -> None:
    touch(tmp_path, "3_117.jpg", "0_2.jpg", "10_0.JPG", "0_10.png", ".DS_Store", "notes.txt")
    samples = load_samples(tmp_path)
    assert [(s.label, s.number, s.path.name) for s in samples] == [
        (0, 2, "0_2.jpg"),
        (0, 10, "0_10.png"),
        (3, 117, "3_117.jpg"),
        (10, 0, "10_0.JPG"),
    ]
    assert class_counts(samples) == {0: 2, 3: 1, 10: 1}


def test_split_folders_default_to_evaluation(tmp_path) -> None:
    touch(tmp_path / "training", "1_0.jpg", "1_1.jpg")
    touch(tmp_path / "evaluation", "2_0.jpg")
    assert [s.label for s in load_samples(tmp_path)] == [2]
    assert [s.label for s in load_samples(tmp_path, split="training")] == [1, 1]
    assert resolve_split_dir(tmp_path, default_split="training") == tmp_path / "training"


def test_missing_split_names_the_ones_present(tmp_path) -> None:
    touch(tmp_path / "training", "1_0.jpg")
    with pytest.raises(DatasetError, match=r"no split folder 'validation'.*training"):
        load_samples(tmp_path, split="validation")


def test_badly_named_files_are_named_in_the_error(tmp_path) -> None:
    touch(tmp_path, "0_1.jpg", "pizza.jpg", "a_1.jpg", "1-2.jpg")
    with pytest.raises(DatasetError) as exc:
        load_samples(tmp_path)
    message = exc.value.message
    assert "3 of 4 images" in message
    for name in ("pizza.jpg", "a_1.jpg", "1-2.jpg"):
        assert name in message
    assert "0_1.jpg" not in message
    assert "<class index>" in message
    assert "3_117.jpg" in (exc.value.hint or "")


def test_long_lists_of_offenders_are_shortened(tmp_path) -> None:
    touch(tmp_path, *(f"img{i:02d}.jpg" for i in range(20)))
    with pytest.raises(DatasetError, match="and 15 more"):
        load_samples(tmp_path)


def test_class_per_folder_layout_is_refused_with_a_reason(tmp_path) -> None:
    touch(tmp_path / "Bread", "a.jpg")
    touch(tmp_path / "Soup", "b.jpg")
    with pytest.raises(DatasetError, match="class-per-folder"):
        load_samples(tmp_path)


def test_class_index_beyond_the_model_is_refused(tmp_path) -> None:
    touch(tmp_path, "0_1.jpg", "11_4.jpg")
    with pytest.raises(DatasetError, match=r"11_4\.jpg"):
        load_samples(tmp_path, num_classes=11)
    assert len(load_samples(tmp_path, num_classes=12)) == 2


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_unusable_folders(tmp_path, make) -> None:
    target = tmp_path / "data"
    if make == "file":
        target.write_text("x")
    elif make == "empty":
        target.mkdir()
    with pytest.raises(DatasetError):
        load_samples(target)


def test_subsample_spreads_over_all_classes(tmp_path) -> None:
    touch(tmp_path, *(f"{c}_{i}.jpg" for c in range(11) for i in range(10)))
    samples = load_samples(tmp_path)
    picked = subsample(samples, 22)
    assert len(picked) == 22
    assert set(class_counts(picked)) == set(range(11))
    assert subsample(samples, None) == samples
    with pytest.raises(ValueError):
        subsample(samples, 0)


def test_list_images_takes_any_name_recursively(tmp_path) -> None:
    touch(tmp_path / "a", "x.jpg", "readme.md")
    touch(tmp_path / "b" / "c", "y.png")
    assert [p.name for p in list_images(tmp_path)] == ["x.jpg", "y.png"]
    assert len(list_images(tmp_path, limit=1)) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        list_images(tmp_path / "empty")
