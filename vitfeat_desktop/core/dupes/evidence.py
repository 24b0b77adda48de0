"""Collecting the evidence of candidate pairs: the only part of duplicate finding that reads files.

:class:`PairEvidence` accumulates, per candidate pair, the embedding similarity, the dihedral hash distance, the
exact/same-pixel facts, the pixel-correlation score and the geometric check (``verify.py``); the finder then
regroups from these arrays alone. Also here: which extra pairs get evidence (two geometric links apart, or within
two links of a possible keeper), so every keeper/member pair is judged on its own.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vitfeat_desktop.core.dupes.geometry import GEO_UNCHECKED, GEO_UNKNOWN, Geometry
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.thresholds import Thresholds, near_pairs
from vitfeat_desktop.core.dupes.vectors import dihedral_distance
from vitfeat_desktop.core.dupes.verify import PairCheck, PairVerifier, Scorer
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.progress import CancelFn, Reporter, check_cancel

MAX_COMPONENT = 64  # a "component" bigger than this is a flat/dark-image cluster, not copies: pairs only
SCENE_CLOSURE = 6  # pairs per file added through two geometric links (most alike by embedding first)


def default_pixel_digest(info: FileInfo) -> str | None:
    """SHA-256 of the fully decoded, upright RGB pixels (None when the file cannot be read)."""
    try:
        image = open_image(info.path)
    except Exception:
        return None
    digest = hashlib.sha256(f"{image.width}x{image.height}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()



class PairEvidence:
    """Accumulates per-pair evidence during :meth:`DuplicateFinder.build` (the only place files are read)."""

    def __init__(self, files: Sequence[FileInfo], unit: np.ndarray | None, ph: np.ndarray, has_hash: np.ndarray,
                 thresholds: Thresholds, verifier: Scorer | PairVerifier | None,
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
        self.geometry = verifier if isinstance(verifier, PairVerifier) else None

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

    def _check_many(self, pairs: np.ndarray, rows: list[int], mirror: list[bool]) -> list[PairCheck | None]:
        """Geometric checks of ``pairs[rows]`` (B = the second file onto A = the first) on a few threads (decode,
        ORB and matching release the GIL); each file's features are computed once, by the verifier's cache."""
        geometry = self.geometry
        assert geometry is not None
        files = self.files

        def one(job: tuple[int, bool]) -> PairCheck | None:
            q, flip = job
            return geometry.check(files[int(pairs[q, 0])], files[int(pairs[q, 1])], mirror=flip)

        jobs = list(zip(rows, mirror, strict=True))
        self.reporter.restart("verifying", total=len(jobs))
        out: list[PairCheck | None] = []
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
        dihedral = isinstance(verifier, PairVerifier) and verifier.supports_dihedral

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




def scene_closure_pairs(n: int, evidence: PairEvidence, unit: np.ndarray, cap: int = SCENE_CLOSURE) -> np.ndarray:
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


def component_pairs(n: int, edges: np.ndarray, rank: np.ndarray, keepers: int = 2) -> np.ndarray:
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
