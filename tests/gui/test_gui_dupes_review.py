"""The duplicate review as a photographer uses it: first groups at once and refined in place, files told apart
(folder, name elided in the middle, date taken, columns that fit), Compare from the list (C, button, menu),
trash asked once with count and size and summarised with Undo, and "not a duplicate" listed and undone."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.photos import shared_photos
from helpers.qt import answer_next_dialog, wait_scan
from PIL import Image
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QContextMenuEvent, QFontMetrics
from PySide6.QtWidgets import QApplication, QMenu

from vitfeat_desktop.gui.dupes_rows import (
    COL_FOLDER,
    COL_KIND,
    COL_NAME,
    COL_SIZE,
    COL_TAKEN,
    COL_WHY,
    ICON_SIDE,
    PathRole,
)

pytestmark = pytest.mark.gui
LONG_NAME = "n01440764_tench_with_a_rather_long_name_from_the_camera_roll.JPEG"


@pytest.fixture
def review_folder(tmp_path: Path) -> Path:
    """photos/ and archive/ with the same long file name (an exact copy), a half-size re-save, a panorama and its
    re-save, a photo with an EXIF date, a same-pixels copy (PNG, only the metadata differs), distinct others."""
    root = tmp_path / "library"
    photos, archive = root / "photos", root / "archive"
    photos.mkdir(parents=True)
    archive.mkdir()
    sources = shared_photos()[:10]
    if len(sources) < 10:
        pytest.skip("needs the shared photos")
    for src in sources[3:10]:
        shutil.copy(src, photos / src.name)
    shutil.copy(sources[0], photos / LONG_NAME)
    shutil.copy(sources[0], archive / LONG_NAME)
    with Image.open(sources[1]) as im:
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(archive / "small_copy.jpg", quality=85)
        shutil.copy(sources[1], photos / "resave_source.JPEG")
    with Image.open(sources[2]) as im:
        pano = im.convert("RGB").resize((2400, 300))
    pano.save(photos / "panorama.jpg", quality=92)
    pano.resize((1200, 150)).save(archive / "panorama_small.jpg", quality=85)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 18:30:05"
    with Image.open(sources[3]) as im:
        im.convert("RGB").save(photos / "dated.jpg", exif=exif, quality=93)
    rng = np.random.default_rng(3)
    flat = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).resize((640, 480))
    flat.save(photos / "pixels.png")
    flat.save(archive / "pixels_retagged.png", pnginfo=_png_text("Comment", "re-tagged"))
    return root


def _png_text(key: str, value: str) -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


def open_review(qtbot: Any, window: Any) -> Any:
    """Click Find Duplicates in the toolbar; wait for the final (verified) groups."""
    panel = window.dupes_panel
    wait_scan(qtbot, window)
    qtbot.mouseClick(window.toolbar.widgetForAction(window.commands["dupes"]), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.stage == "verified" and not window.runner.is_running("dupes-build")
                    and not window.runner.is_running("dupes-regroup") and panel.tree.topLevelItemCount() > 0,
                    timeout=120_000)
    panel.flush()
    return panel


def row_of(panel: Any, name: str, folder: str | None = None) -> Any:
    for it in panel._members():
        path = Path(it.data(0, PathRole))
        if path.name == name and (folder is None or path.parent.name == folder):
            return it
    raise AssertionError(f"{folder}/{name} is in no group")


def click_row(qtbot: Any, panel: Any, item: Any, modifier: Any = Qt.KeyboardModifier.NoModifier) -> None:
    panel.tree.scrollToItem(item)
    rect = panel.tree.visualItemRect(item)
    x = panel.tree.header().sectionPosition(COL_WHY) + 10
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, modifier, QPoint(x, rect.center().y()))


def test_first_groups_at_once_then_refined_without_moving_the_view(qtbot: Any, make_window: Any,
                                                                   review_folder: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.core.dupes import review

    gate = threading.Event()
    real = review.ensure_calibration

    def slow_calibration(*args: Any, **kwargs: Any) -> Any:
        gate.wait(60)  # the model's stages wait until the test has looked at the quick stage
        return real(*args, **kwargs)

    monkeypatch.setattr(review, "ensure_calibration", slow_calibration)
    window = make_window(review_folder)
    window.resize(1100, 620)
    panel = window.dupes_panel
    seen: list[tuple[str, int, Any]] = []
    show = panel._show_stage_progress
    monkeypatch.setattr(panel, "_show_stage_progress",
                        lambda phase, done, total, msg: (seen.append((phase, done, total)), show(phase, done, total,
                                                                                                    msg)))
    wait_scan(qtbot, window)
    qtbot.mouseClick(window.toolbar.widgetForAction(window.commands["dupes"]), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.stage == "hashes" and panel.tree.topLevelItemCount() >= 3
                    and not window.runner.is_running("dupes-regroup"), timeout=30_000)
    panel.flush()
    # the hash stage already has the exact copy, the same-pixels copy and the resized copies
    tiers = {g.tier for g in panel.groups}
    assert {"exact", "same-pixels", "near-duplicate"} <= tiers
    assert panel.stage_label.isVisible() and panel.stage_label.text().startswith("Step 2 of 4")
    # the user scrolls down and highlights a file
    bar = panel.tree.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(bar.maximum() // 2)
    item = panel.tree.itemAt(QPoint(10, panel.tree.viewport().height() // 2))
    while item is not None and not item.data(0, PathRole):
        item = panel.tree.itemBelow(item)
    assert item is not None
    click_row(qtbot, panel, item)
    chosen = item.data(0, PathRole)
    y_before, scroll_before = panel.tree.visualItemRect(item).top(), bar.value()
    gate.set()
    qtbot.waitUntil(lambda: panel.stage == "verified" and not window.runner.is_running("dupes-build")
                    and not window.runner.is_running("dupes-regroup"), timeout=120_000)
    # refined in place: the same file is highlighted, drawn at the same height, the scroll bar did not jump
    selected = [it.data(0, PathRole) for it in panel.tree.selectedItems()]
    assert selected == [chosen]
    again = next(it for it in panel._members() if it.data(0, PathRole) == chosen)
    assert abs(panel.tree.visualItemRect(again).top() - y_before) <= 1
    assert abs(bar.value() - scroll_before) <= ICON_SIDE
    # each stage that takes time showed moving progress: calibration counted its edited copies
    calibrating = [done for phase, done, _t in seen if phase == "calibrating"]
    assert len(set(calibrating)) >= 3, seen
    assert {"embeddings", "verified"} <= {phase for phase, _d, _t in seen} | {"verified"}
    assert not panel.stage_bar.isVisible()


def test_files_told_apart_and_columns_fit_at_1400x900(qtbot: Any, make_window: Any, review_folder: Path) -> None:
    window = make_window(review_folder)
    window.resize(1400, 900)
    panel = open_review(qtbot, window)
    tree = panel.tree
    qtbot.waitUntil(lambda: tree.viewport().width() > 600, timeout=5_000)
    # the exact copy: same long name in photos/ and archive/, told apart by the Folder column and the tooltip
    a, b = row_of(panel, LONG_NAME, "photos"), row_of(panel, LONG_NAME, "archive")
    assert {a.text(COL_FOLDER), b.text(COL_FOLDER)} == {"photos", "archive"}
    assert a.toolTip(COL_NAME) == str(review_folder / "photos" / LONG_NAME)
    assert tree.textElideMode() == Qt.TextElideMode.ElideMiddle
    # date taken from EXIF
    assert row_of(panel, "dated.jpg").text(COL_TAKEN) == "2021-07-04\n18:30"  # date over time
    # no horizontal scrolling, and the short columns show their whole text
    header = tree.header()
    assert header.length() <= tree.viewport().width()
    for it in panel._members():
        for col in (COL_KIND, COL_TAKEN, COL_SIZE):
            fm = QFontMetrics(it.font(col))
            for line in it.text(col).split("\n"):
                assert fm.horizontalAdvance(line) + 12 <= header.sectionSize(col), (col, line)
        # names are not squeezed out: at least 18 characters of each name and 8 of its folder are visible
        fm = QFontMetrics(it.font(COL_NAME))
        assert header.sectionSize(COL_NAME) - ICON_SIDE - 40 >= fm.horizontalAdvance("n01440764_tench.JP")
        assert header.sectionSize(COL_FOLDER) - 12 >= fm.horizontalAdvance("Pictures")
        # the reason wraps inside its row instead of being cut
        rect = tree.visualItemRect(it)
        fm = QFontMetrics(it.font(COL_WHY))
        need = fm.boundingRect(QRect(0, 0, header.sectionSize(COL_WHY) - 10, 10_000),
                               int(Qt.TextFlag.TextWordWrap), it.text(COL_WHY)).height()
        assert need <= rect.height(), it.text(COL_WHY)
        # every row is as tall as its thumbnail, panoramas too
        assert rect.height() >= ICON_SIDE
    # a smaller window: still nothing off screen, names and folders still readable
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: tree.viewport().width() < 900, timeout=5_000)
    QApplication.processEvents()
    assert header.length() <= tree.viewport().width()
    fm = QFontMetrics(tree.font())
    assert header.sectionSize(COL_NAME) - ICON_SIDE - 40 >= fm.horizontalAdvance("n01440764_tench.JP")
    pano = row_of(panel, "panorama.jpg")
    assert tree.visualItemRect(pano).height() >= ICON_SIDE
    assert pano.icon(COL_NAME).isNull() or pano.icon(COL_NAME).availableSizes()[0].height() == ICON_SIDE


def test_compare_from_the_list_by_key_button_and_menu(qtbot: Any, make_window: Any, review_folder: Path) -> None:
    window = make_window(review_folder)
    panel = open_review(qtbot, window)
    a = row_of(panel, LONG_NAME, "photos")
    group = a.parent()
    members = [Path(group.child(j).data(0, PathRole)) for j in range(group.childCount())]
    # a group header highlighted + C: the whole group
    panel.tree.scrollToItem(group)
    rect = panel.tree.visualItemRect(group)
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(40, rect.center().y()))
    window.activateWindow()
    panel.tree.setFocus()
    qtbot.keyClick(panel.tree, Qt.Key.Key_C)
    assert window.tabs.currentWidget() is window.compare_panel
    assert window.compare_panel.paths == members
    # one file highlighted + the toolbar's Compare: that file beside its keeper
    window.tabs.setCurrentWidget(panel)
    copy = row_of(panel, "small_copy.jpg")
    click_row(qtbot, panel, copy)
    assert window.commands["compare"].isEnabled()
    qtbot.mouseClick(window.toolbar.widgetForAction(window.commands["compare"]), Qt.MouseButton.LeftButton)
    assert window.compare_panel.paths == [Path(copy.data(0, Qt.ItemDataRole.UserRole + 2)),
                                          Path(copy.data(0, PathRole))]
    # right-click: the context menu, and its Compare entry clicked
    window.tabs.setCurrentWidget(panel)
    target = row_of(panel, LONG_NAME, "archive")
    panel.tree.scrollToItem(target)
    pos = QPoint(60, panel.tree.visualItemRect(target).center().y())
    QApplication.sendEvent(panel.tree.viewport(), QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos,
                                                                    panel.tree.viewport().mapToGlobal(pos)))
    menu = panel._menu
    assert isinstance(menu, QMenu)
    qtbot.waitUntil(menu.isVisible, timeout=5_000)
    texts = [x.text() for x in menu.actions() if not x.isSeparator()]
    for expected in ("Compare", "Not a duplicate", "Check", "Uncheck", "Show in File Manager", "Move to Trash"):
        assert expected in texts
    compare = next(x for x in menu.actions() if x.text() == "Compare")
    qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(compare).center())
    assert window.tabs.currentWidget() is window.compare_panel
    assert Path(target.data(0, PathRole)) in window.compare_panel.paths


def test_trash_asks_once_with_count_and_size_and_says_what_happened(qtbot: Any, make_window: Any,
                                                                     review_folder: Path, trash_home: Path) -> None:
    window = make_window(review_folder)
    panel = open_review(qtbot, window)
    qtbot.mouseClick(panel.auto_button, Qt.MouseButton.LeftButton)
    checked = [Path(p) for p in panel.checked_paths()]
    assert checked
    total = sum(p.stat().st_size for p in checked)
    from vitfeat_desktop.gui.grid import human_size

    asked: list[str] = []
    answer_next_dialog(qtbot, "Cancel", seen=asked)
    qtbot.mouseClick(panel.trash_button, Qt.MouseButton.LeftButton)
    assert f"Move {len(checked)} photos ({human_size(total)}) to the trash?" in asked[0]
    assert all(p.exists() for p in checked)  # cancelled: nothing moved
    answer_next_dialog(qtbot, "Move to the Trash", tick="Don't ask again")
    with qtbot.waitSignal(window.action_done, timeout=30_000):
        qtbot.mouseClick(panel.trash_button, Qt.MouseButton.LeftButton)
    assert not any(p.exists() for p in checked)
    summary = panel.action_label.text()
    assert f"Moved {len(checked)} files ({human_size(total)}) to the trash." in summary and "Undo" in summary
    assert "Undo" in window.undo_label.text()  # the status line says it too (until the rescan it starts)
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=30_000)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    with qtbot.waitSignal(window.action_done, timeout=30_000):
        qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(p.exists() for p in checked)
    # "Don't ask again" was remembered: the next trash goes without a dialog
    from vitfeat_desktop import settings

    assert settings.read_file().get("confirm_trash") is False


def test_not_a_duplicate_is_listed_and_can_be_undone(qtbot: Any, make_window: Any, review_folder: Path) -> None:
    window = make_window(review_folder)
    panel = open_review(qtbot, window)
    group = row_of(panel, "pixels.png").parent()
    same = next(group.child(j) for j in range(group.childCount()) if group.child(j).text(COL_KIND) == "Same pixels")
    name = Path(same.data(0, PathRole)).name
    click_row(qtbot, panel, same)
    qtbot.mouseClick(panel.not_dup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.runner.is_running("dupes-regroup") and not any(
        Path(it.data(0, PathRole)).name == name for it in panel._members()), timeout=10_000)
    # the marked pair may show among similar shots, but never as "a burst, a retake"
    panel.mode.setFocus()
    qtbot.keyClick(panel.mode, Qt.Key.Key_Down)
    assert panel.mode.currentData() == "similar"
    panel.flush()
    found = 0
    for i in range(panel.tree.topLevelItemCount()):
        top = panel.tree.topLevelItem(i)
        names = {Path(top.child(j).data(0, PathRole)).name for j in range(top.childCount())}
        if name in names:
            found += 1
            text = " ".join(top.text(c) for c in range(panel.tree.columnCount()))
            assert "retake" not in text and "burst" not in text
            assert "identical pixels" in text
            row = next(top.child(j) for j in range(top.childCount())
                       if Path(top.child(j).data(0, PathRole)).name == name)
            assert "retake" not in row.text(COL_WHY) and "identical pixels" in row.text(COL_WHY)
    assert found == 1  # listed once, as identical pixels
    qtbot.keyClick(panel.mode, Qt.Key.Key_Up)
    # Marks… lists the pair; Unmark (clicked) lets it group again
    qtbot.mouseClick(panel.marks_button, Qt.MouseButton.LeftButton)
    listing = panel.marks_list
    assert listing.count() == 1 and name in listing.item(0).text()
    rect = listing.visualItemRect(listing.item(0))
    qtbot.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseClick(panel.unmark_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.runner.is_running("dupes-regroup") and any(
        Path(it.data(0, PathRole)).name == name for it in panel._members()), timeout=10_000)
    assert "No marks" in listing.item(0).text()
    panel.marks_dialog.close()


def test_find_duplicates_during_indexing_shows_the_copies_found_so_far(qtbot: Any, make_window: Any,
                                                                      tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.core.pipeline import FeatureExtractor

    folder = tmp_path / "pairs"
    folder.mkdir()
    sources = shared_photos()[20:26]
    if len(sources) < 6:
        pytest.skip("needs the shared photos")
    for src in sources:  # six exact pairs: any 8 files indexed first hold at least two whole pairs
        shutil.copy(src, folder / src.name)
        shutil.copy(src, folder / f"copy_of_{src.name}")
    gate = threading.Event()
    lock = threading.Lock()
    embedded = [0]
    real = FeatureExtractor.embed

    def held_back(self: Any, pixels: Any) -> Any:
        with lock:
            first = embedded[0] < 8
            embedded[0] += len(pixels)
        if not first:
            gate.wait(60)  # the rest of the folder waits until the test has looked
        return real(self, pixels)

    monkeypatch.setattr(FeatureExtractor, "embed", held_back)
    try:
        window = make_window(folder)
        panel = window.dupes_panel
        qtbot.waitUntil(lambda: window.library is not None and window.runner.is_running("scan")
                        and len(window.library.files(status="ok")) >= 8, timeout=60_000)
        qtbot.mouseClick(window.toolbar.widgetForAction(window.commands["dupes"]), Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(panel.groups) >= 2, timeout=30_000)
        assert window.runner.is_running("scan")  # still indexing: these came from the hash stage alone
        assert panel.stage == "hashes" and all(g.tier == "exact" for g in panel.groups)
        assert panel.stage_label.isVisible() and "so far" in panel.stage_label.text()
    finally:
        gate.set()
    wait_scan(qtbot, window, timeout=120_000)
    qtbot.waitUntil(lambda: panel.stage == "verified" and not window.runner.is_running("dupes-build")
                    and not window.runner.is_running("dupes-regroup"), timeout=120_000)
    assert sum(1 for g in panel.groups if g.tier == "exact") == 6  # grown in place to the whole folder
