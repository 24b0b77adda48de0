"""Buttons that open a dialog really open it (clicked, with QFileDialog's static methods answering), and the
status line says the right thing: model loaded, plurals, moved or renamed vs removed, readable skip reasons, the
same sizes as the CLI, and an offline error that points at the Import button."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers.qt import wait_scan
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton, QTextBrowser

from vitfeat_desktop import settings

pytestmark = pytest.mark.gui


def button(window: Any, text: str) -> QPushButton:
    found = [b for b in window.findChildren(QPushButton) if b.text() == text and b.isVisible()]
    assert len(found) == 1, f"{len(found)} visible buttons read {text!r}"
    return found[0]


def test_add_reference_folder_opens_a_dialog(qtbot: Any, make_window: Any, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.gui import folders_dock as mw

    refs = tmp_path / "originals"
    refs.mkdir()
    asked: list[str] = []

    def choose(*args: Any, **kwargs: Any) -> str:
        asked.append(str(args[1] if len(args) > 1 else kwargs.get("caption", "")))
        return str(refs)

    monkeypatch.setattr(mw.QFileDialog, "getExistingDirectory", choose)
    window = make_window(None)
    qtbot.mouseClick(button(window, "Add…"), Qt.MouseButton.LeftButton)
    assert asked and "reference folder" in asked[0]
    assert settings.read_file()["reference_folders"] == [str(refs.resolve())]
    assert [window.reference_list.item(i).toolTip() for i in range(window.reference_list.count())] == \
        [str(refs.resolve())]
    # Remove (clicked, with the folder highlighted) takes it out again
    window.reference_list.setCurrentRow(0)
    qtbot.mouseClick(button(window, "Remove"), Qt.MouseButton.LeftButton)
    assert settings.read_file()["reference_folders"] == []


def test_first_run_import_opens_a_dialog_and_the_model_loads(qtbot: Any, make_window: Any, tiny_vit: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.gui import models_panel

    monkeypatch.setenv("VITFEAT_OFFLINE", "1")
    monkeypatch.setattr(models_panel.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tiny_vit))
    window = make_window(None, model=None)
    panel = window.setup_panel
    qtbot.waitUntil(lambda: window.library_stack.currentWidget() is panel, timeout=30_000)
    assert window.status_label.text().startswith("A model is needed")
    # offline: the error names the Import button beside it, not a CLI command
    assert "vitfeat model import" not in panel.detail.text()
    with qtbot.waitSignal(window.model_ready, timeout=60_000):
        qtbot.mouseClick(panel.import_button, Qt.MouseButton.LeftButton)
    assert window.extractor is not None
    assert not window.status_label.text().startswith("A model is needed")  # the stale hint went away


def test_offline_download_error_points_at_the_import_button(qtbot: Any, make_window: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.core.errors import ModelNotCachedError
    from vitfeat_desktop.gui import models_panel

    def offline(*_a: Any, **_k: Any) -> str:
        raise ModelNotCachedError("offline mode is on (HF_HUB_OFFLINE/VITFEAT_OFFLINE), so model a/b cannot be "
                                  "downloaded; import it from a folder or .onnx file with: vitfeat model import "
                                  "PATH --id a/b")

    monkeypatch.setattr(models_panel, "download_job", offline)
    window = make_window(None, model=None)
    panel = window.setup_panel
    qtbot.waitUntil(lambda: window.library_stack.currentWidget() is panel, timeout=30_000)
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Could not get the model" in panel.status.text(), timeout=10_000)
    assert "vitfeat model import" not in panel.status.text()
    assert "Import from a folder or file" in panel.status.text()


def test_status_line_counts_moves_plurals_and_readable_reasons(qtbot: Any, make_window: Any,
                                                               photo_folder: Path) -> None:
    (photo_folder / "broken.cr2").write_bytes(b"II*\x00" + b"\x00" * 100)
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    files = sorted(p for p in photo_folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
    for p in files[:2]:
        p.rename(p.with_name("renamed_" + p.name))
    window.activateWindow()
    window.grid.setFocus()
    with qtbot.waitSignal(window.scan_finished, timeout=60_000):
        qtbot.keyClick(window.grid, Qt.Key.Key_F5)
    text = window.status_label.text()
    assert "2 moved or renamed, 0 removed" in text, text
    assert not re.search(r"\b1 (photos|sets|groups|files)\b", text)
    # the skipped file's reason reads as text, not as a bytes repr
    window.skipped_label.linkActivated.emit("#skipped")
    browser = window._skipped_dialog.findChild(QTextBrowser)
    listing = browser.toPlainText()
    assert "broken.cr2" in listing and "b'" not in listing and 'b"' not in listing


def test_sizes_read_like_the_cli() -> None:
    from vitfeat_desktop.commands.model import _fmt_bytes
    from vitfeat_desktop.gui.grid import human_size

    for n in (113_000_000, 107_800_000, 999, 4_321, 2_500_000_000):
        assert human_size(n) == _fmt_bytes(n)
    assert human_size(113_000_000) == "113.0 MB"
