"""Geometric alignment of two pictures from local features: is B the same capture as A, and where does it lie?

A copy of a photo (resized, recompressed, cropped, bordered, turned, mirrored, straightened by a few degrees,
recoloured) is the same pixels under a *similarity* transform: scale, rotation, translation and maybe a mirror.
Another shot of the same scene is not: the camera moved, so the scene's planes map under different homographies
and whatever is not on one plane shows parallax. We detect ORB keypoints on a grey working copy of each file
(decoded once through :func:`images.open_image`, so HEIC, RAW previews and EXIF orientation behave as
everywhere else), match them with Lowe's ratio test, fit a similarity with RANSAC
(:func:`cv2.estimateAffinePartial2D`) and also a homography; the evidence is how many matches the similarity
explains, how tightly, and how much better a homography does.

Why ORB and not SIFT (both measured on the shared scene frames at a 768-pixel working size, one thread):
SIFT places keypoints more precisely (median residual of copies 0.01-0.1 px against ORB's 0.7) but costs
250-900 ms of CPU per file against ORB's 15-25 ms, which would put a 100,000-file library far past its budget.
The decisive number is the same for both: a copy's matches almost all fit one similarity (ORB: 94-99 % of
ratio-test matches), neighbouring frames of a walk-around only 16-40 %, and a homography explains 1.5-3x more of
those than the similarity does while it explains no more of a copy's.

Results are cached per file (by path, size and modification time) in a bounded in-memory cache, so each
file's features are computed once however many pairs it is in.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.images import open_image_with_info

WORK_SIDE = 768  # long side of the grey working copy the features are found on (pixels)
MIN_WORK_SIDE = 480  # smaller pictures are enlarged to this: ORB needs ~31-pixel patches around each keypoint
N_FEATURES = 500  # 1000 separated the same pairs (bench_scenes --study) at 2.6x the matching cost
RATIO = 0.8  # Lowe's ratio test on the two nearest descriptors
RANSAC_PX = 3.0  # inlier tolerance at the working size (0.4 % of the long side)
MIN_MATCHES = 12  # fewer ratio-test matches than this and the pair says nothing either way
HOMOGRAPHY_MIN_MATCHES = 20  # = verify.SCENE_INLIERS: a homography over fewer matches cannot show one scene
HOMOGRAPHY_SKIP_RATIO = 0.95  # similarity inliers / matches above which the homography fit is skipped
THUMB_SIDE = 256  # long side of the grey thumbnail kept for the photometric check
CACHE_FILES = 2048  # 16 kB descriptors + 4 kB points + a 44 kB grey thumbnail each: ~130 MB at most

Loader = Callable[[Path], tuple[Image.Image, tuple[int, int]]]


@dataclass(frozen=True)
class Alignment:
    """How picture B maps onto picture A (both upright, i.e. EXIF orientation applied, at full resolution).

    ``matrix`` is 2x3 (float64) and maps B's pixel coordinates (x, y) into A's, mirror included when
    ``mirrored``; ``inliers`` of ``matches`` ratio-test matches agree with it, their median reprojection error is
    ``residual_px`` in A's full-resolution pixels. ``homography_inliers`` is how many a homography explains at
    the same tolerance (much more than ``inliers`` means the camera moved, not the pixels), ``coverage`` the
    fraction of the overlap (on a 4x4 grid of B's part of it) that holds inliers, and ``residual_work`` the
    median error at the working size (what decisions are measured in).
    """

    matrix: np.ndarray
    mirrored: bool
    inliers: int
    matches: int
    residual_px: float
    scale: float
    rotation_deg: float
    homography_inliers: int = 0
    coverage: float = 0.0
    residual_work: float = 0.0
    tolerance_px: float = 0.0  # the inlier tolerance in A's full-resolution pixels
    size_a: tuple[int, int] = (0, 0)  # A's and B's full upright sizes, (0, 0) when not known (older caches)
    size_b: tuple[int, int] = (0, 0)

    def inverse(self) -> np.ndarray:
        """2x3 matrix mapping A's pixel coordinates into B's."""
        return np.linalg.inv(np.vstack([self.matrix, [0.0, 0.0, 1.0]]))[:2]

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.matches if self.matches else 0.0

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """B's pixel coordinates [n, 2] -> A's."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def frame_overlap(self) -> tuple[float, float] | None:
        """:func:`frame_shares` of B's frame mapped onto A's (None when the sizes are not known)."""
        return frame_shares(self.matrix, self.size_a, self.size_b)


def frame_shares(matrix: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> tuple[float, float] | None:
    """(share of A's frame that B covers, share of B's frame inside A) when ``matrix`` maps B's pixels onto A's,
    from the bounding box of B's mapped corners; None when a size is not known. A crop covers part of A and lies
    inside it; a copy with more around it (a border, added canvas, a wider export) covers all of A and reaches
    outside it. Used by the review's reasons and Compare's captions alike."""
    (wa, ha), (wb, hb) = size_a, size_b
    if min(wa, ha, wb, hb) <= 0:
        return None
    m = np.asarray(matrix, dtype=np.float64)
    corners = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], dtype=np.float64) @ m[:, :2].T + m[:, 2]
    x0, y0 = np.clip(corners.min(axis=0), 0, [wa, ha])
    x1, y1 = np.clip(corners.max(axis=0), 0, [wa, ha])
    shared = float((x1 - x0) * (y1 - y0))
    b_area = abs(float(np.linalg.det(m[:, :2]))) * wb * hb
    if b_area <= 0:
        return None
    return shared / (wa * ha), shared / b_area


@dataclass(frozen=True)
class Features:
    """One file's keypoints (working-size coordinates), descriptors and grey thumbnail; ``size`` is the full
    upright size and ``work_scale`` the working copy's pixels per full-resolution pixel."""

    points: np.ndarray  # [n, 2] float32
    descriptors: np.ndarray  # [n, 32] uint8
    size: tuple[int, int]
    work_size: tuple[int, int]
    work_scale: float
    thumb: np.ndarray  # grey uint8, long side THUMB_SIDE, same framing as the working copy


def _default_loader(path: Path) -> tuple[Image.Image, tuple[int, int]]:
    image, info = open_image_with_info(path, min_side=WORK_SIDE // 2)
    return image, (int(info.get("width") or image.width), int(info.get("height") or image.height))


def _working_grey(image: Image.Image) -> Image.Image:
    grey = image.convert("L")
    long_side = max(grey.size)
    target = min(WORK_SIDE, max(MIN_WORK_SIDE, long_side))
    if long_side != target:
        s = target / long_side
        size = (max(8, round(grey.width * s)), max(8, round(grey.height * s)))
        grey = grey.resize(size, Image.Resampling.BOX if s < 0.5 else Image.Resampling.BILINEAR)
    return grey


def compute_features(image: Image.Image, full_size: tuple[int, int] | None = None,
                     *, mirror: bool = False) -> Features:
    """ORB features of ``image`` (any mode, upright) at the working size; ``mirror`` flips it left-right first
    (descriptors are not mirror-invariant, so a mirrored copy needs features of the flipped picture)."""
    import cv2

    grey = _working_grey(image)
    if mirror:
        grey = grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    full = full_size or image.size
    array = np.ascontiguousarray(np.asarray(grey, dtype=np.uint8))
    orb = cv2.ORB.create(nfeatures=N_FEATURES)
    keypoints, descriptors = orb.detectAndCompute(array, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    if descriptors is None:
        descriptors = np.zeros((0, 32), dtype=np.uint8)
    ts = THUMB_SIDE / max(grey.size)
    thumb = grey.resize((max(4, round(grey.width * ts)), max(4, round(grey.height * ts))), Image.Resampling.BOX)
    return Features(points, descriptors, (int(full[0]), int(full[1])), grey.size, grey.width / full[0],
                    np.asarray(thumb, dtype=np.uint8))


class FeatureCache:
    """Features per file, computed once (thread-safe, bounded LRU); the key is the content hash when the caller
    has one, else path + size + modification time, so an edited file is never matched by its old features."""

    def __init__(self, size: int = CACHE_FILES, loader: Loader | None = None) -> None:
        self._items: OrderedDict[tuple[str, bool], Features | None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self._loader = loader or _default_loader
        self.computed = 0
        self.seconds = 0.0  # CPU seconds (this process's threads) spent decoding and computing features

    @staticmethod
    def key_of(path: str | os.PathLike[str]) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return f"missing:{os.fspath(path)}"
        return f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"

    def get(self, path: str | os.PathLike[str], *, key: str | None = None, mirror: bool = False) -> Features | None:
        """Features of ``path`` (None if it cannot be read)."""
        k = (key or self.key_of(path), mirror)
        with self._lock:
            if k in self._items:
                self._items.move_to_end(k)
                return self._items[k]
        start = time.thread_time()
        try:
            image, full = self._loader(Path(path))
            feats: Features | None = compute_features(image, full, mirror=mirror)
        except (ImageReadError, OSError, ValueError):
            feats = None
        with self._lock:
            self.computed += 1
            self.seconds += time.thread_time() - start
            self._items[k] = feats
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return feats


_shared_cache = FeatureCache()


def match_features(fa: Features, fb: Features, *, mirrored: bool = False) -> Alignment | None:
    """Fit B onto A from their features (``fb`` computed on the mirrored picture when ``mirrored``); None when
    there are too few matches to say anything."""
    import cv2

    if len(fa.points) < MIN_MATCHES or len(fb.points) < MIN_MATCHES:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = matcher.knnMatch(fb.descriptors, fa.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    qb = np.array([g.queryIdx for g in good])
    ta = np.array([g.trainIdx for g in good])
    pb, pa = fb.points[qb], fa.points[ta]
    m, mask = cv2.estimateAffinePartial2D(pb, pa, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX,
                                          maxIters=2000, confidence=0.995, refineIters=10)
    if m is None or mask is None:
        return None
    inl = mask.ravel().astype(bool)
    if inl.sum() < 3:
        return None
    err = np.linalg.norm(pb.astype(np.float64) @ m[:, :2].T + m[:, 2] - pa, axis=1)
    h_inliers = 0
    if int(inl.sum()) >= HOMOGRAPHY_SKIP_RATIO * len(good):
        # the similarity explains nearly every match (a copy): a homography could add at most a few percent, so
        # it is not fitted; a similarity is a homography, so its count stands for one
        h_inliers = int(inl.sum())
    elif len(good) >= HOMOGRAPHY_MIN_MATCHES:  # fewer matches cannot show a scene; the fit is the costly part
        h, hmask = cv2.findHomography(pb, pa, cv2.RANSAC, RANSAC_PX, maxIters=2000, confidence=0.995)
        h_inliers = int(hmask.sum()) if h is not None and hmask is not None else 0
    coverage = _coverage(pb[inl], pb, fb.work_size)
    # working coordinates -> full resolution: A_full = Sa^-1 . M . Sb (. flip for a mirrored B)
    sa, sb = fa.work_scale, fb.work_scale
    lin = np.vstack([m, [0.0, 0.0, 1.0]])
    to_b_work = scale_matrix(sb)
    if mirrored:
        # B's working copy was flipped: pixel x became W - 1 - x
        to_b_work = np.array([[-1.0, 0.0, fb.work_size[0] - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ to_b_work
    full = np.linalg.inv(scale_matrix(sa)) @ lin @ to_b_work
    scale = float(np.hypot(m[0, 0], m[1, 0])) * sb / sa
    rotation = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    residual_work = float(np.median(err[inl]))
    return Alignment(matrix=full[:2].astype(np.float64), mirrored=mirrored, inliers=int(inl.sum()),
                     matches=len(good), residual_px=residual_work / sa, scale=scale, rotation_deg=rotation,
                     homography_inliers=h_inliers, coverage=coverage, residual_work=residual_work,
                     tolerance_px=RANSAC_PX / sa, size_a=fa.size, size_b=fb.size)


def scale_matrix(s: float) -> np.ndarray:
    """3x3 map from a picture's pixel coordinates to those of a copy resized by ``s`` (pixel centres at integer
    coordinates, as OpenCV's keypoints and warps use them: x' = (x + 0.5) s - 0.5)."""
    return np.array([[s, 0.0, 0.5 * s - 0.5], [0.0, s, 0.5 * s - 0.5], [0.0, 0.0, 1.0]])


def _coverage(inlier_pts: np.ndarray, all_pts: np.ndarray, size: tuple[int, int], grid: int = 4) -> float:
    """Fraction of the grid cells holding matches that also hold inliers: a copy's fit holds everywhere the two
    pictures overlap, another viewpoint's similarity only on one plane or one part of the frame."""
    w, h = size

    def cells(p: np.ndarray) -> set[tuple[int, int]]:
        cx = np.clip((p[:, 0] / max(w, 1) * grid).astype(int), 0, grid - 1)
        cy = np.clip((p[:, 1] / max(h, 1) * grid).astype(int), 0, grid - 1)
        return set(zip(cx.tolist(), cy.tolist(), strict=True))

    occupied = cells(all_pts)
    return len(cells(inlier_pts) & occupied) / len(occupied) if occupied else 0.0


def better(x: Alignment | None, y: Alignment | None) -> Alignment | None:
    """The alignment with more inliers (ties: the tighter fit)."""
    if x is None:
        return y
    if y is None:
        return x
    return x if (x.inliers, -x.residual_work) >= (y.inliers, -y.residual_work) else y


def align_features(fa: Features, fb: Features, fb_mirrored: Features | None = None) -> Alignment | None:
    """The better of the upright and (when given) mirrored fits of B onto A."""
    upright = match_features(fa, fb)
    if fb_mirrored is None:
        return upright
    return better(upright, match_features(fa, fb_mirrored, mirrored=True))


def align_pair(a: str | os.PathLike[str], b: str | os.PathLike[str], *,
               cache: FeatureCache | None = None) -> Alignment | None:
    """How file ``b`` maps onto file ``a`` (see :class:`Alignment`), or None when either cannot be read or too
    few features match to tell. A mirrored fit is tried when the upright one explains under half the matches."""
    cache = cache or _shared_cache
    fa, fb = cache.get(a), cache.get(b)
    if fa is None or fb is None:
        return None
    best = match_features(fa, fb)
    if best is None or best.inlier_ratio < 0.5:
        fbm = cache.get(b, mirror=True)
        if fbm is not None:
            best = better(best, match_features(fa, fbm, mirrored=True))
    return best


@dataclass(frozen=True)
class Photometric:
    """What is left after B is warped onto A and a global tone curve is fitted (grey thumbnails).

    ``residual`` is the median absolute difference over the overlap relative to A's contrast there (noise level
    for a copy: resampling and compression only); ``changed`` is the fraction of the overlap, in blocks, whose
    difference stands far above that (a subject that moved, a person who walked in, a text overlay); ``overlap``
    the fraction of A's frame that B covers.
    """

    residual: float
    changed: float
    overlap: float
    local: float = 1.0  # median over textured blocks of the band-passed local correlation (1 = same pixels)
    changed_local: float = 0.0  # fraction of textured blocks whose local correlation is below LOCAL_CHANGED


PHOTO_BLOCKS = 12  # blocks along A's long side for the local-difference map
PHOTO_BLOCK_FACTOR = 4.0  # a block "changed" when its difference is this many times the typical one
LOCAL_CHANGED = 0.5


def photometric(fa: Features, fb: Features, alignment: Alignment) -> Photometric | None:
    """Warp B's thumbnail onto A's through ``alignment`` (``fb`` upright: the matrix includes any mirror), fit
    A ~ poly2(B) over the overlap (brightness, contrast, gamma, B/W conversion) and measure what is left."""
    import cv2

    thumb_a, thumb_b = fa.thumb.astype(np.float32), fb.thumb.astype(np.float32)
    ha, wa = thumb_a.shape
    hb, wb = thumb_b.shape
    ta = wa / fa.size[0]  # thumbnail pixels per full-resolution pixel
    tb = wb / fb.size[0]
    full = np.vstack([alignment.matrix, [0.0, 0.0, 1.0]])
    m = (scale_matrix(ta) @ full @ np.linalg.inv(scale_matrix(tb)))[:2]
    b_on_a = cv2.warpAffine(thumb_b, m, (wa, ha), flags=cv2.INTER_LINEAR, borderValue=0.0)
    cover = cv2.warpAffine(np.ones((hb, wb), np.uint8), m, (wa, ha), flags=cv2.INTER_NEAREST, borderValue=0)
    mask: np.ndarray = np.asarray(cv2.erode(cover, np.ones((5, 5), np.uint8))) > 0
    overlap = float(mask.mean())
    if mask.sum() < 0.05 * mask.size or mask.sum() < 200:
        return None
    a = np.asarray(cv2.GaussianBlur(thumb_a, (0, 0), 1.0), dtype=np.float64)
    b = np.asarray(cv2.GaussianBlur(b_on_a, (0, 0), 1.0), dtype=np.float64)
    # A ~ c0 u^2 + c1 u + c2 with u = B / 255, least squares over the overlap, from the 3x3 normal equations
    # (the same minimum-norm solution as lstsq on the [u^2, u, 1] design, at a fraction of its cost: this fit
    # runs on every checked pair)
    u, y = b[mask] / 255.0, a[mask]
    u2 = u * u
    # (sums of products, not ``@``: a BLAS dot product may wake OpenBLAS's own threads beside our pool's)
    s1, s2, s3, s4 = float(u.sum()), float(u2.sum()), float((u2 * u).sum()), float((u2 * u2).sum())
    gram = np.array([[s4, s3, s2], [s3, s2, s1], [s2, s1, float(len(u))]])
    rhs = np.array([float((u2 * y).sum()), float((u * y).sum()), float(y.sum())])
    coef, *_ = np.linalg.lstsq(gram, rhs, rcond=None)
    ub = b / 255.0
    diff = np.abs(a - (coef[0] * ub + coef[1]) * ub - coef[2])
    diff[~mask] = 0.0
    contrast = float(np.std(y)) + 1.0
    residual = float(np.median(diff[mask])) / contrast
    # block map over A's frame; blocks at least 60 % inside the overlap count
    bs = max(4, round(max(wa, ha) / PHOTO_BLOCKS))
    rows, cols = ha // bs, wa // bs
    if rows < 2 or cols < 2:
        return Photometric(residual, 0.0, overlap)
    local, changed_local = _local_correlation(thumb_a, b_on_a, mask, bs, rows, cols)
    d = diff[: rows * bs, : cols * bs].reshape(rows, bs, cols, bs).sum(axis=(1, 3))
    n = mask[: rows * bs, : cols * bs].reshape(rows, bs, cols, bs).sum(axis=(1, 3))
    inside = n >= 0.6 * bs * bs
    if inside.sum() < 4:
        return Photometric(residual, 0.0, overlap, local, changed_local)
    block = d[inside] / n[inside] / contrast
    typical = float(np.median(block))
    changed = float(np.mean(block > PHOTO_BLOCK_FACTOR * max(typical, 0.01)))
    return Photometric(residual, changed, overlap, local, changed_local)


def _local_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray, bs: int, rows: int,
                       cols: int) -> tuple[float, float]:
    """Per-block correlation of the band-passed pictures, each block with its own gain and offset, so any tone,
    colour or black-and-white edit (locally linear) keeps a copy's blocks near 1, while parallax or a moved
    subject scrambles the fine structure where it happens. Blocks without texture in A say nothing and are left
    out. Returns (median over textured blocks, fraction of them below LOCAL_CHANGED)."""
    import cv2

    def band(x: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.GaussianBlur(x, (0, 0), 0.8) - cv2.GaussianBlur(x, (0, 0), 3.0), dtype=np.float64)

    pa, pb = band(a), band(b)
    pa[~mask] = 0.0
    pb[~mask] = 0.0
    h, w = rows * bs, cols * bs

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(rows, bs, cols, bs).sum(axis=(1, 3))

    n = blocks(mask.astype(np.float64))
    inside = n >= 0.6 * bs * bs
    sab, saa, sbb = blocks(pa * pb), blocks(pa * pa), blocks(pb * pb)
    sa_, sb_ = blocks(pa), blocks(pb)
    nn = np.maximum(n, 1.0)
    cov = sab - sa_ * sb_ / nn
    va = saa - sa_ * sa_ / nn
    vb = sbb - sb_ * sb_ / nn
    if not inside.any():
        return 1.0, 0.0
    energy = va[inside] / nn[inside]
    textured = inside & (va / nn > max(1.0, 0.1 * float(np.median(energy))))
    if textured.sum() < 4:
        return 1.0, 0.0
    ncc = cov[textured] / np.sqrt(np.maximum(va[textured] * vb[textured], 1e-9))
    return float(np.median(ncc)), float(np.mean(ncc < LOCAL_CHANGED))
