"""Keeper rules: the keeper of a group is the file the others were made from, with its reason in words.

Each rule is checked on a real shared photo edited here (small, fast), plus the rules that need no pixels
(reference folders, RAW, the user's choice, the never-by-name tie-break).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.photos import PHOTOS
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.keeper import KeeperJudge
from vitfeat_desktop.core.dupes.keeper_rules import keeper_key, keeper_reason
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.sidecars import KeeperChoices
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.images import open_image, open_image_with_info
from vitfeat_desktop.core.phash import image_hashes


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    path = PHOTOS / "n01531178_goldfinch.JPEG"
    if not path.is_file():
        pytest.skip("shared photos are not available")
    with Image.open(path) as opened:
        return ImageOps.exif_transpose(opened).convert("RGB")


def _save(img: Image.Image, path: Path, quality: int = 95, **kw: object) -> Path:
    if path.suffix == ".png":
        img.save(path, "PNG")
    else:
        img.save(path, "JPEG", quality=quality, **kw)  # type: ignore[arg-type]
    return path


def _info(path: Path, i: int = 0) -> FileInfo:
    image, facts = open_image_with_info(path, min_side=64)
    st = path.stat()
    return FileInfo(id=i, path=str(path), size=st.st_size, width=facts.get("width"), height=facts.get("height"),
                    format=facts.get("format"), capture_date=facts.get("capture_date"), camera=facts.get("camera"),
                    orientation=facts.get("orientation"), hashes=image_hashes(image), mtime=st.st_mtime)


def _keeper(*paths: Path) -> tuple[str, str]:
    files = [_info(p, i) for i, p in enumerate(paths)]
    k, reason = KeeperJudge().choose(files)
    return Path(files[k].path).name, reason


def test_upscale_loses_to_its_source(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg")
    up = photo.resize((photo.width * 2, photo.height * 2), Image.Resampling.BICUBIC)
    upscaled = _save(up, tmp_path / "upscaled.jpg", quality=95)
    name, reason = _keeper(upscaled, original)
    assert name == "original.jpg"
    assert reason == "the other file is this picture upscaled 2x: no extra detail"


@pytest.mark.parametrize("frame", ["entry/0002.jpg", "fountain/0008.jpg"])
def test_a_soft_camera_original_is_never_called_an_upscale_of_its_web_export(tmp_path: Path, frame: str) -> None:
    """A real 3072x2048 camera frame is soft per pixel: beside its own 1/3 web export its detail above the
    export's resolution is as low as an upscale's (0.07-0.10 measured), so that alone must not make the export
    the keeper and offer the camera original for removal."""
    source = PHOTOS.parent / "scenes" / frame
    if not source.is_file():
        pytest.skip("shared scenes are not available")
    original = tmp_path / "original.jpg"
    shutil.copy(source, original)
    with Image.open(source) as opened:
        rgb = opened.convert("RGB")
    web = _save(rgb.resize((rgb.width // 3, rgb.height // 3), Image.Resampling.LANCZOS), tmp_path / "web.jpg",
                quality=82)
    name, reason = _keeper(web, original)
    assert name == "original.jpg", reason
    assert "upscaled" not in reason


def test_genuinely_sharper_file_wins_over_its_downscale(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=80)
    half = _save(photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.LANCZOS),
                 tmp_path / "half.jpg", quality=98)
    name, reason = _keeper(half, original)
    assert name == "original.jpg"
    assert reason.startswith(f"higher resolution with real detail ({photo.width}x{photo.height})")


def test_border_and_letterbox_are_additions(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg")
    bordered = _save(ImageOps.expand(photo, border=30, fill=(255, 255, 255)), tmp_path / "bordered.jpg")
    assert _keeper(bordered, original) == ("original.jpg", "the other file adds a white border")
    canvas = Image.new("RGB", (photo.width, round(photo.width * 9 / 16) + 200), (0, 0, 0))
    canvas.paste(photo, (0, (canvas.height - photo.height) // 2))
    boxed = _save(canvas, tmp_path / "boxed.jpg")
    assert _keeper(boxed, original) == ("original.jpg", "the other file adds black letterbox bars")


def test_colour_original_of_a_grayscale_copy(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=80)
    gray = _save(ImageOps.grayscale(photo).convert("RGB"), tmp_path / "gray.jpg", quality=98)
    assert _keeper(gray, original) == ("original.jpg", "colour original of a black-and-white copy")


def test_png_resave_of_a_jpeg(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=90)
    with Image.open(original) as opened:
        png = _save(opened.convert("RGB"), tmp_path / "resaved.png")
    assert png.stat().st_size > original.stat().st_size  # the old "larger file" rule kept the PNG
    assert _keeper(png, original) == (
        "original.jpg", "the other file is a lossless PNG re-save of this JPEG (identical pixels): no extra detail")


def test_lossless_original_of_a_jpeg(tmp_path: Path, photo: Image.Image) -> None:
    png = _save(photo, tmp_path / "master.png")
    jpeg = _save(photo, tmp_path / "export.jpg", quality=90)
    name, reason = _keeper(jpeg, png)
    assert name == "master.png"
    assert reason == "lossless original (PNG); the other file is a JPEG of it"


def _decoded(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return opened.convert("RGB")


def test_watermark_is_a_local_addition(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=92)
    marked = _decoded(original)
    draw = ImageDraw.Draw(marked)
    try:
        font = ImageFont.load_default(size=photo.height // 10)
    except TypeError:  # old Pillow
        font = ImageFont.load_default()
    draw.text((21, photo.height * 2 // 3 + 1), "© My Photos 2024", fill=(0, 0, 0), font=font)
    draw.text((20, photo.height * 2 // 3), "© My Photos 2024", fill=(255, 255, 255), font=font)
    watermarked = _save(marked, tmp_path / "watermarked.jpg", quality=92)
    assert _keeper(watermarked, original) == (
        "original.jpg", "the other file adds a watermark or text (a local overlay on this picture)")


@pytest.mark.parametrize(("edit", "words"), [
    (Image.Transpose.ROTATE_90, "the other file is this picture turned 90° and re-saved"),
    (Image.Transpose.FLIP_LEFT_RIGHT, "the other file is this picture mirrored and re-saved"),
])
def test_turned_or_mirrored_resave(tmp_path: Path, photo: Image.Image, edit: Image.Transpose, words: str) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=95)
    copy = _save(_decoded(original).transpose(edit), tmp_path / "copy.jpg", quality=85)
    assert _keeper(copy, original) == ("original.jpg", words)


def test_exif_orientation_copy(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    copy = _save(_decoded(original).transpose(Image.Transpose.ROTATE_90), tmp_path / "phone.jpg", quality=85,
                 exif=exif.tobytes())
    assert _keeper(copy, original) == (
        "original.jpg", "the other file is this picture re-saved with its pixels turned (EXIF orientation)")


def test_harder_recompression_and_higher_quality_resave(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=85)
    harder = _save(_decoded(original), tmp_path / "small.jpg", quality=40)
    assert _keeper(harder, original) == (
        "original.jpg", "the other file is this picture recompressed harder (JPEG quality ~40 vs ~85)")
    # the case: a 2024 q95 re-save (bigger file, newer date) of a 2019 original
    resave = _save(_decoded(original), tmp_path / "resave-2024.jpg", quality=95)
    assert resave.stat().st_size > original.stat().st_size
    assert _keeper(resave, original) == (
        "original.jpg", "the other file is a re-save of this JPEG at a higher quality setting (~95 vs ~85): no "
                        "extra detail")


def test_camera_exif_over_an_export_of_the_same_pixels(tmp_path: Path, photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    camera = _save(photo, tmp_path / "IMG_0001.jpg", quality=90, exif=exif.tobytes())
    export = _save(_decoded(camera), tmp_path / "IMG_0001-export.jpg", quality=90)
    name, reason = _keeper(export, camera)
    assert name == "IMG_0001.jpg"
    assert reason == "camera original (Canon EOS 5D); the other file has no camera data (an export)"


def test_colour_edit_against_the_rest_of_the_group(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg", quality=85)
    decoded = _decoded(original)
    edited = ImageEnhance.Color(ImageEnhance.Brightness(decoded).enhance(1.25)).enhance(1.4)
    colour = _save(edited, tmp_path / "colour.jpg", quality=98)  # the finest, biggest file of the group
    others = [_save(decoded.resize((decoded.width // d, decoded.height // d), Image.Resampling.LANCZOS),
                    tmp_path / f"small{d}.jpg", quality=90) for d in (2, 3, 4)]
    name, reason = _keeper(colour, original, *others)
    assert name == "original.jpg"
    assert reason == ("colour.jpg's colours are edited (brightness, contrast or saturation differ from the rest of "
                      "the group)")


def test_raw_over_its_jpeg_export_even_upscaled(tmp_path: Path) -> None:
    raw = FileInfo(id=0, path=str(tmp_path / "IMG_0001.dng"), size=25_000_000, width=6000, height=4000,
                   format="RAW")
    export = FileInfo(id=1, path=str(tmp_path / "IMG_0001.jpg"), size=9_000_000, width=12000, height=8000,
                      format="JPEG", capture_date="2019-01-01 10:00:00")
    k, reason = KeeperJudge().choose([export, raw])
    assert k == 1
    assert reason == "RAW original; the other file is rendered from it"
    assert min([export, raw], key=keeper_key) is raw  # also without pixels


def _tiny_dng(path: Path, photo: Image.Image) -> Path:
    """A real (if minimal) DNG: the photo's pixels as a 12-bit RGGB Bayer mosaic that LibRaw decodes."""
    from PIL import TiffImagePlugin

    rgb = np.asarray(photo, dtype=np.uint16)
    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    rgb = rgb[:h, :w]
    cfa = np.zeros((h, w), dtype=np.uint16)
    cfa[0::2, 0::2], cfa[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    cfa[1::2, 0::2], cfa[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    for tag, value, kind in ((50706, bytes([1, 4, 0, 0]), 1), (262, 32803, 3), (33421, (2, 2), 3),
                             (33422, bytes([0, 1, 1, 2]), 1), (50717, 4095, 3),
                             (50721, (1, 0, 0, 0, 1, 0, 0, 0, 1), 10)):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    ifd[50708], ifd[271], ifd[272] = "Test Camera", "Canon", "Canon EOS 5D"
    Image.frombytes("I;16", (w, h), (cfa * 16).astype("<u2").tobytes()).save(path, format="TIFF", tiffinfo=ifd)
    return path


def test_dng_over_its_2x_upscaled_jpeg_export(tmp_path: Path, photo: Image.Image) -> None:
    pytest.importorskip("rawpy")
    raw = _tiny_dng(tmp_path / "IMG_0002.dng", photo)
    export = _save(photo.resize((photo.width * 2, photo.height * 2), Image.Resampling.BICUBIC),
                   tmp_path / "IMG_0002.jpg", quality=95)
    name, reason = _keeper(export, raw)  # the case: the JPEG was kept and the RAW listed for removal
    assert name == "IMG_0002.dng"
    assert reason == "RAW original; the other file is rendered from it"


def test_never_by_name_identical_copies(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "horse_cart.JPEG")
    copy = tmp_path / "horse_cart copy.JPEG"
    shutil.copyfile(original, copy)
    stamp = original.stat().st_mtime
    os.utime(copy, (stamp, stamp))
    name, reason = _keeper(copy, original)
    assert name == "horse_cart.JPEG"
    assert reason == "otherwise equal: the shorter name (a copy's name adds to the original's)"
    # an older file date decides before the name does
    os.utime(copy, (stamp - 3600, stamp - 3600))
    assert _keeper(copy, original) == ("horse_cart copy.JPEG", "older file date (otherwise equal)")


def test_static_reasons_without_pixels(tmp_path: Path) -> None:
    def fake(i: int, name: str, **kw: object) -> FileInfo:
        base: dict[str, object] = {"size": 1000, "width": 1000, "height": 800, "format": "JPEG"}
        base.update(kw)
        return FileInfo(id=i, path=str(tmp_path / name), **base)  # type: ignore[arg-type]

    big, small = fake(0, "b.jpg", width=4000, height=3000), fake(1, "a.jpg")
    assert keeper_reason(big, small) == "higher resolution (4000x3000 vs 1000x800)"
    assert keeper_reason(fake(2, "c.jpg", size=5000), small).startswith("larger file, less compressed")
    old = fake(3, "d.jpg", capture_date="2005-06-01 10:00:00")
    assert keeper_reason(old, fake(4, "e.jpg", capture_date="2019-06-01 10:00:00")) == \
        "older capture date (2005-06-01 10:00:00)"
    # files that cannot be read give no pixel evidence: the static order decides
    assert KeeperJudge().choose([small, big]) == (1, "higher resolution (4000x3000 vs 1000x800)")


def _finder(files: list[FileInfo], pairs: list[tuple[int, int]], **kw: object) -> DuplicateFinder:
    m = len(pairs)
    return DuplicateFinder(files, np.array(pairs, dtype=np.int64), cos=np.full(m, 0.99, dtype=np.float32),
                           hash_dist=np.full(m, 30), transform=np.zeros(m, dtype=np.int64),
                           align=np.full(m, np.nan, dtype=np.float32), exact=np.zeros(m, dtype=bool),
                           same_pixels=np.zeros(m, dtype=bool), thresholds=Thresholds(), **kw)  # type: ignore[arg-type]


def test_group_keeper_from_pixels_reference_and_the_users_choice(tmp_path: Path, photo: Image.Image) -> None:
    original = _save(photo, tmp_path / "original.jpg")
    upscaled = _save(photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC),
                     tmp_path / "upscaled.jpg")
    gray = _save(ImageOps.grayscale(photo).convert("RGB"), tmp_path / "gray.jpg")
    files = [_info(p, i) for i, p in enumerate((original, upscaled, gray))]
    pairs = [(0, 1), (0, 2), (1, 2)]
    group = _finder(files, pairs).groups()[0]
    assert group.keeper.path == str(original)
    assert group.members[0].reason == "kept: upscaled.jpg is this picture upscaled 3x: no extra detail"
    assert {Path(m.info.path).name for m in group.removable} == {"upscaled.jpg", "gray.jpg"}
    assert all(m.reason for m in group.members[1:])  # each copy keeps the evidence of its match

    # a reference folder always wins, whatever the pixels say
    assert _finder(files, pairs, references=[tmp_path]).groups()[0].members[0].reason == \
        "kept: in a reference folder"

    # the user's choice sticks: stored, and read back by the next search
    store = tmp_path / "data" / "keepers.json"
    finder = _finder(files, pairs, choices=KeeperChoices(store))
    finder.choose_keeper(group, files[2])
    assert finder.groups()[0].keeper.path == str(gray)
    again = _finder(files, pairs, choices=KeeperChoices(store)).groups()[0]
    assert again.keeper.path == str(gray) and again.members[0].reason == "kept: your choice"
    # choosing another member replaces the earlier choice
    finder.choose_keeper(again, files[1])
    assert _finder(files, pairs, choices=KeeperChoices(store)).groups()[0].keeper.path == str(upscaled)
    KeeperChoices(store).clear(files)
    assert _finder(files, pairs, choices=KeeperChoices(store)).groups()[0].keeper.path == str(original)


def test_stages_sharing_one_judge_read_each_file_once_and_agree(tmp_path: Path, photo: Image.Image) -> None:
    """The staged review builds three finders over the same files: with one judge, no file's pixels are measured
    twice, and keepers decided side by side (several groups at once) are the ones decided one group at a time."""
    paths: list[Path] = []
    for g, angle in enumerate((0, 90, 180)):
        picture = photo.rotate(angle, expand=True) if angle else photo
        folder = tmp_path / f"g{g}"
        folder.mkdir()
        paths += [_save(picture, folder / "original.jpg"),
                  _save(picture.resize((picture.width * 2, picture.height * 2), Image.Resampling.BICUBIC),
                        folder / "upscaled.jpg"),
                  _save(ImageOps.grayscale(picture).convert("RGB"), folder / "gray.jpg")]
    files = [_info(p, i) for i, p in enumerate(paths)]
    pairs = [(3 * g + x, 3 * g + y) for g in range(3) for x, y in ((0, 1), (0, 2), (1, 2))]
    reads: list[str] = []

    def loader(path: str | os.PathLike[str], **kw: object) -> Image.Image:
        reads.append(str(path))
        return open_image(path, **kw)  # type: ignore[arg-type]

    judge = KeeperJudge(loader=loader)  # type: ignore[arg-type]
    first = _finder(files, pairs, judge=judge).groups()
    measured = len(reads)
    second = _finder(files, pairs, judge=judge).groups()
    assert measured and len(reads) == measured  # the second stage measured nothing again
    one_by_one = [KeeperJudge().choose([files[3 * g + x] for x in range(3)]) for g in range(3)]
    assert sorted(g.keeper.path for g in first) == sorted(g.keeper.path for g in second) == sorted(
        files[3 * g + k].path for g, (k, _why) in enumerate(one_by_one))
    assert all(Path(g.keeper.path).name == "original.jpg" for g in first)
