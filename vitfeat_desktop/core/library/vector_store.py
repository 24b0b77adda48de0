"""The one writer of a library: keeps the SQLite catalogue and one model's hnswlib index consistent.

The catalogue is the source of truth and the index a fast, rebuildable view of its vectors. Every change goes
through :meth:`VectorStore.write`: the catalogue batch commits first (it gets a new ``seq``), then the same
batch is applied to the index, both under one lock, so an index saved from another thread never claims a
``seq`` whose rows it does not hold. A crash between the two loses nothing: :meth:`VectorStore.load` replays
every catalogue row newer than the saved index, and rebuilds the index from the catalogue when it is missing,
damaged, older than tombstones already purged, or disagrees with the catalogue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfeat_desktop.core.library.ann import VectorIndex, normalize_rows
from vitfeat_desktop.core.library.catalog import STATUS_OK, Catalog, FileUpdate
from vitfeat_desktop.core.library.model_key import ModelIdentity
from vitfeat_desktop.core.library.paths import INDEX_RECORD

if TYPE_CHECKING:
    from vitfeat_desktop.core.pipeline import FeatureExtractor

log = logging.getLogger(__name__)


class VectorStore:
    """The catalogue plus the index of one model key, written together.

    ``lock`` is shared with the owner (the library), which also holds it while it swaps models or closes;
    ``repairs`` is a list the store appends a line to whenever it found something damaged and repaired it.
    ``extractor`` is the loaded model when there is one: a new index records its pooling.
    """

    def __init__(self, folder: Path, catalog: Catalog, index_dir: Path, model: ModelIdentity, *,
                 lock: threading.RLock, repairs: list[str], extractor: FeatureExtractor | None = None) -> None:
        self.folder = folder  # the photo folder, named in messages
        self.catalog = catalog
        self.index_dir = index_dir
        self.model = model
        self.lock = lock
        self.repairs = repairs
        self.extractor = extractor
        self.index: VectorIndex | None = None
        self._loaded = False

    @property
    def model_key(self) -> str:
        return self.model.key

    # -- index lifecycle --------------------------------------------------------------------------------------
    def load(self) -> VectorIndex | None:
        """Load this model's index and bring it in line with the catalogue (replaying rows newer than it).

        A missing or damaged index, or one older than tombstones already purged, is rebuilt from the vectors
        stored in the catalogue: the index is never the only copy of anything.
        """
        with self.lock:
            if self._loaded:
                return self.index
            saved = (self.index_dir / INDEX_RECORD).exists()
            index = VectorIndex.load(self.index_dir, {"model_key": self.model_key})
            if index is not None and index.seq > self.catalog.seq:  # the catalogue was replaced or restored
                index = None
            if index is not None:
                self._sync(index)
                problem = self._disagreement(index)
                if problem is not None:
                    index = None
                    self._note(f"the similarity index of {self.folder} disagreed with the catalogue "
                               f"({problem}); rebuilt it from the catalogue")
            elif saved:
                self._note(f"the similarity index of {self.folder} was damaged or unreadable; rebuilt "
                           "it from the catalogue", logged=False)  # VectorIndex.load logged why
            if index is None and len(self.catalog.live_vector_ids(self.model_key)):
                with self.catalog.transaction():
                    ids, vectors = self.catalog.live_vectors(self.model_key)  # damaged (NaN) ones dropped
                    seq = self.catalog.seq
                if len(ids):
                    index = VectorIndex.create(self.index_dir, vectors.shape[1], self._index_record(),
                                               capacity=len(ids))
                    index.rebuild(ids, vectors)
                    index.seq = seq
            if index is not None and index.dirty:
                index.save(index.seq)
            self.index = index
            self._loaded = True
            return index

    def _note(self, message: str, *, logged: bool = True) -> None:
        """Something was repaired: kept for the caller to show (``repairs``) and logged."""
        if logged:
            log.warning("%s", message)
        self.repairs.append(message)

    def _disagreement(self, index: VectorIndex, sample: int = 32) -> str | None:
        """Why ``index`` (already brought up to the catalogue's seq) must not be trusted, or None.

        The checksum catches damage to the files; this catches an index that is intact but wrong for this
        catalogue (another library's, or one restored from a backup): same labels as the catalogue's live
        vectors, the right dimension, and a spread sample of stored vectors equal to the catalogue's.
        """
        with self.catalog.transaction():
            ids = self.catalog.live_vector_ids(self.model_key)
            picks = ids[np.unique(np.linspace(0, len(ids) - 1, min(sample, len(ids))).astype(np.int64))] \
                if len(ids) else ids
            found = self.catalog.vectors_of(self.model_key, picks.tolist())
        if index.labels() != set(ids.tolist()):
            return f"{len(index)} vectors, the catalogue {len(ids)}"
        if not len(ids):
            return None
        dims = {v.shape[-1] for v in found.values()}
        if dims != {index.dim}:
            return f"dimension {index.dim}, the catalogue's vectors {sorted(dims)}"
        stored = normalize_rows(index.get(picks.tolist()))
        expected = normalize_rows(np.stack([found[int(i)] for i in picks]))
        if not np.all(np.isfinite(expected)):
            return "the catalogue holds damaged (NaN or infinite) vectors"
        if not np.all(np.isfinite(stored)) or float(np.min(np.sum(stored * expected, axis=1))) < 0.999:
            return "stored vectors differ from the catalogue's"
        return None

    def _sync(self, index: VectorIndex) -> None:
        """Apply every catalogue row newer than ``index.seq`` (written by another process, or by a batch whose
        index update was lost in a crash). Reads one consistent snapshot of the catalogue."""
        with self.lock:
            with self.catalog.transaction():
                seq = self.catalog.seq
                if index.seq >= seq:
                    return
                full = index.seq < self.catalog.purged_seq  # tombstones it never saw are gone: start over
                replay = [] if full else self.catalog.rows_since(index.seq)
                ids, vectors = self.catalog.live_vectors(self.model_key, min_seq=None if full else index.seq)
            if full:
                index.rebuild(ids, vectors)
            else:
                if len(ids):
                    index.add(ids.tolist(), vectors)
                keep = set(ids.tolist())
                index.remove(fid for fid, _, _ in replay if fid not in keep)
            index.seq = seq
            index.touch()

    def _index_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"model_key": self.model_key, "model": self.model.model_id,
                                  "variant": self.model.variant}
        known = {m["model_key"]: m for m in self.catalog.models()}
        if self.model_key in known and known[self.model_key]["pooling"]:
            record["pooling"] = known[self.model_key]["pooling"]
            return record
        extractor = self.extractor
        if extractor is not None:
            with contextlib.suppress(Exception):  # a record without pooling is still a valid index
                record["pooling"] = extractor.pooling
        return record

    # -- writing ----------------------------------------------------------------------------------------------
    def write(self, updates: Sequence[FileUpdate], vectors: dict[str, np.ndarray] | None = None, *,
              vanished: Sequence[bytes] = (), index: bool = True) -> tuple[int, dict[bytes, int], list[int]]:
        """Commit one batch to the catalogue and then to the index: file rows, new vectors (by content hash),
        tombstones for ``vanished`` paths. Returns what :meth:`Catalog.write_batch` returns.

        In the index, every file of the batch that is ok and has a vector for this model (new, or already in
        the catalogue under its content hash) is added or replaced; the others (errors, invalid vectors) and
        the vanished ones are removed. ``index=False`` (the quick pass, no model) writes the catalogue only;
        the index catches up from the catalogue when it is next loaded.
        """
        with self.lock:
            model_key = self.model_key if index else None
            seq, ids, gone = self.catalog.write_batch(updates, vectors or {}, model_key=model_key,
                                                      vanished=vanished)
            if not index:
                return seq, ids, gone
            by_hash = dict(vectors or {})
            ok_hashes = {u.content_hash for u in updates if u.status == STATUS_OK and u.content_hash}
            missing = [h for h in ok_hashes if h not in by_hash]
            if missing:
                by_hash.update(self.catalog.known_vectors(missing, self.model_key))
            labels: list[int] = []
            rows: list[np.ndarray] = []
            bad: list[int] = []
            for u in updates:
                fid = ids[u.path]
                if u.status == STATUS_OK and u.content_hash in by_hash:
                    labels.append(fid)
                    rows.append(by_hash[u.content_hash])
                else:
                    bad.append(fid)
            self._apply(seq, labels, np.stack(rows) if rows else None, gone + bad)
            return seq, ids, gone

    def _apply(self, seq: int, labels: list[int], vectors: np.ndarray | None, removed: list[int]) -> None:
        """The index update for catalogue batch ``seq``: add ``labels``/``vectors``, drop ``removed``.

        If batches are missing in between (another process wrote to the catalogue), the index catches up from
        the catalogue instead, so ``index.seq`` always means "every row up to here is in the index".
        """
        with self.lock:
            if self.index is None:
                if not labels or vectors is None:
                    return
                # A new index: no earlier row has a vector for this model (else one would have been built).
                self.index = VectorIndex.create(self.index_dir, vectors.shape[1], self._index_record())
                self.index.seq = seq - 1
                self.catalog.register_model(self.model_key, self.model.model_id, self.model.variant,
                                            str(self.index.record.get("pooling", "")), vectors.shape[1])
            index = self.index
            if index.seq != seq - 1:
                self._sync(index)
                return
            if labels and vectors is not None:
                index.add(labels, vectors)
            if removed:
                index.remove(removed)
            index.seq = seq
            index.touch()

    def save(self) -> None:
        """Save the index if it changed (the catalogue commits by itself)."""
        with self.lock:
            if self.index is not None and self.index.dirty:
                self.index.save(self.index.seq)

    def finish(self, *, compact: bool = True) -> None:
        """After a scan (also a cancelled or failed one): compact if needed, save, drop seen tombstones."""
        with self.lock:
            index = self.index
            if index is None:
                return
            if compact and index.needs_compaction():
                with self.catalog.transaction():
                    ids, vectors = self.catalog.live_vectors(self.model_key)
                    seq = self.catalog.seq
                index.rebuild(ids, vectors)
                index.seq = seq
            if index.dirty:
                index.save(index.seq)
            self.catalog.purge_deleted(index.seq)
