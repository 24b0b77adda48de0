"""The Similar tab: the query preview goes through the index's decoder (EXIF orientation, HEIC, AVIF, DNG), copies
of the query carry their tier, and the caption says what a score means in this library."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.qt import wait_scan
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

pytestmark = pytest.mark.gui


def red_left(size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Left half red, right half blue: a sideways preview is visible in the pixels."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:, : size[0] // 2] = (220, 20, 20)
    arr[:, size[0] // 2:] = (20, 20, 220)
    return Image.fromarray(arr)


def left_is_red(image: QImage) -> bool:
    w, h = image.width(), image.height()
    left, right = image.pixelColor(w // 8, h // 2), image.pixelColor(w - 1 - w // 8, h // 2)
    return w > h and left.red() > left.blue() + 60 and right.blue() > right.red() + 60


def make_queries(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90° counter-clockwise; a viewer turns it clockwise
    path = folder / "sideways.jpg"
    red_left().transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    out["orientation-6 JPEG"] = path
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        red_left().save(folder / "phone.heic")
        out["HEIC"] = folder / "phone.heic"
    except Exception:  # no HEIF plugin in this environment
        pass
    from PIL import features

    if features.check("avif"):
        red_left().save(folder / "web.avif")
        out["AVIF"] = folder / "web.avif"
    try:
        import rawpy  # noqa: F401

        from vitfeat_desktop.selftest.fixtures import write_linear_dng

        rgb = np.zeros((120, 160, 3), dtype=np.uint16)
        rgb[:, :80] = (50000, 3000, 3000)
        rgb[:, 80:] = (3000, 3000, 50000)
        write_linear_dng(folder / "camera.dng", rgb)
        out["DNG"] = folder / "camera.dng"
    except ImportError:
        pass
    return out


def test_query_preview_uses_the_index_decoder(qtbot: Any, make_window: Any, photo_folder: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.gui import main_window as mw

    queries = make_queries(photo_folder)
    assert "orientation-6 JPEG" in queries
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    for kind, path in queries.items():
        # File > Find Similar to a File…, choosing the file in the (patched) open dialog
        monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", lambda *a, p=path, **k: (str(p), ""))
        with qtbot.waitSignal(window.similar_ready, timeout=30_000):
            window.commands["query_file"].trigger()
        label = window.similar_panel.query_label
        qtbot.waitUntil(lambda lb=label: lb.pixmap() is not None and not lb.pixmap().isNull(), timeout=20_000)
        assert left_is_red(label.pixmap().toImage()), f"{kind} preview is blank or sideways"


def test_copies_of_the_query_are_marked_and_scores_explained(qtbot: Any, make_window: Any,
                                                              photo_folder: Path) -> None:
    files = sorted(photo_folder.iterdir())
    copy = photo_folder / f"zz_copy_of_{files[0].name}"
    shutil.copy(files[2], photo_folder / "zz_second_copy.jpg")
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    window.sort_combo.setCurrentIndex(window.sort_combo.findData("name"))
    row = window.library_model.row_of(files[0])
    assert row is not None
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.library_model.index(row, 0))
    with qtbot.waitSignal(window.similar_ready, timeout=30_000) as found:
        qtbot.keyClick(window.grid, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    items = {it.path: it for it in found.args[0]}
    assert items[copy].badge == "Exact copy"
    assert "Exact copy of the query" in items[copy].tooltip()
    others = [it for p, it in items.items() if p != copy]
    assert others and all(it.badge is None for it in others)  # look-alikes carry no badge, however high
    assert all("not a copy of the query" in it.tooltip() for it in others)
    caption = window.similar_panel.query_caption.text()
    assert "1 is a copy of the query" in caption and "nearest neighbours" in caption
    assert items[copy].caption and items[copy].caption.startswith("top ")  # an upper-half score says how high
