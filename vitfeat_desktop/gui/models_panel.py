"""Getting a model: the first-run panel and the model manager.

Nothing useful happens without a model, and the default one is a 90 MB download, so the first thing a new user
sees is a panel that names the model, says how big it is, downloads it with progress and Cancel (resumable: the
core keeps the ``.part`` file), or imports one from a folder / ``.onnx`` file for machines that are offline. The
model manager lists the registry's models and the cache, and lets the user choose the active model and variant.
All transfers run through the core's ``download_model`` / ``import_model`` on workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NotRequired, TypedDict

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import config
from vitfeat_desktop.core.models import cache, registry
from vitfeat_desktop.core.models.cache import CachedModel
from vitfeat_desktop.core.pipeline import FeatureExtractor
from vitfeat_desktop.core.progress import CancelFn, Progress, ProgressFn
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.tasks import TaskRunner
from vitfeat_desktop.gui.text import for_window


def download_job(model_id: str, variant: str, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> str:
    """Download one variant; the core's :class:`Progress` reports go to the signal as they are."""
    from vitfeat_desktop.core.models.download import download_model

    download_model(model_id, variants=(variant,), progress=progress, cancel=cancel)
    return model_id


def import_job(source: str, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> str:
    from vitfeat_desktop.core.models.cache import import_model

    cached = import_model(source, progress=progress, cancel=cancel)
    return str(cached.model_id)


def _show_progress(bar: QProgressBar, label: QLabel, rep: Progress | str) -> None:
    done, total, message = (rep.done, rep.total, rep.message) if isinstance(rep, Progress) else (0, None, str(rep))
    if total:
        bar.setRange(0, 1000)
        bar.setValue(int(1000 * min(1.0, done / total)))
        bar.setFormat(f"{human_size(done)} of {human_size(total)}")
    else:
        bar.setRange(0, 0)
    if message:
        label.setText(message)



def add_progress_row(layout: QVBoxLayout, on_cancel: Callable[[], object]) -> tuple[QProgressBar, QPushButton]:
    """A hidden progress bar with its Cancel button, shown while a download or import runs."""
    row = QHBoxLayout()
    progress = QProgressBar()
    progress.setVisible(False)
    cancel = QPushButton("Cancel")
    cancel.setVisible(False)
    cancel.clicked.connect(on_cancel)
    row.addWidget(progress, 1)
    row.addWidget(cancel)
    layout.addLayout(row)
    return progress, cancel


def ask_model_source(parent: QWidget) -> str:
    """A model folder, or (if the user cancels that) a single .onnx file; "" when they cancel both."""
    source = QFileDialog.getExistingDirectory(parent, "Choose a model folder")
    if not source:
        source, _ = QFileDialog.getOpenFileName(parent, "Or choose an .onnx file", "", "ONNX model (*.onnx)")
    return source

class ModelSetupPanel(QWidget):
    """Shown in place of the grid while no model is usable: download the default, or import one."""

    model_available = Signal(str)  # hub id or folder of the model now in the cache

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.model = registry.default_model()
        self.variant = "int8"
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        box = QWidget()
        box.setMinimumWidth(380)
        box.setMaximumWidth(600)
        layout = QVBoxLayout(box)
        title = QLabel("<h2>Download a model to get started</h2>")
        layout.addWidget(title)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.text)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.detail)
        row = QHBoxLayout()
        size = self.model.describe_size(self.variant)
        self.download_button = QPushButton(f"Download {self.model.display_name} ({size})")
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.download)
        self.import_button = QPushButton("Import from a folder or file…")
        self.import_button.setToolTip("Use a model you already have: a folder in the Hugging Face layout, or an "
                                      ".onnx file next to its config.json and preprocessor_config.json")
        self.import_button.clicked.connect(lambda _checked=False: self.import_model())  # not the checked flag
        row.addWidget(self.download_button)
        row.addWidget(self.import_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.progress, self.cancel_button = add_progress_row(layout, self.cancel)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        centre = QHBoxLayout()
        centre.addStretch(1)
        centre.addWidget(box)
        centre.addStretch(1)
        outer.addLayout(centre)
        outer.addStretch(2)
        self.set_missing(None)

    def set_missing(self, message: str | None) -> None:
        offline = config.offline()
        intro = (f"vitfeat describes each photo with <b>{self.model.display_name}</b>, a Vision Transformer that "
                 f"runs on your computer. It is downloaded once from Hugging Face ({self.model.describe_size('int8')}"
                 "), then works offline. The window stays usable while it downloads.")
        if offline:
            intro = ("<b>Offline mode is on</b>, so no model can be downloaded. Import a model you copied to this "
                     "computer (a Hugging Face model folder, or an .onnx file with its config files).")
        self.text.setText(intro)
        self.download_button.setEnabled(not offline)
        self.detail.setText(f"<small>{for_window(message)}</small>" if message else "")

    def download(self) -> None:
        self._busy(True, f"Downloading {self.model.model_id}…")
        self.runner.submit(download_job, self.model.model_id, self.variant, key="model-download",
                           on_progress=lambda rep: _show_progress(self.progress, self.status, rep),
                           on_result=self._done, on_error=self._error, on_cancelled=self._cancelled)

    def import_model(self, source: str | None = None) -> None:
        if source is None:
            source = ask_model_source(self)
        if not source:
            return
        self._busy(True, f"Checking and importing {source}…")
        self.runner.submit(import_job, source, key="model-download",
                           on_progress=lambda rep: _show_progress(self.progress, self.status, rep),
                           on_result=self._done, on_error=self._error, on_cancelled=self._cancelled)

    def cancel(self) -> None:
        self.runner.cancel("model-download")

    def _busy(self, on: bool, message: str = "") -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)
        self.download_button.setEnabled(not on and not config.offline())
        self.import_button.setEnabled(not on)
        if on:
            self.progress.setRange(0, 0)
        self.status.setText(message)

    def _done(self, model_id: str) -> None:
        self._busy(False, f"{model_id} is ready.")
        emit(self.model_available, model_id)

    def _error(self, message: str) -> None:
        self._busy(False, f"<b>Could not get the model:</b> {for_window(message)}")

    def _cancelled(self) -> None:
        self._busy(False, "Download cancelled. Downloading again continues where it stopped.")


class ModelRow(TypedDict):
    """One row of the model table: a registry model, a cached one, or the active model's own folder."""

    id: str
    name: str
    desc: str
    size: str
    cached: CachedModel | None
    known: bool  # in the registry (so it can be downloaded)
    folder: NotRequired[bool]  # the active model is a folder outside the cache


class ModelManagerDialog(QDialog):
    """Known and cached models, their sizes and status; download, import, remove, and choose the active one."""

    model_chosen = Signal(str, bool)  # model id, quantized

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None,
                 active: FeatureExtractor | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.runner = runner
        self.active_id = active.model_id if active is not None else ""
        self.active_variant = active.variant if active is not None else ""
        layout = QVBoxLayout(self)
        help_text = QLabel("The model turns each photo into a feature vector. Changing it re-indexes your library "
                           "in the background; the old index is kept until the new one is ready. <b>int8</b> is "
                           "smaller and faster; <b>fp32</b> is the full-precision original.")
        help_text.setWordWrap(True)
        layout.addWidget(help_text)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Model", "What it is good at", "Download", "On this computer",
                                              "In use"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for c in (0, 2, 3, 4):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.fp32_box = QCheckBox("Full precision (fp32)")
        self.fp32_box.setToolTip("Use onnx/model.onnx instead of the smaller int8 model_quantized.onnx")
        self.fp32_box.toggled.connect(lambda _on: self._update_buttons())
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(self.download)
        self.use_button = QPushButton("Use this model")
        self.use_button.clicked.connect(self.use)
        self.import_button = QPushButton("Import…")
        self.import_button.clicked.connect(self.import_model)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Delete the downloaded files of this model from the model cache")
        self.remove_button.clicked.connect(self.remove)
        for w in (self.fp32_box, self.download_button, self.use_button, self.import_button, self.remove_button):
            row.addWidget(w)
        row.addStretch(1)
        layout.addLayout(row)
        self.progress, self.cancel_button = add_progress_row(layout, lambda: self.runner.cancel("model-download"))
        self.status = QLabel(f"Cache: {config.models_dir()}")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.resize(980, 460)
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.table.resizeRowsToContents()  # now that the stretch column has its real width

    def rows(self) -> list[ModelRow]:
        cached = {m.model_id: m for m in cache.list_cached_models()}
        rows: list[ModelRow] = []
        for model_id, known in registry.KNOWN_MODELS.items():
            rows.append({"id": model_id, "name": known.display_name, "desc": known.description,
                         "size": f"int8 {known.describe_size('int8')}, fp32 {known.describe_size('fp32')}",
                         "cached": cached.pop(model_id, None), "known": True})
        for model_id, c in cached.items():
            rows.append({"id": model_id, "name": model_id, "desc": f"{c.source} model" +
                         (f" from {c.imported_from}" if c.imported_from else ""), "size": "–", "cached": c,
                         "known": False})
        if self.active_id and self.active_id not in {r["id"] for r in rows}:
            rows.append({"id": self.active_id, "name": Path(self.active_id).name, "desc": "model folder",
                         "size": "–", "cached": None, "known": False, "folder": True})
        return rows

    def refresh(self) -> None:
        self._rows = self.rows()
        self.table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            cached = row["cached"]
            if cached is not None:
                status = ", ".join(cached.variants) + f" ({human_size(cached.size_bytes)})" if cached.variants \
                    else "incomplete download"
                if cached.partial:
                    status += " · paused download"
            else:
                status = "folder" if row.get("folder") else "not downloaded"
            in_use = f"✓ {self.active_variant}" if row["id"] == self.active_id else ""
            values = [row["name"], row["desc"], row["size"], status, in_use]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(row["id"] if c == 0 else value)
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self._update_buttons()

    def _selected(self) -> ModelRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self._rows[rows[0].row()] if rows else None

    def _variant(self) -> str:
        return "fp32" if self.fp32_box.isChecked() else "int8"

    def _update_buttons(self) -> None:
        row = self._selected()
        busy = self.progress.isVisible()
        cached = row["cached"] if row else None
        has_variant = bool(cached and self._variant() in cached.variants) or bool(row and row.get("folder"))
        self.download_button.setEnabled(bool(row and row["known"]) and not has_variant and not busy
                                        and not config.offline())
        self.download_button.setText(f"Download {self._variant()}")
        self.use_button.setEnabled(has_variant)
        self.remove_button.setEnabled(cached is not None and not busy and (row is None or row["id"] != self.active_id))

    def download(self) -> None:
        row = self._selected()
        if row is None:
            return
        self._busy(True, f"Downloading {row['id']} ({self._variant()})…")
        self.runner.submit(download_job, row["id"], self._variant(), key="model-download",
                           on_progress=lambda rep: _show_progress(self.progress, self.status, rep),
                           on_result=lambda _m: self._busy(False, "Download complete."),
                           on_error=lambda m: self._busy(False, f"Download failed: {for_window(m)}"),
                           on_cancelled=lambda: self._busy(False, "Download cancelled; it resumes next time."))

    def import_model(self) -> None:
        source = ask_model_source(self)
        if not source:
            return
        self._busy(True, f"Importing {source}…")
        self.runner.submit(import_job, source, key="model-download",
                           on_progress=lambda rep: _show_progress(self.progress, self.status, rep),
                           on_result=lambda m: self._busy(False, f"Imported as {m}."),
                           on_error=lambda m: self._busy(False, f"Import failed: {for_window(m)}"))

    def remove(self) -> None:
        row = self._selected()
        if row is None:
            return
        answer = QMessageBox.question(self, "Remove model", f"Delete the downloaded files of {row['id']}?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            cache.remove_model(row["id"])
        except (OSError, ValueError, Exception) as exc:  # a user-facing error either way
            self.status.setText(f"Could not remove: {exc}")
        self.refresh()

    def use(self) -> None:
        row = self._selected()
        if row is not None:
            emit(self.model_chosen, row["id"], not self.fp32_box.isChecked())
            self.accept()

    def _busy(self, on: bool, message: str) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)
        if on:
            self.progress.setRange(0, 0)
        self.status.setText(message)
        self.refresh()
