"""The scan pipeline: kill -9 at any moment loses at most the batch in flight; cancel stops after that batch."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop.core.errors import Cancelled
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.core.library.paths import library_dir
from vitfeat_desktop.core.library.scanner import content_hash
from vitfeat_desktop.core.library.walk import walk

CHILD = textwrap.dedent(
    """
    import sys, time
    from vitfeat_desktop.core.library import scanner
    from vitfeat_desktop.core.library.facade import Library

    scanner.SAVE_INTERVAL_S = 0.0  # save the index after every batch: kills land during saves too
    lib = Library.open(sys.argv[1], model=sys.argv[2])
    lib.extractor.batch_size = 2
    real = lib.extractor.embed

    def slow(pixels):
        time.sleep(0.15)  # leaves the parent time to kill mid-scan even on a loaded machine
        return real(pixels)

    lib.extractor.embed = slow
    lib.scan(threads=2)
    print("finished")
    """
)


@pytest.fixture()
def folder(tmp_path: Path, photos: list[Path]) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for p in photos[:24]:
        shutil.copy2(p, root / p.name)
    return root


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_after", [1, 7, 15])
def test_kill_9_mid_scan_then_resume(folder: Path, tiny_vit: Path, vitfeat_home: Path, kill_after: int) -> None:
    db = library_dir(folder) / "catalog.sqlite"
    env = dict(os.environ, VITFEAT_HOME=str(vitfeat_home))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(tiny_vit)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _stored(db) < kill_after and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    stored = _stored(db)
    assert kill_after <= stored < 24

    with Library.open(folder, model=str(tiny_vit)) as lib:
        # After the restart, the catalogue and the index agree ...
        ids, _ = lib.vectors()
        index = lib.ensure_index_loaded()
        assert index is not None and index.labels() == set(ids.tolist())
        assert len(ids) == stored
        # ... and the resumed scan embeds exactly what was not stored.
        embedded = []
        real = lib.extractor.embed

        def counting(pixels: np.ndarray) -> np.ndarray:
            embedded.append(len(pixels))
            return real(pixels)

        lib.extractor.embed = counting  # type: ignore[method-assign]
        report = lib.scan()
        assert report.unchanged == stored and report.indexed == 24 - stored
        assert sum(embedded) == 24 - stored
        ids, _ = lib.vectors()
        assert lib.ensure_index_loaded().labels() == set(ids.tolist())  # type: ignore[union-attr]
        assert len(ids) == 24



def _scan_cancelled_after_three_batches(lib: Library) -> list[bool]:
    """Scan in batches of 2 with cancel() turning true once three inference batches have started; returns, per
    inference batch, whether cancel() had already said yes when it started."""
    lib.extractor.batch_size = 2
    calls: list[bool] = []
    said_yes = False
    real = lib.extractor.embed

    def embed(pixels: np.ndarray) -> np.ndarray:
        calls.append(said_yes)
        return real(pixels)

    lib.extractor.embed = embed  # type: ignore[method-assign]

    def cancel() -> bool:
        nonlocal said_yes
        said_yes = said_yes or len(calls) >= 3
        return said_yes

    with pytest.raises(Cancelled):
        lib.scan(cancel=cancel)
    return calls

def test_cancel_stops_after_the_batch_in_flight(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        calls = _scan_cancelled_after_three_batches(lib)
        assert len(calls) == 3 and True not in calls  # no batch was started after cancel() turned true
        kept = len(lib.vectors()[0])
        assert kept == 2 * len(calls)  # every finished batch was kept


def test_walk_skips_hidden_and_data_dir_follows_linked_folders_once(tmp_path: Path, vitfeat_home: Path) -> None:
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.JPG").write_bytes(b"1")
    (root / ".cache").mkdir()
    (root / ".cache" / "y.jpg").write_bytes(b"1")
    (root / "a" / "back").symlink_to(root)  # a folder loop
    (root / "again").symlink_to(root / "a")  # a second way into a folder already listed
    external = tmp_path / "external-drive"
    external.mkdir()
    (external / "w.jpeg").write_bytes(b"1")
    (root / "linked").symlink_to(external)  # linked in from elsewhere: followed
    (root / "notes.txt").write_text("x")
    (root / "z.png").write_bytes(b"1")
    entries, skipped = walk(root)
    names = sorted(Path(e.path).name for e in entries)
    assert names == ["w.jpeg", "x.JPG", "z.png"]
    assert skipped == []
    # The app's own data dir inside the folder is never indexed.
    os.environ["VITFEAT_HOME"] = str(root / "a")
    try:
        entries, _ = walk(root)
    finally:
        os.environ["VITFEAT_HOME"] = str(vitfeat_home)
    assert sorted(Path(e.path).name for e in entries) == ["w.jpeg", "z.png"]


def test_content_hash_is_full_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    payload = os.urandom(3 * 2**20 + 5)
    a.write_bytes(payload)
    b.write_bytes(payload[:-1] + bytes([payload[-1] ^ 1]))  # differs only in the last byte
    assert content_hash(a) != content_hash(b)
    assert content_hash(a) == content_hash(a)


def test_two_inference_lanes_store_the_same_vectors(folder: Path, tiny_vit: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Two batches embedded at once on separate threads: same files, same vectors, written in order."""
    results = {}
    for lanes in ("1", "2"):
        monkeypatch.setenv("VITFEAT_HOME", str(tmp_path / f"home-{lanes}"))
        monkeypatch.setenv("VITFEAT_INFER_LANES", lanes)
        with Library.open(folder, model=str(tiny_vit)) as lib:
            lib.extractor.batch_size = 3  # 24 files: 8 batches, so both lanes are busy most of the time
            report = lib.scan(threads=2)
            assert report.indexed == 24 and not report.skipped
            ids, vectors = lib.vectors()
            paths = {r.id: r.path for r in lib.files()}
            results[lanes] = {paths[int(i)]: v for i, v in zip(ids, vectors, strict=True)}
            assert lib.ensure_index_loaded().labels() == set(int(i) for i in ids)  # type: ignore[union-attr]
    assert results["1"].keys() == results["2"].keys() and len(results["1"]) == 24
    for path, vector in results["1"].items():
        np.testing.assert_allclose(results["2"][path], vector, atol=1e-5)


def test_cancel_with_two_lanes_keeps_finished_batches_only(folder: Path, tiny_vit: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITFEAT_INFER_LANES", "2")
    with Library.open(folder, model=str(tiny_vit)) as lib:
        calls = _scan_cancelled_after_three_batches(lib)
        assert 3 <= len(calls) <= 4 and True not in calls  # at most the other lane's batch was under way
        ids, _ = lib.vectors()
        assert len(ids) % 2 == 0 and 0 < len(ids) <= 2 * len(calls)
        assert lib.ensure_index_loaded().labels() == set(int(i) for i in ids)  # type: ignore[union-attr]
    with Library.open(folder, model=str(tiny_vit)) as lib:
        report = lib.scan()
        assert report.indexed + report.unchanged == 24
