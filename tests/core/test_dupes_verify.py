"""Pixel-alignment verification: crops, borders and small rotations align; different photos do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageOps

from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.dupes.verify import AlignmentVerifier, alignment_score

CUT = Thresholds().align_cut


@pytest.fixture(scope="module")
def images(photos: list[Path]) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in photos[:8]]


def test_edited_copies_align(images: list[Image.Image]) -> None:
    for img in images[:4]:
        w, h = img.size
        crop = img.crop((int(w * 0.1), int(h * 0.05), int(w * 0.85), int(h * 0.9)))
        border = ImageOps.expand(img, border=30, fill=(255, 255, 255))
        letterbox = Image.new("RGB", (round(h * 16 / 9), h))
        letterbox.paste(img, ((letterbox.width - w) // 2, 0))
        turned = img.rotate(4, resample=Image.Resampling.BICUBIC).crop(
            (int(w * 0.12), int(h * 0.12), int(w * 0.88), int(h * 0.88)))
        gray = ImageOps.grayscale(crop).convert("RGB")
        for name, copy in (("crop", crop), ("border", border), ("letterbox", letterbox), ("rotate", turned),
                           ("gray crop", gray)):
            assert alignment_score(img, copy) >= CUT, name
            assert alignment_score(copy, img) >= CUT, name  # symmetric


def test_different_photos_do_not_align(images: list[Image.Image]) -> None:
    worst = max(alignment_score(a, b) for i, a in enumerate(images) for b in images[i + 1:])
    assert worst < CUT


def test_verifier_reads_files_and_reports_unreadable(tmp_path: Path, photos: list[Path]) -> None:
    img = Image.open(photos[0]).convert("RGB")
    img.crop((20, 20, img.width - 40, img.height - 30)).save(tmp_path / "crop.jpg", quality=80)
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    verifier = AlignmentVerifier()
    a = FileInfo(id=0, path=str(photos[0]))
    assert (verifier(a, FileInfo(id=1, path=str(tmp_path / "crop.jpg"))) or 0) >= CUT
    assert verifier(a, FileInfo(id=2, path=str(tmp_path / "bad.jpg"))) is None
    assert verifier.pairs_scored == 1


def test_cached_verifier_remembers_scores_by_content(tmp_path: Path) -> None:
    from vitfeat_desktop.core.dupes.sidecars import VERIFIED, sidecar_path
    from vitfeat_desktop.core.dupes.verify import CachedVerifier

    calls: list[tuple[str, str, bool]] = []

    def inner(a: FileInfo, b: FileInfo, *, dihedral: bool = False) -> float:
        calls.append((a.path, b.path, dihedral))
        return 0.93

    path = sidecar_path(tmp_path / "Photos", VERIFIED)
    a = FileInfo(id=0, path="/p/a.jpg", content_hash="aa")
    b = FileInfo(id=1, path="/p/b.jpg", content_hash="bb")
    moved_b = FileInfo(id=2, path="/elsewhere/b.jpg", content_hash="bb")
    no_hash = FileInfo(id=3, path="/p/c.jpg")
    first = CachedVerifier(inner, path)
    assert first(a, b) == 0.93 and first(b, a) == 0.93 and first(a, moved_b) == 0.93
    assert first(a, b, dihedral=True) == 0.93  # a different question, asked once
    first(a, no_hash)
    first(a, no_hash)
    assert len(calls) == 4 and first.hits == 2
    first.save()
    second = CachedVerifier(inner, path)
    assert second(a, b) == 0.93 and len(calls) == 4 and second.hits == 1


def test_chance_alignments_of_flat_or_wide_photos_stay_under_the_cut(photos: list[Path]) -> None:
    """Pairs that once aligned by chance: a wide, small photo whose trial-rotated template was only 26x11 pixels,
    and a frame that the band-pass used to see as an edge."""
    by_name = {p.name: p for p in photos}
    verifier = AlignmentVerifier()
    pairs = [("n02777292_balance_beam.JPEG", "n02692877_airship.JPEG"),
             ("n01693334_green_lizard.JPEG", "n01943899_conch.JPEG"),
             ("n04458633_totem_pole.JPEG", "n09428293_seashore.JPEG")]
    for a, b in pairs:
        if a in by_name and b in by_name:
            score = verifier(str(by_name[a]), str(by_name[b]))
            assert score is not None and score < Thresholds().align_cut, (a, b, score)
