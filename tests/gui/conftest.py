"""GUI test fixtures: an offscreen QApplication with isolated QSettings, a photo folder, and a window factory
that fails the test if any background job is still running after the window closed."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from helpers.photos import shared_photos
from PIL import Image
from PySide6.QtCore import QCoreApplication, QSettings

N_UNIQUE = 8


@pytest.fixture(autouse=True)
def isolated_qsettings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Window geometry goes to a temp INI file, never to the user's real QSettings."""
    QCoreApplication.setOrganizationName("vitfeat-tests")
    QCoreApplication.setApplicationName("vitfeat-desktop-tests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path_factory.mktemp("qsettings")))


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """10 photos: 8 distinct, an exact copy of the first, and a half-size re-save of the second."""
    folder = tmp_path / "photos"
    folder.mkdir()
    sources = shared_photos()[:N_UNIQUE]
    if len(sources) >= N_UNIQUE:
        for src in sources:
            shutil.copy(src, folder / src.name)
    else:  # no shared data: distinct generated images
        rng = np.random.default_rng(0)
        for i in range(N_UNIQUE):
            arr = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / f"img_{i:02d}.jpg", quality=92)
    files = sorted(folder.iterdir())
    shutil.copy(files[0], folder / f"zz_copy_of_{files[0].name}")
    with Image.open(files[1]) as im:
        im.convert("RGB").resize((im.width // 2, im.height // 2)).save(folder / f"zz_small_{files[1].stem}.jpg",
                                                                      quality=80)
    return folder


@pytest.fixture
def make_window(qtbot: Any, tiny_vit: Path) -> Iterator[Callable[..., Any]]:
    """Create main windows; after the test each is closed and must have no worker left running."""
    from vitfeat_desktop.gui.app import build_window

    windows: list[Any] = []

    def factory(folder: Path | None = None, model: Any = "tiny", **kwargs: Any) -> Any:
        window = build_window(folder=folder, model=str(tiny_vit) if model == "tiny" else model, **kwargs)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield factory
    for window in windows:
        window.close()
        assert window.runner.active_count() == 0, "a background job outlived its window"
        assert window.runner.pool.activeThreadCount() == 0, "a pool thread is still busy after close"
