"""With the real DINOv2 model: crop, border and rotated copies group with their original, others stay apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.verify import AlignmentVerifier
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.phash import image_hashes
from vitfeat_desktop.core.pipeline import pipeline


def test_real_model_groups_edited_copies(real_model: Path, photos: list[Path], tmp_path: Path) -> None:
    original = Image.open(photos[10]).convert("RGB")
    w, h = original.size
    copies = {
        "crop.jpg": original.crop((int(w * 0.15), int(h * 0.1), int(w * 0.95), int(h * 0.9))),
        "border.jpg": ImageOps.expand(original, border=25, fill=(0, 0, 0)),
        "turned.jpg": original.transpose(Image.Transpose.ROTATE_270),
    }
    paths = [photos[10], *photos[20:32]]
    for name, img in copies.items():
        img.save(tmp_path / name, quality=85)
        paths.append(tmp_path / name)
    ext = pipeline("image-feature-extraction", model=str(real_model), quantized=True)
    pre = ext.preprocessor
    vectors = ext.embed(np.stack([pre.normalize_uint8(pre.to_uint8_chw(open_image(p, min_side=256)))
                                  for p in paths]))
    files = []
    for i, p in enumerate(paths):
        img = open_image(p)
        files.append(FileInfo(id=i, path=str(p), size=p.stat().st_size, width=img.width, height=img.height,
                              hashes=image_hashes(img)))
    finder = DuplicateFinder.build(files, vectors=vectors, verifier=AlignmentVerifier())
    groups = finder.groups()
    assert [sorted(Path(p).name for p in g.files) for g in groups] == [
        sorted([photos[10].name, "crop.jpg", "border.jpg", "turned.jpg"])]
    reasons = {Path(m.info.path).name: m.reason for m in groups[0].members}
    # the keeper is the bordered copy (most pixels); the turned copy matches it only after turning it back
    assert "turned" in reasons["turned.jpg"] or "rotated" in reasons["turned.jpg"]


def test_a_library_of_different_photos_has_no_duplicates(real_model: Path, photos: list[Path]) -> None:
    """Precision where it matters most: ordinary libraries are mostly distinct pictures. Sixty different photos
    (nearest neighbours included: dog breeds, fish, birds) must give no duplicate group at all."""
    from vitfeat_desktop.core.dupes.calibrate import calibrate
    from vitfeat_desktop.core.dupes.verify import alignment_score

    paths = photos[:60]
    ext = pipeline("image-feature-extraction", model=str(real_model), quantized=True)
    pre = ext.preprocessor
    images = [open_image(p, min_side=256) for p in paths]
    vectors = ext.embed(np.stack([pre.normalize_uint8(pre.to_uint8_chw(im)) for im in images]))
    files = [FileInfo(id=i, path=str(p), size=p.stat().st_size, width=im.width, height=im.height,
                      hashes=image_hashes(im)) for i, (p, im) in enumerate(zip(paths, images, strict=True))]
    hashes = np.array([f.hashes.phashes for f in files], dtype=np.uint64)
    calibration = calibrate(ext, [str(p) for p in paths], vectors, hashes=hashes, sample=8,
                            verifier=alignment_score)
    finder = DuplicateFinder.build(files, vectors=vectors, thresholds=calibration.thresholds,
                                   mean=calibration.mean, verifier=AlignmentVerifier())
    assert finder.groups(0.5) == []
    assert all(len(group) <= 4 for group in finder.similar_groups(0.5))  # no chains of look-alikes
