"""Per-pair geometric evidence (``verify.PairCheck``) held as arrays, so regrouping at a new sensitivity stays
array operations: the one-capture test of ``verify.py`` runs over all pairs at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitfeat_desktop.core.dupes.verify import PairCheck, copy_test

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
    checks: dict[int, PairCheck]

    @classmethod
    def unchecked(cls, n: int) -> Geometry:
        return cls(np.zeros(n, dtype=np.int8), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool), {})

    @classmethod
    def empty(cls) -> Geometry:
        return cls.unchecked(0)

    def fill(self, rows: Sequence[int], checks: Sequence[PairCheck | None]) -> None:
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
        return (self.kind == GEO_ALIGNED) & copy_test(self.residual, self.local, sensitivity)

    def decided(self) -> np.ndarray:
        """Pairs geometry can judge: its verdict replaces the hash, embedding and pixel-correlation evidence."""
        return self.kind >= GEO_UNRELATED
