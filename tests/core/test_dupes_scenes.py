"""Real scene frames (../shared/data/scenes): another shot of one scene is never a duplicate, an export of a
frame is, neighbouring frames are similar shots, and nothing but a copy is ever offered for removal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.photos import SCENES
from PIL import Image

from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.dupes.verify import AlignmentVerifier, GeometricVerifier
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.phash import image_hashes


@pytest.fixture(scope="module")
def fountain() -> Path:
    if not (SCENES / "fountain" / "0005.jpg").is_file():
        pytest.skip("the shared scene frames are not available")
    return SCENES / "fountain"


def _exports(frame: Path, out: Path) -> dict[str, Path]:
    image = Image.open(frame).convert("RGB")
    web = image.resize((1600, 1067), Image.Resampling.LANCZOS)
    web.save(out / "web.jpg", quality=78)
    straight = web.rotate(2.5, resample=Image.Resampling.BICUBIC).crop((60, 40, 1540, 1027))
    straight.save(out / "straight.jpg", quality=90)
    return {"web": out / "web.jpg", "straight": out / "straight.jpg"}


def _infos(paths: list[Path]) -> list[FileInfo]:
    out = []
    for i, p in enumerate(paths):
        img = open_image(p, min_side=256)
        with Image.open(p) as opened:
            w, h = opened.size
        out.append(FileInfo(id=i, path=str(p), size=p.stat().st_size, width=w, height=h, content_hash=f"c{i}",
                            hashes=image_hashes(img)))
    return out


def _finder(paths: list[Path], thresholds: Thresholds | None = None) -> DuplicateFinder:
    # The embedding is made to say "copy" for every pair (all vectors alike, no centring), the hardest case:
    # only the pixels can tell a copy from another shot.
    rng = np.random.default_rng(0)
    vectors = np.ones((len(paths), 16), dtype=np.float32) + 0.01 * rng.standard_normal((len(paths), 16))
    return DuplicateFinder.build(_infos(paths), vectors=vectors.astype(np.float32), mean=np.zeros(16, np.float32),
                                 thresholds=thresholds, verifier=AlignmentVerifier())


def test_neighbouring_frames_are_not_duplicates(fountain: Path) -> None:
    check = GeometricVerifier().check(fountain / "0004.jpg", fountain / "0005.jpg")
    assert check is not None and check.same_scene
    assert not any(check.is_copy(s) for s in (0.0, 0.5, 1.0))


def test_an_export_of_a_frame_is_a_duplicate(fountain: Path, tmp_path: Path) -> None:
    exports = _exports(fountain / "0004.jpg", tmp_path)
    verifier = GeometricVerifier()
    for path in exports.values():
        check = verifier.check(fountain / "0004.jpg", path)
        assert check is not None and check.is_copy(0.0), path.name
    assert verifier.cache.computed == 3  # the frame's features once for both exports


def test_burst_pair_is_a_similar_shot_and_never_removable(fountain: Path, tmp_path: Path) -> None:
    exports = _exports(fountain / "0004.jpg", tmp_path)
    paths = [fountain / "0004.jpg", fountain / "0005.jpg", exports["web"], exports["straight"]]
    finder = _finder(paths)
    groups = finder.groups(0.5)
    assert [sorted(Path(p).name for p in g.files) for g in groups] == [["0004.jpg", "straight.jpg", "web.jpg"]]
    assert {Path(m.info.path).name for g in groups for m in g.removable} == {"straight.jpg", "web.jpg"}
    assert "same capture: maps onto the keeper by scale" in groups[0].members[1].reason
    for s in (0.0, 0.5, 1.0):  # no sensitivity makes the neighbouring frame a duplicate or offers it for removal
        assert all("0005.jpg" not in Path(m.info.path).name for g in finder.groups(s) for m in g.removable)
    sets = finder.similar_groups(0.5)
    assert [sorted(Path(f.path).name for f in s) for s in sets] == [["0004.jpg", "0005.jpg"]]
    assert "viewpoint moved" in sets[0].reason


def test_grouping_does_not_depend_on_when_the_library_was_calibrated(fountain: Path) -> None:
    # issue 12: a calibration fitted before the burst was added (low pooled-vector cut) must not turn the burst
    # into duplicates; a fresh one (high cut) must not either, and both must list it as similar shots
    paths = [fountain / "0004.jpg", fountain / "0005.jpg"]
    stale = Thresholds(cos_accept=0.5, cos_accept_lo=0.45, cos_accept_hi=0.55, verify_min=0.2, similar_cut=0.3)
    fresh = Thresholds(cos_accept=0.999, cos_accept_lo=0.998, cos_accept_hi=0.9995, verify_min=0.2,
                       similar_cut=0.3)
    for thresholds in (stale, fresh):
        finder = _finder(paths, thresholds)
        assert finder.groups(1.0) == []
        assert [len(s) for s in finder.similar_groups(0.5)] == [2]
