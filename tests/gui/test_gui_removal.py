"""The Delete key follows the removal policy: on Windows/macOS (or by the user's setting) it quarantines, which
vitfeat's Undo always reverses, instead of trashing into a Recycle Bin/Trash Undo cannot read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.qt import answer_next_dialog, wait_scan
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from vitfeat_desktop import settings

pytestmark = pytest.mark.gui


def test_delete_quarantines_when_that_is_the_policy_and_undo_restores(
    qtbot: Any, make_window: Any, photo_folder: Path, trash_home: Path
) -> None:
    settings.update(removal="quarantine")  # what Windows and macOS get by default
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    assert window.commands["trash"].text() == "Quarantine"
    window.sort_combo.setCurrentIndex(window.sort_combo.findData("name"))
    window.activateWindow()
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.library_model.index(1, 0))
    qtbot.waitUntil(lambda: window.grid.hasFocus(), timeout=5_000)
    victim = window.selected_paths()[0]
    data = victim.read_bytes()
    asked: list[str] = []
    answer_next_dialog(qtbot, "Quarantine", seen=asked)
    with qtbot.waitSignal(window.action_done, timeout=30_000) as done:
        qtbot.keyClick(window.grid, Qt.Key.Key_Delete)
        QApplication.processEvents()
    assert "Move 1 photo (" in asked[0] and "quarantine" in asked[0].lower()
    result = done.args[0]
    assert [Path(s) for s, _ in result.done] == [victim] and not victim.exists()
    moved_to = Path(result.done[0][1])
    assert moved_to.read_bytes() == data and "quarantine" in str(moved_to).lower()
    assert not (trash_home / "files").exists() or not any((trash_home / "files").iterdir())  # not trashed
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=30_000)
    window.activateWindow()  # the confirmation dialog had the focus; the window gets it back when it closes
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    with qtbot.waitSignal(window.action_done, timeout=30_000):
        qtbot.keyClick(window.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        QApplication.processEvents()
    assert victim.read_bytes() == data
    # the rescan after Undo must finish before the window closes (as test_gui_keys' trash test waits too)
    qtbot.waitUntil(lambda: victim in {it.path for it in window.library_model.items()}, timeout=30_000)
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=30_000)
