"""Confirm grey-zone duplicate candidates by aligning the two pictures' pixels.

Why pixels and not patch tokens: the issue proposed confirming candidate pairs by mutual nearest-neighbour
matching of the model's patch tokens (``last_hidden_state``). We measured that on the benchmark library with the
shared DINOv2-S model (``tests/bench/bench_dupes.py --patch-study``): the final-layer patch tokens are too
semantic and too alike within one image (mean within-image cosine 0.5) to be matched reliably. Among 400
candidate pairs the pHash does not already settle, the mutual-NN fraction of true copies (crops, borders, small
rotations) had a 5th percentile of 0.12 (median 0.28) while different pictures reached 0.18 (99th percentile
0.16), and a geometric-consistency vote on the matches did no better in an exploratory run. Pooled-vector
similarity alone cannot separate a 75 % crop from another photo of a similar scene either (copies go down to
0.6, different photos up to 0.92, centred cosine).

What does separate them is the obvious check: a crop, border or slightly rotated copy *contains the same
pixels* as the original at some scale and offset. :class:`AlignmentVerifier` searches scale (50-100 % of the
other picture's width, plus the exact ratios a border or letterbox implies), offset (all of them, by FFT) and a
few small rotations, on 64-pixel-wide grey thumbnails, and returns the best normalised cross-correlation. It
costs ~10-30 ms per pair plus a draft decode per file, so it runs for grey-zone candidates only. On the
benchmark it lifts F1 from 0.84 (hash + pooled vector) to 0.99 at precision 0.99.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image, ImageFilter

from vitfeat_desktop.core.dupes.align import (
    Alignment,
    FeatureCache,
    Features,
    Photometric,
    better,
    match_features,
    photometric,
)
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.sidecars import VerifiedPairs
from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.images import open_image

PathLike = str | os.PathLike[str]
WIDTH = 64
STEP = 0.04
FRACTIONS = np.round(np.arange(0.5, 1.0001, STEP), 4)
ANGLES = (-5.0, -2.5, 2.5, 5.0)
ROTATION_MARGIN = 0.1  # after a trial rotation, keep the centre so the empty corners do not count
# Scores are computed on a band-pass (difference of Gaussians) of the grey thumbnail. The fine blur makes them
# tolerant of the sub-pixel offset between a copy's pixel grid and the original's; subtracting the coarse blur
# removes the smooth shading that any two photos share once scale and offset may be searched. Measured on the
# benchmark library and the 4 nearest neighbours of each of the 300 shared photos (1,028 different pairs):
# plain grey thumbnails let different photos reach 0.946 while small-rotation copies went down to 0.90; the
# band-pass keeps different photos at 0.743 or below, and 99.2 % of copies above that.
BLUR = 0.7
BACKGROUND_BLUR = 2.0
# A correlation over fewer pixels than this is chance as often as evidence: a balance beam and an airship (a
# wide 350x156 photo, so a 26x11 template after a trial rotation) "aligned" at 0.77.
MIN_TEMPLATE_PIXELS = 480
BORDER_TOLERANCE = 10  # grey levels a border or letterbox may vary by (JPEG noise) and still count as uniform


def path_of(item: FileInfo | PathLike) -> str:
    """The path a verifier reads: a :class:`FileInfo`'s, or the path itself (the benchmarks and tests pass paths)."""
    return item.path if isinstance(item, FileInfo) else os.fspath(item)


def _blurred(image: Image.Image) -> np.ndarray:
    fine = np.asarray(image.filter(ImageFilter.GaussianBlur(BLUR)), dtype=np.float32)
    return fine - np.asarray(image.filter(ImageFilter.GaussianBlur(BACKGROUND_BLUR)), dtype=np.float32)


def _gray_array(image: Image.Image, width: int) -> np.ndarray:
    height = max(8, round(image.height * width / image.width))
    resample = Image.Resampling.BOX if image.width > 2 * width else Image.Resampling.BILINEAR
    return _blurred(image.resize((width, height), resample))


def _best_ncc(outer: np.ndarray, inner: Image.Image, fractions: np.ndarray) -> float:
    return _best_ncc_at(outer, inner, fractions)[0]


def _best_ncc_at(outer: np.ndarray, inner: Image.Image, fractions: np.ndarray) -> tuple[float, float]:
    """Best normalised cross-correlation of ``inner`` (scaled to each fraction of outer's width) over ``outer``.

    Correlations for every offset come from one FFT per scale; the local mean/variance of ``outer`` under the
    template from integral images, so the whole search is a few small FFTs.
    """
    h, w = outer.shape
    s1 = np.pad(outer.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s2 = np.pad((outer.astype(np.float64) ** 2).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    spectrum = np.fft.rfft2(outer)
    floor = 1e-3 * float(outer.var()) + 1e-6  # flat areas must not divide by ~0 and score 1
    best, best_fraction = -1.0, 1.0
    for fraction in fractions:
        tw = round(w * float(fraction))
        th = round(tw * inner.height / inner.width)
        if tw < 6 or th < 6 or th > h + 1 or tw > w or tw * th < MIN_TEMPLATE_PIXELS:
            continue
        template = _blurred(inner.resize((tw, th), Image.Resampling.BOX))
        if th > h:  # one row of rounding: trim instead of distorting the aspect ratio
            template = template[: h]
            th = h
        template = template - template.mean()
        tnorm = float(np.sqrt((template.astype(np.float64) ** 2).sum()))
        if tnorm < 1e-3:
            continue
        padded = np.zeros_like(outer)
        padded[:th, :tw] = template
        corr = np.fft.irfft2(spectrum * np.conj(np.fft.rfft2(padded)), s=outer.shape)[: h - th + 1, : w - tw + 1]
        n = th * tw
        a = s1[th:, tw:] - s1[:-th, tw:] - s1[th:, :-tw] + s1[:-th, :-tw]
        b = s2[th:, tw:] - s2[:-th, tw:] - s2[th:, :-tw] + s2[:-th, :-tw]
        var = np.maximum(b - a * a / n, floor * n)
        score = float(np.clip(corr / (tnorm * np.sqrt(var)), -1.0, 1.0).max())
        if score > best:
            best, best_fraction = score, float(fraction)
    return best, best_fraction


def _fractions_for(inner: Image.Image, outer: Image.Image) -> np.ndarray:
    """The scale grid, plus the scales at which inner fills outer's full height or full width (letterbox and
    pillarbox). Thumbnails of the two files have unrelated pixel sizes, so only aspect ratios count here."""
    extra = [(inner.width / inner.height) / (outer.width / outer.height), 1.0]
    extra = [e for e in extra if 0.35 <= e <= 1.0 + 1e-6]  # a portrait photo letterboxed to 16:9 is ~0.42
    return np.unique(np.concatenate([FRACTIONS, np.round(extra, 4)]))


_DIHEDRAL = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
             Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.TRANSPOSE, Image.Transpose.FLIP_TOP_BOTTOM,
             Image.Transpose.TRANSVERSE)


def trim_uniform_border(gray: Image.Image) -> Image.Image:
    """Cut away a uniform frame (border, letterbox, pillarbox) so the picture inside it is what gets compared.

    A frame adds a hard edge that the band-pass sees and the original does not have; trimming it is cheaper
    and more exact than searching for it. Only a frame whose every pixel is within ``BORDER_TOLERANCE`` of the
    corner's grey level is removed, and never more than half of the picture.
    """
    arr = np.asarray(gray, dtype=np.int16)
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        return gray
    corner = int(np.median([arr[0, 0], arr[0, -1], arr[-1, 0], arr[-1, -1]]))
    content = np.abs(arr - corner) > BORDER_TOLERANCE
    rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return gray
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if (bottom - top) * (right - left) < 0.5 * arr.size or (top, left, bottom, right) == (0, 0, *arr.shape):
        return gray
    return gray.crop((left, top, right, bottom))


def alignment_score(a: Image.Image, b: Image.Image, *, width: int = WIDTH, rotate_below: float = 0.9,
                    dihedral: bool = False) -> float:
    """How well one picture is contained in the other (crop, border, small rotation): 1 = identical pixels.

    Colour and brightness changes do not matter (grey, normalised); a copy smaller than half the other's width
    in the other is not searched (that is not "one picture" any more). ``dihedral`` also tries ``b`` turned by
    90/180/270 degrees and mirrored (for pairs already known to be related through a third file, e.g. a rotated
    copy and a bordered copy of one original).
    """
    ga, gb = trim_uniform_border(a.convert("L")), trim_uniform_border(b.convert("L"))
    score = _aligned(ga, gb, width, rotate_below)
    if dihedral and score < rotate_below:
        for transpose in _DIHEDRAL[1:]:
            score = max(score, _aligned(ga, gb.transpose(transpose), width, -1.0))  # no small-angle search
    return score


def _aligned(ga: Image.Image, gb: Image.Image, width: int, rotate_below: float) -> float:
    """Coarse scale grid, then a finer look around the best scale, then small rotations near that scale only."""
    big_a, big_b = _gray_array(ga, width), _gray_array(gb, width)
    directions = ((big_a, ga, gb), (big_b, gb, ga))
    score = -1.0
    found: list[float] = []
    for outer, outer_img, inner in directions:
        s, f = _best_ncc_at(outer, inner, _fractions_for(inner, outer_img))
        s2, f2 = _best_ncc_at(outer, inner, np.array([f - STEP / 2, f + STEP / 2]))
        if s2 > s:
            s, f = s2, f2
        found.append(f)
        score = max(score, s)
    if score >= rotate_below:
        return score
    m = ROTATION_MARGIN
    for (outer, _outer_img, inner), f in zip(directions, found, strict=True):
        near = np.array([f - STEP, f, f + STEP]) * (1 - 2 * m)
        for angle in ANGLES:
            turned = inner.rotate(angle, resample=Image.Resampling.BILINEAR)
            core = turned.crop((round(turned.width * m), round(turned.height * m),
                                round(turned.width * (1 - m)), round(turned.height * (1 - m))))
            score = max(score, _best_ncc(outer, core, near))
    return score


class AlignmentVerifier:
    """Scores file pairs with :func:`alignment_score`; keeps small grey thumbnails of recent files in memory.

    Call it as ``verifier(file_a, file_b)`` (:class:`FileInfo` or paths); returns None when a file cannot be
    read, so the pair is simply not confirmed. Thread-safe.
    """

    def __init__(self, *, width: int = WIDTH, cache_size: int = 4096,
                 loader: Callable[[Path], Image.Image] | None = None) -> None:
        self.width = width
        self._cache: OrderedDict[str, Image.Image | None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._loader = loader or (lambda p: open_image(p, min_side=2 * width))
        self.pairs_scored = 0
        self.geometry = GeometricVerifier()

    def check(self, a: FileInfo | PathLike, b: FileInfo | PathLike, *, mirror: bool = False) -> PairCheck | None:
        """Geometric/photometric evidence (:class:`GeometricVerifier`): one capture or another shot?"""
        return self.geometry.check(a, b, mirror=mirror)

    def thumbnail(self, path: str) -> Image.Image | None:
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        try:
            image: Image.Image | None = self._loader(Path(path)).convert("L")
            if image is not None and image.width > 4 * self.width:
                image.thumbnail((4 * self.width, 4 * self.width), Image.Resampling.BOX)
        except (ImageReadError, OSError, ValueError):
            image = None
        with self._lock:
            self._cache[path] = image
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return image

    supports_dihedral = True

    def __call__(self, a: FileInfo | PathLike, b: FileInfo | PathLike, *, dihedral: bool = False) -> float | None:
        ia, ib = self.thumbnail(path_of(a)), self.thumbnail(path_of(b))
        if ia is None or ib is None:
            return None
        self.pairs_scored += 1
        return alignment_score(ia, ib, width=self.width, dihedral=dihedral)


# --------------------------------------------------------------------------------------------------------------
# geometric verification: one capture, or another shot of the scene?

# Measured with tests/bench/bench_scenes.py --study on the shared scenes (31 frames, 77 exports; 138 copy pairs and
# 1,753 pairs of different frames of one scene) and on the ImageNet-style benchmark library (900 copy pairs and
# 472 nearest different pictures), after a similarity fit and a global tone fit of B onto A (align.photometric):
#   copies:          tone residual <= 0.06 on the scenes, <= 0.14 on ImageNet (a saturation edit: grey levels
#                    change per hue), local correlation >= 0.87 (scenes), >= 0.80 (ImageNet, but for quarter-size
#                    copies of 500-px pictures, which are too small to judge and fall to the other evidence);
#   other captures:  tone residual >= 0.145 (neighbouring frames: parallax; photos of the church from one spot at
#                    another hour: the light), local correlation up to 0.92 where the light changed (residual
#                    >= 0.20); similarity inliers of unrelated pictures <= 14, homography inliers <= 16
#                    (500 ORB features per file; 46-60 of the 145 frame pairs reach 20-30 homography inliers).
# No single cut separates both sets, the two together do: a copy's residual may be the larger the better its
# local structure agrees. The line residual <= base + 0.1 (local - 0.6) with base 0.125 sits between them
# (worst copies 0.03-0.04 under it, worst other captures 0.016-0.05 over it); the sensitivity moves the base
# within that gap only (0.10 strict, 0.135 loose), never into other captures.
MIN_KEYPOINTS = 60  # fewer keypoints than this on either file and geometry cannot judge (flat pictures)
MAX_UPSCALE = 2.0  # a file enlarged more than this for its working copy (under ~240 px) is too small to judge
MIN_INLIERS = 15  # fewer similarity inliers and the pair is not aligned at all (different pictures: <= 14)
SCENE_INLIERS = 20  # a homography or similarity explains at least this many matches: one scene (unrelated: <= 16)
COPY_BASE = (0.10, 0.125, 0.135)  # residual allowance at local correlation 0.6, sensitivity 0 / 0.5 / 1
COPY_SLOPE = 0.1
LOCAL_FLOOR = 0.5  # below this local correlation nothing is a copy, whatever the residual


def copy_residual_limit(local: np.ndarray | float, sensitivity: float = 0.5) -> np.ndarray:
    """The largest tone residual a copy may have at this local correlation and sensitivity (vectorised)."""
    s = min(1.0, max(0.0, float(sensitivity)))
    lo, mid, hi = COPY_BASE
    base = lo + (mid - lo) * s / 0.5 if s <= 0.5 else mid + (hi - mid) * (s - 0.5) / 0.5
    return np.asarray(base + COPY_SLOPE * (np.asarray(local, dtype=np.float64) - 0.6))


def copy_test(residual: np.ndarray, local: np.ndarray, sensitivity: float = 0.5) -> np.ndarray:
    """Which aligned pairs are one capture (NaN evidence: False)."""
    residual, local = np.asarray(residual, dtype=np.float64), np.asarray(local, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (local >= LOCAL_FLOOR) & (residual <= copy_residual_limit(local, sensitivity))


@dataclass(frozen=True)
class PairCheck:
    """Geometric and photometric evidence for one pair (B onto A), from :mod:`align`.

    ``kind``: "aligned" (a similarity explains at least MIN_INLIERS matches and the pixels could be compared:
    :meth:`is_copy` decides), "unrelated" (enough features, no consistent match) or "unknown" (too few features
    or too small to tell: other evidence decides).
    """

    kind: str
    alignment: Alignment | None = None
    photo: Photometric | None = None
    size_a: tuple[int, int] = (0, 0)
    size_b: tuple[int, int] = (0, 0)

    @property
    def residual(self) -> float:
        return self.photo.residual if self.photo is not None else float("nan")

    @property
    def local(self) -> float:
        return self.photo.local if self.photo is not None else float("nan")

    def is_copy(self, sensitivity: float = 0.5) -> bool:
        return self.kind == "aligned" and bool(copy_test(np.array(self.residual), np.array(self.local),
                                                         sensitivity))

    @property
    def same_scene(self) -> bool:
        """Enough matches agree with one perspective change: the same scene, whatever the capture."""
        al = self.alignment
        return self.kind != "unknown" and al is not None and max(al.homography_inliers, al.inliers) >= SCENE_INLIERS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "size_a": list(self.size_a), "size_b": list(self.size_b)}
        if self.alignment is not None:
            out["alignment"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                for k, v in asdict(self.alignment).items()}
        if self.photo is not None:
            out["photo"] = asdict(self.photo)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairCheck:
        al = data.get("alignment")
        alignment = None
        if al is not None:
            al = dict(al)
            al["matrix"] = np.asarray(al["matrix"], dtype=np.float64)
            alignment = Alignment(**al)
        photo = Photometric(**data["photo"]) if data.get("photo") else None
        sa, sb = data.get("size_a", (0, 0)), data.get("size_b", (0, 0))
        return cls(str(data["kind"]), alignment, photo, (int(sa[0]), int(sa[1])), (int(sb[0]), int(sb[1])))


def classify(fa: Features, fb: Features, alignment: Alignment | None, photo: Photometric | None) -> str:
    """"unknown" / "unrelated" / "aligned" (see :class:`PairCheck` and the measured constants above)."""
    if len(fa.points) < MIN_KEYPOINTS or len(fb.points) < MIN_KEYPOINTS:
        return "unknown"
    if fa.work_scale > MAX_UPSCALE or fb.work_scale > MAX_UPSCALE:
        return "unknown"
    if alignment is None or alignment.inliers < MIN_INLIERS:
        return "unrelated"
    if photo is None:
        return "unknown"  # aligned, but overlapping too little to compare the pixels
    return "aligned"


class GeometricVerifier:
    """Checks file pairs with :mod:`align`; each file's features are computed once (cached by content hash when
    the file has one) and kept in a bounded cache. Thread-safe; returns None when a file cannot be read."""

    def __init__(self, cache: FeatureCache | None = None) -> None:
        self.cache = cache or FeatureCache()
        self.pairs_checked = 0
        self.seconds = 0.0  # CPU seconds spent matching (features excluded), for the per-pair cost
        self._lock = threading.Lock()

    def _features(self, info: FileInfo | PathLike, mirror: bool = False) -> Features | None:
        path = path_of(info)
        digest = info.content_hash if isinstance(info, FileInfo) else None
        return self.cache.get(path, key=f"sha:{digest}" if digest else None, mirror=mirror)

    def check(self, a: FileInfo | PathLike, b: FileInfo | PathLike, *, mirror: bool = False) -> PairCheck | None:
        """Evidence for B (``b``) against A (``a``); ``mirror``: also try B mirrored when upright fails."""
        fa, fb = self._features(a), self._features(b)
        if fa is None or fb is None:
            return None
        start = time.thread_time()
        alignment = match_features(fa, fb)
        if mirror and (alignment is None or alignment.inlier_ratio < 0.5):
            fbm = self._features(b, mirror=True)
            if fbm is not None:
                alignment = better(alignment, match_features(fa, fbm, mirrored=True))
        photo = photometric(fa, fb, alignment) if alignment is not None and alignment.inliers >= MIN_INLIERS \
            else None
        kind = classify(fa, fb, alignment, photo)
        with self._lock:
            self.pairs_checked += 1
            self.seconds += time.thread_time() - start
        return PairCheck(kind, alignment, photo, fa.size, fb.size)


# --------------------------------------------------------------------------------------------------------------
# what the finder accepts as a verifier, and its per-library cache

# verifier(file_a, file_b) -> score or None (a plain scorer; tests pass functions)
Scorer = Callable[..., float | None]


@runtime_checkable
class PairVerifier(Protocol):
    """A scorer that can also try turned/mirrored alignments and check geometry (:class:`AlignmentVerifier`,
    and :class:`CachedVerifier` around one); the finder runs the geometric checks only with such a verifier."""

    supports_dihedral: bool

    def __call__(self, a: FileInfo, b: FileInfo, *, dihedral: bool = False) -> float | None: ...

    def check(self, a: FileInfo, b: FileInfo, *, mirror: bool = False) -> PairCheck | None: ...


class CachedVerifier:
    """Remembers verification scores by the two files' content hashes, so opening the duplicates view again
    (or after a rescan that changed a few files) verifies only the new pairs. Kept in the library's data folder
    (:class:`sidecars.VerifiedPairs`); a file without a content hash is never cached."""

    def __init__(self, inner: Scorer | PairVerifier, path: Path) -> None:
        self.inner = inner
        self.store = VerifiedPairs(path)
        self.path = path
        self.supports_dihedral = isinstance(inner, PairVerifier) and inner.supports_dihedral
        self.hits = 0
        if isinstance(inner, PairVerifier):
            self.check = self._check

    def _check(self, a: FileInfo, b: FileInfo, *, mirror: bool = False) -> PairCheck | None:
        """The inner verifier's geometric check, remembered by the two files' content hashes (in order: the
        alignment maps ``b`` onto ``a``)."""
        assert isinstance(self.inner, PairVerifier)
        checks = self.store.checks
        key = f"{a.content_hash}>{b.content_hash}:{int(mirror)}" if a.content_hash and b.content_hash else None
        if key is not None and key in checks:
            try:
                result = PairCheck.from_dict(checks[key])
                self.hits += 1
                return result
            except (KeyError, TypeError, ValueError):
                pass
        found = self.inner.check(a, b, mirror=mirror)
        if key is not None and found is not None:
            checks[key] = found.to_dict()
            self.store.dirty = True
        return found

    def __call__(self, a: FileInfo, b: FileInfo, *, dihedral: bool = False) -> float | None:
        key = None
        scores = self.store.scores
        if a.content_hash and b.content_hash:
            x, y = sorted((a.content_hash, b.content_hash))
            key = f"{x}:{y}:{int(dihedral)}"
            if key in scores:
                self.hits += 1
                return scores[key]
        score = self.inner(a, b, dihedral=dihedral) if dihedral else self.inner(a, b)
        if key is not None and score is not None:
            scores[key] = float(score)
            self.store.dirty = True
        return score

    def save(self) -> None:
        self.store.save()
