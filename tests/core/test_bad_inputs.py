"""Every bad input from issue 4 is either indexed or listed as skipped with a reason, and the scan goes on."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitfeat_desktop.core.library import scanner
from vitfeat_desktop.core.library.facade import Library


def _photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _png_declaring(path: Path, width: int, height: int) -> None:
    """A tiny valid-looking PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture()
def bad_folder(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "photos"
    root.mkdir()
    files: dict[str, Path] = {}

    good = root / "good.jpg"
    _photo(seed=1).save(good, quality=90)
    files["good"] = good

    truncated = root / "truncated.jpg"
    _photo((640, 480), seed=2).save(truncated, quality=95)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    files["truncated"] = truncated

    zero = root / "zero.jpg"
    zero.write_bytes(b"")
    files["zero"] = zero

    text = root / "notes.jpg"
    text.write_text("this is not a picture\n")
    files["text"] = text

    bomb = root / "bomb.png"
    _png_declaring(bomb, 30000, 30000)
    files["bomb"] = bomb

    unreadable = root / "secret.jpg"
    _photo(seed=3).save(unreadable)
    unreadable.chmod(0)
    files["unreadable"] = unreadable

    broken = root / "broken_link.jpg"
    broken.symlink_to(root / "does-not-exist.jpg")
    files["broken_link"] = broken

    loop = root / "loop.jpg"
    loop.symlink_to(loop)
    files["loop"] = loop

    vanishing = root / "vanishing.jpg"
    _photo(seed=4).save(vanishing)
    files["vanishing"] = vanishing

    weird = os.fsencode(str(root)) + b"/caf\xe9-latin1.jpg"
    _photo(seed=5).save(os.fsdecode(weird), format="JPEG")
    files["non_utf8"] = Path(os.fsdecode(weird))

    tiny = root / "one_pixel.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(tiny)
    files["one_pixel"] = tiny

    cmyk = root / "cmyk.jpg"
    _photo(seed=6).convert("CMYK").save(cmyk, quality=90)
    files["cmyk"] = cmyk

    png16 = root / "sixteen.png"
    ramp = (np.linspace(0, 65535, 200 * 150).reshape(150, 200)).astype(np.uint16)
    Image.fromarray(ramp).save(png16)
    files["png16"] = png16

    palette = root / "palette.png"
    pal = _photo(seed=7).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(palette, transparency=0)
    files["palette"] = palette

    gif = root / "animated.gif"
    frames = [_photo(seed=10 + i).convert("P") for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["gif"] = gif

    huge = root / "hundred_mp.jpg"
    Image.new("RGB", (12500, 8000), (30, 90, 160)).save(huge, quality=50)
    files["huge"] = huge
    return files


EXPECT_INDEXED = ("good", "non_utf8", "one_pixel", "cmyk", "png16", "palette", "gif", "huge")
EXPECT_SKIPPED = {
    "truncated": "truncated",
    "zero": "empty file",
    "text": "not an image",
    "bomb": "too large",
    "unreadable": "permission denied",
    "broken_link": "broken symbolic link",
    "loop": "loop",
    "vanishing": "not found",
}


def test_every_bad_input_is_indexed_or_skipped_with_a_reason(
    bad_folder: dict[str, Path], tiny_vit: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_hash = scanner.content_hash
    real_walk = scanner.walk

    def hash_as_unprivileged_user(path: str | os.PathLike[str], cancel: object = None) -> str:
        # Root reads a chmod-000 file anyway; emulate what every other user gets.
        if os.geteuid() == 0 and Path(path) == bad_folder["unreadable"]:
            raise PermissionError(13, "Permission denied", str(path))
        return real_hash(path)

    def walk_then_delete(*args: object, **kwargs: object) -> object:
        result = real_walk(*args, **kwargs)  # type: ignore[arg-type]
        bad_folder["vanishing"].unlink()  # deleted between listing and reading
        return result

    monkeypatch.setattr(scanner, "content_hash", hash_as_unprivileged_user)
    monkeypatch.setattr(scanner, "walk", walk_then_delete)
    root = bad_folder["good"].parent
    with Library.open(root, model=str(tiny_vit)) as lib:
        report = lib.scan(threads=2)
        ok = {r.path for r in lib.files(status="ok")}
        skipped = {s["path"]: s["reason"] for s in report.skipped}
        for name in EXPECT_INDEXED:
            assert str(bad_folder[name]) in ok, f"{name} should be indexed; skipped: {skipped}"
        for name, words in EXPECT_SKIPPED.items():
            path = str(bad_folder[name])
            assert path in skipped, f"{name} not listed as skipped: {skipped}"
            assert skipped[path], f"{name} has no reason"
            assert words in skipped[path].lower(), f"{name}: {skipped[path]!r} should mention {words!r}"
            assert "\n" not in skipped[path] and len(skipped[path]) < 200
        assert report.indexed == len(EXPECT_INDEXED)
        # Every indexed file is searchable, including the one with a non-UTF-8 name.
        ids, vectors = lib.vectors()
        assert len(ids) == len(EXPECT_INDEXED)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        results = lib.similar(bad_folder["non_utf8"], k=3, exclude_self=False)
        assert results[0].path == str(bad_folder["non_utf8"])
        assert results[0].score == pytest.approx(1.0, abs=1e-4)
        big = lib.catalog.get_file_by_path(bad_folder["huge"])
        assert big is not None and (big.width, big.height) == (12500, 8000)

    # A second scan does not retry unchanged bad files, and the vanished one is gone from the list.
    monkeypatch.setattr(scanner, "walk", real_walk)
    with Library.open(root, model=str(tiny_vit)) as lib:
        again = lib.scan()
    assert again.indexed == 0 and again.reused == 0
    assert again.unchanged == len(EXPECT_INDEXED)
    again_paths = {s["path"] for s in again.skipped}
    assert str(bad_folder["vanishing"]) not in again_paths
    assert str(bad_folder["truncated"]) in again_paths


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read chmod-000 files")
def test_unreadable_file_really_unreadable(tmp_path: Path, tiny_vit: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    f = root / "locked.jpg"
    _photo().save(f)
    f.chmod(0)
    with Library.open(root, model=str(tiny_vit)) as lib:
        report = lib.scan()
    assert report.skipped == [{"path": str(f), "reason": "permission denied"}]


def test_unreadable_subfolder_is_reported_not_fatal(tmp_path: Path, tiny_vit: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    (root / "locked").mkdir(parents=True)
    _photo().save(root / "a.jpg")
    _photo(seed=3).save(root / "locked" / "b.jpg")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    with Library.open(root, model=str(tiny_vit)) as lib:
        assert lib.scan().indexed == 2
        monkeypatch.setattr(os, "scandir", scandir)
        report = lib.scan()
        assert report.unchanged == 1 and report.removed == 0  # what is below the locked folder is kept
        assert len(lib.vectors()[0]) == 2
    assert any(s["path"].endswith("locked") and "permission denied" in s["reason"] for s in report.skipped)


def test_permission_errors_are_retried_without_a_change(tmp_path: Path, tiny_vit: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """chmod changes neither size nor mtime, so a fixed permission problem must be retried anyway."""
    root = tmp_path / "p"
    root.mkdir()
    locked = root / "locked.jpg"
    _photo().save(locked)
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 nope")
    real_hash = scanner.content_hash

    def denied(path: str | os.PathLike[str], cancel: object = None) -> str:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_hash(path)

    monkeypatch.setattr(scanner, "content_hash", denied)
    with Library.open(root, model=str(tiny_vit)) as lib:
        first = lib.scan()
        assert {s["reason"] for s in first.skipped} >= {"permission denied"}
        monkeypatch.setattr(scanner, "content_hash", real_hash)
        second = lib.scan()
        assert second.indexed == 1 and [s["path"] for s in second.skipped] == [str(broken)]
        assert str(locked) in {r.path for r in lib.files(status="ok")}
