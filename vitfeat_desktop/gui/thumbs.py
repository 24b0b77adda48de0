"""Lazy thumbnails: rendered on pool threads, cached on disk, kept in a small in-memory LRU of pixmaps.

A grid of 20,000 photos must scroll at once, so nothing is decoded until the delegate paints a cell. The delegate
asks :class:`ThumbnailLoader` for a pixmap; on a miss it draws a placeholder and the loader queues the file. The
newest requests go first (the cells on screen now) and only a few render at a time, so a fast scroll does not
bury the pool under thousands of jobs for cells that have already scrolled away. Rendered thumbnails are stored
as JPEG under ``config.cache_dir()/thumbs`` keyed by the file's content hash when the library knows it (so a
renamed photo keeps its thumbnail) or by path+size+mtime; the cache is never written inside photo folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.tasks import TaskRunner

CACHE_SIDE = 256  # thumbnails are cached at one size and scaled for zoom levels, so zooming never re-decodes
MAX_IN_FLIGHT = 3
MAX_PENDING = 400


def thumb_dir() -> Path:
    return config.cache_dir() / "thumbs"


def cache_key(path: Path, content_hash: str | None = None) -> str:
    """Content hash when known (survives renames); otherwise path, size and mtime (changes when the file does)."""
    if content_hash:
        return f"h{content_hash[:40]}"
    try:
        st = path.stat()
        ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        ident = str(path)
    return "p" + hashlib.sha1(ident.encode("utf-8", "surrogatepass")).hexdigest()


def cache_path(key: str) -> Path:
    return thumb_dir() / key[1:3] / f"{key}.jpg"


def render_thumbnail(path: Path, key: str, side: int = CACHE_SIDE) -> QImage:
    """Load from the disk cache or decode the photo, write the cache, and return a QImage (safe off the GUI thread)."""
    cached = cache_path(key)
    if cached.is_file():
        image = QImage(str(cached))
        if not image.isNull():
            return image
    pil = open_image(path, min_side=side)
    pil.thumbnail((side, side))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.{id(pil)}.tmp")
    try:
        pil.save(tmp, format="JPEG", quality=85)
        os.replace(tmp, cached)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
    data = pil.tobytes("raw", "RGB")
    return QImage(data, pil.width, pil.height, pil.width * 3, QImage.Format.Format_RGB888).copy()


class ThumbnailLoader(QObject):
    """Hands out cached pixmaps and schedules the missing ones; emits ``ready(key)`` when one arrives."""

    ready = Signal(str)
    failed = Signal(str, str)

    def __init__(self, runner: TaskRunner, memory_items: int = 1500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.memory_items = memory_items
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: OrderedDict[str, Path] = OrderedDict()
        self._in_flight: set[str] = set()
        self._failed: dict[str, str] = {}
        self.rendered = 0

    def pixmap(self, key: str, path: Path) -> QPixmap | None:
        """The pixmap if we have it; otherwise queue it (newest first) and return None for a placeholder."""
        pm = self._pixmaps.get(key)
        if pm is not None:
            self._pixmaps.move_to_end(key)
            return pm
        if key in self._failed or key in self._in_flight:
            return None
        self._pending[key] = path
        self._pending.move_to_end(key)
        while len(self._pending) > MAX_PENDING:  # cells that scrolled away long ago
            self._pending.popitem(last=False)
        self._pump()
        return None

    def error(self, key: str) -> str | None:
        return self._failed.get(key)

    def pending_count(self) -> int:
        return len(self._pending) + len(self._in_flight)

    def _pump(self) -> None:
        while self._pending and len(self._in_flight) < MAX_IN_FLIGHT:
            key, path = self._pending.popitem(last=True)
            self._in_flight.add(key)
            worker = self.runner.submit(
                render_thumbnail, path, key, pass_callbacks=False,
                on_result=lambda img, k=key: self._done(k, img),
                on_error=lambda msg, k=key: self._fail(k, msg),
                on_finished=lambda k=key: self._finished(k),
                priority=-1,
            )
            if worker is None:  # runner shut down
                self._in_flight.discard(key)
                return

    def _done(self, key: str, image: QImage) -> None:
        self._pixmaps[key] = QPixmap.fromImage(image)  # pixmaps only on the GUI thread
        self.rendered += 1
        while len(self._pixmaps) > self.memory_items:
            self._pixmaps.popitem(last=False)
        emit(self.ready, key)

    def _fail(self, key: str, message: str) -> None:
        self._failed[key] = message
        emit(self.failed, key, message)

    def _finished(self, key: str) -> None:
        self._in_flight.discard(key)
        self._pump()

    def forget(self, key: str) -> None:
        self._pixmaps.pop(key, None)
        self._failed.pop(key, None)


def scaled(pixmap: QPixmap, side: int) -> QPixmap:
    if max(pixmap.width(), pixmap.height()) <= side:
        return pixmap
    return pixmap.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


__all__ = ["CACHE_SIDE", "ImageReadError", "ThumbnailLoader", "cache_key", "render_thumbnail", "scaled"]
