"""``vitfeat extract`` and the basics of the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop import pipeline
from vitfeat_desktop.cli import main


def test_extract_json_and_out_equal_the_python_api(tiny_vit: Path, photos: list[Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "features.npy"
    files = [str(photos[0]), str(photos[1])]
    assert main(["extract", *files, "--model", str(tiny_vit), "--json", "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["output"] == "last_hidden_state"
    assert info["shape"] == [2, 197, 32]
    assert info["dtype"] == "float32"
    assert info["patch_tokens"] == 196 and info["patch_grid"] == [14, 14]
    assert info["model"] == str(tiny_vit)
    saved = np.load(out)
    np.testing.assert_array_equal(saved, pipeline("image-feature-extraction", model=tiny_vit)(files))


def test_extract_pool_fp32_text(tiny_vit: Path, photos: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", str(photos[0]), "--model", str(tiny_vit), "--pool", "--fp32"]) == 0
    text = capsys.readouterr().out
    assert "pooler_output (1, 32) float32" in text
    assert "fp32" in text


@pytest.mark.parametrize("make_bad,expected", [
    (lambda d: d / "missing.jpg", "file not found"),
    (lambda d: (d / "text.jpg").write_text("hello") and d / "text.jpg", "not an image"),
])
def test_errors_are_one_line_without_traceback(tiny_vit: Path, tmp_path: Path, make_bad, expected: str) -> None:
    bad = make_bad(tmp_path)
    result = subprocess.run([sys.executable, "-m", "vitfeat_desktop", "extract", str(bad), "--model", str(tiny_vit)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_error(tmp_path: Path, photos: list[Path]) -> None:
    result = subprocess.run([sys.executable, "-m", "vitfeat_desktop", "extract", str(photos[0]),
                             "--model", str(tmp_path / "no-model-here")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_version_and_help() -> None:
    for args in (["--version"], ["--help"]):
        result = subprocess.run([sys.executable, "-m", "vitfeat_desktop.cli", *args], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0
    assert "vitfeat" in result.stdout and "extract" in result.stdout
