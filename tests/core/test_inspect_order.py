"""The inspector's and the visual sort's computations are core functions, usable without a window
(``tests/test_architecture.py`` checks that they never import Qt)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop.core.errors import Cancelled
from vitfeat_desktop.core.inspect import inspect_image, patch_layout
from vitfeat_desktop.core.order import visual_order
from vitfeat_desktop.core.pipeline import pipeline
from vitfeat_desktop.selftest.fixtures import synthetic_photo


def test_patch_layout_splits_cls_grid_and_registers() -> None:
    assert patch_layout(197, (224, 224), 16) == (14, 14, 0)  # ViT-B/16: CLS + 14x14
    assert patch_layout(261, (224, 224), 14) == (16, 16, 4)  # DINOv2 with 4 register tokens
    assert patch_layout(197, (224, 224), None) == (14, 14, 0)  # no patch size: the largest square grid


def test_inspect_image_headless(tiny_vit: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    synthetic_photo(2).save(path)
    extractor = pipeline("image-feature-extraction", model=tiny_vit)
    try:
        ins = inspect_image(extractor, path)
        query = inspect_image(extractor, path, query=ins.pooled)
    finally:
        extractor.close()
    assert ins.shape_text() == "last_hidden_state [1, 197, 32]" and ins.patch_grid == (14, 14)
    assert ins.heat_mode == "feature norm of each patch" and ins.crop.shape == (224, 224, 3)
    assert query.heat_mode == "cosine similarity of each patch to the query"
    assert ins.to_json()["tokens"] == {"cls": 1, "patches": 196, "extra": 0, "patch_grid": [14, 14]}


def test_visual_order_chains_lookalikes_and_can_be_cancelled() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 8))
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(100, 8)) for c in centres])
    ids = np.arange(400) + 1000
    order = visual_order(ids, vectors)
    assert sorted(order) == ids.tolist()
    assert sum(1 for a, b in itertools.pairwise(order) if (a - 1000) // 100 != (b - 1000) // 100) == 3
    with pytest.raises(Cancelled):
        visual_order(ids, vectors, cancel=lambda: True)
    assert visual_order(ids[:0], vectors[:0]) == []

