"""Driving a window as a person would: wait for a scan to finish, answer the next modal dialog with the mouse.
Plain functions (not fixtures) so any test with ``qtbot`` can use them, in ``tests/gui`` or elsewhere."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QAbstractButton, QApplication, QCheckBox, QMessageBox


def wait_scan(qtbot: Any, window: Any, timeout: int = 60_000) -> Any:
    with qtbot.waitSignal(window.scan_finished, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


def answer_next_dialog(qtbot: Any, button: str, *, tick: str | None = None, seen: list[str] | None = None) -> None:
    """When the next modal dialog opens, read its text into ``seen``, tick the check box labelled ``tick`` and
    click the button labelled ``button`` with the mouse, as a person would (the dialog's exec() blocks the test)."""

    def attempt() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(20, attempt)
            return
        if seen is not None and isinstance(box, QMessageBox):
            seen.append(f"{box.text()}\n{box.informativeText()}")
        buttons = {b.text().replace("&", ""): b for b in box.findChildren(QAbstractButton)}
        if tick is not None:
            check = buttons[tick]
            assert isinstance(check, QCheckBox)
            qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(buttons[button], Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, attempt)
