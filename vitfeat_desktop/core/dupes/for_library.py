"""The bridge from an open :class:`Library` to duplicate finding: its files, pooled vectors and k-NN graph as
the finder wants them, the (library, model) calibration, the verifier with its per-library cache, and the
user's marks and keeper picks.

The CLI (``commands/dupes.py``), the GUI's jobs and the staged review (``review.py``) all come through here, so
they fit and load the same calibration and read the same sidecars.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from vitfeat_desktop.core.dupes.calibrate import (
    Calibration,
    Embedder,
    calibrate,
    load_calibration,
    model_key_of,
    save_calibration,
)
from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.keeper import KeeperJudge
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.sidecars import VERIFIED, KeeperChoices, NotDuplicateMarks, sidecar_path
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.dupes.verify import AlignmentVerifier, CachedVerifier, alignment_score
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.core.links import one_name_per_file
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, check_cancel


def finder_for_library(
    lib: Library,
    *,
    references: Iterable[str | os.PathLike[str]] = (),
    marks: NotDuplicateMarks | None = None,
    use_model: bool = True,
    verify: bool = True,
    k: int = 10,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    judge: KeeperJudge | None = None,
) -> DuplicateFinder:
    """A :class:`DuplicateFinder` for an open ``Library``: its records, pooled vectors and k-NN graph, the
    calibration of (library, model) from the cache or fitted now (then cached), and the pixel verifier.

    With ``use_model=False`` or before any file is embedded it is the quick pass: exact, same-pixel and
    hash-level copies only. Files in ``references`` are keepers and never offered for removal.
    """
    files = library_files(lib)
    marks = marks if marks is not None else NotDuplicateMarks.for_library(lib.folder)
    choices = KeeperChoices.for_library(lib.folder)
    embedded = library_vectors(lib, files) if use_model else None
    vectors = knn = None
    thresholds: Thresholds | None = None
    mean = None
    if embedded is not None:
        vectors, indexed = embedded
        calibration = library_calibration(lib, files, vectors, verifier=alignment_score if verify else None,
                                          progress=progress, cancel=cancel)
        thresholds, mean = calibration.thresholds, calibration.mean
        row_of = {f.id: i for i, f in enumerate(files)}
        knn_ids, neighbours, _sims = lib.knn(min(k, indexed - 1))
        knn = np.full((len(files), neighbours.shape[1]), -1, dtype=np.int64)
        for fid, nbrs in zip(knn_ids.tolist(), neighbours.tolist(), strict=True):
            row = row_of.get(int(fid))
            if row is not None:
                knn[row] = [row_of.get(int(x), -1) for x in nbrs]
    check_cancel(cancel)
    verifier = CachedVerifier(AlignmentVerifier(), sidecar_path(lib.folder, VERIFIED)) \
        if (verify and vectors is not None) else None
    try:
        return DuplicateFinder.build(files, vectors=vectors, knn=knn, thresholds=thresholds, mean=mean,
                                     verifier=verifier, references=references, marks=marks, progress=progress,
                                     cancel=cancel, choices=choices, judge=judge)
    finally:
        if verifier is not None:
            verifier.save()


def library_files(lib: Library) -> list[FileInfo]:
    """The library's readable files as duplicate finding sees them: one entry per file on disk (a symlink and
    its target, or two hard links, are one file, never a pair)."""
    return [FileInfo.from_record(r) for r in one_name_per_file([r for r in lib.files() if r.status == "ok"])]


def library_vectors(lib: Library, files: Sequence[FileInfo]) -> tuple[np.ndarray, int] | None:
    """Pooled vectors aligned with ``files`` (zero rows for files not embedded yet) and how many vectors the
    library holds (the k-NN graph's size); None before 4 are embedded, too few to calibrate or to have
    neighbours. The catalogue's vectors are read once here: at 100,000 files that is the costly part."""
    ids, vecs = lib.vectors()
    if len(ids) < 4:
        return None
    row_of = {f.id: i for i, f in enumerate(files)}
    vectors = np.zeros((len(files), vecs.shape[1]), dtype=np.float32)
    for fid, vec in zip(ids.tolist(), vecs, strict=True):
        row = row_of.get(int(fid))
        if row is not None:
            vectors[row] = vec
    return vectors, len(ids)


def library_calibration(
    lib: Library,
    files: Sequence[FileInfo],
    vectors: np.ndarray,
    *,
    extractor: Embedder | None = None,
    verifier: Callable[..., float] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Calibration:
    """The (library, model) calibration from the cache, else fitted now and cached. The one place that decides
    its inputs, so the review's calibration stage and the final search fit and load the same one.
    ``extractor`` defaults to the library's (the review passes one that counts the embedded copies)."""
    key = lib.model_key or model_key_of(lib.extractor)
    calibration = load_calibration(lib.folder, key, n_files=len(files))
    if calibration is None:
        ph = np.array([f.hashes.phashes if f.hashes else (0,) * 8 for f in files], dtype=np.uint64)
        calibration = calibrate(
            extractor if extractor is not None else lib.extractor, [f.path for f in files], vectors, hashes=ph,
            verifier=verifier, progress=progress, cancel=cancel)
        calibration.model_key = key
        save_calibration(lib.folder, calibration)
    return calibration
