"""Synthetic photos: the bundled /test image, test fixtures and calibration fallbacks.

Nothing is downloaded anywhere in ggctl's tests, so images are drawn here: smooth colour
fields with texture and a few "food-like" blobs, which compress like real photos do
(a 1280x1280 one is a few hundred KB of JPEG, as the course's test image is).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def photo(
    size: tuple[int, int] = (1280, 1280), seed: int = 0, base: tuple[int, int, int] | None = None
) -> Image.Image:
    """An RGB image of `size` (w, h) that looks and compresses roughly like a photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base_rgb = np.asarray(base if base is not None else rng.integers(60, 200, 3), np.float32)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.5, 3.0, 2) * 2 * np.pi / max(w, h)
        img[..., c] = base_rgb[c] + 40 * np.sin(xx * fx + rng.uniform(0, 6)) * np.cos(yy * fy)
    for _ in range(12):  # blobs: plates, noodles, garnish
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.04, 0.2) * min(w, h)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
        img[mask] = img[mask] * 0.4 + rng.uniform(0, 255, 3) * 0.6
    img += rng.normal(0, 12, img.shape).astype(np.float32)  # sensor noise and texture
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    """Image → file bytes in `fmt`."""
    buf = io.BytesIO()
    if fmt.upper() == "JPEG":
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def write_test_image(path: Path) -> Path:
    """(Re)write the service's bundled /test image: 1280x1280 JPEG, deterministic."""
    path.write_bytes(encode(photo((1280, 1280), seed=11), quality=85))
    return path


if __name__ == "__main__":  # python -m ggctl.model.synthetic  regenerates app/static/test_image.jpg
    out = Path(__file__).resolve().parent.parent / "app" / "static" / "test_image.jpg"
    print(write_test_image(out), out.stat().st_size, "bytes")
