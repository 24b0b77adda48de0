"""Duplicate review in stages: the cheap answers first, the expensive ones as they arrive (no Qt here).

Finding duplicates on a fresh library is minutes of work (calibrating the model, k-NN, pixel verification), but
the hash-level answer (same bytes, same pixels, resized/recompressed/turned copies) costs a pass over the
catalogue. :func:`progressive_finders` hands each stage's :class:`DuplicateFinder` to ``partial`` as soon as it
exists, so a view can show the quick groups within seconds and refine them in place:

1. ``hashes``: :func:`for_library.finder_for_library` with ``use_model=False`` (also usable while a scan still runs:
   it reads only what the catalogue knows so far);
2. ``calibrating``: :func:`ensure_calibration`, the (library, model) calibration, with progress that moves
   through its silent parts (embedding the edited copies, checking neighbouring pictures);
3. ``embeddings``: the model's groups without pixel verification, with the *same* calibration as the final
   answer (so nothing jumps between stages 3 and 4 except the grey-zone pairs);
4. ``verified``: the full answer, the one the CLI gives.

Also here: small questions the review views ask of a finder (is this pair a copy, with which tier; are the
pixels identical; which pairs were marked "not a duplicate"), so the views never read the finder's arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vitfeat_desktop.core.dupes.align import Alignment
from vitfeat_desktop.core.dupes.calibrate import EDITS, Calibration
from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.for_library import (
    finder_for_library,
    library_calibration,
    library_files,
    library_vectors,
)
from vitfeat_desktop.core.dupes.keeper import KeeperJudge
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
from vitfeat_desktop.core.dupes.verify import alignment_score
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.core.pipeline import FeatureExtractor
from vitfeat_desktop.core.preprocess import Preprocessor
from vitfeat_desktop.core.progress import CancelFn, Progress, ProgressFn, check_cancel

STAGES = ("hashes", "calibrating", "embeddings", "verified")


@dataclass(frozen=True)
class Stage:
    """One stage's answer: ``finder`` (None for the calibration stage), and whether it is the last one."""

    name: str
    finder: DuplicateFinder | None
    final: bool = False


class _CountingExtractor:
    """Stands in for the library's extractor during calibration and reports every embedded image, so the
    calibration's longest silent step (embedding a few hundred edited copies) shows movement."""

    def __init__(self, inner: FeatureExtractor, report: Callable[[int], None]) -> None:
        self._inner = inner
        self._report = report
        self._done = 0
        self.model_id = inner.model_id
        self.variant = inner.variant
        self.batch_size = inner.batch_size
        self.preprocessor: Preprocessor = inner.preprocessor

    def embed(self, pixel_values: np.ndarray) -> np.ndarray:
        out = self._inner.embed(pixel_values)
        self._done += len(pixel_values)
        self._report(self._done)
        return np.asarray(out)


def ensure_calibration(lib: Library, *, verify: bool = True, progress: ProgressFn | None = None,
                       cancel: CancelFn | None = None) -> Calibration | None:
    """The (library, model) calibration from the cache, or fitted now and cached (None before 4 files are
    embedded), through :func:`library_calibration` like :func:`finder_for_library`, so the later stages load
    this one instead of fitting their own; here with progress through its silent parts."""
    files = library_files(lib)
    embedded_vectors = library_vectors(lib, files)
    if embedded_vectors is None:
        return None
    vectors = embedded_vectors[0]
    sample = min(32, int((np.linalg.norm(vectors, axis=1) > 0).sum()))
    copies = sample * (1 + len(EDITS))
    checked = [0]

    def say(phase: str, done: int, total: int | None, message: str) -> None:
        if progress is not None:
            progress(Progress(phase, done, total, message))

    def embedded(done: int) -> None:
        check_cancel(cancel)
        say("calibrating", done, copies, "embedding edited copies of a sample")

    def verifier(a: Image.Image, b: Image.Image) -> float:
        check_cancel(cancel)
        checked[0] += 1
        say("calibrating", checked[0], None, "aligning neighbouring pictures")
        return float(alignment_score(a, b))

    def calibration_progress(rep: Progress) -> None:
        say("calibrating", rep.done, rep.total, "decoding a sample")

    return library_calibration(lib, files, vectors, extractor=_CountingExtractor(lib.extractor, embedded),
                                     verifier=verifier if verify else None, progress=calibration_progress,
                                     cancel=cancel)


def progressive_finders(lib: Library, *, references: Iterable[str | os.PathLike[str]] = (),
                        marks: NotDuplicateMarks | None = None, use_model: bool = True,
                        partial: Callable[[Stage], None] | None = None, progress: ProgressFn | None = None,
                        cancel: CancelFn | None = None) -> DuplicateFinder:
    """Run the stages in order, handing each :class:`Stage` to ``partial``; returns the final finder.

    ``use_model=False`` stops after the hash stage (a library without vectors, or while a scan runs)."""
    refs = [str(r) for r in references]

    def stage_progress(name: str) -> ProgressFn:
        def relay(rep: Progress) -> None:
            if progress is None:
                return
            if rep.phase == "calibrating":
                progress(rep)
            else:
                progress(Progress(name, int(rep.done or 0), rep.total, str(rep.message or "")))
        return relay

    judge = KeeperJudge()  # one set of keeper evidence for all stages: each file's pixels are measured once
    quick = finder_for_library(lib, references=refs, marks=marks, use_model=False,
                               progress=stage_progress("hashes"), cancel=cancel, judge=judge)
    has_vectors = use_model and len(lib.vectors()[0]) >= 4
    if partial is not None:
        partial(Stage("hashes", quick, final=not has_vectors))
    if not has_vectors:
        return quick
    check_cancel(cancel)
    ensure_calibration(lib, progress=stage_progress("calibrating"), cancel=cancel)
    if partial is not None:
        partial(Stage("calibrating", None))
    rough = finder_for_library(lib, references=refs, marks=marks, use_model=True, verify=False,
                               progress=stage_progress("embeddings"), cancel=cancel, judge=judge)
    if partial is not None:
        partial(Stage("embeddings", rough))
    check_cancel(cancel)
    final = finder_for_library(lib, references=refs, marks=marks, use_model=True, verify=True,
                               progress=stage_progress("verified"), cancel=cancel, judge=judge)
    if partial is not None:
        partial(Stage("verified", final, final=True))
    return final


# -- questions the views ask ----------------------------------------------------------------------------------

def _pair_index(finder: DuplicateFinder, a: str, b: str) -> int | None:
    rows = {f.path: i for i, f in enumerate(finder.files)}
    x, y = rows.get(a), rows.get(b)
    if x is None or y is None or x == y:
        return None
    x, y = min(x, y), max(x, y)
    hits = np.nonzero((finder.pairs[:, 0] == x) & (finder.pairs[:, 1] == y))[0]
    return int(hits[0]) if hits.size else None


def copy_tier(finder: DuplicateFinder, a: str, b: str, sensitivity: float = 0.5) -> tuple[str, str] | None:
    """(tier, reason) when files ``a`` and ``b`` are copies of one picture at ``sensitivity``, else None."""
    p = _pair_index(finder, a, b)
    if p is None or not bool(finder.near_mask(sensitivity)[p]):
        return None
    tier, reason, _score = finder.pair_reason(p)
    return tier, reason


def identical_pixels(finder: DuplicateFinder, a: FileInfo, b: FileInfo) -> bool:
    """True when the two files hold the same picture pixel for pixel (same bytes, or same decoded pixels),
    whatever the user marked: such a pair is never "a retake"."""
    if a.content_hash and a.content_hash == b.content_hash:
        return True
    p = _pair_index(finder, a.path, b.path)
    return p is not None and bool(finder.exact[p] or finder.same_pixels[p])


def marked_pairs(marks: NotDuplicateMarks,
                 files: Iterable[FileInfo]) -> list[tuple[tuple[str, str], list[str], list[str]]]:
    """Every "not a duplicate" mark as (stored pair, paths of the first side, paths of the second side); a side
    whose files are no longer in the library has no paths (the mark can still be removed)."""
    by_key: dict[str, list[str]] = {}
    for f in files:
        by_key.setdefault(f.content_hash or f"path:{os.path.abspath(f.path)}", []).append(f.path)
    return [(pair, sorted(by_key.get(pair[0], [])), sorted(by_key.get(pair[1], []))) for pair in marks.pairs()]


def unmark_pair(marks: NotDuplicateMarks, pair: tuple[str, str]) -> None:
    """Remove one stored mark (as :func:`marked_pairs` lists it), also when its files are gone."""

    def info(key: str) -> FileInfo:
        if key.startswith("path:"):
            return FileInfo(id=-1, path=key[5:])
        return FileInfo(id=-1, path="", content_hash=key)

    marks.unmark(info(pair[0]), info(pair[1]))


# -- compare -----------------------------------------------------------------------------------------------------

def usable_alignment(alignment: Alignment | None) -> bool:
    """Whether an :class:`align.Alignment` is trustworthy enough to line two panes up with: enough matches that
    agree with one similarity (a copy's are nearly all; a different photo's fit is a guess)."""
    return alignment is not None and int(alignment.inliers) >= 12 and float(alignment.inlier_ratio) >= 0.3


def frame_mapping(a_size: tuple[int, int], b_size: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix that shows picture B at picture A's size when no alignment is known: B scaled uniformly
    to fit A's frame and centred on it (two sizes of one picture then coincide)."""
    (wa, ha), (wb, hb) = a_size, b_size
    s = min(wa / max(wb, 1), ha / max(hb, 1))
    return np.array([[s, 0.0, (wa - s * wb) / 2.0], [0.0, s, (ha - s * hb) / 2.0]], dtype=np.float64)


FRAME_SHARE = 0.95  # below this share of a frame, the caption says crop / more around it / overlap


def describe_mapping(alignment: Alignment | None) -> str:
    """How B was mapped onto A, in words for the pane's caption."""
    if alignment is None or not usable_alignment(alignment):
        return "not lined up (local features do not match): scaled to the first photo's size"
    parts = []
    scale = float(alignment.scale)
    if abs(scale - 1.0) > 0.02:
        parts.append(f"shown {scale:.2f}× its size" if scale > 1 else f"shown at {scale:.2f}×")
    rot = float(alignment.rotation_deg) % 360.0
    turn = min((0, 90, 180, 270, 360), key=lambda t: abs(rot - t)) % 360
    if abs(rot - turn) % 360 > 1.0 and abs(rot - turn) % 360 < 359.0:
        parts.append(f"straightened by {((rot + 180) % 360) - 180:.1f}°")
    elif turn:
        parts.append(f"turned {turn}° to line up")
    if alignment.mirrored:
        parts.append("mirrored back")
    overlap = alignment.frame_overlap()
    if overlap is not None:
        covers_a, inside_a = overlap
        if covers_a < FRAME_SHARE <= inside_a:
            parts.append(f"a {covers_a:.0%} crop")
        elif inside_a < FRAME_SHARE <= covers_a:
            parts.append(f"more around it (first photo {inside_a:.0%})")
        elif max(covers_a, inside_a) < FRAME_SHARE:
            parts.append(f"overlaps {covers_a:.0%}")
    how = ", ".join(parts) or "same framing"
    return f"lined up: {how} ({alignment.inliers}/{alignment.matches} features agree)"


def difference_image(a: np.ndarray, b: np.ndarray, matrix: np.ndarray, *,
                     max_side: int = 1600) -> tuple[np.ndarray, float]:
    """What differs between A and B once B is mapped into A's frame by ``matrix`` (B's pixels -> A's).

    Returns an RGB image in A's frame, reduced so its long side is at most ``max_side`` (the factor is returned
    too): A in dim grey with the per-pixel difference in bright red on top (amplified 4x, so a recompression
    shows faintly and an edit stands out), and dark blue where B does not cover A.
    """
    import cv2

    ha, wa = a.shape[:2]
    hb, wb = b.shape[:2]
    sa = min(1.0, max_side / max(ha, wa))
    sb = min(1.0, max_side / max(hb, wb))
    a_small = cv2.resize(a, (max(1, round(wa * sa)), max(1, round(ha * sa))), interpolation=cv2.INTER_AREA) \
        if sa < 1.0 else a
    b_small = cv2.resize(b, (max(1, round(wb * sb)), max(1, round(hb * sb))), interpolation=cv2.INTER_AREA) \
        if sb < 1.0 else b
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    m = (np.diag([sa, sa, 1.0]) @ full @ np.diag([1.0 / sb, 1.0 / sb, 1.0]))[:2]
    size = (a_small.shape[1], a_small.shape[0])
    warped = cv2.warpAffine(np.ascontiguousarray(b_small), m, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    covered = cv2.warpAffine(np.full(b_small.shape[:2], 255, np.uint8), m, size, flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    diff = cv2.absdiff(a_small, warped).max(axis=2).astype(np.float32)
    grey = a_small.astype(np.float32).mean(axis=2) * 0.35
    out = np.empty((*a_small.shape[:2], 3), dtype=np.float32)
    out[..., 0] = grey + diff * 4.0
    out[..., 1] = grey
    out[..., 2] = grey
    out[~covered] = (20, 30, 70)
    return np.clip(out, 0, 255).astype(np.uint8), sa


# -- similar-photo scores ------------------------------------------------------------------------------------------

def copies_of(finder: DuplicateFinder, query: str, paths: Iterable[str],
              sensitivity: float = 0.5) -> dict[str, tuple[str, str]]:
    """Which of ``paths`` are copies of file ``query`` by the duplicate check: path -> (tier, reason). A file in
    the same duplicate group as the query counts too (it is a copy of the query's keeper)."""
    out: dict[str, tuple[str, str]] = {}
    wanted = set(paths)
    for group in finder.groups(sensitivity):
        files = {m.info.path: m for m in group.members}
        if query not in files:
            continue
        for path, member in files.items():
            if path in wanted and path != query:
                tier = member.tier if member.tier != "keeper" else files[query].tier
                out[path] = (tier, member.reason if member.tier != "keeper" else files[query].reason)
    for path in wanted - set(out) - {query}:
        pair = copy_tier(finder, query, path, sensitivity)
        if pair is not None:
            out[path] = pair
    return out


def neighbour_scale(lib: Library) -> np.ndarray:
    """The similarity of every indexed file to its nearest other file, sorted: what a similar-photo score
    means in *this* library (``score_rank``). Empty before two files are indexed."""
    ids, _vecs = lib.vectors()
    if len(ids) < 2:
        return np.zeros(0, dtype=np.float32)
    _ids, _nbrs, sims = lib.knn(1)
    values = np.asarray(sims, dtype=np.float32).reshape(len(sims), -1)[:, 0]
    return np.sort(values[np.isfinite(values)])


def score_rank(scale: np.ndarray, score: float) -> float | None:
    """The fraction of the library's nearest-neighbour pairs that score below ``score`` (None without a scale)."""
    if not len(scale):
        return None
    return float(np.searchsorted(scale, score, side="right")) / len(scale)
