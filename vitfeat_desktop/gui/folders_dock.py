"""The Folders dock: the libraries the user has opened, and the reference folders (never modified).

Both lists live in the settings; the dock reads them again whenever the session says the libraries changed, and
announces a change of reference folders (the duplicates' keeper rules depend on them).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import settings
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session


def choose_folder(parent: QWidget, session: Session) -> None:
    """Ask for a photo folder and open it as a library."""
    start = str(session.library_folder or Path.home())
    folder = QFileDialog.getExistingDirectory(parent, "Open a photo folder", start)
    if folder:
        session.open_folder(Path(folder))


class FoldersDock(QDockWidget):
    references_changed = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Folders", parent)
        self.session = session
        self.setObjectName("folders-dock")
        lib_widget = QWidget()
        v = QVBoxLayout(lib_widget)
        v.setContentsMargins(6, 6, 6, 6)
        v.addWidget(QLabel("<b>Libraries</b>"))
        self.library_list = QListWidget()
        self.library_list.setToolTip("Photo folders you have opened. Click one to switch to it.")
        self.library_list.itemActivated.connect(self._open_item)
        self.library_list.itemClicked.connect(self._open_item)
        v.addWidget(self.library_list, 2)
        row = QHBoxLayout()
        add = QPushButton("Add folder…")
        add.clicked.connect(lambda _checked=False: choose_folder(self, session))
        remove = QPushButton("Forget")
        remove.setToolTip("Remove the folder from this list (the photos are not touched)")
        remove.clicked.connect(self._forget_library)
        row.addWidget(add)
        row.addWidget(remove)
        v.addLayout(row)
        v.addSpacing(8)
        v.addWidget(QLabel("<b>Reference folders</b>"))
        ref_help = QLabel("Photos here are never moved or deleted; their copies elsewhere count as duplicates.")
        ref_help.setWordWrap(True)
        v.addWidget(ref_help)
        self.reference_list = QListWidget()
        v.addWidget(self.reference_list, 1)
        row2 = QHBoxLayout()
        add_ref = QPushButton("Add…")
        add_ref.clicked.connect(lambda _checked=False: self.add_reference_folder())  # not the checked flag
        rm_ref = QPushButton("Remove")
        rm_ref.clicked.connect(self._remove_reference_folder)
        row2.addWidget(add_ref)
        row2.addWidget(rm_ref)
        v.addLayout(row2)
        self.setWidget(lib_widget)
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        session.libraries_changed.connect(self.refresh)
        self.refresh()

    def _open_item(self, item: QListWidgetItem) -> None:
        self.session.open_folder(Path(item.data(Qt.ItemDataRole.UserRole)))

    def refresh(self) -> None:
        stored = settings.load()
        self.library_list.clear()
        for p in stored.libraries:
            item = QListWidgetItem(Path(p).name or p)
            item.setToolTip(p)
            item.setData(Qt.ItemDataRole.UserRole, p)
            if not Path(p).is_dir():
                item.setText(f"{Path(p).name} (not found)")
            if stored.active_library == p:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.library_list.addItem(item)
        self.reference_list.clear()
        for p in stored.reference_folders:
            item = QListWidgetItem(Path(p).name or p)
            item.setToolTip(p)
            item.setData(Qt.ItemDataRole.UserRole, p)
            self.reference_list.addItem(item)

    def _forget_library(self) -> None:
        item = self.library_list.currentItem()
        if item is not None:
            self.session.forget_library(item.data(Qt.ItemDataRole.UserRole))

    def add_reference_folder(self, folder: str | None = None) -> None:
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Choose a reference folder (never modified)",
                                                      str(self.session.library_folder or Path.home()))
        if not folder:
            return
        refs = settings.load().reference_folders
        resolved = str(Path(folder).expanduser().resolve())
        if resolved not in refs:
            refs.append(resolved)
        self._set_references(refs)

    def _remove_reference_folder(self) -> None:
        item = self.reference_list.currentItem()
        if item is not None:
            path = item.data(Qt.ItemDataRole.UserRole)
            self._set_references([p for p in settings.load().reference_folders if p != path])

    def _set_references(self, refs: list[str]) -> None:
        settings.update(reference_folders=refs)
        self.refresh()
        emit(self.references_changed)
