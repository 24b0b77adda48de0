"""The "not a duplicate" marks of a library, each pair with its files; Unmark lets a pair group again."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
from vitfeat_desktop.gui.qtcompat import emit


def _names(paths: list[str]) -> str:
    return ", ".join(Path(p).name for p in paths) if paths else "(no longer in the library)"


class MarksDialog(QDialog):
    unmarked = Signal(int)  # how many pairs were unmarked (the caller regroups)

    def __init__(self, marks: NotDuplicateMarks, files: list[FileInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.marks, self.files = marks, files
        self.setWindowTitle("Not a duplicate: your marks")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("These pairs are never grouped as duplicates. Unmark a pair to let it group again."))
        self.listing = QListWidget()
        self.listing.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        layout.addWidget(self.listing, 1)
        self.fill()
        row = QHBoxLayout()
        self.unmark_button = QPushButton("Unmark")
        self.unmark_button.clicked.connect(lambda _checked=False: self.unmark())
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        row.addStretch(1)
        row.addWidget(self.unmark_button)
        row.addWidget(close)
        layout.addLayout(row)
        self.resize(640, 360)

    def fill(self) -> None:
        self.listing.clear()
        for pair, left, right in review.marked_pairs(self.marks, self.files):
            item = QListWidgetItem(f"{_names(left)}  ↔  {_names(right)}" if pair[0] != pair[1]
                                   else f"{_names(left)}  (identical files)")
            item.setToolTip("\n".join(left + right))
            item.setData(Qt.ItemDataRole.UserRole, list(pair))
            self.listing.addItem(item)
        if not self.listing.count():
            self.listing.addItem(QListWidgetItem("No marks: every pair may be grouped."))

    def unmark(self) -> None:
        chosen = [it.data(Qt.ItemDataRole.UserRole) for it in self.listing.selectedItems()
                  if it.data(Qt.ItemDataRole.UserRole)]
        for pair in chosen:
            review.unmark_pair(self.marks, (str(pair[0]), str(pair[1])))
        if chosen:
            self.fill()
            emit(self.unmarked, len(chosen))
