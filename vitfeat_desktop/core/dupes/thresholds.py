"""The cuts that turn pair evidence into "copies of one picture", and how the sensitivity slider moves them.

:class:`Thresholds` holds one model's cuts (fitted by ``calibrate.py``); :func:`near_pairs` applies them, with
the geometric verdict (``geometry.py``) deciding wherever it could judge. Arrays in, a boolean mask out: this is
what runs on every slider move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vitfeat_desktop.core.dupes.geometry import GEO_UNRELATED, Geometry

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
