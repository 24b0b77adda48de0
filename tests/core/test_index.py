"""The hnswlib wrapper: upsert, delete, search against exact, atomic save/load, compaction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop.core.library.ann import VectorIndex, normalize_rows
from vitfeat_desktop.core.library.paths import INDEX_RECORD


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 20), dim))
    return normalize_rows(centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, dim)))


def _exact(base: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = normalize_rows(queries) @ base.T
    return ids[np.argsort(-sims, axis=1)[:, :k]]


def test_search_matches_exact_and_reports_cosine(tmp_path: Path) -> None:
    vecs = _clustered(2000)
    ids = np.arange(10, 2010, dtype=np.int64)
    index = VectorIndex.create(tmp_path / "ix", 32, capacity=100)  # grows as needed
    for start in range(0, 2000, 300):
        index.add(ids[start : start + 300].tolist(), vecs[start : start + 300] * 3.0)  # normalised inside
    assert len(index) == 2000
    labels, sims = index.query(vecs[:200], 10)
    truth = _exact(vecs, ids, vecs[:200], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, truth, strict=True)])
    assert recall >= 0.99
    assert labels[:, 0].tolist() == ids[:200].tolist()
    assert np.allclose(sims[:, 0], 1.0, atol=1e-4)
    expected = np.sum(vecs[:200] * vecs[labels[:, 1] - 10], axis=1)
    assert np.allclose(sims[:, 1], expected, atol=1e-4)


def test_remove_update_and_padding(tmp_path: Path) -> None:
    vecs = _clustered(5)
    index = VectorIndex.create(tmp_path / "ix", 32)
    index.add([1, 2, 3, 4, 5], vecs)
    assert index.remove([2, 99]) == 1
    assert index.remove([2]) == 0
    labels, sims = index.query(vecs[1:2], 10)
    assert 2 not in labels[0].tolist()
    assert labels[0, 4:].tolist() == [-1] * 6 and np.all(sims[0, 4:] == -1.0)
    index.add([3], vecs[1:2])  # replace label 3's vector
    labels, _ = index.query(vecs[1:2], 1)
    assert labels[0, 0] == 3
    index.add([2], vecs[1:2])  # a deleted label can come back
    assert 2 in index and index.deleted_count == 0


def test_save_load_roundtrip_with_record(tmp_path: Path) -> None:
    vecs = _clustered(300)
    folder = tmp_path / "ix"
    index = VectorIndex.create(folder, 32, {"model_key": "m-int8", "pooling": "pooler_output"})
    index.add(range(300), vecs)
    index.remove(range(0, 300, 3))
    index.save(seq=7)
    record = json.loads((folder / INDEX_RECORD).read_text())
    assert record["dim"] == 32 and record["space"] == "cosine" and record["seq"] == 7
    assert record["pooling"] == "pooler_output" and record["count"] == 200
    loaded = VectorIndex.load(folder, {"model_key": "m-int8"})
    assert loaded is not None and loaded.seq == 7
    assert loaded.labels() == index.labels()
    assert loaded.deleted_count == 100
    assert VectorIndex.load(folder, {"model_key": "other"}) is None
    a, _ = index.query(vecs[:20], 5)
    b, _ = loaded.query(vecs[:20], 5)
    assert np.array_equal(a, b)
    # Saving again replaces the graph file; only one is kept.
    loaded.add([1000], vecs[:1])
    loaded.save(seq=8)
    assert len(list(folder.glob("index-*.bin"))) == 1


def test_damaged_files_load_as_none(tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    index = VectorIndex.create(folder, 8)
    index.add([1], np.ones((1, 8), np.float32))
    index.save(seq=1)
    (folder / INDEX_RECORD).write_text("{not json")
    assert VectorIndex.load(folder) is None
    index.save(seq=2)
    for f in folder.glob("index-*.bin"):
        f.write_bytes(b"garbage")
    assert VectorIndex.load(folder) is None


def test_crash_during_save_keeps_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ix"
    index = VectorIndex.create(folder, 8)
    index.add([1, 2], np.eye(2, 8, dtype=np.float32))
    index.save(seq=1)
    index.add([3], np.eye(1, 8, k=3, dtype=np.float32))

    from vitfeat_desktop.core.library import ann

    def boom(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ann, "write_json_atomic", boom)
    with pytest.raises(OSError):
        index.save(seq=2)
    monkeypatch.undo()
    loaded = VectorIndex.load(folder)
    assert loaded is not None and loaded.seq == 1 and loaded.labels() == {1, 2}


def test_compaction_threshold_and_rebuild(tmp_path: Path) -> None:
    vecs = _clustered(400)
    index = VectorIndex.create(tmp_path / "ix", 32)
    index.add(range(400), vecs)
    index.remove(range(50))
    assert not index.needs_compaction()
    index.remove(range(50, 150))
    assert index.needs_compaction()
    keep = np.arange(150, 400)
    index.rebuild(keep, vecs[150:])
    assert index.deleted_count == 0 and len(index) == 250 and not index.needs_compaction()
    labels, _ = index.query(vecs[150:160], 1)
    assert labels[:, 0].tolist() == list(range(150, 160))
