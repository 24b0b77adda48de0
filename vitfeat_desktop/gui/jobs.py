"""The functions the window runs on workers: thin calls into the core with ``progress=`` and ``cancel=``.

Kept apart from the widgets so each job can be read (and tested) as plain Python, and so it is obvious that the
GUI does no work of its own: every answer comes from the core's library, duplicates and actions modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.for_library import finder_for_library
from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
from vitfeat_desktop.core.errors import Cancelled, VitfeatError
from vitfeat_desktop.core.fileops import operations as actions
from vitfeat_desktop.core.library.facade import Library

SETTING_THREADS = "threads"  # model (intra-op) threads; absent or 0: all cores
SETTING_SENSITIVITY = "dupes_sensitivity"


def load_extractor(model: str | Path | None, quantized: bool, *, progress: Any = None,
                   cancel: Callable[[], bool] | None = None) -> Any:
    """Build the feature extractor and start its ONNX session now (off the GUI thread: it can take seconds).

    A hub id that is not cached is *not* downloaded here (the core would): the window shows the model panel
    instead, so the user sees the size and chooses to download, with progress and Cancel.
    """
    from vitfeat_desktop import config
    from vitfeat_desktop.core.errors import ModelNotCachedError
    from vitfeat_desktop.core.models import cache as hub
    from vitfeat_desktop.core.pipeline import pipeline

    spec = model if model is not None else config.DEFAULT_MODEL_ID
    if not hub.looks_like_path(spec):
        folder = hub.cache_folder(str(spec))
        if not (folder / hub.variant_file(quantized)).is_file() and hub.from_hf_cache(str(spec), quantized) is None:
            raise ModelNotCachedError(f"model {spec} ({'int8' if quantized else 'fp32'}) is not in the model cache "
                                      f"{config.models_dir()} yet")

    threads = config.load_settings().get(SETTING_THREADS)
    intra = int(threads) if isinstance(threads, int) and threads > 0 else None
    # cancel reaches the core: a model folder with a file missing is completed from the hub, with retries that
    # must stop when the window closes (the runner drains within 2 s)
    extractor = pipeline("image-feature-extraction", model=model, quantized=quantized, intra_op_threads=intra,
                         progress=_model_progress(progress), cancel=cancel)
    _ = extractor.outputs  # creates the session
    if cancel is not None and cancel():
        raise Cancelled()
    return extractor


def _model_progress(progress: Any) -> Any:
    """The hub's ``(done, total, message)`` download reports as one tuple (what the model panel shows)."""
    if progress is None:
        return None

    def report(done: int, total: int | None, message: str = "") -> None:
        progress((done, total, message))

    return report


@dataclass
class OpenedLibrary:
    library: Any
    folder: Path
    files: list[Any]
    skipped: list[tuple[str, str]]


def open_library(folder: Path, extractor: Any, *, progress: Any = None,
                 cancel: Callable[[], bool] | None = None) -> OpenedLibrary:
    """Open (or create) the library of ``folder`` and read what it already knows, without scanning."""
    if not folder.is_dir():
        raise VitfeatError(f"{folder} is not a folder (was it moved, or is the drive disconnected?)")
    lib = Library.open(folder, extractor=extractor)
    return OpenedLibrary(lib, folder, grid_items(lib), list(lib.skipped()))


@dataclass
class ScanOutcome:
    report: Any
    files: list[Any]
    skipped: list[tuple[str, str]]


def scan_library(lib: Any, *, progress: Any = None, cancel: Callable[[], bool] | None = None) -> ScanOutcome:
    """Incremental scan: new and changed photos are embedded, removed ones dropped (the core decides)."""
    report = lib.scan(embed=True, progress=progress, cancel=cancel)
    return ScanOutcome(report, grid_items(lib), list(lib.skipped()))


def grid_items(lib: Any) -> list[Any]:
    """The library's readable photos as grid items, built here on the worker rather than on the GUI thread."""
    from vitfeat_desktop.gui.grid import GridItem

    return [GridItem.from_record(r) for r in lib.files(status="ok")]


@dataclass
class SimilarAnswer:
    results: list[Any]
    vector: np.ndarray  # the query's normalised pooled vector (the inspector's heatmap compares patches to it)
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)  # result path -> (tier, reason)
    scale: np.ndarray | None = None  # the library's nearest-neighbour similarities, sorted (review.score_rank)
    basis: str = ""  # what decided ``copies``: "verified" (the duplicates view's finder) or "hashes" (quick)


def find_similar(lib: Any, query: Path | np.ndarray, k: int = 60, *, finder: Any = None, sensitivity: float = 0.5,
                 scale: np.ndarray | None = None, progress: Any = None,
                 cancel: Callable[[], bool] | None = None) -> SimilarAnswer:
    """The ``k`` most similar photos to a file (indexed or not) or a vector, and the query's vector; which
    results are copies of the query by the duplicate check (``finder``, else a quick hash-level one), and the
    library's score scale (``scale`` when the caller has it already)."""
    if isinstance(query, Path) and not query.is_file():
        raise VitfeatError(f"{query} is not a file")
    vector, self_id = lib.query_vector(query)
    if cancel is not None and cancel():
        raise Cancelled()
    results = [r for r in lib.similar(vector, k=k + 1) if self_id is None or r.file_id != self_id][:k]
    copies: dict[str, tuple[str, str]] = {}
    basis = ""
    if isinstance(query, Path) and self_id is not None:
        basis = "verified" if finder is not None and getattr(finder, "has_vectors", False) else "hashes"
        if finder is None:
            finder = finder_for_library(lib, use_model=False, cancel=cancel)
        copies = review.copies_of(finder, str(query), [str(r.path) for r in results], sensitivity)
        if scale is None:
            scale = review.neighbour_scale(lib)
    return SimilarAnswer(results, np.asarray(vector, dtype=np.float32), copies, scale, basis)


def preview_image(path: Path, side: int = 216) -> Any:
    """A small upright preview of any file the index reads (HEIC, AVIF, RAW, EXIF-rotated JPEG), decoded by the
    core's one decoder, as a QImage (worker thread; QImage, unlike QPixmap, may be made off the GUI thread)."""
    from PySide6.QtGui import QImage

    from vitfeat_desktop.core.images import open_image

    pil = open_image(path, min_side=side)
    pil.thumbnail((side, side))
    data = pil.convert("RGB").tobytes("raw", "RGB")
    return QImage(data, pil.width, pil.height, pil.width * 3, QImage.Format.Format_RGB888).copy()


def apply_file_action(action: str, paths: list[str], *, folder: str | None = None,
                      photo_roots: list[str] | None = None, keepers: dict[str, str] | None = None,
                      progress: Any = None, cancel: Callable[[], bool] | None = None) -> Any:
    return actions.apply_actions(action, paths, folder=folder, photo_roots=photo_roots or [], keepers=keepers,
                                 progress=progress, cancel=cancel)


def undo_last(journal_id: str | None = None, *, progress: Any = None,
              cancel: Callable[[], bool] | None = None) -> Any:
    return actions.undo(journal_id, progress=progress, cancel=cancel)


def visual_order(file_ids: np.ndarray, vectors: np.ndarray) -> list[int]:
    """An order of the library in which look-alikes sit next to each other (for "Sort: visual similarity").

    A greedy nearest-neighbour chain over cosine similarity, started from the photo least like the others: each
    step appends the most similar photo not yet placed. Quadratic, but in blocks of rows so 20,000 photos take a
    few seconds on a worker and little memory.
    """
    n = len(file_ids)
    if n == 0:
        return []
    v = vectors.astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    placed = np.zeros(n, dtype=bool)
    mean = v.mean(axis=0)
    current = int(np.argmin(v @ mean))
    order = [current]
    placed[current] = True
    for _ in range(n - 1):
        sims = v @ v[current]
        sims[placed] = -np.inf
        current = int(np.argmax(sims))
        placed[current] = True
        order.append(current)
    return [int(file_ids[i]) for i in order]


def library_order(lib: Any, *, progress: Any = None, cancel: Callable[[], bool] | None = None) -> list[int]:
    ids, vectors = lib.vectors()
    return visual_order(np.asarray(ids), np.asarray(vectors))


def build_duplicates(lib: Any, *, progress: Any = None, cancel: Callable[[], bool] | None = None) -> Any:
    """A :class:`DuplicateFinder` for the open library (its evidence is built once; regrouping is instant)."""
    references = [str(p) for p in actions.reference_folders()]
    marks = NotDuplicateMarks.for_library(lib.folder)
    return finder_for_library(lib, references=references, marks=marks, progress=progress, cancel=cancel)


def build_duplicates_staged(lib: Any, *, use_model: bool = True, partial: Callable[[Any], None] | None = None,
                            progress: Any = None, cancel: Callable[[], bool] | None = None) -> Any:
    """The duplicates search in stages (``core/dupes/review.py``): each stage's finder goes to ``partial`` as soon as it
    exists (hash-level groups in seconds), the last one is the result. ``use_model=False`` while a scan runs."""
    references = [str(p) for p in actions.reference_folders()]
    marks = NotDuplicateMarks.for_library(lib.folder)
    return review.progressive_finders(lib, references=references, marks=marks, use_model=use_model,
                                      partial=partial, progress=progress, cancel=cancel)


def regroup(finder: Any, sensitivity: float, *, progress: Any = None,
            cancel: Callable[[], bool] | None = None) -> tuple[list[Any], list[list[Any]]]:
    """Duplicate groups and, separately, groups of similar shots at ``sensitivity`` (no file is read)."""
    groups = finder.groups(sensitivity)
    return groups, finder.similar_groups(sensitivity, groups)
