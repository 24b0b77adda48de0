"""The thumbnail grid: a list model of photos, a delegate that paints lazily, and the view that shows them.

The model holds plain records (no pixels), so 20,000 rows cost a few megabytes and sorting is a list sort. The
delegate paints a placeholder until :class:`ThumbnailLoader` has the pixmap, then the model announces the change
for just the rows with that key. The view uses uniform item sizes and batched layout so Qt never measures 20,000
cells.
"""

from __future__ import annotations

import datetime as _dt
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from vitfeat_desktop.core.library.catalog import FileRecord
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.thumbs import ThumbnailLoader, cache_key, scaled

PathRole = Qt.ItemDataRole.UserRole + 1
ItemRole = Qt.ItemDataRole.UserRole + 2
KeyRole = Qt.ItemDataRole.UserRole + 3


@dataclass
class GridItem:
    """One photo as the grid shows it. ``score``/``badge``/``caption`` are set by the similar and duplicate views."""

    path: Path
    size: int = 0
    mtime: float = 0.0
    width: int | None = None
    height: int | None = None
    file_id: int | None = None
    content_hash: str | None = None
    score: float | None = None
    badge: str | None = None  # e.g. "KEEP", "exact", "near"
    caption: str | None = None
    group: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _key: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = cache_key(self.path, self.content_hash)
        return self._key

    @classmethod
    def from_path(cls, path: Path) -> GridItem:
        try:
            st = path.stat()
            return cls(path=path, size=st.st_size, mtime=st.st_mtime)
        except OSError:
            return cls(path=path)

    @classmethod
    def from_record(cls, rec: FileRecord) -> GridItem:
        """Build from the library's catalogue record (only what the grid shows and sorts by)."""
        extra: dict[str, Any] = {}
        if rec.capture_date:
            extra["capture_date"] = rec.capture_date
        if rec.camera:
            extra["camera"] = rec.camera
        if rec.format:
            extra["format"] = rec.format
        return cls(
            path=Path(rec.path),
            size=int(rec.size or 0),
            mtime=float(rec.mtime or 0),
            width=rec.width,
            height=rec.height,
            file_id=rec.id,
            content_hash=rec.content_hash,
            extra=extra,
        )

    def date_value(self) -> float:
        capture = self.extra.get("capture_date")
        if isinstance(capture, (int, float)):
            return float(capture)
        if isinstance(capture, str):
            try:
                return _dt.datetime.fromisoformat(capture.replace(":", "-", 2) if capture[4:5] == ":" else capture
                                                  ).timestamp()
            except ValueError:
                pass
        return self.mtime

    def tooltip(self) -> str:
        lines = [str(self.path)]
        if self.width and self.height:
            lines.append(f"{self.width} × {self.height} px")
        if self.size:
            lines.append(human_size(self.size))
        if self.mtime:
            lines.append(_dt.datetime.fromtimestamp(self.date_value()).strftime("%Y-%m-%d %H:%M"))
        if self.score is not None:
            lines.append(f"similarity {self.score:.3f}" + (f": {self.extra['meaning']}" if self.extra.get("meaning")
                                                           else ""))
        if self.extra.get("copy"):
            lines.append(str(self.extra["copy"]))
        elif self.score is not None:
            lines.append("not a copy of the query by the duplicate check")
        if self.caption:
            lines.append(self.caption)
        return "\n".join(lines)


SORT_KEYS = {
    "name": lambda it: (it.path.name.lower(), str(it.path)),
    "date": lambda it: (it.date_value(), it.path.name.lower()),
    "size": lambda it: (it.size, it.path.name.lower()),
}


class ImageListModel(QAbstractListModel):
    """Photos for a grid. Thumbnails are looked up by the delegate, not stored here."""

    count_changed = Signal(int)

    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self._items: list[GridItem] = []
        self._rows_by_key: dict[str, list[int]] = {}
        loader.ready.connect(self._thumbnail_ready)
        loader.failed.connect(lambda key, _msg: self._thumbnail_ready(key))

    # -- Qt model API --------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.tooltip()
        if role == PathRole:
            return str(item.path)
        if role == ItemRole:
            return item
        if role == KeyRole:
            return item.key
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    # -- content -------------------------------------------------------------------------------------------
    def set_items(self, items: Iterable[GridItem]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self._reindex()
        self.endResetModel()
        emit(self.count_changed, len(self._items))

    def add_new(self, items: Iterable[GridItem]) -> int:
        """Append the items whose path is not shown yet (the grid fills while a scan runs, keeping the scroll)."""
        known = {it.path for it in self._items}
        new = [it for it in items if it.path not in known]
        if new:
            first = len(self._items)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._items.extend(new)
            for row, item in enumerate(new, first):
                self._rows_by_key.setdefault(item.key, []).append(row)
            self.endInsertRows()
            emit(self.count_changed, len(self._items))
        return len(new)

    def items(self) -> list[GridItem]:
        return list(self._items)

    def item(self, row: int) -> GridItem:
        return self._items[row]

    def remove_paths(self, paths: Iterable[Path]) -> None:
        gone = {Path(p) for p in paths}
        if gone:
            self.set_items(it for it in self._items if it.path not in gone)

    def sort_by(self, key: str, descending: bool = False) -> None:
        fn = SORT_KEYS[key]
        self._reorder(lambda: self._items.sort(key=fn, reverse=descending))

    def order_by(self, order: Sequence[int]) -> None:
        """Reorder rows by a permutation of file ids (for the "visual similarity" ordering)."""
        rank = {fid: i for i, fid in enumerate(order)}
        self._reorder(lambda: self._items.sort(key=lambda it: rank.get(it.file_id, len(rank))))  # type: ignore[arg-type]

    def _reorder(self, sort: Callable[[], None]) -> None:
        """Reorder rows in place, moving the persistent indexes with their photos.

        Without this the selection and the current cell stay at their row numbers and silently point at other
        photos after a sort (and Delete would then act on a photo the user never picked).
        """
        emit(self.layoutAboutToBeChanged)
        persistent = self.persistentIndexList()
        held = [self._items[i.row()] if 0 <= i.row() < len(self._items) else None for i in persistent]
        sort()
        self._reindex()
        row_of = {id(item): row for row, item in enumerate(self._items)}
        self.changePersistentIndexList(
            persistent, [self.index(row_of[id(it)]) if it is not None else QModelIndex() for it in held])
        emit(self.layoutChanged)

    def _reindex(self) -> None:
        self._rows_by_key = {}
        for row, item in enumerate(self._items):
            self._rows_by_key.setdefault(item.key, []).append(row)

    def _thumbnail_ready(self, key: str) -> None:
        for row in self._rows_by_key.get(key, ()):
            idx = self.index(row)
            emit(self.dataChanged, idx, idx, [Qt.ItemDataRole.DecorationRole])

    def row_of(self, path: Path) -> int | None:
        for row, item in enumerate(self._items):
            if item.path == path:
                return row
        return None

    def with_items(self, items: Iterable[GridItem]) -> list[GridItem]:
        return [replace(it) for it in items]


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a thumbnail (or a placeholder), the file name, and an optional score or badge."""

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.side = 160
        # Pixmaps already scaled to the cell, so a repaint is a plain blit: smooth scaling 20 thumbnails on
        # every scroll step costs tens of milliseconds of GUI-thread time.
        self._scaled: OrderedDict[str, QPixmap] = OrderedDict()

    def set_side(self, side: int) -> None:
        if side != self.side:
            self._scaled.clear()
        self.side = side

    def _cell_pixmap(self, key: str, path: Path) -> QPixmap | None:
        pm = self._scaled.get(key)
        if pm is not None:
            self._scaled.move_to_end(key)
            return pm
        full = self.loader.pixmap(key, path)
        if full is None or full.isNull():
            return None
        pm = scaled(full, self.side)
        self._scaled[key] = pm
        while len(self._scaled) > 600:
            self._scaled.popitem(last=False)
        return pm

    def cell_size(self, font: QFont) -> QSize:
        lines = 2
        return QSize(self.side + 12, self.side + 10 + lines * QFontMetrics(font).height())

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return self.cell_size(option.font)  # type: ignore[attr-defined]

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        item: GridItem | None = index.data(ItemRole)
        if item is None:
            return
        rect: QRect = option.rect  # type: ignore[attr-defined]
        palette: QPalette = option.palette  # type: ignore[attr-defined]
        state = option.state  # type: ignore[attr-defined]
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        selected = bool(state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect.adjusted(2, 2, -2, -2), palette.color(QPalette.ColorRole.Highlight))
        elif state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(rect.adjusted(2, 2, -2, -2), palette.color(QPalette.ColorRole.AlternateBase))
        thumb_rect = QRect(rect.x() + 6, rect.y() + 6, self.side, self.side)
        pm = self._cell_pixmap(item.key, item.path)
        if pm is not None and not pm.isNull():
            w, h = pm.width(), pm.height()
            s = min(self.side / max(1, w), self.side / max(1, h))
            tw, th = max(1, int(w * s)), max(1, int(h * s))
            target = QRect(thumb_rect.x() + (self.side - tw) // 2, thumb_rect.y() + (self.side - th) // 2, tw, th)
            painter.drawPixmap(target, pm)
        else:
            painter.fillRect(thumb_rect.adjusted(8, 8, -8, -8), palette.color(QPalette.ColorRole.Midlight))
            err = self.loader.error(item.key)
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(thumb_rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "cannot read" if err else "…")
        text_color = palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        fm = QFontMetrics(option.font)  # type: ignore[attr-defined]
        line_h = fm.height()
        text_rect = QRect(rect.x() + 4, thumb_rect.bottom() + 3, rect.width() - 8, line_h)
        painter.setPen(text_color)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter,
                         fm.elidedText(item.name, Qt.TextElideMode.ElideMiddle, text_rect.width()))
        second = None
        if item.score is not None:
            second = f"{item.score:.3f}" + (f" · {item.caption}" if item.caption else "")
        elif item.caption:
            second = item.caption
        if second:
            text_rect2 = text_rect.translated(0, line_h)
            painter.setPen(palette.color(QPalette.ColorRole.HighlightedText if selected
                                         else QPalette.ColorRole.PlaceholderText))
            painter.drawText(text_rect2, Qt.AlignmentFlag.AlignHCenter,
                             fm.elidedText(second, Qt.TextElideMode.ElideRight, text_rect2.width()))
        if item.badge:
            self._badge(painter, thumb_rect, item.badge, palette)
        painter.restore()

    def _badge(self, painter: QPainter, thumb_rect: QRect, text: str, palette: QPalette) -> None:
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        fm = QFontMetrics(font)
        w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
        r = QRect(thumb_rect.x() + 2, thumb_rect.y() + 2, w, h)
        color = QColor("#2e7d32") if text.upper().startswith("KEEP") else QColor("#c62828")
        painter.setPen(QPen(Qt.PenStyle.NoPen))
        painter.setBrush(color)
        painter.drawRoundedRect(r, 4, 4)
        painter.setPen(QColor("white"))
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, text)


class ImageGrid(QListView):
    """A zoomable icon grid over an :class:`ImageListModel`."""

    def __init__(self, model: ImageListModel, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.delegate = ThumbnailDelegate(loader, self)
        self.setModel(model)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(500)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setMouseTracking(True)
        self.setSpacing(2)
        self.setWordWrap(False)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setDragEnabled(False)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.set_thumb_side(160)

    def grid_model(self) -> ImageListModel:
        model = self.model()
        assert isinstance(model, ImageListModel)
        return model

    def set_thumb_side(self, side: int) -> None:
        self.delegate.set_side(int(side))
        self.setGridSize(self.delegate.cell_size(self.font()))
        self.verticalScrollBar().setSingleStep(max(20, side // 4))
        self.scheduleDelayedItemsLayout()
        self.viewport().update()

    def selected_items(self) -> list[GridItem]:
        model = self.grid_model()
        rows = sorted({i.row() for i in self.selectionModel().selectedIndexes()})
        return [model.item(r) for r in rows]

    def current_item(self) -> GridItem | None:
        idx = self.currentIndex()
        return self.grid_model().item(idx.row()) if idx.isValid() else None


def human_size(n: float) -> str:
    """Decimal units, exactly as the CLI prints them (a model is "113.0 MB" in both, as on the hub's page)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
