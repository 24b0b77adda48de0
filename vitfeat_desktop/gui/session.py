"""What the app is working on: the model, the open library, its scan; the panels listen to its signals.

The window builds widgets and connects them; this object owns the state they share and the jobs that change it,
so the model-switch state machine can be read in one place: a new model re-indexes the open library in the
background while searches and duplicates keep using the previous model's library (the *fallback*), which closes
when the new index is complete. Every job goes through the :class:`TaskRunner`; nothing here touches a widget.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from vitfeat_desktop import settings
from vitfeat_desktop.core.library.facade import Library, repair_library
from vitfeat_desktop.core.library.scanner import ScanReport
from vitfeat_desktop.core.pipeline import FeatureExtractor
from vitfeat_desktop.core.progress import Progress
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.grid import GridItem
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.tasks import TaskRunner

LIVE_REFRESH_MS = 2000  # while a scan runs, the photos catalogued so far are shown this often


class Session(QObject):
    """The model, the library and the scan, with the signals the window and the panels listen to."""

    model_loading = Signal()
    model_ready = Signal(object)  # FeatureExtractor
    model_failed = Signal(str)
    libraries_changed = Signal()  # the list of opened folders (settings) changed
    not_a_folder = Signal(object)  # Path asked to open that is not a folder
    library_opening = Signal(object)  # Path: its catalogue is being read
    library_opened = Signal(object)  # jobs.OpenedLibrary, before its scan starts
    library_ready = Signal()  # opened, and its scan started
    open_failed = Signal(object, str)  # Path, message
    scan_started = Signal()
    scan_progress = Signal(object)  # Progress
    scan_tick = Signal()  # every LIVE_REFRESH_MS while a scan runs
    live_files = Signal(list)  # GridItems catalogued so far (during a scan)
    scan_done = Signal(object)  # jobs.ScanOutcome
    scan_failed = Signal(str)
    scan_cancelled = Signal()
    files_refreshed = Signal(list, list)  # GridItems, skipped (after a cancelled scan)
    query_ready = Signal(object)  # Path: the image opened with the app, to query now that its folder is indexed
    status = Signal(str)  # a line for the status bar
    failed = Signal(str)  # a job's one-line error

    def __init__(self, model: str | Path | None, quantized: bool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = TaskRunner(max_threads=max(4, os.cpu_count() or 2), parent=self)
        self.model_spec = model
        self.quantized = quantized
        self.extractor: FeatureExtractor | None = None
        self.library: Library | None = None
        self.library_folder: Path | None = None
        self.pending_folder: Path | None = None  # opens once a model is ready
        self.pending_query: Path | None = None  # an image opened with the app: queried once its folder is indexed
        self.last_report: ScanReport | None = None
        self.closing = False
        self._fallback: tuple[Library, FeatureExtractor] | None = None
        self._live_timer = QTimer(self)
        self._live_timer.setInterval(LIVE_REFRESH_MS)
        self._live_timer.timeout.connect(self._live_refresh)

    # -- model ---------------------------------------------------------------------------------------------
    def load_model(self, model: str | Path | None, quantized: bool = True) -> None:
        """Load the extractor on a worker; without a usable model the window shows the download/import panel."""
        self.model_spec, self.quantized = model, quantized
        emit(self.model_loading)
        self.runner.submit(jobs.load_extractor, model, quantized, key="model",
                           on_result=self._model_loaded, on_error=self._model_failed)

    def choose_model(self, model: str, quantized: bool) -> None:
        """The user chose a model (the model manager): remembered, and loaded."""
        settings.update(model=model, model_fp32=not quantized)
        self.load_model(model, quantized)

    def model_installed(self, model: str) -> None:
        """The first-run panel installed a model: remembered, and loaded with the current precision."""
        settings.update(model=model)
        self.load_model(model, self.quantized)

    def set_threads(self, value: int) -> None:
        """Preferences: the model's thread count; a new session takes it (not in the middle of a scan)."""
        if settings.load().threads != value:
            settings.update(threads=value)
            if self.extractor is not None and not self.runner.is_running("scan"):
                self.load_model(self.model_spec, self.quantized)

    def _model_loaded(self, extractor: FeatureExtractor) -> None:
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
        emit(self.model_ready, extractor)
        folder = self.pending_folder or self.library_folder
        self.pending_folder = None
        if folder is not None:
            self.library = None  # reopen with the new model (each model has its own index in the core)
            self.open_folder(folder)

    def _model_failed(self, message: str) -> None:
        self.extractor = None
        emit(self.model_failed, message)

    def query_library(self) -> Library | None:
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

    # -- library -------------------------------------------------------------------------------------------
    def open_folder(self, folder: Path) -> None:
        """Read the folder's catalogue at once (``library_opened``), then scan it incrementally."""
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            emit(self.not_a_folder, folder)
            return
        self._remember_library(folder)
        if self.extractor is None:
            self.pending_folder = folder
            emit(self.status, f"{folder.name} opens when a model is ready.")
            return
        if self.library is not None and self.library_folder == folder and self.runner.is_running("scan"):
            return
        self.cancel_scan()
        self.library_folder = folder
        emit(self.library_opening, folder)
        self.runner.submit(jobs.open_library, folder, self.extractor, key="open",
                           on_result=self._library_opened, on_error=lambda m: emit(self.open_failed, folder, m))

    def open_image(self, path: Path) -> None:
        """An image opens its folder as a library and becomes the similarity query as soon as the folder's scan
        has finished (a query on a half-built index would show only the photos indexed so far), or at once when
        that library is already open and indexed."""
        self.pending_query = path = Path(path).expanduser().resolve()
        if self.extractor is not None and self.library is not None and self.library_folder == path.parent:
            if not self.runner.is_running("scan") and not self.runner.is_running("open"):
                self._release_query()
            return
        self.open_folder(path.parent)

    def _release_query(self) -> None:
        query, self.pending_query = self.pending_query, None
        if query is not None and self.library is not None and not self.closing:
            emit(self.query_ready, query)

    def repair(self, folder: Path) -> None:
        """Rebuild a damaged catalogue (the photos are indexed again; marks and undo history are kept)."""
        emit(self.status, f"Repairing the library of {folder}…")
        self.runner.submit(repair_library, folder, pass_callbacks=False, key="open",
                           on_result=lambda _: self.open_folder(folder), on_error=self._failed)

    def _library_opened(self, opened: jobs.OpenedLibrary) -> None:
        old = self.library
        self.library = opened.library
        if old is not None and old is not opened.library and (self._fallback is None or old is not self._fallback[0]):
            with contextlib.suppress(Exception):
                old.close()
        emit(self.library_opened, opened)
        self.start_scan()
        emit(self.library_ready)

    def _remember_library(self, folder: Path) -> None:
        libs = settings.load().libraries
        if str(folder) not in libs:
            libs.append(str(folder))
        settings.update(libraries=libs, active_library=str(folder))
        emit(self.libraries_changed)

    def forget_library(self, path: str) -> None:
        """Take a folder off the list of libraries (its photos and index are not touched)."""
        stored = settings.load()
        libs = [p for p in stored.libraries if p != path]
        if stored.active_library == path:
            settings.update(libraries=libs, active_library=None)
        else:
            settings.update(libraries=libs)
        emit(self.libraries_changed)

    # -- scan ----------------------------------------------------------------------------------------------
    def start_scan(self) -> None:
        if self.library is None:
            return
        self.runner.submit(jobs.scan_library, self.library, key="scan", on_progress=self._scan_progress,
                           on_result=self._scan_done, on_error=self._scan_error, on_cancelled=self._scan_cancelled)
        self._live_timer.start()
        QTimer.singleShot(700, self._live_refresh)  # first photos on screen soon after a new folder opens
        emit(self.scan_started)

    def rescan(self) -> None:
        if self.library is not None and not self.runner.is_running("scan"):
            self.start_scan()

    def cancel_scan(self) -> None:
        if self.runner.is_running("scan"):
            self.runner.cancel("scan")
            emit(self.status, "Cancelling… (photos indexed so far are kept)")

    def scanning(self) -> bool:
        return self.runner.is_running("scan")

    def _scan_progress(self, rep: Progress) -> None:
        emit(self.scan_progress, rep)

    def _live_refresh(self) -> None:
        """While a scan runs, hand out the photos catalogued so far (the grid appends them)."""
        if not self.runner.is_running("scan") or self.library is None:
            self._live_timer.stop()
            return
        emit(self.scan_tick)
        if self.runner.is_running("live"):
            return
        lib = self.library
        self.runner.submit(lambda: [GridItem.from_record(r) for r in lib.files(status="ok")], key="live",
                           pass_callbacks=False, on_result=lambda items: self._live_files(lib, items))

    def _live_files(self, lib: Library, items: list[GridItem]) -> None:
        if lib is self.library and self.runner.is_running("scan"):
            emit(self.live_files, items)

    def _scan_done(self, outcome: jobs.ScanOutcome) -> None:
        self._live_timer.stop()
        self._close_fallback()  # the new model's index is complete
        self.last_report = outcome.report
        emit(self.scan_done, outcome)
        self._release_query()

    def _scan_error(self, message: str) -> None:
        self._live_timer.stop()
        emit(self.scan_failed, message)

    def _scan_cancelled(self) -> None:
        self._live_timer.stop()
        emit(self.scan_cancelled)
        self._release_query()
        if self.library is not None:
            lib = self.library
            self.runner.submit(lambda: (jobs.grid_items(lib), list(lib.skipped())), pass_callbacks=False,
                               key="refresh", on_result=lambda fs: emit(self.files_refreshed, *fs))

    def _failed(self, message: str) -> None:
        emit(self.failed, message)

    def close(self) -> None:
        """Cancel every job and drain the pool (at most ~2 s), then close the library and the model."""
        self.closing = True
        self.runner.shutdown(timeout=2.0)
        self._close_fallback()
        if self.library is not None:
            with contextlib.suppress(Exception):
                self.library.close()
            self.library = None
        if self.extractor is not None:
            with contextlib.suppress(Exception):
                self.extractor.close()
