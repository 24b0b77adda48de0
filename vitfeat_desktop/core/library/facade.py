"""A library: one photo folder, its catalogue and one hnswlib index per model/variant, and search over them.

This is the facade the CLI, the duplicates engine and the GUI use; it composes the parts and owns their
lifetime: the catalogue (:mod:`.catalog`), the writer that keeps it and the current model's index consistent
(:mod:`.vector_store`), the folder scanner (:mod:`.scanner`) and the model key (:mod:`.model_key`). Where the
files live is :mod:`.paths`; nothing is ever written in the photo folder. Changing the model or the variant
gives another index next to the old one; vectors of every model stay in the catalogue.

Thread safety: one scan at a time (a second one raises), queries may run on other threads while it writes, as
the catalogue and the index each serialise their own access.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ModelError, VitfeatError
from vitfeat_desktop.core.library.ann import VectorIndex, normalize_rows
from vitfeat_desktop.core.library.catalog import STATUS_OK, Catalog, CatalogDamaged, FileRecord, salvage_vectors
from vitfeat_desktop.core.library.model_key import ModelIdentity, default_model, identify, model_folder
from vitfeat_desktop.core.library.paths import LibraryPaths
from vitfeat_desktop.core.library.scanner import Scanner, ScanReport
from vitfeat_desktop.core.library.vector_store import VectorStore
from vitfeat_desktop.core.progress import CancelFn, ProgressFn

if TYPE_CHECKING:
    from PIL import Image

    from vitfeat_desktop.core.pipeline import FeatureExtractor
    from vitfeat_desktop.core.preprocess import Preprocessor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimilarResult:
    path: str
    score: float  # cosine similarity, 1.0 = same direction
    file_id: int


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
    paths = LibraryPaths.of(root)
    aside = LibraryPaths(paths.damaged(time.strftime("%Y%m%d-%H%M%S", time.gmtime())))
    aside.data.mkdir(parents=True, exist_ok=True)
    for path in (*paths.catalog_files, paths.indexes):
        if path.exists():
            os.replace(path, aside.data / path.name)
    catalog = Catalog(paths.catalog)
    try:
        kept = salvage_vectors(aside.catalog, catalog) if aside.catalog.exists() else 0
    finally:
        catalog.close()
    log.warning("set the damaged catalogue of %s aside in %s; kept %d stored vectors", root, aside.data, kept)
    return RepairReport(aside.data, kept)


class Library:
    """One indexed folder. Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(self, folder: Path, data: Path, *, model: str | Path | None, quantized: bool,
                 extractor: FeatureExtractor | None, intra_op_threads: int | None = None) -> None:
        self.folder = folder
        self.data_dir = data
        self.paths = LibraryPaths(data)
        self.catalog = Catalog(self.paths.catalog)
        self._model_spec = model
        self._quantized = quantized
        self._extractor = extractor
        self._intra_op_threads = intra_op_threads
        self._lock = threading.RLock()
        self._scan_lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        self.repairs: list[str] = []  # what was found damaged and repaired since opening, one line each
        self._store = self._new_store(self._identify())

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
        paths = LibraryPaths.of(root)
        paths.data.mkdir(parents=True, exist_ok=True)
        if not paths.record.exists():
            config.write_json_atomic(paths.record, {"folder": os.fsdecode(os.fsencode(str(root))), "format": 1})
        try:
            return cls(root, paths.data, model=model, quantized=quantized, extractor=extractor,
                       intra_op_threads=intra_op_threads)
        except CatalogDamaged as exc:
            raise CatalogDamaged(f"{exc}; repair it with: vitfeat index --repair {root} (rebuilds it from the "
                                 "photos, keeping not-a-duplicate marks and the undo history)") from exc

    def _identify(self) -> ModelIdentity:
        """The model's identity without loading it."""
        if self._extractor is not None:
            return ModelIdentity.of(str(self._extractor.model_id), str(self._extractor.variant),
                                    self._extractor.onnx_path)
        return identify(self._spec, self._quantized)

    @property
    def _spec(self) -> str | Path:
        return self._model_spec if self._model_spec is not None else default_model()

    def _new_store(self, model: ModelIdentity) -> VectorStore:
        return VectorStore(self.folder, self.catalog, self.paths.index_dir(model.key), model, lock=self._lock,
                           repairs=self.repairs, extractor=self._extractor)

    @property
    def model_key(self) -> str:
        """The key of the current model's index (see :func:`.model_key.make_model_key`)."""
        return self._store.model_key

    def sidecar(self, name: str) -> Path:
        """The path of this library's side file ``name`` (see :func:`.paths.sidecar`)."""
        return self.paths.sidecar(name)

    # -- model ----------------------------------------------------------------------------------------------
    @property
    def extractor(self) -> FeatureExtractor:
        """The feature extractor, loaded on first use (a quick scan never needs it)."""
        if self._extractor is None:
            with self._lock:
                if self._extractor is None:
                    from vitfeat_desktop.core.pipeline import pipeline

                    self._extractor = pipeline("image-feature-extraction", model=self._spec,
                                               quantized=self._quantized, intra_op_threads=self._intra_op_threads)
                    self._refresh_model_key()
        return self._extractor

    def _refresh_model_key(self) -> None:
        """Re-key once the weights are really here (a hub model may have been downloaded just now)."""
        model = self._identify()
        if model.key != self._store.model_key:
            self._store = self._new_store(model)  # the old key's index is dropped unsaved: the catalogue has it
        else:
            self._store.extractor = self._extractor

    def preprocessor(self) -> Preprocessor:
        """The model's preprocessor, from its config file only: no ONNX session, and never a download."""
        if self._extractor is not None:
            return self._extractor.preprocessor
        from vitfeat_desktop.core.preprocess import Preprocessor

        spec = self._spec
        path = model_folder(spec) / "preprocessor_config.json"
        if not path.is_file():
            raise VitfeatError(f"model {spec} is not available here ({path} is missing)")
        return Preprocessor.from_file(path)

    @property
    def index_dir(self) -> Path:
        return self._store.index_dir

    @property
    def index(self) -> VectorIndex | None:
        """The current model's index when loaded (see :meth:`ensure_index_loaded`)."""
        return self._store.index

    def ensure_index_loaded(self) -> VectorIndex | None:
        """Load this model's index, replaying or rebuilding it from the catalogue (:meth:`VectorStore.load`)."""
        return self._store.load()

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

            scanner = Scanner(self.folder, threads=threads, progress=progress, cancel=stop)
            listing = scanner.list_files()
            if embed:
                # The model first: loading it may download it and so settle the model key (and the store).
                extractor = self.extractor
                return scanner.run(listing, self._store, extractor=extractor)
            min_side = 256
            with contextlib.suppress(VitfeatError, OSError):  # no model here: hash at the usual size
                min_side = self.preprocessor().min_decode_side()
            return scanner.run(listing, self._store, min_side=min_side)
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
            model = self._store.model
            raise VitfeatError(
                f"the library {self.folder} has no images indexed with model {model.model_id} ({model.variant}); "
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
            from vitfeat_desktop.core.pixels import check_processable, to_rgb_composited

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
            raise ModelError(f"model {self._store.model.model_id} gave an invalid vector (NaN or infinite) for the "
                             "query; its weights may be damaged")
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
                    self._store.save()
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
