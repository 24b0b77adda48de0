"""The window's small dialogs: preview, preferences, skipped files, about, and the damaged-library question.

Each function builds, shows and returns its dialog; the caller keeps a reference (a non-modal dialog without
one would be collected at once) and decides what the answers change.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import settings
from vitfeat_desktop.gui import compare_jobs
from vitfeat_desktop.gui.compare import ComparePanel
from vitfeat_desktop.gui.tasks import TaskRunner
from vitfeat_desktop.gui.text import for_window
from vitfeat_desktop.version import __version__


def preview_dialog(parent: QWidget, path: Path, runner: TaskRunner) -> QDialog:
    """One photo large, zoomable like the Compare view; Space or Esc closes it."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(path.name)
    layout = QVBoxLayout(dialog)
    panel = ComparePanel()
    panel.hint.setText("Scroll to zoom, drag to pan. Space or Esc closes.")
    panel.mode.setVisible(False)  # one photo: nothing to line up or flicker
    compare_jobs.serve(panel, runner, "preview")
    layout.addWidget(panel)
    close = QAction(dialog)
    close.setShortcut(QKeySequence("Space"))
    close.triggered.connect(dialog.accept)
    dialog.addAction(close)
    dialog.resize(int(parent.width() * 0.8), int(parent.height() * 0.85))
    panel.set_paths([path])
    dialog.show()
    return dialog


def preferences_dialog(parent: QWidget, on_threads: Callable[[int], None]) -> QDialog:
    """How many processor cores the model may use; ``on_threads`` gets the choice when OK is pressed."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("Preferences")
    form = QFormLayout(dialog)
    threads = QSpinBox()
    threads.setRange(0, max(1, os.cpu_count() or 1))
    threads.setSpecialValueText("all cores")
    threads.setValue(settings.load().threads)
    threads.setToolTip("Fewer cores keep other programs snappier while a library is indexed; more index faster")
    form.addRow("Processor cores for the model:", threads)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)
    dialog.accepted.connect(lambda: on_threads(threads.value()))
    dialog.show()
    return dialog


def skipped_dialog(parent: QWidget, skipped: list[tuple[str, str]]) -> QDialog:
    """The files a scan could not read, each with the reason."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(f"{len(skipped)} skipped files")
    layout = QVBoxLayout(dialog)
    text = QTextBrowser()
    if skipped:
        rows = "".join(f"<tr><td>{html.escape(p, quote=False)}</td><td>{html.escape(for_window(r), quote=False)}"
                       "</td></tr>" for p, r in skipped)
        text.setHtml(f"<table cellpadding=3><tr><th align=left>File</th><th align=left>Why</th></tr>{rows}</table>")
    else:
        text.setPlainText("No file was skipped.")
    layout.addWidget(text)
    close = QPushButton("Close")
    close.clicked.connect(dialog.accept)
    layout.addWidget(close, alignment=Qt.AlignmentFlag.AlignRight)
    dialog.resize(760, 420)
    dialog.show()
    return dialog


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About vitfeat", f"<h3>vitfeat {__version__}</h3><p>Find similar photos and "
                      "duplicates with Vision Transformer features, on your own computer. Your photos never "
                      "leave it.</p>")


def ask_repair(parent: QWidget, message: str) -> bool:
    """A damaged catalogue (issue 13): offer the repair instead of showing the same error on every open."""
    return QMessageBox.question(parent, "Damaged library", f"{message}\n\nRepair it now? The photos are indexed "
                                "again; marks and undo history are kept.") == QMessageBox.StandardButton.Yes
