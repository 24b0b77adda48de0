"""Opening the app on an image file (command line, "Open with", macOS FileOpen), start-up timing, and the app's
own --help/--version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.qt import wait_scan
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from vitfeat_desktop import __version__

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]


def _query_name(window: Any) -> str | None:
    q = window.similar_panel.query_path
    return None if q is None else Path(q).name


def test_opening_an_image_file_opens_its_folder_and_queries_it(qtbot: Any, make_window: Any,
                                                              photo_folder: Path) -> None:
    photo = sorted(photo_folder.iterdir())[3]
    window = make_window(photo)  # what `vitfeat-desktop photo.jpg` passes to build_window
    with qtbot.waitSignal(window.similar_ready, timeout=60_000) as got:
        pass
    assert window.library_folder == photo_folder.resolve()
    assert window.library_model.rowCount() == len(list(photo_folder.iterdir()))
    assert _query_name(window) == photo.name
    assert window.tabs.currentWidget() is window.similar_panel
    results = [it.path.name for it in got.args[0]]
    assert results and photo.name not in results  # the query itself is not its own best match
    current = window.grid.current_item()
    assert current is not None and current.path.name == photo.name  # selected in the library grid too


def test_file_open_event_routes_to_the_window(qtbot: Any, make_window: Any, photo_folder: Path,
                                              tmp_path: Path) -> None:
    from vitfeat_desktop.gui.app import install_file_open_filter

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    filt = install_file_open_filter(app)
    assert install_file_open_filter(app) is filt  # one filter per application
    other = tmp_path / "other"
    other.mkdir()
    files = sorted(photo_folder.iterdir())
    (other / files[2].name).write_bytes(files[2].read_bytes())
    try:
        # an event that arrives before the window exists (macOS sends it at launch) is kept for it
        QApplication.sendEvent(app, QFileOpenEvent(str(other)))
        assert filt.pending == [other]
        window = make_window(None)
        filt.attach(window)
        assert wait_scan(qtbot, window).indexed == 1
        assert window.library_folder == other.resolve()
        # "Open with" on a photo of another folder: that folder opens and the photo becomes the query
        photo = files[5]
        with qtbot.waitSignal(window.similar_ready, timeout=60_000):
            QApplication.sendEvent(app, QFileOpenEvent(str(photo)))
        assert window.library_folder == photo_folder.resolve()
        assert _query_name(window) == photo.name
        # a photo of the library already open is queried at once, without a rescan
        with qtbot.waitSignal(window.similar_ready, timeout=30_000):
            QApplication.sendEvent(app, QFileOpenEvent(str(files[1])))
        assert _query_name(window) == files[1].name
        # anything else is reported, not opened
        notes = tmp_path / "notes.txt"
        notes.write_text("x")
        QApplication.sendEvent(app, QFileOpenEvent(str(notes)))
        assert "not a folder or a supported image" in window.status_label.text()
        assert window.library_folder == photo_folder.resolve()
    finally:
        app.removeEventFilter(filt)
        filt.deleteLater()


def _run_app(*args: str, env_extra: dict[str, str] | None = None, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", VITFEAT_HOME=str(home), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "vitfeat_desktop", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO)


def test_quit_after_show_prints_startup_seconds(tmp_path: Path, tiny_vit: Path, photo_folder: Path) -> None:
    before = sorted(p.name for p in photo_folder.iterdir())
    photo = photo_folder / before[0]
    result = _run_app(str(photo), "--model", str(tiny_vit), env_extra={"VITFEAT_QUIT_AFTER_SHOW": "1"},
                      home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    line = [ln for ln in result.stdout.splitlines() if "window shown" in ln]
    assert len(line) == 1, result.stdout
    seconds = float(line[0].split("window shown ")[1].split(" s ")[0])
    assert seconds > 0
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in photo_folder.iterdir()) == before  # nothing written in the photo folder


def test_bad_argument_is_one_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    result = _run_app(str(notes), home=tmp_path / "home")
    assert result.returncode == 2
    assert result.stderr.strip() == f"vitfeat-desktop: {notes} is not a folder or a supported image file"
    result = _run_app(str(tmp_path / "missing.jpg"), home=tmp_path / "home")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_version_and_help_are_the_apps_own(tmp_path: Path) -> None:
    from vitfeat_desktop.__main__ import main

    result = _run_app("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"vitfeat-desktop {__version__}"
    result = _run_app("--help", home=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option in ("FOLDER|IMAGE", "--model", "--fp32", "--self-test", "--version"):
        assert option in text
    assert "`vitfeat`" in text and "usage: vitfeat-desktop" in text
    # --help needs no Qt: the app module is not imported to print it
    code = ("import sys; from vitfeat_desktop.__main__ import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'PySide6' not in sys.modules, 'Qt imported for --help'")
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert check.returncode == 0, check.stderr
    assert main(["-h"]) == 0


def test_entry_script_passes_a_photo_to_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The frozen bundle's entry script no longer rewrites "Open with" on a photo to its folder: the app does
    better (opens the folder and queries the photo), so the photo must reach it unchanged."""
    import importlib.util

    import vitfeat_desktop.__main__ as app_main

    spec = importlib.util.spec_from_file_location("vitfeat_entry_open_test", REPO / "packaging" / "vitfeat_entry.py")
    assert spec is not None and spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    photo = tmp_path / "a.JPG"
    photo.write_bytes(b"x")
    seen: list[list[str]] = []
    monkeypatch.setattr(app_main, "main", lambda args: seen.append(list(args)) or 0)
    monkeypatch.setattr(sys, "argv", ["/opt/vitfeat/vitfeat-desktop", str(photo)])
    assert entry._main() == 0
    assert seen == [[str(photo)]]
