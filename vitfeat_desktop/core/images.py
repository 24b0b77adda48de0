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
from typing import Any, cast

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.fileio import NotAFileError, kind_of, open_regular

__all__ = ["NotAFileError", "kind_of", "open_regular"]  # re-exported: the callers that read image files

# Pixels we agree to decode. Bigger than any camera (a 150 MP medium-format file, a stitched panorama), far
# below a decompression bomb (a 30000x30000 PNG is 900 MP and several GB once decoded).
MAX_PIXELS = 200_000_000

# The most elongated picture we process. Resizing for a model scales the *shorter* side up to ~224-518 pixels, so
# the work grows with the aspect ratio, not with the file: a 798-byte 60000x4 PNG became 3.8 million x 256 pixels
# (9.7 GB at peak in ``vitfeat extract``). The widest real photos (stitched 360-degree panoramas, line-scan
# strips) stay well under 50:1; at 50:1 a 518-pixel shorter side is 13 megapixels, a normal photo's work.
MAX_ASPECT_RATIO = 50

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


def _reason(exc: BaseException) -> str:
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


def _check_size(image: Image.Image) -> None:
    """Refuse, from the header alone, what would cost unbounded memory or time to decode or to resize."""
    _check_dims(*image.size)


def _check_dims(width: int, height: int) -> None:
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
        _check_dims(width, height)
    except ValueError as exc:  # DecompressionBombError is not a ValueError: caught below
        raise ImageReadError(name, _reason(exc)) from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(name, _reason(exc)) from exc


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


def _open_raw(path: Path, min_side: int | None, info: dict[str, Any] | None = None) -> Image.Image:
    """A camera RAW file through its embedded JPEG preview (fast), else a half-size LibRaw decode."""
    try:
        import rawpy
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ImageReadError(path, "camera RAW support is not installed (rawpy)") from exc
    try:
        with open_regular(path) as fh, rawpy.imread(fh) as raw:
            flip = int(getattr(raw.sizes, "flip", 0) or 0)
            if info is not None:
                width, height = int(raw.sizes.width), int(raw.sizes.height)
                info.update(format="RAW", width=width, height=height, orientation=_FLIP_TO_EXIF.get(flip, 1))
            preview: Image.Image | None = None
            try:
                thumb = raw.extract_thumb()
            except Exception:
                thumb = None
            if thumb is not None:
                if thumb.format == rawpy.ThumbFormat.JPEG:
                    preview = Image.open(io.BytesIO(cast(bytes, thumb.data)))
                    if info is not None:
                        info.update({k: v for k, v in exif_summary(preview).items() if k in ("capture_date", "camera")})
                    if min_side:
                        preview.draft("RGB", (min_side, min_side))
                    preview.load()
                    # An embedded JPEG with its own orientation tag is trusted; otherwise use the RAW's.
                    if preview.getexif().get(0x0112, 1) not in (None, 1):
                        preview = ImageOps.exif_transpose(preview)
                        flip = 0
                elif thumb.format == rawpy.ThumbFormat.BITMAP:
                    preview = Image.fromarray(cast(np.ndarray, thumb.data))
            if preview is not None and min(preview.size) >= (min_side or 256):
                return _apply_libraw_flip(preview, flip)
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
            return Image.fromarray(rgb)  # postprocess already applied the flip
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"cannot decode camera RAW file ({_reason(exc)})") from exc


_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}


def _apply_libraw_flip(image: Image.Image, flip: int) -> Image.Image:
    # LibRaw's flip codes: 3 = 180 degrees, 5 = 90 degrees counter-clockwise, 6 = 90 degrees clockwise.
    if flip == 3:
        return image.transpose(Image.Transpose.ROTATE_180)
    if flip == 5:
        return image.transpose(Image.Transpose.ROTATE_90)
    if flip == 6:
        return image.transpose(Image.Transpose.ROTATE_270)
    return image


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
        image = _open_raw(path, min_side, info)
        _check_size(image)
        return image.convert("RGB") if image.mode != "RGB" else image
    try:
        with open_regular(path) as fh, Image.open(fh) as opened:
            _check_size(opened)
            if info is not None:
                _fill_info(opened, info)
            if getattr(opened, "n_frames", 1) > 1:
                opened.seek(0)  # animated GIF/WebP/multi-page TIFF: the first frame is the picture
            # Pillow calls a JPEG with an MPF block (most camera JPEGs: it lists their embedded previews) "MPO";
            # it is still one JPEG picture and must get the same reduced decode.
            if min_side and opened.format in ("JPEG", "MPO"):
                if opened.format == "MPO" and previews and not hf_compatible:
                    try:
                        preview = _camera_preview(opened, int(min_side))
                    except _PreviewFailed:
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
        raise ImageReadError(path, _reason(exc)) from exc
    return image


# MP types (CIPA DC-007) of the previews cameras embed after the main picture: the same picture, rendered by the
# camera at about 640x480 or 1920x1080. Other types (stereo pairs, panorama parts, disparity images) are other
# pictures and are never used in place of the main one.
_PREVIEW_MP_TYPES = frozenset({"Large Thumbnail (VGA Equivalent)", "Large Thumbnail (Full HD Equivalent)"})
# A preview's aspect ratio may differ from the main picture's by this much (rounding of odd sizes), no more: a
# 16:9 preview of a 3:2 photo is cropped or letterboxed and would change the features.
_PREVIEW_ASPECT_TOLERANCE = 0.01

_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class _PreviewFailed(Exception):
    """Reading an embedded preview failed after Pillow started on it; the caller reopens the file."""


def _camera_preview(opened: Image.Image, min_side: int) -> Image.Image | None:
    """The main picture of a camera JPEG decoded from its embedded large preview (MPF), or None.

    Why: a 24-megapixel JPEG costs ~47 ms of CPU to decode even at 1/8 scale, because every byte of its
    entropy-coded data must be Huffman-decoded whatever the output size; most cameras (Canon, Nikon, Sony,
    Fujifilm, Panasonic) also store the same picture as a ~1620x1080 to 1920x1280 "large thumbnail", which
    decodes at 1/2 scale in ~5 ms and, downscaled to the model's 224-256 pixels, gives the same features
    (``tests/bench/bench_index.py --part preview`` measures the cosine against the exact path).

    Used only when it is certainly the same picture and big enough: an MP type of "large thumbnail", a shorter
    side of at least ``min_side``, the main picture's aspect ratio, and no orientation tag of its own that
    disagrees with the main picture's (which is applied to it). Anything else, or any error reading it, gives
    None (``opened`` back at frame 0) and the caller decodes the main picture; once a preview's decode has
    started and failed, :class:`_PreviewFailed` is raised instead, because Pillow's state is then unreliable.
    """
    try:
        entries = opened.mpinfo[0xB002]  # type: ignore[attr-defined]
    except Exception:
        return None
    width, height = opened.size
    try:
        orientation = int(opened.getexif().get(0x0112) or 1)
    except Exception:
        return None
    if not 1 <= orientation <= 8:
        orientation = 1
    candidates = [
        frame for frame, entry in enumerate(entries)
        if frame > 0 and (entry.get("Attribute") or {}).get("MPType") in _PREVIEW_MP_TYPES
    ]
    if not candidates:
        return None
    preview: Image.Image | None = None
    try:
        for frame in candidates:
            opened.seek(frame)
            pw, ph = opened.size
            if opened.format not in ("JPEG", "MPO") or min(pw, ph) < min_side:
                continue
            if abs((pw / ph) / (width / height) - 1.0) > _PREVIEW_ASPECT_TOLERANCE:
                continue
            own = opened.getexif().get(0x0112)
            if own not in (None, 1, orientation):
                continue
            # Twice min_side: a preview is already downscaled by the camera, so it holds detail up to its own
            # pixel pitch, and 1/4 DCT scaling of it aliases enough to move features (cosine 0.994 on one of
            # 48 test files); at >= 2x the model's size the preprocessor's filtered resize does the rest
            # (cosine >= 0.9997) for ~0.5 ms more.
            opened.draft("RGB", (2 * min_side, 2 * min_side))
            try:
                opened.load()
            except Exception as exc:  # a truncated or corrupt preview: the main picture may still be fine
                raise _PreviewFailed() from exc
            preview = opened.copy()
            break
    except _PreviewFailed:
        raise
    except Exception:
        raise _PreviewFailed() from None
    if preview is None:
        try:
            opened.seek(0)
        except Exception:
            return None
        return None
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        preview = preview.transpose(method)
    preview.info.pop("exif", None)
    return to_rgb_composited(preview)


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


def exif_summary(image: Image.Image) -> dict[str, Any]:
    """Orientation, capture date (ISO 8601) and camera from an image's EXIF; bad EXIF gives what it can."""
    out: dict[str, Any] = {}
    try:
        exif = image.getexif()
    except Exception:
        return out
    try:
        orientation = int(exif.get(0x0112) or 1)
        out["orientation"] = orientation if 1 <= orientation <= 8 else 1
    except (TypeError, ValueError):
        out["orientation"] = 1
    make = _exif_text(exif.get(0x010F))
    model = _exif_text(exif.get(0x0110))
    if model and make and not model.lower().startswith(make.lower().split()[0]):
        model = f"{make} {model}"
    camera = model or make
    if camera:
        out["camera"] = camera
    date = None
    try:
        ifd = exif.get_ifd(0x8769)
        date = _exif_text(ifd.get(0x9003) or ifd.get(0x9004))
    except Exception:
        pass
    date = date or _exif_text(exif.get(0x0132))
    iso = _exif_date(date) if date else None
    if iso:
        out["capture_date"] = iso
    return out


def _exif_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join(str(value).replace("\x00", " ").split())
    return text[:100] or None


def _exif_date(text: str) -> str | None:
    """"2021:07:04 18:30:05" -> "2021-07-04T18:30:05"; placeholders like "0000:00:00 00:00:00" -> None."""
    import re

    match = re.match(r"^(\d{4})[:-](\d{2})[:-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?", text)
    if not match:
        return None
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    if year < 1800 or not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    date = f"{year:04d}-{month:02d}-{day:02d}"
    if match.group(4):
        date += f"T{match.group(4)}:{match.group(5)}:{match.group(6) or '00'}"
    return date


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
            raise ImageReadError(text, _reason(exc)) from exc
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

    from vitfeat_desktop import __version__

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
            _check_size(opened)
            opened.load()
            return _finish(opened, hf_compatible=True)
    except Exception as exc:
        raise ImageReadError(url, _reason(exc)) from exc


MAX_DOWNLOAD_BYTES = 256 * 2**20


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Split an iterable into lists of at most ``size`` items, lazily."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
