"""Formats the library reads, the metadata it keeps, and the HF-exact path staying exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.exif import exif_summary
from vitfeat_desktop.core.images import IMAGE_EXTENSIONS, is_image_path, load_image, open_image, open_image_with_info


def _picture(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Left half red, right half blue: orientation mistakes are visible in the pixels."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:, : size[0] // 2] = (220, 20, 20)
    arr[:, size[0] // 2 :] = (20, 20, 220)
    return Image.fromarray(arr)


def _left_is_red(image: Image.Image) -> bool:
    arr = np.asarray(image.convert("RGB"), dtype=np.int32)
    left, right = arr[:, : arr.shape[1] // 4].mean(axis=(0, 1)), arr[:, -arr.shape[1] // 4 :].mean(axis=(0, 1))
    return bool(left[0] > left[2] + 60 and right[2] > right[0] + 60)


@pytest.mark.parametrize("ext, kwargs", [
    (".jpg", {"quality": 92}),
    (".png", {}),
    (".webp", {"quality": 90}),
    (".tif", {}),
    (".bmp", {}),
    (".gif", {}),
    (".avif", {"quality": 90}),
    (".heic", {"quality": 90}),
])
def test_formats_decode_upright_rgb(tmp_path: Path, ext: str, kwargs: dict[str, object]) -> None:
    path = tmp_path / f"pic{ext}"
    if ext == ".heic":
        pytest.importorskip("pillow_heif").register_heif_opener()
    _picture().save(path, **kwargs)
    image, info = open_image_with_info(path, min_side=64)
    assert image.mode == "RGB"
    assert image.size == (160, 120)
    assert (info["width"], info["height"]) == (160, 120)
    assert info["format"]
    assert _left_is_red(image)
    assert is_image_path(path) and ext in IMAGE_EXTENSIONS


def test_sixteen_bit_tiff_and_png_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    for name in ("g16.png", "g16.tif"):
        path = tmp_path / name
        Image.fromarray(ramp).save(path)
        arr = np.asarray(open_image(path), dtype=np.int32)[:, :, 0]
        assert arr[:, 0].max() <= 2 and arr[:, -1].min() >= 253  # full range kept
        assert 100 < arr[:, 128].mean() < 155  # the middle is grey, not white (what clipping would give)
    rgb16 = tmp_path / "rgb16.tif"
    data = np.zeros((32, 48, 3), dtype=np.uint16)
    data[..., 0] = 60000
    try:
        Image.fromarray(data, mode="RGB;16").save(rgb16)  # type: ignore[call-overload]
    except (TypeError, ValueError, KeyError):
        return  # this Pillow cannot build 16-bit RGB in memory; the greyscale cases above cover scaling
    assert open_image(rgb16).mode == "RGB"


def test_exif_orientation_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    # Stored sideways (turned 90 degrees counter-clockwise); orientation 6 says: turn clockwise to view.
    stored = _picture((160, 120)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R5"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 18:30:05"
    stored.save(path, exif=exif, quality=95)
    image, info = open_image_with_info(path, min_side=64)
    assert stored.size == (120, 160)
    assert image.size == (160, 120)
    assert _left_is_red(image)
    assert (info["width"], info["height"]) == (160, 120)  # upright size, as a viewer shows it
    assert info["orientation"] == 6
    assert info["camera"] == "Canon EOS R5"
    assert info["capture_date"] == "2021-07-04T18:30:05"


def test_exif_placeholders_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "zeros.jpg"
    exif = Image.Exif()
    exif[0x0132] = "0000:00:00 00:00:00"
    exif[0x0110] = "NIKON D850"
    exif[0x010F] = "NIKON CORPORATION"
    _picture().save(path, exif=exif)
    with Image.open(path) as im:
        summary = exif_summary(im)
    assert "capture_date" not in summary
    assert summary["camera"] == "NIKON D850"  # Make is not repeated when Model already starts with it


def test_jpeg_draft_never_below_min_side(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _picture((4000, 3000)).save(path, quality=85)
    image = open_image(path, min_side=256)
    assert min(image.size) >= 256
    assert max(image.size) < 4000  # reduced by the decoder
    full = open_image(path)
    assert full.size == (4000, 3000)


def test_camera_raw_dng(tmp_path: Path) -> None:
    pytest.importorskip("rawpy")
    from vitfeat_desktop.selftest.fixtures import write_linear_dng

    rgb = np.zeros((120, 160, 3), dtype=np.uint16)
    rgb[:, :80] = (50000, 3000, 3000)
    rgb[:, 80:] = (3000, 3000, 50000)
    path = tmp_path / "cam.dng"
    write_linear_dng(path, rgb)
    image, info = open_image_with_info(path, min_side=32)
    assert image.mode == "RGB"
    assert min(image.size) >= 32
    assert info["format"] == "RAW"
    assert _left_is_red(image)


def test_corrupt_raw_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.cr2"
    path.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(ImageReadError) as err:
        open_image(path)
    assert "RAW" in err.value.reason


def test_hf_compatible_path_matches_transformers(tmp_path: Path) -> None:
    """``load_image`` must keep converting exactly like transformers (alpha dropped, EXIF transposed)."""
    hf_utils = pytest.importorskip("transformers.image_utils")
    rgba = tmp_path / "alpha.png"
    arr = np.zeros((40, 50, 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = np.linspace(0, 255, 50).astype(np.uint8)
    Image.fromarray(arr, mode="RGBA").save(rgba)
    rotated = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    _picture().save(rotated, exif=exif)
    for path in (rgba, rotated):
        ours = np.asarray(load_image(str(path)))
        theirs = np.asarray(hf_utils.load_image(str(path)))
        assert ours.shape == theirs.shape
        assert np.array_equal(ours, theirs)
    # ... while the library's viewer path composites transparency on white.
    assert np.asarray(open_image(rgba))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("ext", [".heic", ".avif", ".webp", ".png", ".tif"])
def test_exif_orientation_in_other_containers(tmp_path: Path, ext: str) -> None:
    if ext == ".heic":
        pytest.importorskip("pillow_heif").register_heif_opener()
    stored = _picture((160, 120)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"rot{ext}"
    stored.save(path, exif=exif.tobytes())
    image, info = open_image_with_info(path, min_side=64)
    assert image.size == (160, 120)  # turned upright exactly once (libheif applies it itself for HEIC)
    assert _left_is_red(image)
    assert (info["width"], info["height"]) == (160, 120)
