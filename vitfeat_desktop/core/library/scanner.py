"""Scan a folder incrementally: walk -> decode on a thread pool -> bounded window -> batched inference -> one writer.

Why this shape: on camera JPEGs the decoder, not the model, is the expensive part unless it is (a) asked for a
reduced image (JPEG ``draft``, never below what the preprocessor needs) and (b) run on other threads while ONNX
Runtime works on the previous batch. The window of decodes in flight is bounded, so memory does not grow with the
library, and the calling thread is the only one that writes, through the library's vector store (catalogue first,
then the index), so a crash loses at most the batch in flight: everything committed to the catalogue is replayed
into the index on the next open. The scanner knows nothing of the ``Library`` that runs it: it gets the folder,
the store and the model as arguments.

A re-scan never opens a file whose size and mtime are unchanged; a new or changed file whose content hash already
has a vector for this model (a move, rename or copy) reuses it without decoding; files that vanished become
tombstones in the catalogue and are marked deleted in the index.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from vitfeat_desktop.core.errors import Cancelled, ImageReadError, VitfeatError
from vitfeat_desktop.core.fileio import sha256_file
from vitfeat_desktop.core.images import open_image_with_info
from vitfeat_desktop.core.library.ann import normalize_rows
from vitfeat_desktop.core.library.catalog import STATUS_ERROR, STATUS_OK, CatalogWriteError, FileUpdate
from vitfeat_desktop.core.library.vector_store import VectorStore
from vitfeat_desktop.core.library.walk import Entry, walk
from vitfeat_desktop.core.phash import image_hashes, to_signed64
from vitfeat_desktop.core.pixels import failure_reason
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

if TYPE_CHECKING:
    from vitfeat_desktop.core.pipeline import FeatureExtractor
    from vitfeat_desktop.core.preprocess import Preprocessor

_T = TypeVar("_T")
log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20
# Save the index at least this often during a long scan, so a crash replays little.
SAVE_INTERVAL_S = 60.0
# Rows without inference (errors, reuses, quick-pass files) are written in groups of this size or this age.
WRITE_GROUP = 256
WRITE_AGE_S = 1.0


def default_decode_threads() -> int:
    """Decode threads: enough to keep inference fed without starving its own intra-op threads."""
    return max(2, min(6, (os.cpu_count() or 2)))


def content_hash(path: str | os.PathLike[str], cancel: CancelFn | None = None) -> str:
    """SHA-256 of the whole file in 1 MiB chunks, as 32 hex digits (128 bits): exact duplicates and moved files
    are found by it. SHA-256 rather than BLAKE2: CPUs with SHA extensions (most x86 since 2017, ARMv8) hash at
    ~2 GB/s, 40% faster than BLAKE2b here, and this runs once per new file on the decode threads."""
    return sha256_file(path)[:32]


@dataclass
class ScanReport:
    """What a scan did. ``skipped`` lists every file below the folder that is not indexed, with the reason."""

    indexed: int = 0
    unchanged: int = 0
    reused: int = 0
    removed: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    total: int = 0
    embedded: bool = True
    model_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "unchanged": self.unchanged,
            "reused": self.reused,
            "removed": self.removed,
            "skipped": list(self.skipped),
            "seconds": round(self.seconds, 3),
            "total": self.total,
            "embedded": self.embedded,
            "model": self.model_key,
        }


@dataclass
class Work:
    entry: Entry
    known_hash: str | None = None  # content unchanged since the catalogue saw it: no need to hash again
    file_id: int | None = None


@dataclass
class Prepared:
    """What a decode thread produced for one file."""

    work: Work
    update: FileUpdate
    pixels: np.ndarray | None = None  # float32 CHW when this file needs inference
    reuse: bool = False  # its content already has a vector for this model


@dataclass
class Listing:
    """The first phase of a scan: what is below the folder now, before any model is involved."""

    entries: list[Entry]
    folder_skips: list[dict[str, str]]
    reporter: Reporter


class Scanner:
    """One scan of one folder, in two phases the caller (:meth:`Library.scan`) runs in turn.

    :meth:`list_files` walks the folder; then the caller settles the model (loading it may download it and so
    change the model key) and hands :meth:`run` the :class:`VectorStore` to write to and, for a full scan, the
    extractor. The scanner reads the catalogue through the store and writes only through :meth:`VectorStore.write`.
    """

    def __init__(self, folder: Path, *, threads: int | None, progress: ProgressFn | None,
                 cancel: CancelFn | None) -> None:
        self.folder = folder
        self.threads = max(1, int(threads)) if threads else default_decode_threads()
        self.progress = progress
        self.cancel = cancel
        self.embed = False
        self.report = ScanReport()
        self._known: set[str] = set()
        self._min_side = 256
        self._extractor: FeatureExtractor | None = None
        self._pre: Preprocessor | None = None
        self._batch_size = 8
        self._last_save = time.monotonic()
        self._stop = threading.Event()
        # Open while decoders may start work on a file. Closed during CPU inference (see _embed): ONNX Runtime
        # splits every operator across its intra-op threads and waits for the slowest, so a decoder that takes
        # one of "its" cores stalls the whole batch; alternating phases keeps every core busy with one of them.
        self._gate = threading.Event()
        self._gate.set()
        self._exclusive = False
        # Batches embedded at once, each on its own thread (see ``inference_lanes``); 1 = one helper thread.
        self._lanes = 1
        self._infer: ThreadPoolExecutor | None = None
        self._started = time.monotonic()

    def list_files(self) -> Listing:
        """Walk the folder (cancellable); the first phase, which needs neither the catalogue nor a model."""
        self._started = time.monotonic()
        reporter = Reporter(self.progress, "walking")
        entries, folder_skips = walk(self.folder, cancel=self.cancel,
                                     on_entry=lambda n: reporter.update(n, "listing files"))
        reporter.update(len(entries), "listing files", force=True)
        return Listing(entries, folder_skips, reporter)

    def run(self, listing: Listing, store: VectorStore, *, extractor: FeatureExtractor | None = None,
            min_side: int = 256) -> ScanReport:
        """Bring the catalogue (and with ``extractor``, ``store``'s index) up to date with ``listing``.

        Without an extractor this is the quick pass (no model): ``min_side`` is then the smallest decode the
        model's preprocessor will later need, so the perceptual hashes match what a full scan computes.
        """
        entries, folder_skips, reporter = listing.entries, listing.folder_skips, listing.reporter
        self.embed = extractor is not None
        self.report = ScanReport(embedded=self.embed, total=len(entries))
        self._store = store
        catalog = store.catalog
        state = catalog.scan_state()
        self._min_side = min_side
        if extractor is not None:
            self._extractor = extractor
            self._pre = extractor.preprocessor
            self._min_side = self._pre.min_decode_side()
            self._batch_size = max(1, int(extractor.batch_size))
            on_cpu = _runs_on_cpu(extractor)
            self._lanes = inference_lanes(extractor) if on_cpu else 1
            # Turn-taking only pays with one lane whose intra-op threads fill the cores; with several 1-thread
            # lanes a decoder taking a core delays one lane, not a whole barrier-synchronised batch.
            self._exclusive = on_cpu and self._lanes == 1 and _gate_wanted()
            store.load()
            self._known = catalog.has_vector_hashes(store.model_key)
        self.report.model_key = store.model_key if self.embed else None

        # Classify: untouched files cost one dict lookup each (this is the whole of an unchanged re-scan).
        seen: set[bytes] = set()
        todo: list[Work] = []
        error_rows: list[FileUpdate] = []
        for entry in entries:
            key = entry.key
            seen.add(key)
            row = state.get(key)
            if entry.error is not None:
                if row is None or row[3] != STATUS_ERROR or row[1] != -1 or row[5] != entry.error:
                    error_rows.append(FileUpdate(key, -1, -1, STATUS_ERROR, error=entry.error))
                continue
            if row is not None and row[1] == entry.size and row[2] == entry.mtime_ns:
                status, chash = row[3], row[4]
                if status == STATUS_ERROR and not _transient(row[5]):
                    continue  # a broken file stays broken until it changes
                if status == STATUS_ERROR:
                    todo.append(Work(entry))  # a transient error: try again
                    continue
                if not self.embed or (chash is not None and chash in self._known):
                    self.report.unchanged += 1
                    continue
                todo.append(Work(entry, known_hash=chash, file_id=row[0]))
                continue
            todo.append(Work(entry))
        # Files below a folder we could not list this time are not "vanished": a share that is briefly
        # unreadable must not cost the user their index.
        unlisted = tuple(os.fsencode(s["path"]) + os.sep.encode() for s in folder_skips)
        vanished = [key for key in state if key not in seen and not (unlisted and key.startswith(unlisted))]
        if vanished or error_rows:
            # A file that became unreadable (or a second name of another) leaves the index with the vanished.
            _, _, gone = store.write(error_rows, vanished=vanished, index=self.embed)
            self.report.removed = len(gone)
        check_cancel(self.cancel)

        reporter.restart("indexing" if self.embed else "hashing", total=len(todo))
        failed = False
        try:
            self._process(todo, reporter)
        except CatalogWriteError as exc:
            failed = True
            done = self.report.indexed + self.report.reused
            raise CatalogWriteError(f"{exc}: stopped after {done} new files, which are kept; free some space and "
                                    f"run the scan again to go on (vitfeat index {self.folder})") from exc
        except BaseException:
            failed = True
            raise
        finally:
            if self.embed:
                try:
                    store.finish(compact=not failed)
                except (OSError, VitfeatError) as exc:
                    if not failed:
                        raise
                    # Not the first problem; the index catches up from the catalogue on the next open.
                    log.warning("the similarity index was not saved (%s)", exc)
        reporter.update(len(todo), "done", force=True)
        skipped = [{"path": p, "reason": r} for p, r in catalog.skipped()] + folder_skips
        self.report.skipped = skipped
        self.report.seconds = time.monotonic() - self._started
        return self.report

    @property
    def _model(self) -> FeatureExtractor:
        """The extractor of a full scan (only the inference paths ask, and only a full scan gets there)."""
        if self._extractor is None:
            raise VitfeatError("a quick scan has no model")
        return self._extractor

    # -- the pipeline -------------------------------------------------------------------------------------------
    def _process(self, todo: list[Work], reporter: Reporter) -> None:
        if not todo:
            return
        window_size = max(2 * self._batch_size + self.threads, 2 * self.threads)
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="vitfeat-scan")
        window: deque[Future[Prepared]] = deque()
        items = iter(todo)
        pixels: list[np.ndarray] = []
        waiting: list[Prepared] = []  # results held until their batch is embedded
        plain: list[Prepared] = []  # results that need no inference
        last_plain = time.monotonic()
        done = 0
        lanes = ThreadPoolExecutor(max_workers=self._lanes, thread_name_prefix="vitfeat-infer") \
            if self._lanes > 1 else None
        # One lane: the batch still runs one at a time, but on its own thread, so this thread keeps answering
        # cancel and Ctrl-C within ~50 ms instead of after a batch that can take seconds on a busy CPU.
        self._infer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vitfeat-infer") \
            if lanes is None and self.embed else None
        # Batches being embedded on the lanes, oldest first; written in this order by this thread alone.
        inflight: deque[tuple[list[Prepared], Future[np.ndarray]]] = deque()
        try:
            self._fill(pool, window, items, window_size)
            while window:
                future = window[0]
                result = self._wait(future)
                window.popleft()
                self._fill(pool, window, items, window_size)
                done += 1
                if result.pixels is not None:
                    pixels.append(result.pixels)
                    waiting.append(result)
                    if len(pixels) >= self._batch_size:
                        if lanes is None:
                            self._write_embedded(waiting, pixels)
                        else:
                            self._submit(lanes, inflight, waiting, pixels)
                        pixels, waiting = [], []
                else:
                    plain.append(result)
                    if len(plain) >= WRITE_GROUP or time.monotonic() - last_plain > WRITE_AGE_S:
                        self._write_plain(plain)
                        plain, last_plain = [], time.monotonic()
                reporter.update(done, os.path.basename(result.work.entry.path))
                self._maybe_save()
            if waiting:
                if lanes is None:
                    self._write_embedded(waiting, pixels)
                else:
                    self._submit(lanes, inflight, waiting, pixels)
            while inflight:
                self._write_oldest(inflight)
            if plain:
                self._write_plain(plain)
        except BaseException:
            # Keep what is finished: results already decoded but not embedded are simply dropped (they are not
            # in the catalogue, so the next scan redoes them).
            self._stop.set()
            with contextlib.suppress(Exception):
                if plain:
                    self._write_plain(plain)
            raise
        finally:
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            if self._infer is not None:
                self._infer.shutdown(wait=False, cancel_futures=True)
            if lanes is not None:
                # A batch still running finishes on its own (ONNX Runtime cannot be interrupted); its result is
                # dropped and the next scan redoes those files.
                lanes.shutdown(wait=False, cancel_futures=True)

    def _submit(self, lanes: ThreadPoolExecutor, inflight: deque[tuple[list[Prepared], Future[np.ndarray]]],
                results: list[Prepared], pixels: list[np.ndarray]) -> None:
        """Start embedding a batch on a free lane; first write the oldest batches while all lanes are busy."""
        while len(inflight) >= self._lanes:
            self._write_oldest(inflight)
        check_cancel(self.cancel)
        batch = np.stack(pixels)
        inflight.append((results, lanes.submit(self._model.embed, batch)))

    def _write_oldest(self, inflight: deque[tuple[list[Prepared], Future[np.ndarray]]]) -> None:
        results, future = inflight[0]
        vectors = self._wait(future)
        inflight.popleft()
        self._store_embedded(results, normalize_rows(vectors))

    def _fill(self, pool: ThreadPoolExecutor, window: deque[Future[Prepared]], items: Iterator[Work],
              size: int) -> None:
        while len(window) < size:
            work = next(items, None)
            if work is None:
                return
            window.append(pool.submit(self._prepare, work))

    def _wait(self, future: Future[_T]) -> _T:
        """The result of ``future`` (the oldest decode or batch), checking ``cancel`` every 50 ms meanwhile."""
        while True:
            check_cancel(self.cancel)
            try:
                return future.result(timeout=0.05)
            except FutureTimeout:
                continue

    def _prepare(self, work: Work) -> Prepared:
        """Runs on a decode thread: hash, then (unless the content is known) one reduced decode."""
        entry = work.entry
        key = entry.key
        while not self._gate.wait(0.05):
            if self._stop.is_set():
                raise Cancelled()
        if self._stop.is_set():
            raise Cancelled()
        try:
            chash = work.known_hash or content_hash(entry.path)
        except OSError as exc:
            return Prepared(work, FileUpdate(key, entry.size, entry.mtime_ns, STATUS_ERROR, error=failure_reason(exc)))
        if self.embed and chash in self._known:
            meta = self._store.catalog.metadata_for_hash(chash)
            if meta is not None:
                return Prepared(work, _with_stat(meta, key, entry), reuse=True)
        try:
            image, info = open_image_with_info(entry.path, min_side=self._min_side)
            hashes = image_hashes(image)
            pixels = None
            pre = self._pre
            if pre is not None and chash not in self._known:  # a full scan, and this content is new
                pixels = pre.normalize_uint8(pre.to_uint8_chw(image))
            del image
        except ImageReadError as exc:
            return Prepared(work, FileUpdate(key, entry.size, entry.mtime_ns, STATUS_ERROR, content_hash=chash,
                                             error=exc.reason))
        except MemoryError:
            return Prepared(work, FileUpdate(key, entry.size, entry.mtime_ns, STATUS_ERROR, content_hash=chash,
                                             error="not enough memory to decode this image"))
        except Exception as exc:  # a decoder bug must not stop the library: list the file and go on
            return Prepared(work, FileUpdate(key, entry.size, entry.mtime_ns, STATUS_ERROR, content_hash=chash,
                                             error=failure_reason(exc)))
        update = FileUpdate(
            key, entry.size, entry.mtime_ns, STATUS_OK, content_hash=chash,
            width=info.get("width"), height=info.get("height"), format=info.get("format"),
            capture_date=info.get("capture_date"), camera=info.get("camera"), orientation=info.get("orientation"),
            phash=to_signed64(hashes.phash), hashes=hashes.to_bytes(),
        )
        return Prepared(work, update, pixels=pixels, reuse=pixels is None and self.embed)

    # -- the one writer ---------------------------------------------------------------------------------------
    def _write_embedded(self, results: list[Prepared], pixels: list[np.ndarray]) -> None:
        check_cancel(self.cancel)
        batch = np.stack(pixels)
        self._store_embedded(results, normalize_rows(self._embed(batch)))

    def _store_embedded(self, results: list[Prepared], vectors: np.ndarray) -> None:
        new_vectors: dict[str, np.ndarray] = {}
        for result, vector in zip(results, vectors, strict=True):
            chash = result.update.content_hash
            assert chash is not None
            if not np.all(np.isfinite(vector)):  # never stored: it would be a score of "nan" in every answer
                result.update = _with_error(result.update, "the model gave an invalid vector (NaN or infinite) "
                                            "for this image; its weights may be damaged")
                continue
            new_vectors[chash] = vector
        self._commit(results, new_vectors)
        self.report.indexed += sum(1 for r in results if r.update.status == STATUS_OK)

    def _embed(self, batch: np.ndarray) -> np.ndarray:
        if not self._exclusive:
            return self._run_batch(batch)
        self._gate.clear()
        try:
            return self._run_batch(batch)
        finally:
            self._gate.set()

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        if self._infer is None:
            return self._model.embed(batch)
        future = self._infer.submit(self._model.embed, batch)
        while True:  # a cancel waits for the batch (its work is then kept); Ctrl-C interrupts this wait at once
            try:
                return future.result(timeout=0.05)
            except FutureTimeout:
                continue

    def _write_plain(self, results: list[Prepared]) -> None:
        self._commit(results, {})
        for r in results:
            if r.update.status != STATUS_OK:
                continue
            if r.reuse:
                self.report.reused += 1
            else:
                self.report.indexed += 1

    def _commit(self, results: list[Prepared], new_vectors: dict[str, np.ndarray]) -> None:
        """Write a batch through the store (catalogue, then index, under its lock)."""
        self._store.write([r.update for r in results], new_vectors, index=self.embed)
        self._known.update(new_vectors)

    def _maybe_save(self) -> None:
        if self.embed and time.monotonic() - self._last_save > SAVE_INTERVAL_S:
            self._store.save()
            self._last_save = time.monotonic()


def _transient(reason: str | None) -> bool:
    """Errors worth retrying on every scan although the file did not change: fixing permissions or
    reconnecting a share changes neither size nor mtime."""
    low = (reason or "").lower()
    return any(word in low for word in ("permission", "not found", "input/output", "timed out", "memory"))


def inference_lanes(extractor: FeatureExtractor) -> int:
    """How many batches to embed at once on the CPU: 1 unless ``VITFEAT_INFER_LANES`` asks for more.

    Several lanes (batches run side by side, each on its own thread, best with 1-thread extractors) were
    measured against one batch at a time on 2 cores (``bench_index.py --part schedule``): DINOv2-S int8 ran
    ~10% more images/s as inference alone with two 1-thread lanes, but end to end on camera JPEGs they were no
    better than turn-taking, and ViT-B int8 was ~25% slower on 1-thread lanes. A user who lowered the model's
    threads wants cores left free, so lanes never turn on by themselves; the variable is for benchmarks and
    machines where they measure better.
    """
    forced = os.environ.get("VITFEAT_INFER_LANES", "")
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    return 1


def _gate_wanted() -> bool:
    return os.environ.get("VITFEAT_OVERLAP_DECODE", "") in ("", "0")


def _runs_on_cpu(extractor: FeatureExtractor) -> bool:
    """Whether inference competes with decoding for the CPU (no GPU/NPU provider in front)."""
    try:
        providers = list(extractor.providers)
    except Exception:
        return True
    return not providers or providers[0] == "CPUExecutionProvider"


def _with_error(update: FileUpdate, reason: str) -> FileUpdate:
    from dataclasses import replace

    return replace(update, status=STATUS_ERROR, error=reason)


def _with_stat(meta: FileUpdate, key: bytes, entry: Entry) -> FileUpdate:
    from dataclasses import replace

    return replace(meta, path=key, size=entry.size, mtime_ns=entry.mtime_ns)
