"""Food-11's folder layout: images named `<class index>_<n>.jpg`, the label in the name.

A data folder is either one flat folder of such files, or a root holding the split folders
`training/`, `validation/` and `evaluation/`. Anything else (class-per-subfolder layouts,
files with other names) is refused with an error that names the offending files, because a
silently mislabelled evaluation would report a wrong accuracy with full confidence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ggctl.errors import GgctlError

SPLITS = ("training", "validation", "evaluation")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_NAME = re.compile(r"^(\d+)_(\d+)$")
_SHOW = 5  # offending names shown in an error; the rest are counted


class DatasetError(GgctlError):
    """The data folder is missing or not in Food-11's layout."""


@dataclass(frozen=True, order=True)
class Sample:
    """One labelled image of the data set."""

    label: int
    number: int
    path: Path


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:_SHOW])
    more = len(paths) - _SHOW
    return shown + (f" and {more} more" if more > 0 else "")


def is_image(path: Path) -> bool:
    """Whether `path` is a visible file with an image suffix."""
    return (
        path.is_file() and not path.name.startswith(".") and (path.suffix.lower() in IMAGE_SUFFIXES)
    )


def resolve_split_dir(
    root: Path, split: str | None = None, default_split: str = "evaluation"
) -> Path:
    """The folder that holds the images: `root` itself, or one of its split folders.

    With `split` given, `root/split` must exist. Without it, a root that holds images is used
    as is, else `root/default_split` (the course scores accuracy on `evaluation`).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist or is not a folder")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if split is not None:
        if not (root / split).is_dir():
            have = ", ".join(present) or "none"
            raise DatasetError(f"{root} has no split folder {split!r} (split folders: {have})")
        return root / split
    if any(is_image(p) for p in root.iterdir()):
        return root
    if default_split in present:
        return root / default_split
    if present:
        return root / present[0]
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    hint = ""
    if subdirs:
        hint = (
            f"; it has subfolders ({', '.join(subdirs[:_SHOW])}) — a class-per-folder "
            "layout is not Food-11's"
        )
    raise DatasetError(
        f"no images in {root}{hint}",
        hint="Put files named <class index>_<n>.jpg in the folder, or in "
        "training/, validation/ and evaluation/ subfolders.",
    )


def load_samples(
    root: Path,
    split: str | None = None,
    num_classes: int | None = None,
    default_split: str = "evaluation",
) -> list[Sample]:
    """All labelled images of a Food-11 layout folder, sorted by (label, number).

    Raises DatasetError naming the files that break the layout, or whose class index is not
    below `num_classes`.
    """
    folder = resolve_split_dir(root, split, default_split)
    images = sorted(p for p in folder.iterdir() if is_image(p))
    if not images:
        raise DatasetError(f"no images in {folder}")
    samples: list[Sample] = []
    bad: list[Path] = []
    for path in images:
        match = _NAME.match(path.stem)
        if match is None:
            bad.append(path)
            continue
        samples.append(Sample(int(match.group(1)), int(match.group(2)), path))
    if bad:
        raise DatasetError(
            f"{len(bad)} of {len(images)} images in {folder} are not named "
            f"<class index>_<n>.<ext>: {_names(bad)}",
            hint="Food-11 names each file by its class, e.g. 3_117.jpg is class 3 (Egg).",
        )
    if num_classes is not None:
        out_of_range = [s.path for s in samples if s.label >= num_classes]
        if out_of_range:
            raise DatasetError(
                f"{len(out_of_range)} images in {folder} have a class index of {num_classes} "
                f"or more, but the model knows {num_classes} classes: {_names(out_of_range)}"
            )
    return sorted(samples)


def class_counts(samples: Sequence[Sample]) -> dict[int, int]:
    """Number of samples per class index, in index order."""
    return dict(sorted(Counter(s.label for s in samples).items()))


def subsample(samples: Sequence[Sample], limit: int | None) -> list[Sample]:
    """At most `limit` samples spread evenly over the sorted list, so every class stays in."""
    if limit is None or limit >= len(samples):
        return list(samples)
    if limit <= 0:
        raise ValueError("limit must be positive")
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files under `folder` (recursively, sorted), whatever their names; for calibration."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist or is not a folder")
    paths = sorted(p for p in folder.rglob("*") if is_image(p))
    if not paths:
        raise DatasetError(f"no images (*.jpg, *.png, ...) under {folder}")
    if limit is not None and len(paths) > limit:
        step = len(paths) / limit
        paths = [paths[int(i * step)] for i in range(limit)]
    return paths


def paths_and_labels(samples: Sequence[Sample]) -> tuple[list[str], list[int]]:
    """Parallel lists of file paths and class indices, e.g. for `tf.data`."""
    return [str(s.path) for s in samples], [s.label for s in samples]


def missing_classes(samples: Sequence[Sample], num_classes: int) -> list[int]:
    """Class indices below `num_classes` that no sample has."""
    present = {s.label for s in samples}
    return [c for c in range(num_classes) if c not in present]
