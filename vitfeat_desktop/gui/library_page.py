"""The Library tab: the open library's grid, "No folder open", or the model panel while no model is usable.

It follows the session: the catalogue's photos as soon as a folder opens, the photos catalogued so far while the
scan runs (appended, so the user's scroll position stays), and the full list when the scan ends.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget

from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.grid import GridItem, ImageGrid, ImageListModel
from vitfeat_desktop.gui.models_panel import ModelSetupPanel
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.status_bar import scan_summary
from vitfeat_desktop.gui.thumbs import ThumbnailLoader

NO_FOLDER = ("<h2>No folder open</h2><p>Open a photo folder (Ctrl+O) or drop one on this window.<br>vitfeat indexes "
             "it in the background; your photos are never modified.</p>")


class LibraryPage(QStackedWidget):
    status = Signal(str)  # a line for the status bar
    failed = Signal(str)
    filled = Signal()  # the grid's photos (or the skipped files) changed

    def __init__(self, session: Session, model: ImageListModel, loader: ThumbnailLoader,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = model
        self.skipped: list[tuple[str, str]] = []
        self.sort_key = "name"
        self.grid = ImageGrid(model, loader)
        self.empty_label = QLabel(NO_FOLDER)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.setup_panel = ModelSetupPanel(session.runner, self)
        self.setup_panel.model_available.connect(session.model_installed)
        for page in (self.empty_label, self.grid, self.setup_panel):
            self.addWidget(page)
        session.model_ready.connect(lambda _extractor: self._model_ready())
        session.model_failed.connect(self._model_failed)
        session.library_opening.connect(lambda _folder: self._opening())
        session.library_opened.connect(self._opened)
        session.live_files.connect(self._live_files)
        session.scan_done.connect(self._scanned)
        session.files_refreshed.connect(self.fill)
        session.query_ready.connect(self.select_path)

    def _model_ready(self) -> None:
        self.setup_panel.set_missing(None)
        self.show_page()

    def _model_failed(self, message: str) -> None:
        self.setup_panel.set_missing(message)
        self.setCurrentWidget(self.setup_panel)

    def _opening(self) -> None:
        self.model.set_items([])
        self.show_page()

    def _opened(self, opened: jobs.OpenedLibrary) -> None:
        self.fill(opened.files, opened.skipped)
        if self.session.pending_query is not None:
            self.select_path(self.session.pending_query)

    def _live_files(self, items: list[GridItem]) -> None:
        self.model.add_new(items)
        self.show_page()

    def _scanned(self, outcome: jobs.ScanOutcome) -> None:
        before = self.model.items()
        self.fill(outcome.files, outcome.skipped)
        emit(self.status, scan_summary(outcome.report, before, self.model.items()))

    def fill(self, files: list[GridItem], skipped: list[tuple[str, str]]) -> None:
        self.skipped = list(skipped)
        self.model.set_items(list(files))
        self.sort(self.sort_key)
        self.show_page()
        emit(self.filled)

    def show_page(self) -> None:
        if self.session.extractor is None and self.currentWidget() is self.setup_panel:
            return
        self.setCurrentWidget(self.grid if self.session.library_folder is not None else self.empty_label)

    def sort(self, key: str) -> None:
        """Name, date taken, file size, or visual similarity (computed on a worker: look-alikes side by side)."""
        self.sort_key = key
        if key != "visual":
            self.model.sort_by(key, descending=(key in ("date", "size")))
        elif self.session.library is not None:
            emit(self.status, "Ordering by visual similarity…")
            self.session.runner.submit(jobs.library_order, self.session.library, key="order",
                                       on_result=self._apply_order, on_error=lambda m: emit(self.failed, m))

    def _apply_order(self, order: list[int]) -> None:
        self.model.order_by(order)
        emit(self.status, "Sorted by visual similarity: look-alike photos sit next to each other.")

    def select_path(self, path: Path) -> None:
        row = self.model.row_of(path)
        if row is not None:
            index = self.model.index(row, 0)
            self.grid.setCurrentIndex(index)
            self.grid.scrollTo(index)
