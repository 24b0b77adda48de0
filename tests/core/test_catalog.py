"""The catalogue: schema versions and migrations, WAL, batches, tombstones and non-UTF-8 paths."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop.core.library.catalog import (
    MIGRATIONS,
    SCHEMA_VERSION,
    STATUS_DELETED,
    STATUS_ERROR,
    STATUS_OK,
    Catalog,
    CatalogError,
    FileUpdate,
)
from vitfeat_desktop.core.phash import ImageHashes, to_signed64


def _update(path: bytes, chash: str, **kw: object) -> FileUpdate:
    hashes = ImageHashes(phashes=tuple(range(2**63, 2**63 + 8)), dhash=2**64 - 1)
    base = dict(path=path, size=10, mtime_ns=123, status=STATUS_OK, content_hash=chash, width=4, height=3,
                format="JPEG", phash=to_signed64(hashes.phash), hashes=hashes.to_bytes())
    base.update(kw)
    return FileUpdate(**base)  # type: ignore[arg-type]


def test_new_catalogue_is_current_and_wal(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    assert cat.schema_version == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "c.sqlite") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cat.close()


def test_old_catalogue_is_migrated_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    raw = sqlite3.connect(path)
    raw.executescript(MIGRATIONS[0])
    raw.execute("PRAGMA user_version=1")
    raw.execute("INSERT INTO files(path, size, mtime_ns, status) VALUES (?, 1, 2, 'ok')", (b"/x/a.jpg",))
    raw.commit()
    raw.close()
    cat = Catalog(path)
    assert cat.schema_version == SCHEMA_VERSION
    assert [r.path for r in cat.files()] == ["/x/a.jpg"]
    cat.register_model("k", "m", "int8", "pooler_output", 8)
    assert cat.models()[0]["dim"] == 8
    cat.close()


def test_newer_catalogue_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    raw.close()
    with pytest.raises(CatalogError, match="newer vitfeat"):
        Catalog(path)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="cannot open the library catalogue"):
        Catalog(path)


def test_batches_vectors_tombstones_and_seq(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    weird = os.fsencode("/photos/") + b"caf\xe9.jpg"
    vec = np.arange(4, dtype=np.float32)
    seq1, ids, _ = cat.write_batch([_update(b"/photos/a.jpg", "h1"), _update(weird, "h2")],
                                   {"h1": vec, "h2": vec * 2}, model_key="m")
    assert set(ids) == {b"/photos/a.jpg", weird}
    rec = cat.get_file(ids[weird])
    assert rec is not None and os.fsencode(rec.path) == weird
    assert rec.hashes is not None and rec.phash == rec.hashes.phash == 2**63  # unsigned again
    got = cat.known_vectors(["h1", "h2", "nope"], "m")
    assert set(got) == {"h1", "h2"} and np.array_equal(got["h2"], vec * 2)
    assert cat.known_vectors(["h1"], "other") == {}

    seq2, ids2, _ = cat.write_batch([_update(b"/photos/a.jpg", "h1", size=11)])
    assert seq2 == seq1 + 1 and ids2[b"/photos/a.jpg"] == ids[b"/photos/a.jpg"]  # same row updated
    assert [r[0] for r in cat.rows_since(seq1)] == [ids[b"/photos/a.jpg"]]

    seq3, _, gone = cat.write_batch([_update(b"/photos/bad.jpg", None, status=STATUS_ERROR, error="broken")],
                                    vanished=[weird, b"/never/seen.jpg"])
    assert gone == [ids[weird]]
    assert cat.skipped() == [("/photos/bad.jpg", "broken")]
    assert len(cat.files()) == 2 and len(cat.files(status=STATUS_DELETED)) == 1
    live_ids, live_vecs = cat.live_vectors("m")
    assert live_ids.tolist() == [ids[b"/photos/a.jpg"]] and live_vecs.shape == (1, 4)

    assert cat.purge_deleted(seq3) == 1
    assert cat.purged_seq == seq3
    assert cat.files(status=STATUS_DELETED) == []
    assert cat.known_vectors(["h2"], "m") == {}  # no live file uses it any more
    # A path seen again after deletion gets a new id: labels in an index are never reused.
    _, ids4, _ = cat.write_batch([_update(weird, "h2")])
    assert ids4[weird] > max(ids.values())
    cat.close()


def test_reads_from_other_threads_while_writing(tmp_path: Path) -> None:
    import threading

    cat = Catalog(tmp_path / "c.sqlite")
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                cat.files()
                cat.scan_state()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(200):
        cat.write_batch([_update(f"/p/{i}.jpg".encode(), f"h{i}")], {f"h{i}": np.ones(4, np.float32)},
                        model_key="m")
    stop.set()
    t.join()
    assert not errors
    assert len(cat.files()) == 200
    cat.close()
