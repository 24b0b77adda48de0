"""The status bar: the running job's message, progress, images/s and ETA, Cancel, "N skipped", Undo, the model.

The scan-status wording lives here (not in the window) so what a scan report turns into on screen can be read,
and changed, in one place.
"""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from vitfeat_desktop.core.fileops.operations import ActionResult, UndoResult
from vitfeat_desktop.core.library.scanner import ScanReport
from vitfeat_desktop.core.pipeline import FeatureExtractor
from vitfeat_desktop.core.progress import Progress
from vitfeat_desktop.gui.file_actions import FileActions
from vitfeat_desktop.gui.grid import GridItem
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.text import plural

PHASE_WORDS = {"walk": "Looking for photos", "scan": "Looking for photos", "hash": "Checking files",
               "embed": "Indexing", "index": "Indexing"}


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


def scan_summary(report: ScanReport, before: list[GridItem], after: list[GridItem]) -> str:
    """What a finished scan says: "120 photos · 3 indexed (41.0 images/s), 117 unchanged, ..."."""
    secs = float(report.seconds or 0)
    indexed = int(report.indexed or 0)
    moved, removed = moved_and_removed(before, after, int(report.removed or 0))
    rate = f" ({indexed / secs:.1f} images/s)" if indexed and secs > 0 else ""
    return (f"{plural(len(after), 'photo')} · {indexed:,} indexed{rate}, {int(report.unchanged or 0):,} unchanged, "
            f"{moved:,} moved or renamed, {removed:,} removed in {secs:.1f} s")


class StatusBar:
    """The widgets in the window's QStatusBar, and how the session's model and scan are shown in them."""

    def __init__(self, bar: QStatusBar, session: Session) -> None:
        self.session = session
        self.label = QLabel("Ready")
        self.progress_bar = QProgressBar()
        self.progress_bar.setFixedWidth(220)
        self.progress_bar.setVisible(False)
        self.rate_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing; everything indexed so far is kept")
        self.cancel_button.setVisible(False)
        self.skipped_label = QLabel()
        self.skipped_label.setTextFormat(Qt.TextFormat.RichText)
        self.undo_label = QLabel()
        self.model_label = QLabel()
        bar.addWidget(self.label, 1)
        for widget in (self.undo_label, self.skipped_label, self.rate_label, self.progress_bar, self.cancel_button,
                       self.model_label):
            bar.addPermanentWidget(widget)
        self.cancel_button.clicked.connect(session.cancel_scan)
        session.status.connect(self.label.setText)
        session.model_loading.connect(lambda: self.model_label.setText("loading model…"))
        session.model_ready.connect(self.model_ready)
        session.model_failed.connect(lambda _message: self.model_failed())
        session.library_opening.connect(lambda folder: self.label.setText(f"Opening {folder}…"))
        session.scan_started.connect(self.scan_started)
        session.scan_progress.connect(self.scan_progress)
        session.scan_done.connect(lambda _outcome: self.scan_ended())
        session.scan_failed.connect(lambda _message: self.scan_ended())
        session.scan_cancelled.connect(self.scan_cancelled)

    def follow(self, files: FileActions) -> None:
        """File actions: their progress line, then the summary with Undo (gone once undone)."""
        files.status.connect(self.label.setText)
        files.finished.connect(self._files_done)
        self.undo_label.linkActivated.connect(lambda _link: files.undo())

    def _files_done(self, result: ActionResult | UndoResult, text: str, _undoable: bool) -> None:
        self.label.setText(text)
        self.undo_label.setText('<a href="#undo">Undo</a>' if isinstance(result, ActionResult) else "")

    def model_ready(self, extractor: FeatureExtractor) -> None:
        self.model_label.setText(f"Model: {extractor.model_id} ({extractor.variant})")
        if self.label.text().startswith("A model is needed"):
            self.label.setText("Ready")
        self.model_label.setToolTip(json.dumps(extractor.describe(), indent=1))

    def model_failed(self) -> None:
        self.model_label.setText("no model")
        self.label.setText("A model is needed before photos can be indexed.")

    def scan_started(self) -> None:
        self.progress_bar.setVisible(True)
        self.progress_bar.setRange(0, 0)
        self.cancel_button.setVisible(True)
        self.rate_label.setText("")
        self.label.setText(f"Indexing {self.session.library_folder}…")

    def scan_progress(self, rep: Progress) -> None:
        done, total = int(rep.done or 0), rep.total
        if total:
            self.progress_bar.setRange(0, int(total))
            self.progress_bar.setValue(min(done, int(total)))
            self.progress_bar.setFormat(f"{done:,} / {int(total):,}")
        else:
            self.progress_bar.setRange(0, 0)
        parts = [f"{rep.rate:.1f} images/s"] if rep.rate else []
        eta = format_eta(rep.eta)
        if eta:
            parts.append(eta)
        self.rate_label.setText("  ·  ".join(parts))
        phase = str(rep.phase or "")
        label = PHASE_WORDS.get(phase, phase.capitalize() or "Indexing")
        self.label.setText(f"{label}… {rep.message or ''}".strip())

    def scan_ended(self) -> None:
        self.progress_bar.setVisible(False)
        self.cancel_button.setVisible(False)
        self.rate_label.setText("")

    def scan_cancelled(self) -> None:
        self.scan_ended()
        self.label.setText("Indexing cancelled; photos indexed so far are kept. Rescan (F5) to continue.")

    def set_skipped(self, count: int) -> None:
        self.skipped_label.setText(f'<a href="#skipped">{count} skipped</a>' if count else "")
        self.skipped_label.setToolTip("Files that could not be read; click for the list with reasons")
