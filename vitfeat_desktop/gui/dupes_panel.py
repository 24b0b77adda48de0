"""Duplicates view (being wired to vitfeat_desktop.core.dupes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class DuplicatesPanel(QWidget):
    def __init__(self, window: Any, loader: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_ = window
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Duplicates"))

    def library_changed(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    def selected_paths(self) -> list[Path]:
        return []

    def files_removed(self, paths: list[Path]) -> None:
        pass
