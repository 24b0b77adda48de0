"""core/dupes/align.py: the similarity fit maps a copy's pixels onto the original's (crop, scale, mirror, turn) and
explains far fewer of a neighbouring frame's matches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.photos import SCENES
from PIL import Image, ImageOps

from vitfeat_desktop.core.dupes.align import Alignment, FeatureCache, align_pair
from vitfeat_desktop.core.dupes.review import describe_mapping


@pytest.fixture(scope="module")
def frame() -> Path:
    path = SCENES / "fountain" / "0004.jpg"
    if not path.is_file():
        pytest.skip("the shared scene frames are not available")
    return path


def test_crop_and_resize_maps_back_onto_the_original(frame: Path, tmp_path: Path) -> None:
    image = Image.open(frame).convert("RGB")
    image.crop((300, 200, 2700, 1800)).resize((960, 640)).save(tmp_path / "crop.jpg", quality=80)
    al = align_pair(frame, tmp_path / "crop.jpg", cache=FeatureCache())
    assert al is not None and not al.mirrored
    # B pixel (x, y) was A pixel (300 + 2.5 x, 200 + 2.5 y)
    np.testing.assert_allclose(al.map_points(np.array([[0, 0], [960, 640]])), [[300, 200], [2700, 1800]], atol=6)
    assert al.scale == pytest.approx(2.5, rel=0.01) and abs(al.rotation_deg) < 0.2
    assert al.inlier_ratio > 0.8 and al.coverage > 0.9
    # the caption says it is a crop and how much of the frame it keeps: (2400 x 1600) / (3072 x 2048) = 61 %
    assert "a 61% crop" in describe_mapping(al)
    # and the other way round, the full frame shows more than the crop (its Compare pane when the crop is first)
    back = align_pair(tmp_path / "crop.jpg", frame, cache=FeatureCache())
    assert back is not None and "more around it (first photo 61%)" in describe_mapping(back)


def test_mapping_words_for_a_border_and_the_same_framing() -> None:
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    same = Alignment(identity, False, 400, 420, 0.5, 1.0, 0.0, size_a=(400, 300), size_b=(400, 300))
    assert describe_mapping(same) == "lined up: same framing (400/420 features agree)"
    # a copy with a 20-pixel frame around the picture: B pixel (20, 20) is A pixel (0, 0)
    bordered = Alignment(np.array([[1.0, 0.0, -20.0], [0.0, 1.0, -20.0]]), False, 300, 310, 0.5, 1.0, 0.0,
                         size_a=(400, 300), size_b=(440, 340))
    assert "more around it (first photo 80%)" in describe_mapping(bordered)
    # sizes unknown (a check cached before they were stored): no words about the frame
    assert describe_mapping(Alignment(identity, False, 400, 420, 0.5, 1.0, 0.0)) == \
        "lined up: same framing (400/420 features agree)"


def test_mirrored_and_turned_copies(frame: Path, tmp_path: Path) -> None:
    image = Image.open(frame).convert("RGB").resize((1536, 1024))
    ImageOps.mirror(image).save(tmp_path / "mirror.jpg", quality=85)
    image.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "turned.png")
    cache = FeatureCache()
    mirrored = align_pair(frame, tmp_path / "mirror.jpg", cache=cache)
    assert mirrored is not None and mirrored.mirrored
    np.testing.assert_allclose(mirrored.map_points(np.array([[0, 0]])), [[3072, 0]], atol=6)
    turned = align_pair(frame, tmp_path / "turned.png", cache=cache)
    assert turned is not None and not turned.mirrored
    assert abs(abs(turned.rotation_deg) - 90) < 0.5 and turned.scale == pytest.approx(2.0, rel=0.01)
    assert cache.computed == 4  # the original once, each copy once, the mirror's flipped features once


def test_neighbouring_frame_fits_a_similarity_poorly(frame: Path) -> None:
    al = align_pair(frame, frame.with_name("0005.jpg"), cache=FeatureCache())
    assert al is not None
    assert al.inlier_ratio < 0.6 and al.homography_inliers > 1.3 * al.inliers


def test_unreadable_file_gives_none(frame: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert align_pair(frame, tmp_path / "broken.jpg", cache=FeatureCache()) is None
