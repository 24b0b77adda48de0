"""Our preprocessing must equal transformers' image processors (slow/PIL backend) within 1e-5."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitfeat_desktop.core.images import load_image
from vitfeat_desktop.core.preprocess import Preprocessor
from vitfeat_desktop.selftest.tinyvit import VIT_PREPROCESSOR

transformers = pytest.importorskip("transformers")

DINO_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 256},
}


def _hf_processor(kind: str, config: dict, tmp_path: Path):
    folder = tmp_path / kind
    folder.mkdir(exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "vit":
            from transformers import ViTImageProcessor as cls
        else:
            from transformers import BitImageProcessor as cls
        return cls.from_pretrained(str(folder))


def _images(photos: list[Path]) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = [Image.open(p).convert("RGB") for p in photos[:4]]
    out.append(Image.fromarray(rng.integers(0, 256, (37, 301, 3), dtype=np.uint8)))  # thin, smaller than crop
    out.append(Image.fromarray(rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)))  # 1x1
    out.append(Image.fromarray(rng.integers(0, 256, (640, 480, 3), dtype=np.uint8)))  # portrait
    out.append(Image.fromarray(rng.integers(0, 256, (257, 256, 3), dtype=np.uint8)))  # odd crop offsets
    out.append(Image.open(photos[5]).convert("L"))  # grayscale
    return out


@pytest.mark.parametrize("kind,config", [("vit", VIT_PREPROCESSOR), ("dino", DINO_PREPROCESSOR)])
def test_pixel_values_match_transformers(kind: str, config: dict, photos: list[Path], tmp_path: Path) -> None:
    ours = Preprocessor.from_dict(config)
    theirs = _hf_processor(kind, config, tmp_path)
    for image in _images(photos):
        # transformers' pipeline converts every image to RGB in load_image before its processor runs
        expected = np.asarray(theirs(image.convert("RGB"), return_tensors="np")["pixel_values"])
        actual = ours(image)
        assert actual.shape == expected.shape, image.size
        assert actual.dtype == np.float32
        assert np.abs(actual - expected).max() <= 1e-5, (kind, image.size, image.mode)


def test_real_model_config_matches_transformers(real_model: Path, photos: list[Path]) -> None:
    from transformers import AutoImageProcessor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = AutoImageProcessor.from_pretrained(str(real_model))
    ours = Preprocessor.from_file(real_model / "preprocessor_config.json")
    for path in photos[:3]:
        expected = np.asarray(theirs(Image.open(path).convert("RGB"), return_tensors="np")["pixel_values"])
        assert np.abs(ours(load_image(path)) - expected).max() <= 1e-5


def test_exif_orientation_applied_like_load_image(tmp_path: Path, photos: list[Path]) -> None:
    """A file whose pixels are stored sideways with an orientation tag must load upright, as transformers does."""
    from transformers.image_utils import load_image as hf_load_image

    upright = Image.open(photos[0]).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = tmp_path / "tagged.jpg"
    stored.save(path, quality=95, exif=exif)
    ours = load_image(str(path))
    theirs = hf_load_image(str(path))
    assert ours.size == theirs.size == upright.size
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))


def test_size_spellings_and_geometry() -> None:
    assert Preprocessor.from_dict({"size": 384}).size == {"height": 384, "width": 384}
    pre = Preprocessor.from_dict(DINO_PREPROCESSOR)
    assert pre.resize_hw(375, 500) == (256, 341)  # int() truncation like transformers
    assert pre.resize_hw(500, 375) == (341, 256)
    assert pre.output_hw() == (224, 224)
    assert pre.min_decode_side() == 256
    assert Preprocessor.from_dict(VIT_PREPROCESSOR).min_decode_side() == 224
