"""The hnswlib index of one library for one model/variant: cosine space, labels = catalogue file ids.

The index is a rebuildable view of the catalogue's vectors, saved atomically so a crash at any moment leaves
the previous good state: the graph goes to a new ``index-<seq>.bin`` and then ``index.json`` (the commit point)
is replaced to name it, with the model, variant, dimension and pooling it holds, the catalogue ``seq`` it
reflects and the labels marked deleted (hnswlib keeps deleted labels in the graph and has no API to list them).

Parameters were chosen with ``tests/bench/bench_hnsw.py`` (clustered 384-d vectors, 100,000 of them): see
:data:`HNSW_M`, :data:`HNSW_EF_CONSTRUCTION`, :data:`HNSW_EF`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vitfeat_desktop.config import write_json_atomic
from vitfeat_desktop.core.fileio import sha256_stream
from vitfeat_desktop.core.library.paths import INDEX_RECORD

FORMAT_VERSION = 1

log = logging.getLogger(__name__)

# hnswlib's saved header (hnswalg.h ``saveIndex``): offsetLevel0, max_elements, cur_element_count,
# size_data_per_element, label_offset, offsetData (size_t), maxlevel (int), enterpoint_node (uint32), maxM, maxM0,
# M (size_t), mult (double), ef_construction (size_t). hnswlib trusts every one of them: a wrong value is a
# native crash (or "double free or corruption") in load_index or in the first query, never an exception.
_HNSW_HEADER = struct.Struct("<6QiI3QdQ")

# Chosen by bench_hnsw.py on 100,000 clustered 384-d vectors (1,000 held-out queries, recall@10 vs exact):
#   M=16 efC=100: ef=192 -> 0.991 (1,300 q/s)     M=16 efC=200: ef=128 -> 0.991 (1,500 q/s)
#   M=24 efC=200: ef=96  -> 0.995 (2,000 q/s)     M=32 efC=200: ef=64 -> 0.990, ef=96 -> 0.998 (2,700 q/s)
# M=32 gives the fastest queries at recall >= 0.99 (the duplicates view queries every photo) for ~4% more
# memory; its slower inserts (~1.5 ms per vector on one thread) vanish next to ~50 ms of inference per photo.
# With ``--real`` (cluster centres anchored on real DINOv2 embeddings of the shared photos) the same graph needs
# more: ef=96 -> 0.987, ef=128 -> 0.992 (1,400 q/s). ef=128 meets 0.99 on both distributions.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF = 128

# Compact (rebuild without the deleted labels) when they are this share of the graph: deleted nodes still
# cost memory and search time, and too many of them break hnswlib's connectivity.
COMPACT_FRACTION = 0.25
COMPACT_MIN_DELETED = 64


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise each row (a zero row stays zero) as float32: what enters the index and the catalogue."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


class VectorIndex:
    """A thread-safe hnswlib index: upsert, remove, k-NN, atomic save, compaction.

    All methods take one lock, so a query never races an insert (hnswlib's own structures are not safe for a
    query during ``add_items`` of the same label set, and ``resize_index`` is never safe concurrently).
    """

    def __init__(self, folder: Path, dim: int, record: dict[str, Any] | None = None) -> None:
        import hnswlib

        self.folder = Path(folder)
        self.dim = int(dim)
        self.record: dict[str, Any] = dict(record or {})
        self.record.setdefault("M", HNSW_M)
        self.record.setdefault("ef_construction", HNSW_EF_CONSTRUCTION)
        self.record["ef"] = HNSW_EF  # a query-time setting: saved indexes follow the current choice
        self.record["dim"] = self.dim
        self.record["space"] = "cosine"
        self.record["format"] = FORMAT_VERSION
        self.seq = int(self.record.get("seq", -1))
        self._lock = threading.RLock()
        self._index = hnswlib.Index(space="cosine", dim=self.dim)
        self._alive: set[int] = set()
        self._deleted: set[int] = set()
        self._dirty = False
        self._hnswlib = hnswlib

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, dim: int, record: dict[str, Any] | None = None, capacity: int = 1024) -> VectorIndex:
        index = cls(folder, dim, record)
        index.seq = -1
        index._init_empty(capacity)
        return index

    def _init_empty(self, capacity: int) -> None:
        self._index = self._hnswlib.Index(space="cosine", dim=self.dim)
        self._index.init_index(max_elements=max(16, int(capacity)), M=int(self.record["M"]),
                               ef_construction=int(self.record["ef_construction"]), random_seed=100,
                               allow_replace_deleted=False)
        self._index.set_ef(int(self.record["ef"]))
        self._alive, self._deleted = set(), set()
        self._dirty = True

    @classmethod
    def load(cls, folder: Path, expected: dict[str, Any] | None = None) -> VectorIndex | None:
        """The saved index in ``folder``, or None when there is none or it does not match ``expected``."""
        folder = Path(folder)
        try:
            record = json.loads((folder / INDEX_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
            return None
        for key, value in (expected or {}).items():
            if record.get(key) != value:
                return None
        problem = verify_saved(folder, record)
        if problem is not None:
            log.warning("the similarity index in %s is damaged (%s); rebuilding it from the catalogue", folder,
                        problem)
            return None
        try:
            index = cls(folder, int(record["dim"]), record)
            path = folder / str(record["file"])
            count = int(record.get("elements", 0))
            index._index.load_index(str(path), max_elements=max(16, count))
            index._index.set_ef(int(index.record["ef"]))
            labels = set(int(x) for x in index._index.get_ids_list())
        except Exception:  # a damaged file is not fatal: the caller rebuilds from the catalogue
            return None
        index._deleted = {int(x) for x in record.get("deleted", [])} & labels
        index._alive = labels - index._deleted
        index.seq = int(record.get("seq", -1))
        index._dirty = False
        return index

    # -- contents ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return len(self._alive)

    @property
    def deleted_count(self) -> int:
        with self._lock:
            return len(self._deleted)

    def labels(self) -> set[int]:
        with self._lock:
            return set(self._alive)

    def __contains__(self, label: object) -> bool:
        with self._lock:
            return label in self._alive

    @property
    def dirty(self) -> bool:
        return self._dirty

    def touch(self) -> None:
        """Mark as changed (e.g. only ``seq`` advanced), so the next save records it."""
        self._dirty = True

    def add(self, labels: Iterable[int], vectors: np.ndarray) -> None:
        """Insert or replace vectors (normalised here) under ``labels``."""
        ids = np.asarray(list(labels), dtype=np.int64)
        if ids.size == 0:
            return
        vecs = normalize_rows(vectors)
        if vecs.shape != (ids.size, self.dim):
            raise ValueError(f"expected {ids.size} vectors of dimension {self.dim}, got {vecs.shape}")
        with self._lock:
            needed = self._index.element_count + ids.size
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, int(capacity * 1.5) + 16))
            # Many threads only pay off for big batches (a rebuild); a scan adds a batch of 8 at a time.
            self._index.add_items(vecs, ids.astype(np.uint64), num_threads=-1 if ids.size >= 256 else 1)
            for label in ids.tolist():
                self._alive.add(label)
                self._deleted.discard(label)
            self._dirty = True

    def remove(self, labels: Iterable[int]) -> int:
        """Mark labels deleted; unknown or already deleted labels are ignored. Returns how many were removed."""
        removed = 0
        with self._lock:
            for label in labels:
                label = int(label)
                if label not in self._alive:
                    continue
                self._index.mark_deleted(label)
                self._alive.discard(label)
                self._deleted.add(label)
                removed += 1
            if removed:
                self._dirty = True
        return removed

    def get(self, labels: Iterable[int]) -> np.ndarray:
        ids = [int(x) for x in labels]
        with self._lock:
            if not ids:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.asarray(self._index.get_items(ids), dtype=np.float32)

    def needs_compaction(self) -> bool:
        with self._lock:
            deleted = len(self._deleted)
            return deleted >= COMPACT_MIN_DELETED and deleted >= COMPACT_FRACTION * (deleted + len(self._alive))

    def rebuild(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the whole graph with exactly these vectors (compaction, or recovery from the catalogue)."""
        with self._lock:
            self._init_empty(max(16, int(len(labels) * 1.2) + 16))
            if len(labels):
                self.add(labels.tolist(), vectors)

    # -- search -----------------------------------------------------------------------------------------------
    def query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(labels int64 [q, k], cosine similarities float32 [q, k])``, best first, padded with -1/-1.0."""
        queries = normalize_rows(vectors)
        q = queries.shape[0]
        labels_out = np.full((q, k), -1, dtype=np.int64)
        sims_out = np.full((q, k), -1.0, dtype=np.float32)
        with self._lock:
            n = len(self._alive)
            kk = min(int(k), n)
            if kk <= 0 or q == 0:
                return labels_out, sims_out
            ef = max(int(self.record["ef"]), kk + 1)
            labels, dists = None, None
            for attempt in range(3):
                self._index.set_ef(ef)
                try:
                    labels, dists = self._index.knn_query(queries, k=kk, num_threads=-1 if q >= 256 else 1)
                    break
                except RuntimeError:  # too many deleted nodes around the entry point for this ef
                    ef *= 4
                    if attempt == 2:
                        labels = None
            self._index.set_ef(int(self.record["ef"]))
            if labels is None or dists is None:
                return self._exact(queries, kk, labels_out, sims_out)
        labels_out[:, :kk] = labels.astype(np.int64)
        sims_out[:, :kk] = 1.0 - dists
        return labels_out, sims_out

    def _exact(self, queries: np.ndarray, kk: int, labels_out: np.ndarray,
               sims_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(sorted(self._alive), dtype=np.int64)
        base = normalize_rows(np.asarray(self._index.get_items(ids.tolist()), dtype=np.float32))
        sims = queries @ base.T
        order = np.argsort(-sims, axis=1)[:, :kk]
        labels_out[:, :kk] = ids[order]
        sims_out[:, :kk] = np.take_along_axis(sims, order, axis=1)
        return labels_out, sims_out

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, seq: int) -> None:
        """Write the graph to a new file, then the record that names it (the commit point), then tidy up."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"index-{int(seq)}-{os.getpid()}.bin"
            tmp = self.folder / f".{name}.tmp"
            try:
                self._index.save_index(str(tmp))
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                    digest, size = sha256_stream(fh)
                os.replace(tmp, self.folder / name)
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            record = dict(self.record)
            record.update(file=name, seq=int(seq), elements=int(self._index.element_count),
                          count=len(self._alive), deleted=sorted(self._deleted), bytes=size, sha256=digest)
            record["record_sha256"] = _record_digest(record)
            write_json_atomic(self.folder / INDEX_RECORD, record)
            self.record, self.seq, self._dirty = record, int(seq), False
            for old in self.folder.glob("index-*.bin"):
                if old.name != name:
                    with contextlib.suppress(OSError):
                        old.unlink()


def _record_digest(record: dict[str, Any]) -> str:
    """A checksum of the record itself (every field but this one), so an edited ``dim`` or ``elements`` is
    caught before hnswlib is told to trust it."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def verify_saved(folder: Path, record: dict[str, Any]) -> str | None:
    """Why the saved graph must not be loaded (None when it checks out).

    hnswlib has no checks of its own: 4 KB of garbage in the graph file or a changed ``dim`` segfaults every
    query. So the record must carry its own checksum, the file the size and SHA-256 written with it, and the
    file's header the dimension, element count and layout the record claims. An index saved before these
    checks existed has no checksum and is rebuilt once from the catalogue.
    """
    try:
        if record.get("record_sha256") != _record_digest(record):
            return "its record does not match its checksum"
        dim, elements, m = int(record["dim"]), int(record.get("elements", 0)), int(record["M"])
        path = Path(folder) / str(record["file"])
        if Path(str(record["file"])).name != str(record["file"]):
            return "its record names a file outside its folder"
        with open(path, "rb") as fh:
            header = fh.read(_HNSW_HEADER.size)
            digest, size = sha256_stream(fh)
    except FileNotFoundError:
        return "its graph file is missing"
    except (OSError, KeyError, TypeError, ValueError) as exc:
        return f"its record or graph cannot be read ({exc})"
    if size != record.get("bytes") or digest != record.get("sha256"):
        return "its graph file does not match the checksum saved with it"
    if len(header) != _HNSW_HEADER.size:
        return "its graph file is truncated"
    (offset0, max_elements, count, per_element, label_offset, offset_data, max_level, entry, _max_m, max_m0, m_,
     _mult, _ef) = _HNSW_HEADER.unpack(header)
    links0 = max_m0 * 4 + 4
    if (offset0 != 0 or count != elements or max_elements < count or m_ != m or max_m0 != 2 * m
            or offset_data != links0 or label_offset != offset_data + 4 * dim
            or per_element != links0 + 4 * dim + 8 or not 0 <= max_level < 64 or (count and entry >= count)):
        return "its graph file's header disagrees with its record"
    return None
