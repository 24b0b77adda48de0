"""The Similar view: the query on the left, the most similar photos (with scores and what they mean) on the right.

The search runs on a worker (``jobs.find_similar``); the newest query cancels the previous one. Scores are put in
the library's own terms: how a result ranks among the library's nearest-neighbour pairs, and which results the
duplicate check calls copies of the query.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.dupes_rows import TIER_WORDS
from vitfeat_desktop.gui.grid import GridItem, ImageGrid, ImageListModel
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.text import for_window, plural
from vitfeat_desktop.gui.thumbs import ThumbnailLoader


def result_items(answer: jobs.SimilarAnswer, scale: np.ndarray) -> list[GridItem]:
    """The grid items of a search: score, the "top N %" caption, and the copy badge (tier) where one applies."""
    items = []
    for r in answer.results:
        item = GridItem.from_path(Path(r.path))
        item.score = float(r.score)
        item.file_id = r.file_id
        rank = review.score_rank(scale, item.score)
        meaning = f"closer than {100 * rank:.0f} % of this library's nearest neighbours" if rank is not None else ""
        copy = answer.copies.get(str(r.path))
        if copy is not None:
            item.badge = TIER_WORDS.get(copy[0], copy[0])
            item.extra["copy"] = f"{item.badge} of the query: {copy[1]}"
        # "top 4 %": closer than 96 % of the library's nearest-neighbour pairs (only said of the upper half)
        item.caption = f"top {max(1, round(100 * (1 - rank)))} %" if rank is not None and rank >= 0.5 else None
        item.extra["meaning"] = meaning
        items.append(item)
    return items


def caption(query: Path, answer: jobs.SimilarAnswer, items: list[GridItem], scale: np.ndarray) -> str:
    """What the query's caption says about the results: count, copies of the query, and the score's scale."""
    text = f"{query.name}\n{plural(len(items), 'most similar photo')}, best first."
    copies = sum(1 for it in items if it.badge)
    how = "by the duplicate check" if answer.basis == "verified" else \
        "by the hash-level check (Find Duplicates also finds crops and edits)"
    if copies:
        text += f" {copies} {'is a copy' if copies == 1 else 'are copies'} of the query {how} (badge: tier)."
    elif answer.basis:
        text += f" None is a copy of the query {how}."
    if len(scale):
        text += (f" Score: cosine similarity of the model's features. Here half of the photos' nearest "
                 f"neighbours score above {float(np.median(scale)):.2f} and one in ten above "
                 f"{float(np.quantile(scale, 0.9)):.2f}: a high score alone means a look-alike.")
    else:
        text += " Score: cosine similarity of the model's features (1 = identical features)."
    return text


class SimilarPanel(QWidget):
    """The query on the left, the most similar photos (with scores) on the right."""

    results_ready = Signal(list)  # the GridItems shown
    failed = Signal(str)

    def __init__(self, session: Session, model: ImageListModel, loader: ThumbnailLoader,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = model
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        left = QVBoxLayout()
        self.query_label = QLabel()
        self.query_label.setFixedWidth(220)
        self.query_label.setMinimumHeight(200)
        self.query_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_caption = QLabel("Drop any photo on the window, or choose Find similar (Ctrl+F) on a thumbnail.")
        self.query_caption.setWordWrap(True)
        self.query_caption.setFixedWidth(220)
        left.addWidget(QLabel("<b>Query</b>"))
        left.addWidget(self.query_label)
        left.addWidget(self.query_caption)
        left.addStretch(1)
        layout.addLayout(left)
        self.grid = ImageGrid(model, loader)
        layout.addWidget(self.grid, 1)
        self.query_path: Path | None = None
        self.query_vector: np.ndarray | None = None  # the query's pooled vector (the inspector's heatmap)
        self._score_scale: tuple[Library, np.ndarray] | None = None  # (library, its nearest-neighbour scale)

    def set_query(self, path: Path, image: QImage | None = None) -> None:
        """Show the query; its preview (``image``, decoded on a worker by the core's decoder, so HEIC, AVIF, RAW
        and EXIF-rotated JPEGs look as they do everywhere else) may come later through :meth:`set_preview`."""
        self.query_path = path
        self.query_label.clear()
        self.query_label.setText("…")
        if image is not None:
            self.set_preview(path, image)
        self.query_caption.setText(f"{path.name}\nsearching…")

    def set_preview(self, path: Path, image: QImage) -> None:
        if path != self.query_path:
            return  # a newer query's preview is on its way
        pm = QPixmap.fromImage(image)
        if not pm.isNull():
            pm = pm.scaled(216, 216, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.query_label.setPixmap(pm)

    def search(self, path: Path, finder: DuplicateFinder | None, sensitivity: float) -> None:
        """Query the library (the previous model's while a new one re-indexes) with any image file."""
        self.set_query(path)
        runner = self.session.runner
        runner.submit(jobs.preview_image, path, key="similar-preview", pass_callbacks=False,
                      on_result=lambda img, p=path: self.set_preview(p, img),
                      on_error=lambda msg: self.query_label.setText(for_window(msg)))
        self.model.set_items([])
        lib = self.session.query_library()
        scale = self._score_scale[1] if self._score_scale is not None and self._score_scale[0] is lib else None
        runner.submit(jobs.find_similar, lib, path, key="similar", finder=finder, sensitivity=sensitivity,
                      scale=scale, on_result=lambda ans, lib=lib: self._done(ans, lib), on_error=self._error)
        self.query_vector = None

    def _done(self, answer: jobs.SimilarAnswer, lib: Library | None) -> None:
        query = self.query_path
        self.query_vector = answer.vector
        scale = answer.scale if answer.scale is not None else np.zeros(0, dtype=np.float32)
        if answer.scale is not None and lib is not None:
            self._score_scale = (lib, answer.scale)
        items = result_items(answer, scale)
        self.model.set_items(items)
        if query is not None:
            self.query_caption.setText(caption(query, answer, items, scale))
        emit(self.results_ready, items)

    def _error(self, message: str) -> None:
        self.query_caption.setText(f"Cannot search: {message}")
        emit(self.failed, message)
