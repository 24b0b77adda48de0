"""Camera JPEGs with an embedded MPF preview: the reduced decode may use the preview, but only when it is
certainly the same picture, and the result keeps ``open_image``'s contract (upright, RGB, >= min_side)."""

from __future__ import annotations

import importlib.util
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers.photos import BENCH
from PIL import Image

from vitfeat_desktop.core.images import open_image, open_image_with_info

_spec = importlib.util.spec_from_file_location(
    "make_camera_jpegs", BENCH / "make_camera_jpegs.py")
assert _spec is not None and _spec.loader is not None
_make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_make)
mark_large_thumbnails = _make.mark_large_thumbnails

MIN_SIDE = 256


def _scene(size: tuple[int, int]) -> Image.Image:
    """A picture whose orientation and content show in the pixels: red left, blue right, a green top band,
    a smooth gradient (so downscaled renditions of it agree closely)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.where(x < w // 2, 220, 30)
    arr[..., 2] = np.where(x < w // 2, 30, 220)
    arr[..., 1] = np.where(y < h // 5, 200, (x * 100 // w).astype(np.uint8))
    return Image.fromarray(arr)


def _write(path: Path, main: Image.Image, preview: Image.Image, *, orientation: int = 1,
           large_thumbnail: bool = True, preview_orientation: int | None = None) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    main.save(buf, format="MPO", save_all=True, append_images=[preview], quality=92, exif=exif)
    data = buf.getvalue()
    if large_thumbnail:
        data = mark_large_thumbnails(data)
    if preview_orientation is not None:
        # Pillow writes the main picture's EXIF into every frame: put in a preview with a tag of its own.
        pexif = Image.Exif()
        pexif[0x0112] = preview_orientation
        own = io.BytesIO()
        preview.save(own, format="JPEG", quality=92, exif=pexif)
        data = _replace_last_frame(data, own.getvalue())
    path.write_bytes(data)
    return path


def _replace_last_frame(data: bytes, frame: bytes) -> bytes:
    """Swap the last MPF frame (stored at the end of the file) for other JPEG bytes, fixing its size entry."""
    buf = bytearray(data)
    base, endian, table, entries = _make.mp_entries(buf)
    last = base + table + 16 * (entries - 1)
    (offset,) = struct.unpack_from(endian + "I", buf, last + 8)
    struct.pack_into(endian + "I", buf, last + 4, len(frame))
    return bytes(buf[: base + offset]) + frame


def _stored_as(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores for a picture that must be shown ``upright`` with this EXIF orientation."""
    if orientation == 6:  # shown after a 90 degree clockwise turn: stored turned counter-clockwise
        return upright.transpose(Image.Transpose.ROTATE_90)
    if orientation == 3:
        return upright.transpose(Image.Transpose.ROTATE_180)
    return upright


def _similar(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference (0-255) of two renditions of a picture, compared at 64x64."""
    x = np.asarray(a.convert("RGB").resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    y = np.asarray(b.convert("RGB").resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    return float(np.abs(x - y).mean())


@pytest.mark.parametrize("orientation", [1, 3, 6])
def test_preview_is_used_and_upright(tmp_path: Path, orientation: int) -> None:
    upright = _scene((1200, 800))
    stored = _stored_as(upright, orientation)
    path = _write(tmp_path / "cam.jpg", stored, stored.resize((stored.width // 2, stored.height // 2)),
                  orientation=orientation)
    image, info = open_image_with_info(path, min_side=MIN_SIDE)
    assert info["decoded_from"] == "preview"
    assert image.mode == "RGB" and min(image.size) >= MIN_SIDE
    assert image.size == (600, 400)  # upright, like the picture
    assert (info["width"], info["height"]) == (1200, 800)
    assert info["format"] == "JPEG"
    assert info["orientation"] == orientation
    exact = open_image(path)
    assert exact.size == (1200, 800)
    assert _similar(image, exact) < 4.0


def test_exact_path_never_uses_the_preview(tmp_path: Path) -> None:
    main = _scene((1200, 800))
    # A preview that is a different picture (mirrored): the exact path must not show it.
    path = _write(tmp_path / "cam.jpg", main, main.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((600, 400)))
    assert _similar(open_image(path, hf_compatible=True), main) < 4.0
    assert _similar(open_image(path), main) < 4.0


@pytest.mark.parametrize("case", ["undefined-type", "too-small", "other-aspect", "own-orientation"])
def test_unsuitable_preview_falls_back_to_the_main_picture(tmp_path: Path, case: str) -> None:
    main = _scene((2400, 1600))
    # The preview is mirrored, so a wrongly used preview shows in the pixels.
    mirrored = main.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    preview = {
        "undefined-type": mirrored.resize((600, 400)),
        "too-small": mirrored.resize((300, 200)),
        "other-aspect": mirrored.resize((640, 360)),
        "own-orientation": mirrored.resize((600, 400)),
    }[case]
    path = _write(tmp_path / "cam.jpg", main, preview, orientation=1,
                  large_thumbnail=case != "undefined-type",
                  preview_orientation=3 if case == "own-orientation" else None)
    image, info = open_image_with_info(path, min_side=MIN_SIDE)
    assert "decoded_from" not in info
    assert image.size == (600, 400)  # the main picture, reduced by the JPEG decoder (1/4 scale)
    assert _similar(image, main) < 4.0
    assert _similar(image, mirrored) > 40.0


def test_truncated_preview_falls_back_to_the_main_picture(tmp_path: Path) -> None:
    main = _scene((2400, 1600))
    path = _write(tmp_path / "cam.jpg", main, main.resize((1200, 800)))
    # Cut the file inside the preview (stored last), as an interrupted copy does; the main picture is intact.
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])
    image, info = open_image_with_info(path, min_side=MIN_SIDE)
    assert "decoded_from" not in info
    assert _similar(image, main) < 4.0
