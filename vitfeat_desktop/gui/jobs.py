"""The functions the window runs on workers: thin calls into the core with ``progress=`` and ``cancel=``.

Kept apart from the widgets so each job can be read (and tested) as plain Python, and so it is obvious that the
GUI does no work of its own: every answer comes from the core's library, duplicates, ordering and file-operation
modules. The types are the core's own, so a change there shows up here in mypy, not at run time in a window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

from vitfeat_desktop import config, settings
from vitfeat_desktop.core import order
from vitfeat_desktop.core.dupes import review
from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.for_library import finder_for_library
from vitfeat_desktop.core.dupes.records import DuplicateGroup, SimilarSet
from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
from vitfeat_desktop.core.errors import Cancelled, ModelNotCachedError, VitfeatError
from vitfeat_desktop.core.fileops import operations
from vitfeat_desktop.core.fileops.operations import ActionResult, UndoResult
from vitfeat_desktop.core.fileops.references import reference_folders
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.library.facade import Library, SimilarResult
from vitfeat_desktop.core.library.scanner import ScanReport
from vitfeat_desktop.core.models.layout import resolve_spec
from vitfeat_desktop.core.models.resolve import find_local
from vitfeat_desktop.core.pipeline import FeatureExtractor, pipeline
from vitfeat_desktop.core.progress import CancelFn, ProgressFn
from vitfeat_desktop.gui.grid import GridItem


def load_extractor(model: str | Path | None, quantized: bool, *, progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None) -> FeatureExtractor:
    """Build the feature extractor and start its ONNX session now (off the GUI thread: it can take seconds).

    A hub id that is not cached is *not* downloaded here (the core would): the window shows the model panel
    instead, so the user sees the size and chooses to download, with progress and Cancel.
    """
    spec = resolve_spec(model, quantized)
    if spec.model_id is not None and find_local(spec) is None:
        raise ModelNotCachedError(f"model {spec.name} ({spec.variant}) is not in the model cache "
                                  f"{config.models_dir()} yet")

    threads = settings.load().threads
    intra = threads if threads > 0 else None
    # cancel reaches the core: a model folder with a file missing is completed from the hub, with retries that
    # must stop when the window closes (the runner drains within 2 s)
    extractor = pipeline("image-feature-extraction", model=model, quantized=quantized, intra_op_threads=intra,
                         progress=progress, cancel=cancel)
    _ = extractor.outputs  # creates the session
    if cancel is not None and cancel():
        raise Cancelled()
    return extractor


@dataclass
class OpenedLibrary:
    library: Library
    folder: Path
    files: list[GridItem]
    skipped: list[tuple[str, str]]


def open_library(folder: Path, extractor: FeatureExtractor | None, *, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> OpenedLibrary:
    """Open (or create) the library of ``folder`` and read what it already knows, without scanning."""
    if not folder.is_dir():
        raise VitfeatError(f"{folder} is not a folder (was it moved, or is the drive disconnected?)")
    lib = Library.open(folder, extractor=extractor)
    return OpenedLibrary(lib, folder, grid_items(lib), list(lib.skipped()))


@dataclass
class ScanOutcome:
    report: ScanReport
    files: list[GridItem]
    skipped: list[tuple[str, str]]


def scan_library(lib: Library, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ScanOutcome:
    """Incremental scan: new and changed photos are embedded, removed ones dropped (the core decides)."""
    report = lib.scan(embed=True, progress=progress, cancel=cancel)
    return ScanOutcome(report, grid_items(lib), list(lib.skipped()))


def grid_items(lib: Library) -> list[GridItem]:
    """The library's readable photos as grid items, built here on the worker rather than on the GUI thread."""
    return [GridItem.from_record(r) for r in lib.files(status="ok")]


@dataclass
class SimilarAnswer:
    results: list[SimilarResult]
    vector: np.ndarray  # the query's normalised pooled vector (the inspector's heatmap compares patches to it)
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)  # result path -> (tier, reason)
    scale: np.ndarray | None = None  # the library's nearest-neighbour similarities, sorted (review.score_rank)
    basis: str = ""  # what decided ``copies``: "verified" (the duplicates view's finder) or "hashes" (quick)


def find_similar(lib: Library, query: Path | np.ndarray, k: int = 60, *, finder: DuplicateFinder | None = None,
                 sensitivity: float = 0.5, scale: np.ndarray | None = None, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None) -> SimilarAnswer:
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
        basis = "verified" if finder is not None and finder.has_vectors else "hashes"
        if finder is None:
            finder = finder_for_library(lib, use_model=False, cancel=cancel)
        copies = review.copies_of(finder, str(query), [str(r.path) for r in results], sensitivity)
        if scale is None:
            scale = review.neighbour_scale(lib)
    return SimilarAnswer(results, np.asarray(vector, dtype=np.float32), copies, scale, basis)


def preview_image(path: Path, side: int = 216) -> QImage:
    """A small upright preview of any file the index reads (HEIC, AVIF, RAW, EXIF-rotated JPEG), decoded by the
    core's one decoder, as a QImage (worker thread; QImage, unlike QPixmap, may be made off the GUI thread)."""
    pil = open_image(path, min_side=side)
    pil.thumbnail((side, side))
    data = pil.convert("RGB").tobytes("raw", "RGB")
    return QImage(data, pil.width, pil.height, pil.width * 3, QImage.Format.Format_RGB888).copy()


def apply_file_action(action: str, paths: list[str], *, folder: str | None = None,
                      photo_roots: list[str] | None = None, keepers: dict[str, str] | None = None,
                      progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> ActionResult:
    return operations.apply_actions(action, paths, folder=folder, photo_roots=photo_roots or [], keepers=keepers,
                                    progress=progress, cancel=cancel)


def undo_last(journal_id: str | None = None, *, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None) -> UndoResult:
    return operations.undo(journal_id, progress=progress, cancel=cancel)


def library_order(lib: Library, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> list[int]:
    """The library's file ids in "visual similarity" order (``core/order.py``)."""
    return order.library_visual_order(lib, cancel=cancel)


def build_duplicates(lib: Library, *, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> DuplicateFinder:
    """A :class:`DuplicateFinder` for the open library (its evidence is built once; regrouping is instant)."""
    references = [str(p) for p in reference_folders()]
    marks = NotDuplicateMarks.for_library(lib.folder)
    return finder_for_library(lib, references=references, marks=marks, progress=progress, cancel=cancel)


def build_duplicates_staged(lib: Library, *, use_model: bool = True,
                            partial: Callable[[review.Stage], None] | None = None,
                            progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> DuplicateFinder:
    """The duplicates search in stages (``core/dupes/review.py``): each stage's finder goes to ``partial`` as soon as it
    exists (hash-level groups in seconds), the last one is the result. ``use_model=False`` while a scan runs."""
    references = [str(p) for p in reference_folders()]
    marks = NotDuplicateMarks.for_library(lib.folder)
    return review.progressive_finders(lib, references=references, marks=marks, use_model=use_model,
                                      partial=partial, progress=progress, cancel=cancel)


def regroup(finder: DuplicateFinder, sensitivity: float, *, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> tuple[list[DuplicateGroup], list[SimilarSet]]:
    """Duplicate groups and, separately, groups of similar shots at ``sensitivity`` (no file is read)."""
    groups = finder.groups(sensitivity)
    return groups, finder.similar_groups(sensitivity, groups)
