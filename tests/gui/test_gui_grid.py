"""Grid model pieces that need no window: sorting, visual ordering, incremental fill, thumbnail cache keys."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitfeat_desktop import config
from vitfeat_desktop.core.order import visual_order
from vitfeat_desktop.gui import thumbs
from vitfeat_desktop.gui.grid import GridItem, ImageListModel
from vitfeat_desktop.gui.tasks import TaskRunner

pytestmark = pytest.mark.gui


def test_visual_order_puts_lookalikes_together() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    vectors = np.concatenate([c + 0.05 * rng.normal(size=(5, 16)) for c in centres])
    ids = np.arange(100, 115)
    perm = rng.permutation(15)
    order = visual_order(ids[perm], vectors[perm])
    assert sorted(order) == sorted(ids.tolist())
    clusters = [(fid - 100) // 5 for fid in order]
    changes = sum(1 for a, b in itertools.pairwise(clusters) if a != b)
    assert changes == 2  # each cluster is one contiguous run


def test_model_sorts_and_adds_without_duplicates(qtbot: Any, tmp_path: Path) -> None:
    runner = TaskRunner()
    model = ImageListModel(thumbs.ThumbnailLoader(runner))
    items = [GridItem(path=tmp_path / f"{n}.jpg", size=s, mtime=m, file_id=i)
             for i, (n, s, m) in enumerate([("b", 30, 3.0), ("a", 10, 2.0), ("c", 20, 1.0)])]
    model.set_items(items[:2])
    assert model.add_new(items) == 1 and model.rowCount() == 3
    model.sort_by("name")
    assert [model.item(r).name for r in range(3)] == ["a.jpg", "b.jpg", "c.jpg"]
    model.sort_by("size", descending=True)
    assert [model.item(r).size for r in range(3)] == [30, 20, 10]
    model.sort_by("date")
    assert [model.item(r).mtime for r in range(3)] == [1.0, 2.0, 3.0]
    model.order_by([2, 0, 1])
    assert [model.item(r).file_id for r in range(3)] == [2, 0, 1]
    runner.shutdown()


def test_thumbnail_cache_lives_in_the_cache_dir(tmp_path: Path, qtbot: Any) -> None:
    from PIL import Image

    photo = tmp_path / "p.jpg"
    Image.new("RGB", (640, 480), (200, 10, 10)).save(photo)
    key = thumbs.cache_key(photo)
    image = thumbs.render_thumbnail(photo, key)
    assert max(image.width(), image.height()) == thumbs.CACHE_SIDE
    cached = thumbs.cache_path(key)
    assert cached.is_file() and config.cache_dir() in cached.parents
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jpg"]  # nothing written beside the photo
    assert thumbs.cache_key(photo, "abc123") == "habc123"  # content hash keys survive renames
    photo.write_bytes(photo.read_bytes() + b"\0")
    assert thumbs.cache_key(photo) != key  # a changed file gets a new thumbnail
