"""Shared fixtures: an isolated data dir for every test, generated tiny ViT models, the real photos and model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.photos import PHOTOS, REAL_MODEL

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def vitfeat_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir, and never touches the network or the user's real settings."""
    home = tmp_path_factory.mktemp("vitfeat-home")
    monkeypatch.setenv("VITFEAT_HOME", str(home))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("VITFEAT_OFFLINE", raising=False)
    # The Hugging Face cache, saved login and env switches are read too: never the user's own.
    monkeypatch.setenv("HF_HOME", str(home / "hf-home"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN",
                 "TRANSFORMERS_OFFLINE", "HF_HUB_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hub-layout folder with a tiny random ViT (hidden 32, 197 tokens), fp32 and int8, with pooler."""
    from vitfeat_desktop.selftest.tinyvit import write_model_folder

    return write_model_folder(tmp_path_factory.mktemp("models") / "tiny-vit")


@pytest.fixture(scope="session")
def tiny_vit_no_pooler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same architecture without ``pooler_output`` (like many DINO/MAE exports)."""
    from vitfeat_desktop.selftest.tinyvit import write_model_folder

    return write_model_folder(tmp_path_factory.mktemp("models") / "tiny-vit-nopool", with_pooler=False, seed=1)


@pytest.fixture(scope="session")
def real_model() -> Path:
    if not (REAL_MODEL / "onnx" / "model_quantized.onnx").is_file():
        pytest.skip("the shared DINOv2 model is not available")
    return REAL_MODEL


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    files = sorted(PHOTOS.glob("*.JPEG"))
    if not files:
        pytest.skip("the shared photos are not available")
    return files


@pytest.fixture
def trash_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """send2trash's freedesktop home trash in a temp folder, so tests never fill the real trash (it reads
    XDG_DATA_HOME at import time, hence the patched module globals)."""
    from send2trash import plat_other

    xdg = tmp_path / "xdg"
    xdg.mkdir()
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(xdg))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(xdg / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(xdg / "Trash"))
    return xdg / "Trash"
