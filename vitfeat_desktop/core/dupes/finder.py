"""Duplicate tiers and groups from content hashes, perceptual hashes and the k-NN graph: :class:`DuplicateFinder`.

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

Where the parts live: ``records.py`` (what goes in and out), ``vectors.py`` (the array maths), ``evidence.py``
(collecting pair evidence, the only reading of files), ``thresholds.py`` and ``geometry.py`` (the cuts),
``reasons.py`` (the words), ``keeper.py`` (who is kept), ``sidecars.py`` (the user's marks and picks),
``for_library.py`` (from an open Library to a finder), ``export.py`` (the CSV/JSON export).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vitfeat_desktop.core.dupes.evidence import PairEvidence, component_pairs, default_pixel_digest, scene_closure_pairs
from vitfeat_desktop.core.dupes.geometry import GEO_ALIGNED, Geometry
from vitfeat_desktop.core.dupes.keeper import KeeperJudge
from vitfeat_desktop.core.dupes.keeper_rules import keeper_key, under
from vitfeat_desktop.core.dupes.reasons import TRANSFORM_NAMES, same_capture_reason, what_differs
from vitfeat_desktop.core.dupes.records import TIER_RANK, DuplicateGroup, FileInfo, Member, SimilarSet
from vitfeat_desktop.core.dupes.sidecars import KeeperChoices, NotDuplicateMarks
from vitfeat_desktop.core.dupes.thresholds import SIMILAR_SHOT_HASH_BITS, Thresholds, near_pairs
from vitfeat_desktop.core.dupes.vectors import brute_knn, center_vectors, hash_candidates, hash_matrix, unique_pairs
from vitfeat_desktop.core.dupes.verify import PairVerifier, Scorer
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel


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
        verifier: Scorer | PairVerifier | None = None,
        pixel_digest: Callable[[FileInfo], str | None] | None = default_pixel_digest,
        references: Iterable[str | os.PathLike[str]] = (),
        marks: NotDuplicateMarks | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        choices: KeeperChoices | None = None,
        judge: KeeperJudge | None = None,
    ) -> DuplicateFinder:
        """Collect candidate pairs and their evidence; the only step that may read files.

        ``vectors``: pooled vectors aligned with ``files`` (rows of zeros for files without one), any norm.
        ``knn``: neighbour indices [n,k] into ``files`` (-1 for none); computed by brute force when omitted.
        ``mean``: the centring vector (the calibration's, so cuts and scores agree); the vectors' mean if None.
        ``verifier``: pixel-alignment score for grey-zone pairs (``verify.AlignmentVerifier``, which also checks
        geometry), or None.
        ``judge``: the keeper evidence of an earlier finder over the same files (a staged review's previous
        stage), so no file's pixels are measured twice; a fresh one if None.
        """
        thresholds = thresholds or Thresholds()
        files = list(files)
        n = len(files)
        reporter = Reporter(progress, "duplicates", total=None)
        ph, _dh, has_hash = hash_matrix(files)
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
        pairs = unique_pairs(candidate_sets)
        evidence = PairEvidence(files, unit, ph, has_hash, thresholds, verifier, pixel_digest, reporter, cancel)
        evidence.add(pairs, verify_pairs, closure=False)
        # Files of one scene (a walk-around, a burst and its exports) link to each other geometrically; an export
        # the embedding places far from its own frame (a 4:5 portrait crop of a landscape frame) is still within
        # two such links of it, so those pairs are checked too (geometry alone, whatever the embedding says).
        if unit is not None and evidence.geometry is not None:
            scene_pairs = scene_closure_pairs(n, evidence, unit)
            if scene_pairs.size:
                evidence.add(scene_pairs, {(int(x), int(y)) for x, y in scene_pairs}, closure=False, geometry_only=True)
        # Close each component found at the loosest setting, so every keeper/member pair has its own evidence
        # (grouping asks "does this file match the keeper", and the keeper may not be among its neighbours).
        loose = evidence.near_loose()
        rank = np.empty(n, dtype=np.int64)
        rank[sorted(range(n), key=lambda i: keeper_key(files[i], [Path(os.path.abspath(r)) for r in references]))] \
            = np.arange(n)
        extra = component_pairs(n, evidence.pairs[loose], rank)
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
                     has_vectors=unit is not None, choices=choices, judge=judge)
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
        turned = TRANSFORM_NAMES[int(self.transform[p])]
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
        stars: list[tuple[int, list[int], dict[int, int]]] = []
        for nodes in components.values():
            remaining = sorted(nodes, key=lambda x: self._rank[x])
            while len(remaining) > 1:
                keeper = remaining[0]
                links = adjacency.get(keeper, {})
                taken = [x for x in remaining[1:] if x in links]
                if not taken:
                    remaining = remaining[1:]
                    continue
                stars.append((keeper, taken, links))
                taken_set = set(taken)
                remaining = [x for x in remaining[1:] if x not in taken_set]
        self._choose_keepers([[keeper, *taken] for keeper, taken, _links in stars])
        out = [self._make_group(keeper, taken, links) for keeper, taken, links in stars]
        out.sort(key=lambda g: (TIER_RANK[g.tier], g.keeper.path))
        return out

    def _keeper_key(self, nodes: list[int]) -> tuple[tuple[int, ...], int]:
        return tuple(nodes), self.choices.version if self.choices is not None else 0

    def _choose_keepers(self, groups: list[list[int]]) -> None:
        """Decide the keeper of every group not decided yet, groups side by side on a few threads: each
        decision reads its members' pixels (decoding and the numpy work release the GIL), groups share no file,
        and one group's decision never depends on another's, so the result is the same in any order."""
        todo = [nodes for nodes in groups if self._keeper_key(nodes) not in self._keepers]
        if not todo:
            return

        def one(nodes: list[int]) -> tuple[int, str]:
            return self.judge.choose([self.files[x] for x in nodes], self.references, self.choices)

        workers = min(8, os.cpu_count() or 1, len(todo))
        if workers <= 1:  # one group (a regroup after a keeper pick, say): no pool to start
            choices = [one(nodes) for nodes in todo]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                choices = list(pool.map(one, todo))
        for nodes, choice in zip(todo, choices, strict=True):
            self._keepers[self._keeper_key(nodes)] = choice

    def _make_group(self, keeper: int, taken: list[int], links: dict[int, int]) -> DuplicateGroup:
        """The group of ``keeper`` (best by the static rules) and the files that match it; the keeper itself is
        then decided by ``keeper.py`` from the members' pixels (the file the others were made from), the user's
        choice and reference folders. Each member keeps the evidence of its match to the first keeper."""
        nodes = [keeper, *taken]
        k, why = self._keepers[self._keeper_key(nodes)]  # decided by _group, all groups at once
        chosen = nodes[k]
        kinfo = self.files[chosen]
        members = [Member(kinfo, "keeper", "kept: " + why, 1.0, under(kinfo.path, self.references))]
        for x in nodes:
            if x == chosen:
                continue
            tier, reason, score = self.pair_reason(links[chosen] if x == keeper else links[x])
            info = self.files[x]
            members.append(Member(info, tier, reason, score, under(info.path, self.references)))
        tier = max((m.tier for m in members[1:]), key=lambda t: TIER_RANK[t])
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
        al = check.alignment if check is not None else None
        return 0 if al is None else max(al.inliers, al.homography_inliers)

    def _similar_reason(self, rows: list[int]) -> str:
        """What differs between the set's anchor and its other shots, in words, where it can be told."""
        what: dict[str, int] = {}
        points: list[int] = []
        for p in rows:
            check = self.geo.checks.get(p)
            label = what_differs(check)
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
