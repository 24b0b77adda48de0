"""``vitfeat similar IMG --in LIB`` without ``--model`` on a library indexed with another model: it uses the
model the library was indexed with, or, when there are several, says which models it has."""

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
    return root


def test_similar_uses_the_model_the_library_was_indexed_with(folder: Path, tiny_vit: Path, tiny_vit_no_pooler: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", str(folder), "--model", str(tiny_vit), "--json"]) == 0
    capsys.readouterr()
    query = sorted(folder.glob("*.JPEG"))[0]
    # no --model: the configured default (not installed here) has no index; the one model the library has is used
    assert main(["similar", str(query), "--in", str(folder), "-k", "2", "--json"]) == 0
    out = capsys.readouterr()
    assert len(json.loads(out.out)["results"]) == 2
    assert f"indexed with {tiny_vit}" in out.err
    # a second model: now the CLI cannot guess, and says which models the library has
    assert main(["index", str(folder), "--model", str(tiny_vit_no_pooler), "--json"]) == 0
    capsys.readouterr()
    assert main(["similar", str(query), "--in", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(tiny_vit) in err and str(tiny_vit_no_pooler) in err and "--model" in err
    # asking for a model the library was not indexed with names the ones it has and the index command that works
    assert main(["similar", str(query), "--in", str(folder), "--model", str(tiny_vit), "--fp32"]) == 1
    err = capsys.readouterr().err
    assert "it was indexed with" in err and f"vitfeat index {folder} --model {tiny_vit}" in err
