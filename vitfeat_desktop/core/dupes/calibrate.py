"""Fit the near-duplicate cuts to one model on the user's own library.

Embedding distances mean different things for different models (a ViT's pooled output, DINOv2's CLS token,
CLIP), and even for one model they depend on what is in the library (a library of beach photos has closer
"different" pictures than a mixed one). So instead of one fixed threshold we measure, on a sample of the user's
images:

* **copies**: edited versions made in memory (resize, recompress, crop, mirror, colour, border, small rotation,
  grayscale, text overlay) against their original, embedded with the library's model: how low the similarity
  of a true copy goes;
* **different pictures**: each sampled image against its nearest library neighbours that the perceptual hash
  says are not copies: how high the similarity of a different picture goes.

The cut where the pooled vector alone decides is put above (almost all of) the different pictures; copies below
it go to pixel alignment (``verify.py``) down to where almost no copy lies any more. If the library happens to
contain copies among those neighbours, they only push the cut up, i.e. towards asking the verifier more often,
never towards wrong groups. The result is cached per (library, model) in the data dir.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from vitfeat_desktop import config
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.dupes.vectors import center_vectors, hamming_u64
from vitfeat_desktop.core.errors import ImageReadError, VitfeatError
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.preprocess import Preprocessor
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

CALIBRATION_VERSION = 3  # 2: band-pass alignment, negatives from the whole library; 3: min template size
# Edits a verifier is needed for (the pooled vector is weakest on them); the others are caught by the hash too.
ALIGNED_EDITS = ("crop", "border", "rotate-small")


def _resize(img: Image.Image, rng: random.Random) -> Image.Image:
    s = rng.uniform(0.3, 0.6)
    return img.resize((max(16, round(img.width * s)), max(16, round(img.height * s))), Image.Resampling.BILINEAR)


def _recompress(img: Image.Image, rng: random.Random) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(25, 50))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _crop(img: Image.Image, rng: random.Random) -> Image.Image:
    keep = rng.uniform(0.7, 0.85)
    w, h = round(img.width * keep), round(img.height * keep)
    x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
    return img.crop((x, y, x + w, y + h))


def _mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(img)


def _colour(img: Image.Image, rng: random.Random) -> Image.Image:
    out = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.3))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.75, 1.3))
    return ImageEnhance.Color(out).enhance(rng.uniform(0.5, 1.5))


def _gray(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


def _border(img: Image.Image, rng: random.Random) -> Image.Image:
    pad = round(min(img.size) * rng.uniform(0.04, 0.12))
    return ImageOps.expand(img, border=pad, fill=rng.choice([(0, 0, 0), (255, 255, 255)]))


def _rotate_small(img: Image.Image, rng: random.Random) -> Image.Image:
    angle = rng.uniform(2, 5) * rng.choice([-1, 1])
    out = img.rotate(angle, resample=Image.Resampling.BICUBIC)
    m = 0.1
    return out.crop((round(img.width * m), round(img.height * m), round(img.width * (1 - m)),
                     round(img.height * (1 - m))))


def _text(img: Image.Image, rng: random.Random) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    y = rng.randint(img.height // 2, max(img.height // 2, img.height - 20))
    draw.text((rng.randint(0, max(1, img.width // 3)), y), "(c) 2024 sample", fill=(255, 255, 255))
    return out


EDITS: dict[str, Callable[[Image.Image, random.Random], Image.Image]] = {
    "resize": _resize, "recompress": _recompress, "crop": _crop, "mirror": _mirror, "colour": _colour,
    "grayscale": _gray, "border": _border, "rotate-small": _rotate_small, "text": _text,
}


@dataclass
class Calibration:
    """Fitted thresholds plus the centring vector they were measured with (both are needed to use them)."""

    thresholds: Thresholds
    mean: np.ndarray
    model_key: str
    n_files: int
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"version": CALIBRATION_VERSION, "thresholds": self.thresholds.to_dict(),
                "mean": [float(x) for x in self.mean], "model_key": self.model_key, "n_files": self.n_files,
                "created": self.created}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if data.get("version") != CALIBRATION_VERSION:
            raise ValueError("calibration from another version")
        return cls(Thresholds.from_dict(data["thresholds"]), np.asarray(data["mean"], dtype=np.float32),
                   str(data["model_key"]), int(data["n_files"]), float(data.get("created", 0.0)))


def cache_path(library_folder: str | os.PathLike[str], model_key: str) -> Path:
    """Where the calibration of (library, model) is kept: the data dir, never the photo folder."""
    lib = hashlib.sha256(os.fsencode(os.path.abspath(library_folder))).hexdigest()[:16]
    model = hashlib.sha256(model_key.encode()).hexdigest()[:12]
    return config.data_dir() / "dupes" / f"calibration-{lib}-{model}.json"


def load_calibration(library_folder: str | os.PathLike[str], model_key: str, *,
                     n_files: int | None = None) -> Calibration | None:
    """The cached calibration, or None if missing, unreadable, or the library has since doubled or halved."""
    try:
        data = json.loads(cache_path(library_folder, model_key).read_text(encoding="utf-8"))
        calibration = Calibration.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if n_files is not None and calibration.n_files and not (0.5 <= n_files / calibration.n_files <= 2.0):
        return None
    return calibration


def save_calibration(library_folder: str | os.PathLike[str], calibration: Calibration) -> Path:
    path = cache_path(library_folder, calibration.model_key)
    config.write_json_atomic(path, calibration.to_dict())
    return path


class Embedder(Protocol):
    """What calibration needs of a model: a ``FeatureExtractor``, or the review's wrapper that counts what it
    embeds (``review.py``)."""

    model_id: str
    variant: str
    batch_size: int
    preprocessor: Preprocessor

    def embed(self, pixel_values: np.ndarray) -> np.ndarray: ...


def model_key_of(extractor: Embedder) -> str:
    """The calibration's model key when the library has none of its own (model id and variant)."""
    return f"{extractor.model_id}|{extractor.variant}"


def different_picture_similarities(
    unit: np.ndarray,
    present: np.ndarray,
    paths: Sequence[str | os.PathLike[str]],
    *,
    hashes: np.ndarray | None = None,
    verifier: Callable[[Image.Image, Image.Image], float] | None = None,
    seed: int = 0,
    queries: int = 2000,
    k: int = 8,
    verify_top: int = 256,
    cancel: CancelFn | None = None,
) -> tuple[list[float], int]:
    """Centred cosine similarities of library neighbours that are different pictures, and how many were dropped.

    The highest similarity any *different* picture reaches in this library is what the pooled-vector cut must
    clear, so this looks at the nearest neighbours of up to ``queries`` files (all of a smaller library), which
    costs one blocked matrix product. Pairs the perceptual hash calls copies are dropped; so are pairs among the
    ``verify_top`` most similar that the pixel verifier aligns (copies the hash missed, e.g. crops): the tail is
    all that matters for the cut, so only the tail is verified.
    """
    idx = np.flatnonzero(present)
    rng = np.random.default_rng(seed)
    chosen = idx if len(idx) <= queries else np.sort(rng.choice(idx, size=queries, replace=False))
    base = unit[idx]
    kk = min(k, len(idx) - 1)
    found: dict[tuple[int, int], float] = {}
    for start in range(0, len(chosen), 512):
        check_cancel(cancel)
        block = chosen[start:start + 512]
        sims = unit[block] @ base.T
        sims[np.arange(len(block)), np.searchsorted(idx, block)] = -np.inf
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        for row, i in enumerate(block.tolist()):
            for col in top[row].tolist():
                value = float(sims[row, col])
                if np.isfinite(value):
                    j = int(idx[col])
                    found[(min(i, j), max(i, j))] = value
    if not found:
        return [], 0
    pairs = np.array(list(found.keys()), dtype=np.int64)
    values = np.array(list(found.values()), dtype=np.float64)
    keep = np.ones(len(values), dtype=bool)
    if hashes is not None:
        hashes = np.asarray(hashes, dtype=np.uint64)
        first = np.repeat(hashes[pairs[:, 0], :1], hashes.shape[1], axis=1)
        keep &= hamming_u64(first, hashes[pairs[:, 1]]).min(axis=1) > 12
    if verifier is not None:
        thumbs: dict[int, Image.Image | None] = {}

        def thumb(i: int) -> Image.Image | None:
            if i not in thumbs:
                try:
                    thumbs[i] = open_image(paths[i], min_side=128)
                except ImageReadError:
                    thumbs[i] = None
            return thumbs[i]

        cut = Thresholds().align_cut
        for p in np.argsort(-np.where(keep, values, -np.inf))[:verify_top].tolist():
            if not keep[p]:
                break
            check_cancel(cancel)
            a, b = thumb(int(pairs[p, 0])), thumb(int(pairs[p, 1]))
            if a is not None and b is not None and verifier(a, b) >= cut:
                keep[p] = False
    return values[keep].tolist(), int((~keep).sum())


def calibrate(
    extractor: Embedder,
    paths: Sequence[str | os.PathLike[str]],
    vectors: np.ndarray,
    *,
    hashes: np.ndarray | None = None,
    sample: int = 32,
    seed: int = 0,
    verifier: Callable[[Image.Image, Image.Image], float] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Calibration:
    """Fit :class:`Thresholds` for ``extractor`` on a library.

    ``paths`` and ``vectors`` (pooled vectors, any norm) are aligned: the library's files. ``hashes``: their
    dihedral pHashes [n, 8] (uint64), used to keep copies out of the "different pictures" set. ``verifier``:
    an image-pair scorer (``verify.alignment_score``) whose scores on the in-memory copies are recorded.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(paths) != len(vectors):
        raise ValueError("paths and vectors must be aligned")
    present = np.linalg.norm(vectors, axis=1) > 0
    if present.sum() < 4:
        raise VitfeatError("too few embedded images to calibrate duplicate detection (need at least 4)")
    norms = np.linalg.norm(vectors[present], axis=1, keepdims=True)
    mean = (vectors[present] / norms).mean(axis=0)
    unit = center_vectors(vectors, mean)
    rng = random.Random(seed)
    candidates = [i for i in range(len(paths)) if present[i]]
    rng.shuffle(candidates)
    reporter = Reporter(progress, "calibrating", total=min(sample, len(candidates)))
    pre = extractor.preprocessor
    originals: list[int] = []
    batch: list[np.ndarray] = []
    labels: list[tuple[int, str]] = []  # (sample slot, edit name or "original")
    images: dict[tuple[int, str], Image.Image] = {}
    for i in candidates:
        if len(originals) >= sample:
            break
        check_cancel(cancel)
        try:
            img = open_image(paths[i], min_side=max(pre.min_decode_side(), 256))
        except ImageReadError:
            continue
        slot = len(originals)
        originals.append(i)
        for name, edit in (("original", None), *EDITS.items()):
            edited = img if edit is None else edit(img, rng)
            batch.append(pre.normalize_uint8(pre.to_uint8_chw(edited)))
            labels.append((slot, name))
            if verifier is not None and (name == "original" or name in ALIGNED_EDITS):  # kept for the verifier
                images[(slot, name)] = edited
        reporter.update(slot + 1)
    if len(originals) < 2:
        raise VitfeatError("too few readable images to calibrate duplicate detection")
    embedded = []
    size = max(1, int(extractor.batch_size))
    for start in range(0, len(batch), size):
        check_cancel(cancel)
        embedded.append(np.asarray(extractor.embed(np.stack(batch[start:start + size])), dtype=np.float32))
    emb = center_vectors(np.concatenate(embedded), mean)
    index = {lab: k for k, lab in enumerate(labels)}
    pos: dict[str, list[float]] = {name: [] for name in EDITS}
    for (slot, name), k in index.items():
        if name != "original":
            pos[name].append(float(emb[k] @ emb[index[(slot, "original")]]))
    neg, excluded = different_picture_similarities(unit, present, paths, hashes=hashes, verifier=verifier,
                                                   seed=seed, cancel=cancel)
    neg_arr = np.asarray(neg or [0.0], dtype=np.float64)
    aligned_pos = np.asarray([v for name in ALIGNED_EDITS for v in pos[name]], dtype=np.float64)
    # Accept on the pooled vector alone only above every different picture found among the library's
    # neighbours. A quantile would do for a library full of copies, but most libraries are mostly distinct
    # pictures, where each different pair over the cut is a wrong group: on the 300 shared photos (no copies at
    # all) a cut at the sampled 99.5th percentile put 21 different photos into "duplicate" groups.
    accept = min(0.995, float(neg_arr.max()) + 0.01)
    accept_hi = min(0.999, accept + 0.03)
    accept_lo = max(-1.0, accept - 0.03)
    verify_min = float(np.quantile(aligned_pos, 0.02)) - 0.05 if aligned_pos.size else accept - 0.3
    # ... but not below most different pictures: pairs that far apart are not worth a verification
    verify_min = min(max(verify_min, float(np.quantile(neg_arr, 0.05))), accept_lo - 0.01)
    # Similar shots must be closer than most neighbouring different pictures (two dog breeds are not one scene).
    similar = max(verify_min + 0.5 * (accept - verify_min), float(np.quantile(neg_arr, 0.99)))
    stats: dict[str, Any] = {
        "sample": len(originals),
        "negatives": len(neg),
        "neighbours_excluded_as_copies": excluded,
        "neg_q50": float(np.quantile(neg_arr, 0.5)),
        "neg_q99": float(np.quantile(neg_arr, 0.99)),
        "neg_max": float(neg_arr.max()),
        "pos_min": {k: float(min(v)) for k, v in pos.items() if v},
        "pos_median": {k: float(np.median(v)) for k, v in pos.items() if v},
    }
    thresholds = Thresholds(cos_accept=accept, cos_accept_lo=accept_lo, cos_accept_hi=accept_hi,
                            verify_min=verify_min, similar_cut=similar, source="calibrated",
                            model_key=model_key_of(extractor), stats=stats)
    if verifier is not None:
        scores = [verifier(images[(slot, "original")], images[(slot, name)])
                  for slot in range(len(originals)) for name in ALIGNED_EDITS if (slot, name) in images]
        stats["align_pos_q05"] = float(np.quantile(scores, 0.05)) if scores else None
        stats["align_pos_min"] = float(min(scores)) if scores else None
    return Calibration(thresholds, mean.astype(np.float32), model_key_of(extractor), len(paths))
