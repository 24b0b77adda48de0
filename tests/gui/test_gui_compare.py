"""Compare lines copies up: two sizes, a crop, a turned + mirrored copy show the same part at the same size;
Difference and Flicker show what changed; photos dropped on a pane are compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.photos import shared_photos
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from vitfeat_desktop.gui.compare import ComparePanel, SyncedView
from vitfeat_desktop.gui.main_window import MainWindow

pytestmark = pytest.mark.gui


@pytest.fixture
def copies(tmp_path: Path) -> dict[str, Path]:
    """A photo and its copies: 2x upscale, a crop, turned 90° and mirrored, and one with a painted patch."""
    photos = shared_photos()
    if photos:
        with Image.open(photos[3]) as im:
            base = im.convert("RGB")
    else:  # structured content so local features match: blurred noise blobs
        rng = np.random.default_rng(1)
        arr = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        base = Image.fromarray(arr).resize((640, 480), Image.Resampling.BICUBIC)
    base = base.resize((640, 480)) if base.size != (640, 480) else base
    folder = tmp_path / "copies"
    folder.mkdir()
    out = {"original": folder / "original.jpg", "big": folder / "upscaled.jpg", "crop": folder / "crop.jpg",
           "turned": folder / "turned.jpg", "edited": folder / "edited.png"}
    base.save(out["original"], quality=95)
    base.resize((1280, 960), Image.Resampling.LANCZOS).save(out["big"], quality=95)
    base.crop((160, 120, 560, 420)).save(out["crop"], quality=95)
    base.transpose(Image.Transpose.ROTATE_90).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out["turned"],
                                                                                              quality=95)
    edited = base.copy()
    edited.paste((255, 255, 0), (400, 60, 520, 160))
    edited.save(out["edited"])
    return out


def compare_and_wait(qtbot: Any, window: MainWindow, paths: list[Path]) -> ComparePanel:
    window.compare(paths)
    panel = window.compare_panel
    qtbot.waitUntil(lambda: all(img is not None for img in panel.images), timeout=30_000)
    qtbot.waitUntil(lambda: all(panel.alignments[i] is not None for i in range(1, len(paths))), timeout=60_000)
    return panel


def rect_of(view: SyncedView) -> tuple[float, float, float, float]:
    r = view.mapped_rect()
    return r.x(), r.y(), r.width(), r.height()


def test_two_sizes_a_crop_and_a_turned_copy_line_up(qtbot: Any, make_window: Any, copies: dict[str, Path]) -> None:
    window = make_window(None)
    panel = compare_and_wait(qtbot, window, [copies["original"], copies["big"], copies["crop"], copies["turned"]])
    assert all(panel.aligned), [c.text() for c in panel.captions]
    # every copy lands where its pixels are in the original (in the original's pixel coordinates)
    assert rect_of(panel.views[0]) == pytest.approx((0, 0, 640, 480))
    assert rect_of(panel.views[1]) == pytest.approx((0, 0, 640, 480), abs=4)  # the 1280x960 upscale, halved
    assert rect_of(panel.views[2]) == pytest.approx((160, 120, 400, 300), abs=4)  # the crop, in its place
    assert rect_of(panel.views[3]) == pytest.approx((0, 0, 640, 480), abs=4)  # turned back and un-mirrored
    assert "mirrored back" in panel.captions[3].text()
    # zoom with the wheel in one pane, pan it: every pane shows the same part at the same displayed size
    view = panel.views[0]
    wheel = QWheelEvent(QPointF(view.viewport().rect().center()), QPointF(view.viewport().mapToGlobal(
        view.viewport().rect().center())), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    for _ in range(4):
        QApplication.sendEvent(view.viewport(), wheel)
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().value() + 40)
    factor, centre = view.scale_factor(), view.center()
    for other in panel.views[1:]:
        assert other.scale_factor() == pytest.approx(factor)
        assert (other.center().x(), other.center().y()) == pytest.approx((centre.x(), centre.y()), abs=2)
    # a point of the original and the same point of the upscaled copy are drawn at the same place on screen
    probe = QPointF(300.0, 200.0)
    on_a = panel.views[0].mapFromScene(panel.views[0].item.mapToScene(probe))
    on_b = panel.views[1].mapFromScene(panel.views[1].item.mapToScene(probe * 2))
    assert abs(on_a.x() - on_b.x()) <= 3 and abs(on_a.y() - on_b.y()) <= 3


def test_difference_and_flicker(qtbot: Any, make_window: Any, copies: dict[str, Path]) -> None:
    window = make_window(None)
    panel = compare_and_wait(qtbot, window, [copies["original"], copies["edited"]])
    panel.mode.setFocus()
    qtbot.keyClick(panel.mode, Qt.Key.Key_Down)  # "Difference"
    assert panel.mode.currentData() == "difference"
    extra = panel.views[1].extra
    assert extra.isVisible() and not panel.views[1].item.isVisible()
    diff = extra.pixmap().toImage()
    # the painted patch is bright red in the difference; the untouched sky/ground is not
    def redness(x: int, y: int) -> int:
        c = diff.pixelColor(x, y)
        return c.red() - c.green()
    assert redness(460, 110) > 120
    untouched = [redness(x, y) for x in range(40, 360, 40) for y in range(240, 460, 40)]
    assert np.median(untouched) < 40
    qtbot.keyClick(panel.mode, Qt.Key.Key_Down)  # "Flicker": the first pane alternates the two photos
    assert panel.mode.currentData() == "flicker"
    first = panel.views[0]
    seen = set()
    qtbot.waitUntil(lambda: seen.add(first.extra.isVisible()) or len(seen) == 2, timeout=5_000)


def test_photos_dropped_on_a_pane_are_compared(qtbot: Any, make_window: Any, copies: dict[str, Path]) -> None:
    window = make_window(None)
    window.compare([copies["original"]])
    target = window.compare_panel.views[0].viewport()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(copies["big"])), QUrl.fromLocalFile(str(copies["crop"]))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(target, QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert window.compare_panel.paths == [copies["big"], copies["crop"]]
    # a single photo dropped joins the first one shown
    mime1 = QMimeData()
    mime1.setUrls([QUrl.fromLocalFile(str(copies["turned"]))])
    QApplication.sendEvent(target := window.compare_panel.views[0].viewport(),
                           QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime1,
                                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    QApplication.sendEvent(target, QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime1,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert window.compare_panel.paths == [copies["big"], copies["turned"]]


def test_captions_give_the_facts_from_the_files_exif(qtbot: Any, make_window: Any, copies: dict[str, Path]) -> None:
    """Size, format and the EXIF capture date (read by the core, shown like the duplicates table shows it)."""
    with Image.open(copies["original"]) as im:
        exif = im.getexif()
        exif.get_ifd(0x8769)[0x9003] = "2021:07:04 18:30:05"  # DateTimeOriginal
        dated = copies["original"].with_name("dated.jpg")
        im.save(dated, quality=95, exif=exif)
    window = make_window(None)
    panel = compare_and_wait(qtbot, window, [dated, copies["edited"]])
    first, second = panel.captions[0].text().splitlines(), panel.captions[1].text()
    assert first[0] == "dated.jpg" and first[2] == "2021-07-04 18:30"
    assert first[1].startswith("640 × 480 px · ") and first[1].endswith("B · JPEG")
    assert "PNG" in second and "2021-07-04" not in second  # no EXIF date: the file's modification time
