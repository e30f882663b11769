"""The `tf.data` input pipeline: Food-11 files → batches, with the service's own preprocessing.

Labels come from the file names (`ggctl.model.dataset`). Pixels come from the very functions
the service runs on an upload (`ggctl.app.preprocess.decode` then `to_tensor`: EXIF rotation,
RGB, JPEG draft decoding, the metadata's resample filter), called in parallel through
`tf.numpy_function`, so a model never sees a pixel at training time that it would not see
in production. The decoded, resized uint8 images are cached (memory or disk) so decoding
happens once per run; scaling to [0, 1], augmentation, one-hot labels and class weights
follow the cache, then batches are prefetched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ggctl.app.modelmeta import ModelMeta
from ggctl.app.preprocess import ImageError, decode, to_tensor
from ggctl.model.dataset import Sample, class_counts, paths_and_labels

SCALE = np.float32(1.0 / 255.0)  # the service's multiplier for the course normalisation


@dataclass
class Skipped:
    """Files the pipeline could not decode (left out, as the evaluation does)."""

    paths: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, path: str) -> None:
        with self._lock:
            if path not in self.paths:
                self.paths.append(path)


def class_weights(samples: Sequence[Sample], num_classes: int) -> np.ndarray:
    """Balanced weights N / (K * n_c): every class contributes equally to the loss."""
    counts = class_counts(samples)
    n = np.array([counts.get(c, 0) for c in range(num_classes)], np.float64)
    weights = np.where(n > 0, n.sum() / (num_classes * np.maximum(n, 1)), 0.0)
    return weights.astype(np.float32)


def load_pixels(path: str, size: int, resample: str) -> np.ndarray | None:
    """The service's decode + resize of one file as uint8 HxWx3, or None if undecodable."""
    meta = ModelMeta(input_height=size, input_width=size, scale=1.0, resample=resample)
    try:
        img = decode(Path(path).read_bytes(), (size, size))
    except (ImageError, OSError):
        return None
    # scale 1, mean 0, std 1: to_tensor returns the resized pixels 0..255 exactly.
    return to_tensor(img, meta)[0].astype(np.uint8)


def augmenter(recipe: Any) -> Any:
    """The augmentation layers of `recipe` (on [0, 1] batches), or None when all are off."""
    import keras

    layers: list[Any] = []
    seed = recipe.seed
    if recipe.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if recipe.rotation > 0:
        layers.append(
            keras.layers.RandomRotation(recipe.rotation, fill_mode="reflect", seed=seed + 1)
        )
    if recipe.zoom > 0:
        layers.append(keras.layers.RandomZoom(recipe.zoom, fill_mode="reflect", seed=seed + 2))
    if recipe.translate > 0:
        layers.append(
            keras.layers.RandomTranslation(
                recipe.translate, recipe.translate, fill_mode="reflect", seed=seed + 3
            )
        )
    if recipe.contrast > 0:
        layers.append(
            keras.layers.RandomContrast(recipe.contrast, value_range=(0, 1), seed=seed + 4)
        )
    return keras.Sequential(layers, name="augmentation") if layers else None


def _decoded(image, label, ok):
    return ok


def _drop_flag(image, label, ok):
    return image, label


def _to_unit_range(x, y):
    import tensorflow as tf

    return tf.cast(x, tf.float32) * SCALE, y


def make_dataset(
    samples: Sequence[Sample],
    recipe: Any,
    num_classes: int,
    *,
    training: bool,
    cache_path: Path | None = None,
    weights: np.ndarray | None = None,
    skipped: Skipped | None = None,
) -> Any:
    """A tf.data.Dataset of (images [0, 1], one-hot labels[, sample weights]) batches.

    Training data is shuffled (the file list once with the seed, since Food-11 lists are
    sorted by class, then every epoch through a buffer), augmented, and carries each
    image's class weight when `weights` is given.
    """
    import tensorflow as tf

    size, resample = recipe.img_size, recipe.resample
    paths, labels = paths_and_labels(samples)
    if training:
        order = np.random.default_rng(recipe.seed).permutation(len(paths))
        paths = [paths[i] for i in order]
        labels = [labels[i] for i in order]
    skipped = skipped if skipped is not None else Skipped()

    def load(path: bytes) -> tuple[np.ndarray, bool]:
        text = path.decode("utf-8")
        pixels = load_pixels(text, size, resample)
        if pixels is None:
            skipped.add(text)
            return np.zeros((size, size, 3), np.uint8), False
        return pixels, True

    def tf_load(path, label):
        image, ok = tf.numpy_function(load, [path], (tf.uint8, tf.bool), stateful=False)
        image.set_shape((size, size, 3))
        ok.set_shape(())
        return image, label, ok

    ds = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels, np.int32)))
    ds = ds.map(tf_load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(_decoded).map(_drop_flag)
    if recipe.cache == "memory":
        ds = ds.cache()
    elif recipe.cache == "disk" and cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        for stale in cache_path.parent.glob(f"{cache_path.name}*.lockfile"):
            stale.unlink()  # left by an interrupted run; TensorFlow refuses to start otherwise
        ds = ds.cache(str(cache_path))
    if training:
        ds = ds.shuffle(
            min(recipe.shuffle_buffer, max(len(paths), 1)),
            seed=recipe.seed,
            reshuffle_each_iteration=True,
        )
    ds = ds.batch(recipe.batch)
    # The service multiplies float32 pixels by float32(1/255): so does this.
    ds = ds.map(_to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
    aug = augmenter(recipe) if training else None
    if aug is not None:

        def augment(x, y):
            return tf.clip_by_value(aug(x, training=True), 0.0, 1.0), y

        # One call at a time: the random layers draw from one generator, and parallel calls
        # would take its numbers in whatever order the threads ran, so the same seed gave
        # another model (and accuracy) on a busy machine. Per batch it costs little.
        ds = ds.map(augment)
    table = tf.constant(weights if weights is not None else np.ones(num_classes, np.float32))

    def finish(x, y):
        onehot = tf.one_hot(y, num_classes, dtype=tf.float32)
        if training and weights is not None:
            return x, onehot, tf.gather(table, y)
        return x, onehot

    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
