"""Keeper rules: reference folder, resolution, RAW, file size, capture date; and the reason shown for each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitfeat_desktop.core.dupes import DuplicateFinder, FileInfo, Thresholds, keeper_key, keeper_reason


def _info(i: int, path: str, **kw: object) -> FileInfo:
    base = {"size": 1000, "width": 1000, "height": 800, "format": "JPEG", "capture_date": None}
    base.update(kw)
    return FileInfo(id=i, path=path, **base)  # type: ignore[arg-type]


def _best(files: list[FileInfo], refs: list[Path] | None = None) -> FileInfo:
    return min(files, key=lambda f: keeper_key(f, refs or []))


def test_highest_resolution_wins_over_everything_but_references() -> None:
    small_raw_old = _info(0, "/p/a.dng", width=800, height=600, format="DNG", size=9_000_000,
                          capture_date="2001-01-01")
    big = _info(1, "/p/b.jpg", width=4000, height=3000, size=2_000_000)
    assert _best([small_raw_old, big]) is big
    assert "higher resolution (4000x3000 vs 800x600)" in keeper_reason(big, small_raw_old)


def test_raw_over_jpeg_at_equal_resolution() -> None:
    jpeg = _info(0, "/p/a.jpg", size=9_000_000)
    raw = _info(1, "/p/a.cr2", format=None, size=100)  # RAW recognised by extension as well
    assert _best([jpeg, raw]) is raw
    assert keeper_reason(raw, jpeg) == "RAW file"


def test_larger_file_then_oldest_capture_date() -> None:
    small = _info(0, "/p/a.jpg", size=1000, capture_date="2000-01-01 10:00:00")
    large = _info(1, "/p/b.jpg", size=5000, capture_date="2020-01-01 10:00:00")
    assert _best([small, large]) is large
    assert "larger file" in keeper_reason(large, small)
    old = _info(2, "/p/c.jpg", capture_date="2005-06-01 10:00:00")
    new = _info(3, "/p/d.jpg", capture_date="2019-06-01 10:00:00")
    undated = _info(4, "/p/e.jpg")
    assert _best([new, undated, old]) is old
    assert "older capture date" in keeper_reason(old, new)


def test_reference_folder_is_always_keeper(tmp_path: Path) -> None:
    ref = tmp_path / "archive"
    in_ref = _info(0, str(ref / "small.jpg"), width=100, height=80, size=10)
    best_otherwise = _info(1, str(tmp_path / "big.dng"), width=9000, height=6000, format="DNG", size=10**8)
    assert _best([best_otherwise, in_ref], [ref]) is in_ref
    assert keeper_reason(in_ref, best_otherwise, [ref]) == "in a reference folder"


def _finder(files: list[FileInfo], pairs: list[tuple[int, int]], cos: list[float], **kw: object) -> DuplicateFinder:
    m = len(pairs)
    return DuplicateFinder(files, np.array(pairs, dtype=np.int64), cos=np.array(cos, dtype=np.float32),
                           hash_dist=np.full(m, 30), transform=np.zeros(m, dtype=np.int64),
                           align=np.full(m, np.nan, dtype=np.float32), exact=np.zeros(m, dtype=bool),
                           same_pixels=np.zeros(m, dtype=bool), thresholds=Thresholds(), **kw)  # type: ignore[arg-type]


def test_groups_use_keeper_rules_and_protect_reference_members(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    files = [_info(0, str(tmp_path / "a.jpg"), width=2000, height=1500),
             _info(1, str(tmp_path / "b.jpg"), width=4000, height=3000),
             _info(2, str(ref / "c.jpg"), width=1000, height=750),
             _info(3, str(ref / "d.jpg"), width=500, height=375)]
    pairs = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    plain = _finder(files, pairs, [0.99] * 6).groups()
    assert len(plain) == 1 and plain[0].keeper.path.endswith("b.jpg")
    assert plain[0].members[0].tier == "keeper" and "higher resolution" in plain[0].members[0].reason
    with_ref = _finder(files, pairs, [0.99] * 6, references=[ref]).groups()
    group = with_ref[0]
    assert group.keeper.path.endswith("c.jpg")
    assert group.members[0].reason == "kept: in a reference folder"
    # the other reference file is in the group but never offered for removal
    removable = {Path(m.info.path).name for m in group.removable}
    assert removable == {"a.jpg", "b.jpg"}
    assert {r["path"] for r in _finder(files, pairs, [0.99] * 6, references=[ref]).plan()} == {
        files[0].path, files[1].path}
