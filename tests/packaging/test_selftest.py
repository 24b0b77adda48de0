"""The bundle self-test: every check reports one line, failures are reported (not raised), nothing leaks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vitfeat_desktop.selftest import fixtures, runner
from vitfeat_desktop.selftest.context import Context

NATIVE_CHECKS = "python,onnxruntime,onnx,hnswlib,opencv,pillow,heic,raw,qt,model"


def _lines(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    lines = capsys.readouterr().out.splitlines()
    checks = {}
    for line in lines:
        status, _, rest = line.partition(" ")
        name = rest.strip().split(":", 1)[0]
        if status in ("ok", "FAIL", "skip"):
            checks[name] = status
    return checks


def test_native_parts_pass_with_generated_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = runner.main(["--self-test", "--only", NATIVE_CHECKS])
    checks = _lines(capsys)
    assert checks == {name: "ok" for name in NATIVE_CHECKS.split(",")}
    assert code == 0


def test_environment_is_restored(vitfeat_home: Path) -> None:
    before = dict(os.environ)
    runner.main(["--only", "python,hnswlib"])
    assert os.environ.get("VITFEAT_HOME") == str(vitfeat_home)
    assert dict(os.environ) == before
    # and the throw-away home was not the test's home: nothing was written there
    assert not any(vitfeat_home.iterdir())


def test_bad_model_is_a_failed_line_and_nonzero_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = runner.main(["--only", "python,model", "--model", str(tmp_path / "nope")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL model: --model" in out and "not a folder" in out
    assert out.strip().splitlines()[-1].startswith("self-test: 1 ok, 1 failed")


def test_broken_model_folder_fails_with_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "onnx").mkdir()
    (tmp_path / "config.json").write_text("{}")
    code = runner.main(["--only", "model", "--model", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("FAIL model:"))
    assert "Traceback" not in out and len(line) < 400


def test_unknown_check_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--only", "python,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_crashing_check_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def boom(ctx: Context) -> str:
        raise RuntimeError("simulated missing library")

    checks = tuple((n, boom if n == "hnswlib" else f) for n, f in runner.CHECKS)
    monkeypatch.setattr(runner, "CHECKS", checks)
    code = runner.main(["--only", "python,hnswlib,raw"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL hnswlib: RuntimeError: simulated missing library" in out
    assert "ok   raw:" in out


def test_missing_codec_is_reported(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda name: False if name == "avif" else real(name))
    assert runner.main(["--only", "pillow"]) == 1
    assert "FAIL pillow: missing codecs: AVIF" in capsys.readouterr().out


def test_linear_dng_decodes_with_the_written_colours(tmp_path: Path) -> None:
    from vitfeat_desktop.core.images import open_image

    y, x = np.mgrid[0:60, 0:80]
    rgb = np.stack([x * 800, np.full_like(x, 2000), y * 1000], axis=-1)
    path = tmp_path / "grad.dng"
    fixtures.write_linear_dng(path, rgb)
    image = np.asarray(open_image(path), dtype=np.float64)
    assert image.shape[2] == 3 and min(image.shape[:2]) >= 30
    # red grows left to right, blue top to bottom, as written
    assert image[:, -5:, 0].mean() > image[:, :5, 0].mean() + 50
    assert image[-5:, :, 2].mean() > image[:5, :, 2].mean() + 50


def test_synthetic_photos_differ() -> None:
    a = np.asarray(fixtures.synthetic_photo(0), dtype=np.float64)
    b = np.asarray(fixtures.synthetic_photo(1), dtype=np.float64)
    assert a.shape == (240, 320, 3)
    assert np.abs(a - b).mean() > 20
    assert np.array_equal(a, np.asarray(fixtures.synthetic_photo(0)))


def test_real_model_embeds(real_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = runner.main(["--only", "model", "--model", str(real_model)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "embed (3, 384)" in out and "hidden (1, 257, 384)" in out


def test_full_self_test_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code = runner.main([])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok   library:" in out and "ok   window:" in out
