"""The main window: building and connecting. The state and its jobs live in :class:`Session`, the commands in
:mod:`menus`, file operations in :mod:`file_actions`; every answer comes from the core through :mod:`jobs`.

Layout: a toolbar, the Folders dock on the left, the views as tabs in the middle (Library, Similar, Duplicates,
Compare), the inspector on the right, and a status bar that shows the running job with images/s, ETA, Cancel and
a "N skipped" link. Long work always goes through the session's :class:`TaskRunner`, so the window never waits
on a model, a disk or a scan.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QByteArray, QItemSelectionModel, QPoint, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QStackedWidget, QTabWidget

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.fileops.operations import ActionResult, UndoResult
from vitfeat_desktop.core.images import is_image_path
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.core.pipeline import FeatureExtractor
from vitfeat_desktop.gui import dialogs, file_actions, jobs, menus
from vitfeat_desktop.gui.compare import ComparePanel, compare_alignment, load_full
from vitfeat_desktop.gui.dupes_panel import DuplicatesPanel
from vitfeat_desktop.gui.folders_dock import FoldersDock, choose_folder
from vitfeat_desktop.gui.grid import GridItem, ImageGrid, ImageListModel
from vitfeat_desktop.gui.inspector import Inspection, InspectorPanel, inspect_image
from vitfeat_desktop.gui.models_panel import ModelManagerDialog, ModelSetupPanel
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.similar_panel import SimilarPanel
from vitfeat_desktop.gui.status_bar import StatusBar, scan_summary
from vitfeat_desktop.gui.text import for_window
from vitfeat_desktop.gui.thumbs import ThumbnailLoader

IMAGE_FILTER = ("Images (*.jpg *.jpeg *.png *.webp *.heic *.heif *.tif *.tiff *.avif *.bmp *.gif *.dng *.cr2 *.nef "
                "*.arw);;All files (*)")
NO_FOLDER = ("<h2>No folder open</h2><p>Open a photo folder (Ctrl+O) or drop one on this window.<br>vitfeat indexes "
             "it in the background; your photos are never modified.</p>")


class MainWindow(QMainWindow):
    """The app window. Public attributes are used by the tests and the screenshot script."""

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
        self.files = file_actions.FileActions(s, self)
        self.skipped: list[tuple[str, str]] = []
        self._pending_query: Path | None = None  # an image file opened with the app: queried once indexed
        self.library_model = ImageListModel(self.loader, self)
        self.similar_model = ImageListModel(self.loader, self)
        self.commands = menus.build_actions(self)
        self._build_views()
        self._build_docks()
        menus.build_menus(self, self.commands, [self.library_dock.toggleViewAction(),
                                               self.inspector_dock.toggleViewAction()])
        self.toolbar, self.sort_combo, self.zoom_slider = menus.build_toolbar(self, self.commands)
        self.sort_combo.currentIndexChanged.connect(lambda _i: self.apply_sort())
        self.zoom_slider.valueChanged.connect(self.set_thumb_side)
        self.dupes_panel.set_shared_actions(self.commands["compare"],
                                            menus.actions_of(self.commands, menus.DUPES_CONTEXT_MENU))
        self.status = bar = StatusBar(self.statusBar())
        self.status_label, self.progress_bar, self.cancel_button = bar.label, bar.progress_bar, bar.cancel_button
        self.skipped_label, self.undo_label, self.model_label = bar.skipped_label, bar.undo_label, bar.model_label
        self.status.cancel_button.clicked.connect(s.cancel_scan)
        self.status.skipped_label.linkActivated.connect(lambda _l: self.show_skipped())
        self.status.undo_label.linkActivated.connect(lambda _l: self.undo())
        self._connect_session()
        self._restore_geometry()
        self.set_thumb_side(stored.thumb_size)
        self._update_actions()
        start_folder = folder
        if start_folder is not None and Path(start_folder).expanduser().is_file():
            self._pending_query = Path(start_folder).expanduser().resolve()
            start_folder = self._pending_query.parent
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
        self.library_stack = QStackedWidget()  # the grid, or the model panel while no model is usable
        self.grid = self._grid(ImageGrid(self.library_model, self.loader))
        self.empty_label = QLabel(NO_FOLDER)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.setup_panel = ModelSetupPanel(self.runner, self)
        self.setup_panel.model_available.connect(self.session.model_installed)
        for page in (self.empty_label, self.grid, self.setup_panel):
            self.library_stack.addWidget(page)
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
        self.compare_panel.load_requested.connect(self._load_compare_image)
        self.compare_panel.align_requested.connect(self._align_compare_pane)
        self.compare_panel.files_dropped.connect(self._compare_dropped)
        self.tabs.addTab(self.compare_panel, "Compare")
        self.tabs.currentChanged.connect(lambda _i: self._update_actions())
        self.setCentralWidget(self.tabs)

    def _build_docks(self) -> None:
        self.library_dock = FoldersDock(self.session, self)
        self.library_dock.references_changed.connect(self.dupes_panel.library_changed)
        self.library_list, self.reference_list = self.library_dock.library_list, self.library_dock.reference_list
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.library_dock)
        self.inspector = InspectorPanel()
        self.inspector_dock = QDockWidget("Inspector", self)
        self.inspector_dock.setObjectName("inspector-dock")
        self.inspector_dock.setWidget(self.inspector)
        self.inspector_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                        | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.resizeDocks([self.library_dock, self.inspector_dock], [200, 280], Qt.Orientation.Horizontal)

    def _connect_session(self) -> None:
        s, bar = self.session, self.status
        s.status.connect(bar.label.setText)
        s.failed.connect(self._job_error)
        self.files.status.connect(bar.label.setText)
        self.files.failed.connect(self._job_error)
        self.files.finished.connect(self._files_done)
        s.model_loading.connect(lambda: bar.model_label.setText("loading model…"))
        s.model_ready.connect(self._model_loaded)
        s.model_failed.connect(self._model_failed)
        s.not_a_folder.connect(lambda f: QMessageBox.warning(self, "Cannot open folder", f"{f} is not a folder."))
        s.library_opening.connect(self._library_opening)
        s.library_opened.connect(self._library_opened)
        s.library_ready.connect(lambda: emit(self.library_ready))
        s.open_failed.connect(self._open_failed)
        s.scan_started.connect(lambda: bar.scan_started(s.library_folder))
        s.scan_started.connect(self._update_actions)
        s.scan_progress.connect(bar.scan_progress)
        s.live_files.connect(self.library_model.add_new)
        s.live_files.connect(lambda _items: self._show_library_page())
        s.scan_done.connect(self._scan_done)
        s.scan_failed.connect(lambda _message: self._scan_ended())
        s.scan_failed.connect(self._job_error)
        s.scan_cancelled.connect(self._scan_cancelled)
        s.files_refreshed.connect(self._fill_library)

    @staticmethod
    def window_settings() -> QSettings:
        """Geometry and dock state, in an INI file under the data folder (never Qt's ~/.config default)."""
        return QSettings(str(config.window_state_path()), QSettings.Format.IniFormat)

    def _restore_geometry(self) -> None:
        qs = self.window_settings()
        geom, state = qs.value("window/geometry"), qs.value("window/state")
        if isinstance(geom, QByteArray) and not geom.isEmpty():
            self.restoreGeometry(geom)
        else:
            screen = QGuiApplication.primaryScreen()
            avail = screen.availableGeometry() if screen else None
            self.resize(min(1400, int(avail.width() * 0.9)) if avail else 1280,
                        min(900, int(avail.height() * 0.9)) if avail else 800)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

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

    def _model_loaded(self, extractor: FeatureExtractor) -> None:
        self.status.model_label.setText(f"Model: {extractor.model_id} ({extractor.variant})")
        if self.status.label.text().startswith("A model is needed"):
            self.status.label.setText("Ready")
        self.status.model_label.setToolTip(json.dumps(extractor.describe(), indent=1))
        self.setup_panel.set_missing(None)
        emit(self.model_ready, extractor)
        self._show_library_page()

    def _model_failed(self, message: str) -> None:
        self.status.model_label.setText("no model")
        self.setup_panel.set_missing(message)
        self.library_stack.setCurrentWidget(self.setup_panel)
        self.tabs.setCurrentIndex(0)
        self.status.label.setText("A model is needed before photos can be indexed.")

    def _library_opening(self, folder: Path) -> None:
        self.setWindowTitle(f"{folder.name} — vitfeat")
        self.status.label.setText(f"Opening {folder}…")
        self.library_model.set_items([])
        self._show_library_page()

    def _open_failed(self, folder: Path, message: str) -> None:
        if "--repair" in message and dialogs.ask_repair(self, message):
            self.session.repair(folder)
        else:
            self._job_error(message)

    def _library_opened(self, opened: jobs.OpenedLibrary) -> None:
        self._fill_library(opened.files, opened.skipped)
        if self._pending_query is not None:
            self._select_path(self._pending_query)

    def _scan_ended(self) -> None:
        self.status.scan_ended()
        self._update_actions()

    def _scan_done(self, outcome: jobs.ScanOutcome) -> None:
        self._scan_ended()
        before = self.library_model.items()
        self._fill_library(outcome.files, outcome.skipped)
        self.status.label.setText(scan_summary(outcome.report, before, self.library_model.items()))
        emit(self.scan_finished, outcome.report)
        self._run_pending_query()

    def _scan_cancelled(self) -> None:
        self._scan_ended()
        self.status.label.setText("Indexing cancelled; photos indexed so far are kept. Rescan (F5) to continue.")
        self._run_pending_query()
        emit(self.scan_cancelled)

    def _fill_library(self, files: list[GridItem], skipped: list[tuple[str, str]]) -> None:
        self.skipped = list(skipped)
        self.library_model.set_items(list(files))
        self.apply_sort(announce=False)
        self._show_library_page()
        self.status.set_skipped(len(self.skipped))
        self._update_actions()

    def _show_library_page(self) -> None:
        if self.extractor is None and self.library_stack.currentWidget() is self.setup_panel:
            return
        self.library_stack.setCurrentWidget(self.grid if self.library_folder is not None else self.empty_label)

    def _job_error(self, message: str) -> None:
        message = for_window(message)
        self.status.label.setText(message)
        emit(self.job_failed, message)

    # -- commands (menus.ACTIONS) --------------------------------------------------------------------------
    def choose_folder(self) -> None:
        choose_folder(self, self.session)

    def open_folder(self, folder: Path) -> None:
        self.session.open_folder(folder)

    def open_path(self, path: Path) -> None:
        """What the command line, "Open with" and the macOS FileOpen event give: a folder or an image file.

        An image opens its folder as a library, is selected in the grid, and becomes the similarity query as soon
        as the folder's scan has finished (a query on a half-built index would show only the photos indexed so
        far), or at once when that library is already open and indexed.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            self.open_folder(path)
            return
        if not (path.is_file() and is_image_path(path)):
            self.status.label.setText(f"{path.name} is not a folder or a supported image file.")
            return
        path = path.resolve()
        self._pending_query = path
        if self.extractor is not None and self.library is not None and self.library_folder == path.parent:
            self._select_path(path)
            if not self.runner.is_running("scan") and not self.runner.is_running("open"):
                self._run_pending_query()
            return
        self.open_folder(path.parent)

    def _select_path(self, path: Path) -> None:
        row = self.library_model.row_of(path)
        if row is not None:
            index = self.library_model.index(row, 0)
            self.grid.setCurrentIndex(index)
            self.grid.scrollTo(index)

    def _run_pending_query(self) -> None:
        query, self._pending_query = self._pending_query, None
        if query is not None and self.library is not None and not self.session.closing:
            self._select_path(query)
            self.find_similar(query)

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

    def set_thumb_side(self, side: int) -> None:
        side = max(64, min(320, int(side)))
        if self.zoom_slider.value() != side:
            self.zoom_slider.blockSignals(True)
            self.zoom_slider.setValue(side)
            self.zoom_slider.blockSignals(False)
        self.grid.set_thumb_side(side)
        self.similar_panel.grid.set_thumb_side(side)
        self._zoom_save = side
        QTimer.singleShot(500, self._save_zoom)

    def _save_zoom(self) -> None:
        if not self.session.closing:
            settings.update(thumb_size=self._zoom_save)

    def zoom_in(self) -> None:
        self.set_thumb_side(int(self.zoom_slider.value() * 1.25))

    def zoom_out(self) -> None:
        self.set_thumb_side(int(self.zoom_slider.value() * 0.8))

    def apply_sort(self, announce: bool = True) -> None:
        key = self.sort_combo.currentData()
        if key != "visual":
            self.library_model.sort_by(key, descending=(key in ("date", "size")))
        elif self.library is not None:
            self.status.label.setText("Ordering by visual similarity…")
            self.runner.submit(jobs.library_order, self.library, key="order", on_result=self._apply_order,
                               on_error=self._job_error)

    def _apply_order(self, order: list[int]) -> None:
        self.library_model.order_by(order)
        self.status.label.setText("Sorted by visual similarity: look-alike photos sit next to each other.")

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
        a, has_sel, has_lib = self.commands, bool(self.selected_paths()), self.library is not None
        for name in menus.NEED_SELECTION:
            a[name].setEnabled(has_sel)
        a["similar"].setEnabled(has_sel and has_lib)
        a["query_file"].setEnabled(has_lib)
        in_dupes = self.tabs.currentWidget() is self.dupes_panel
        a["compare"].setEnabled(bool(self.dupes_panel.compare_paths()) if in_dupes else has_sel)
        a["rescan"].setEnabled(has_lib and not self.runner.is_running("scan"))
        a["dupes"].setEnabled(has_lib)

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
        if self.extractor is None:
            self.inspector.show_error("no model is loaded yet")
            return
        qpath = self.similar_panel.query_path
        query = self.similar_panel.query_vector if self.tabs.currentWidget() is self.similar_panel \
            and qpath is not None and qpath != path else None
        self.inspector.show_busy(path)
        self.runner.submit(inspect_image, self.extractor, path, query, key="inspect", pass_callbacks=False,
                           on_result=self._inspected, on_error=self.inspector.show_error)

    def _inspected(self, ins: Inspection) -> None:
        self.inspector.show_inspection(ins)
        emit(self.inspection_ready, ins)

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

    def _align_compare_pane(self, index: int, first: str, path: str) -> None:
        self.runner.submit(compare_alignment, first, path, key=f"compare-align{index}", pass_callbacks=False,
                           on_result=lambda al, i=index: self.compare_panel.set_alignment(i, al),
                           on_error=lambda _msg: None)  # unaligned panes stay scaled to the first photo's size

    def _compare_dropped(self, paths: list[Path]) -> None:
        """Photos dropped on the Compare panes: two or more are compared; one joins the first photo shown."""
        if len(paths) == 1 and self.compare_panel.paths and self.compare_panel.paths[0] != paths[0]:
            paths = [self.compare_panel.paths[0], paths[0]]
        self.compare(paths[:4])

    def _load_compare_image(self, index: int, path: str) -> None:
        self.runner.submit(load_full, Path(path), key=f"compare{index}", pass_callbacks=False,
                           on_result=lambda res, i=index: self.compare_panel.set_image(i, res[0], res[1]),
                           on_error=lambda msg, i=index: self.compare_panel.set_error(i, msg))

    def open_selected(self) -> None:
        file_actions.open_in_default_app(self.selected_paths())

    def reveal_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            file_actions.reveal(paths[0])

    def copy_path(self) -> None:
        paths = self.selected_paths()
        if paths:
            file_actions.copy_paths(paths)
            self.status.label.setText(f"Copied {len(paths)} path(s).")

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

    def move_selected(self) -> None:
        self.files.run("move", self.selected_paths())

    def copy_selected(self) -> None:
        self.files.run("copy", self.selected_paths())

    def undo(self) -> None:
        self.files.undo()

    def _files_done(self, result: ActionResult | UndoResult, text: str, _undoable: bool) -> None:
        moved = isinstance(result, ActionResult) and result.action != "copy"
        if isinstance(result, ActionResult):
            done = [Path(src) for src, _ in result.done]
            if moved:
                self.library_model.remove_paths(done)
                self.similar_model.remove_paths(done)
            moved = moved and bool(done)
        self.status.label.setText(text)
        self.status.undo_label.setText('<a href="#undo">Undo</a>' if isinstance(result, ActionResult) else "")
        emit(self.action_done, result)
        if (moved or isinstance(result, UndoResult)) and self.library is not None:
            self.rescan()

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
        qs = self.window_settings()
        qs.setValue("window/geometry", self.saveGeometry())
        qs.setValue("window/state", self.saveState())
        qs.sync()
        self.session.close()
        super().closeEvent(event)
