"""The Duplicates view: groups with their keeper, each copy's tier and reason, and safe, undoable clean-up.

The evidence comes from the core in stages (``core/dupes/review.py``): the hash-level groups within seconds (even while
the folder is still being indexed), then the model's groups, then the pixel-verified answer. Each stage refills
the tree *in place*: the highlighted rows, the checked boxes and the row at the top of the view stay where the
user left them. Moving the sensitivity slider only regroups (``finder.groups(s)``, no file is read).
"Similar shots" (bursts, same scene) are a separate list with the core's reason per set and never pre-selected
for removal. Nothing is deleted: checked files go to the system trash or to the quarantine through the core's
journal (after one confirmation with the count and size), and Undo puts them back.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPoint, QSize, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import settings
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.text import for_window, plural
from vitfeat_desktop.gui.thumbs import ThumbnailLoader, cache_key

if TYPE_CHECKING:
    from vitfeat_desktop.core.dupes.finder import SimilarSet

TIER_WORDS = {
    "keeper": "Keep",
    "exact": "Exact copy",
    "same-pixels": "Same pixels",
    "near-duplicate": "Near-duplicate",
    "similar": "Similar shot",
}
TIER_HELP = {
    "exact": "byte-for-byte the same file",
    "same-pixels": "a different file with identical pixels (e.g. only the metadata changed)",
    "near-duplicate": "the same picture re-saved, resized, cropped, rotated or edited",
    "similar": "a different photo of the same scene (a burst, a retake): never selected automatically",
}
PathRole = Qt.ItemDataRole.UserRole + 1
KeeperRole = Qt.ItemDataRole.UserRole + 2
SizeRole = Qt.ItemDataRole.UserRole + 3
HeaderKindRole = Qt.ItemDataRole.UserRole + 4
ICON_SIDE = 56
ROW_HEIGHT = ICON_SIDE + 12  # room for four lines of a wrapped reason beside the thumbnail
# Rows are as tall as a thumbnail (three lines of text), so Taken (date / time) and Size (pixels / bytes) take two
# lines each: that leaves the width to the names, folders and reasons, which is what tells files apart.
COLUMNS = ("Photo", "Folder", "Kind", "Why", "Taken", "Size")
COL_NAME, COL_FOLDER, COL_KIND, COL_WHY, COL_TAKEN, COL_SIZE = range(len(COLUMNS))
STAGE_WORDS = {
    "hashes": "Step 1 of 4: exact, same-pixel and hash-level copies",
    "calibrating": "Step 2 of 4: tuning the model to this library",
    "embeddings": "Step 3 of 4: crops, borders and edits the model sees",
    "verified": "Step 4 of 4: checking doubtful pairs pixel by pixel",
}
QUICK_WHILE_SCANNING_S = 3.0  # how often the hash-level groups are refreshed while the folder is indexed


def square_icon(pm: QPixmap, side: int = ICON_SIDE) -> QIcon:
    """The thumbnail centred on a transparent square: every row gets the same height, so a panorama's row is not
    squashed to a sliver (and a tall portrait does not make its row taller than the others)."""
    canvas = QPixmap(side, side)
    canvas.fill(Qt.GlobalColor.transparent)
    scaled = pm.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(canvas)
    painter.drawPixmap((side - scaled.width()) // 2, (side - scaled.height()) // 2, scaled)
    painter.end()
    return QIcon(canvas)


def taken_text(info: Any) -> tuple[str, str]:
    """(cell text, tooltip) for the Taken column: the EXIF capture date, else the file's modification date."""
    capture = getattr(info, "capture_date", None)
    if capture:
        text = str(capture).strip()
        if text[4:5] == ":" and text[7:8] == ":":  # EXIF "2021:07:04 18:30:05"
            text = text[:10].replace(":", "-") + text[10:]
        text = text.replace("T", " ", 1)[:16]  # ISO "2021-07-04T18:30:05" -> "2021-07-04 18:30"
        return text.replace(" ", "\n", 1), f"taken {capture} (from the file's EXIF data)"
    mtime = float(getattr(info, "mtime", 0) or 0)
    if mtime > 0:
        stamp = _dt.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")
        return stamp.replace(" ", "\n"), f"no date taken in the file; last modified {stamp}"
    return "", "no date known"


class DuplicatesPanel(QWidget):
    def __init__(self, window: Any, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.win = window
        self.loader = loader
        self.finder: Any = None
        self.stage: str | None = None  # the stage the shown groups come from ("verified" = the final answer)
        self.groups: list[Any] = []
        self.similar: list[Any] = []
        self._stale = True
        self._last_quick = 0.0
        self._quick_cost = 0.0  # seconds the last hash-level pass took while a scan was running
        self._stage_floor = 0  # progress of stages before this one (index in STAGE_WORDS) is stale
        self._items_by_key: dict[str, list[QTreeWidgetItem]] = {}
        self._pending: list[tuple[str, int, Any]] = []
        self._checked_before: set[str] = set()
        self._restore: dict[str, Any] | None = None
        self._populate_timer = QTimer(self)
        self._populate_timer.setInterval(0)
        self._populate_timer.timeout.connect(self._populate_step)
        loader.ready.connect(self._thumb_ready)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show:"))
        self.mode = QComboBox()
        self.mode.addItem("Duplicates", "dupes")
        self.mode.addItem("Similar shots", "similar")
        self.mode.setToolTip("Duplicates are copies of one picture; similar shots are different photos of one "
                             "scene, listed separately and never selected automatically")
        self.mode.currentIndexChanged.connect(lambda _i: self.show_groups())
        bar.addWidget(self.mode)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Sensitivity:  strict"))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(round(100 * settings.load().dupes_sensitivity))
        self.slider.setMinimumWidth(120)
        self.slider.setMaximumWidth(220)
        self.slider.setToolTip("Move right to also group looser copies (stronger edits), left to keep only the most "
                               "certain ones. The middle is tuned for the model.")
        self.slider.valueChanged.connect(lambda _v: self.regroup())
        self.slider.sliderReleased.connect(self._save_sensitivity)
        bar.addWidget(self.slider, 1)
        bar.addWidget(QLabel("loose"))
        bar.addStretch(1)
        self.marks_button = QPushButton("Marks…")
        self.marks_button.setToolTip("Pairs you marked as not duplicates; unmark one to let it group again")
        self.marks_button.clicked.connect(lambda _checked=False: self.show_marks())
        bar.addWidget(self.marks_button)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the groups as CSV or JSON")
        self.export_button.clicked.connect(lambda _checked=False: self.export())
        bar.addWidget(self.export_button)
        layout.addLayout(bar)
        bar2 = QHBoxLayout()
        self.auto_button = QPushButton("Auto-select")
        self.auto_button.setToolTip("Check every copy except the keeper of each group (reference folders excluded)")
        self.auto_button.clicked.connect(lambda _checked=False: self.auto_select())
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Uncheck everything")
        self.clear_button.clicked.connect(lambda _checked=False: self._check_all(False))
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Show the highlighted group (or rows) side by side, lined up (C)")
        self.compare_button.clicked.connect(lambda _checked=False: self.win.compare_selected())
        self.not_dup_button = QPushButton("Not a duplicate")
        self.not_dup_button.setToolTip("The highlighted photo is not a copy of its group's keeper: never group them "
                                       "again (Marks… lists and undoes this)")
        self.not_dup_button.clicked.connect(lambda _checked=False: self.mark_not_duplicate())
        self.keep_button = QPushButton("Keep this one")
        self.keep_button.setToolTip("Make the highlighted photo the keeper of its group (remembered for this "
                                    "library)")
        self.keep_button.clicked.connect(lambda _checked=False: self.make_keeper())
        self.trash_button = QPushButton("Trash")
        self.trash_button.setToolTip("Move the checked photos to the system trash (Undo puts them back)"
                                     if settings.trash_undo_supported() else
                                     "Move the checked photos to the system trash; restore them with Explorer's "
                                     "Restore / Finder's Put Back (vitfeat's Undo cannot take them out of it here)")
        self.trash_button.clicked.connect(lambda _checked=False: self.act("trash"))
        self.quarantine_button = QPushButton("Quarantine")
        self.quarantine_button.setToolTip("Move the checked copies to vitfeat's quarantine folder (Undo puts them "
                                          "back)")
        self.quarantine_button.clicked.connect(lambda _checked=False: self.act("quarantine"))
        self.move_button = QPushButton("Move to folder…")
        self.move_button.setToolTip("Organize: move the checked photos (e.g. a set of similar shots) into a folder "
                                    "you choose; undoable")
        self.move_button.clicked.connect(lambda _checked=False: self.win.file_action("move", self.selected_paths()))
        for w in (self.auto_button, self.clear_button, self.compare_button, self.not_dup_button,
                  self.keep_button):
            bar2.addWidget(w)
        bar2.addStretch(1)
        bar2.addWidget(self.move_button)
        bar2.addWidget(self.trash_button)
        bar2.addWidget(self.quarantine_button)
        layout.addLayout(bar2)
        status = QHBoxLayout()
        self.summary = QLabel("Open a folder, then choose Find Duplicates (Ctrl+D).")
        self.summary.setWordWrap(True)
        status.addWidget(self.summary, 1)
        self.stage_bar = QProgressBar()
        self.stage_bar.setFixedWidth(200)
        self.stage_bar.setVisible(False)
        status.addWidget(self.stage_bar)
        layout.addLayout(status)
        self.stage_label = QLabel()
        self.stage_label.setVisible(False)
        layout.addWidget(self.stage_label)
        self.action_label = QLabel()  # "Moved 2 files (3.1 MB) to the trash. Undo"
        self.action_label.setTextFormat(Qt.TextFormat.RichText)
        self.action_label.linkActivated.connect(lambda _l: self.win.undo())
        self.action_label.setVisible(False)
        layout.addWidget(self.action_label)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "n0144…tench.JPEG": both ends tell files apart
        self.tree.setWordWrap(True)  # the Why column wraps inside the (thumbnail-high) row instead of being cut
        self.tree.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        # the short columns are as wide as their longest possible text in this font (whatever the platform's)
        fm = self.tree.fontMetrics()
        bold = QFont(self.tree.font())
        bold.setBold(True)
        fmb = QFontMetrics(bold)
        pad = 2 * self.tree.style().pixelMetric(self.tree.style().PixelMetric.PM_FocusFrameHMargin) + 16
        widths = ((COL_NAME, ICON_SIDE + 30 + fm.horizontalAdvance("n01440764_tench.JPEG")),
                  (COL_FOLDER, fm.horizontalAdvance("Camera Roll 2024") + pad),
                  (COL_KIND, max(fmb.horizontalAdvance("KEEP"),
                                 *(fm.horizontalAdvance(w) for w in (*TIER_WORDS.values(), "Similar shot"))) + pad),
                  (COL_TAKEN, fm.horizontalAdvance("2026-12-31") + pad),
                  (COL_SIZE, fm.horizontalAdvance("8888 × 8888") + pad))  # larger: elided, tooltip
        for col, width in widths:
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, width)
        header.setSectionResizeMode(COL_WHY, QHeaderView.ResizeMode.Stretch)
        self._natural = dict(widths)  # the widths above; Photo and Folder give way when the view is narrower
        self.tree.viewport().installEventFilter(self)
        self.tree.itemChanged.connect(lambda *_: self._update_summary())
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda it, _c: self._compare_group(it))
        layout.addWidget(self.tree, 1)
        self._update_buttons()

    MIN_WHY = 170

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if watched is self.tree.viewport() and event.type() == event.Type.Resize:
            self.fit_columns()
        return super().eventFilter(watched, event)

    def fit_columns(self) -> None:
        """Keep every column on screen: when the view is narrower than the natural widths, the Photo and Folder
        columns (elided in the middle, full path in the tooltip) shrink first, so Why, Size and Pixels stay."""
        header = self.tree.header()
        width = self.tree.viewport().width()
        fixed = sum(w for col, w in self._natural.items() if col not in (COL_NAME, COL_FOLDER))
        room = width - fixed - self.MIN_WHY
        name, folder = self._natural[COL_NAME], self._natural[COL_FOLDER]
        fm = self.tree.fontMetrics()
        # never less than ~18 characters of a name and a short folder name: those tell the files apart
        # the Photo cell holds the tree's indentation, the check box and the thumbnail before the name
        name_min = ICON_SIDE + 70 + fm.horizontalAdvance("n01440764_tench.JP")
        folder_min = fm.horizontalAdvance("Pictures") + 16
        if room < name + folder:
            share = max(0, room)
            folder = max(folder_min, min(folder, share // 3))
            name = max(name_min, share - folder)
        else:  # a wide window: longer names and folders first, the reason keeps the rest
            extra = room - name - folder
            name += min(extra // 2, 260)
            folder += min(extra // 6, 120)
        if header.sectionSize(COL_NAME) != name:
            header.resizeSection(COL_NAME, name)
        if header.sectionSize(COL_FOLDER) != folder:
            header.resizeSection(COL_FOLDER, folder)

    # -- data ----------------------------------------------------------------------------------------------
    def library_changed(self) -> None:
        """The library (or the reference folders) changed: rebuild the evidence when the view is next used."""
        self._stale = True
        if self.isVisible() and self.win.library is not None:
            self.refresh()

    def refresh(self) -> None:
        """Start the staged search; while the folder is still being indexed, only the hash stage runs (on what
        the catalogue knows so far), and :meth:`scan_tick` repeats it as more files arrive."""
        if self.win.library is None:
            self.summary.setText("Open a folder first.")
            return
        scanning = self.win.runner.is_running("scan")
        if scanning:
            self.summary.setText("Indexing is still running: showing the exact and hash-level copies found so "
                                 "far; the model's groups follow when indexing ends.")
        elif self.finder is None:
            self.summary.setText("Looking for copies…")
        self._last_quick = time.monotonic()
        self._stage_floor = 0
        self.win.runner.submit(jobs.build_duplicates_staged, self.win.library, key="dupes-build",
                               use_model=not scanning, pass_partial=True, on_partial=self._stage_ready,
                               on_progress=self._progress, on_result=self._built, on_error=self._error,
                               on_cancelled=self._hide_progress)
        self._show_stage_progress("hashes", 0, None, "")

    def scan_tick(self) -> None:
        """Called while a scan runs: refresh the hash-level groups every few seconds if the view is open."""
        # never more than a fifth of the time on it, however large the library
        interval = max(QUICK_WHILE_SCANNING_S, 5 * self._quick_cost)
        if (self.isVisible() and self.win.library is not None and not self.win.runner.is_running("dupes-build")
                and time.monotonic() - self._last_quick >= interval):
            self.refresh()

    def _progress(self, rep: Any) -> None:
        phase = str(getattr(rep, "phase", "") or "")
        if phase in STAGE_WORDS and list(STAGE_WORDS).index(phase) < self._stage_floor:
            return  # a late report of a stage whose answer is already shown
        self._show_stage_progress(str(getattr(rep, "phase", "") or ""), int(getattr(rep, "done", 0) or 0),
                                  getattr(rep, "total", None), str(getattr(rep, "message", "") or ""))

    def _show_stage_progress(self, phase: str, done: int, total: int | None, message: str) -> None:
        words = STAGE_WORDS.get(phase, phase.capitalize())
        count = f"{done:,}" + (f" / {int(total):,}" if total else "")
        text = f"{words}…" + (f" {message}" if message else "") + (f" ({count})" if done else "")
        if self.win.runner.is_running("scan"):
            text += " · the copies found so far; the model's groups follow when indexing ends"
        self.stage_label.setText(text)
        self.stage_label.setVisible(True)
        self.stage_bar.setVisible(True)
        if total:
            self.stage_bar.setRange(0, int(total))
            self.stage_bar.setValue(min(done, int(total)))
        else:
            self.stage_bar.setRange(0, 0)  # busy: the stage has no known end, the bar still moves

    def _hide_progress(self) -> None:
        self.stage_bar.setVisible(False)
        self.stage_label.setVisible(False)

    def _stage_ready(self, stage: Any) -> None:
        """A stage's finder arrived: regroup with it, keeping the view where the user left it."""
        if not stage.final and stage.name in STAGE_WORDS:
            names = list(STAGE_WORDS)
            following = names[min(len(names) - 1, names.index(stage.name) + 1)]
            self._stage_floor = names.index(following)
            if self.win.runner.is_running("scan"):
                self.stage_label.setText("Exact and hash-level copies so far; the model's groups follow when "
                                         "indexing ends.")
            else:
                self._show_stage_progress(following, 0, None, "")
        if stage.finder is None:
            return
        self.finder = stage.finder
        self.stage = stage.name
        self._stale = False
        self.regroup()
        if stage.final and not self.win.runner.is_running("scan"):
            self._hide_progress()

    def _built(self, finder: Any) -> None:
        self._quick_cost = time.monotonic() - self._last_quick if self.win.runner.is_running("scan") else 0.0
        if finder is not self.finder:
            self.finder = finder
            self.regroup()
        if not self.win.runner.is_running("scan"):
            self._hide_progress()
        else:
            self.stage_label.setText("Exact and hash-level copies so far; the model's groups follow when indexing "
                                     "ends.")

    def _error(self, message: str) -> None:
        self._hide_progress()
        self.summary.setText(f"Cannot find duplicates: {for_window(message)}")

    def _save_sensitivity(self) -> None:
        settings.update(dupes_sensitivity=self.sensitivity())

    def sensitivity(self) -> float:
        return self.slider.value() / 100.0

    def regroup(self) -> None:
        if self.finder is None:
            return
        self.win.runner.submit(jobs.regroup, self.finder, self.sensitivity(), key="dupes-regroup",
                               on_result=self._regrouped, on_error=self._error)

    def _regrouped(self, result: tuple[list[Any], list[Any]]) -> None:
        self.groups, self.similar = result
        self.show_groups(keep_view=True)

    # -- tree ----------------------------------------------------------------------------------------------
    @staticmethod
    def _identity(item: QTreeWidgetItem | None) -> tuple[str, str] | None:
        """What a row stands for across refills: a file (by path) or a group (by its first file)."""
        if item is None:
            return None
        path = item.data(0, PathRole)
        if path:
            return ("file", str(path))
        if item.childCount():
            return ("group", str(item.child(0).data(0, PathRole)))
        return None

    def _view_state(self) -> dict[str, Any]:
        top = self.tree.itemAt(QPoint(2, 2))
        return {
            "selected": {self._identity(it) for it in self.tree.selectedItems()} - {None},
            "current": self._identity(self.tree.currentItem()),
            "anchor": self._identity(top),
            "anchor_y": self.tree.visualItemRect(top).top() if top is not None else 0,
            "scroll": self.tree.verticalScrollBar().value(),
        }

    def _find(self, identity: tuple[str, str] | None) -> QTreeWidgetItem | None:
        if identity is None:
            return None
        kind, path = identity
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, PathRole) == path:
                    return top.child(j) if kind == "file" else top
        return None

    def _apply_view_state(self, state: dict[str, Any]) -> None:
        self.tree.blockSignals(True)
        try:
            current = self._find(state["current"])
            if current is not None:
                self.tree.setCurrentItem(current, 0, self.tree.selectionModel().SelectionFlag.NoUpdate)
            for identity in state["selected"]:
                item = self._find(identity)
                if item is not None:
                    item.setSelected(True)
        finally:
            self.tree.blockSignals(False)
        anchor = self._find(state["anchor"])
        bar = self.tree.verticalScrollBar()
        if anchor is not None:
            self.tree.scrollToItem(anchor, QAbstractItemView.ScrollHint.PositionAtTop)
            bar.setValue(bar.value() + self.tree.visualItemRect(anchor).top() - int(state["anchor_y"]))
        else:
            bar.setValue(int(state["scroll"]))
        self._update_buttons()

    def show_groups(self, keep_view: bool = False) -> None:
        """Refill the tree. Groups are added a batch per event-loop turn, so thousands of groups never freeze
        the window; anything that needs every row (auto-select, actions) calls :meth:`flush` first.

        With ``keep_view`` (a new stage or sensitivity), the highlighted rows, the current row and the row at the
        top of the view are restored once the rows they need are in, so refining never moves what the user sees.
        """
        state = self._view_state() if keep_view and self.tree.topLevelItemCount() else None
        # rows not added yet keep the state they had in the previous fill
        self._checked_before = set(self.checked_paths()) | (self._checked_before if self._pending else set())
        self._populate_timer.stop()
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            self._items_by_key.clear()
            if self.mode.currentData() == "dupes":
                self._pending = [("dupes", n, g) for n, g in enumerate(self.groups, 1)]
            else:
                self._pending = [("similar", n, g) for n, g in enumerate(self.similar, 1)]
            self._pending.reverse()
            if state is not None:
                self.flush()  # the rows the saved view refers to must exist before it is restored
                self._apply_view_state(state)
            else:
                self._populate_step()
        finally:
            self.tree.setUpdatesEnabled(True)
        if self._pending:
            self._populate_timer.start()
        self._update_summary()

    def flush(self) -> None:
        while self._pending:
            self._populate_step(batch=10_000)
        self._populate_timer.stop()

    def _populate_step(self, batch: int = 10) -> None:
        self.tree.blockSignals(True)
        checked = self._checked_before
        for _ in range(min(batch, len(self._pending))):
            kind, n, group = self._pending.pop()
            if kind == "dupes":
                self._add_dupe_group(n, group, checked)
            else:
                self._add_similar_group(n, group, checked)
        self.tree.blockSignals(False)
        if not self._pending:
            self._populate_timer.stop()
            self._update_buttons()

    def _header(self, title: str, kind: str, why: str) -> QTreeWidgetItem:
        """A group's header row: one line across all columns ("Group 3: 2 files · Near-duplicate: the same
        picture re-saved, ..."), so the explanation is never squeezed into the Why column of a one-line row."""
        text = f"{title} · {kind}" + (f": {why}" if why else "")
        top = QTreeWidgetItem([text] + [""] * (len(COLUMNS) - 1))
        top.setData(0, HeaderKindRole, kind)
        top.setToolTip(0, text)
        self._bold(top)
        self.tree.addTopLevelItem(top)
        top.setFirstColumnSpanned(True)
        return top

    def _add_dupe_group(self, n: int, group: Any, checked: set[str]) -> None:
        tier = TIER_WORDS.get(group.tier, group.tier)
        top = self._header(f"Group {n}: {plural(len(group.members), 'file')}", tier, TIER_HELP.get(group.tier, ""))
        for m in group.members:
            keeper = m.tier == "keeper"
            why = m.reason or ("the best copy by the keeper rules" if keeper else "")
            if m.reference:
                why += " (reference folder: never moved)"
            child = self._file_item(m.info, "KEEP" if keeper else TIER_WORDS.get(m.tier, m.tier), why)
            child.setData(0, KeeperRole, group.keeper.path)
            if not keeper and not m.reference:
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                child.setCheckState(0, Qt.CheckState.Checked if m.info.path in checked else Qt.CheckState.Unchecked)
            if keeper:
                self._bold(child)
            top.addChild(child)
        top.setExpanded(True)

    def _add_similar_group(self, n: int, shots: SimilarSet, checked: set[str]) -> None:
        from vitfeat_desktop.core.dupes import review

        files = list(shots)
        identical = [self.finder is not None and i > 0 and review.identical_pixels(self.finder, files[0], f)
                     for i, f in enumerate(files)]
        reason = shots.reason or "different photos of the same scene"
        if any(identical):
            reason = ("includes files with identical pixels that you marked as not duplicates "
                      "(Marks… lists the marks)")
        top = self._header(f"Similar shots {n}: {plural(len(files), 'photo')}", "Similar shots", reason)
        for i, info in enumerate(files):
            if i == 0:
                why = f"best of the set by the keeper rules. {reason}"
            elif identical[i]:
                why = "identical pixels to the best of the set; you marked the pair as not a duplicate"
            else:
                why = "another capture of this scene, not a copy: never selected automatically"
            child = self._file_item(info, "Best" if i == 0 else ("Same pixels" if identical[i] else "Similar shot"),
                                    why)
            child.setData(0, KeeperRole, files[0].path)
            child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            child.setCheckState(0, Qt.CheckState.Checked if info.path in checked else Qt.CheckState.Unchecked)
            top.addChild(child)
        top.setExpanded(True)

    def _file_item(self, info: Any, kind: str, why: str) -> QTreeWidgetItem:
        path = Path(info.path)
        dims = f"{info.width} × {info.height}" if info.width and info.height else ""
        size = human_size(info.size) if info.size else ""
        taken, taken_tip = taken_text(info)
        item = QTreeWidgetItem([path.name, path.parent.name or str(path.parent), kind, why, taken,
                                "\n".join(x for x in (dims, size) if x)])
        item.setToolTip(COL_SIZE, f"{dims} pixels, {int(info.size or 0):,} bytes" if dims else f"{size}")
        for col in (COL_NAME, COL_FOLDER):
            item.setToolTip(col, str(path))  # the full path: names and folders are elided in the middle
        item.setToolTip(COL_WHY, why)
        item.setToolTip(COL_TAKEN, taken_tip)
        if not getattr(info, "capture_date", None):
            item.setForeground(COL_TAKEN, QBrush(QColor(128, 128, 128)))
        item.setTextAlignment(COL_SIZE, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setData(0, PathRole, str(path))
        item.setData(0, SizeRole, int(info.size or 0))
        item.setSizeHint(0, QSize(ICON_SIDE + 8, ROW_HEIGHT))
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)  # only copies become checkable
        key = cache_key(path, info.content_hash)
        pm = self.loader.pixmap(key, path)
        if pm is not None:
            item.setIcon(0, square_icon(pm))
        self._items_by_key.setdefault(key, []).append(item)
        return item

    def _thumb_ready(self, key: str) -> None:
        items = self._items_by_key.get(key)
        if not items:
            return
        pm = self.loader.pixmap(key, Path(items[0].data(0, PathRole)))
        if pm is not None:
            self.tree.blockSignals(True)
            icon = square_icon(pm)
            for item in items:
                with contextlib.suppress(RuntimeError):  # a row Qt has already deleted (tree refilled)
                    item.setIcon(0, icon)
            self.tree.blockSignals(False)

    @staticmethod
    def _bold(item: QTreeWidgetItem) -> None:
        if item.parent() is None:  # group headers are never acted on
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
        font = QFont(item.font(0))
        font.setBold(True)
        item.setFont(0, font)
        item.setFont(COL_KIND, font)

    def _members(self) -> list[QTreeWidgetItem]:
        out: list[QTreeWidgetItem] = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            out.extend(top.child(j) for j in range(top.childCount()))
        return out

    def checked_items(self) -> list[QTreeWidgetItem]:
        return [it for it in self._members()
                if it.flags() & Qt.ItemFlag.ItemIsUserCheckable and it.checkState(0) == Qt.CheckState.Checked]

    def checked_paths(self) -> list[str]:
        return [it.data(0, PathRole) for it in self.checked_items()] if self.tree.topLevelItemCount() else []

    def selected_paths(self) -> list[Path]:
        """Checked files, else the highlighted rows (what Delete and the context actions act on)."""
        checked = self.checked_paths()
        if checked:
            return [Path(p) for p in checked]
        return [Path(it.data(0, PathRole)) for it in self.tree.selectedItems() if it.data(0, PathRole)]

    def compare_paths(self) -> list[Path]:
        """What Compare (C, the toolbar, the context menu) shows: a highlighted group header is the whole group;
        one highlighted file is shown beside its keeper; several highlighted files are shown together."""
        current = self.tree.currentItem()
        selected = self.tree.selectedItems() or ([current] if current is not None else [])
        headers = [it for it in selected if it.parent() is None and it.childCount()]
        if headers:
            top = headers[0]
            return [Path(top.child(j).data(0, PathRole)) for j in range(min(4, top.childCount()))]
        files = [it for it in selected if it.data(0, PathRole)]
        if len(files) == 1:
            path, keeper = files[0].data(0, PathRole), files[0].data(0, KeeperRole)
            return [Path(keeper), Path(path)] if keeper and keeper != path else [Path(path)]
        return [Path(it.data(0, PathRole)) for it in files[:4]]

    def _check_all(self, on: bool) -> None:
        self.tree.blockSignals(True)
        for it in self._members():
            if it.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.tree.blockSignals(False)
        self._update_summary()

    def _check_highlighted(self, on: bool) -> None:
        self.tree.blockSignals(True)
        for it in self.tree.selectedItems():
            if it.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.tree.blockSignals(False)
        self._update_summary()

    def auto_select(self) -> None:
        """Check every removable copy by the core's keeper rules (only in the Duplicates list)."""
        if self.mode.currentData() != "dupes":
            self.summary.setText("Similar shots are different photos; choose which to remove yourself.")
            return
        self.flush()
        self._check_all(True)

    def _update_summary(self) -> None:
        checked = self.checked_items()
        total = sum(self._size_of(it) for it in checked)
        if self.mode.currentData() == "dupes":
            removable = sum(len(g.removable) for g in self.groups)
            text = (f"{plural(len(self.groups), 'group')} of duplicates · {plural(removable, 'copy', 'copies')} "
                    f"could go · {plural(len(self.similar), 'set')} of similar shots (listed separately)")
        else:
            text = f"{plural(len(self.similar), 'set')} of similar shots · never selected automatically"
        if self.stage in ("hashes", "embeddings"):
            text += " · refining…" if self.win.runner.is_running("dupes-build") else ""
        if checked:
            text += f" · <b>{len(checked)} checked ({human_size(total)})</b>"
        self.summary.setText(text if self.finder is not None else self.summary.text())
        self._update_buttons()

    @staticmethod
    def _size_of(item: QTreeWidgetItem) -> int:
        return int(item.data(0, SizeRole) or 0)

    def _update_buttons(self) -> None:
        has_checked = bool(self.checked_items()) if self.tree.topLevelItemCount() else False
        self.trash_button.setEnabled(has_checked)
        self.move_button.setEnabled(has_checked)
        self.quarantine_button.setEnabled(has_checked)
        self.export_button.setEnabled(bool(self.groups or self.similar))
        self.auto_button.setEnabled(bool(self.groups))
        sel = [it for it in self.tree.selectedItems() if it.data(0, PathRole)]
        self.not_dup_button.setEnabled(bool(sel) and self.finder is not None)
        self.compare_button.setEnabled(len(self.compare_paths()) >= 1 if self.tree.topLevelItemCount() else False)
        self.keep_button.setEnabled(len(sel) == 1 and self.finder is not None and self.mode.currentData() == "dupes")

    def _selection_changed(self) -> None:
        self._update_buttons()
        self.win._update_actions()
        sel = [it for it in self.tree.selectedItems() if it.data(0, PathRole)]
        if sel and self.win.inspector_dock.isVisible():
            self.win.inspect(Path(sel[0].data(0, PathRole)))

    def _compare_group(self, item: QTreeWidgetItem) -> None:
        top = item if item.parent() is None else item.parent()
        paths = [Path(top.child(j).data(0, PathRole)) for j in range(min(4, top.childCount()))]
        if paths:
            self.win.compare(paths)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        if not item.isSelected():  # like a file manager: right-clicking outside the selection selects the row
            self.tree.setCurrentItem(item)
        menu = QMenu(self)
        w = self.win
        menu.addAction(w.act_compare)
        not_dup = menu.addAction("Not a duplicate", self.mark_not_duplicate)
        not_dup.setEnabled(self.not_dup_button.isEnabled())
        menu.addSeparator()
        menu.addAction("Check", lambda: self._check_highlighted(True))
        menu.addAction("Uncheck", lambda: self._check_highlighted(False))
        menu.addSeparator()
        for a in (w.act_open_file, w.act_reveal, w.act_copy_path, None, w.act_trash):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu.popup(self.tree.viewport().mapToGlobal(pos))
        self._menu = menu

    # -- actions -------------------------------------------------------------------------------------------
    def act(self, action: str) -> None:
        """Trash or quarantine the checked copies; each is protected by its keeper (the core refuses to move a
        copy whose keeper has gone, and never moves a keeper or a reference file)."""
        self.flush()
        items = self.checked_items()
        if not items:
            return
        keepers = {it.data(0, PathRole): it.data(0, KeeperRole) for it in items
                   if self.mode.currentData() == "dupes"}
        self.win.file_action(action, [Path(it.data(0, PathRole)) for it in items], keepers=keepers or None)

    def action_finished(self, text: str, undoable: bool) -> None:
        """The window's summary of a finished action, with Undo, shown above the list too."""
        self.action_label.setText(text + (' <a href="#undo">Undo</a>' if undoable else ""))
        self.action_label.setVisible(True)

    def files_removed(self, paths: list[Path]) -> None:
        gone = {str(p) for p in paths}
        for key in list(self._items_by_key):  # never touch a removed row when its thumbnail arrives later
            kept = [it for it in self._items_by_key[key] if it.data(0, PathRole) not in gone]
            if kept:
                self._items_by_key[key] = kept
            else:
                del self._items_by_key[key]
        self._pending = [p for p in self._pending if not self._group_touches(p[2], gone)]
        self.tree.blockSignals(True)
        for it in self._members():
            if it.data(0, PathRole) in gone:
                it.parent().removeChild(it)
        for i in reversed(range(self.tree.topLevelItemCount())):
            top = self.tree.topLevelItem(i)
            if top.childCount() < 2:
                for j in range(top.childCount()):
                    path = top.child(j).data(0, PathRole)
                    for key in list(self._items_by_key):
                        self._items_by_key[key] = [it for it in self._items_by_key[key]
                                                   if it.data(0, PathRole) != path]
                self.tree.takeTopLevelItem(i)
        self.tree.blockSignals(False)
        self._stale = True
        self._update_buttons()

    @staticmethod
    def _group_touches(group: Any, gone: set[str]) -> bool:
        paths = [m.info.path for m in group.members] if hasattr(group, "members") else [f.path for f in group]
        return any(p in gone for p in paths)

    def mark_not_duplicate(self) -> None:
        """Record "not a duplicate of its keeper" for each highlighted file, then regroup (no file is read)."""
        if self.finder is None or self.finder.marks is None:
            return
        by_path = {f.path: f for f in self.finder.files}
        marks = self.finder.marks
        count = 0
        for it in self.tree.selectedItems():
            path, keeper = it.data(0, PathRole), it.data(0, KeeperRole)
            if path and keeper and path != keeper and path in by_path and keeper in by_path:
                marks.mark(by_path[path], by_path[keeper])
                count += 1
        if count:
            self.summary.setText(f"Marked {plural(count, 'photo')} as not a duplicate (Marks… undoes it); "
                                 "regrouping…")
            self.regroup()

    def show_marks(self) -> None:
        """The "not a duplicate" marks of this library, each with its files; Unmark lets the pair group again."""
        from vitfeat_desktop.core.dupes import finder as dupes
        from vitfeat_desktop.core.dupes import review

        if self.finder is not None and self.finder.marks is not None:
            marks, files = self.finder.marks, self.finder.files
        elif self.win.library is not None:
            marks = dupes.NotDuplicateMarks.for_library(self.win.library.folder)
            files = [dupes.FileInfo.from_record(r) for r in self.win.library.files(status="ok")]
        else:
            self.summary.setText("Open a folder first.")
            return
        dialog = QDialog(self)
        dialog.setWindowTitle("Not a duplicate: your marks")
        layout = QVBoxLayout(dialog)
        layout.addWidget(QLabel("These pairs are never grouped as duplicates. Unmark a pair to let it group again."))
        listing = QListWidget()
        listing.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        layout.addWidget(listing, 1)

        def fill() -> None:
            listing.clear()
            for pair, left, right in review.marked_pairs(marks, files):
                def name(paths: list[str]) -> str:
                    return ", ".join(Path(p).name for p in paths) if paths else "(no longer in the library)"
                item = QListWidgetItem(f"{name(left)}  ↔  {name(right)}" if pair[0] != pair[1]
                                       else f"{name(left)}  (identical files)")
                item.setToolTip("\n".join(left + right))
                item.setData(Qt.ItemDataRole.UserRole, list(pair))
                listing.addItem(item)
            if not listing.count():
                listing.addItem(QListWidgetItem("No marks: every pair may be grouped."))

        def unmark() -> None:
            chosen = [it.data(Qt.ItemDataRole.UserRole) for it in listing.selectedItems()
                      if it.data(Qt.ItemDataRole.UserRole)]
            for pair in chosen:
                review.unmark_pair(marks, (str(pair[0]), str(pair[1])))
            if chosen:
                fill()
                self.summary.setText(f"Unmarked {plural(len(chosen), 'pair')}; regrouping…")
                self.regroup()

        fill()
        row = QHBoxLayout()
        unmark_button = QPushButton("Unmark")
        unmark_button.clicked.connect(lambda _checked=False: unmark())
        close = QPushButton("Close")
        close.clicked.connect(dialog.accept)
        row.addStretch(1)
        row.addWidget(unmark_button)
        row.addWidget(close)
        layout.addLayout(row)
        dialog.resize(640, 360)
        dialog.show()
        self.marks_dialog = dialog
        self.marks_list = listing
        self.unmark_button = unmark_button

    def make_keeper(self) -> None:
        """Make the highlighted photo the keeper of its group; the core stores the choice, so it sticks."""
        sel = [it for it in self.tree.selectedItems() if it.data(0, PathRole)]
        if self.finder is None or len(sel) != 1 or not hasattr(self.finder, "choose_keeper"):
            return
        path, keeper = sel[0].data(0, PathRole), sel[0].data(0, KeeperRole)
        group = next((g for g in self.groups if g.keeper.path == keeper and path in g.files), None)
        if group is None or path == keeper:
            return
        info = next(m.info for m in group.members if m.info.path == path)
        try:
            self.finder.choose_keeper(group, info)
        except (ValueError, OSError) as exc:
            self.summary.setText(f"Cannot keep {Path(path).name}: {exc}")
            return
        self.summary.setText(f"{Path(path).name} is now the keeper of its group")
        self.regroup()

    def export(self, path: str | None = None) -> Path | None:
        """Save the current groups (at the current sensitivity) as CSV or JSON, chosen by the file suffix."""
        if path is None:
            start = str(Path.home() / "vitfeat-duplicates.csv")
            path, _ = QFileDialog.getSaveFileName(self, "Export duplicates", start,
                                                  "CSV spreadsheet (*.csv);;JSON (*.json)")
            if not path:
                return None
        target = Path(path)
        if target.suffix.lower() == ".json":
            data = {"sensitivity": self.sensitivity(), "groups": [g.to_dict() for g in self.groups],
                    "similar_shots": [{"files": [f.path for f in shots],
                                       "reason": str(getattr(shots, "reason", ""))} for shots in self.similar]}
            target.write_text(json.dumps(data, indent=2), encoding="utf-8")
        else:
            with target.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["group", "kind", "path", "keeper", "tier", "reason", "score", "size", "width",
                                 "height"])
                for n, g in enumerate(self.groups, 1):
                    for m in g.members:
                        writer.writerow([n, "duplicates", m.info.path, g.keeper.path, m.tier, m.reason,
                                         f"{m.score:.4f}", m.info.size, m.info.width, m.info.height])
                for n, shots in enumerate(self.similar, 1):
                    files = list(shots)
                    for f in files:
                        writer.writerow([f"S{n}", "similar shots", f.path, files[0].path, "similar",
                                         str(getattr(shots, "reason", "")), "", f.size, f.width, f.height])
        self.summary.setText(f"Exported to {target}.")
        return target
