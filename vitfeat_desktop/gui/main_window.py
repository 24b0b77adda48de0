"""The main window: wiring only. Every answer comes from the core through :mod:`vitfeat_desktop.gui.jobs`.

Layout: a toolbar, the libraries/reference-folders panel on the left, the views as tabs in the middle (Library,
Similar, Duplicates, Compare), the inspector on the right, and a status bar that shows the running job with
images/s, ETA, Cancel and a "N skipped" link. Long work always goes through the :class:`TaskRunner`, so the window
never waits on a model, a disk or a scan.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, QItemSelectionModel, QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QStackedWidget,
    QTabWidget,
    QTextBrowser,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.images import is_image_path
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.compare import ComparePanel, compare_alignment, load_full
from vitfeat_desktop.gui.grid import GridItem, ImageGrid, ImageListModel, human_size
from vitfeat_desktop.gui.inspector import InspectorPanel, inspect_image
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.tasks import TaskRunner
from vitfeat_desktop.gui.text import for_window, plural
from vitfeat_desktop.gui.thumbs import ThumbnailLoader


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s left"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s left"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min left"


def moved_and_removed(before: list[GridItem], after: list[GridItem], removed: int) -> tuple[int, int]:
    """Split the scan's "removed" count: a file whose path went away while its content (hash) is still in the
    library under another path was moved or renamed, not removed."""
    after_paths = {it.path for it in after}
    after_hashes = {it.content_hash for it in after if it.content_hash}
    gone = [it for it in before if it.path not in after_paths]
    moved = sum(1 for it in gone if it.content_hash and it.content_hash in after_hashes)
    return moved, max(0, max(removed, len(gone)) - moved)


class SimilarPanel(QWidget):
    """The query on the left, the most similar photos (with scores) on the right."""

    def __init__(self, model: ImageListModel, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        left = QVBoxLayout()
        self.query_label = QLabel()
        self.query_label.setFixedWidth(220)
        self.query_label.setMinimumHeight(200)
        self.query_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_caption = QLabel("Drop any photo on the window, or choose Find similar (Ctrl+F) on a thumbnail.")
        self.query_caption.setWordWrap(True)
        self.query_caption.setFixedWidth(220)
        left.addWidget(QLabel("<b>Query</b>"))
        left.addWidget(self.query_label)
        left.addWidget(self.query_caption)
        left.addStretch(1)
        layout.addLayout(left)
        self.grid = ImageGrid(model, loader)
        layout.addWidget(self.grid, 1)
        self.query_path: Path | None = None

    def set_query(self, path: Path, image: Any = None) -> None:
        """Show the query; its preview (``image``, decoded on a worker by the core's decoder, so HEIC, AVIF, RAW
        and EXIF-rotated JPEGs look as they do everywhere else) may come later through :meth:`set_preview`."""
        self.query_path = path
        self.query_label.clear()
        self.query_label.setText("…")
        if image is not None:
            self.set_preview(path, image)
        self.query_caption.setText(f"{path.name}\nsearching…")

    def set_preview(self, path: Path, image: Any) -> None:
        if path != self.query_path:
            return  # a newer query's preview is on its way
        pm = QPixmap.fromImage(image)
        if not pm.isNull():
            pm = pm.scaled(216, 216, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.query_label.setPixmap(pm)


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
        self.model_spec: str | Path | None = model if model is not None else stored.model
        self.quantized = quantized and not stored.model_fp32 if model is None else quantized
        self.runner = TaskRunner(max_threads=max(4, os.cpu_count() or 2), parent=self)
        self.loader = ThumbnailLoader(self.runner, parent=self)
        self.extractor: Any = None
        self.library: Any = None
        self.library_folder: Path | None = None
        self.skipped: list[tuple[str, str]] = []
        self.last_report: Any = None
        self.last_journal: str | None = None
        self._pending_folder: Path | None = None
        self._pending_query: Path | None = None  # an image file opened with the app: queried once indexed
        self._scan_started = 0.0
        self._closing = False
        self._query_vector: Any = None
        self._fallback: tuple[Any, Any] | None = None
        self._moved_sizes: dict[str, int] = {}  # sizes of the files an action is moving (for its summary)
        self._score_scale: tuple[Any, np.ndarray] | None = None  # (library, its nearest-neighbour scale)
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(2000)
        self._live_timer.timeout.connect(self._live_refresh)

        self.library_model = ImageListModel(self.loader, self)
        self.similar_model = ImageListModel(self.loader, self)

        self._build_views()
        self._build_docks()
        self._build_actions()
        self._build_status()
        self._restore_geometry()
        self.set_thumb_side(stored.thumb_size)
        self._refresh_library_list()
        self._update_actions()

        start_folder = folder
        if start_folder is not None and Path(start_folder).expanduser().is_file():
            self._pending_query = Path(start_folder).expanduser().resolve()
            start_folder = self._pending_query.parent
        if start_folder is None and restore:
            active = stored.active_library
            if active is not None and Path(active).is_dir():
                start_folder = Path(active)
        self._pending_folder = start_folder
        self.load_model(self.model_spec, self.quantized)

    # ------------------------------------------------------------------------------------------------------
    # construction
    def _build_views(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # Library tab: the grid, or the model panel while no model is usable
        self.library_stack = QStackedWidget()
        self.grid = ImageGrid(self.library_model, self.loader)
        self.grid.customContextMenuRequested.connect(lambda pos: self._context_menu(self.grid, pos))
        self.grid.doubleClicked.connect(lambda _i: self.preview())
        self.grid.selectionModel().currentChanged.connect(lambda *_: self._selection_changed(self.grid))
        self.empty_label = QLabel()
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setText("<h2>No folder open</h2><p>Open a photo folder (Ctrl+O) or drop one on this window."
                                 "<br>vitfeat indexes it in the background; your photos are never modified.</p>")
        from vitfeat_desktop.gui.models_panel import ModelSetupPanel

        self.setup_panel = ModelSetupPanel(self.runner, self)
        self.setup_panel.model_available.connect(self._model_installed)
        self.library_stack.addWidget(self.empty_label)  # 0
        self.library_stack.addWidget(self.grid)  # 1
        self.library_stack.addWidget(self.setup_panel)  # 2
        self.tabs.addTab(self.library_stack, "Library")

        self.similar_panel = SimilarPanel(self.similar_model, self.loader)
        self.similar_panel.grid.customContextMenuRequested.connect(
            lambda pos: self._context_menu(self.similar_panel.grid, pos))
        self.similar_panel.grid.doubleClicked.connect(lambda _i: self.preview())
        self.similar_panel.grid.selectionModel().currentChanged.connect(
            lambda *_: self._selection_changed(self.similar_panel.grid))
        self.tabs.addTab(self.similar_panel, "Similar")

        from vitfeat_desktop.gui.dupes_panel import DuplicatesPanel

        self.dupes_panel = DuplicatesPanel(self, self.loader)
        self.tabs.addTab(self.dupes_panel, "Duplicates")

        self.compare_panel = ComparePanel()
        self.compare_panel.load_requested.connect(self._load_compare_image)
        self.compare_panel.align_requested.connect(self._align_compare_pane)
        self.compare_panel.files_dropped.connect(self._compare_dropped)
        self.tabs.addTab(self.compare_panel, "Compare")
        self.tabs.currentChanged.connect(lambda _i: self._update_actions())
        self.setCentralWidget(self.tabs)

    def _build_docks(self) -> None:
        # Libraries and reference folders
        lib_widget = QWidget()
        v = QVBoxLayout(lib_widget)
        v.setContentsMargins(6, 6, 6, 6)
        v.addWidget(QLabel("<b>Libraries</b>"))
        self.library_list = QListWidget()
        self.library_list.setToolTip("Photo folders you have opened. Click one to switch to it.")
        self.library_list.itemActivated.connect(lambda it: self.open_folder(Path(it.data(Qt.ItemDataRole.UserRole))))
        self.library_list.itemClicked.connect(lambda it: self.open_folder(Path(it.data(Qt.ItemDataRole.UserRole))))
        v.addWidget(self.library_list, 2)
        row = QHBoxLayout()
        add = QPushButton("Add folder…")
        add.clicked.connect(lambda _checked=False: self.choose_folder())
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
        self.library_dock = QDockWidget("Folders", self)
        self.library_dock.setObjectName("folders-dock")
        self.library_dock.setWidget(lib_widget)
        self.library_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                      | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.library_dock)

        self.inspector = InspectorPanel()
        self.inspector_dock = QDockWidget("Inspector", self)
        self.inspector_dock.setObjectName("inspector-dock")
        self.inspector_dock.setWidget(self.inspector)
        self.inspector_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                        | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.resizeDocks([self.library_dock, self.inspector_dock], [200, 280], Qt.Orientation.Horizontal)

    def _action(self, text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
        act = QAction(text, self)
        act.triggered.connect(lambda *_: slot())
        if shortcut is not None:
            act.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
        if tip:
            act.setToolTip(tip + (f" ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                                  if shortcut is not None else ""))
            act.setStatusTip(tip)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        k = QKeySequence.StandardKey
        self.act_open = self._action("Open Folder…", self.choose_folder, k.Open, "Open a photo folder and index it")
        self.act_rescan = self._action("Rescan", self.rescan, k.Refresh, "Look for new, changed and removed photos")
        self.act_similar = self._action("Find Similar", self.find_similar_selected, "Ctrl+F",
                                        "Show the photos most similar to the selected one")
        self.act_query_file = self._action("Find Similar to a File…", self.choose_query_file, "Ctrl+Shift+F",
                                           "Pick any image file (indexed or not) and find similar photos")
        self.act_compare = self._action("Compare", self.compare_selected, "C",
                                        "Show the selected photos side by side, zoomed together")
        self.act_inspect = self._action("Inspect Features", self.inspect_selected, "I",
                                        "Run the model on the selected photo and show its output")
        self.act_preview = self._action("Preview", self.preview, "Space", "Show the selected photo large")
        # Delete goes to the trash only where Undo can take photos back out of it (settings.default_removal_action)
        removal = settings.default_removal_action()
        self.act_trash = self._action("Move to Trash" if removal == "trash" else "Quarantine",
                                      lambda: self.file_action(settings.default_removal_action()),
                                      [QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")],
                                      "Move the selected photos to the system trash (undoable)" if removal == "trash"
                                      else "Move the selected photos to vitfeat's quarantine folder (undoable)")
        self.act_undo = self._action("Undo", self.undo, k.Undo, "Undo the last move, trash or copy")
        self.act_move = self._action("Move to Folder…", lambda: self.file_action("move"), None,
                                     "Move the selected photos into a folder (undoable)")
        self.act_copy = self._action("Copy to Folder…", lambda: self.file_action("copy"), None,
                                     "Copy the selected photos into a folder")
        self.act_reveal = self._action("Show in File Manager", self.reveal_selected, None,
                                       "Open the folder that contains the photo")
        self.act_open_file = self._action("Open in Default App", self.open_selected, "Return",
                                          "Open the photo with your usual image viewer")
        self.act_copy_path = self._action("Copy Path", self.copy_path, "Ctrl+Shift+C", "Copy the file path")
        self.act_dupes = self._action("Find Duplicates", self.show_duplicates, "Ctrl+D",
                                      "Group exact copies, re-saved files and near-duplicates")
        self.act_prefs = self._action("Preferences…", self.show_preferences, QKeySequence.StandardKey.Preferences,
                                      "How many processor cores the model may use")
        self.act_models = self._action("Models…", self.show_model_manager, None,
                                       "Download, import and choose the model that describes your photos")
        self.act_zoom_in = self._action("Larger Thumbnails", lambda: self.zoom(1.25), k.ZoomIn)
        self.act_zoom_out = self._action("Smaller Thumbnails", lambda: self.zoom(0.8), k.ZoomOut)
        self.act_quit = self._action("Quit", self.close, k.Quit)
        self.act_skipped = self._action("Skipped Files…", self.show_skipped, None,
                                        "Files that could not be read, and why")

        menu = self.menuBar()
        m_file = menu.addMenu("&File")
        for a in (self.act_open, self.act_rescan, self.act_query_file, None, self.act_skipped, self.act_models,
                  self.act_prefs,
                  None, self.act_quit):
            m_file.addSeparator() if a is None else m_file.addAction(a)
        m_edit = menu.addMenu("&Edit")
        for a in (self.act_undo, None, self.act_trash, self.act_move, self.act_copy, None, self.act_copy_path):
            m_edit.addSeparator() if a is None else m_edit.addAction(a)
        m_view = menu.addMenu("&View")
        for a in (self.act_zoom_in, self.act_zoom_out, None, self.act_preview, self.act_compare, self.act_inspect):
            m_view.addSeparator() if a is None else m_view.addAction(a)
        m_view.addSeparator()
        m_view.addAction(self.library_dock.toggleViewAction())
        m_view.addAction(self.inspector_dock.toggleViewAction())
        m_find = menu.addMenu("F&ind")
        for a in (self.act_similar, self.act_query_file, self.act_dupes):
            m_find.addAction(a)
        m_help = menu.addMenu("&Help")
        about = QAction("About vitfeat", self)
        about.triggered.connect(self._about)
        m_help.addAction(about)

        tb = QToolBar("Main")
        tb.setObjectName("main-toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (self.act_open, self.act_rescan, None, self.act_similar, self.act_compare, self.act_dupes, None,
                  self.act_trash, self.act_undo):
            tb.addSeparator() if a is None else tb.addAction(a)
        tb.addSeparator()
        tb.addWidget(QLabel(" Sort: "))
        self.sort_combo = QComboBox()
        self.sort_combo.addItem("Name", "name")
        self.sort_combo.addItem("Date taken", "date")
        self.sort_combo.addItem("File size", "size")
        self.sort_combo.addItem("Visual similarity", "visual")
        self.sort_combo.setToolTip("Order of the library grid; Visual similarity puts look-alike photos together")
        self.sort_combo.currentIndexChanged.connect(lambda _i: self.apply_sort())
        tb.addWidget(self.sort_combo)
        tb.addWidget(QLabel("  Size: "))
        self.zoom_slider = QSlider(Qt.Orientation.Horizontal)
        self.zoom_slider.setRange(64, 320)
        self.zoom_slider.setFixedWidth(120)
        self.zoom_slider.setToolTip("Thumbnail size (Ctrl + and Ctrl −)")
        self.zoom_slider.valueChanged.connect(self.set_thumb_side)
        tb.addWidget(self.zoom_slider)
        tb.addSeparator()
        tb.addAction(self.act_models)
        self.addToolBar(tb)
        self.toolbar = tb

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Ready")
        self.progress_bar = QProgressBar()
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setVisible(False)
        self.rate_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing; everything indexed so far is kept")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.skipped_label = QLabel()
        self.skipped_label.setTextFormat(Qt.TextFormat.RichText)
        self.skipped_label.linkActivated.connect(lambda _l: self.show_skipped())
        self.undo_label = QLabel()
        self.undo_label.linkActivated.connect(lambda _l: self.undo())
        self.model_label = QLabel()
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.undo_label)
        sb.addPermanentWidget(self.skipped_label)
        sb.addPermanentWidget(self.rate_label)
        sb.addPermanentWidget(self.progress_bar)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.model_label)

    @staticmethod
    def window_settings() -> QSettings:
        """Geometry and dock state, in an INI file under the data folder (never Qt's ~/.config default)."""
        return QSettings(str(config.window_state_path()), QSettings.Format.IniFormat)

    def _restore_geometry(self) -> None:
        qs = self.window_settings()
        geom = qs.value("window/geometry")
        state = qs.value("window/state")
        if isinstance(geom, QByteArray) and not geom.isEmpty():
            self.restoreGeometry(geom)
        else:
            screen = QGuiApplication.primaryScreen()
            avail = screen.availableGeometry() if screen else None
            w = min(1400, int(avail.width() * 0.9)) if avail else 1280
            h = min(900, int(avail.height() * 0.9)) if avail else 800
            self.resize(w, h)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    # ------------------------------------------------------------------------------------------------------
    # model
    def load_model(self, model: str | Path | None, quantized: bool = True) -> None:
        """Load the extractor on a worker; without a usable model, show the download/import panel."""
        self.model_spec, self.quantized = model, quantized
        self.model_label.setText("loading model…")
        self.runner.submit(jobs.load_extractor, model, quantized, key="model",
                           on_result=self._model_loaded, on_error=self._model_failed)

    def _model_loaded(self, extractor: Any) -> None:
        old = self.extractor
        self.extractor = extractor
        if self.library is not None and old is not None and old is not extractor:
            # A model change re-indexes in the background; until the new index is complete, searches and
            # duplicates keep using the old library object (and its model), which stays open until then.
            self._close_fallback()
            self._fallback = (self.library, old)
        elif old is not None and old is not extractor:
            with contextlib.suppress(Exception):
                old.close()
        self.model_label.setText(f"Model: {extractor.model_id} ({extractor.variant})")
        if self.status_label.text().startswith("A model is needed"):
            self.status_label.setText("Ready")
        self.model_label.setToolTip(json.dumps(extractor.describe(), indent=1))
        self.setup_panel.set_missing(None)
        emit(self.model_ready, extractor)
        folder = self._pending_folder or self.library_folder
        self._pending_folder = None
        if folder is not None:
            self.library = None  # reopen with the new model (each model has its own index in the core)
            self.open_folder(folder)
        else:
            self._show_library_page()

    def query_library(self) -> Any:
        """The library to search: the previous model's while the new model's first scan is still running."""
        if self._fallback is not None and self.runner.is_running("scan"):
            return self._fallback[0]
        return self.library

    def _close_fallback(self) -> None:
        if self._fallback is not None:
            lib, extractor = self._fallback
            self._fallback = None
            for obj in (lib, extractor):
                with contextlib.suppress(Exception):
                    obj.close()

    def _model_failed(self, message: str) -> None:
        self.extractor = None
        self.model_label.setText("no model")
        self.setup_panel.set_missing(message)
        self.library_stack.setCurrentWidget(self.setup_panel)
        self.tabs.setCurrentIndex(0)
        self.status_label.setText("A model is needed before photos can be indexed.")

    def _model_installed(self, model: str) -> None:
        settings.update(model=model)
        self.load_model(model, self.quantized)

    def show_model_manager(self) -> None:
        from vitfeat_desktop.gui.models_panel import ModelManagerDialog

        dialog = ModelManagerDialog(self.runner, self, active=self.extractor)
        dialog.model_chosen.connect(self._model_chosen)
        dialog.show()
        self._model_dialog = dialog

    def show_preferences(self) -> None:
        from PySide6.QtWidgets import QDialogButtonBox, QFormLayout, QSpinBox

        dialog = QDialog(self)
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
        dialog.accepted.connect(lambda: self._threads_chosen(threads.value()))
        dialog.show()
        self._prefs_dialog = dialog

    def _threads_chosen(self, value: int) -> None:
        if settings.load().threads != value:
            settings.update(threads=value)
            if self.extractor is not None and not self.runner.is_running("scan"):
                self.load_model(self.model_spec, self.quantized)  # a new session with the new thread count

    def _model_chosen(self, model: str, quantized: bool) -> None:
        settings.update(model=model, model_fp32=not quantized)
        self.load_model(model, quantized)

    # ------------------------------------------------------------------------------------------------------
    # libraries
    def choose_folder(self) -> None:
        start = str(self.library_folder or Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open a photo folder", start)
        if folder:
            self.open_folder(Path(folder))

    def open_path(self, path: Path) -> None:
        """What the command line, "Open with" and the macOS FileOpen event give: a folder or an image file.

        A folder opens as a library. An image opens its folder as a library, is selected in the grid, and becomes
        the similarity query as soon as the folder's scan has finished (a query on a half-built index would show
        only the photos indexed so far), or at once when that library is already open and indexed.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            self.open_folder(path)
            return
        if not (path.is_file() and is_image_path(path)):
            self.status_label.setText(f"{path.name} is not a folder or a supported image file.")
            return
        path = path.resolve()
        folder = path.parent
        self._pending_query = path
        if self.extractor is not None and self.library is not None and self.library_folder == folder:
            self._select_path(path)
            if not self.runner.is_running("scan") and not self.runner.is_running("open"):
                self._run_pending_query()
            return
        self.open_folder(folder)

    def _select_path(self, path: Path) -> bool:
        row = self.library_model.row_of(path)
        if row is None:
            return False
        index = self.library_model.index(row, 0)
        self.grid.setCurrentIndex(index)
        self.grid.scrollTo(index)
        return True

    def _run_pending_query(self) -> None:
        query, self._pending_query = self._pending_query, None
        if query is not None and self.library is not None and not self._closing:
            self._select_path(query)
            self.find_similar(query)

    def open_folder(self, folder: Path) -> None:
        """Show the folder's catalogue at once, then scan it incrementally in the background."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            QMessageBox.warning(self, "Cannot open folder", f"{folder} is not a folder.")
            return
        self._remember_library(folder)
        if self.extractor is None:
            self._pending_folder = folder
            self.status_label.setText(f"{folder.name} opens when a model is ready.")
            return
        if self.library is not None and self.library_folder == folder and self.runner.is_running("scan"):
            return
        self.cancel_scan()
        self.library_folder = folder
        self.setWindowTitle(f"{folder.name} — vitfeat")
        self.status_label.setText(f"Opening {folder}…")
        self.library_model.set_items([])
        self._show_library_page()
        self.runner.submit(jobs.open_library, folder, self.extractor, key="open",
                           on_result=self._library_opened, on_error=lambda m: self._open_failed(folder, m))

    def _open_failed(self, folder: Path, message: str) -> None:
        """A damaged catalogue: offer the repair (issue 13) instead of showing the same error on every open."""
        if "--repair" not in message or QMessageBox.question(
                self, "Damaged library", f"{message}\n\nRepair it now? The photos are indexed again; marks and "
                "undo history are kept.") != QMessageBox.StandardButton.Yes:
            self._job_error(message)
            return
        from vitfeat_desktop.core.library.facade import repair_library

        self.status_label.setText(f"Repairing the library of {folder}…")
        self.runner.submit(repair_library, folder, pass_callbacks=False, key="open",
                           on_result=lambda _: self.open_folder(folder), on_error=self._job_error)

    def _library_opened(self, opened: jobs.OpenedLibrary) -> None:
        old = self.library
        self.library = opened.library
        if old is not None and old is not opened.library and (self._fallback is None or old is not self._fallback[0]):
            with contextlib.suppress(Exception):
                old.close()
        self._fill_library(opened.files, opened.skipped)
        self.dupes_panel.library_changed()
        if self._pending_query is not None:
            self._select_path(self._pending_query)
        self.start_scan()
        emit(self.library_ready)

    def start_scan(self) -> None:
        if self.library is None:
            return
        self._scan_started = time.monotonic()
        self.progress_bar.setVisible(True)
        self.progress_bar.setRange(0, 0)
        self.cancel_button.setVisible(True)
        self.rate_label.setText("")
        self.status_label.setText(f"Indexing {self.library_folder}…")
        self.runner.submit(jobs.scan_library, self.library, key="scan", on_progress=self._scan_progress,
                           on_result=self._scan_done, on_error=self._scan_error, on_cancelled=self._scan_cancelled)
        self._live_timer.start()
        QTimer.singleShot(700, self._live_refresh)  # first photos on screen soon after a new folder opens
        self._update_actions()

    def _live_refresh(self) -> None:
        """While a scan runs, show the photos catalogued so far (appended, so the user's scroll position stays)."""
        if not self.runner.is_running("scan") or self.library is None:
            self._live_timer.stop()
            return
        self.dupes_panel.scan_tick()
        if self.runner.is_running("live"):
            return
        lib = self.library
        self.runner.submit(lambda: [GridItem.from_record(r) for r in lib.files(status="ok")], key="live",
                           pass_callbacks=False,
                           on_result=lambda recs: self._live_files(lib, recs))

    def _live_files(self, lib: Any, items: list[GridItem]) -> None:
        if lib is self.library and self.runner.is_running("scan"):
            self.library_model.add_new(items)
            self._show_library_page()

    def rescan(self) -> None:
        if self.library is not None and not self.runner.is_running("scan"):
            self.start_scan()

    def cancel_scan(self) -> None:
        if self.runner.is_running("scan"):
            self.runner.cancel("scan")
            self.status_label.setText("Cancelling… (photos indexed so far are kept)")

    def _scan_progress(self, rep: Any) -> None:
        done = int(getattr(rep, "done", 0) or 0)
        total = getattr(rep, "total", None)
        phase = str(getattr(rep, "phase", "") or "")
        if total:
            self.progress_bar.setRange(0, int(total))
            self.progress_bar.setValue(min(done, int(total)))
            self.progress_bar.setFormat(f"{done:,} / {int(total):,}")
        else:
            self.progress_bar.setRange(0, 0)
        rate = getattr(rep, "rate", None)
        parts = []
        if rate:
            parts.append(f"{rate:.1f} images/s")
        eta = format_eta(getattr(rep, "eta", None))
        if eta:
            parts.append(eta)
        self.rate_label.setText("  ·  ".join(parts))
        label = {"walk": "Looking for photos", "scan": "Looking for photos", "hash": "Checking files",
                 "embed": "Indexing", "index": "Indexing"}.get(phase, phase.capitalize() or "Indexing")
        message = getattr(rep, "message", "") or ""
        self.status_label.setText(f"{label}… {message}".strip())

    def _scan_finished_ui(self) -> None:
        self._live_timer.stop()
        self.progress_bar.setVisible(False)
        self.cancel_button.setVisible(False)
        self.rate_label.setText("")
        self._update_actions()

    def _scan_done(self, outcome: jobs.ScanOutcome) -> None:
        self._scan_finished_ui()
        self._close_fallback()  # the new model's index is complete
        self.last_report = outcome.report
        before = self.library_model.items()
        self._fill_library(outcome.files, outcome.skipped)
        r = outcome.report
        secs = float(getattr(r, "seconds", 0) or 0)
        indexed = int(getattr(r, "indexed", 0) or 0)
        moved, removed = moved_and_removed(before, self.library_model.items(), int(getattr(r, "removed", 0) or 0))
        rate = f" ({indexed / secs:.1f} images/s)" if indexed and secs > 0 else ""
        self.status_label.setText(
            f"{plural(self.library_model.rowCount(), 'photo')} · {indexed:,} indexed{rate}, "
            f"{int(getattr(r, 'unchanged', 0) or 0):,} unchanged, {moved:,} moved or renamed, {removed:,} removed "
            f"in {secs:.1f} s")
        self.dupes_panel.library_changed()
        emit(self.scan_finished, r)
        self._run_pending_query()

    def _scan_error(self, message: str) -> None:
        self._scan_finished_ui()
        self._job_error(message)

    def _scan_cancelled(self) -> None:
        self._scan_finished_ui()
        self.status_label.setText("Indexing cancelled; photos indexed so far are kept. Rescan (F5) to continue.")
        self._run_pending_query()
        if self.library is not None:
            lib = self.library
            self.runner.submit(lambda: (jobs.grid_items(lib), list(lib.skipped())),
                               pass_callbacks=False, key="refresh",
                               on_result=lambda fs: self._fill_library(*fs))
        emit(self.scan_cancelled)

    def _fill_library(self, files: list[Any], skipped: list[tuple[str, str]]) -> None:
        """``files``: GridItems (built on the worker) or the library's FileRecords."""
        items = [f if isinstance(f, GridItem) else GridItem.from_record(f) for f in files
                 if isinstance(f, GridItem) or getattr(f, "status", "ok") in ("ok", None, "")]
        self.skipped = list(skipped)
        self.library_model.set_items(items)
        self.apply_sort(announce=False)
        self._show_library_page()
        n = len(self.skipped)
        self.skipped_label.setText(f'<a href="#skipped">{n} skipped</a>' if n else "")
        self.skipped_label.setToolTip("Files that could not be read; click for the list with reasons")
        self._update_actions()

    def _show_library_page(self) -> None:
        if self.extractor is None and self.library_stack.currentWidget() is self.setup_panel:
            return
        self.library_stack.setCurrentWidget(self.grid if self.library_folder is not None else self.empty_label)

    def show_skipped(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle(f"{len(self.skipped)} skipped files")
        layout = QVBoxLayout(dialog)
        text = QTextBrowser()
        if self.skipped:
            rows = "".join(f"<tr><td>{_html(p)}</td><td>{_html(for_window(r))}</td></tr>" for p, r in self.skipped)
            text.setHtml(f"<table cellpadding=3><tr><th align=left>File</th><th align=left>Why</th></tr>{rows}"
                         "</table>")
        else:
            text.setPlainText("No file was skipped.")
        layout.addWidget(text)
        close = QPushButton("Close")
        close.clicked.connect(dialog.accept)
        layout.addWidget(close, alignment=Qt.AlignmentFlag.AlignRight)
        dialog.resize(760, 420)
        dialog.show()
        self._skipped_dialog = dialog

    def _remember_library(self, folder: Path) -> None:
        libs = settings.load().libraries
        if str(folder) not in libs:
            libs.append(str(folder))
        settings.update(libraries=libs, active_library=str(folder))
        self._refresh_library_list()

    def _refresh_library_list(self) -> None:
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
        if item is None:
            return
        path = item.data(Qt.ItemDataRole.UserRole)
        stored = settings.load()
        libs = [p for p in stored.libraries if p != path]
        if stored.active_library == path:
            settings.update(libraries=libs, active_library=None)
        else:
            settings.update(libraries=libs)
        self._refresh_library_list()

    def add_reference_folder(self, folder: str | None = None) -> None:
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Choose a reference folder (never modified)",
                                                      str(self.library_folder or Path.home()))
        if not folder:
            return
        refs = settings.load().reference_folders
        resolved = str(Path(folder).expanduser().resolve())
        if resolved not in refs:
            refs.append(resolved)
        settings.update(reference_folders=refs)
        self._refresh_library_list()
        self.dupes_panel.library_changed()

    def _remove_reference_folder(self) -> None:
        item = self.reference_list.currentItem()
        if item is None:
            return
        path = item.data(Qt.ItemDataRole.UserRole)
        refs = [p for p in settings.load().reference_folders if p != path]
        settings.update(reference_folders=refs)
        self._refresh_library_list()
        self.dupes_panel.library_changed()

    # ------------------------------------------------------------------------------------------------------
    # grid
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
        if not self._closing:
            settings.update(thumb_size=self._zoom_save)

    def zoom(self, factor: float) -> None:
        self.set_thumb_side(int(self.zoom_slider.value() * factor))

    def apply_sort(self, announce: bool = True) -> None:
        key = self.sort_combo.currentData()
        if key == "visual":
            if self.library is None:
                return
            self.status_label.setText("Ordering by visual similarity…")
            self.runner.submit(jobs.library_order, self.library, key="order",
                               on_result=self._apply_order, on_error=self._job_error)
        else:
            self.library_model.sort_by(key, descending=(key in ("date", "size")))

    def _apply_order(self, order: list[int]) -> None:
        self.library_model.order_by(order)
        self.status_label.setText("Sorted by visual similarity: look-alike photos sit next to each other.")

    def active_grid(self) -> ImageGrid | None:
        page = self.tabs.currentWidget()
        if page is self.library_stack:
            return self.grid
        if page is self.similar_panel:
            return self.similar_panel.grid
        return None

    def selected_paths(self) -> list[Path]:
        page = self.tabs.currentWidget()
        if page is self.dupes_panel:
            return self.dupes_panel.selected_paths()
        grid = self.active_grid()
        if grid is None:
            return []
        items = grid.selected_items()
        if not items:
            cur = grid.current_item()
            items = [cur] if cur is not None else []
        return [it.path for it in items]

    def _selection_changed(self, grid: ImageGrid) -> None:
        self._update_actions()
        item = grid.current_item()
        if item is not None and self.inspector_dock.isVisible():
            self._inspect_timer_path = item.path
            QTimer.singleShot(150, self._inspect_current)

    def _inspect_current(self) -> None:
        path = getattr(self, "_inspect_timer_path", None)
        if path is not None:
            self.inspect(path)

    def _update_actions(self) -> None:
        has_sel = bool(self.selected_paths())
        has_lib = self.library is not None
        scanning = self.runner.is_running("scan")
        for a in (self.act_trash, self.act_move, self.act_copy, self.act_reveal, self.act_open_file,
                  self.act_copy_path, self.act_preview, self.act_inspect):
            a.setEnabled(has_sel)
        self.act_similar.setEnabled(has_sel and has_lib)
        self.act_query_file.setEnabled(has_lib)
        in_dupes = self.tabs.currentWidget() is self.dupes_panel
        self.act_compare.setEnabled(bool(self.dupes_panel.compare_paths()) if in_dupes else has_sel)
        self.act_rescan.setEnabled(has_lib and not scanning)
        self.act_dupes.setEnabled(has_lib)
        self.act_undo.setEnabled(True)

    def _context_menu(self, grid: ImageGrid, pos: Any) -> None:
        idx = grid.indexAt(pos)
        if not idx.isValid():
            return
        if not grid.selectionModel().isSelected(idx):
            # like a file manager: right-clicking outside the selection selects only the clicked photo
            # (setCurrentIndex alone would add it to the selection, and the menu would act on all of them)
            grid.selectionModel().setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        menu = QMenu(self)
        for a in (self.act_open_file, self.act_reveal, self.act_copy_path, None, self.act_similar,
                  self.act_compare, self.act_inspect, self.act_preview, None, self.act_move, self.act_copy,
                  self.act_trash):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.popup(grid.viewport().mapToGlobal(pos))
        self._menu = menu

    # ------------------------------------------------------------------------------------------------------
    # similar
    def find_similar_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.find_similar(paths[0])

    def choose_query_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Find photos similar to…", str(self.library_folder or Path.home()),
                                              "Images (*.jpg *.jpeg *.png *.webp *.heic *.heif *.tif *.tiff *.avif "
                                              "*.bmp *.gif *.dng *.cr2 *.nef *.arw);;All files (*)")
        if path:
            self.find_similar(Path(path))

    def find_similar(self, path: Path) -> None:
        """Query the open library with any image file; the newest query cancels the previous one."""
        if self.library is None:
            self.status_label.setText("Open a folder first: similar photos are looked up in an indexed library.")
            return
        self.similar_panel.set_query(path)
        self.runner.submit(jobs.preview_image, path, key="similar-preview", pass_callbacks=False,
                           on_result=lambda img, p=path: self.similar_panel.set_preview(p, img),
                           on_error=lambda msg: self.similar_panel.query_label.setText(for_window(msg)))
        self.tabs.setCurrentWidget(self.similar_panel)
        self.similar_model.set_items([])
        lib = self.query_library()
        scale = self._score_scale[1] if self._score_scale is not None and self._score_scale[0] is lib else None
        self.runner.submit(jobs.find_similar, lib, path, key="similar", finder=self.dupes_panel.finder,
                           sensitivity=self.dupes_panel.sensitivity(), scale=scale,
                           on_result=lambda ans, lib=lib: self._similar_done(ans, lib),
                           on_error=self._similar_error)
        self._query_vector = None
        if self.extractor is not None:
            self.inspect(path)

    def _similar_done(self, answer: jobs.SimilarAnswer, lib: Any = None) -> None:
        from vitfeat_desktop.core.dupes import review
        from vitfeat_desktop.gui.dupes_panel import TIER_WORDS

        items = []
        query = self.similar_panel.query_path
        self._query_vector = answer.vector
        scale = answer.scale if answer.scale is not None else np.zeros(0, dtype=np.float32)
        if answer.scale is not None and lib is not None:
            self._score_scale = (lib, answer.scale)
        for r in answer.results:
            item = GridItem.from_path(Path(r.path))
            item.score = float(r.score)
            item.file_id = getattr(r, "file_id", None)
            rank = review.score_rank(scale, item.score)
            meaning = f"closer than {100 * rank:.0f} % of this library's nearest neighbours" \
                if rank is not None else ""
            copy = answer.copies.get(str(r.path))
            if copy is not None:
                item.badge = TIER_WORDS.get(copy[0], copy[0])
                item.extra["copy"] = f"{item.badge} of the query: {copy[1]}"
            # "top 4 %": closer than 96 % of the library's nearest-neighbour pairs (only said of the upper half)
            item.caption = f"top {max(1, round(100 * (1 - rank)))} %" if rank is not None and rank >= 0.5 else None
            item.extra["meaning"] = meaning
            items.append(item)
        self.similar_model.set_items(items)
        if query is not None:
            text = f"{query.name}\n{plural(len(items), 'most similar photo')}, best first."
            copies = sum(1 for it in items if it.badge)
            how = "by the duplicate check" if answer.basis == "verified" else \
                "by the hash-level check (Find Duplicates also finds crops and edits)"
            if copies:
                text += f" {copies} {'is a copy' if copies == 1 else 'are copies'} of the query {how} (badge: tier)."
            elif answer.basis:
                text += f" None is a copy of the query {how}."
            if len(scale):
                text += (f" Score: cosine similarity of the model's features. Here half of the photos' nearest "
                         f"neighbours score above {float(np.median(scale)):.2f} and one in ten above "
                         f"{float(np.quantile(scale, 0.9)):.2f}: a high score alone means a look-alike.")
            else:
                text += " Score: cosine similarity of the model's features (1 = identical features)."
            self.similar_panel.query_caption.setText(text)
        emit(self.similar_ready, items)

    def _similar_error(self, message: str) -> None:
        self.similar_panel.query_caption.setText(f"Cannot search: {message}")
        self._job_error(message)

    # ------------------------------------------------------------------------------------------------------
    # inspector, compare, preview
    def inspect_selected(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.inspector_dock.show()
            self.inspect(paths[0])

    def inspect(self, path: Path) -> None:
        if self.extractor is None:
            self.inspector.show_error("no model is loaded yet")
            return
        query = None
        qpath = self.similar_panel.query_path
        if self.tabs.currentWidget() is self.similar_panel and qpath is not None and qpath != path:
            query = getattr(self, "_query_vector", None)
        self.inspector.show_busy(path)
        self.runner.submit(inspect_image, self.extractor, path, query, key="inspect", pass_callbacks=False,
                           on_result=self._inspected, on_error=self.inspector.show_error)

    def _inspected(self, ins: Any) -> None:
        self.inspector.show_inspection(ins)
        emit(self.inspection_ready, ins)

    def compare_selected(self) -> None:
        if self.tabs.currentWidget() is self.dupes_panel:
            paths = self.dupes_panel.compare_paths()
            if paths:
                self.compare(paths)
            return
        paths = self.selected_paths()[:4]
        if self.tabs.currentWidget() is self.similar_panel and self.similar_panel.query_path is not None \
                and len(paths) == 1:
            paths = [self.similar_panel.query_path, *paths]
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

    def preview(self) -> None:
        paths = self.selected_paths()
        if not paths:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(paths[0].name)
        layout = QVBoxLayout(dialog)
        panel = ComparePanel()
        panel.hint.setText("Scroll to zoom, drag to pan. Space or Esc closes.")
        panel.mode.setVisible(False)  # one photo: nothing to line up or flicker
        panel.load_requested.connect(lambda i, p: self.runner.submit(
            load_full, Path(p), key="preview", pass_callbacks=False,
            on_result=lambda res: panel.set_image(i, res[0], res[1]),
            on_error=lambda msg: panel.set_error(i, msg)))
        layout.addWidget(panel)
        close = QAction(dialog)
        close.setShortcut(QKeySequence("Space"))
        close.triggered.connect(dialog.accept)
        dialog.addAction(close)
        dialog.resize(int(self.width() * 0.8), int(self.height() * 0.85))
        panel.set_paths([paths[0]])
        dialog.show()
        self._preview_dialog = dialog

    def open_selected(self) -> None:
        for p in self.selected_paths()[:10]:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(p)))

    def reveal_selected(self) -> None:
        paths = self.selected_paths()
        if not paths:
            return
        path = paths[0]
        with contextlib.suppress(OSError):
            if sys.platform == "darwin":
                subprocess.Popen(["open", "-R", str(path)])
                return
            if sys.platform.startswith("win"):
                subprocess.Popen(["explorer", "/select,", str(path)])
                return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def copy_path(self) -> None:
        paths = self.selected_paths()
        if paths:
            QGuiApplication.clipboard().setText("\n".join(str(p) for p in paths))
            self.status_label.setText(f"Copied {len(paths)} path(s).")

    # ------------------------------------------------------------------------------------------------------
    # file actions
    def show_duplicates(self) -> None:
        self.tabs.setCurrentWidget(self.dupes_panel)
        self.dupes_panel.refresh()

    def file_action(self, action: str, paths: list[Path] | None = None, *, folder: str | None = None,
                    keepers: dict[str, str] | None = None) -> None:
        """Trash / quarantine / move / copy through the core's journal; the status bar offers Undo."""
        if paths is None and action in ("trash", "quarantine") and self.tabs.currentWidget() is self.dupes_panel \
                and self.dupes_panel.checked_items():
            self.dupes_panel.act(action)  # checked copies, each protected by its group's keeper
            return
        paths = list(paths if paths is not None else self.selected_paths())
        if not paths:
            return
        if action in ("move", "copy") and folder is None:
            folder = QFileDialog.getExistingDirectory(self, f"{action.capitalize()} {len(paths)} photos to…",
                                                      str(self.library_folder or Path.home()))
            if not folder:
                return
        if action in ("trash", "quarantine") and not self.confirm_removal(action, paths):
            return
        roots = [str(self.library_folder)] if self.library_folder else []
        verb = {"trash": "Moving to the trash", "quarantine": "Quarantining", "move": "Moving", "copy": "Copying"}
        self.status_label.setText(f"{verb[action]} {len(paths)} photos…")
        for p in paths:
            with contextlib.suppress(OSError):
                self._moved_sizes[str(p)] = p.stat().st_size
        self.runner.submit(jobs.apply_file_action, action, [str(p) for p in paths], folder=folder,
                           photo_roots=roots, keepers=keepers, key="action",
                           on_result=self._action_done, on_error=self._job_error)

    def confirm_removal(self, action: str, paths: list[Path]) -> bool:
        """Ask once, with the count and total size, before photos go to the trash or the quarantine; "Don't ask
        again" is remembered in the settings (Undo still puts every file back)."""
        if not settings.load().confirm_trash:
            return True
        total = 0
        for p in paths:
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        where = "the trash" if action == "trash" else "vitfeat's quarantine folder"
        box = QMessageBox(QMessageBox.Icon.Question, "Move photos?",
                          f"Move {plural(len(paths), 'photo')} ({human_size(total)}) to {where}?", parent=self)
        box.setInformativeText("Nothing is deleted: Undo (Ctrl+Z) puts every file back where it was."
                               if action != "trash" or settings.trash_undo_supported() else
                               "Nothing is deleted: restore them with Explorer's Restore or Finder's Put Back "
                               "(vitfeat's Undo cannot take files out of the system trash here).")
        ok = box.addButton("Move to the Trash" if action == "trash" else "Quarantine",
                           QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(ok)
        again = QCheckBox("Don't ask again")
        box.setCheckBox(again)
        self.confirm_box = box
        box.exec()
        if box.clickedButton() is not ok:
            self.status_label.setText("Nothing was moved.")
            return False
        if again.isChecked():
            settings.update(confirm_trash=False)
        return True

    def _action_done(self, result: Any) -> None:
        done = [Path(s) for s, _ in result.done]
        if result.action != "copy":
            self.library_model.remove_paths(done)
            self.similar_model.remove_paths(done)
            self.dupes_panel.files_removed(done)
        self.last_journal = result.journal_id
        verb = {"trash": "to the trash", "quarantine": "to the quarantine folder", "move": "", "copy": ""}
        total = sum(self._moved_sizes.pop(str(p), 0) for p in done)
        action = "Copied" if result.action == "copy" else "Moved"
        where = verb.get(result.action, "")
        if result.action in ("move", "copy") and getattr(result, "done", None):
            where = f"to {Path(result.done[0][1]).parent}" if result.done[0][1] else ""
        text = f"{action} {plural(len(done), 'file')}" + (f" ({human_size(total)})" if total else "") + \
            (f" {where}" if where else "")
        if result.failed:
            text += f"; {len(result.failed)} not: {for_window(result.failed[0][1])}"
        self.status_label.setText(text + ".")
        self.undo_label.setText('<a href="#undo">Undo</a>')
        self.dupes_panel.action_finished(text + ".", undoable=bool(done))
        emit(self.action_done, result)
        if result.action != "copy" and self.library is not None and done:
            self.rescan()

    def undo(self) -> None:
        self.status_label.setText("Undoing…")
        self.runner.submit(jobs.undo_last, self.last_journal, key="action", on_result=self._undo_done,
                           on_error=self._job_error)

    def _undo_done(self, result: Any) -> None:
        self.undo_label.setText("")
        self.last_journal = None
        text = f"Restored {len(result.restored)} photos"
        if result.failed:
            text += f"; {len(result.failed)} could not be restored: {result.failed[0][1]}"
        self.status_label.setText(text + ".")
        self.dupes_panel.action_finished(text + ".", undoable=False)
        emit(self.action_done, result)
        if self.library is not None:
            self.rescan()

    # ------------------------------------------------------------------------------------------------------
    # drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.handle_dropped(paths)

    def handle_dropped(self, paths: list[Path]) -> None:
        """A folder opens as a library; an image file becomes a similarity query."""
        for p in paths:
            if p.is_dir():
                self.open_folder(p)
                return
        for p in paths:
            if p.is_file() and is_image_path(p):
                self.find_similar(p)
                return
        if paths:
            self.status_label.setText(f"{paths[0].name} is not a folder or a supported image file.")

    # ------------------------------------------------------------------------------------------------------
    def _job_error(self, message: str) -> None:
        message = for_window(message)
        self.status_label.setText(message)
        emit(self.job_failed, message)

    def _about(self) -> None:
        from vitfeat_desktop import __version__

        QMessageBox.about(self, "About vitfeat", f"<h3>vitfeat {__version__}</h3><p>Find similar photos and "
                          "duplicates with Vision Transformer features, on your own computer. Your photos never "
                          "leave it.</p>")

    def closeEvent(self, event: QCloseEvent) -> None:
        """Save geometry, cancel every job and drain the pool (at most ~2 s), then close the library."""
        self._closing = True
        qs = self.window_settings()
        qs.setValue("window/geometry", self.saveGeometry())
        qs.setValue("window/state", self.saveState())
        qs.sync()
        self.runner.shutdown(timeout=2.0)
        self._close_fallback()
        if self.library is not None:
            with contextlib.suppress(Exception):
                self.library.close()
            self.library = None
        if self.extractor is not None:
            with contextlib.suppress(Exception):
                self.extractor.close()
        super().closeEvent(event)


def _html(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

