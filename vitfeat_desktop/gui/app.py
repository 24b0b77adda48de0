"""Start the desktop app: parse the command line, create the QApplication, show the main window.

onnxruntime is imported before PySide6 on purpose: on Windows both ship their own copies of some DLLs (the MSVC
runtime, OpenMP), and whichever loads first wins; ONNX Runtime fails to create a session when Qt's older copy
won. ``build_window`` is separate from ``run_app`` so the packaged app's self-test (and the tests) can create the
real window inside an existing offscreen QApplication.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

with contextlib.suppress(ImportError):  # the window still opens (with the model panel) if it is missing
    import onnxruntime  # noqa: F401  (must precede PySide6; see the module docstring)

from PySide6.QtCore import QCoreApplication, QRect, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import QApplication

from vitfeat_desktop import __version__

ORG_NAME = "vitfeat"
APP_NAME = "vitfeat-desktop"
DISPLAY_NAME = "vitfeat — similar photos and duplicates"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitfeat-desktop", description="Browse photos by visual similarity and "
                                     "find duplicates with Vision Transformer features.")
    parser.add_argument("folder", nargs="?", help="a photo folder to open (indexed in the background)")
    parser.add_argument("--model", metavar="ID|PATH", default=None, help="hub id or model folder to use")
    parser.add_argument("--fp32", action="store_true", help="run the full-precision model instead of int8")
    parser.add_argument("--self-test", action="store_true", help="check the installation and exit")
    parser.add_argument("--version", action="version", version=f"vitfeat-desktop {__version__}")
    return parser


def icon_path() -> Path | None:
    """The packaged icon (``resources/icon.png`` in the repo or inside the package), if present."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "resources" / "icon.png", here.parents[2] / "resources" / "icon.png"):
        if candidate.is_file():
            return candidate
    return None


def app_icon() -> QIcon:
    """The app icon; a drawn fallback (a 3×3 grid of tiles, one highlighted) when no icon file ships."""
    path = icon_path()
    if path is not None:
        icon = QIcon(str(path))
        if not icon.isNull():
            return icon
    icon = QIcon()
    for side in (16, 32, 64, 128, 256):
        pm = QPixmap(side, side)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        grad = QLinearGradient(0, 0, side, side)
        grad.setColorAt(0, QColor("#3b6fd8"))
        grad.setColorAt(1, QColor("#6a3bd8"))
        p.setBrush(QBrush(grad))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(QRect(0, 0, side, side), side * 0.2, side * 0.2)
        cell = side / 4.2
        gap = (side - 3 * cell) / 4
        for r in range(3):
            for c in range(3):
                p.setBrush(QColor("#ffd54f") if (r, c) == (0, 2) else QColor(255, 255, 255, 200))
                p.drawRoundedRect(int(gap + c * (cell + gap)), int(gap + r * (cell + gap)), int(cell), int(cell),
                                  cell * 0.2, cell * 0.2)
        p.end()
        icon.addPixmap(pm)
    return icon


def ensure_application(argv: list[str] | None = None) -> QApplication:
    """The running QApplication, or a new one set up with our names, style and icon."""
    # The GUI thread takes the GIL for every Python call Qt makes (paint, data, slots). With the default 5 ms
    # switch interval it can wait 5 ms for each while scan threads run Python, so one repaint of 20 cells could
    # take 100 ms. 1 ms keeps frames short at a negligible cost to the workers (bench_gui.py measures it).
    sys.setswitchinterval(0.001)
    app = QApplication.instance()
    if app is None:
        QCoreApplication.setOrganizationName(ORG_NAME)
        QCoreApplication.setApplicationName(APP_NAME)
        app = QApplication([sys.argv[0] if sys.argv else APP_NAME, *(argv or [])])
        # Fusion draws with the palette Qt takes from the system (light or dark, incl. live switches on
        # Windows 11, macOS and GNOME/KDE), and looks the same on every OS in the screenshots and the docs.
        app.setStyle("Fusion")
    assert isinstance(app, QApplication)
    app.setApplicationDisplayName("vitfeat")
    app.setWindowIcon(app_icon())
    if app.font().pointSizeF() < 9:
        font = QFont(app.font())
        font.setPointSizeF(9.5)
        app.setFont(font)
    return app


def build_window(folder: str | Path | None = None, model: str | Path | None = None, *,
                 quantized: bool = True, restore: bool = True) -> Any:
    """Create (and return, not show) the main window in the existing QApplication."""
    from vitfeat_desktop.gui.main_window import MainWindow

    ensure_application()
    return MainWindow(folder=Path(folder) if folder else None, model=model, quantized=quantized, restore=restore)


def run_app(argv: list[str] | None = None) -> int:
    """``vitfeat-desktop [FOLDER] [--model ID|PATH]``: open the window; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    if args.self_test:
        from vitfeat_desktop.selftest import main as selftest_main

        return int(selftest_main(args_list) or 0)
    if args.folder and not Path(args.folder).expanduser().is_dir():
        print(f"vitfeat-desktop: {args.folder} is not a folder", file=sys.stderr)
        return 2
    app = ensure_application()
    window = build_window(args.folder, args.model, quantized=not args.fp32)
    window.show()
    return int(app.exec())
