"""A library: one photo folder, its catalogue and one hnswlib index per model/variant, and search over them.

This is the facade the CLI, the duplicates engine and the GUI use. Everything lives under
``config.libraries_dir()/<folder name>-<hash of its path>/`` and nothing is ever written in the photo folder:
``catalog.sqlite`` (WAL) and ``indexes/<model key>/`` (``index.json`` + the graph). Changing the model or the
variant gives another index next to the old one; vectors of every model stay in the catalogue.

Thread safety: one scan at a time (a second one raises), queries may run on other threads while it writes, as
the catalogue and the index each serialise their own access.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.errors import ModelError, VitfeatError
from vitfeat_desktop.core.library.ann import VectorIndex, normalize_rows
from vitfeat_desktop.core.library.catalog import STATUS_OK, Catalog, CatalogDamaged, FileRecord, salvage_vectors
from vitfeat_desktop.core.library.scanner import Scanner, ScanReport
from vitfeat_desktop.core.progress import CancelFn, ProgressFn

if TYPE_CHECKING:
    from PIL import Image

    from vitfeat_desktop.core.pipeline import FeatureExtractor
    from vitfeat_desktop.core.preprocess import Preprocessor

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.sqlite"
LIBRARY_RECORD = "library.json"


@dataclass(frozen=True)
class SimilarResult:
    path: str
    score: float  # cosine similarity, 1.0 = same direction
    file_id: int


def library_dir(folder: str | os.PathLike[str]) -> Path:
    """Where the data of the library rooted at ``folder`` lives (stable for the folder's absolute path)."""
    root = Path(folder).expanduser().resolve()
    digest = hashlib.sha256(os.fsencode(str(root))).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name)[:40].strip("._") or "root"
    return config.libraries_dir() / f"{name}-{digest}"


def default_model() -> str:
    """The model a library uses when none is given: the user's setting, else the app default."""
    return settings.load().model or config.DEFAULT_MODEL_ID


def make_model_key(model_id: str, variant: str, fingerprint: str = "") -> str:
    """A file-name-safe, stable key for (model, variant, weights): readable name + hash of id and weights.

    The weights' fingerprint is part of the key so that a model folder updated in place (a new revision of
    the same hub id) gets a new index instead of mixing vectors of two different networks.
    """
    base = Path(model_id).name if ("/" in model_id and os.path.isabs(model_id)) else model_id
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base.replace("/", "--"))[:60].strip("._") or "model"
    digest = hashlib.sha256(f"{model_id}|{fingerprint}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe}-{variant}-{digest}"


def weights_fingerprint(onnx_path: str | os.PathLike[str] | None) -> str:
    """Size plus a hash of the first and last MiB of an ONNX file: cheap, and changes with the weights."""
    if onnx_path is None:
        return ""
    try:
        with open(onnx_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            digest = hashlib.sha256(str(size).encode())
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(size - (1 << 20))
                digest.update(fh.read(1 << 20))
    except OSError:
        return ""
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_library` did: where the damaged files were put, and how many vectors it kept."""

    set_aside: Path
    vectors_kept: int


def repair_library(folder: str | os.PathLike[str]) -> RepairReport:
    """Start the catalogue of ``folder`` afresh after damage: the damaged catalogue and its indexes are moved
    (never deleted) to ``damaged-<time>/`` in the library's data folder, the vectors still readable in it are
    copied into a new catalogue, and the next scan rebuilds the rest from the photos. Not-a-duplicate marks,
    calibrations and the undo journals live outside the catalogue and are kept as they are.

    Run it while no other vitfeat has this library open.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise VitfeatError(f"folder {root} does not exist" if not root.exists() else f"{root} is not a folder")
    root = root.resolve()
    data = library_dir(root)
    aside = data / time.strftime("damaged-%Y%m%d-%H%M%S", time.gmtime())
    aside.mkdir(parents=True, exist_ok=True)
    for name in (CATALOG_NAME, f"{CATALOG_NAME}-wal", f"{CATALOG_NAME}-shm", "indexes"):
        if (data / name).exists():
            os.replace(data / name, aside / name)
    catalog = Catalog(data / CATALOG_NAME)
    try:
        kept = salvage_vectors(aside / CATALOG_NAME, catalog) if (aside / CATALOG_NAME).exists() else 0
    finally:
        catalog.close()
    log.warning("set the damaged catalogue of %s aside in %s; kept %d stored vectors", root, aside, kept)
    return RepairReport(aside, kept)


class Library:
    """One indexed folder. Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(self, folder: Path, data: Path, *, model: str | Path | None, quantized: bool,
                 extractor: FeatureExtractor | None, intra_op_threads: int | None = None) -> None:
        self.folder = folder
        self.data_dir = data
        self.catalog = Catalog(data / CATALOG_NAME)
        self._model_spec = model
        self._quantized = quantized
        self._extractor = extractor
        self._intra_op_threads = intra_op_threads
        self._lock = threading.RLock()
        self._scan_lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        self.index: VectorIndex | None = None
        self._index_loaded = False
        self.repairs: list[str] = []  # what was found damaged and repaired since opening, one line each
        self._model_id, self._variant, fingerprint = self._identify()
        self.model_key = make_model_key(self._model_id, self._variant, fingerprint)

    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, model: str | Path | None = None, quantized: bool = True,
             extractor: FeatureExtractor | None = None, intra_op_threads: int | None = None) -> Library:
        """Open (creating if needed) the library of ``folder``; no model is loaded until one is needed."""
        root = Path(folder).expanduser()
        if not root.exists():
            raise VitfeatError(f"folder {root} does not exist")
        if not root.is_dir():
            raise VitfeatError(f"{root} is not a folder")
        root = root.resolve()
        data = library_dir(root)
        data.mkdir(parents=True, exist_ok=True)
        record = data / LIBRARY_RECORD
        if not record.exists():
            config.write_json_atomic(record, {"folder": os.fsdecode(os.fsencode(str(root))), "format": 1})
        try:
            return cls(root, data, model=model, quantized=quantized, extractor=extractor,
                       intra_op_threads=intra_op_threads)
        except CatalogDamaged as exc:
            raise CatalogDamaged(f"{exc}; repair it with: vitfeat index --repair {root} (rebuilds it from the "
                                 "photos, keeping not-a-duplicate marks and the undo history)") from exc

    def _identify(self) -> tuple[str, str, str]:
        """(model id, variant, weights fingerprint) without loading the model."""
        if self._extractor is not None:
            return (str(self._extractor.model_id), str(self._extractor.variant),
                    weights_fingerprint(getattr(self._extractor, "onnx_path", None)))
        from vitfeat_desktop.core.models import cache as hub

        spec = self._model_spec if self._model_spec is not None else default_model()
        variant = "int8" if self._quantized else "fp32"
        # Look at the files only: resolving a hub id may start a download, which opening a library must not.
        if hub.looks_like_path(spec):
            folder = Path(spec).expanduser().resolve()
            model_id = str(folder)
        else:
            model_id = hub.validate_model_id(str(spec))
            folder = hub.cache_folder(model_id)
        onnx = folder / hub.variant_file(self._quantized)
        # Empty when the weights are not here yet; the key then changes once they are, which is right: no
        # vectors can exist for weights we never had.
        return model_id, variant, weights_fingerprint(onnx if onnx.is_file() else None)

    # -- model ----------------------------------------------------------------------------------------------
    @property
    def extractor(self) -> FeatureExtractor:
        """The feature extractor, loaded on first use (a quick scan never needs it)."""
        if self._extractor is None:
            with self._lock:
                if self._extractor is None:
                    from vitfeat_desktop.core.pipeline import pipeline

                    spec = self._model_spec if self._model_spec is not None else default_model()
                    self._extractor = pipeline("image-feature-extraction", model=spec, quantized=self._quantized,
                                               intra_op_threads=self._intra_op_threads)
                    self._refresh_model_key()
        return self._extractor

    def _refresh_model_key(self) -> None:
        """Re-key once the weights are really here (a hub model may have been downloaded just now)."""
        extractor = self._extractor
        if extractor is None:
            return
        model_id, variant = str(extractor.model_id), str(extractor.variant)
        key = make_model_key(model_id, variant, weights_fingerprint(getattr(extractor, "onnx_path", None)))
        if key != self.model_key:
            self._model_id, self._variant, self.model_key = model_id, variant, key
            self.index, self._index_loaded = None, False

    def preprocessor(self) -> Preprocessor:
        """The model's preprocessor, from its config file only: no ONNX session, and never a download."""
        if self._extractor is not None:
            return self._extractor.preprocessor
        from vitfeat_desktop.core.models import cache as hub
        from vitfeat_desktop.core.preprocess import Preprocessor

        spec = self._model_spec if self._model_spec is not None else default_model()
        folder = (Path(spec).expanduser() if hub.looks_like_path(spec)
                  else hub.cache_folder(hub.validate_model_id(str(spec))))
        path = folder / "preprocessor_config.json"
        if not path.is_file():
            raise VitfeatError(f"model {spec} is not available here ({path} is missing)")
        return Preprocessor.from_file(path)

    @property
    def writer_lock(self) -> threading.RLock:
        """Held while a catalogue batch and its index update are applied, and while the index is saved."""
        return self._lock

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes" / self.model_key

    # -- index lifecycle --------------------------------------------------------------------------------------
    def ensure_index_loaded(self) -> VectorIndex | None:
        """Load this model's index and bring it in line with the catalogue (replaying rows newer than it).

        A missing or damaged index, or one older than tombstones already purged, is rebuilt from the vectors
        stored in the catalogue: the index is never the only copy of anything.
        """
        with self._lock:
            if self._index_loaded:
                return self.index
            saved = (self.index_dir / "index.json").exists()
            index = VectorIndex.load(self.index_dir, {"model_key": self.model_key})
            if index is not None and index.seq > self.catalog.seq:  # the catalogue was replaced or restored
                index = None
            if index is not None:
                self._sync(index)
                problem = self._disagreement(index)
                if problem is not None:
                    index = None
                    self._note(f"the similarity index of {self.folder} disagreed with the catalogue ({problem}); "
                               "rebuilt it from the catalogue")
            elif saved:
                self._note(f"the similarity index of {self.folder} was damaged or unreadable; rebuilt it from "
                           "the catalogue", logged=False)  # VectorIndex.load logged why
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
            self._index_loaded = True
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
        with self._lock:
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
        record: dict[str, Any] = {"model_key": self.model_key, "model": self._model_id, "variant": self._variant}
        known = {m["model_key"]: m for m in self.catalog.models()}
        if self.model_key in known and known[self.model_key]["pooling"]:
            record["pooling"] = known[self.model_key]["pooling"]
            return record
        extractor = self._extractor
        if extractor is not None:
            with contextlib.suppress(Exception):  # a record without pooling is still a valid index
                record["pooling"] = extractor.pooling
        return record

    def index_apply(self, seq: int, labels: list[int], vectors: np.ndarray | None, removed: list[int]) -> None:
        """The writer's update for catalogue batch ``seq``: add ``labels``/``vectors``, drop ``removed``.

        If batches are missing in between (another process wrote to the catalogue), the index catches up from
        the catalogue instead, so ``index.seq`` always means "every row up to here is in the index".
        """
        with self._lock:
            if self.index is None:
                if not labels or vectors is None:
                    return
                # A new index: no earlier row has a vector for this model (else one would have been built).
                self.index = VectorIndex.create(self.index_dir, vectors.shape[1], self._index_record())
                self.index.seq = seq - 1
                self.catalog.register_model(self.model_key, self._model_id, self._variant,
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

    def save_index(self) -> None:
        with self._lock:
            if self.index is not None and self.index.dirty:
                self.index.save(self.index.seq)

    def finish_scan(self, *, compact: bool = True) -> None:
        """After a scan (also a cancelled or failed one): compact if needed, save, drop seen tombstones."""
        with self._lock:
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

    # -- scanning ---------------------------------------------------------------------------------------------
    def scan(self, *, embed: bool = True, threads: int | None = None, progress: ProgressFn | None = None,
             cancel: CancelFn | None = None) -> ScanReport:
        """Bring the catalogue (and with ``embed``, this model's index) up to date with the folder.

        ``embed=False`` is the quick pass: walk, stat, content hash, header metadata, one small decode and the
        perceptual hashes, no model. ``threads``: decode threads. Raises :class:`Cancelled` when ``cancel()``
        turns true (within about a second); everything finished until then is kept.
        """
        if not self._scan_lock.acquire(blocking=False):
            raise VitfeatError(f"a scan of {self.folder} is already running")
        try:
            if not self.folder.is_dir():
                raise VitfeatError(f"folder {self.folder} is not available (unplugged or removed?); nothing changed")
            if self._closing.is_set():
                raise VitfeatError(f"the library of {self.folder} is closed")

            def stop() -> bool:  # the caller's cancel, or close() from another thread
                return self._closing.is_set() or bool(cancel is not None and cancel())

            return Scanner(self, embed=embed, threads=threads, progress=progress, cancel=stop).run()
        finally:
            self._scan_lock.release()

    # -- reading ----------------------------------------------------------------------------------------------
    def files(self, *, status: str | None = None) -> list[FileRecord]:
        """Catalogued files (all live ones, or those with ``status`` "ok" / "error")."""
        return self.catalog.files(status=status)

    def skipped(self) -> list[tuple[str, str]]:
        return self.catalog.skipped()

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(file_ids int64 [n], L2-normalised float32 [n, d])`` for this model, in file id order."""
        return self.catalog.live_vectors(self.model_key)

    def _require_index(self) -> VectorIndex:
        index = self.ensure_index_loaded()
        if index is None or len(index) == 0:
            # A model that cannot be loaded (damaged, incomplete) gets a new key and so "no images": say why.
            _ = self.extractor.session
            raise VitfeatError(
                f"the library {self.folder} has no images indexed with model {self._model_id} ({self._variant}); "
                f"run: vitfeat index {self.folder}"
            )
        return index

    def query_vector(self, query: str | os.PathLike[str] | Image.Image | np.ndarray) -> tuple[np.ndarray, int | None]:
        """The normalised vector of a query and the file id when it is a catalogued file of this library."""
        from PIL import Image as PILImage

        if isinstance(query, np.ndarray) and query.ndim == 1:
            return normalize_rows(query)[0], None
        if isinstance(query, str | os.PathLike):
            path = Path(query).expanduser()
            if not path.exists():
                raise VitfeatError(f"image {path} does not exist")
            record = self.catalog.get_file_by_path(path.resolve())
            if record is not None and record.status == STATUS_OK and record.content_hash:
                try:
                    stat = path.stat()
                    fresh = stat.st_size == record.size and int(stat.st_mtime_ns) == record.mtime_ns
                except OSError:
                    fresh = False
                found = self.catalog.known_vectors([record.content_hash], self.model_key)
                if fresh and record.content_hash in found:
                    return found[record.content_hash], record.id
            from vitfeat_desktop.core.images import open_image

            pre = self.extractor.preprocessor
            image = open_image(path, min_side=pre.min_decode_side())
            file_id = record.id if record is not None else None
        elif isinstance(query, PILImage.Image):
            from vitfeat_desktop.core.images import check_processable, to_rgb_composited

            check_processable(query)
            image, file_id = to_rgb_composited(query), None
        elif isinstance(query, np.ndarray):
            from vitfeat_desktop.core.images import array_to_image

            image, file_id = array_to_image(query), None
        else:
            raise TypeError(f"a query is a path, a PIL image or a numpy array, not {type(query).__name__}")
        pre = self.extractor.preprocessor
        pixels = pre.normalize_uint8(pre.to_uint8_chw(image))[None]
        vector = normalize_rows(self.extractor.embed(pixels))[0]
        if not np.all(np.isfinite(vector)):
            raise ModelError(f"model {self._model_id} gave an invalid vector (NaN or infinite) for the query; "
                             "its weights may be damaged")
        return vector, file_id

    def similar(self, query: str | os.PathLike[str] | Image.Image | np.ndarray, k: int = 10, *,
                exclude_self: bool = True) -> list[SimilarResult]:
        """The ``k`` indexed images most similar to ``query`` (a path, PIL image, uint8 image array or a
        vector), best first. ``exclude_self`` leaves out the query's own catalogue entry."""
        if k <= 0:
            raise ValueError("k must be at least 1")
        index = self._require_index()
        vector, self_id = self.query_vector(query)
        if vector.shape[-1] != index.dim:
            raise VitfeatError(f"query vector has dimension {vector.shape[-1]}, the index {index.dim}")
        labels, sims = index.query(vector[None], k + 1)
        ids = [int(x) for x in labels[0] if x >= 0]
        scores = [float(s) for x, s in zip(labels[0], sims[0], strict=True) if x >= 0]
        paths = self.catalog.paths_for(ids)
        out: list[SimilarResult] = []
        for fid, score in zip(ids, scores, strict=True):
            if exclude_self and self_id is not None and fid == self_id:
                continue
            if fid in paths:
                out.append(SimilarResult(path=paths[fid], score=score, file_id=fid))
        return out[:k]

    def knn(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k-NN graph of the library: ``(file_ids [n], neighbour ids [n, k], cosine sims [n, k])``.

        Each row excludes the file itself; missing neighbours (fewer than k + 1 files) are -1 with similarity
        -1.0. Computed with the hnswlib index in chunks, so memory stays bounded.
        """
        if k <= 0:
            raise ValueError("k must be at least 1")
        ids, vectors = self.vectors()
        n = len(ids)
        neighbours = np.full((n, k), -1, dtype=np.int64)
        sims = np.full((n, k), -1.0, dtype=np.float32)
        if n == 0:
            return ids, neighbours, sims
        index = self._require_index()
        for start in range(0, n, 4096):
            stop = min(n, start + 4096)
            labels, scores = index.query(vectors[start:stop], k + 1)
            # Drop each row's own label (wherever it ranks: exact copies tie with it) and the padding, keeping
            # the order of the rest; a stable sort moves the dropped entries to the end.
            drop = (labels == ids[start:stop, None]) | (labels < 0)
            order = np.argsort(drop, axis=1, kind="stable")
            labels = np.take_along_axis(labels, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
            dropped = np.take_along_axis(drop, order, axis=1)
            labels[dropped] = -1
            scores[dropped] = -1.0
            neighbours[start:stop] = labels[:, :k]
            sims[start:stop] = scores[:, :k]
        return ids, neighbours, sims

    # -- lifetime ---------------------------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Stop a running scan (it raises :class:`Cancelled` in its thread), save the index, close the catalogue.

        Safe to call from another thread than the scan's, and more than once.
        """
        if self._closing.is_set() and self._closed:
            return
        self._closing.set()
        got = self._scan_lock.acquire(timeout=timeout)
        try:
            with self._lock:
                if self._closed:
                    return
                try:
                    self.save_index()
                finally:
                    self.catalog.close()
                    self._closed = True
        finally:
            if got:
                self._scan_lock.release()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Library({str(self.folder)!r}, model_key={self.model_key!r})"
