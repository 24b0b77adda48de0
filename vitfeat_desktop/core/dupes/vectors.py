"""The array maths of duplicate finding: centred pooled vectors and their exact k-NN, popcounts of perceptual
hashes, the hash-bucket candidate pairs and the dihedral (turned/mirrored) hash distance.

No file is read here and nothing knows about groups: every function takes and returns arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vitfeat_desktop.core.dupes.records import FileInfo


def hamming_u64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit count of a XOR b for uint64 arrays (vectorised popcount)."""
    x = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))
    count = np.zeros(x.shape, dtype=np.int64)
    for shift in range(0, 64, 8):
        count += _POP8[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)]
    return count


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def hash_matrix(files: Sequence[FileInfo]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def unique_pairs(sets: Sequence[np.ndarray]) -> np.ndarray:
    """The distinct rows of several [k, 2] pair arrays, sorted (the candidate sets overlap)."""
    chunks = [c.astype(np.int64).reshape(-1, 2) for c in sets if c.size]
    if not chunks:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(chunks), axis=0)



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
