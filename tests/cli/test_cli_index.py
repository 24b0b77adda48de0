"""``vitfeat index`` and ``vitfeat similar`` as a user runs them (in process, through cli.main)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vitfeat_desktop.cli import main


@pytest.fixture()
def folder(tmp_path: Path, photos: list[Path]) -> Path:
    root = tmp_path / "pics"
    root.mkdir()
    for p in photos[:6]:
        shutil.copy2(p, root / p.name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return root


def test_index_json_then_incremental(folder: Path, tiny_vit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(folder), "--model", str(tiny_vit), "--threads", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["indexed"] == 6 and data["unchanged"] == 0 and data["reused"] == 0 and data["removed"] == 0
    assert data["skipped"] == [{"path": str(folder / "broken.jpg"), "reason": data["skipped"][0]["reason"]}]
    assert data["skipped"][0]["reason"]
    assert isinstance(data["seconds"], float | int)
    assert "indexing: 7/7 files" in err  # progress on stderr (6 photos + the broken one), never on stdout
    assert main(["index", str(folder), "--model", str(tiny_vit), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["indexed"] == 0 and again["unchanged"] == 6


def test_index_text_summary(folder: Path, tiny_vit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(folder), "--model", str(tiny_vit)]) == 0
    out = capsys.readouterr().out
    assert "indexed 6, unchanged 0, reused 0, removed 0, skipped 1" in out
    assert "skipped " + str(folder / "broken.jpg") in out


def test_similar_json(folder: Path, tiny_vit: Path, photos: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    main(["index", str(folder), "--model", str(tiny_vit), "--json"])
    capsys.readouterr()
    query = sorted(folder.glob("*.JPEG"))[0]
    assert main(["similar", str(query), "--model", str(tiny_vit), "-k", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["query"] == str(query)
    assert len(data["results"]) == 3 and set(data["results"][0]) == {"path", "score"}
    assert str(query) not in [r["path"] for r in data["results"]]
    scores = [r["score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True)
    # An image outside the library, with --in.
    outside = photos[50]
    assert main(["similar", str(outside), "--in", str(folder), "--model", str(tiny_vit), "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.split()[1].startswith(str(folder)) for line in lines)


def test_similar_errors_are_one_line(folder: Path, tiny_vit: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["similar", str(tmp_path / "nope.jpg")]) == 1
    assert "does not exist" in capsys.readouterr().err
    query = sorted(folder.glob("*.JPEG"))[0]
    assert main(["similar", str(query), "--model", str(tiny_vit)]) == 1
    err = capsys.readouterr().err
    assert "no indexed folder contains" in err and err.count("\n") == 1
    assert main(["similar", str(query), "--in", str(folder), "--model", str(tiny_vit)]) == 1
    assert "vitfeat index" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing"), "--model", str(tiny_vit)]) == 1
    assert "does not exist" in capsys.readouterr().err
