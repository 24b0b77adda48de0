"""Compare: two or more photos side by side, zoomed and panned together, with the facts that decide a keeper.

Deciding which of three near-identical shots to keep means looking at the same eye at 200 % in each. Every pane
is a ``QGraphicsView``; zooming (wheel, +/-, "Fit", "100 %") and panning in one applies the same relative
transform and scroll position to the others. Images are decoded on a worker at full size (EXIF-rotated by the
core), so the window never waits for a 40-megapixel decode.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.qtcompat import emit


def load_full(path: Path) -> tuple[QImage, dict[str, Any]]:
    """Decode ``path`` for display (worker thread) and gather the facts shown under it."""
    from PIL import Image

    info: dict[str, Any] = {"path": str(path)}
    try:
        st = path.stat()
        info["size"] = st.st_size
        info["mtime"] = st.st_mtime
    except OSError:
        pass
    try:
        with Image.open(path) as raw:
            info["format"] = raw.format
            exif = raw.getexif()
            date = exif.get(36867) or exif.get(306)
            if date:
                info["date"] = str(date)
    except Exception:  # HEIC/RAW without a plugin: the core decoder below still gives the pixels
        info.setdefault("format", path.suffix.lstrip(".").upper())
    pil = open_image(path)
    info["width"], info["height"] = pil.width, pil.height
    data = pil.tobytes("raw", "RGB")
    return QImage(data, pil.width, pil.height, pil.width * 3, QImage.Format.Format_RGB888).copy(), info


def describe(info: dict[str, Any]) -> str:
    parts = [Path(info.get("path", "")).name]
    if "width" in info:
        parts.append(f"{info['width']} × {info['height']} px")
    if "size" in info:
        parts.append(human_size(info["size"]))
    if info.get("format"):
        parts.append(str(info["format"]))
    if info.get("date"):
        parts.append(str(info["date"]))
    elif info.get("mtime"):
        parts.append(_dt.datetime.fromtimestamp(info["mtime"]).strftime("%Y-%m-%d %H:%M"))
    return " · ".join(parts)


class SyncedView(QGraphicsView):
    """A zoomable view that reports its zoom and scroll so the compare panel can mirror them."""

    zoomed = Signal(float)
    scrolled = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.horizontalScrollBar().valueChanged.connect(self._emit_scroll)
        self.verticalScrollBar().valueChanged.connect(self._emit_scroll)
        self._syncing = False

    def set_image(self, image: QImage) -> None:
        self.item.setPixmap(QPixmap.fromImage(image))
        self.scene().setSceneRect(QRectF(self.item.pixmap().rect()))

    def scale_factor(self) -> float:
        return self.transform().m11()

    def set_scale(self, factor: float) -> None:
        self._syncing = True
        try:
            self.resetTransform()
            self.scale(factor, factor)
        finally:
            self._syncing = False

    def fit(self) -> float:
        if self.item.pixmap().isNull():
            return 1.0
        self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
        return self.scale_factor()

    def wheelEvent(self, event: QWheelEvent) -> None:
        step = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.scale(step, step)
        emit(self.zoomed, self.scale_factor())

    def _emit_scroll(self) -> None:
        if self._syncing:
            return
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        fx = h.value() / h.maximum() if h.maximum() else 0.0
        fy = v.value() / v.maximum() if v.maximum() else 0.0
        emit(self.scrolled, fx, fy)

    def set_scroll(self, fx: float, fy: float) -> None:
        self._syncing = True
        try:
            h, v = self.horizontalScrollBar(), self.verticalScrollBar()
            h.setValue(round(fx * h.maximum()))
            v.setValue(round(fy * v.maximum()))
        finally:
            self._syncing = False


class ComparePanel(QWidget):
    """Side-by-side panes; the window fills them through :meth:`set_paths` + :meth:`set_image`."""

    load_requested = Signal(int, str)  # pane index, path: the window runs load_full on a worker

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.hint = QLabel("Select two or more photos and choose Compare (C). Scroll to zoom, drag to pan: "
                           "all panes follow.")
        self.hint.setWordWrap(True)
        bar.addWidget(self.hint, 1)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Fit each photo in its pane")
        self.actual_button = QPushButton("100 %")
        self.actual_button.setToolTip("Show actual pixels")
        self.fit_button.clicked.connect(self.fit_all)
        self.actual_button.clicked.connect(lambda: self._zoom_all(1.0))
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        layout.addLayout(bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        layout.addWidget(self.splitter, 1)
        self.views: list[SyncedView] = []
        self.captions: list[QLabel] = []
        self.paths: list[Path] = []

    def set_paths(self, paths: list[Path]) -> None:
        for i in reversed(range(self.splitter.count())):
            w = self.splitter.widget(i)
            w.setParent(None)
            w.deleteLater()
        self.views, self.captions, self.paths = [], [], list(paths)
        for i, path in enumerate(paths):
            box = QWidget()
            v = QVBoxLayout(box)
            v.setContentsMargins(2, 2, 2, 2)
            view = SyncedView()
            view.zoomed.connect(lambda f, src=view: self._zoom_all(f, src))
            view.scrolled.connect(lambda fx, fy, src=view: self._scroll_all(fx, fy, src))
            caption = QLabel(f"{path.name} · loading…")
            caption.setWordWrap(True)
            caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            # the same height under every pane (three lines), so the panes line up whatever each caption says
            caption.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            caption.setFixedHeight(3 * caption.fontMetrics().lineSpacing() + 4)
            v.addWidget(view, 1)
            v.addWidget(caption)
            self.splitter.addWidget(box)
            self.views.append(view)
            self.captions.append(caption)
            emit(self.load_requested, i, str(path))
        if paths:
            self.splitter.setSizes([10_000] * len(paths))  # equal widths (the splitter scales them to fit)

    def set_image(self, index: int, image: QImage, info: dict[str, Any]) -> None:
        if 0 <= index < len(self.views):
            self.views[index].set_image(image)
            self.captions[index].setText(describe(info))
            self.fit_all()

    def set_error(self, index: int, message: str) -> None:
        if 0 <= index < len(self.captions):
            self.captions[index].setText(f"{self.paths[index].name}: {message}")

    def fit_all(self) -> None:
        scales = [v.fit() for v in self.views if not v.item.pixmap().isNull()]
        if scales:  # the smallest fit makes every photo fully visible at one shared scale
            self._zoom_all(min(scales))

    def _zoom_all(self, factor: float, source: SyncedView | None = None) -> None:
        for view in self.views:
            if view is not source:
                view.set_scale(factor)

    def _scroll_all(self, fx: float, fy: float, source: SyncedView) -> None:
        for view in self.views:
            if view is not source:
                view.set_scroll(fx, fy)
