"""``vitfeat model download|list|import|remove|path`` end to end against the fake hub."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehub import FakeHub

from vitfeat_desktop import config
from vitfeat_desktop.cli import main
from vitfeat_desktop.commands import model as model_cmd
from vitfeat_desktop.core.models.layout import cache_folder, cached_variants
from vitfeat_desktop.core.progress import Progress

REPO = "Xenova/tiny-vit"


@pytest.fixture
def fhub(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub({REPO: tiny_vit, config.DEFAULT_MODEL_ID: tiny_vit}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def test_download_prints_plain_progress_lines_when_not_a_terminal(
        fhub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "download", REPO]) == 0
    out, err = capsys.readouterr()
    assert f"downloaded {REPO} at commit {fhub.commit(REPO)[:12]}" in out
    lines = err.strip().splitlines()
    assert any("onnx/model_quantized.onnx" in line and "100%" in line for line in lines)
    assert "\r" not in err
    assert main(["model", "download", REPO]) == 0
    assert "already cached" in capsys.readouterr().out


def test_download_defaults_to_the_default_model_and_takes_variants(
        fhub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "download", "--fp32"]) == 0
    folder = cache_folder(config.DEFAULT_MODEL_ID)
    assert cached_variants(folder) == ("fp32",)
    assert main(["model", "download", "--all", "--revision", "main"]) == 0
    assert cached_variants(folder) == ("int8", "fp32")
    with pytest.raises(SystemExit):
        main(["model", "download", "--fp32", "--all"])


def test_download_errors_are_one_line(fhub: FakeHub, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["model", "download", "Xenova/missing"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vitfeat: error: ") and "HF_TOKEN" in err and err.count("\n") == 1
    fhub.requests.clear()
    assert main(["model", "download", REPO, "--revision", "../x"]) == 1
    assert "not a valid revision" in capsys.readouterr().err
    monkeypatch.setenv("VITFEAT_OFFLINE", "1")
    assert main(["model", "download", REPO]) == 1
    assert "vitfeat model import" in capsys.readouterr().err
    assert fhub.paths() == []  # neither the bad revision nor offline mode touched the network


def test_list_path_import_remove(fhub: FakeHub, tiny_vit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "list"]) == 0
    assert "no models cached" in capsys.readouterr().out
    assert main(["model", "download", REPO]) == 0
    assert main(["model", "import", str(tiny_vit), "--id", "me/offline"]) == 0
    out = capsys.readouterr().out
    assert "imported me/offline (int8,fp32)" in out and "--model me/offline" in out
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert REPO in out and f"main@{fhub.commit(REPO)[:12]}" in out and "imported from" in out
    assert main(["model", "list", "--json", "--known"]) == 0
    data = json.loads(capsys.readouterr().out)
    cached = {m["id"]: m for m in data["cached"]}
    assert cached[REPO]["commit"] == fhub.commit(REPO) and cached[REPO]["variants"] == ["int8"]
    assert cached["me/offline"]["source"] == "import"
    assert {k["id"] for k in data["known"]} >= {config.DEFAULT_MODEL_ID, "Xenova/clip-vit-base-patch32"}
    assert main(["model", "list", "--known"]) == 0
    assert "Xenova/dinov2-small" in capsys.readouterr().out
    assert main(["model", "path", REPO]) == 0
    assert capsys.readouterr().out.strip() == str(cache_folder(REPO))
    assert main(["model", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(config.models_dir())
    assert main(["model", "remove", "me/offline"]) == 0
    assert "removed me/offline" in capsys.readouterr().out
    assert main(["model", "path", "me/offline"]) == 1
    assert "not cached" in capsys.readouterr().err
    assert main(["model", "remove", "me/offline"]) == 1
    assert main(["model", "import", str(tiny_vit / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_progress_bar_shows_bytes_speed_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(model_cmd.time, "monotonic", clock)
    stream = io.StringIO()
    bar = model_cmd.ProgressPrinter(stream, tty=True)
    total = 100_000_000
    for second in range(0, 5):
        clock.now = 100.0 + second
        bar(Progress("download", second * 10_000_000, total, "org/m: onnx/model_quantized.onnx"))
    bar.finish()
    text = stream.getvalue()
    last = text.split("\r")[-1]
    # 40 MB in 4 s = 10 MB/s; 60 MB left -> 6 s
    assert "40.0%" in last and "40.0 MB/100.0 MB" in last and "10.0 MB/s" in last and "ETA 0:06" in last
    assert text.endswith("\n")


def test_plain_progress_prints_each_file_and_every_tenth() -> None:
    stream = io.StringIO()
    printer = model_cmd.ProgressPrinter(stream, tty=False)
    for done in range(0, 101):
        printer(Progress("download", done * 1000, 100_000, "m: onnx/model.onnx"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1].endswith("100%")
