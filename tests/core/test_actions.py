"""Trash / quarantine / move / copy with a journal: round trips, protection, and crashes at every step."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from helpers.files import tree_checksums

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.fileio import sha256_file
from vitfeat_desktop.core.fileops import operations, references
from vitfeat_desktop.core.fileops.disk import mount_point
from vitfeat_desktop.core.fileops.errors import ProtectedFileError
from vitfeat_desktop.core.fileops.journal import Entry
from vitfeat_desktop.core.fileops.operations import apply_actions, recover, undo


@pytest.fixture()
def photos_dir(tmp_path: Path) -> Path:
    root = tmp_path / "Photos"
    (root / "2023").mkdir(parents=True)
    for i in range(4):
        (root / "2023" / f"img{i}.jpg").write_bytes(os.urandom(3000 + i))
    (root / "keep.jpg").write_bytes(os.urandom(5000))
    return root


def test_quarantine_and_undo_restore_identical_files(photos_dir: Path) -> None:
    before = tree_checksums(photos_dir)
    victims = sorted((photos_dir / "2023").glob("*.jpg"))[:3]
    result = apply_actions("quarantine", victims, photo_roots=[photos_dir])
    assert not result.failed and len(result.done) == 3
    for src, dest in result.done:
        assert not Path(src).exists()
        assert dest is not None and Path(dest).is_file()
        assert photos_dir not in Path(dest).parents  # never inside the photo folder when another place exists
        assert sha256_file(Path(dest)) == before[str(Path(src).relative_to(photos_dir))]
    restored = undo()
    assert sorted(restored.restored) == sorted(str(v) for v in victims) and not restored.failed
    assert tree_checksums(photos_dir) == before


def test_trash_and_undo(photos_dir: Path, trash_home: Path) -> None:
    before = tree_checksums(photos_dir)
    victim = photos_dir / "2023" / "img1.jpg"
    result = apply_actions("trash", [victim])
    assert result.done and not victim.exists()
    trashed = Path(result.done[0][1] or "")
    assert trashed.is_file() and trash_home in trashed.parents
    assert list((trash_home / "info").glob("*.trashinfo"))
    undo(result.journal_id)
    assert tree_checksums(photos_dir) == before
    assert not list((trash_home / "info").glob("*.trashinfo"))  # put back, not left as a ghost entry


def test_move_and_copy_round_trip(photos_dir: Path, tmp_path: Path) -> None:
    before = tree_checksums(photos_dir)
    elsewhere = tmp_path / "elsewhere"
    copied = apply_actions("copy", [photos_dir / "keep.jpg"], folder=elsewhere)
    assert (elsewhere / "keep.jpg").is_file() and (photos_dir / "keep.jpg").is_file()
    # a second copy of a same-named file gets a new name instead of overwriting
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.jpg").write_bytes(b"different")
    apply_actions("copy", [tmp_path / "other" / "keep.jpg"], folder=elsewhere)
    assert (elsewhere / "keep (2).jpg").read_bytes() == b"different"
    moved = apply_actions("move", [photos_dir / "2023" / "img0.jpg"], folder=elsewhere)
    assert (elsewhere / "img0.jpg").is_file() and not (photos_dir / "2023" / "img0.jpg").exists()
    undo(moved.journal_id)
    undo(copied.journal_id)
    assert tree_checksums(photos_dir) == before
    assert not (elsewhere / "keep.jpg").exists()


def test_reference_folders_are_never_touched(photos_dir: Path, tmp_path: Path) -> None:
    before = tree_checksums(photos_dir)
    with pytest.raises(ProtectedFileError):
        apply_actions("quarantine", [photos_dir / "2023" / "img0.jpg"], references=[photos_dir / "2023"])
    settings.update(reference_folders=[str(photos_dir)])
    for action in ("trash", "quarantine", "move"):
        with pytest.raises(ProtectedFileError):
            apply_actions(action, [photos_dir / "keep.jpg"], folder=tmp_path / "out")
    # a symlink pointing into the reference folder is protected too
    link = tmp_path / "link.jpg"
    link.symlink_to(photos_dir / "keep.jpg")
    with pytest.raises(ProtectedFileError):
        apply_actions("quarantine", [link])
    # nothing may be written into a reference folder either
    outside = tmp_path / "loose.jpg"
    outside.write_bytes(b"x")
    with pytest.raises(ProtectedFileError):
        apply_actions("move", [outside], folder=photos_dir / "in")
    assert tree_checksums(photos_dir) == before


def test_missing_keeper_keeps_the_copy(photos_dir: Path) -> None:
    victim = photos_dir / "2023" / "img2.jpg"
    result = apply_actions("quarantine", [victim], keepers={str(victim): str(photos_dir / "gone.jpg")})
    assert result.failed and "keeper" in result.failed[0][1]
    assert victim.is_file()
    result = apply_actions("quarantine", [victim], keepers={str(victim): str(victim)})
    assert result.failed and victim.is_file()


def test_bad_inputs_lose_nothing(photos_dir: Path, tmp_path: Path) -> None:
    result = apply_actions("quarantine", [photos_dir / "nope.jpg", photos_dir / "keep.jpg"])
    assert [Path(p).name for p, _ in result.failed] == ["nope.jpg"]
    assert [Path(p).name for p, _ in result.done] == ["keep.jpg"]
    with pytest.raises(ValueError):
        apply_actions("shred", [photos_dir / "keep.jpg"])
    with pytest.raises(ValueError):
        apply_actions("move", [photos_dir / "keep.jpg"])


def test_undo_does_not_overwrite_a_new_file(photos_dir: Path) -> None:
    victim = photos_dir / "2023" / "img3.jpg"
    original = sha256_file(victim)
    result = apply_actions("quarantine", [victim])
    victim.write_bytes(b"a new picture that took the name")
    outcome = undo(result.journal_id)
    assert outcome.failed and "different file" in outcome.failed[0][1]
    assert victim.read_bytes() == b"a new picture that took the name"
    assert sha256_file(Path(result.done[0][1] or "")) == original  # the original is still safe in quarantine


class _Crash(BaseException):
    """Stands in for the process dying: not caught by the per-file error handling."""


@pytest.mark.parametrize(("stage", "cross_volume"), [("intent", False), ("placed", False), ("copied", True),
                                                     ("placed", True)])
def test_crash_mid_action_then_replay_loses_nothing(photos_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    stage: str, cross_volume: bool) -> None:
    before = tree_checksums(photos_dir)
    victims = sorted((photos_dir / "2023").glob("*.jpg"))
    calls = {"n": 0}

    def crash(at: str, entry: Entry) -> None:
        if at == stage:
            calls["n"] += 1
            if calls["n"] == 2:  # the first file completes, the second dies mid-way
                raise _Crash()

    monkeypatch.setattr(operations, "_step", crash)
    if cross_volume:
        real_link = os.link

        def no_link(src: object, dst: object) -> None:
            if str(dst).endswith(operations.PART_SUFFIX) or operations.PART_SUFFIX in str(src):
                real_link(src, dst)  # type: ignore[arg-type]
                return
            raise OSError(errno.EXDEV, "cross-device link")

        monkeypatch.setattr(os, "link", no_link)
    with pytest.raises(_Crash):
        apply_actions("quarantine", victims)
    monkeypatch.setattr(operations, "_step", lambda at, entry: None)
    journal_files = list(config.trash_journal_dir().glob("*.jsonl"))
    assert len(journal_files) == 1
    assert recover() == [journal_files[0].stem]
    # Every original exists exactly once, either in place or in quarantine, byte-identical.
    records = [json.loads(line) for line in journal_files[0].read_text().splitlines()]
    placed = {r["i"]: r for r in records if r["op"] == "intent"}
    states = {r["i"]: r["op"] for r in records if r["op"] in ("done", "rolled-back", "failed")}
    assert states[0] == "done" and states[1] == "rolled-back"
    # Recovery never deletes (issue 13): a rolled-back step keeps its source in place, and whatever the crash
    # left in the quarantine folder (a second name, a half-written part) stays there, unused.
    for i, intent in placed.items():
        src, dest = Path(intent["src"]), Path(intent["dest"])
        assert src.exists() != dest.exists() or states[i] == "rolled-back", (i, src, dest)
        assert sha256_file(src if src.exists() else dest) == intent["sha256"]
    assert Path(placed[1]["src"]).is_file()
    undo()
    assert tree_checksums(photos_dir) == before


def test_crash_during_undo_is_finished_by_replay(photos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = tree_checksums(photos_dir)
    victims = sorted((photos_dir / "2023").glob("*.jpg"))
    result = apply_actions("quarantine", victims)
    count = {"n": 0}

    def crash(at: str, entry: Entry) -> None:
        if at == "placed":
            count["n"] += 1
            if count["n"] == 2:
                raise _Crash()

    monkeypatch.setattr(operations, "_step", crash)
    with pytest.raises(_Crash):
        undo(result.journal_id)
    monkeypatch.setattr(operations, "_step", lambda at, entry: None)
    recover()
    assert tree_checksums(photos_dir) == before


def test_quarantine_location_prefers_outside_photo_folder(photos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = photos_dir / "keep.jpg"
    assert references.quarantine_root_for(src, [photos_dir]) == config.data_dir() / "quarantine"
    # data dir and mount point unusable: the highest writable folder above the photos on that volume
    blocked = {config.data_dir() / "quarantine", mount_point(src) / references.QUARANTINE_NAME}
    real = references._writable_dir
    monkeypatch.setattr(references, "_writable_dir", lambda f: f not in blocked and real(f) and
                        os.access(f.parent, os.W_OK))
    chosen = references.quarantine_root_for(src, [photos_dir])
    assert photos_dir not in chosen.parents and chosen != photos_dir / references.QUARANTINE_NAME
    # nowhere else writable: only then inside the photo folder
    monkeypatch.setattr(references, "_writable_dir", lambda f: False)
    assert references.quarantine_root_for(src, [photos_dir]) == photos_dir / references.QUARANTINE_NAME


def test_recover_leaves_a_journal_in_use_alone(photos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victims = sorted((photos_dir / "2023").glob("*.jpg"))[:2]
    seen: dict[str, list[str]] = {}

    def concurrent_recover(at: str, entry: Entry) -> None:
        if at == "intent" and "ids" not in seen:
            seen["ids"] = recover()  # e.g. the CLI starting while the GUI is mid-batch

    monkeypatch.setattr(operations, "_step", concurrent_recover)
    result = apply_actions("quarantine", victims)
    assert seen["ids"] == [] and len(result.done) == 2 and not result.failed
    assert all(not v.exists() for v in victims)
