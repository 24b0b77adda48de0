"""Open any image a photographer has, upright and in RGB, or say exactly why not.

Two callers with different needs share this module:

* the Python pipeline, whose output must equal Hugging Face's on the same file, so it decodes the full image
  and converts like ``transformers.image_utils.load_image`` (EXIF transpose, then ``convert("RGB")``);
* the library indexer, which must keep pace with inference on 24-megapixel JPEGs, so it asks the JPEG decoder
  for a reduced image (``draft``) that is never smaller than what the model's preprocessor needs, composites
  transparency onto white (what a viewer shows) and reads HEIC and camera RAW files.

Every failure is an :class:`ImageReadError` with a short reason, so a scan can list it and go on.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vitfeat_desktop.core.decoders import PreviewFailed, camera_preview, open_raw
from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.exif import exif_summary
from vitfeat_desktop.core.fileio import kind_of, open_regular
from vitfeat_desktop.core.pixels import (
    MAX_PIXELS,
    check_processable,
    check_size,
    failure_reason,
    high_bit_depth_to_8bit,
    to_rgb_composited,
)

JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif"})


RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw"})


HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})


IMAGE_EXTENSIONS = frozenset(
    {
        *JPEG_EXTENSIONS,
        ".png",
        ".webp",
        ".tif",
        ".tiff",
        ".bmp",
        ".dib",
        ".gif",
        ".avif",
        *HEIF_EXTENSIONS,
        *RAW_EXTENSIONS,
    }
)


# Images that still have more pixels than this after ``draft`` are decoded one at a time (see ``_open``).
BIG_DECODE_PIXELS = 40_000_000
_big_decode = threading.Semaphore(1)

T = TypeVar("T")

_plugins_lock = threading.Lock()
_plugins_ready = False


def ensure_plugins() -> None:
    """Register optional decoders (HEIF) once, and make Pillow strict about truncated files.

    Truncated JPEGs must fail loudly: Pillow's ``LOAD_TRUNCATED_IMAGES`` would silently give a half-grey
    picture that then matches every other half-grey picture as a "duplicate".
    """
    global _plugins_ready
    if _plugins_ready:
        return
    with _plugins_lock:
        if _plugins_ready:
            return
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        # Pillow raises DecompressionBombError above 2x this value; we check the exact limit ourselves.
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:  # pi-heif: the decode-only build (LGPL libheif + libde265, no GPL x265 encoder); same API
            import pi_heif as heif
        except ImportError:  # pragma: no cover - an older install with pillow-heif only
            try:
                import pillow_heif as heif
            except ImportError:
                heif = None
        if heif is not None:
            with contextlib.suppress(Exception):
                heif.register_heif_opener()
        _plugins_ready = True


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name looks like something we can index (by extension, case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_image(
    path: str | os.PathLike[str],
    *,
    min_side: int | None = None,
    hf_compatible: bool = False,
) -> Image.Image:
    """Decode ``path`` into an upright RGB image, or raise :class:`ImageReadError` with a short reason.

    ``min_side``: decode JPEGs (and RAW previews) at a reduced scale whose shorter side is still at least
    this many pixels; the decoder's DCT scaling is both much faster and a good low-pass filter.
    ``hf_compatible``: convert exactly like transformers' ``load_image`` (alpha dropped rather than
    composited) so pipeline outputs equal Hugging Face's.
    """
    return _open(path, min_side=min_side, hf_compatible=hf_compatible, info=None)


def open_image_with_info(
    path: str | os.PathLike[str], *, min_side: int | None = None
) -> tuple[Image.Image, dict[str, Any]]:
    """Like :func:`open_image` (viewer conversion), plus what the catalogue keeps about the file, from the
    same single decode: ``format``, full-resolution upright ``width``/``height``, EXIF ``orientation``,
    ``capture_date`` (ISO 8601, from DateTimeOriginal) and ``camera`` ("Make Model") when present."""
    info: dict[str, Any] = {}
    image = _open(path, min_side=min_side, hf_compatible=False, info=info)
    info.setdefault("width", image.width)
    info.setdefault("height", image.height)
    _upright_size(info, image)
    return image, info


def _open(
    path: str | os.PathLike[str],
    *,
    min_side: int | None,
    hf_compatible: bool,
    info: dict[str, Any] | None,
    previews: bool = True,
) -> Image.Image:
    ensure_plugins()
    path = Path(path)
    if path.suffix.lower() in RAW_EXTENSIONS:
        image = open_raw(path, min_side, info)
        check_size(image)
        return image.convert("RGB") if image.mode != "RGB" else image
    try:
        with open_regular(path) as fh, Image.open(fh) as opened:
            check_size(opened)
            if info is not None:
                _fill_info(opened, info)
            if getattr(opened, "n_frames", 1) > 1:
                opened.seek(0)  # animated GIF/WebP/multi-page TIFF: the first frame is the picture
            # Pillow calls a JPEG with an MPF block (most camera JPEGs: it lists their embedded previews) "MPO";
            # it is still one JPEG picture and must get the same reduced decode.
            if min_side and opened.format in ("JPEG", "MPO"):
                if opened.format == "MPO" and previews and not hf_compatible:
                    try:
                        preview = camera_preview(opened, int(min_side))
                    except PreviewFailed:
                        # Pillow's file object is left mid-frame: start again on a fresh one, main picture only.
                        return _open(path, min_side=min_side, hf_compatible=hf_compatible, info=info,
                                     previews=False)
                    if preview is not None:
                        if info is not None:
                            info["decoded_from"] = "preview"
                        return preview
                opened.draft("RGB", (int(min_side), int(min_side)))
            if opened.width * opened.height > BIG_DECODE_PIXELS:
                # One huge full-size decode at a time: four threads each holding a 100-megapixel PNG would
                # need over a gigabyte; queued, they need a quarter of it.
                with _big_decode:
                    opened.load()
                    image = _finish(opened, hf_compatible)
            else:
                opened.load()
                image = _finish(opened, hf_compatible)
    except ImageReadError:
        raise
    except Exception as exc:  # Pillow raises many types: OSError, ValueError, SyntaxError, struct.error ...
        if isinstance(exc, UnidentifiedImageError) and _is_empty(path):
            raise ImageReadError(path, "empty file (0 bytes)") from exc
        raise ImageReadError(path, failure_reason(exc)) from exc
    return image


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _fill_info(opened: Image.Image, info: dict[str, Any]) -> None:
    """Header facts, read before ``draft`` shrinks the image and before decoding. The size is as stored;
    :func:`_upright_size` turns it once the decoded image shows which way up it ended."""
    width, height = opened.size
    # Pillow names a JPEG that carries an MPF block (a camera's embedded previews) "MPO"; to the user it is
    # the JPEG it is (stereo .mpo files are not indexed).
    fmt = "JPEG" if opened.format == "MPO" else (opened.format or "unknown")
    info.update(format=fmt, width=width, height=height, **exif_summary(opened))


def _upright_size(info: dict[str, Any], image: Image.Image) -> None:
    """Swap the stored full-resolution size if the upright image is turned against it.

    Asking the result rather than the orientation tag is deliberate: some decoders apply the tag themselves
    (libheif for HEIC, Pillow's TIFF reader) and report sizes already turned, others leave it to us.
    """
    width, height = info.get("width"), info.get("height")
    if not width or not height or image.width == image.height or width == height:
        return
    if (image.width > image.height) != (width > height):
        info["width"], info["height"] = height, width


def _finish(image: Image.Image, hf_compatible: bool) -> Image.Image:
    """Apply EXIF orientation and convert to RGB; returns an image detached from the file."""
    upright = ImageOps.exif_transpose(image)
    if upright is None:  # pragma: no cover - only with in_place=True
        upright = image
    if hf_compatible:
        upright = high_bit_depth_to_8bit(upright)
        rgb = upright.convert("RGB")
    else:
        rgb = to_rgb_composited(upright)
    if rgb is image:
        rgb = image.copy()
    return rgb


def load_image(source: Any, *, timeout: float = 30.0) -> Image.Image:
    """One pipeline input (path, URL, PIL image or HxWx3 uint8 array) as an upright RGB image.

    Mirrors transformers' ``load_image`` so results are comparable, with clear errors instead of its
    base64 guessing.
    """
    ensure_plugins()
    if isinstance(source, Image.Image):
        check_processable(source)
        upright = ImageOps.exif_transpose(source) or source
        upright = high_bit_depth_to_8bit(upright)
        return upright if upright.mode == "RGB" else upright.convert("RGB")
    if isinstance(source, np.ndarray):
        return array_to_image(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, str) and text.startswith(("http://", "https://")):
            return _load_url(text, timeout)
        if not os.path.exists(text):
            raise ImageReadError(text, "file not found")
        try:
            kind = kind_of(os.stat(text).st_mode)
        except OSError as exc:
            raise ImageReadError(text, failure_reason(exc)) from exc
        if kind is not None:
            raise ImageReadError(text, f"is {kind}, not a photo file")
        return open_image(text, hf_compatible=True)
    raise TypeError(
        "an image must be a file path, an http(s) URL, a PIL.Image or an HxWx3 uint8 numpy array, "
        f"not {type(source).__name__}"
    )


def array_to_image(array: np.ndarray) -> Image.Image:
    """An ``HxWx3`` (or ``HxW``, ``HxWx4``) uint8 array as an RGB image, with a clear error for anything else."""
    if array.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 (0-255), got {array.dtype}")
    if array.ndim in (2, 3):
        check_processable((int(array.shape[1]), int(array.shape[0])), "<array>")
    if array.ndim == 2:
        return Image.fromarray(array, mode="L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), mode="RGB")
    raise ValueError(f"image arrays must be HxWx3 (RGB), got shape {tuple(array.shape)}")


def _load_url(url: str, timeout: float) -> Image.Image:
    import urllib.error
    import urllib.request

    from vitfeat_desktop.version import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"vitfeat-desktop/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ImageReadError(url, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ImageReadError(url, f"cannot download: {reason}") from exc
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ImageReadError(url, f"larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            check_size(opened)
            opened.load()
            return _finish(opened, hf_compatible=True)
    except Exception as exc:
        raise ImageReadError(url, failure_reason(exc)) from exc


MAX_DOWNLOAD_BYTES = 256 * 2**20


def iter_batches(items: Iterable[T], size: int) -> Iterable[list[T]]:
    """Split an iterable into lists of at most ``size`` items, lazily."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
