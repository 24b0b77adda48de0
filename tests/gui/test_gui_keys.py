"""Keyboard shortcuts (arrows, Space preview, Delete -> trash with undo) and the grid's context menu actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.qt import answer_next_dialog, wait_scan
from PySide6.QtCore import QItemSelectionModel, Qt, QUrl
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QApplication, QMenu

pytestmark = pytest.mark.gui


def ready_window(qtbot: Any, make_window: Any, folder: Path) -> Any:
    window = make_window(folder)
    wait_scan(qtbot, window)
    window.sort_combo.setCurrentIndex(window.sort_combo.findData("name"))
    window.activateWindow()
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.library_model.index(0, 0))
    qtbot.waitUntil(lambda: window.grid.hasFocus(), timeout=5_000)
    return window


def current_row(window: Any) -> int:
    return window.grid.currentIndex().row()


def press(qtbot: Any, widget: Any, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.keyClick(widget, key, modifier)
    QApplication.processEvents()


def test_arrow_keys_move_through_the_grid(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = ready_window(qtbot, make_window, photo_folder)
    grid = window.grid
    press(qtbot, grid, Qt.Key.Key_Right)
    assert current_row(window) == 1
    press(qtbot, grid, Qt.Key.Key_Left)
    assert current_row(window) == 0
    # Down moves by one row of the grid: as many cells as fit across
    per_row = max(1, grid.viewport().width() // grid.gridSize().width()) if grid.gridSize().isValid() else None
    press(qtbot, grid, Qt.Key.Key_Down)
    down = current_row(window)
    assert down > 0 and (per_row is None or down == min(per_row, window.library_model.rowCount() - 1))
    press(qtbot, grid, Qt.Key.Key_End)
    assert current_row(window) == window.library_model.rowCount() - 1
    press(qtbot, grid, Qt.Key.Key_Home)
    assert current_row(window) == 0
    assert window.selected_paths() == [window.library_model.item(0).path]


def test_space_previews_and_closes(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = ready_window(qtbot, make_window, photo_folder)
    press(qtbot, window.grid, Qt.Key.Key_Right)
    expected = window.library_model.item(1).path
    press(qtbot, window.grid, Qt.Key.Key_Space)
    dialog = window._preview_dialog
    assert dialog.isVisible() and dialog.windowTitle() == expected.name
    panel = dialog.findChild(type(window.compare_panel))
    qtbot.waitUntil(lambda: not panel.views[0].item.pixmap().isNull(), timeout=20_000)
    assert expected.name in panel.captions[0].text()
    dialog.activateWindow()
    qtbot.keyClick(dialog, Qt.Key.Key_Space)  # Space again closes the preview
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)


def test_delete_trashes_and_undo_restores(qtbot: Any, make_window: Any, photo_folder: Path,
                                         trash_home: Path) -> None:
    window = ready_window(qtbot, make_window, photo_folder)
    press(qtbot, window.grid, Qt.Key.Key_Right)
    victim = window.library_model.item(1).path
    data = victim.read_bytes()
    asked: list[str] = []
    answer_next_dialog(qtbot, "Move to the Trash", seen=asked)
    with qtbot.waitSignal(window.action_done, timeout=30_000) as done:
        press(qtbot, window.grid, Qt.Key.Key_Delete)
    assert "Move 1 photo (" in asked[0] and "kB) to the trash?" in asked[0]
    assert [Path(s) for s, _ in done.args[0].done] == [victim]
    assert not victim.exists()
    assert any(p.name == victim.name for p in (trash_home / "files").iterdir())  # in the trash, not deleted
    assert victim not in {it.path for it in window.library_model.items()}
    assert "Undo" in window.undo_label.text()
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=30_000)
    window.activateWindow()  # the confirmation dialog had the focus; the window gets it back when it closes
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    with qtbot.waitSignal(window.action_done, timeout=30_000):
        press(qtbot, window.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert victim.read_bytes() == data
    qtbot.waitUntil(lambda: victim in {it.path for it in window.library_model.items()}, timeout=30_000)


def menu_for(qtbot: Any, window: Any, row: int) -> dict[str, QAction]:
    """Right-click a cell: the menu pops up with the cell selected; its actions by text."""
    grid = window.grid
    rect = grid.visualRect(window.library_model.index(row, 0))
    window._context_menu(grid, rect.center())
    menu = window._menu
    assert isinstance(menu, QMenu)
    qtbot.waitUntil(menu.isVisible, timeout=5_000)
    actions = {a.text(): a for a in menu.actions() if not a.isSeparator()}
    menu.close()
    assert grid.selectionModel().isSelected(window.library_model.index(row, 0))
    return actions


def test_context_menu_actions(qtbot: Any, make_window: Any, photo_folder: Path, trash_home: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.gui import file_actions as mw

    opened: list[str] = []
    monkeypatch.setattr(mw.QDesktopServices, "openUrl", lambda url: opened.append(QUrl(url).toLocalFile()) or True)
    monkeypatch.setattr(mw.sys, "platform", "linux")  # reveal = open the containing folder
    window = ready_window(qtbot, make_window, photo_folder)
    window.grid.selectionModel().select(window.library_model.index(1, 0),
                                        QItemSelectionModel.SelectionFlag.Select)  # 0 and 1 selected
    assert len(window.selected_paths()) == 2
    target = window.library_model.item(2).path
    # a right-click on another cell selects that cell first
    actions = menu_for(qtbot, window, 3)
    assert current_row(window) == 3
    path3 = window.library_model.item(3).path
    for text in ("Open in Default App", "Show in File Manager", "Copy Path", "Find Similar", "Compare",
                 "Move to Trash"):
        assert text in actions and actions[text].isEnabled(), text
    actions["Open in Default App"].trigger()
    assert opened == [str(path3)]
    actions["Show in File Manager"].trigger()
    assert opened[-1] == str(path3.parent)
    actions["Copy Path"].trigger()
    assert QGuiApplication.clipboard().text() == str(path3)
    with qtbot.waitSignal(window.similar_ready, timeout=30_000) as similar:
        actions["Find Similar"].trigger()
    assert window.tabs.currentWidget() is window.similar_panel and window.similar_panel.query_path == path3
    assert path3 not in {it.path for it in similar.args[0]} and similar.args[0]
    # from the Similar tab: Compare shows the query next to the chosen result
    window.similar_panel.grid.setCurrentIndex(window.similar_model.index(0, 0))
    first_result = window.similar_model.item(0).path
    window.similar_panel.grid.setFocus()
    window.compare_selected()
    assert window.tabs.currentWidget() is window.compare_panel
    assert [Path(p) for p in window.compare_panel.paths] == [path3, first_result]
    # back in the library grid: right-click inside a selection of two keeps both; Compare shows both
    window.tabs.setCurrentIndex(0)
    window.grid.setFocus()
    sel = window.grid.selectionModel()
    sel.setCurrentIndex(window.library_model.index(4, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    sel.select(window.library_model.index(5, 0), QItemSelectionModel.SelectionFlag.Select)
    pair = [window.library_model.item(4).path, window.library_model.item(5).path]
    actions = menu_for(qtbot, window, 5)
    assert sorted(window.selected_paths()) == sorted(pair)
    actions["Compare"].trigger()
    assert window.tabs.currentWidget() is window.compare_panel
    assert sorted(Path(p) for p in window.compare_panel.paths) == sorted(pair)
    window.tabs.setCurrentIndex(0)
    actions = menu_for(qtbot, window, 2)
    assert window.selected_paths() == [target]
    answer_next_dialog(qtbot, "Move to the Trash")
    with qtbot.waitSignal(window.action_done, timeout=30_000):
        actions["Move to Trash"].trigger()
    assert not target.exists() and any(p.name == target.name for p in (trash_home / "files").iterdir())


def test_sorting_keeps_the_selected_photos(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    """The selection follows its photos when the grid is re-sorted (it must not land on other photos)."""
    window = ready_window(qtbot, make_window, photo_folder)
    sel = window.grid.selectionModel()
    sel.setCurrentIndex(window.library_model.index(1, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    sel.select(window.library_model.index(4, 0), QItemSelectionModel.SelectionFlag.Select)
    chosen = sorted(window.selected_paths())
    current = window.grid.current_item().path
    for key in ("size", "date", "name"):
        window.sort_combo.setCurrentIndex(window.sort_combo.findData(key))
        assert sorted(window.selected_paths()) == chosen, key
        assert window.grid.current_item().path == current, key
    sizes = [it.size for it in window.library_model.items()]
    window.sort_combo.setCurrentIndex(window.sort_combo.findData("size"))
    assert [it.size for it in window.library_model.items()] != sizes or len(set(sizes)) == 1  # it did reorder
    assert sorted(window.selected_paths()) == chosen
