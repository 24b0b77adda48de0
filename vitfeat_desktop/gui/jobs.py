"""The functions the window runs on workers: thin calls into the core with ``progress=`` and ``cancel=``.

Kept apart from the widgets so each job can be read (and tested) as plain Python, and so it is obvious that the
GUI does no work of its own: every answer comes from the core's library, duplicates and actions modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitfeat_desktop.core.errors import Cancelled, VitfeatError


class FeatureUnavailable(VitfeatError):
    """A core module this build lacks (the window disables the feature and says so, instead of crashing)."""


def core_module(name: str) -> Any:
    """Import ``vitfeat_desktop.core.<name>``, or raise a one-line error naming the missing feature."""
    try:
        return importlib.import_module(f"vitfeat_desktop.core.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(f"core.{name}"):
            raise FeatureUnavailable(f"this build has no vitfeat_desktop.core.{name} module") from exc
        raise


def has_core(name: str) -> bool:
    try:
        core_module(name)
    except FeatureUnavailable:
        return False
    return True


def load_extractor(model: str | Path | None, quantized: bool, *, progress: Any = None,
                   cancel: Callable[[], bool] | None = None) -> Any:
    """Build the feature extractor and start its ONNX session now (off the GUI thread: it can take seconds)."""
    from vitfeat_desktop.core.pipeline import pipeline

    extractor = pipeline("image-feature-extraction", model=model, quantized=quantized)
    _ = extractor.outputs  # creates the session
    if cancel is not None and cancel():
        raise Cancelled()
    return extractor


@dataclass
class OpenedLibrary:
    library: Any
    folder: Path
    files: list[Any]
    skipped: list[tuple[str, str]]


def open_library(folder: Path, extractor: Any, *, progress: Any = None,
                 cancel: Callable[[], bool] | None = None) -> OpenedLibrary:
    """Open (or create) the library of ``folder`` and read what it already knows, without scanning."""
    library_mod = core_module("library")
    if not folder.is_dir():
        raise VitfeatError(f"{folder} is not a folder (was it moved, or is the drive disconnected?)")
    lib = library_mod.Library.open(folder, extractor=extractor)
    return OpenedLibrary(lib, folder, list(lib.files()), list(lib.skipped()))


@dataclass
class ScanOutcome:
    report: Any
    files: list[Any]
    skipped: list[tuple[str, str]]


def scan_library(lib: Any, *, progress: Any = None, cancel: Callable[[], bool] | None = None) -> ScanOutcome:
    """Incremental scan: new and changed photos are embedded, removed ones dropped (the core decides)."""
    report = lib.scan(embed=True, progress=progress, cancel=cancel)
    return ScanOutcome(report, list(lib.files()), list(lib.skipped()))


def find_similar(lib: Any, query: Path | np.ndarray, k: int = 60, *, progress: Any = None,
                 cancel: Callable[[], bool] | None = None) -> list[Any]:
    """The ``k`` most similar photos to a file (indexed or not) or a vector."""
    if isinstance(query, Path) and not query.is_file():
        raise VitfeatError(f"{query} is not a file")
    return list(lib.similar(query, k=k))


def apply_file_action(action: str, paths: list[str], *, folder: str | None = None,
                      photo_roots: list[str] | None = None, keepers: dict[str, str] | None = None,
                      progress: Any = None, cancel: Callable[[], bool] | None = None) -> Any:
    actions = core_module("actions")
    return actions.apply_actions(action, paths, folder=folder, photo_roots=photo_roots or [], keepers=keepers,
                                 progress=progress, cancel=cancel)


def undo_last(journal_id: str | None = None, *, progress: Any = None,
              cancel: Callable[[], bool] | None = None) -> Any:
    actions = core_module("actions")
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
