"""Scan a folder incrementally: walk -> decode on a thread pool -> bounded window -> batched inference -> one writer.

Why this shape: on camera JPEGs the decoder, not the model, is the expensive part unless it is (a) asked for a
reduced image (JPEG ``draft``, never below what the preprocessor needs) and (b) run on other threads while ONNX
Runtime works on the previous batch. The window of decodes in flight is bounded, so memory does not grow with the
library, and the calling thread is the only one that writes (catalogue first, then the index), so a crash loses
at most the batch in flight: everything committed to the catalogue is replayed into the index on the next open.

A re-scan never opens a file whose size and mtime are unchanged; a new or changed file whose content hash already
has a vector for this model (a move, rename or copy) reuses it without decoding; files that vanished become
tombstones in the catalogue and are marked deleted in the index.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import Cancelled, ImageReadError, VitfeatError
from vitfeat_desktop.core.fileio import kind_of
from vitfeat_desktop.core.images import is_image_path, open_image_with_info
from vitfeat_desktop.core.library.ann import normalize_rows
from vitfeat_desktop.core.library.catalog import (
    STATUS_ERROR,
    STATUS_OK,
    CatalogWriteError,
    FileUpdate,
    encode_path,
)
from vitfeat_desktop.core.phash import image_hashes, to_signed64
from vitfeat_desktop.core.pixels import failure_reason
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

if TYPE_CHECKING:
    from vitfeat_desktop.core.library.facade import Library

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
    from vitfeat_desktop.core.fileio import open_regular

    digest = hashlib.sha256()
    with open_regular(path) as fh:
        while True:
            chunk = fh.read(HASH_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()[:32]


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


@dataclass(frozen=True)
class Entry:
    """A walked file: its stat, or why it could not be stat'ed."""

    path: str
    size: int
    mtime_ns: int
    error: str | None = None
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file itself, links followed
    symlink: bool = False

    @property
    def key(self) -> bytes:
        return encode_path(self.path)


# The start of the reason given to a second name of a file already listed (a symlink to it, or a hard link).
SAME_FILE_REASON = "the same file as "


def _one_name_per_file(entries: list[Entry]) -> list[Entry]:
    """Give every file one entry: a symlink and its target, or two hard links, are one file with two names.

    Indexing both made them an "exact duplicate" pair: trashing the target while the link was kept left a
    dangling link, and trashing one hard link frees nothing and removes a name the user made. The name that
    stays is a real file rather than a symlink, then the first by path; the others are listed as skipped with
    the reason (they come back by themselves on the next scan if that name goes).
    """
    by_file: dict[tuple[int, int], list[int]] = {}
    for n, entry in enumerate(entries):
        # st_ino 0: a file system without inode numbers (some FAT/network mounts); nothing to compare there.
        if entry.identity is not None and entry.identity[1] != 0 and entry.error is None:
            by_file.setdefault(entry.identity, []).append(n)
    out = list(entries)
    for positions in by_file.values():
        if len(positions) < 2:
            continue
        names = sorted(positions, key=lambda n: (entries[n].symlink, entries[n].path))
        main = entries[names[0]]
        for n in names[1:]:
            entry = entries[n]
            kind = "a symbolic link to it" if entry.symlink else "a hard link of it"
            out[n] = Entry(entry.path, -1, -1, f"{SAME_FILE_REASON}{main.path} ({kind}); listed once")
    return out


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


def walk(root: Path, *, cancel: CancelFn | None = None,
         on_entry: Callable[[int], None] | None = None) -> tuple[list[Entry], list[dict[str, str]]]:
    """Every image file below ``root`` (by extension), skipping hidden folders/files and the app's data.

    Symlinked folders are followed (people link an external drive's folder into their photos), each folder at
    most once by its device and inode, which is also what stops a link loop. Symlinked files are followed; a
    broken or looping link is returned with an error. Folders that cannot be listed are returned as skipped.
    """
    entries: list[Entry] = []
    skipped: list[dict[str, str]] = []
    try:
        data_root = config.data_dir().resolve()
    except OSError:
        data_root = None
    visited: set[tuple[int, int]] = set()
    with contextlib.suppress(OSError):
        st = os.stat(root)
        visited.add((st.st_dev, st.st_ino))
    stack = [str(root)]
    while stack:
        check_cancel(cancel)
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError as exc:
            skipped.append({"path": folder, "reason": f"folder cannot be read: {failure_reason(exc)}"})
            continue
        children.sort(key=lambda e: e.name)
        subdirs = []
        for child in children:
            name = child.name
            if name.startswith("."):
                continue
            try:
                is_dir = child.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if data_root is not None and _same_path(child.path, data_root):
                    continue
                try:
                    st = child.stat(follow_symlinks=True)
                except OSError as exc:
                    skipped.append({"path": child.path, "reason": f"folder cannot be read: {_stat_reason(child, exc)}"})
                    continue
                identity = (st.st_dev, st.st_ino)
                if identity in visited:
                    continue  # a link back up the tree, or a second way into a folder already listed
                visited.add(identity)
                subdirs.append(child.path)
                continue
            if not is_image_path(name):
                continue
            try:
                st = child.stat(follow_symlinks=True)
            except OSError as exc:
                entries.append(Entry(child.path, -1, -1, _stat_reason(child, exc)))
                continue
            kind = kind_of(st.st_mode)
            if kind is not None:  # a FIFO, a (link to a) device, a socket: listed, never opened
                entries.append(Entry(child.path, -1, -1, f"is {kind}, not a photo file"))
                continue
            try:
                symlink = child.is_symlink()
            except OSError:
                symlink = False
            entries.append(Entry(child.path, int(st.st_size), int(st.st_mtime_ns),
                                 identity=(int(st.st_dev), int(st.st_ino)), symlink=symlink))
        if on_entry is not None:
            on_entry(len(entries))
        stack.extend(reversed(subdirs))
    return _one_name_per_file(entries), skipped


def _same_path(path: str, other: Path) -> bool:
    try:
        return Path(path).resolve() == other
    except OSError:
        return False


def _stat_reason(child: os.DirEntry[str], exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENAMETOOLONG:
        return "its path is longer than the system allows; move it higher up to index it"
    if isinstance(exc, FileNotFoundError):
        try:
            if child.is_symlink():
                return "broken symbolic link (its target does not exist)"
        except OSError:
            pass
        return "file not found (deleted while scanning?)"
    return failure_reason(exc)


class Scanner:
    """One scan of one library (use :meth:`Library.scan`)."""

    def __init__(self, library: Library, *, embed: bool, threads: int | None,
                 progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        self.lib = library
        self.embed = embed
        self.threads = max(1, int(threads)) if threads else default_decode_threads()
        self.progress = progress
        self.cancel = cancel
        self.report = ScanReport(embedded=embed)
        self._known: set[str] = set()
        self._min_side = 256
        self._pre: Any = None
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

    def run(self) -> ScanReport:
        start = time.monotonic()
        lib = self.lib
        reporter = Reporter(self.progress, "walking")
        entries, folder_skips = walk(lib.folder, cancel=self.cancel,
                                     on_entry=lambda n: reporter.update(n, "listing files"))
        reporter.update(len(entries), "listing files", force=True)
        self.report.total = len(entries)
        catalog = lib.catalog
        state = catalog.scan_state()
        if self.embed:
            extractor = lib.extractor  # first: loading it may download the model and so settle the model key
            self._pre = extractor.preprocessor
            self._min_side = self._pre.min_decode_side()
            self._batch_size = max(1, int(getattr(extractor, "batch_size", 8)))
            on_cpu = _runs_on_cpu(extractor)
            self._lanes = inference_lanes(extractor) if on_cpu else 1
            # Turn-taking only pays with one lane whose intra-op threads fill the cores; with several 1-thread
            # lanes a decoder taking a core delays one lane, not a whole barrier-synchronised batch.
            self._exclusive = on_cpu and self._lanes == 1 and _gate_wanted()
            lib.ensure_index_loaded()
            self._known = catalog.has_vector_hashes(lib.model_key)
        else:
            with contextlib.suppress(VitfeatError, OSError):
                self._min_side = lib.preprocessor().min_decode_side()
        model_key = lib.model_key if self.embed else None
        self.report.model_key = model_key

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
            with lib.writer_lock:
                seq, now_errors, gone = catalog.write_batch(error_rows, vanished=vanished)
                self.report.removed = len(gone)
                if self.embed:  # a file that became unreadable (or a second name of another) leaves the index
                    lib.index_apply(seq, [], None, gone + list(now_errors.values()))
        check_cancel(self.cancel)

        reporter.restart("indexing" if self.embed else "hashing", total=len(todo))
        failed = False
        try:
            self._process(todo, reporter, model_key)
        except CatalogWriteError as exc:
            failed = True
            done = self.report.indexed + self.report.reused
            raise CatalogWriteError(f"{exc}: stopped after {done} new files, which are kept; free some space and "
                                    f"run the scan again to go on (vitfeat index {lib.folder})") from exc
        except BaseException:
            failed = True
            raise
        finally:
            if self.embed:
                try:
                    lib.finish_scan(compact=not failed)
                except (OSError, VitfeatError) as exc:
                    if not failed:
                        raise
                    # Not the first problem; the index catches up from the catalogue on the next open.
                    log.warning("the similarity index was not saved (%s)", exc)
        reporter.update(len(todo), "done", force=True)
        skipped = [{"path": p, "reason": r} for p, r in catalog.skipped()] + folder_skips
        self.report.skipped = skipped
        self.report.seconds = time.monotonic() - start
        return self.report

    # -- the pipeline -------------------------------------------------------------------------------------------
    def _process(self, todo: list[Work], reporter: Reporter, model_key: str | None) -> None:
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
                            self._write_embedded(waiting, pixels, model_key)
                        else:
                            self._submit(lanes, inflight, waiting, pixels, model_key)
                        pixels, waiting = [], []
                else:
                    plain.append(result)
                    if len(plain) >= WRITE_GROUP or time.monotonic() - last_plain > WRITE_AGE_S:
                        self._write_plain(plain, model_key)
                        plain, last_plain = [], time.monotonic()
                reporter.update(done, os.path.basename(result.work.entry.path))
                self._maybe_save()
            if waiting:
                if lanes is None:
                    self._write_embedded(waiting, pixels, model_key)
                else:
                    self._submit(lanes, inflight, waiting, pixels, model_key)
            while inflight:
                self._write_oldest(inflight, model_key)
            if plain:
                self._write_plain(plain, model_key)
        except BaseException:
            # Keep what is finished: results already decoded but not embedded are simply dropped (they are not
            # in the catalogue, so the next scan redoes them).
            self._stop.set()
            with contextlib.suppress(Exception):
                if plain:
                    self._write_plain(plain, model_key)
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
                results: list[Prepared], pixels: list[np.ndarray], model_key: str | None) -> None:
        """Start embedding a batch on a free lane; first write the oldest batches while all lanes are busy."""
        while len(inflight) >= self._lanes:
            self._write_oldest(inflight, model_key)
        check_cancel(self.cancel)
        batch = np.stack(pixels)
        inflight.append((results, lanes.submit(self.lib.extractor.embed, batch)))

    def _write_oldest(self, inflight: deque[tuple[list[Prepared], Future[np.ndarray]]],
                      model_key: str | None) -> None:
        results, future = inflight[0]
        vectors = self._wait(future)
        inflight.popleft()
        self._store_embedded(results, normalize_rows(vectors), model_key)

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
            meta = self.lib.catalog.metadata_for_hash(chash)
            if meta is not None:
                return Prepared(work, _with_stat(meta, key, entry), reuse=True)
        try:
            image, info = open_image_with_info(entry.path, min_side=self._min_side)
            hashes = image_hashes(image)
            pixels = None
            if self.embed and chash not in self._known:
                pixels = self._pre.normalize_uint8(self._pre.to_uint8_chw(image))
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
    def _write_embedded(self, results: list[Prepared], pixels: list[np.ndarray], model_key: str | None) -> None:
        check_cancel(self.cancel)
        batch = np.stack(pixels)
        self._store_embedded(results, normalize_rows(self._embed(batch)), model_key)

    def _store_embedded(self, results: list[Prepared], vectors: np.ndarray, model_key: str | None) -> None:
        new_vectors: dict[str, np.ndarray] = {}
        for result, vector in zip(results, vectors, strict=True):
            chash = result.update.content_hash
            assert chash is not None
            if not np.all(np.isfinite(vector)):  # never stored: it would be a score of "nan" in every answer
                result.update = _with_error(result.update, "the model gave an invalid vector (NaN or infinite) "
                                            "for this image; its weights may be damaged")
                continue
            new_vectors[chash] = vector
        self._commit(results, new_vectors, model_key)
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
            return self.lib.extractor.embed(batch)
        future = self._infer.submit(self.lib.extractor.embed, batch)
        while True:  # a cancel waits for the batch (its work is then kept); Ctrl-C interrupts this wait at once
            try:
                return future.result(timeout=0.05)
            except FutureTimeout:
                continue

    def _write_plain(self, results: list[Prepared], model_key: str | None) -> None:
        self._commit(results, {}, model_key)
        for r in results:
            if r.update.status != STATUS_OK:
                continue
            if r.reuse:
                self.report.reused += 1
            else:
                self.report.indexed += 1

    def _commit(self, results: list[Prepared], new_vectors: dict[str, np.ndarray], model_key: str | None) -> None:
        # The catalogue commit and the index update happen under the library lock, so an index saved from
        # another thread (``Library.close``) never claims a catalogue ``seq`` whose rows it does not hold.
        with self.lib.writer_lock:
            self._commit_locked(results, new_vectors, model_key)

    def _commit_locked(self, results: list[Prepared], new_vectors: dict[str, np.ndarray],
                       model_key: str | None) -> None:
        updates = [r.update for r in results]
        seq, ids, _ = self.lib.catalog.write_batch(updates, new_vectors, model_key=model_key)
        self._known.update(new_vectors)
        if not self.embed or model_key is None:
            return
        ok_hashes = {u.content_hash for u in updates if u.status == STATUS_OK and u.content_hash}
        vectors = dict(new_vectors)
        missing = [h for h in ok_hashes if h not in vectors]
        if missing:
            vectors.update(self.lib.catalog.known_vectors(missing, model_key))
        labels: list[int] = []
        rows: list[np.ndarray] = []
        bad: list[int] = []
        for u in updates:
            fid = ids[u.path]
            if u.status == STATUS_OK and u.content_hash in vectors:
                labels.append(fid)
                rows.append(vectors[u.content_hash])
            else:
                bad.append(fid)
        self.lib.index_apply(seq, labels, np.stack(rows) if rows else None, bad)

    def _maybe_save(self) -> None:
        if self.embed and time.monotonic() - self._last_save > SAVE_INTERVAL_S:
            self.lib.save_index()
            self._last_save = time.monotonic()


def _transient(reason: str | None) -> bool:
    """Errors worth retrying on every scan although the file did not change: fixing permissions or
    reconnecting a share changes neither size nor mtime."""
    low = (reason or "").lower()
    return any(word in low for word in ("permission", "not found", "input/output", "timed out", "memory"))


def inference_lanes(extractor: Any) -> int:
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


def _runs_on_cpu(extractor: Any) -> bool:
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
