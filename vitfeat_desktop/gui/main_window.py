"""The main window: building and connecting. The state and its jobs live in :class:`Session`, the commands in
:mod:`menus`, file operations in :mod:`file_actions`; every answer comes from the core through :mod:`jobs`.

Layout: a toolbar, the Folders dock on the left, the views as tabs in the middle (Library, Similar, Duplicates,
Compare), the inspector on the right, and a status bar that shows the running job with images/s, ETA, Cancel and
a "N skipped" link. Long work always goes through the session's :class:`TaskRunner`, so the window never waits
on a model, a disk or a scan.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox, QTabWidget

from vitfeat_desktop import settings
from vitfeat_desktop.core.images import is_image_path
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.core.pipeline import FeatureExtractor
from vitfeat_desktop.gui import compare_jobs, dialogs, menus, window_state
from vitfeat_desktop.gui.compare import ComparePanel
from vitfeat_desktop.gui.dupes_panel import DuplicatesPanel
from vitfeat_desktop.gui.file_actions import FileActions
from vitfeat_desktop.gui.folders_dock import FoldersDock, choose_folder
from vitfeat_desktop.gui.grid import ImageGrid, ImageListModel
from vitfeat_desktop.gui.inspector_dock import InspectorDock
from vitfeat_desktop.gui.library_page import LibraryPage
from vitfeat_desktop.gui.models_panel import ModelManagerDialog
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.similar_panel import SimilarPanel
from vitfeat_desktop.gui.status_bar import StatusBar
from vitfeat_desktop.gui.text import for_window
from vitfeat_desktop.gui.thumbs import ThumbnailLoader

IMAGE_FILTER = ("Images (*.jpg *.jpeg *.png *.webp *.heic *.heif *.tif *.tiff *.avif *.bmp *.gif *.dng *.cr2 *.nef "
                "*.arw);;All files (*)")


class MainWindow(QMainWindow):
    """The app window. Public attributes are used by the tests and the screenshot script."""

    dupes_panel: DuplicatesPanel
    similar_panel: SimilarPanel
    inspector_dock: InspectorDock

    library_ready = Signal()  # a library was opened, its grid filled from the catalogue, and its scan started
    scan_finished = Signal(object)  # ScanReport
    scan_cancelled = Signal()
    similar_ready = Signal(list)
    inspection_ready = Signal(object)
    model_ready = Signal(object)
    action_done = Signal(object)
    job_failed = Signal(str)

    def __init__(self, folder: Path | None = None, model: str | Path | None = None, *, quantized: bool = True,
                 restore: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("vitfeat")  # the icon: gui.app.build_window
        self.setAcceptDrops(True)
        stored = settings.load()
        self.session = s = Session(model if model is not None else stored.model,
                                   quantized and not stored.model_fp32 if model is None else quantized, self)
        self.runner = s.runner
        self.loader = ThumbnailLoader(self.runner, parent=self)
        self.files = FileActions(s, self, self.selected_paths)
        self.library_model = ImageListModel(self.loader, self)
        self.similar_model = ImageListModel(self.loader, self)
        self.commands = menus.build_actions(self)
        self._build_views()
        self._build_docks()
        menus.build_menus(self, self.commands, [self.library_dock.toggleViewAction(),
                                               self.inspector_dock.toggleViewAction()])
        self.toolbar, self.sort_combo, self.zoom_slider = menus.build_toolbar(self, self.commands)
        self.sort_combo.currentIndexChanged.connect(lambda _i: self.library_stack.sort(self.sort_combo.currentData()))
        self.thumbs = menus.ThumbSize(self.zoom_slider, [self.grid, self.similar_panel.grid],
                                      lambda: self.session.closing, self)
        self.dupes_panel.set_shared_actions(self.commands["compare"],
                                            menus.actions_of(self.commands, menus.DUPES_CONTEXT_MENU))
        self.status = bar = StatusBar(self.statusBar(), s)
        self.status_label, self.progress_bar, self.cancel_button = bar.label, bar.progress_bar, bar.cancel_button
        self.skipped_label, self.undo_label, self.model_label = bar.skipped_label, bar.undo_label, bar.model_label
        self.status.skipped_label.linkActivated.connect(lambda _l: self.show_skipped())
        bar.follow(self.files)
        self._connect_session()
        window_state.restore(self)
        self.thumbs.set_side(stored.thumb_size)
        self._update_actions()
        start_folder = folder
        if start_folder is not None and Path(start_folder).expanduser().is_file():
            s.pending_query = Path(start_folder).expanduser().resolve()
            start_folder = s.pending_query.parent
        if start_folder is None and restore and stored.active_library and Path(stored.active_library).is_dir():
            start_folder = Path(stored.active_library)
        s.pending_folder = start_folder
        s.load_model(s.model_spec, s.quantized)

    # -- construction --------------------------------------------------------------------------------------
    def _grid(self, grid: ImageGrid) -> ImageGrid:
        grid.customContextMenuRequested.connect(lambda pos: self._context_menu(grid, pos))
        grid.doubleClicked.connect(lambda _i: self.preview())
        grid.selectionModel().currentChanged.connect(lambda *_: self._selection_changed(grid))
        return grid

    def _build_views(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.library_stack = LibraryPage(self.session, self.library_model, self.loader)
        self.grid, self.setup_panel = self._grid(self.library_stack.grid), self.library_stack.setup_panel
        self.library_stack.status.connect(lambda text: self.status.label.setText(text))
        self.library_stack.failed.connect(self._job_error)
        self.library_stack.filled.connect(self._library_filled)
        self.tabs.addTab(self.library_stack, "Library")
        self.similar_panel = SimilarPanel(self.session, self.similar_model, self.loader)
        self._grid(self.similar_panel.grid)
        self.similar_panel.results_ready.connect(lambda items: emit(self.similar_ready, items))
        self.similar_panel.failed.connect(self._job_error)
        self.tabs.addTab(self.similar_panel, "Similar")
        self.dupes_panel = DuplicatesPanel(self.session, self.files, self.loader)
        self.dupes_panel.compare_requested.connect(self.compare)
        self.dupes_panel.highlighted.connect(self._dupes_highlighted)
        self.tabs.addTab(self.dupes_panel, "Duplicates")
        self.compare_panel = ComparePanel()
        compare_jobs.serve(self.compare_panel, self.runner, "compare")
        self.compare_panel.files_dropped.connect(self._compare_dropped)
        self.tabs.addTab(self.compare_panel, "Compare")
        self.tabs.currentChanged.connect(lambda _i: self._update_actions())
        self.setCentralWidget(self.tabs)

    def _build_docks(self) -> None:
        self.library_dock = FoldersDock(self.session, self)
        self.library_dock.references_changed.connect(self.dupes_panel.library_changed)
        self.library_list, self.reference_list = self.library_dock.library_list, self.library_dock.reference_list
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.library_dock)
        self.inspector_dock = InspectorDock(self.session, self)
        self.inspector = self.inspector_dock.panel
        self.inspector_dock.inspected.connect(lambda ins: emit(self.inspection_ready, ins))
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.resizeDocks([self.library_dock, self.inspector_dock], [200, 280], Qt.Orientation.Horizontal)

    def _connect_session(self) -> None:
        s = self.session
        s.failed.connect(self._job_error)
        self.files.failed.connect(self._job_error)
        self.files.removed.connect(self.library_model.remove_paths)
        self.files.removed.connect(self.similar_model.remove_paths)
        self.files.finished.connect(lambda result, _text, _undoable: emit(self.action_done, result))
        s.model_ready.connect(lambda extractor: emit(self.model_ready, extractor))
        s.model_failed.connect(lambda _message: self.tabs.setCurrentIndex(0))
        s.not_a_folder.connect(lambda f: QMessageBox.warning(self, "Cannot open folder", f"{f} is not a folder."))
        s.library_opening.connect(lambda folder: self.setWindowTitle(f"{folder.name} — vitfeat"))
        s.library_ready.connect(lambda: emit(self.library_ready))
        s.open_failed.connect(self._open_failed)
        for signal in (s.scan_started, s.scan_done, s.scan_failed, s.scan_cancelled):
            signal.connect(lambda *_: self._update_actions())
        s.scan_done.connect(lambda outcome: emit(self.scan_finished, outcome.report))
        s.query_ready.connect(self.find_similar)
        s.scan_failed.connect(self._job_error)
        s.scan_cancelled.connect(lambda: emit(self.scan_cancelled))

    # -- what the session says -----------------------------------------------------------------------------
    @property
    def extractor(self) -> FeatureExtractor | None:
        return self.session.extractor

    @property
    def library(self) -> Library | None:
        return self.session.library

    @property
    def library_folder(self) -> Path | None:
        return self.session.library_folder

    def query_library(self) -> Library | None:
        return self.session.query_library()

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.library_stack.skipped

    def _open_failed(self, folder: Path, message: str) -> None:
        if "--repair" in message and dialogs.ask_repair(self, message):
            self.session.repair(folder)
        else:
            self._job_error(message)

    def _library_filled(self) -> None:
        self.status.set_skipped(len(self.library_stack.skipped))
        self._update_actions()

    def _job_error(self, message: str) -> None:
        message = for_window(message)
        self.status.label.setText(message)
        emit(self.job_failed, message)

    # -- commands (menus._commands) --------------------------------------------------------------------------
    def choose_folder(self) -> None:
        choose_folder(self, self.session)

    def open_folder(self, folder: Path) -> None:
        self.session.open_folder(folder)

    def open_path(self, path: Path) -> None:
        """What the command line, "Open with" and the macOS FileOpen event give: a folder or an image file.

        An image is selected in the grid and becomes the query once its folder is indexed (``Session.open_image``).
        """
        path = Path(path).expanduser()
        if path.is_dir():
            self.open_folder(path)
            return
        if not (path.is_file() and is_image_path(path)):
            self.status.label.setText(f"{path.name} is not a folder or a supported image file.")
            return
        self.library_stack.select_path(path.resolve())  # when its library is open already
        self.session.open_image(path)

    def rescan(self) -> None:
        self.session.rescan()

    def cancel_scan(self) -> None:
        self.session.cancel_scan()

    def show_model_manager(self) -> None:
        self._model_dialog = ModelManagerDialog(self.runner, self, active=self.extractor)
        self._model_dialog.model_chosen.connect(self.session.choose_model)
        self._model_dialog.show()

    def show_preferences(self) -> None:
        self._prefs_dialog = dialogs.preferences_dialog(self, self.session.set_threads)

    def show_skipped(self) -> None:
        self._skipped_dialog = dialogs.skipped_dialog(self, self.skipped)

    def show_about(self) -> None:
        dialogs.show_about(self)

    def preview(self) -> None:
        paths = self.selected_paths()
        if paths:
            self._preview_dialog = dialogs.preview_dialog(self, paths[0], self.runner)

    def selected_paths(self) -> list[Path]:
        page = self.tabs.currentWidget()
        if page is self.dupes_panel:
            return self.dupes_panel.selected_paths()
        grid = self.grid if page is self.library_stack else self.similar_panel.grid if page is self.similar_panel \
            else None
        if grid is None:
            return []
        items = grid.selected_items() or [it for it in (grid.current_item(),) if it is not None]
        return [it.path for it in items]

    def _selection_changed(self, grid: ImageGrid) -> None:
        self._update_actions()
        item = grid.current_item()
        if item is not None and self.inspector_dock.isVisible():
            self._inspect_path = item.path  # the latest selection is inspected once the user pauses
            QTimer.singleShot(150, self._inspect_latest)  # a bound slot: never runs after the window is gone

    def _inspect_latest(self) -> None:
        self.inspect(self._inspect_path)

    def _dupes_highlighted(self, path: Path | None) -> None:
        self._update_actions()
        if path is not None and self.inspector_dock.isVisible():
            self.inspect(path)

    def _update_actions(self) -> None:
        selection = bool(self.selected_paths())
        in_dupes = self.tabs.currentWidget() is self.dupes_panel
        menus.update_enabled(self.commands, selection=selection, library=self.library is not None,
                             comparable=bool(self.dupes_panel.compare_paths()) if in_dupes else selection,
                             scanning=self.runner.is_running("scan"))

    def _context_menu(self, grid: ImageGrid, pos: QPoint) -> None:
        idx = grid.indexAt(pos)
        if not idx.isValid():
            return
        if not grid.selectionModel().isSelected(idx):
            # like a file manager: right-clicking outside the selection selects only the clicked photo
            # (setCurrentIndex alone would add it to the selection, and the menu would act on all of them)
            grid.selectionModel().setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self._menu = menus.popup(self, self.commands, menus.CONTEXT_MENU)
        self._menu.popup(grid.viewport().mapToGlobal(pos))

    def find_similar_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.find_similar(paths[0])

    def choose_query_file(self) -> None:
        start = str(self.library_folder or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Find photos similar to…", start, IMAGE_FILTER)
        if path:
            self.find_similar(Path(path))

    def find_similar(self, path: Path) -> None:
        """Query the open library with any image file; the newest query cancels the previous one."""
        if self.library is None:
            self.status.label.setText("Open a folder first: similar photos are looked up in an indexed library.")
            return
        self.similar_panel.search(path, self.dupes_panel.finder, self.dupes_panel.sensitivity())
        self.tabs.setCurrentWidget(self.similar_panel)
        if self.extractor is not None:
            self.inspect(path)

    def inspect_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.inspector_dock.show()
            self.inspect(paths[0])

    def inspect(self, path: Path) -> None:
        """The inspector on ``path``; in the Similar view its heatmap compares the patches to the query."""
        qpath = self.similar_panel.query_path
        query = self.similar_panel.query_vector if self.tabs.currentWidget() is self.similar_panel \
            and qpath is not None and qpath != path else None
        self.inspector_dock.inspect(path, query)

    def compare_selected(self) -> None:
        if self.tabs.currentWidget() is self.dupes_panel:
            paths = self.dupes_panel.compare_paths()
        else:
            paths = self.selected_paths()[:4]
            query = self.similar_panel.query_path
            if self.tabs.currentWidget() is self.similar_panel and query is not None and len(paths) == 1:
                paths = [query, *paths]
        if paths:
            self.compare(paths)

    def compare(self, paths: list[Path]) -> None:
        self.compare_panel.set_paths(paths)
        self.tabs.setCurrentWidget(self.compare_panel)

    def _compare_dropped(self, paths: list[Path]) -> None:
        """Photos dropped on the Compare panes: two or more are compared; one joins the first photo shown."""
        if len(paths) == 1 and self.compare_panel.paths and self.compare_panel.paths[0] != paths[0]:
            paths = [self.compare_panel.paths[0], paths[0]]
        self.compare(paths[:4])

    def show_duplicates(self) -> None:
        self.tabs.setCurrentWidget(self.dupes_panel)
        self.dupes_panel.refresh()

    def remove_selected(self) -> None:
        """Delete: the checked copies in the Duplicates view (each protected by its keeper), else the selection."""
        action = settings.default_removal_action()
        if self.tabs.currentWidget() is self.dupes_panel and self.dupes_panel.checked_items():
            self.dupes_panel.act(action)
        else:
            self.files.run(action, self.selected_paths())

    # -- drag and drop, close ------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.handle_dropped(paths)

    def handle_dropped(self, paths: list[Path]) -> None:
        """A folder opens as a library; an image file becomes a similarity query."""
        folder = next((p for p in paths if p.is_dir()), None)
        image = next((p for p in paths if p.is_file() and is_image_path(p)), None)
        if folder is not None:
            self.open_folder(folder)
        elif image is not None:
            self.find_similar(image)
        elif paths:
            self.status.label.setText(f"{paths[0].name} is not a folder or a supported image file.")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save geometry, then let the session cancel every job, drain the pool and close the library."""
        window_state.save(self)
        self.session.close()
        super().closeEvent(event)
