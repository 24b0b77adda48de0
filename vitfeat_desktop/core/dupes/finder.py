"""Duplicate tiers and groups from content hashes, perceptual hashes and the k-NN graph, and the keeper rules.

How a pair of files becomes "one picture":

* ``exact``: same content hash (same bytes).
* ``same-pixels``: different bytes, identical pixels once decoded (metadata edited, lossless re-save). Only pairs
  whose perceptual hashes are equal and whose sizes agree are decoded in full and compared, so this costs a few
  decodes, not a pass over the library.
* ``near-duplicate``: one picture, different files. Two independent witnesses, either suffices:
  the dihedral pHash (the copy's hash equals one of the original's eight rotated/mirrored hashes within a few
  bits: resized, recompressed, format-changed, colour-adjusted, rotated 90/180/270 and mirrored copies), and the
  model, for what the hash cannot see (crops, borders, small rotations, watermarks). The model's pooled vector
  alone is a poor copy detector (different photos of one subject score as high as a crop), so a pair whose
  embedding similarity is only in the grey zone is confirmed by aligning the two pictures' pixels (see
  ``verify.py``, which also says why patch tokens were measured and not used).
  Every such candidate (not exact/same-pixels) is also checked geometrically (``align.py``, ``verify.py``): ORB
  features, a RANSAC similarity fit, B warped onto A and a tone fit. Where both files have enough features that
  check alone decides, because another shot of the same scene (a burst, a step to the side) shares the hash
  and the embedding of a copy but not its pixels.
* ``similar``: another capture of one scene (many points on one homography, or close in embedding and layout
  where geometry cannot judge), not a copy. Returned separately by :meth:`DuplicateFinder.similar_groups`,
  never mixed into duplicate groups, never offered for removal.

The embedding and hash cuts come from a :class:`Thresholds` object that ``calibrate.py`` fits to the model on the
user's own library; the geometric copy test is model-independent (measured cuts in ``verify.py``), so pairs it
can judge do not depend on when or on what the library was calibrated. A sensitivity in [0, 1] (0.5 =
calibrated) moves the cuts together, but the loose half never goes past the calibrated embedding/hash cuts: it
only loosens the geometric copy test, within the measured gap between copies and other captures.

Grouping never chains: pairs are joined into components, then each component is split around keepers: the best
keeper takes every file that matches *it* directly, and the rest start a new group. All pair evidence is
computed once in :meth:`DuplicateFinder.build` (this is where files may be read), so :meth:`groups` with a new
sensitivity only filters arrays: well under a second for 100,000 files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfeat_desktop import config
from vitfeat_desktop.core.dupes.keeper import RAW_FORMATS as RAW_FORMATS  # re-exported
from vitfeat_desktop.core.dupes.keeper import KeeperChoices, KeeperJudge, is_raw, keeper_key
from vitfeat_desktop.core.dupes.keeper import under as _under
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.phash import ImageHashes
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

if TYPE_CHECKING:
    from vitfeat_desktop.core.dupes.calibrate import Calibration
    from vitfeat_desktop.core.library.facade import Library

TIERS = ("exact", "same-pixels", "near-duplicate", "similar")
_TIER_RANK = {t: n for n, t in enumerate(TIERS)}
_TRANSFORM_NAMES = ("", "rotated 90°", "rotated 180°", "rotated 270°", "mirrored", "mirrored and rotated 90°",
                    "mirrored and rotated 180°", "mirrored and rotated 270°")
MAX_COMPONENT = 64  # a "component" bigger than this is a flat/dark-image cluster, not copies: pairs only


# --------------------------------------------------------------------------------------------------------------
# files and keepers


@dataclass(frozen=True)
class FileInfo:
    """What duplicate finding needs to know about one file (a subset of the catalogue's FileRecord)."""

    id: int
    path: str
    size: int = 0
    width: int | None = None
    height: int | None = None
    format: str | None = None
    capture_date: str | None = None
    content_hash: str | None = None
    hashes: ImageHashes | None = None
    mtime: float = 0.0
    camera: str | None = None  # EXIF "Make Model" (the keeper prefers the camera's file over an export)
    orientation: int | None = None  # EXIF orientation tag

    @classmethod
    def from_record(cls, record: Any) -> FileInfo:
        """From a catalogue ``FileRecord`` (or anything with the same attributes)."""
        return cls(id=int(record.id), path=str(record.path), size=int(record.size or 0), width=record.width,
                   height=record.height, format=record.format, capture_date=record.capture_date,
                   content_hash=record.content_hash, hashes=record.hashes, mtime=float(record.mtime or 0.0),
                   camera=getattr(record, "camera", None), orientation=getattr(record, "orientation", None))

    @property
    def pixels(self) -> int:
        return int(self.width or 0) * int(self.height or 0)

    @property
    def is_raw(self) -> bool:
        return is_raw(self)


# --------------------------------------------------------------------------------------------------------------
# thresholds


SIMILAR_SHOT_HASH_BITS = 20


@dataclass(frozen=True)
class Thresholds:
    """Cuts for one model, fitted by ``calibrate.py``; each *_lo/_hi is the cut at sensitivity 1 / 0.

    ``cos_*`` apply to cosine similarity of the *centred* pooled vectors (the library mean removed: the raw
    pooled vectors of a ViT share a large common direction that makes every pair look alike). ``align_*`` apply
    to the alignment score of ``verify.py``; ``verify_min`` is the lowest similarity worth verifying.
    """

    cos_accept: float = 0.93  # accept on the pooled vector alone (no verification) at sensitivity 0.5
    cos_accept_lo: float = 0.90
    cos_accept_hi: float = 0.96
    verify_min: float = 0.5
    verify_rank: int = 5  # verify only pairs among each other's nearest few (the cost stays per file, not per pair)
    # Band-pass alignment scores (verify.py): different photos' nearest neighbours reach 0.74 at most on the shared
    # photos, copies are mostly above 0.85 (tests/bench/bench_dupes.py and the study quoted in verify.py).
    align_cut: float = 0.78
    align_lo: float = 0.75
    align_hi: float = 0.85
    similar_cut: float = 0.6
    hash_cut: int = 8
    hash_lo: int = 10
    hash_hi: int = 5
    model_key: str = ""
    source: str = "default"  # "default" | "calibrated"
    stats: dict[str, Any] = field(default_factory=dict)

    def at(self, sensitivity: float) -> tuple[float, float, float]:
        """(cos_accept, align_cut, hash_cut) at ``sensitivity`` (0 = strictest, 0.5 = calibrated, 1 = loosest)."""
        s = min(1.0, max(0.0, float(sensitivity)))
        return (_lerp(self.cos_accept_hi, self.cos_accept, self.cos_accept_lo, s),
                _lerp(self.align_hi, self.align_cut, self.align_lo, s),
                _lerp(self.hash_hi, self.hash_cut, self.hash_lo, s))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


ALIGN_STRONG_MARGIN = 0.08
BURST_ALIGN = 0.6


def hash_copies(hash_dist: np.ndarray, align: np.ndarray, hash_cut: float, t: Thresholds) -> np.ndarray:
    """Pairs the perceptual hash calls copies, unless the pixels were checked and do not line up.

    Two frames of a burst share their layout, so their pHashes can be a few bits apart; a close but not
    near-identical hash whose pixel alignment fails (the subject moved) is a similar shot, not a copy.
    Resized, recompressed, recoloured and watermarked copies all align far above ``BURST_ALIGN``.
    """
    with np.errstate(invalid="ignore"):
        moved = (hash_dist > t.hash_hi) & (align < BURST_ALIGN)  # NaN (not verified) compares False
    return (hash_dist <= hash_cut) & ~moved


def aligned_copies(align: np.ndarray, cos: np.ndarray, related: np.ndarray, align_cut: float, cos_cut: float,
                   t: Thresholds) -> np.ndarray:
    """Pairs the pixel alignment confirms as copies.

    A clear alignment (``align_cut`` + 0.08) needs only the embedding floor; one just over the cut must also look
    alike to the model (halfway between the floor and the pooled-vector cut), because flat, low-texture pictures
    (sky, a wide banner) can align by chance just over the cut (a balance beam and an airship did, at 0.79 with an
    embedding similarity of 0.6). Files linked through a turned/mirrored copy (``related``) keep the plain cut:
    turning ruins the embedding.
    """
    with np.errstate(invalid="ignore"):
        strong = (align >= align_cut + ALIGN_STRONG_MARGIN) & (cos >= t.verify_min)
        weak = (align >= align_cut) & (cos >= (t.verify_min + cos_cut) / 2)
        return strong | weak | ((align >= align_cut) & related)


GEO_UNCHECKED, GEO_UNKNOWN, GEO_UNRELATED, GEO_ALIGNED = 0, 1, 2, 3
_GEO_KINDS = {"unknown": GEO_UNKNOWN, "unrelated": GEO_UNRELATED, "aligned": GEO_ALIGNED}


@dataclass
class Geometry:
    """Per-pair geometric evidence (``verify.PairCheck``) as arrays, so regrouping stays array operations.

    ``kind``: GEO_UNCHECKED (no check ran), GEO_UNKNOWN (too few features or too small to tell), GEO_UNRELATED
    (enough features, nothing consistent matches), GEO_ALIGNED (a similarity fit; ``residual``/``local`` say
    whether the pixels are one capture's); ``scene``: enough matches for one scene; ``checks`` keeps the full
    evidence for the reasons, by pair row.
    """

    kind: np.ndarray
    residual: np.ndarray
    local: np.ndarray
    scene: np.ndarray
    checks: dict[int, Any]

    @classmethod
    def unchecked(cls, n: int) -> Geometry:
        return cls(np.zeros(n, dtype=np.int8), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool), {})

    @classmethod
    def empty(cls) -> Geometry:
        return cls.unchecked(0)

    def fill(self, rows: Sequence[int], checks: Sequence[Any]) -> None:
        for q, check in zip(rows, checks, strict=True):
            if check is None:
                self.kind[q] = GEO_UNKNOWN
                continue
            self.kind[q] = _GEO_KINDS.get(check.kind, GEO_UNKNOWN)
            self.residual[q], self.local[q] = check.residual, check.local
            self.scene[q] = bool(check.same_scene)
            self.checks[int(q)] = check

    def concat(self, other: Geometry) -> Geometry:
        offset = len(self.kind)
        return Geometry(np.concatenate([self.kind, other.kind]), np.concatenate([self.residual, other.residual]),
                        np.concatenate([self.local, other.local]), np.concatenate([self.scene, other.scene]),
                        {**self.checks, **{offset + k: v for k, v in other.checks.items()}})

    def copies(self, sensitivity: float) -> np.ndarray:
        """Pairs geometry calls one capture at ``sensitivity``."""
        from vitfeat_desktop.core.dupes.verify import copy_test

        return (self.kind == GEO_ALIGNED) & copy_test(self.residual, self.local, sensitivity)

    def decided(self) -> np.ndarray:
        """Pairs geometry can judge: its verdict replaces the hash, embedding and pixel-correlation evidence."""
        return self.kind >= GEO_UNRELATED


def near_pairs(t: Thresholds, sensitivity: float, *, exact: np.ndarray, same_pixels: np.ndarray,
               hash_dist: np.ndarray, align: np.ndarray, cos: np.ndarray | None, related: np.ndarray,
               geo: Geometry) -> np.ndarray:
    """Which pairs are copies of one capture at ``sensitivity``.

    Where geometry could judge (enough features on both files), it decides alone: a pair is a copy when B's
    pixels map onto A's under a similarity and agree after a tone fit, and never otherwise, however alike the
    hashes or embeddings (two frames of a burst share both). Elsewhere (flat or tiny pictures) the hash, the
    pooled vector and the pixel correlation decide as before, but never more loosely than calibrated: the
    slider's loose half only loosens the geometric copy test, within the gap measured between copies and
    other captures, so no setting groups different pictures (a mushroom with a pizza at cos 0.90).
    """
    cos_cut, align_cut, hash_cut = t.at(sensitivity)
    cos_cut, align_cut, hash_cut = max(cos_cut, t.cos_accept), max(align_cut, t.align_cut), min(hash_cut, t.hash_cut)
    other = hash_copies(hash_dist, align, hash_cut, t)
    if cos is not None:
        with np.errstate(invalid="ignore"):
            other |= (cos >= cos_cut) | aligned_copies(align, cos, related, align_cut, cos_cut, t)
    # A pair whose pHashes agree within hash_hi bits but where no feature match was found at all is a failure of
    # the matcher (a low-texture picture under a large overlay, say), not evidence: such pairs keep the hash's word.
    # Another capture of one scene does align (it is "aligned", not "unrelated"), so this never lets one through.
    decided = geo.decided() & ~((geo.kind == GEO_UNRELATED) & (hash_dist <= t.hash_hi))
    return exact | same_pixels | geo.copies(sensitivity) | (other & ~decided)


def _lerp(at0: float, at_half: float, at1: float, s: float) -> float:
    if s <= 0.5:
        return at0 + (at_half - at0) * (s / 0.5)
    return at_half + (at1 - at_half) * ((s - 0.5) / 0.5)


# --------------------------------------------------------------------------------------------------------------
# "not a duplicate" marks


class NotDuplicateMarks:
    """Pairs the user said are not duplicates; keyed by content hash so the mark survives renames and moves.

    Stored per library in the data dir (never next to the photos), written atomically.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0  # bumped on every change, so a finder holding this object regroups with it
        self._pairs: set[tuple[str, str]] = set()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._pairs = {(str(min(p)), str(max(p))) for p in data.get("pairs", []) if len(p) == 2}
        except (OSError, ValueError, TypeError):
            self._pairs = set()

    @classmethod
    def for_library(cls, library_folder: str | os.PathLike[str]) -> NotDuplicateMarks:
        key = hashlib.sha256(os.fsencode(os.path.abspath(library_folder))).hexdigest()[:16]
        return cls(config.data_dir() / "dupes" / f"not-duplicates-{key}.json")

    @staticmethod
    def _key(info: FileInfo) -> str:
        return info.content_hash or f"path:{os.path.abspath(info.path)}"

    def _pair(self, a: FileInfo, b: FileInfo) -> tuple[str, str]:
        x, y = self._key(a), self._key(b)
        return (x, y) if x <= y else (y, x)

    def mark(self, a: FileInfo, b: FileInfo) -> None:
        self._pairs.add(self._pair(a, b))
        self._save()

    def unmark(self, a: FileInfo, b: FileInfo) -> None:
        self._pairs.discard(self._pair(a, b))
        self._save()

    def is_marked(self, a: FileInfo, b: FileInfo) -> bool:
        return self._pair(a, b) in self._pairs

    def __len__(self) -> int:
        return len(self._pairs)

    def pairs(self) -> list[tuple[str, str]]:
        """The stored pairs of keys (content hashes, or ``path:...``), sorted: what the GUI lists for unmarking."""
        return sorted(self._pairs)

    def _save(self) -> None:
        self.version += 1
        config.write_json_atomic(self.path, {"pairs": sorted(list(p) for p in self._pairs)})


# --------------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Member:
    info: FileInfo
    tier: str  # "keeper" for the keeper itself
    reason: str
    score: float
    reference: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.info.path, "tier": self.tier, "reason": self.reason, "score": round(self.score, 4),
                "reference": self.reference}


@dataclass(frozen=True)
class DuplicateGroup:
    keeper: FileInfo
    members: tuple[Member, ...]  # keeper first
    tier: str  # the loosest tier of its members

    @property
    def files(self) -> list[str]:
        return [m.info.path for m in self.members]

    @property
    def removable(self) -> list[Member]:
        """Members an action may move: not the keeper, not in a reference folder."""
        return [m for m in self.members if m.tier != "keeper" and not m.reference]

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "keeper": self.keeper.path, "tier": self.tier,
                "members": [m.to_dict() for m in self.members]}


@dataclass(frozen=True)
class SimilarSet:
    """Different captures of one scene (a burst, a walk-around, brackets): listed apart, never auto-selected.

    ``reason`` says in words why the set was formed and, where it can be told, what differs between the shots
    (viewpoint moved, subject moved, exposure); ``files`` are best-ranked first. Iterating yields the files, so a
    set reads like the plain list it replaced.
    """

    files: tuple[FileInfo, ...]
    reason: str = "close in content and layout, but not the same capture"

    def __iter__(self) -> Iterator[FileInfo]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> FileInfo:
        return self.files[index]

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.path for f in self.files], "reason": self.reason}


# --------------------------------------------------------------------------------------------------------------
# pair evidence


def hamming_u64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit count of a XOR b for uint64 arrays (vectorised popcount)."""
    x = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))
    count = np.zeros(x.shape, dtype=np.int64)
    for shift in range(0, 64, 8):
        count += _POP8[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)]
    return count


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _hash_matrix(files: Sequence[FileInfo]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phashes [n,8] uint64, dhash [n] uint64, has_hash [n] bool)."""
    n = len(files)
    ph = np.zeros((n, 8), dtype=np.uint64)
    dh = np.zeros(n, dtype=np.uint64)
    ok = np.zeros(n, dtype=bool)
    for i, f in enumerate(files):
        if f.hashes is not None:
            ph[i] = np.array(f.hashes.phashes, dtype=np.uint64)
            dh[i] = np.uint64(f.hashes.dhash)
            ok[i] = True
    return ph, dh, ok


def hash_candidates(phashes: np.ndarray, has_hash: np.ndarray, *, max_bucket: int = 64,
                    max_distance: int = 16) -> np.ndarray:
    """Pairs (i<j) whose pHashes share a 16-bit quarter in some orientation: every pair within Hamming 3 and
    most within 10; pairs further apart than ``max_distance`` (chance collisions of one quarter) are dropped.
    Buckets larger than ``max_bucket`` (flat, dark or blank pictures that all hash alike) are skipped rather
    than exploding into millions of pairs; the k-NN graph still covers those files."""
    n = phashes.shape[0]
    idx = np.nonzero(has_hash)[0]
    if idx.size < 2:
        return np.zeros((0, 2), dtype=np.int64)
    rows = []
    for t in range(8):
        for q in range(4):
            chunk = ((phashes[idx, t] >> np.uint64(16 * q)) & np.uint64(0xFFFF)).astype(np.int64)
            key = (q << 16) | chunk
            rows.append(np.stack([key, idx, np.full(idx.size, t)], axis=1))
    table = np.concatenate(rows)
    # identity-orientation rows of i meet any-orientation rows of j
    order = np.argsort(table[:, 0], kind="stable")
    table = table[order]
    keys = table[:, 0]
    bounds = np.nonzero(np.diff(keys))[0] + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(keys)]])
    # every identity-orientation row meets every row of its bucket (vectorised: no Python loop per bucket)
    sizes = ends - starts
    bucket_of = np.repeat(np.arange(len(starts)), sizes)
    usable = (sizes[bucket_of] >= 2) & (sizes[bucket_of] <= max_bucket) & (table[:, 2] == 0)
    base_rows = np.nonzero(usable)[0]
    if base_rows.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    lengths = sizes[bucket_of[base_rows]]
    first = starts[bucket_of[base_rows]]
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    a = table[np.repeat(base_rows, lengths), 1]
    b = table[np.repeat(first, lengths) + offsets, 1]
    sel = a != b
    out = np.unique(np.stack([np.minimum(a[sel], b[sel]), np.maximum(a[sel], b[sel])], axis=1), axis=0)
    if not out.size:
        return np.zeros((0, 2), dtype=np.int64)
    out = out[(out[:, 0] < n) & (out[:, 1] < n)]
    dist, _ = dihedral_distance(phashes, out[:, 0], out[:, 1])
    return out[dist <= max_distance]


def dihedral_distance(phashes: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min Hamming distance between i's upright pHash and j's eight orientations, and which orientation."""
    d = np.stack([hamming_u64(phashes[i, 0], phashes[j, t]) for t in range(8)], axis=1)
    return d.min(axis=1), d.argmin(axis=1)


def default_pixel_digest(info: FileInfo) -> str | None:
    """SHA-256 of the fully decoded, upright RGB pixels (None when the file cannot be read)."""
    try:
        image = open_image(info.path)
    except Exception:
        return None
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


# verifier(file_a, file_b) -> score or None; ``verify.AlignmentVerifier`` also takes ``dihedral=True``
PatchVerifier = Callable[..., float | None]


# --------------------------------------------------------------------------------------------------------------
# the finder


class DuplicateFinder:
    """Holds the pair evidence of one library; :meth:`groups` and :meth:`similar_groups` regroup instantly."""

    def __init__(
        self,
        files: Sequence[FileInfo],
        pairs: np.ndarray,
        *,
        cos: np.ndarray,
        hash_dist: np.ndarray,
        transform: np.ndarray,
        align: np.ndarray,
        exact: np.ndarray,
        same_pixels: np.ndarray,
        thresholds: Thresholds,
        references: Sequence[Path] = (),
        marks: NotDuplicateMarks | None = None,
        has_vectors: bool = True,
        related: np.ndarray | None = None,
        geometry: Geometry | None = None,
        choices: KeeperChoices | None = None,
        judge: KeeperJudge | None = None,
    ) -> None:
        self.files = list(files)
        self.pairs = pairs
        self.cos = cos
        self.hash_dist = hash_dist
        self.transform = transform
        self.align = align
        # pairs added because both files already match a third one (their alignment may be turned/mirrored)
        self.related = related if related is not None else np.zeros(len(pairs), dtype=bool)
        self.exact = exact
        self.same_pixels = same_pixels
        self.geo = geometry if geometry is not None else Geometry.unchecked(len(pairs))
        self.thresholds = thresholds
        self.references = [Path(os.path.abspath(r)) for r in references]
        self.marks = marks
        self.has_vectors = has_vectors
        self.choices = choices  # the user's keeper per group (keeper.py), None: automatic only
        self.judge = judge if judge is not None else KeeperJudge()  # pixel evidence, cached across regroups
        self._keepers: dict[tuple[tuple[int, ...], int], tuple[int, str]] = {}  # group members -> keeper, reason
        self._keys = [keeper_key(f, self.references) for f in self.files]
        self._rank = np.empty(len(self.files), dtype=np.int64)
        self._rank[sorted(range(len(self.files)), key=self._keys.__getitem__)] = np.arange(len(self.files))
        self._pair_index = {(int(a), int(b)): n for n, (a, b) in enumerate(pairs)}
        self._marked = np.zeros(len(pairs), dtype=bool)
        self.refresh_marks()

    def refresh_marks(self) -> None:
        """Re-read which stored pairs the user marked "not a duplicate" (after a mark, before regrouping)."""
        self._marks_version = self.marks.version if self.marks is not None else 0
        if self.marks is None or len(self.marks) == 0:
            self._marked[:] = False
            return
        self._marked = np.array([self.marks.is_marked(self.files[a], self.files[b])
                                 for a, b in self.pairs.tolist()], dtype=bool)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        files: Sequence[FileInfo],
        *,
        vectors: np.ndarray | None = None,
        knn: np.ndarray | None = None,
        thresholds: Thresholds | None = None,
        mean: np.ndarray | None = None,
        verifier: PatchVerifier | None = None,
        pixel_digest: Callable[[FileInfo], str | None] | None = default_pixel_digest,
        references: Iterable[str | os.PathLike[str]] = (),
        marks: NotDuplicateMarks | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        choices: KeeperChoices | None = None,
    ) -> DuplicateFinder:
        """Collect candidate pairs and their evidence; the only step that may read files.

        ``vectors``: pooled vectors aligned with ``files`` (rows of zeros for files without one), any norm.
        ``knn``: neighbour indices [n,k] into ``files`` (-1 for none); computed by brute force when omitted.
        ``mean``: the centring vector (the calibration's, so cuts and scores agree); the vectors' mean if None.
        ``verifier``: patch-token match score for grey-zone pairs (``verify.PatchMatcher``), or None.
        """
        thresholds = thresholds or Thresholds()
        files = list(files)
        n = len(files)
        reporter = Reporter(progress, "duplicates", total=None)
        ph, _dh, has_hash = _hash_matrix(files)
        candidate_sets = [hash_candidates(ph, has_hash)]
        by_hash: dict[str, list[int]] = {}
        for i, f in enumerate(files):
            if f.content_hash:
                by_hash.setdefault(f.content_hash, []).append(i)
        for members in by_hash.values():
            if len(members) > 1:
                m = np.array(members)
                a, b = np.meshgrid(m, m, indexing="ij")
                sel = a < b
                candidate_sets.append(np.stack([a[sel], b[sel]], axis=1))
        unit: np.ndarray | None = None
        verify_pairs: set[tuple[int, int]] = set()
        if vectors is not None and len(vectors):
            unit = center_vectors(np.asarray(vectors, dtype=np.float32), mean)
            if knn is None:
                knn = brute_knn(unit, k=10)
            knn = np.asarray(knn, dtype=np.int64)
            valid = knn >= 0
            rows = np.repeat(np.arange(n), knn.shape[1]).reshape(knn.shape)
            a, b = rows[valid], knn[valid]
            sel = a != b
            candidate_sets.append(np.stack([np.minimum(a[sel], b[sel]), np.maximum(a[sel], b[sel])], axis=1))
            close = knn[:, : thresholds.verify_rank]
            for x, y in zip(rows[:, : close.shape[1]][close >= 0], close[close >= 0], strict=True):
                if x != y:
                    verify_pairs.add((min(int(x), int(y)), max(int(x), int(y))))
        check_cancel(cancel)
        pairs = _unique_pairs(candidate_sets)
        evidence = _Evidence(files, unit, ph, has_hash, thresholds, verifier, pixel_digest, reporter, cancel)
        evidence.add(pairs, verify_pairs, closure=False)
        # Files of one scene (a walk-around, a burst and its exports) link to each other geometrically; an export
        # the embedding places far from its own frame (a 4:5 portrait crop of a landscape frame) is still within
        # two such links of it, so those pairs are checked too (geometry alone, whatever the embedding says).
        if unit is not None and evidence.geometry is not None:
            scene_pairs = _scene_closure_pairs(n, evidence, unit)
            if scene_pairs.size:
                evidence.add(scene_pairs, {(int(x), int(y)) for x, y in scene_pairs}, closure=False, geometry_only=True)
        # Close each component found at the loosest setting, so every keeper/member pair has its own evidence
        # (grouping asks "does this file match the keeper", and the keeper may not be among its neighbours).
        loose = evidence.near_loose()
        rank = np.empty(n, dtype=np.int64)
        rank[sorted(range(n), key=lambda i: keeper_key(files[i], [Path(os.path.abspath(r)) for r in references]))] \
            = np.arange(n)
        extra = _component_pairs(n, evidence.pairs[loose], rank)
        if extra.size:
            known = {(int(x), int(y)): n for n, (x, y) in enumerate(evidence.pairs.tolist())}
            new = np.array([p for p in extra.tolist() if (p[0], p[1]) not in known], dtype=np.int64).reshape(-1, 2)
            again = [known[(p[0], p[1])] for p in extra.tolist() if (p[0], p[1]) in known]
            evidence.reverify(np.array(again, dtype=np.int64))
            evidence.add(new, {(int(x), int(y)) for x, y in new}, closure=True)
        reporter.update(len(evidence.pairs), force=True)
        finder = cls(files, evidence.pairs, cos=evidence.cos, hash_dist=evidence.hdist,
                     transform=evidence.transform, align=evidence.align, exact=evidence.exact,
                     same_pixels=evidence.same_pixels, related=evidence.related, geometry=evidence.geo,
                     thresholds=thresholds, references=[Path(r) for r in references], marks=marks,
                     has_vectors=unit is not None, choices=choices)
        # Keeper evidence (keeper.py) for every file that is in a group at some sensitivity, read here, in
        # parallel, so that regrouping stays a matter of arrays and cached verdicts.
        in_groups = sorted({int(x) for x in finder.pairs[finder.near_mask(1.0)].ravel()})
        finder.judge.prefetch([files[i] for i in in_groups], reporter=reporter, cancel=cancel)
        finder.groups(0.5)
        return finder

    # -- deciding -------------------------------------------------------------------------------------------
    def near_mask(self, sensitivity: float = 0.5) -> np.ndarray:
        """Which stored pairs are copies of one picture at this sensitivity (array ops only)."""
        if self.marks is not None and self.marks.version != self._marks_version:
            self.refresh_marks()
        near = near_pairs(self.thresholds, sensitivity, exact=self.exact, same_pixels=self.same_pixels,
                          hash_dist=self.hash_dist, align=self.align, cos=self.cos if self.has_vectors else None,
                          related=self.related, geo=self.geo)
        return near & ~self._marked

    def pair_reason(self, p: int) -> tuple[str, str, float]:
        """(tier, reason, score) of stored pair ``p``."""
        if self.exact[p]:
            return "exact", "same bytes (identical content hash)", 1.0
        if self.same_pixels[p]:
            return "same-pixels", "identical pixels after decoding (metadata or lossless re-save)", 1.0
        check = self.geo.checks.get(p)
        if check is not None and self.geo.kind[p] == GEO_ALIGNED and check.alignment is not None:
            a, b = (int(x) for x in self.pairs[p])
            keeper_is_a = self._rank[a] <= self._rank[b]
            return "near-duplicate", same_capture_reason(check, keeper_is_a), float(check.local)
        h = int(self.hash_dist[p])
        turned = _TRANSFORM_NAMES[int(self.transform[p])]
        parts = []
        if h <= self.thresholds.hash_lo:
            parts.append(f"perceptual hash {h}/64 bits apart" + (f" ({turned} copy)" if turned else ""))
        if not self.has_vectors:
            return "near-duplicate", "; ".join(parts), 1.0 - min(h, 64) / 64.0
        if not np.isnan(self.align[p]) and self.related[p]:
            parts.append(f"pixels align (turned/mirrored, cropped or bordered) {self.align[p]:.2f}; both match "
                         "a common copy")
        elif not np.isnan(self.align[p]):
            parts.append(f"pixels align after crop/border/rotation {self.align[p]:.2f}")
        parts.append(f"embedding similarity {float(self.cos[p]):.3f}")
        return "near-duplicate", "; ".join(parts), float(self.cos[p])

    def groups(self, sensitivity: float = 0.5) -> list[DuplicateGroup]:
        """Duplicate groups at ``sensitivity``; a file is in at most one group. Reads no file."""
        near = self.near_mask(sensitivity)
        return self._group(np.nonzero(near)[0])

    def _group(self, edge_ids: np.ndarray) -> list[DuplicateGroup]:
        n = len(self.files)
        if not edge_ids.size:
            return []
        parent = np.arange(n)

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return int(x)

        adjacency: dict[int, dict[int, int]] = {}
        for p in edge_ids:
            a, b = (int(x) for x in self.pairs[p])
            adjacency.setdefault(a, {})[b] = int(p)
            adjacency.setdefault(b, {})[a] = int(p)
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb
        components: dict[int, list[int]] = {}
        for node in adjacency:
            components.setdefault(find(node), []).append(node)
        out: list[DuplicateGroup] = []
        for nodes in components.values():
            remaining = sorted(nodes, key=lambda x: self._rank[x])
            while len(remaining) > 1:
                keeper = remaining[0]
                links = adjacency.get(keeper, {})
                taken = [x for x in remaining[1:] if x in links]
                if not taken:
                    remaining = remaining[1:]
                    continue
                out.append(self._make_group(keeper, taken, links))
                taken_set = set(taken)
                remaining = [x for x in remaining[1:] if x not in taken_set]
        out.sort(key=lambda g: (_TIER_RANK[g.tier], g.keeper.path))
        return out

    def _make_group(self, keeper: int, taken: list[int], links: dict[int, int]) -> DuplicateGroup:
        """The group of ``keeper`` (best by the static rules) and the files that match it; the keeper itself is
        then decided by ``keeper.py`` from the members' pixels (the file the others were made from), the user's
        choice and reference folders. Each member keeps the evidence of its match to the first keeper."""
        nodes = [keeper, *taken]
        key = (tuple(nodes), self.choices.version if self.choices is not None else 0)
        if key not in self._keepers:
            self._keepers[key] = self.judge.choose([self.files[x] for x in nodes], self.references, self.choices)
        k, why = self._keepers[key]
        chosen = nodes[k]
        kinfo = self.files[chosen]
        members = [Member(kinfo, "keeper", "kept: " + why, 1.0, _under(kinfo.path, self.references))]
        for x in nodes:
            if x == chosen:
                continue
            tier, reason, score = self.pair_reason(links[chosen] if x == keeper else links[x])
            info = self.files[x]
            members.append(Member(info, tier, reason, score, _under(info.path, self.references)))
        tier = max((m.tier for m in members[1:]), key=lambda t: _TIER_RANK[t])
        return DuplicateGroup(kinfo, tuple(members), tier)

    def similar_groups(self, sensitivity: float = 0.5,
                       groups: Sequence[DuplicateGroup] | None = None) -> list[SimilarSet]:
        """Similar shots: different captures of one scene (a burst, a walk-around, brackets), never duplicates.

        Where geometry could judge a pair, it is a similar shot when enough matched points agree with one
        perspective change (the same scene) but the pixels are not one capture's; elsewhere (flat or tiny
        pictures) when the embedding and the layout (pHash <= 20 bits) agree. Duplicate groups take part through
        their keeper: a set lists pictures, each once, and evidence from any copy counts for its keeper.
        ``groups``: this finder's :meth:`groups` at ``sensitivity`` when the caller has them already (a slider
        move needs both, and grouping twice doubled its cost).
        """
        if not self.has_vectors:
            return []
        index_of = {id(f): i for i, f in enumerate(self.files)}
        picture = list(range(len(self.files)))
        for g in (self.groups(sensitivity) if groups is None else groups):
            k = index_of[id(g.keeper)]
            for m in g.members:
                picture[index_of[id(m.info)]] = k
        cut = self.thresholds.similar_cut - (float(sensitivity) - 0.5) * 0.1
        near = self.near_mask(sensitivity)
        decided = self.geo.decided()
        with np.errstate(invalid="ignore"):
            by_geometry = decided & self.geo.scene & (self.cos >= self.thresholds.verify_min)
            # Shots of one scene share its layout, which the perceptual hash sees: two photos of different things
            # that only the embedding calls alike (a model's "hub" pictures) are not similar shots. Unrelated
            # pictures are ~32 of 64 bits apart; <= 20 happens by chance for ~1 % of pairs.
            by_embedding = ~decided & (self.cos >= cut) & (self.hash_dist <= SIMILAR_SHOT_HASH_BITS)
        edges = np.nonzero((by_geometry | by_embedding) & ~near)[0]
        # Star groups around the best-ranked picture, not connected components: a chain of look-alikes (a dog, a
        # dog on grass, a lawn, a football pitch) must not become one "set of similar shots".
        neighbours: dict[int, dict[int, int]] = {}
        for p in edges.tolist():
            a, b = (picture[int(x)] for x in self.pairs[p])
            if a == b:
                continue
            for x, y in ((a, b), (b, a)):
                best = neighbours.setdefault(x, {}).get(y)
                if best is None or self._evidence_strength(p) > self._evidence_strength(best):
                    neighbours[x][y] = p
        taken: set[int] = set()
        out: list[SimilarSet] = []
        for anchor in sorted(neighbours, key=lambda x: self._rank[x]):
            if anchor in taken:
                continue
            others = sorted((x for x in neighbours[anchor] if x not in taken), key=lambda x: self._rank[x])
            if others:
                taken.update([anchor, *others])
                reason = self._similar_reason([neighbours[anchor][x] for x in others])
                out.append(SimilarSet(tuple(self.files[x] for x in [anchor, *others]), reason))
        return out

    def _evidence_strength(self, p: int) -> int:
        check = self.geo.checks.get(p)
        al = getattr(check, "alignment", None)
        return 0 if al is None else max(al.inliers, al.homography_inliers)

    def _similar_reason(self, rows: list[int]) -> str:
        """What differs between the set's anchor and its other shots, in words, where it can be told."""
        what: dict[str, int] = {}
        points: list[int] = []
        for p in rows:
            check = self.geo.checks.get(p)
            label = _what_differs(check)
            what[label] = what.get(label, 0) + 1
            if check is not None and check.alignment is not None:
                points.append(max(check.alignment.homography_inliers, check.alignment.inliers))
        n = len(rows) + 1
        parts = [f"{label} ({count})" if len(rows) > 1 else label for label, count in what.items()]
        text = f"{n} shots of one scene, not copies: " + ", ".join(parts)
        if points:
            lo, hi = min(points), max(points)
            text += f"; {lo if lo == hi else f'{lo}-{hi}'} matched points agree with one view of the scene"
        return text

    def choose_keeper(self, group: DuplicateGroup, info: FileInfo) -> None:
        """Make ``info`` the keeper of ``group`` from now on (stored, so it sticks across regroups and runs)."""
        if self.choices is None:
            raise ValueError("this duplicate search has no place to store keeper choices")
        self.choices.choose(info, [m.info for m in group.members])

    def plan(self, sensitivity: float = 0.5) -> list[dict[str, str]]:
        """The removal plan (what an action would move, and the keeper it relies on), for export before acting."""
        rows = []
        for g in self.groups(sensitivity):
            for m in g.removable:
                rows.append({"path": m.info.path, "keeper": g.keeper.path, "tier": m.tier, "reason": m.reason})
        return rows


def same_capture_reason(check: Any, keeper_is_a: bool = True) -> str:
    """A geometric copy's reason in a photographer's words: how the copy maps onto the keeper and how many of
    the matched points agree, e.g. "same capture: maps onto the keeper by scale 0.33 + crop, 412 of 430 matched
    points agree within 1.2 px". ``check`` maps B onto A; ``keeper_is_a`` says which one is kept."""
    al = check.alignment
    w_a, h_a = check.size_a
    w_b, h_b = check.size_b
    if keeper_is_a:
        m, (kw, kh), (cw, ch), scale, tol = al.matrix, (w_a, h_a), (w_b, h_b), al.scale, al.tolerance_px
    else:
        m, (kw, kh), (cw, ch) = al.inverse(), (w_b, h_b), (w_a, h_a)
        scale = 1.0 / al.scale if al.scale else 0.0
        tol = al.tolerance_px / al.scale if al.scale else 0.0
    how: list[str] = []
    if abs(scale - 1.0) > 0.02:
        how.append(f"scale {scale:.2f}")
    rotation = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    if al.mirrored:
        how.append("mirrored")
        rotation = float(np.degrees(np.arctan2(-m[1, 0], -m[0, 0])))
    quarter = round(rotation / 90.0) % 4
    if quarter:
        how.append(f"turned {quarter * 90}°")
    tilt = rotation - 90.0 * round(rotation / 90.0)
    if abs(tilt) >= 0.5:
        how.append(f"straightened {abs(tilt):.1f}°")
    if kw and kh and cw and ch:
        corners = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], dtype=np.float64) @ m[:, :2].T + m[:, 2]
        x0, y0 = np.clip(corners.min(axis=0), 0, [kw, kh])
        x1, y1 = np.clip(corners.max(axis=0), 0, [kw, kh])
        inside = (x1 - x0) * (y1 - y0) / (kw * kh)  # the keeper's frame the copy covers (bounding box)
        copy_area = abs(np.linalg.det(m[:, :2])) * cw * ch
        if inside < 0.95:  # a crop of the keeper, or the keeper has a border the copy lacks
            how.append(f"crop (covers {inside:.0%} of the keeper's frame)")
        if copy_area > 1.05 * (x1 - x0) * (y1 - y0):
            how.append("border or added canvas")
    mapping = f"maps onto the keeper by {' + '.join(how)}" if how else "same framing"
    # Short enough for the review list's row (four lines of the Why column at 1280 px wide).
    text = (f"same capture: {mapping}, {al.inliers} of {al.matches} matched points agree within {tol:.1f} px; "
            f"pixels match after a tone fit (r {check.local:.2f})")
    if check.photo is not None and check.photo.changed_local >= 0.1:
        # An overlay and a subject that moved on a fixed frame (a tripod burst) both change a few areas; the
        # measured copies reach 0.1-0.35 of such areas (overlays, borders), so this is said, not decided.
        text += f"; {check.photo.changed_local:.0%} of the picture differs (an overlay, or something that moved)"
    return text


def _what_differs(check: Any) -> str:
    """One pair's difference in words: the camera moved (a homography explains the matches much better than a
    similarity, or few of them fit one), the subject moved (the frame fits, some blocks do not), or the light or
    exposure changed (the frame and its structure fit, the tones do not follow one curve)."""
    al = getattr(check, "alignment", None)
    photo = getattr(check, "photo", None)
    if al is None:
        return "close in content and layout (embedding and perceptual hash)"
    if al.homography_inliers >= 1.25 * al.inliers or al.inlier_ratio < 0.6 or photo is None:
        return "viewpoint moved"
    if photo.local >= 0.85 and photo.changed_local < 0.1:
        return "light or exposure differs"
    if photo.changed_local >= 0.05:
        return "subject moved"
    return "slightly different moment or viewpoint"


def _unique_pairs(sets: Sequence[np.ndarray]) -> np.ndarray:
    chunks = [c.astype(np.int64).reshape(-1, 2) for c in sets if c.size]
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(chunks), axis=0)


class _Evidence:
    """Accumulates per-pair evidence during :meth:`DuplicateFinder.build` (the only place files are read)."""

    def __init__(self, files: Sequence[FileInfo], unit: np.ndarray | None, ph: np.ndarray, has_hash: np.ndarray,
                 thresholds: Thresholds, verifier: PatchVerifier | None,
                 pixel_digest: Callable[[FileInfo], str | None] | None, reporter: Reporter,
                 cancel: CancelFn | None) -> None:
        self.files, self.unit, self.ph, self.has_hash = files, unit, ph, has_hash
        self.t, self.verifier, self.pixel_digest = thresholds, verifier, pixel_digest
        self.reporter, self.cancel = reporter, cancel
        self.digests: dict[int, str | None] = {}
        codes: dict[str, int] = {}
        self.hash_codes = np.array([codes.setdefault(f.content_hash, len(codes)) if f.content_hash else -1
                                    for f in files], dtype=np.int64)
        self.turned: set[int] = set()  # files that match something only after a 90° turn or a mirror (hash)
        self._links: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])  # file -> [upright, turned]
        self.pairs = np.zeros((0, 2), dtype=np.int64)
        self.cos = np.zeros(0, dtype=np.float32)
        self.hdist = np.zeros(0, dtype=np.int64)
        self.transform = np.zeros(0, dtype=np.int64)
        self.exact = np.zeros(0, dtype=bool)
        self.same_pixels = np.zeros(0, dtype=bool)
        self.align = np.zeros(0, dtype=np.float32)
        self.related = np.zeros(0, dtype=bool)
        self.geo = Geometry.empty()
        self.geometry = verifier if hasattr(verifier, "check") else None

    def add(self, pairs: np.ndarray, verify: set[tuple[int, int]], *, closure: bool,
            geometry_only: bool = False) -> None:
        """Evidence for ``pairs``; those in ``verify`` may be checked by the verifier. ``closure``: the pairs
        join files already linked through a third one, so the verifier also tries turned/mirrored alignments and
        the pooled-vector floor is waived (a rotated copy has a low embedding similarity to anything)."""
        files = self.files
        if not len(pairs):
            return
        a, b = pairs[:, 0], pairs[:, 1]
        if self.unit is not None:
            cos = np.einsum("ij,ij->i", self.unit[a], self.unit[b]).astype(np.float32)
        else:
            cos = np.full(len(pairs), np.nan, dtype=np.float32)
        hdist, transform = dihedral_distance(self.ph, a, b)
        hdist = np.where(self.has_hash[a] & self.has_hash[b], hdist, 99)
        exact = (self.hash_codes[a] >= 0) & (self.hash_codes[a] == self.hash_codes[b])
        same_pixels = np.zeros(len(pairs), dtype=bool)
        if self.pixel_digest is not None:
            same_todo = np.nonzero((hdist == 0) & ~exact)[0]
            self.reporter.restart("comparing pixels", total=len(same_todo))
            for done, p in enumerate(same_todo):
                check_cancel(self.cancel)
                x, y = (int(v) for v in pairs[p])
                fx, fy = files[x], files[y]
                if sorted((fx.width or 0, fx.height or 0)) != sorted((fy.width or 0, fy.height or 0)):
                    continue
                for k in (x, y):
                    if k not in self.digests:
                        self.digests[k] = self.pixel_digest(files[k])
                same_pixels[p] = self.digests[x] is not None and self.digests[x] == self.digests[y]
                self.reporter.update(done + 1)
        # A file is "turned" when most of its hash matches need a turn or mirror: the rotated copy itself, not
        # the original it matches (the original's other matches are upright).
        for p in np.nonzero(hdist <= self.t.hash_lo)[0]:
            for f in (int(a[p]), int(b[p])):
                self._links[f][0 if transform[p] == 0 else 1] += 1
        self.turned = {f for f, (upright, turned) in self._links.items() if turned > upright}
        align = np.full(len(pairs), np.nan, dtype=np.float32)
        related = np.zeros(len(pairs), dtype=bool)
        geo = Geometry.unchecked(len(pairs))
        if self.verifier is not None and self.unit is not None:
            with np.errstate(invalid="ignore"):
                if closure:
                    related = np.array([x in self.turned or y in self.turned for x, y in pairs.tolist()], dtype=bool)
                floor = related | (cos >= self.t.verify_min)
                # verify whatever is not a copy at the strictest setting, so every sensitivity has its evidence
                grey = ~exact & ~same_pixels & (hdist > self.t.hash_hi) & floor & ~(cos >= self.t.cos_accept_hi)
                # geometry for every pair that is or may be a copy or a similar shot, hash-level ones included
                # (two frames of a burst can be a few pHash bits apart)
                maybe = ~exact & ~same_pixels & ((hdist <= self.t.hash_lo) | floor | geometry_only)
            if self.geometry is not None:
                geo_todo = [int(p) for p in np.nonzero(maybe)[0]
                            if hdist[p] <= self.t.hash_lo or (int(a[p]), int(b[p])) in verify]
                # a mirror is tried when the hash says the copy is mirrored, or the pair is linked through one
                mirror = [bool(related[p]) or (int(transform[p]) >= 4 and hdist[p] <= self.t.hash_lo)
                          for p in geo_todo]
                geo.fill(geo_todo, self._check_many(pairs, geo_todo, mirror))
            # the pixel-correlation verifier only where geometry cannot judge (flat or tiny pictures)
            grey &= (geo.kind <= GEO_UNKNOWN) & (not geometry_only)
            todo = [int(p) for p in np.nonzero(grey)[0] if (int(a[p]), int(b[p])) in verify]
            jobs = [(files[int(a[q])], files[int(b[q])], bool(related[q])) for q in todo]
            for q, score in zip(todo, self._verify_many(jobs), strict=True):
                align[q] = np.nan if score is None else score
        self.pairs = np.concatenate([self.pairs, pairs.astype(np.int64)])
        self.cos = np.concatenate([self.cos, cos])
        self.hdist = np.concatenate([self.hdist, hdist.astype(np.int64)])
        self.transform = np.concatenate([self.transform, transform.astype(np.int64)])
        self.exact = np.concatenate([self.exact, exact])
        self.same_pixels = np.concatenate([self.same_pixels, same_pixels])
        self.align = np.concatenate([self.align, align])
        self.related = np.concatenate([self.related, related])
        self.geo = self.geo.concat(geo)

    def reverify(self, rows: np.ndarray) -> None:
        """Check stored keeper/member pairs that are not settled yet; pairs with a file that is a turned or mirrored
        copy (by its hash) may align after turning and need no embedding floor (turning ruins the embedding)."""
        if self.verifier is None or self.unit is None or not len(rows):
            return
        if self.geometry is not None:
            unchecked = rows[(self.geo.kind[rows] == GEO_UNCHECKED) & ~self.exact[rows] & ~self.same_pixels[rows]]
            flips = [int(self.pairs[q, 0]) in self.turned or int(self.pairs[q, 1]) in self.turned
                     or (int(self.transform[q]) >= 4 and self.hdist[q] <= self.t.hash_lo) for q in unchecked.tolist()]
            self.geo.fill(unchecked.tolist(), self._check_many(self.pairs, unchecked.tolist(), flips))
            rows = rows[self.geo.kind[rows] <= GEO_UNKNOWN]
        with np.errstate(invalid="ignore"):
            settled = self.exact[rows] | self.same_pixels[rows] | (self.hdist[rows] <= self.t.hash_hi) | (
                self.cos[rows] >= self.t.cos_accept_hi) | (self.align[rows] >= self.t.align_hi) | self.related[rows]
        rows = rows[~settled]
        x, y = self.pairs[rows, 0], self.pairs[rows, 1]
        turned = np.array([int(i) in self.turned or int(j) in self.turned for i, j in zip(x, y, strict=True)],
                          dtype=bool)
        # a pair not involving a turned/mirrored file needs the same embedding floor as any other
        rows, turned = rows[turned | (self.cos[rows] >= self.t.verify_min)], turned[turned | (
            self.cos[rows] >= self.t.verify_min)]
        rows, turned = rows[turned | np.isnan(self.align[rows])], turned[turned | np.isnan(self.align[rows])]
        jobs = [(self.files[int(self.pairs[q, 0])], self.files[int(self.pairs[q, 1])], bool(turn))
                for q, turn in zip(rows.tolist(), turned.tolist(), strict=True)]
        for q, turn, score in zip(rows.tolist(), turned.tolist(), self._verify_many(jobs), strict=True):
            if score is not None:
                self.align[q] = score if np.isnan(self.align[q]) else max(float(self.align[q]), score)
            self.related[q] = bool(turn)

    def _check_many(self, pairs: np.ndarray, rows: list[int], mirror: list[bool]) -> list[Any]:
        """Geometric checks of ``pairs[rows]`` (B = the second file onto A = the first) on a few threads (decode,
        ORB and matching release the GIL); each file's features are computed once, by the verifier's cache."""
        geometry = self.geometry
        assert geometry is not None
        files = self.files

        def one(job: tuple[int, bool]) -> Any:
            q, flip = job
            return geometry.check(files[int(pairs[q, 0])], files[int(pairs[q, 1])], mirror=flip)

        jobs = list(zip(rows, mirror, strict=True))
        self.reporter.restart("verifying", total=len(jobs))
        out: list[Any] = []
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            for start in range(0, len(jobs), 64):
                check_cancel(self.cancel)
                out.extend(pool.map(one, jobs[start:start + 64]))
                self.reporter.update(len(out))
        return out

    def _verify_many(self, jobs: list[tuple[FileInfo, FileInfo, bool]]) -> list[float | None]:
        """Run the verifier over (a, b, turned) jobs on a few threads (decoding, resizing and the FFTs release
        the GIL), in order; cancellation is checked between chunks."""
        assert self.verifier is not None
        verifier = self.verifier
        dihedral = getattr(verifier, "supports_dihedral", False)

        def one(job: tuple[FileInfo, FileInfo, bool]) -> float | None:
            fa, fb, turned = job
            return verifier(fa, fb, dihedral=True) if dihedral and turned else verifier(fa, fb)

        self.reporter.restart("verifying", total=len(jobs))
        out: list[float | None] = []
        workers = max(1, min(8, os.cpu_count() or 1))
        chunk = 64
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(jobs), chunk):
                check_cancel(self.cancel)
                out.extend(pool.map(one, jobs[start:start + chunk]))
                self.reporter.update(len(out))
        return out

    def near_loose(self) -> np.ndarray:
        """Pairs that are copies at the loosest sensitivity (used to close components)."""
        return near_pairs(self.t, 1.0, exact=self.exact, same_pixels=self.same_pixels, hash_dist=self.hdist,
                          align=self.align, cos=self.cos if self.unit is not None else None, related=self.related,
                          geo=self.geo)


SCENE_CLOSURE = 6  # pairs per file added through two geometric links (most alike by embedding first)


def _scene_closure_pairs(n: int, evidence: _Evidence, unit: np.ndarray, cap: int = SCENE_CLOSURE) -> np.ndarray:
    """Pairs (i<j) not yet known, two geometric links apart (same scene or copy, at the loosest setting), the
    ``cap`` most alike by embedding per file. Files without a geometric link add nothing, so in a library of
    distinct pictures this costs nothing."""
    linked = evidence.geo.scene | evidence.geo.copies(1.0)
    adjacency: dict[int, set[int]] = defaultdict(set)
    for a, b in evidence.pairs[linked].tolist():
        adjacency[a].add(b)
        adjacency[b].add(a)
    known = {(int(x), int(y)) for x, y in evidence.pairs.tolist()}
    out: set[tuple[int, int]] = set()
    for x, first in adjacency.items():
        if len(first) > MAX_COMPONENT:
            continue
        reach = set().union(*(adjacency[y] for y in first if len(adjacency[y]) <= MAX_COMPONENT)) - first - {x}
        fresh = [y for y in reach if (min(x, y), max(x, y)) not in known]
        fresh.sort(key=lambda y: -float(unit[x] @ unit[y]))
        out.update((min(x, y), max(x, y)) for y in fresh[:cap])
    return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)


def _component_pairs(n: int, edges: np.ndarray, rank: np.ndarray, keepers: int = 2) -> np.ndarray:
    """Pairs (possible keeper, file) that grouping will ask about: for every file, the ``keepers`` best-ranked
    files within two links of it (its own matches and theirs). A copy linked to its keeper only through the
    original (a crop of a 24-MP upscale's original, say) thus gets its own evidence against that keeper.
    Flat-image clusters (hubs with more than MAX_COMPONENT links) only contribute their direct edges."""
    if not len(edges):
        return np.zeros((0, 2), dtype=np.int64)
    adjacency: dict[int, set[int]] = {}
    for a, b in edges.tolist():
        adjacency.setdefault(a, set()).add(b)
        adjacency.setdefault(b, set()).add(a)
    out: set[tuple[int, int]] = set()
    for x, first in adjacency.items():
        reach = set(first)
        for y in first:
            if len(adjacency[y]) <= MAX_COMPONENT:
                reach |= adjacency[y]
        reach.discard(x)
        best = sorted(reach, key=lambda v: rank[v])[:keepers]
        out.update((min(x, k), max(x, k)) for k in best)
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return np.array(sorted(out), dtype=np.int64)


def center_vectors(vectors: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """L2-normalise, subtract the (library) mean, L2-normalise again; zero rows stay zero."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    present = norms[:, 0] > 0
    v = np.where(norms > 0, v / np.maximum(norms, 1e-12), 0.0)
    mu = np.asarray(mean, dtype=np.float32) if mean is not None else (
        v[present].mean(axis=0) if present.any() else np.zeros(v.shape[1], dtype=np.float32))
    c = v - mu
    cn = np.linalg.norm(c, axis=1, keepdims=True)
    c = np.where(cn > 0, c / np.maximum(cn, 1e-12), 0.0)
    c[~present] = 0.0
    return c.astype(np.float32)


def brute_knn(unit: np.ndarray, k: int = 10, block: int = 2048) -> np.ndarray:
    """Exact k nearest neighbours by cosine (rows must be unit vectors); -1 where fewer exist."""
    n = unit.shape[0]
    k = min(k, max(0, n - 1))
    out = np.full((n, max(k, 1)), -1, dtype=np.int64)
    if k == 0:
        return out[:, :0]
    for start in range(0, n, block):
        sims = unit[start:start + block] @ unit.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start:start + block] = np.take_along_axis(part, order, axis=1)
    return out


# --------------------------------------------------------------------------------------------------------------
# library facade


def finder_for_library(
    lib: Any,
    *,
    references: Iterable[str | os.PathLike[str]] = (),
    marks: NotDuplicateMarks | None = None,
    use_model: bool = True,
    verify: bool = True,
    k: int = 10,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> DuplicateFinder:
    """A :class:`DuplicateFinder` for an open ``Library``: its records, pooled vectors and k-NN graph, the
    calibration of (library, model) from the cache or fitted now (then cached), and the pixel verifier.

    With ``use_model=False`` or before any file is embedded it is the quick pass: exact, same-pixel and
    hash-level copies only. Files in ``references`` are keepers and never offered for removal.
    """
    from vitfeat_desktop.core.dupes.verify import AlignmentVerifier, alignment_score

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
    verifier = CachedVerifier(AlignmentVerifier(), CachedVerifier.path_for(lib.folder)) \
        if (verify and vectors is not None) else None
    try:
        return DuplicateFinder.build(files, vectors=vectors, knn=knn, thresholds=thresholds, mean=mean,
                                     verifier=verifier, references=references, marks=marks, progress=progress,
                                     cancel=cancel, choices=choices)
    finally:
        if verifier is not None:
            verifier.save()


def library_files(lib: Library) -> list[FileInfo]:
    """The library's readable files as duplicate finding sees them: one entry per file on disk (a symlink and
    its target, or two hard links, are one file, never a pair)."""
    from vitfeat_desktop.core.links import one_name_per_file

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
    extractor: Any = None,
    verifier: Callable[..., float] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Calibration:
    """The (library, model) calibration from the cache, else fitted now and cached. The one place that decides
    its inputs, so the review's calibration stage and the final search fit and load the same one.
    ``extractor`` defaults to the library's (the review passes one that counts the embedded copies)."""
    from vitfeat_desktop.core.dupes import calibrate as calibration_mod

    key = str(getattr(lib, "model_key", "") or calibration_mod.model_key_of(lib.extractor))
    calibration = calibration_mod.load_calibration(lib.folder, key, n_files=len(files))
    if calibration is None:
        ph = np.array([f.hashes.phashes if f.hashes else (0,) * 8 for f in files], dtype=np.uint64)
        calibration = calibration_mod.calibrate(
            extractor if extractor is not None else lib.extractor, [f.path for f in files], vectors, hashes=ph,
            verifier=verifier, progress=progress, cancel=cancel)
        calibration.model_key = key
        calibration_mod.save_calibration(lib.folder, calibration)
    return calibration


class CachedVerifier:
    """Remembers verification scores by the two files' content hashes, so opening the duplicates view again
    (or after a rescan that changed a few files) verifies only the new pairs. Kept in the data dir per library;
    a file without a content hash is never cached."""

    VERSION = 4  # 2: band-pass alignment scores (verify.py); 3: minimum template size; 4: geometric checks

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner = inner
        self.path = path
        self.supports_dihedral = getattr(inner, "supports_dihedral", False)
        self._scores: dict[str, float] = {}
        self._checks: dict[str, dict[str, Any]] = {}
        self._dirty = False
        self.hits = 0
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION:
                self._scores = {str(k): float(v) for k, v in data.get("scores", {}).items()}
                self._checks = {str(k): dict(v) for k, v in data.get("checks", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._scores, self._checks = {}, {}
        if hasattr(inner, "check"):
            self.check = self._check

    def _check(self, a: FileInfo, b: FileInfo, *, mirror: bool = False) -> Any:
        """The inner verifier's geometric check, remembered by the two files' content hashes (in order: the
        alignment maps ``b`` onto ``a``)."""
        from vitfeat_desktop.core.dupes.verify import PairCheck

        key = f"{a.content_hash}>{b.content_hash}:{int(mirror)}" if a.content_hash and b.content_hash else None
        if key is not None and key in self._checks:
            try:
                result = PairCheck.from_dict(self._checks[key])
                self.hits += 1
                return result
            except (KeyError, TypeError, ValueError):
                pass
        result = self.inner.check(a, b, mirror=mirror)
        if key is not None and result is not None:
            self._checks[key] = result.to_dict()
            self._dirty = True
        return result

    @staticmethod
    def path_for(library_folder: str | os.PathLike[str]) -> Path:
        key = hashlib.sha256(os.fsencode(os.path.abspath(library_folder))).hexdigest()[:16]
        return config.data_dir() / "dupes" / f"verified-{key}.json"

    def __call__(self, a: FileInfo, b: FileInfo, *, dihedral: bool = False) -> float | None:
        key = None
        if a.content_hash and b.content_hash:
            x, y = sorted((a.content_hash, b.content_hash))
            key = f"{x}:{y}:{int(dihedral)}"
            if key in self._scores:
                self.hits += 1
                return self._scores[key]
        score = self.inner(a, b, dihedral=dihedral) if dihedral else self.inner(a, b)
        if key is not None and score is not None:
            self._scores[key] = float(score)
            self._dirty = True
        return score

    def save(self) -> None:
        if self._dirty:
            config.write_json_atomic(self.path, {"version": self.VERSION, "scores": self._scores,
                                                 "checks": self._checks})
            self._dirty = False
