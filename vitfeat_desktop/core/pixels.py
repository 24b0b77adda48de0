"""What an image may be before we spend memory on it, why a decode failed in words a person reads, and the
conversions to 8-bit RGB that keep what a viewer shows (16-bit scaled, not clipped; transparency on white).

Shared by the file decoders (:mod:`vitfeat_desktop.core.images`, :mod:`vitfeat_desktop.core.decoders`) and the
Python API's in-memory inputs, so every input gets the same limits."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.fileio import NotAFileError

# Pixels we agree to decode. Bigger than any camera (a 150 MP medium-format file, a stitched panorama), far
# below a decompression bomb (a 30000x30000 PNG is 900 MP and several GB once decoded).
MAX_PIXELS = 200_000_000


# The most elongated picture we process. Resizing for a model scales the *shorter* side up to ~224-518 pixels, so
# the work grows with the aspect ratio, not with the file: a 798-byte 60000x4 PNG became 3.8 million x 256 pixels
# (9.7 GB at peak in ``vitfeat extract``). The widest real photos (stitched 360-degree panoramas, line-scan
# strips) stay well under 50:1; at 50:1 a 518-pixel shorter side is 13 megapixels, a normal photo's work.
MAX_ASPECT_RATIO = 50


def failure_reason(exc: BaseException) -> str:
    """A short, human reason for a decode failure (no tracebacks, no Pillow internals)."""
    if isinstance(exc, NotAFileError):
        text = str(exc)
        return text[text.rfind(" is ") + 1 :] if " is " in text else text
    if isinstance(exc, FileNotFoundError):
        return "file not found (deleted or moved while scanning?)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or a format we cannot read"
    if isinstance(exc, Image.DecompressionBombError):
        return "image too large (possible decompression bomb)"
    if isinstance(exc, ImageShapeError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory to decode this image"
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if "truncated" in low or "premature end" in low or "broken data stream" in low:
        return "file is truncated or corrupt"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{os.strerror(exc.errno).lower()}"
    return text.splitlines()[0][:200]


class ImageShapeError(ValueError):
    """An image whose shape cannot be processed sensibly (no pixels, or absurdly elongated); the message is the
    reason shown to the user."""


def check_size(image: Image.Image) -> None:
    """Refuse, from the header alone, what would cost unbounded memory or time to decode or to resize."""
    check_dims(*image.size)


def check_dims(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageShapeError(f"image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise Image.DecompressionBombError(
            f"{width}x{height} is more than {MAX_PIXELS // 1_000_000} megapixels"
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageShapeError(
            f"{width}x{height} is too elongated to process (aspect ratio over {MAX_ASPECT_RATIO}:1); "
            "resizing it for the model would take gigabytes"
        )


def check_processable(image: Image.Image | tuple[int, int], name: str = "<image>") -> None:
    """Raise :class:`ImageReadError` for an in-memory image (or a ``(width, height)``) that has no pixels, is
    a decompression bomb or too elongated to resize for a model: the Python API's inputs get the same limits
    as files."""
    width, height = image if isinstance(image, tuple) else image.size
    try:
        check_dims(width, height)
    except ValueError as exc:  # DecompressionBombError is not a ValueError: caught below
        raise ImageReadError(name, failure_reason(exc)) from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(name, failure_reason(exc)) from exc


def high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit and float images to 8 bits instead of clipping them.

    ``convert("RGB")`` on a 16-bit greyscale PNG clips every value above 255 to white, which turns most
    scientific and scanned images into a blank page.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L")
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        arr = np.nan_to_num((arr - lo) / (hi - lo), nan=0.0, posinf=1.0, neginf=0.0)
        return Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8), mode="L")
    return image


def to_rgb_composited(image: Image.Image) -> Image.Image:
    """RGB as a viewer shows it: transparency composited onto white, high bit depths scaled, CMYK converted."""
    image = high_bit_depth_to_8bit(image)
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image
