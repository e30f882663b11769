"""Bytes of an uploaded photo → the float32 tensor a model expects, in memory, fast.

The course decodes the full image and resizes it with bicubic filtering; for a 1280x1280 JPEG
that decode alone costs ~15 ms. JPEG's draft mode lets libjpeg decode straight to a 1/2, 1/4
or 1/8 scale that is still at least the model's input size, so the bicubic resize that follows
sees a few hundred pixels a side instead of thousands (see bench/ for the figures).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from .modelmeta import ModelMeta

# A 12000x12000 photo is already absurd for a classifier; anything larger is refused
# before its pixels are decoded, which is what stops decompression bombs. JPEG decodes
# straight to 1/8 scale (draft mode), so even that costs little; other formats (PNG, WebP,
# GIF, ...) must be decoded in full, so they get a lower bound: 40 Mpx is a 7700x5200 photo,
# ~0.5 s and 120 MB to decode, where 144 Mpx of PNG cost 3 s and 0.8 GB.
DEFAULT_MAX_PIXELS = 12_000 * 12_000
FULL_DECODE_MAX_PIXELS = 40_000_000

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class ImageError(ValueError):
    """The upload is not an image we can classify; the message is safe to show the client."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode(data: bytes, size: tuple[int, int], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `data` into an RGB image of at least `size` (w, h) where the format allows."""
    if not data:
        raise ImageError("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageError("the image has no pixels")
            limit = max_pixels if img.format == "JPEG" else min(max_pixels, FULL_DECODE_MAX_PIXELS)
            if width * height > limit:
                raise ImageError(
                    f"the {img.format or 'image'} is {width}x{height} pixels; the limit is "
                    f"{limit:,} pixels",
                    status=413,
                )
            if img.format == "JPEG":
                img.draft("RGB", size)
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError("the image is too large to decode safely", status=413) from None
    except Exception as exc:
        raise ImageError(_describe(exc)) from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I") or img.mode == "F":
        # 16-bit and float greyscale: convert("RGB") would clip everything above 255 to white.
        arr = np.asarray(img, dtype=np.float32)
        if img.mode.startswith("I;16") or (img.mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0
        elif img.mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    elif "transparency" in img.info and img.mode in ("P", "L", "LA", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


def _describe(exc: Exception) -> str:
    text = str(exc)
    if "cannot identify image file" in text:
        return "the uploaded file is not an image in a supported format (JPEG, PNG, WebP, ...)"
    if "truncated" in text:
        return "the image file is truncated"
    return "the image could not be decoded: it is corrupt or in an unsupported encoding"


def to_tensor(img: Image.Image, meta: ModelMeta) -> np.ndarray:
    """Resize and normalise an RGB image into a batch of one in the model's layout."""
    size = (meta.input_width, meta.input_height)
    if img.size != size:
        img = img.resize(size, _RESAMPLE[meta.resample])
    x = np.asarray(img, dtype=np.float32)
    # One multiply-add instead of scale, subtract, divide: ((p*scale) - mean)/std.
    mul = np.asarray([meta.scale / s for s in meta.std], dtype=np.float32)
    add = np.asarray([-m / s for m, s in zip(meta.mean, meta.std, strict=True)], dtype=np.float32)
    x *= mul
    if add.any():
        x += add
    if meta.layout == "NCHW":
        x = np.ascontiguousarray(x.transpose(2, 0, 1))
    return x[np.newaxis]


def preprocess(data: bytes, meta: ModelMeta, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode, resize and normalise one uploaded photo for `meta`'s model."""
    img = decode(data, (meta.input_width, meta.input_height), max_pixels)
    return to_tensor(img, meta)
