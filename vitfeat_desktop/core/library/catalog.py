"""The library's catalogue: one SQLite file (WAL) that is the source of truth for a library.

It holds, per file, what a re-scan needs to skip it without opening it (size, mtime), what the duplicates engine
needs before any model runs (content hash, pixel size, perceptual hashes, EXIF date and camera), and why a file
was skipped; per (content hash, model key) the L2-normalised pooled vector. The hnswlib index is only a fast,
rebuildable view of these vectors: after a crash it is brought back in line with the catalogue using the
``seq`` counter (every row change that affects the index bumps ``files.seq``; the saved index records the ``seq``
it reflects, so only newer rows need replaying).

Paths are stored as bytes (``os.fsencode``) because a file name need not be valid UTF-8 and SQLite text must be.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from vitfeat_desktop.core.errors import VitfeatError
from vitfeat_desktop.core.phash import ImageHashes, from_signed64

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

STATUS_OK = "ok"  # decoded; has metadata (and a vector for every model that embedded it)
STATUS_ERROR = "error"  # could not be read; ``error`` says why
STATUS_DELETED = "deleted"  # vanished; kept as a tombstone until every loaded index has forgotten it

# Ordered migrations: MIGRATIONS[i] brings a catalogue from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        width INTEGER,
        height INTEGER,
        format TEXT,
        capture_date TEXT,
        camera TEXT,
        orientation INTEGER,
        phash INTEGER,
        hashes BLOB,
        status TEXT NOT NULL,
        error TEXT,
        seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX files_hash ON files(content_hash);
    CREATE INDEX files_seq ON files(seq);
    CREATE TABLE vectors (
        content_hash TEXT NOT NULL,
        model_key TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (content_hash, model_key)
    ) WITHOUT ROWID;
    """,
    # 1 -> 2: record which models embedded what, so a library can list its indexes without loading them.
    """
    CREATE TABLE models (
        model_key TEXT PRIMARY KEY,
        model_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        pooling TEXT NOT NULL,
        dim INTEGER NOT NULL
    );
    CREATE INDEX files_status ON files(status);
    """,
)
assert len(MIGRATIONS) == SCHEMA_VERSION

_FILE_COLUMNS = (
    "id, path, size, mtime_ns, content_hash, width, height, format, capture_date, camera, orientation, "
    "phash, hashes, status, error"
)


class ModelInfo(TypedDict):
    """A model that embedded files of this catalogue (one row of ``models``)."""

    model_key: str
    model_id: str
    variant: str
    pooling: str
    dim: int


class CatalogError(VitfeatError):
    """The catalogue file is unreadable or newer than this version of the app."""


class CatalogDamaged(CatalogError):
    """The catalogue file is not a readable SQLite database (truncated, overwritten): see ``vitfeat index
    --repair``."""


class CatalogWriteError(CatalogError):
    """A change could not be written (a full disk, a read-only or vanished volume); nothing of it was kept, and
    everything committed before is intact (SQLite rolls the transaction back)."""


@dataclass(frozen=True)
class FileRecord:
    """One catalogued file. ``phash`` is unsigned; ``hashes`` holds all perceptual hashes when decoded."""

    id: int
    path: str
    size: int
    mtime: float
    content_hash: str | None
    width: int | None
    height: int | None
    format: str | None
    capture_date: str | None
    camera: str | None
    orientation: int | None
    phash: int | None
    hashes: ImageHashes | None
    status: str
    error: str | None
    mtime_ns: int = 0  # exact, for comparisons (``mtime`` is a float and loses the last digits)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> FileRecord:
        hashes = ImageHashes.from_bytes(row[12]) if row[12] else None
        return cls(
            id=int(row[0]),
            path=os.fsdecode(bytes(row[1])),
            size=int(row[2]),
            mtime=int(row[3]) / 1e9,
            content_hash=row[4],
            width=row[5],
            height=row[6],
            format=row[7],
            capture_date=row[8],
            camera=row[9],
            orientation=row[10],
            phash=from_signed64(row[11]) if row[11] is not None else None,
            hashes=hashes,
            status=row[13],
            error=row[14],
            mtime_ns=int(row[3]),
        )


@dataclass(frozen=True)
class FileUpdate:
    """What the scanner learned about one file; written in one transaction per batch."""

    path: bytes
    size: int
    mtime_ns: int
    status: str
    content_hash: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    capture_date: str | None = None
    camera: str | None = None
    orientation: int | None = None
    phash: int | None = None  # signed 64-bit
    hashes: bytes | None = None
    error: str | None = None


def encode_path(path: str | os.PathLike[str] | bytes) -> bytes:
    return path if isinstance(path, bytes) else os.fsencode(os.fspath(path))


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


class Catalog:
    """A thread-safe handle on one catalogue file (one connection, serialised by a lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None,
                                         timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file; a process
            # kill loses nothing committed.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.OperationalError as exc:
            raise CatalogError(f"cannot open the library catalogue {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise CatalogDamaged(f"cannot open the library catalogue {self.path}: it is damaged ({exc})") from exc

    # -- schema ---------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"the library catalogue {self.path} was written by a newer vitfeat (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}); update vitfeat"
                )
            for target in range(version, SCHEMA_VERSION):
                with self.transaction() as conn:
                    for statement in _split_sql(MIGRATIONS[target]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={target + 1}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or rollback on error) while holding the lock."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                raise self._write_error(exc) from exc

    def _write_error(self, exc: sqlite3.Error) -> CatalogError:
        text = str(exc)
        if "full" in text.lower():
            return CatalogWriteError(f"the disk holding the library catalogue {self.path.parent} is full ({text})")
        return CatalogWriteError(f"cannot write the library catalogue {self.path} ({text})")

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()

    # -- meta -----------------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        seq = (int(row[0]) if row else 0) + 1
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq', ?)", (str(seq),))
        return seq

    @property
    def seq(self) -> int:
        return int(self.get_meta("seq", "0") or 0)

    # -- models ---------------------------------------------------------------------------------------------
    def register_model(self, model_key: str, model_id: str, variant: str, pooling: str, dim: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO models(model_key, model_id, variant, pooling, dim) VALUES (?,?,?,?,?)",
                (model_key, model_id, variant, pooling, int(dim)),
            )

    def models(self) -> list[ModelInfo]:
        with self._lock:
            rows = self._conn.execute("SELECT model_key, model_id, variant, pooling, dim FROM models").fetchall()
        return [ModelInfo(model_key=r[0], model_id=r[1], variant=r[2], pooling=r[3], dim=int(r[4])) for r in rows]

    # -- files ----------------------------------------------------------------------------------------------
    def scan_state(self) -> dict[bytes, tuple[int, int, int, str, str | None, str | None]]:
        """``path -> (id, size, mtime_ns, status, content_hash, error)`` for every live row: what a re-scan
        compares."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, id, size, mtime_ns, status, content_hash, error FROM files WHERE status != ?",
                (STATUS_DELETED,),
            ).fetchall()
        return {bytes(r[0]): (r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}

    def files(self, *, status: str | None = None) -> list[FileRecord]:
        query = f"SELECT {_FILE_COLUMNS} FROM files"
        args: tuple[Any, ...] = ()
        if status is None:
            query += " WHERE status != ?"
            args = (STATUS_DELETED,)
        else:
            query += " WHERE status = ?"
            args = (status,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        return [FileRecord.from_row(r) for r in rows]

    def get_file(self, file_id: int) -> FileRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE id=?", (int(file_id),)).fetchone()
        return FileRecord.from_row(row) if row else None

    def get_file_by_path(self, path: str | os.PathLike[str] | bytes) -> FileRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE path=? AND status != ?", (encode_path(path), STATUS_DELETED)
            ).fetchone()
        return FileRecord.from_row(row) if row else None

    def paths_for(self, file_ids: Iterable[int]) -> dict[int, str]:
        ids = [int(i) for i in file_ids]
        out: dict[int, str] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for fid, path in self._conn.execute(f"SELECT id, path FROM files WHERE id IN ({marks})", chunk):
                    out[int(fid)] = os.fsdecode(bytes(path))
        return out

    def metadata_for_hash(self, content_hash: str) -> FileUpdate | None:
        """Metadata of a live, decoded file with this content, so a copy need not be decoded again."""
        with self._lock:
            row = self._conn.execute(
                "SELECT width, height, format, capture_date, camera, orientation, phash, hashes FROM files "
                "WHERE content_hash=? AND status=? AND hashes IS NOT NULL LIMIT 1",
                (content_hash, STATUS_OK),
            ).fetchone()
        if row is None:
            return None
        return FileUpdate(path=b"", size=0, mtime_ns=0, status=STATUS_OK, content_hash=content_hash,
                          width=row[0], height=row[1], format=row[2], capture_date=row[3], camera=row[4],
                          orientation=row[5], phash=row[6], hashes=row[7])

    def write_batch(
        self,
        updates: Sequence[FileUpdate],
        vectors: dict[str, np.ndarray] | None = None,
        *,
        model_key: str | None = None,
        vanished: Sequence[bytes] = (),
    ) -> tuple[int, dict[bytes, int], list[int]]:
        """Store a batch in one transaction: file rows (insert or update by path), new vectors, tombstones.

        Returns ``(seq, {path: file_id}, vanished_ids)``. Everything in the batch gets the same new ``seq``, so
        an index saved at ``seq`` s is missing exactly the rows with ``seq > s``.
        """
        with self.transaction() as conn:
            seq = self._next_seq(conn)
            ids: dict[bytes, int] = {}
            for u in updates:
                conn.execute(
                    "INSERT INTO files(path, size, mtime_ns, content_hash, width, height, format, capture_date, "
                    "camera, orientation, phash, hashes, status, error, seq) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns, "
                    "content_hash=excluded.content_hash, width=excluded.width, height=excluded.height, "
                    "format=excluded.format, capture_date=excluded.capture_date, camera=excluded.camera, "
                    "orientation=excluded.orientation, phash=excluded.phash, hashes=excluded.hashes, "
                    "status=excluded.status, error=excluded.error, seq=excluded.seq",
                    (u.path, u.size, u.mtime_ns, u.content_hash, u.width, u.height, u.format, u.capture_date,
                     u.camera, u.orientation, u.phash, u.hashes, u.status, u.error, seq),
                )
                row = conn.execute("SELECT id FROM files WHERE path=?", (u.path,)).fetchone()
                ids[u.path] = int(row[0])
            if vectors and model_key:
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors(content_hash, model_key, dim, vector) VALUES (?,?,?,?)",
                    [(h, model_key, int(v.shape[-1]), vector_to_blob(v)) for h, v in vectors.items()],
                )
            gone: list[int] = []
            for path in vanished:
                row = conn.execute("SELECT id FROM files WHERE path=? AND status != ?",
                                   (path, STATUS_DELETED)).fetchone()
                if row is None:
                    continue
                gone.append(int(row[0]))
                conn.execute("UPDATE files SET status=?, seq=? WHERE id=?", (STATUS_DELETED, seq, row[0]))
        return seq, ids, gone

    def purge_deleted(self, up_to_seq: int) -> int:
        """Drop tombstones every index has seen, and vectors no live file uses any more."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM files WHERE status=? AND seq<=?", (STATUS_DELETED, int(up_to_seq)))
            removed = cur.rowcount
            if removed:
                purged = int(self.get_meta("purged_seq", "0") or 0)
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('purged_seq', ?)",
                             (str(max(purged, int(up_to_seq))),))
                conn.execute("DELETE FROM vectors WHERE content_hash NOT IN "
                             "(SELECT content_hash FROM files WHERE content_hash IS NOT NULL)")
        return removed

    @property
    def purged_seq(self) -> int:
        return int(self.get_meta("purged_seq", "0") or 0)

    # -- vectors --------------------------------------------------------------------------------------------
    def known_vectors(self, content_hashes: Iterable[str], model_key: str) -> dict[str, np.ndarray]:
        hashes = list(dict.fromkeys(content_hashes))
        out: dict[str, np.ndarray] = {}
        damaged: list[str] = []
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for h, blob in self._conn.execute(
                    f"SELECT content_hash, vector FROM vectors WHERE model_key=? AND content_hash IN ({marks})",
                    (model_key, *chunk),
                ):
                    vector = blob_to_vector(blob)
                    if np.all(np.isfinite(vector)):
                        out[h] = vector
                    else:
                        damaged.append(h)
            if damaged:
                self.forget_vectors(damaged, model_key)
        return out

    def forget_vectors(self, content_hashes: Sequence[str], model_key: str) -> None:
        """Drop damaged vectors (NaN/inf, never a model's real output) so the next scan embeds those files
        again; their files get a new ``seq`` so every loaded index drops them too."""
        hashes = list(dict.fromkeys(content_hashes))
        if not hashes:
            return
        with self._lock:
            outer = self._conn.in_transaction
            if not outer:
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                seq = self._next_seq(self._conn)
                for start in range(0, len(hashes), 500):
                    chunk = hashes[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    self._conn.execute(f"DELETE FROM vectors WHERE model_key=? AND content_hash IN ({marks})",
                                       (model_key, *chunk))
                    self._conn.execute(f"UPDATE files SET seq=? WHERE content_hash IN ({marks})", (seq, *chunk))
            except BaseException:
                if not outer:
                    self._conn.execute("ROLLBACK")
                raise
            if not outer:
                self._conn.execute("COMMIT")
        log.warning("%d damaged vectors (NaN or infinite) in %s were dropped; the next scan embeds those files "
                    "again", len(hashes), self.path)

    def has_vector_hashes(self, model_key: str) -> set[str]:
        with self._lock:
            rows = self._conn.execute("SELECT content_hash FROM vectors WHERE model_key=?", (model_key,)).fetchall()
        return {r[0] for r in rows}

    def live_vectors(self, model_key: str, *, min_seq: int | None = None,
                     limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(file_ids, vectors)`` of live files that have a vector for ``model_key`` (optionally newer rows)."""
        query = (
            "SELECT f.id, v.vector, f.content_hash FROM files f JOIN vectors v ON v.content_hash = f.content_hash "
            "AND v.model_key = ? WHERE f.status = ?"
        )
        args: list[Any] = [model_key, STATUS_OK]
        if min_seq is not None:
            query += " AND f.seq > ?"
            args.append(int(min_seq))
        query += " ORDER BY f.id"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._conn.execute(query, args).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():  # damage, never a score of "nan": forget them and answer with the rest
            self.forget_vectors([rows[i][2] for i in np.flatnonzero(~finite).tolist()], model_key)
            ids, vectors = ids[finite], vectors[finite]
        return ids, vectors

    def live_vector_ids(self, model_key: str) -> np.ndarray:
        """File ids of live files with a vector for ``model_key``, ascending (no vector is read)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT f.id FROM files f JOIN vectors v ON v.content_hash = f.content_hash AND v.model_key = ? "
                "WHERE f.status = ? ORDER BY f.id", (model_key, STATUS_OK)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors_of(self, model_key: str, file_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """``file_id -> vector`` for the given live files that have one for ``model_key``."""
        ids = [int(i) for i in file_ids]
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for fid, blob in self._conn.execute(
                    "SELECT f.id, v.vector FROM files f JOIN vectors v ON v.content_hash = f.content_hash "
                    f"AND v.model_key = ? WHERE f.status = ? AND f.id IN ({marks})", (model_key, STATUS_OK, *chunk)):
                    out[int(fid)] = blob_to_vector(blob)  # NaN kept: the caller is checking for damage
        return out

    def rows_since(self, seq: int) -> list[tuple[int, str, str | None]]:
        """``(file_id, status, content_hash)`` of rows changed after ``seq``: what an index must replay."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, status, content_hash FROM files WHERE seq > ?", (int(seq),)
            ).fetchall()
        return [(int(r[0]), r[1], r[2]) for r in rows]

    def skipped(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, error FROM files WHERE status=? ORDER BY path", (STATUS_ERROR,)
            ).fetchall()
        return [(os.fsdecode(bytes(p)), e or "unknown error") for p, e in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall()
        return {status: int(n) for status, n in rows}


def salvage_vectors(damaged: Path, into: Catalog) -> int:
    """Copy the stored vectors (and model records) still readable in a damaged catalogue into a new one, so a
    repair re-embeds only what was lost: a scan reuses a vector for any file with the same content hash.
    Best effort, row by row until the damage; returns how many vectors were kept."""
    rows: list[tuple[Any, ...]] = []
    models: list[tuple[Any, ...]] = []
    try:
        conn = sqlite3.connect(f"{Path(damaged).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        for table, sink, query in (
            ("models", models, "SELECT model_key, model_id, variant, pooling, dim FROM models"),
            ("vectors", rows, "SELECT content_hash, model_key, dim, vector FROM vectors"),
        ):
            try:
                for row in conn.execute(query):
                    sink.append(tuple(row))
            except sqlite3.Error as exc:
                log.info("salvage of %s stopped at the damage in %s: %s", table, damaged, exc)
    finally:
        conn.close()
    kept = [(h, k, int(d), bytes(v)) for h, k, d, v in rows
            if isinstance(h, str) and isinstance(k, str) and isinstance(v, bytes | memoryview) and len(v) == 4 * int(d)
            and np.all(np.isfinite(np.frombuffer(bytes(v), dtype="<f4")))]
    with into.transaction() as out:
        out.executemany("INSERT OR REPLACE INTO models(model_key, model_id, variant, pooling, dim) VALUES (?,?,?,?,?)",
                        [m for m in models if len(m) == 5])
        out.executemany("INSERT OR REPLACE INTO vectors(content_hash, model_key, dim, vector) VALUES (?,?,?,?)", kept)
    return len(kept)


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script (ours contain no semicolons inside strings)."""
    return [s.strip() for s in script.split(";") if s.strip()]
