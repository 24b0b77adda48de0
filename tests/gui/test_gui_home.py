"""All state stays under the data folder: the self-test and the window, run with a throw-away HOME, write nothing
there (no ~/.config QSettings, no ~/.cache/Microsoft from ONNX Runtime), and the window's geometry is kept under
VITFEAT_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

ROOT = Path(__file__).resolve().parents[2]

WINDOW_SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from vitfeat_desktop.gui.app import build_window, ensure_application
app = ensure_application()
window = build_window(folder=sys.argv[1], model=sys.argv[2])
window.show()
window.resize(1000, 700)
def done():
    window.close()
    app.quit()
window.scan_finished.connect(lambda _r: QTimer.singleShot(200, done))
QTimer.singleShot(60_000, done)
app.exec()
"""


def run_isolated(args: list[str], home: Path, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ORT_"))}
    env.update(HOME=str(home), VITFEAT_HOME=str(data), QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               VITFEAT_OFFLINE="1")
    return subprocess.run([sys.executable, *args], env=env, cwd=str(ROOT), capture_output=True, text=True,
                          timeout=300)


def written_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_self_test_and_window_write_nothing_in_home(tmp_path: Path, tiny_vit: Path, photo_folder: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    data.mkdir()
    selftest = run_isolated(["-m", "vitfeat_desktop", "--self-test", "--only", "python,onnxruntime,qt,window"],
                            home, data)
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    window = run_isolated(["-c", WINDOW_SCRIPT, str(photo_folder), str(tiny_vit)], home, data)
    assert window.returncode == 0, window.stdout + window.stderr
    assert written_under(home) == []
    state = written_under(data)
    assert "window.ini" in state  # geometry and docks, beside settings.json
    assert "settings.json" in state
