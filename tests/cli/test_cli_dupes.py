"""``vitfeat dupes`` and ``vitfeat undo`` end to end on a small folder (tiny model; quick pass)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from helpers.files import tree_checksums
from PIL import Image

from vitfeat_desktop.cli import main


@pytest.fixture()
def folder(tmp_path: Path, photos: list[Path]) -> Path:
    root = tmp_path / "Photos"
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(photos[0], root / "a.jpg")
    shutil.copyfile(photos[0], root / "sub" / "a copy.jpg")
    img = Image.open(photos[0]).convert("RGB")
    img.resize((img.width // 2, img.height // 2)).save(root / "a_small.jpg", quality=70)
    for n, p in enumerate(photos[1:6]):
        shutil.copyfile(p, root / f"other{n}.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_quick_json_and_csv(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.csv"
    code, out, _ = _run(capsys, "dupes", str(folder), "--quick", "--json", "--csv", str(plan))
    assert code == 0
    data = json.loads(out)
    assert len(data["groups"]) == 1
    group = data["groups"][0]
    assert group["keeper"] == str(folder / "a.jpg") and group["files"][0] == group["keeper"]
    tiers = {Path(m["path"]).name: m["tier"] for m in group["members"]}
    assert tiers == {"a.jpg": "keeper", "a copy.jpg": "exact", "a_small.jpg": "near-duplicate"}
    assert all({"path", "tier", "reason", "score"} <= set(m) for m in group["members"])
    assert any(s["path"].endswith("broken.jpg") for s in data["skipped"])
    rows = list(csv.DictReader(plan.open(encoding="utf-8")))
    assert [r["role"] for r in rows] == ["keep", "remove", "remove"]


def test_model_pass_runs_calibration(folder: Path, tiny_vit: Path, capsys: pytest.CaptureFixture[str],
                                     vitfeat_home: Path) -> None:
    code, out, _ = _run(capsys, "dupes", str(folder), "--model", str(tiny_vit), "--json", "--similar")
    assert code == 0
    data = json.loads(out)
    assert data["thresholds"] == "calibrated"
    cached = list((vitfeat_home / "dupes").glob("calibration-*.json"))
    assert len(cached) == 1  # cached per (library, model) in the data dir
    stamp = cached[0].stat().st_mtime_ns
    code, again, _ = _run(capsys, "dupes", str(folder), "--model", str(tiny_vit), "--json")
    assert code == 0 and cached[0].stat().st_mtime_ns == stamp  # reused, not refitted
    assert json.loads(again)["groups"] == data["groups"]
    exact = [g for g in data["groups"] if any(m["tier"] == "exact" for m in g["members"])]
    assert exact and {Path(p).name for p in exact[0]["files"]} >= {"a.jpg", "a copy.jpg"}
    files = [p for g in data["groups"] for p in g["files"]]
    assert len(files) == len(set(files))  # a file is in at most one group


def test_quarantine_then_undo(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_checksums(folder)
    code, out, err = _run(capsys, "dupes", str(folder), "--quick", "--quarantine", "--yes", "--json")
    assert code == 0
    moved = json.loads(out)["action"]["done"]
    assert {Path(m["path"]).name for m in moved} == {"a copy.jpg", "a_small.jpg"}
    assert (folder / "a.jpg").is_file() and not (folder / "a_small.jpg").exists()
    assert not (folder / ".vitfeat-quarantine").exists()  # quarantined outside the photo folder
    assert "vitfeat undo" in err
    code, out, _ = _run(capsys, "undo", "--list")
    assert code == 0 and "quarantine" in out
    code, out, _ = _run(capsys, "undo")
    assert code == 0 and "restored 2 files" in out
    assert tree_checksums(folder) == before
    code, _, err = _run(capsys, "undo")
    assert code == 1 and "nothing to undo" in err


def test_trash_needs_confirmation(folder: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = tree_checksums(folder)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = _run(capsys, "dupes", str(folder), "--quick", "--trash")
    assert code == 1 and "--yes" in err
    assert tree_checksums(folder) == before


def test_reference_folder_files_are_kept(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = folder / "sub"
    code, out, _ = _run(capsys, "dupes", str(folder), "--quick", "--reference", str(ref), "--quarantine",
                        "--yes", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["groups"][0]["keeper"] == str(ref / "a copy.jpg")
    assert (ref / "a copy.jpg").is_file() and (folder / "a.jpg").exists() is False
    assert {Path(m["path"]).name for m in data["action"]["done"]} == {"a.jpg", "a_small.jpg"}


def test_bad_arguments(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dupes", str(folder), "--sensitivity", "3")
    assert code == 1 and "sensitivity" in err
    code, _, err = _run(capsys, "dupes", str(folder / "missing"), "--quick")
    assert code == 1 and "does not exist" in err
    code, _, err = _run(capsys, "dupes", str(folder), "--quick", "--yes")
    assert code == 1 and "--yes" in err
    code, _, err = _run(capsys, "undo", "no-such-journal")
    assert code == 1 and "no journal" in err


def test_without_the_default_model_falls_back_to_hashes(folder: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITFEAT_OFFLINE", "1")  # the default model is not cached and may not be downloaded
    code, out, err = _run(capsys, "dupes", str(folder), "--json")
    assert code == 0 and "default model is not available" in err
    assert json.loads(out)["groups"][0]["keeper"] == str(folder / "a.jpg")
