"""Calibration: cuts ordered and fitted to the model, cached per (library, model), invalidated when it must be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop.core.dupes.calibrate import (
    Calibration,
    cache_path,
    calibrate,
    load_calibration,
    save_calibration,
)
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.errors import Cancelled, VitfeatError
from vitfeat_desktop.core.pipeline import pipeline


@pytest.fixture(scope="module")
def tiny_extractor(tiny_vit: Path):  # type: ignore[no-untyped-def]
    return pipeline("image-feature-extraction", model=str(tiny_vit), quantized=False)


def test_calibrate_fits_ordered_cuts(tiny_extractor, photos: list[Path]) -> None:  # type: ignore[no-untyped-def]
    paths = photos[:10]
    pre = tiny_extractor.preprocessor
    from vitfeat_desktop.core.images import open_image

    vectors = tiny_extractor.embed(np.stack([pre.normalize_uint8(pre.to_uint8_chw(open_image(p))) for p in paths]))
    seen = []
    cal = calibrate(tiny_extractor, paths, vectors, sample=4, progress=seen.append)
    t = cal.thresholds
    assert t.source == "calibrated" and seen
    assert t.verify_min < t.cos_accept_lo < t.cos_accept < t.cos_accept_hi <= 0.999
    assert t.stats["sample"] == 4 and t.stats["negatives"] > 0
    assert set(t.stats["pos_min"]) >= {"crop", "mirror", "border", "resize"}
    assert cal.mean.shape == (vectors.shape[1],)
    # the cut sits above (almost) all different-picture similarities it measured
    assert t.cos_accept >= t.stats["neg_q99"]


def test_calibrate_rejects_bad_input(tiny_extractor, photos: list[Path]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        calibrate(tiny_extractor, photos[:3], np.ones((2, 32), dtype=np.float32))
    with pytest.raises(VitfeatError):
        calibrate(tiny_extractor, photos[:3], np.zeros((3, 32), dtype=np.float32))
    with pytest.raises(Cancelled):
        calibrate(tiny_extractor, photos[:6], np.ones((6, 32), dtype=np.float32), cancel=lambda: True)


def test_cache_per_library_and_model(tmp_path: Path) -> None:
    cal = Calibration(Thresholds(cos_accept=0.9, source="calibrated"), np.arange(4, dtype=np.float32), "m|int8", 1000)
    path = save_calibration(tmp_path / "Photos", cal)
    assert path == cache_path(tmp_path / "Photos", "m|int8")
    assert tmp_path / "Photos" not in path.parents  # kept in the data dir, not with the photos
    loaded = load_calibration(tmp_path / "Photos", "m|int8", n_files=1200)
    assert loaded is not None and loaded.thresholds.cos_accept == 0.9 and np.allclose(loaded.mean, cal.mean)
    assert load_calibration(tmp_path / "Photos", "other|int8") is None
    assert load_calibration(tmp_path / "Other", "m|int8") is None
    assert load_calibration(tmp_path / "Photos", "m|int8", n_files=5000) is None  # library grew: refit
    path.write_text("{not json")
    assert load_calibration(tmp_path / "Photos", "m|int8") is None


def test_copies_among_neighbours_are_not_counted_as_different(tiny_extractor, photos: list[Path],  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    from PIL import Image

    from vitfeat_desktop.core.dupes.verify import alignment_score
    from vitfeat_desktop.core.images import open_image

    paths = list(photos[:5])
    img = Image.open(photos[0]).convert("RGB")
    img.crop((30, 20, img.width - 60, img.height - 40)).save(tmp_path / "crop.jpg", quality=85)
    paths.append(tmp_path / "crop.jpg")
    pre = tiny_extractor.preprocessor
    vectors = tiny_extractor.embed(np.stack([pre.normalize_uint8(pre.to_uint8_chw(open_image(p))) for p in paths]))
    with_verifier = calibrate(tiny_extractor, paths, vectors, sample=6, verifier=alignment_score)
    without = calibrate(tiny_extractor, paths, vectors, sample=6)
    # neighbour pairs are counted once (crop-original), whichever of the two found the other
    assert with_verifier.thresholds.stats["neighbours_excluded_as_copies"] == 1
    assert with_verifier.thresholds.stats["negatives"] == without.thresholds.stats["negatives"] - 1
