"""Compare: two or more photos side by side, lined up, zoomed and panned together, with the facts that decide a
keeper.

Deciding which of three near-identical shots to keep means looking at the same eye at 200 % in each, even when
one is a 2x upscale, a crop, a turned or a mirrored copy. Every pane is a ``QGraphicsView`` whose scene is in
the *first* photo's pixel coordinates: each other photo's item is placed there through the pair's alignment
(``core/dupes/align.py``: a similarity fitted to matched local features, mirror included), or, while that is computed
or when nothing matches, scaled to the first photo's frame. All views then share one zoom factor and one scene
centre, so they show the same part of the picture at the same displayed size. "Difference" shows what changed
(``review.difference_image``), "Flicker" alternates the first two photos in one pane. Images are decoded on a
worker at full size through the core's decoder (EXIF orientation, HEIC, RAW previews), and so are alignments.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QImage,
    QPainter,
    QPixmap,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
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

from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.align import Alignment, align_pair
from vitfeat_desktop.core.images import is_image_path, open_image_with_info
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.qtcompat import emit


@dataclass
class PhotoFacts:
    """What the caption under a pane says about its photo: the facts that decide a keeper."""

    path: str
    size: int | None = None  # bytes
    mtime: float | None = None
    format: str | None = None
    capture_date: str | None = None  # ISO 8601 from the EXIF, read by the core (``core/images.py``)
    width: int | None = None  # the decoded, upright pixels shown in the pane
    height: int | None = None


def load_full(path: Path) -> tuple[QImage, PhotoFacts]:
    """Decode ``path`` for display (worker thread) and gather the facts shown under it, from the core's one
    decode and EXIF reading (the same format, date and orientation the catalogue stores)."""
    facts = PhotoFacts(str(path))
    try:
        st = path.stat()
        facts.size, facts.mtime = st.st_size, st.st_mtime
    except OSError:
        pass
    pil, info = open_image_with_info(path)
    facts.format = info.get("format") or path.suffix.lstrip(".").upper()
    facts.capture_date = info.get("capture_date")
    facts.width, facts.height = pil.width, pil.height
    data = pil.tobytes("raw", "RGB")
    return QImage(data, pil.width, pil.height, pil.width * 3, QImage.Format.Format_RGB888).copy(), facts


def describe(facts: PhotoFacts, sep: str = " · ") -> str:
    """Name, pixel size, file size, format and date; ``sep="\n"`` puts the name and the date on lines of their own
    (the captions under narrow compare panes)."""
    parts = []
    if facts.width is not None:
        parts.append(f"{facts.width} × {facts.height} px")
    if facts.size is not None:
        parts.append(human_size(facts.size))
    if facts.format:
        parts.append(facts.format)
    if facts.capture_date:  # "2021-07-04T18:30:05" -> "2021-07-04 18:30", as the duplicates table shows it
        date = facts.capture_date.replace("T", " ", 1)[:16]
    elif facts.mtime:
        date = _dt.datetime.fromtimestamp(facts.mtime).strftime("%Y-%m-%d %H:%M")
    else:
        date = ""
    lines = [Path(facts.path).name, " · ".join(parts), date]
    return sep.join(p for p in lines if p)


def compare_alignment(a: str, b: str) -> Alignment | None:
    """The alignment of file ``b`` onto file ``a`` (worker thread), or None when nothing matches."""
    return align_pair(a, b)


def to_transform(matrix: np.ndarray) -> QTransform:
    """A 2x3 matrix mapping (x, y) -> (m00 x + m01 y + m02, m10 x + m11 y + m12) as Qt's QTransform."""
    m = np.asarray(matrix, dtype=np.float64)
    return QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2])


def image_array(image: QImage) -> np.ndarray:
    """An RGB888 QImage's pixels as an [h, w, 3] uint8 array (a copy)."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()


def array_image(array: np.ndarray) -> QImage:
    h, w = array.shape[:2]
    data = np.ascontiguousarray(array, dtype=np.uint8)
    return QImage(data.tobytes(), w, h, w * 3, QImage.Format.Format_RGB888).copy()


def local_images(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile() and is_image_path(Path(u.toLocalFile()))]


class SyncedView(QGraphicsView):
    """One pane. Its scene is in the first photo's pixel coordinates; ``item`` holds this pane's photo, placed
    through its mapping; ``extra`` shows the difference image or the flickered photo."""

    changed = Signal()  # the user zoomed or panned this view
    dropped = Signal(list)  # image files dropped on the pane

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.extra = QGraphicsPixmapItem()
        self.extra.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.extra.setVisible(False)
        self.scene().addItem(self.extra)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setAcceptDrops(True)
        self.horizontalScrollBar().valueChanged.connect(self._scrolled)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)
        self._syncing = False

    def set_image(self, image: QImage) -> None:
        self.item.setPixmap(QPixmap.fromImage(image))

    def set_mapping(self, transform: QTransform) -> None:
        self.item.setTransform(transform)

    def mapped_rect(self) -> QRectF:
        """Where this pane's photo lies in the shared (first photo's) coordinates."""
        return self.item.mapRectToScene(self.item.boundingRect())

    def scale_factor(self) -> float:
        return self.transform().m11()

    def center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def apply(self, factor: float, center: QPointF) -> None:
        """Show the shared coordinates at ``factor`` screen pixels per first-photo pixel, centred on ``center``."""
        self._syncing = True
        try:
            self.resetTransform()
            self.scale(factor, factor)
            self.centerOn(center)
        finally:
            self._syncing = False

    def set_scale(self, factor: float) -> None:
        self.apply(factor, self.center())

    def fit_factor(self, rect: QRectF) -> float:
        view = self.viewport().rect()
        if rect.width() <= 0 or rect.height() <= 0:
            return 1.0
        return min((view.width() - 4) / rect.width(), (view.height() - 4) / rect.height())

    def wheelEvent(self, event: QWheelEvent) -> None:
        step = 1.25 if event.angleDelta().y() > 0 else 0.8
        self.scale(step, step)
        emit(self.changed)

    def _scrolled(self) -> None:
        if not self._syncing:
            emit(self.changed)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_images(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if local_images(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_images(event)
        if paths:
            event.acceptProposedAction()
            emit(self.dropped, paths)


MODES = (("side", "Side by side"), ("difference", "Difference"), ("flicker", "Flicker"))


class ComparePanel(QWidget):
    """Side-by-side panes; the window fills them through :meth:`set_paths`, :meth:`set_image` and
    :meth:`set_alignment` (each decoded / computed on a worker)."""

    load_requested = Signal(int, str)  # pane index, path: the window runs load_full on a worker
    align_requested = Signal(int, str, str)  # pane index, first path, this pane's path: compare_alignment
    files_dropped = Signal(list)  # image files dropped on a pane: the window compares them

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        bar = QHBoxLayout()
        self.hint = QLabel("Select two or more photos and choose Compare (C), or drop photos here. Scroll to zoom, "
                           "drag to pan: all panes follow, lined up on the first photo.")
        self.hint.setWordWrap(True)
        bar.addWidget(self.hint, 1)
        self.mode = QComboBox()
        for key, text in MODES:
            self.mode.addItem(text, key)
        self.mode.setToolTip("Difference: what changed between the first two photos once lined up (red). "
                             "Flicker: the first two photos alternate in the first pane.")
        self.mode.currentIndexChanged.connect(lambda _i: self._apply_mode())
        bar.addWidget(self.mode)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Fit the photos in their panes")
        self.actual_button = QPushButton("100 %")
        self.actual_button.setToolTip("Show the first photo's actual pixels (the others at the same scale)")
        self.fit_button.clicked.connect(lambda _checked=False: self.fit_all())
        self.actual_button.clicked.connect(lambda _checked=False: self._zoom_all(1.0))
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        layout.addLayout(bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        layout.addWidget(self.splitter, 1)
        self.views: list[SyncedView] = []
        self.captions: list[QLabel] = []
        self.paths: list[Path] = []
        self.images: list[QImage | None] = []
        self.infos: list[PhotoFacts] = []
        self.alignments: list[Alignment | None] = []
        self.aligned: list[bool] = []  # whether each pane is placed by a real alignment (not only by size)
        self._user_zoomed = False
        self._flicker = QTimer(self)
        self._flicker.setInterval(600)
        self._flicker.timeout.connect(self._flick)
        self.setAcceptDrops(True)

    def set_paths(self, paths: list[Path]) -> None:
        for i in reversed(range(self.splitter.count())):
            w = self.splitter.widget(i)
            w.setParent(None)
            w.deleteLater()
        self._flicker.stop()
        n = len(paths)
        self.views, self.captions, self.paths = [], [], list(paths)
        self.images, self.infos = [None] * n, [PhotoFacts(str(p)) for p in paths]
        self.alignments, self.aligned = [None] * n, [False] * n
        self._user_zoomed = False
        for i, path in enumerate(paths):
            box = QWidget()
            v = QVBoxLayout(box)
            v.setContentsMargins(2, 2, 2, 2)
            view = SyncedView()
            view.changed.connect(lambda src=view: self._follow(src))
            view.dropped.connect(lambda ps: emit(self.files_dropped, ps))
            caption = QLabel(f"{path.name} · loading…")
            caption.setWordWrap(True)
            caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            # the same height under every pane (three lines), so the panes line up whatever each caption says
            caption.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            caption.setFixedHeight(5 * caption.fontMetrics().lineSpacing() + 4)
            v.addWidget(view, 1)
            v.addWidget(caption)
            self.splitter.addWidget(box)
            self.views.append(view)
            self.captions.append(caption)
            emit(self.load_requested, i, str(path))
            if i > 0:
                emit(self.align_requested, i, str(paths[0]), str(path))
        if paths:
            self.splitter.setSizes([10_000] * n)  # equal widths (the splitter scales them to fit)
        self._apply_mode()

    def set_image(self, index: int, image: QImage, facts: PhotoFacts) -> None:
        if 0 <= index < len(self.views):
            self.images[index] = image
            self.infos[index] = facts
            self.views[index].set_image(image)
            self._update_mappings()

    def set_alignment(self, index: int, alignment: Alignment | None) -> None:
        if 0 < index < len(self.views):
            self.alignments[index] = alignment
            self._update_mappings()

    def set_error(self, index: int, message: str) -> None:
        if 0 <= index < len(self.captions):
            self.captions[index].setText(f"{self.paths[index].name}: {message}")

    # -- mapping -------------------------------------------------------------------------------------------
    def mapping(self, index: int) -> np.ndarray | None:
        """The 2x3 matrix placing pane ``index``'s photo in the first photo's coordinates (None until both are
        decoded): the alignment when it is trustworthy, else scaled to the first photo's frame."""
        first, image = (self.images[0] if self.images else None), self.images[index]
        if index == 0:
            return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        if first is None or image is None:
            return None
        alignment = self.alignments[index]
        if alignment is not None and review.usable_alignment(alignment):
            return np.asarray(alignment.matrix, dtype=np.float64)
        return review.frame_mapping((first.width(), first.height()), (image.width(), image.height()))

    def _update_mappings(self) -> None:
        for i, view in enumerate(self.views):
            m = self.mapping(i)
            if m is None:
                continue
            view.set_mapping(to_transform(m))
            self.aligned[i] = i == 0 or review.usable_alignment(self.alignments[i])
            if self.images[i] is not None:
                text = describe(self.infos[i], "\n")
                if i > 0 and self.alignments[i] is not None:
                    text += "\n" + review.describe_mapping(self.alignments[i])
                elif i > 0:
                    text += "\nscaled to the first photo's size (lining up…)"
                self.captions[i].setText(text)
                self.captions[i].setToolTip(text)
        rect = self.shared_rect()
        for view in self.views:
            view.scene().setSceneRect(rect)
        self._apply_mode()
        if not self._user_zoomed:
            self.fit_all()

    def shared_rect(self) -> QRectF:
        """The union of every pane's photo in the shared coordinates: every view scrolls over the same area."""
        rect = QRectF()
        for view in self.views:
            if not view.item.pixmap().isNull():
                rect = rect.united(view.mapped_rect())
        return rect

    # -- zoom and pan ----------------------------------------------------------------------------------------
    def fit_all(self) -> None:
        rect = self.shared_rect()
        shown = [v for v in self.views if not v.item.pixmap().isNull()]
        if not shown or rect.isEmpty():
            return
        factor = min(v.fit_factor(rect) for v in self.views)
        for view in self.views:
            view.apply(factor, rect.center())
        self._user_zoomed = False

    def _zoom_all(self, factor: float, source: SyncedView | None = None) -> None:
        center = (source or (self.views[0] if self.views else None))
        if center is None:
            return
        point = center.center()
        for view in self.views:
            if view is not source:
                view.apply(factor, point)
        self._user_zoomed = True

    def _follow(self, source: SyncedView) -> None:
        """The user zoomed or panned ``source``: every other pane shows the same part at the same size."""
        factor, point = source.scale_factor(), source.center()
        for view in self.views:
            if view is not source:
                view.apply(factor, point)
        self._user_zoomed = True

    # -- difference and flicker ------------------------------------------------------------------------------
    def _apply_mode(self) -> None:
        mode = self.mode.currentData()
        self._flicker.stop()
        for view in self.views:
            view.extra.setVisible(False)
            view.item.setVisible(True)
        if len(self.views) < 2 or self.images[0] is None or self.images[1] is None:
            return
        m = self.mapping(1)
        if m is None:
            return
        if mode == "difference":
            diff, factor = review.difference_image(image_array(self.images[0]), image_array(self.images[1]), m)
            view = self.views[1]
            view.extra.setPixmap(QPixmap.fromImage(array_image(diff)))
            view.extra.setTransform(QTransform.fromScale(1.0 / factor, 1.0 / factor))
            view.extra.setVisible(True)
            view.item.setVisible(False)
            self.captions[1].setText("Difference from the first photo\nred: pixels that differ once lined up (×4)"
                                     "\nblue: not covered by this photo")
            self.captions[1].setToolTip(f"{self.paths[1].name} against {self.paths[0].name}")
        elif mode == "flicker":
            view = self.views[0]
            view.extra.setPixmap(QPixmap.fromImage(self.images[1]))
            view.extra.setTransform(to_transform(m))
            self._flicker.start()

    def _flick(self) -> None:
        if not self.views:
            self._flicker.stop()
            return
        view = self.views[0]
        showing_second = view.extra.isVisible()
        view.extra.setVisible(not showing_second)
        view.item.setVisible(showing_second)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """A bigger window fits the photos to the bigger panes, unless the user has zoomed."""
        super().resizeEvent(event)
        if not self._user_zoomed:
            QTimer.singleShot(0, self._refit)

    def _refit(self) -> None:
        if not self._user_zoomed:
            self.fit_all()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_images(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_images(event)
        if paths:
            event.acceptProposedAction()
            emit(self.files_dropped, paths)
