"""The Duplicates view: groups with their keeper, each copy's tier and reason, and safe, undoable clean-up.

The evidence is collected once per library by the core's ``DuplicateFinder`` (on a worker); moving the
sensitivity slider only regroups (``finder.groups(s)``, no file is read), so the view follows the slider live.
"Similar shots" (bursts, same scene) are a separate list and never pre-selected for removal. Nothing is deleted:
checked files go to the system trash or to the quarantine through the core's journal, and Undo puts them back.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop import config
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.thumbs import ThumbnailLoader, cache_key

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
ICON_SIDE = 56


class DuplicatesPanel(QWidget):
    def __init__(self, window: Any, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.win = window
        self.loader = loader
        self.finder: Any = None
        self.groups: list[Any] = []
        self.similar: list[list[Any]] = []
        self._stale = True
        self._items_by_key: dict[str, list[QTreeWidgetItem]] = {}
        self._pending: list[tuple[str, int, Any]] = []
        self._checked_before: set[str] = set()
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
        stored = config.load_settings().get(jobs.SETTING_SENSITIVITY, 0.5)
        self.slider.setValue(round(100 * float(stored)) if isinstance(stored, (int, float)) else 50)
        self.slider.setMinimumWidth(120)
        self.slider.setMaximumWidth(220)
        self.slider.setToolTip("Move right to also group looser copies (stronger edits), left to keep only the most "
                               "certain ones. The middle is tuned for the model.")
        self.slider.valueChanged.connect(lambda _v: self.regroup())
        self.slider.sliderReleased.connect(self._save_sensitivity)
        bar.addWidget(self.slider, 1)
        bar.addWidget(QLabel("loose"))
        bar.addStretch(1)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the groups as CSV or JSON")
        self.export_button.clicked.connect(lambda: self.export())
        bar.addWidget(self.export_button)
        layout.addLayout(bar)
        bar2 = QHBoxLayout()
        self.auto_button = QPushButton("Auto-select")
        self.auto_button.setToolTip("Check every copy except the keeper of each group (reference folders excluded)")
        self.auto_button.clicked.connect(self.auto_select)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Uncheck everything")
        self.clear_button.clicked.connect(lambda: self._check_all(False))
        self.not_dup_button = QPushButton("Not a duplicate")
        self.not_dup_button.setToolTip("The highlighted photo is not a copy of its group's keeper: never group them "
                                       "again")
        self.not_dup_button.clicked.connect(self.mark_not_duplicate)
        self.keep_button = QPushButton("Keep this one")
        self.keep_button.setToolTip("Make the highlighted photo the keeper of its group (remembered for this "
                                    "library)")
        self.keep_button.clicked.connect(self.make_keeper)
        self.trash_button = QPushButton("Trash")
        self.trash_button.setToolTip("Move the checked photos to the system trash (Undo puts them back)")
        self.trash_button.clicked.connect(lambda: self.act("trash"))
        self.quarantine_button = QPushButton("Quarantine")
        self.quarantine_button.setToolTip("Move the checked copies to vitfeat's quarantine folder (Undo puts them "
                                          "back)")
        self.quarantine_button.clicked.connect(lambda: self.act("quarantine"))
        self.move_button = QPushButton("Move to folder…")
        self.move_button.setToolTip("Organize: move the checked photos (e.g. a set of similar shots) into a folder "
                                    "you choose; undoable")
        self.move_button.clicked.connect(lambda: self.win.file_action("move", self.selected_paths()))
        for w in (self.auto_button, self.clear_button, self.not_dup_button, self.keep_button):
            bar2.addWidget(w)
        bar2.addStretch(1)
        bar2.addWidget(self.move_button)
        bar2.addWidget(self.trash_button)
        bar2.addWidget(self.quarantine_button)
        layout.addLayout(bar2)
        self.summary = QLabel("Open a folder, then choose Find Duplicates (Ctrl+D).")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(5)
        self.tree.setHeaderLabels(["Photo", "Kind", "Why", "Size", "Pixels"])
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setIconSize(self.tree.iconSize().__class__(ICON_SIDE, ICON_SIDE))
        self.tree.setUniformRowHeights(False)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(0, 260)
        header.resizeSection(1, 110)
        header.resizeSection(3, 70)
        header.resizeSection(4, 80)
        header.setStretchLastSection(False)
        self.tree.itemChanged.connect(lambda *_: self._update_summary())
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda it, _c: self._compare_group(it))
        layout.addWidget(self.tree, 1)
        self._update_buttons()

    # -- data ----------------------------------------------------------------------------------------------
    def library_changed(self) -> None:
        """The library (or the reference folders) changed: rebuild the evidence when the view is next used."""
        self._stale = True
        if self.isVisible() and self.win.library is not None:
            self.refresh()

    def refresh(self) -> None:
        if self.win.library is None:
            self.summary.setText("Open a folder first.")
            return
        if self.win.runner.is_running("scan"):
            self.summary.setText("Waiting for indexing to finish…")
            return
        self.summary.setText("Comparing photos…")
        self.win.runner.submit(jobs.build_duplicates, self.win.library, key="dupes-build",
                               on_progress=self._progress, on_result=self._built, on_error=self._error)

    def _progress(self, rep: Any) -> None:
        total = getattr(rep, "total", None)
        done = getattr(rep, "done", 0)
        self.summary.setText(f"Comparing photos… {getattr(rep, 'phase', '')} {done}" + (f"/{total}" if total else ""))

    def _built(self, finder: Any) -> None:
        self.finder = finder
        self._stale = False
        self.regroup()

    def _error(self, message: str) -> None:
        self.summary.setText(f"Cannot find duplicates: {message}")

    def _save_sensitivity(self) -> None:
        config.save_settings({jobs.SETTING_SENSITIVITY: self.sensitivity()})

    def sensitivity(self) -> float:
        return self.slider.value() / 100.0

    def regroup(self) -> None:
        if self.finder is None:
            return
        self.win.runner.submit(jobs.regroup, self.finder, self.sensitivity(), key="dupes-regroup",
                               on_result=self._regrouped, on_error=self._error)

    def _regrouped(self, result: tuple[list[Any], list[list[Any]]]) -> None:
        self.groups, self.similar = result
        self.show_groups()

    # -- tree ----------------------------------------------------------------------------------------------
    def show_groups(self) -> None:
        """Refill the tree. Groups are added a batch per event-loop turn, so thousands of groups never freeze
        the window; anything that needs every row (auto-select, actions) calls :meth:`flush` first."""
        # rows not added yet keep the state they had in the previous fill
        self._checked_before = set(self.checked_paths()) | (self._checked_before if self._pending else set())
        self._populate_timer.stop()
        self.tree.clear()
        self._items_by_key.clear()
        if self.mode.currentData() == "dupes":
            self._pending = [("dupes", n, g) for n, g in enumerate(self.groups, 1)]
        else:
            self._pending = [("similar", n, g) for n, g in enumerate(self.similar, 1)]
        self._pending.reverse()
        self._populate_step()
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

    def _add_dupe_group(self, n: int, group: Any, checked: set[str]) -> None:
        tier = TIER_WORDS.get(group.tier, group.tier)
        top = QTreeWidgetItem([f"Group {n}: {len(group.members)} files", tier, TIER_HELP.get(group.tier, ""), "", ""])
        self._bold(top)
        self.tree.addTopLevelItem(top)
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

    def _add_similar_group(self, n: int, shots: list[Any], checked: set[str]) -> None:
        top = QTreeWidgetItem([f"Similar shots {n}: {len(shots)} photos", "Similar shot", TIER_HELP["similar"], "",
                               ""])
        self._bold(top)
        self.tree.addTopLevelItem(top)
        for i, info in enumerate(shots):
            why = "best of the set by the keeper rules" if i == 0 else "a different photo of the same scene"
            child = self._file_item(info, "Best" if i == 0 else "Similar shot", why)
            child.setData(0, KeeperRole, shots[0].path)
            child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            child.setCheckState(0, Qt.CheckState.Checked if info.path in checked else Qt.CheckState.Unchecked)
            top.addChild(child)
        top.setExpanded(True)

    def _file_item(self, info: Any, kind: str, why: str) -> QTreeWidgetItem:
        path = Path(info.path)
        dims = f"{info.width} × {info.height}" if info.width and info.height else ""
        item = QTreeWidgetItem([path.name, kind, why, human_size(info.size) if info.size else "", dims])
        item.setToolTip(0, str(path))
        item.setToolTip(2, why)
        item.setData(0, PathRole, str(path))
        item.setData(0, SizeRole, int(info.size or 0))
        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)  # only copies become checkable
        key = cache_key(path, info.content_hash)
        pm = self.loader.pixmap(key, path)
        if pm is not None:
            item.setIcon(0, QIcon(pm))
        self._items_by_key.setdefault(key, []).append(item)
        return item

    def _thumb_ready(self, key: str) -> None:
        items = self._items_by_key.get(key)
        if not items:
            return
        pm = self.loader.pixmap(key, Path(items[0].data(0, PathRole)))
        if pm is not None:
            self.tree.blockSignals(True)
            icon = QIcon(pm)
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
        item.setFont(1, font)

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
        """Checked files, else the highlighted rows (what Delete, Compare and the context actions act on)."""
        checked = self.checked_paths()
        if checked:
            return [Path(p) for p in checked]
        return [Path(it.data(0, PathRole)) for it in self.tree.selectedItems() if it.data(0, PathRole)]

    def _check_all(self, on: bool) -> None:
        self.tree.blockSignals(True)
        for it in self._members():
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
            text = (f"{len(self.groups)} groups of duplicates · {removable} copies could go · "
                    f"{len(self.similar)} sets of similar shots (listed separately)")
        else:
            text = f"{len(self.similar)} sets of similar shots · never selected automatically"
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
        self.not_dup_button.setEnabled(bool(sel) and self.mode.currentData() == "dupes")
        self.keep_button.setEnabled(len(sel) == 1 and self.mode.currentData() == "dupes")

    def _selection_changed(self) -> None:
        self._update_buttons()
        sel = [it for it in self.tree.selectedItems() if it.data(0, PathRole)]
        if sel and self.win.inspector_dock.isVisible():
            self.win.inspect(Path(sel[0].data(0, PathRole)))

    def _compare_group(self, item: QTreeWidgetItem) -> None:
        top = item if item.parent() is None else item.parent()
        paths = [Path(top.child(j).data(0, PathRole)) for j in range(min(4, top.childCount()))]
        if paths:
            self.win.compare(paths)

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
        """Record "not a duplicate of its keeper" for each highlighted file, then rebuild the groups."""
        if self.finder is None:
            return
        by_path = {f.path: f for f in self.finder.files}
        marks = self.finder.marks
        count = 0
        for it in self.tree.selectedItems():
            path, keeper = it.data(0, PathRole), it.data(0, KeeperRole)
            if path and keeper and path != keeper and path in by_path and keeper in by_path and marks is not None:
                marks.mark(by_path[path], by_path[keeper])
                count += 1
        if count:
            self.summary.setText(f"Marked {count} photo(s) as not a duplicate; regrouping…")
            self.refresh()

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
                    "similar_shots": [[f.path for f in shots] for shots in self.similar]}
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
                    for f in shots:
                        writer.writerow([f"S{n}", "similar shots", f.path, shots[0].path, "similar", "", "", f.size,
                                         f.width, f.height])
        self.summary.setText(f"Exported to {target}.")
        return target
