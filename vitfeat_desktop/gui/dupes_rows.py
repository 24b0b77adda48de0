"""The Duplicates view's tree: one header row per group, one row per file (thumbnail, folder, tier, reason, date,
size), filled a batch per event-loop turn and refilled *in place* when a new stage or sensitivity arrives.

Split from the panel (``dupes_panel.py``) so the rows, their roles and the view-state bookkeeping (highlighted
rows, checked boxes, the row at the top) can be read apart from the buttons and jobs around them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem

from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.records import DuplicateGroup, FileInfo, SimilarSet
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.text import plural
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
HeaderKindRole = Qt.ItemDataRole.UserRole + 4
ICON_SIDE = 56
ROW_HEIGHT = ICON_SIDE + 12  # room for four lines of a wrapped reason beside the thumbnail
# Rows are as tall as a thumbnail (three lines of text), so Taken (date / time) and Size (pixels / bytes) take two
# lines each: that leaves the width to the names, folders and reasons, which is what tells files apart.
COLUMNS = ("Photo", "Folder", "Kind", "Why", "Taken", "Size")
COL_NAME, COL_FOLDER, COL_KIND, COL_WHY, COL_TAKEN, COL_SIZE = range(len(COLUMNS))


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


def taken_text(info: FileInfo) -> tuple[str, str]:
    """(cell text, tooltip) for the Taken column: the EXIF capture date, else the file's modification date."""
    capture = info.capture_date
    if capture:
        text = str(capture).strip()
        if text[4:5] == ":" and text[7:8] == ":":  # EXIF "2021:07:04 18:30:05"
            text = text[:10].replace(":", "-") + text[10:]
        text = text.replace("T", " ", 1)[:16]  # ISO "2021-07-04T18:30:05" -> "2021-07-04 18:30"
        return text.replace(" ", "\n", 1), f"taken {capture} (from the file's EXIF data)"
    mtime = float(info.mtime or 0)
    if mtime > 0:
        stamp = _dt.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")
        return stamp.replace(" ", "\n"), f"no date taken in the file; last modified {stamp}"
    return "", "no date known"


class DuplicatesTree(QTreeWidget):
    """The groups as a tree; ``filled`` says the rows (or the restored view) are complete."""

    filled = Signal()  # every row is in (or the saved view is restored): the panel's buttons may change
    checks_changed = Signal()  # check boxes changed by a command (item signals are blocked meanwhile)

    def __init__(self, loader: ThumbnailLoader) -> None:
        super().__init__()
        self.loader = loader
        self.finder: DuplicateFinder | None = None
        self._items_by_key: dict[str, list[QTreeWidgetItem]] = {}
        self._pending: list[tuple[int, DuplicateGroup | SimilarSet]] = []
        self._checked_before: set[str] = set()
        self._populate_timer = QTimer(self)
        self._populate_timer.setInterval(0)
        self._populate_timer.timeout.connect(self._populate_step)
        loader.ready.connect(self._thumb_ready)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.setUniformRowHeights(False)
        self.setAlternatingRowColors(True)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "n0144…tench.JPEG": both ends tell files apart
        self.setWordWrap(True)  # the Why column wraps inside the (thumbnail-high) row instead of being cut
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header = self.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        # the short columns are as wide as their longest possible text in this font (whatever the platform's)
        fm = self.fontMetrics()
        bold = QFont(self.font())
        bold.setBold(True)
        fmb = QFontMetrics(bold)
        pad = 2 * self.style().pixelMetric(self.style().PixelMetric.PM_FocusFrameHMargin) + 16
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
        self.viewport().installEventFilter(self)

    MIN_WHY = 170

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.viewport() and event.type() == QEvent.Type.Resize:
            self.fit_columns()
        return super().eventFilter(watched, event)

    def fit_columns(self) -> None:
        """Keep every column on screen: when the view is narrower than the natural widths, the Photo and Folder
        columns (elided in the middle, full path in the tooltip) shrink first, so Why, Size and Pixels stay."""
        header = self.header()
        width = self.viewport().width()
        fixed = sum(w for col, w in self._natural.items() if col not in (COL_NAME, COL_FOLDER))
        room = width - fixed - self.MIN_WHY
        name, folder = self._natural[COL_NAME], self._natural[COL_FOLDER]
        fm = self.fontMetrics()
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
        top = self.itemAt(QPoint(2, 2))
        return {
            "selected": {self._identity(it) for it in self.selectedItems()} - {None},
            "current": self._identity(self.currentItem()),
            "anchor": self._identity(top),
            "anchor_y": self.visualItemRect(top).top() if top is not None else 0,
            "scroll": self.verticalScrollBar().value(),
        }

    def _find(self, identity: tuple[str, str] | None) -> QTreeWidgetItem | None:
        if identity is None:
            return None
        kind, path = identity
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, PathRole) == path:
                    return top.child(j) if kind == "file" else top
        return None

    def _apply_view_state(self, state: dict[str, Any]) -> None:
        self.blockSignals(True)
        try:
            current = self._find(state["current"])
            if current is not None:
                self.setCurrentItem(current, 0, self.selectionModel().SelectionFlag.NoUpdate)
            for identity in state["selected"]:
                item = self._find(identity)
                if item is not None:
                    item.setSelected(True)
        finally:
            self.blockSignals(False)
        anchor = self._find(state["anchor"])
        bar = self.verticalScrollBar()
        if anchor is not None:
            self.scrollToItem(anchor, QAbstractItemView.ScrollHint.PositionAtTop)
            bar.setValue(bar.value() + self.visualItemRect(anchor).top() - int(state["anchor_y"]))
        else:
            bar.setValue(int(state["scroll"]))
        self.filled.emit()

    def fill(self, groups: list[DuplicateGroup] | list[SimilarSet], finder: DuplicateFinder | None,
             keep_view: bool = False) -> None:
        """Refill the tree with ``groups`` (of duplicates or of similar shots). Groups are added a batch per
        event-loop turn, so thousands of groups never freeze the window; anything that needs every row
        (auto-select, actions) calls :meth:`flush` first.

        With ``keep_view`` (a new stage or sensitivity), the highlighted rows, the current row and the row at the
        top of the view are restored once the rows they need are in, so refining never moves what the user sees.
        """
        state = self._view_state() if keep_view and self.topLevelItemCount() else None
        # rows not added yet keep the state they had in the previous fill
        self._checked_before = set(self.checked_paths()) | (self._checked_before if self._pending else set())
        self._populate_timer.stop()
        self.setUpdatesEnabled(False)
        try:
            self.clear()
            self._items_by_key.clear()
            self.finder = finder
            self._pending = [(n, g) for n, g in enumerate(groups, 1)]
            self._pending.reverse()
            if state is not None:
                self.flush()  # the rows the saved view refers to must exist before it is restored
                self._apply_view_state(state)
            else:
                self._populate_step()
        finally:
            self.setUpdatesEnabled(True)
        if self._pending:
            self._populate_timer.start()

    def flush(self) -> None:
        while self._pending:
            self._populate_step(batch=10_000)
        self._populate_timer.stop()

    def _populate_step(self, batch: int = 10) -> None:
        self.blockSignals(True)
        checked = self._checked_before
        for _ in range(min(batch, len(self._pending))):
            n, group = self._pending.pop()
            if isinstance(group, DuplicateGroup):
                self._add_dupe_group(n, group, checked)
            else:
                self._add_similar_group(n, group, checked)
        self.blockSignals(False)
        if not self._pending:
            self._populate_timer.stop()
            self.filled.emit()

    def _header(self, title: str, kind: str, why: str) -> QTreeWidgetItem:
        """A group's header row: one line across all columns ("Group 3: 2 files · Near-duplicate: the same
        picture re-saved, ..."), so the explanation is never squeezed into the Why column of a one-line row."""
        text = f"{title} · {kind}" + (f": {why}" if why else "")
        top = QTreeWidgetItem([text] + [""] * (len(COLUMNS) - 1))
        top.setData(0, HeaderKindRole, kind)
        top.setToolTip(0, text)
        self._bold(top)
        self.addTopLevelItem(top)
        top.setFirstColumnSpanned(True)
        return top

    def _add_dupe_group(self, n: int, group: DuplicateGroup, checked: set[str]) -> None:
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

    def _file_item(self, info: FileInfo, kind: str, why: str) -> QTreeWidgetItem:
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
        if not info.capture_date:
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
            self.blockSignals(True)
            icon = square_icon(pm)
            for item in items:
                with contextlib.suppress(RuntimeError):  # a row Qt has already deleted (tree refilled)
                    item.setIcon(0, icon)
            self.blockSignals(False)

    @staticmethod
    def _bold(item: QTreeWidgetItem) -> None:
        if item.parent() is None:  # group headers are never acted on
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
        font = QFont(item.font(0))
        font.setBold(True)
        item.setFont(0, font)
        item.setFont(COL_KIND, font)

    def members(self) -> list[QTreeWidgetItem]:
        out: list[QTreeWidgetItem] = []
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            out.extend(top.child(j) for j in range(top.childCount()))
        return out

    def checked_items(self) -> list[QTreeWidgetItem]:
        return [it for it in self.members()
                if it.flags() & Qt.ItemFlag.ItemIsUserCheckable and it.checkState(0) == Qt.CheckState.Checked]

    def checked_paths(self) -> list[str]:
        return [it.data(0, PathRole) for it in self.checked_items()] if self.topLevelItemCount() else []


    def compare_paths(self) -> list[Path]:
        """What Compare (C, the toolbar, the context menu) shows: a highlighted group header is the whole group;
        one highlighted file is shown beside its keeper; several highlighted files are shown together."""
        current = self.currentItem()
        selected = self.selectedItems() or ([current] if current is not None else [])
        headers = [it for it in selected if it.parent() is None and it.childCount()]
        if headers:
            top = headers[0]
            return [Path(top.child(j).data(0, PathRole)) for j in range(min(4, top.childCount()))]
        files = [it for it in selected if it.data(0, PathRole)]
        if len(files) == 1:
            path, keeper = files[0].data(0, PathRole), files[0].data(0, KeeperRole)
            return [Path(keeper), Path(path)] if keeper and keeper != path else [Path(path)]
        return [Path(it.data(0, PathRole)) for it in files[:4]]

    def check_all(self, on: bool) -> None:
        self.blockSignals(True)
        for it in self.members():
            if it.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.blockSignals(False)
        self.checks_changed.emit()

    def check_highlighted(self, on: bool) -> None:
        self.blockSignals(True)
        for it in self.selectedItems():
            if it.flags() & Qt.ItemFlag.ItemIsUserCheckable:
                it.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.blockSignals(False)
        self.checks_changed.emit()

    def remove_paths(self, paths: list[Path]) -> None:
        """Drop the rows of files that were moved away (and groups left with one file)."""
        gone = {str(p) for p in paths}
        for key in list(self._items_by_key):  # never touch a removed row when its thumbnail arrives later
            kept = [it for it in self._items_by_key[key] if it.data(0, PathRole) not in gone]
            if kept:
                self._items_by_key[key] = kept
            else:
                del self._items_by_key[key]
        self._pending = [p for p in self._pending if not self._group_touches(p[1], gone)]
        self.blockSignals(True)
        for it in self.members():
            if it.data(0, PathRole) in gone:
                it.parent().removeChild(it)
        for i in reversed(range(self.topLevelItemCount())):
            top = self.topLevelItem(i)
            if top.childCount() < 2:
                for j in range(top.childCount()):
                    path = top.child(j).data(0, PathRole)
                    for key in list(self._items_by_key):
                        self._items_by_key[key] = [it for it in self._items_by_key[key]
                                                   if it.data(0, PathRole) != path]
                self.takeTopLevelItem(i)
        self.blockSignals(False)

    @staticmethod
    def _group_touches(group: DuplicateGroup | SimilarSet, gone: set[str]) -> bool:
        paths = [m.info.path for m in group.members] if isinstance(group, DuplicateGroup) else [f.path for f in group]
        return any(p in gone for p in paths)
