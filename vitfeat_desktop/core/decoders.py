"""The decoders beside Pillow's plain open: camera RAW files (their embedded JPEG preview, else a half-size LibRaw
decode) and the large preview a camera JPEG embeds (MPF), which gives the same features for a tenth of the
decode. :func:`vitfeat_desktop.core.images.open_image` chooses between them; HEIC/HEIF goes through Pillow once
pi-heif's opener is registered (:func:`vitfeat_desktop.core.images.ensure_plugins`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image, ImageOps

from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.exif import exif_summary
from vitfeat_desktop.core.fileio import open_regular
from vitfeat_desktop.core.pixels import failure_reason, to_rgb_composited


def open_raw(path: Path, min_side: int | None, info: dict[str, Any] | None = None) -> Image.Image:
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
        raise ImageReadError(path, f"cannot decode camera RAW file ({failure_reason(exc)})") from exc


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


# MP types (CIPA DC-007) of the previews cameras embed after the main picture: the same picture, rendered by the
# camera at about 640x480 or 1920x1080. Other types (stereo pairs, panorama parts, disparity images) are other
# pictures and are never used in place of the main one.
_PREVIEW_MP_TYPES = frozenset({"Large Thumbnail (VGA Equivalent)", "Large Thumbnail (Full HD Equivalent)"})


# A preview's aspect ratio may differ from the main picture's by this much (rounding of odd sizes), no more: a
# 16:9 preview of a 3:2 photo is cropped or letterboxed and would change the features.
_PREVIEW_ASPECT_TOLERANCE = 0.01


ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class PreviewFailed(Exception):
    """Reading an embedded preview failed after Pillow started on it; the caller reopens the file."""


def camera_preview(opened: Image.Image, min_side: int) -> Image.Image | None:
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
    started and failed, :class:`PreviewFailed` is raised instead, because Pillow's state is then unreliable.
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
                raise PreviewFailed() from exc
            preview = opened.copy()
            break
    except PreviewFailed:
        raise
    except Exception:
        raise PreviewFailed() from None
    if preview is None:
        try:
            opened.seek(0)
        except Exception:
            return None
        return None
    method = ORIENTATION_TRANSPOSE.get(orientation)
    if method is not None:
        preview = preview.transpose(method)
    preview.info.pop("exif", None)
    return to_rgb_composited(preview)
