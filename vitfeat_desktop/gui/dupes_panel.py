"""The Duplicates view: groups with their keeper, each copy's tier and reason, and safe, undoable clean-up.

The evidence comes from the core in stages (``core/dupes/review.py``): the hash-level groups within seconds (even while
the folder is still being indexed), then the model's groups, then the pixel-verified answer. Each stage refills
the tree *in place*: the highlighted rows, the checked boxes and the row at the top of the view stay where the
user left them. Moving the sensitivity slider only regroups (``finder.groups(s)``, no file is read).
"Similar shots" (bursts, same scene) are a separate list with the core's reason per set and never pre-selected
for removal. Nothing is deleted: checked files go to the system trash or to the quarantine through the core's
journal (after one confirmation with the count and size), and Undo puts them back.

The panel hears the :class:`Session` (library opened, scan ticks) and asks :class:`FileActions` to move files; it
never reaches into the window. The rows themselves are built by ``dupes_rows.DuplicatesTree``.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSlider,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import settings
from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.export import write_export
from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.records import DuplicateGroup, FileInfo, SimilarSet
from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
from vitfeat_desktop.core.progress import Progress
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.dupes_rows import DuplicatesTree, KeeperRole, PathRole, SizeRole
from vitfeat_desktop.gui.file_actions import FileActions
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.marks_dialog import MarksDialog
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.text import for_window, plural
from vitfeat_desktop.gui.thumbs import ThumbnailLoader

STAGE_WORDS = {
    "hashes": "Step 1 of 4: exact, same-pixel and hash-level copies",
    "calibrating": "Step 2 of 4: tuning the model to this library",
    "embeddings": "Step 3 of 4: crops, borders and edits the model sees",
    "verified": "Step 4 of 4: checking doubtful pairs pixel by pixel",
}
QUICK_WHILE_SCANNING_S = 3.0  # how often the hash-level groups are refreshed while the folder is indexed


class DuplicatesPanel(QWidget):
    """The groups, the sensitivity, and the clean-up commands; it hears the session and asks ``files`` to act."""

    compare_requested = Signal(list)  # the paths to show side by side
    highlighted = Signal(object)  # the first highlighted file (Path), or None: the window's actions and inspector

    def __init__(self, session: Session, files: FileActions, loader: ThumbnailLoader,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.files = files
        self.loader = loader
        self.finder: DuplicateFinder | None = None
        self.stage: str | None = None  # the stage the shown groups come from ("verified" = the final answer)
        self.groups: list[DuplicateGroup] = []
        self.similar: list[SimilarSet] = []
        self._stale = True
        self._last_quick = 0.0
        self._quick_cost = 0.0  # seconds the last hash-level pass took while a scan was running
        self._stage_floor = 0  # progress of stages before this one (index in STAGE_WORDS) is stale
        self._compare_action: QAction | None = None  # the window's Compare, and its file commands (context menu)
        self._file_actions: list[QAction | None] = []
        self.tree = DuplicatesTree(loader)
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
        self.clear_button.clicked.connect(lambda _checked=False: self.tree.check_all(False))
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Show the highlighted group (or rows) side by side, lined up (C)")
        self.compare_button.clicked.connect(lambda _checked=False: self._compare(self.compare_paths()))
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
        self.move_button.clicked.connect(lambda _checked=False: self.files.run("move", self.selected_paths()))
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
        self.action_label.linkActivated.connect(lambda _l: self.files.undo())
        self.action_label.setVisible(False)
        layout.addWidget(self.action_label)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.filled.connect(self._update_buttons)
        self.tree.checks_changed.connect(self._update_summary)
        self.tree.itemChanged.connect(lambda *_: self._update_summary())
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda it, _c: self._compare_group(it))
        layout.addWidget(self.tree, 1)
        self._update_buttons()
        session.library_opened.connect(lambda _opened: self.library_changed())
        session.scan_done.connect(lambda _outcome: self.library_changed())
        session.scan_tick.connect(self.scan_tick)
        files.removed.connect(self.files_removed)
        files.finished.connect(lambda _result, text, undoable: self.action_finished(text, undoable))

    def set_shared_actions(self, compare: QAction, file_actions: list[QAction | None]) -> None:
        """The window's Compare and file commands, offered in the list's context menu (None: a separator)."""
        self._compare_action = compare
        self._file_actions = file_actions

    # -- data ----------------------------------------------------------------------------------------------
    def library_changed(self) -> None:
        """The library (or the reference folders) changed: rebuild the evidence when the view is next used."""
        self._stale = True
        if self.isVisible() and self.session.library is not None:
            self.refresh()

    def refresh(self) -> None:
        """Start the staged search; while the folder is still being indexed, only the hash stage runs (on what
        the catalogue knows so far), and :meth:`scan_tick` repeats it as more files arrive."""
        if self.session.library is None:
            self.summary.setText("Open a folder first.")
            return
        scanning = self.session.runner.is_running("scan")
        if scanning:
            self.summary.setText("Indexing is still running: showing the exact and hash-level copies found so "
                                 "far; the model's groups follow when indexing ends.")
        elif self.finder is None:
            self.summary.setText("Looking for copies…")
        self._last_quick = time.monotonic()
        self._stage_floor = 0
        self.session.runner.submit(jobs.build_duplicates_staged, self.session.library, key="dupes-build",
                               use_model=not scanning, pass_partial=True, on_partial=self._stage_ready,
                               on_progress=self._progress, on_result=self._built, on_error=self._error,
                               on_cancelled=self._hide_progress)
        self._show_stage_progress("hashes", 0, None, "")

    def scan_tick(self) -> None:
        """Called while a scan runs: refresh the hash-level groups every few seconds if the view is open."""
        # never more than a fifth of the time on it, however large the library
        interval = max(QUICK_WHILE_SCANNING_S, 5 * self._quick_cost)
        if (self.isVisible() and self.session.library is not None and not self.session.runner.is_running("dupes-build")
                and time.monotonic() - self._last_quick >= interval):
            self.refresh()

    def _progress(self, rep: Progress) -> None:
        phase = str(rep.phase or "")
        if phase in STAGE_WORDS and list(STAGE_WORDS).index(phase) < self._stage_floor:
            return  # a late report of a stage whose answer is already shown
        self._show_stage_progress(phase, int(rep.done or 0), rep.total, str(rep.message or ""))

    def _show_stage_progress(self, phase: str, done: int, total: int | None, message: str) -> None:
        words = STAGE_WORDS.get(phase, phase.capitalize())
        count = f"{done:,}" + (f" / {int(total):,}" if total else "")
        text = f"{words}…" + (f" {message}" if message else "") + (f" ({count})" if done else "")
        if self.session.runner.is_running("scan"):
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

    def _stage_ready(self, stage: review.Stage) -> None:
        """A stage's finder arrived: regroup with it, keeping the view where the user left it."""
        if not stage.final and stage.name in STAGE_WORDS:
            names = list(STAGE_WORDS)
            following = names[min(len(names) - 1, names.index(stage.name) + 1)]
            self._stage_floor = names.index(following)
            if self.session.runner.is_running("scan"):
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
        if stage.final and not self.session.runner.is_running("scan"):
            self._hide_progress()

    def _built(self, finder: DuplicateFinder) -> None:
        self._quick_cost = time.monotonic() - self._last_quick if self.session.runner.is_running("scan") else 0.0
        if finder is not self.finder:
            self.finder = finder
            self.regroup()
        if not self.session.runner.is_running("scan"):
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
        self.session.runner.submit(jobs.regroup, self.finder, self.sensitivity(), key="dupes-regroup",
                               on_result=self._regrouped, on_error=self._error)

    def _regrouped(self, result: tuple[list[DuplicateGroup], list[SimilarSet]]) -> None:
        self.groups, self.similar = result
        self.show_groups(keep_view=True)

    def show_groups(self, keep_view: bool = False) -> None:
        """Refill the tree from the current groups (see :meth:`DuplicatesTree.fill`)."""
        groups = self.groups if self.mode.currentData() == "dupes" else self.similar
        self.tree.fill(groups, self.finder, keep_view)
        self._update_summary()

    def flush(self) -> None:
        self.tree.flush()

    def _members(self) -> list[QTreeWidgetItem]:
        return self.tree.members()

    def checked_items(self) -> list[QTreeWidgetItem]:
        return self.tree.checked_items()

    def checked_paths(self) -> list[str]:
        return self.tree.checked_paths()

    def selected_paths(self) -> list[Path]:
        """Checked files, else the highlighted rows (what Delete and the context actions act on)."""
        checked = self.checked_paths()
        if checked:
            return [Path(p) for p in checked]
        return [Path(it.data(0, PathRole)) for it in self.tree.selectedItems() if it.data(0, PathRole)]

    def compare_paths(self) -> list[Path]:
        return self.tree.compare_paths()

    def auto_select(self) -> None:
        """Check every removable copy by the core's keeper rules (only in the Duplicates list)."""
        if self.mode.currentData() != "dupes":
            self.summary.setText("Similar shots are different photos; choose which to remove yourself.")
            return
        self.flush()
        self.tree.check_all(True)

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
            text += " · refining…" if self.session.runner.is_running("dupes-build") else ""
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
        sel = [it for it in self.tree.selectedItems() if it.data(0, PathRole)]
        emit(self.highlighted, Path(sel[0].data(0, PathRole)) if sel else None)

    def _compare_group(self, item: QTreeWidgetItem) -> None:
        top = item if item.parent() is None else item.parent()
        paths = [Path(top.child(j).data(0, PathRole)) for j in range(min(4, top.childCount()))]
        if paths:
            self._compare(paths)

    def _compare(self, paths: list[Path]) -> None:
        if paths:
            emit(self.compare_requested, paths)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        if not item.isSelected():  # like a file manager: right-clicking outside the selection selects the row
            self.tree.setCurrentItem(item)
        menu = QMenu(self)
        if self._compare_action is not None:
            menu.addAction(self._compare_action)
        not_dup = menu.addAction("Not a duplicate", self.mark_not_duplicate)
        not_dup.setEnabled(self.not_dup_button.isEnabled())
        menu.addSeparator()
        menu.addAction("Check", lambda: self.tree.check_highlighted(True))
        menu.addAction("Uncheck", lambda: self.tree.check_highlighted(False))
        menu.addSeparator()
        for a in self._file_actions:
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
        self.files.run(action, [Path(it.data(0, PathRole)) for it in items], keepers=keepers or None)

    def action_finished(self, text: str, undoable: bool) -> None:
        """The window's summary of a finished action, with Undo, shown above the list too."""
        self.action_label.setText(text + (' <a href="#undo">Undo</a>' if undoable else ""))
        self.action_label.setVisible(True)

    def files_removed(self, paths: list[Path]) -> None:
        self.tree.remove_paths(paths)
        self._stale = True
        self._update_buttons()

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
        if self.finder is not None and self.finder.marks is not None:
            marks, files = self.finder.marks, self.finder.files
        elif self.session.library is not None:
            marks = NotDuplicateMarks.for_library(self.session.library.folder)
            files = [FileInfo.from_record(r) for r in self.session.library.files(status="ok")]
        else:
            self.summary.setText("Open a folder first.")
            return
        dialog = MarksDialog(marks, files, self)
        dialog.unmarked.connect(self._unmarked)
        dialog.show()
        self.marks_dialog, self.marks_list, self.unmark_button = dialog, dialog.listing, dialog.unmark_button

    def _unmarked(self, count: int) -> None:
        self.summary.setText(f"Unmarked {plural(count, 'pair')}; regrouping…")
        self.regroup()

    def make_keeper(self) -> None:
        """Make the highlighted photo the keeper of its group; the core stores the choice, so it sticks."""
        sel = [it for it in self.tree.selectedItems() if it.data(0, PathRole)]
        if self.finder is None or len(sel) != 1:
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
        target = write_export(path, self.groups, self.similar, sensitivity=self.sensitivity())
        self.summary.setText(f"Exported to {target}.")
        return target
