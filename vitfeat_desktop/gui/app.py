"""Start the desktop app: create the QApplication, build and show the main window, run the event loop.

Bootstrap only, and the bottom of the start-up chain: ``vitfeat_desktop.__main__`` parses the command line and
dispatches (self-test, CLI, app) before any Qt import, then calls :func:`run_app` with the parsed options; the
self-test imports :func:`build_window` from here. Nothing here imports either of them back.

onnxruntime is imported before PySide6 on purpose: on Windows both ship their own copies of some DLLs (the MSVC
runtime, OpenMP), and whichever loads first wins; ONNX Runtime fails to create a session when Qt's older copy
won. ``build_window`` is separate from ``run_app`` so the packaged app's self-test (and the tests) can create the
real window inside an existing offscreen QApplication.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

with contextlib.suppress(ImportError):  # the window still opens (with the model panel) if it is missing
    import onnxruntime  # noqa: F401  (must precede PySide6; see the module docstring)

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QRect, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFileOpenEvent, QFont, QIcon, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import QApplication

from vitfeat_desktop.gui.main_window import MainWindow

ORG_NAME = "vitfeat"
APP_NAME = "vitfeat-desktop"
DISPLAY_NAME = "vitfeat — similar photos and duplicates"


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


def freeze_startup_objects() -> None:
    """Move everything allocated so far (modules, Qt wrappers, ONNX Runtime's Python side) out of the cyclic GC.

    A full (generation 2) collection walks every tracked object and holds the GIL meanwhile, whichever thread
    triggers it; bench_gui.py measured 20-25 ms ones during indexing, which the GUI thread spends waiting. The
    start-up objects live as long as the app, so scanning them again is wasted work: ``gc.freeze()`` puts them in
    the permanent generation and later full collections only walk what the session itself allocated.
    """
    import gc

    gc.freeze()


def build_window(folder: str | Path | None = None, model: str | Path | None = None, *,
                 quantized: bool = True, restore: bool = True) -> MainWindow:
    """Create (and return, not show) the main window in the existing QApplication.

    ``folder`` may also be an image file: its folder opens and the file becomes the similarity query.
    """
    ensure_application()
    window = MainWindow(folder=Path(folder) if folder else None, model=model, quantized=quantized, restore=restore)
    window.setWindowIcon(app_icon())
    return window


class FileOpenFilter(QObject):
    """Routes the OS's "open this file" requests (``QEvent.FileOpen``) to :meth:`MainWindow.open_path`.

    macOS does not pass "Open with" / a drop on the Dock icon as a command-line argument: it sends an Apple Event
    that Qt turns into a ``QFileOpenEvent`` on the application object. Files sent before the window exists (at
    launch) are kept and delivered when :meth:`attach` is called.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window: MainWindow | None = None
        self.pending: list[Path] = []

    def attach(self, window: MainWindow) -> None:
        self.window = window
        pending, self.pending = self.pending, []
        for path in pending:
            window.open_path(path)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            name = event.file() or event.url().toLocalFile()
            if name:
                if self.window is not None:
                    self.window.open_path(Path(name))
                else:
                    self.pending.append(Path(name))
                return True
        return super().eventFilter(watched, event)


def install_file_open_filter(app: QApplication) -> FileOpenFilter:
    """The application's :class:`FileOpenFilter` (one per QApplication)."""
    existing = app.findChild(FileOpenFilter)
    if isinstance(existing, FileOpenFilter):
        return existing
    filt = FileOpenFilter(app)
    app.installEventFilter(filt)
    return filt


def seconds_since_process_start(started_at: float) -> float:
    """Wall-clock seconds since the OS started this process (interpreter start-up included).

    Linux reads ``/proc``; elsewhere psutil when installed; otherwise ``started_at`` (the time
    ``vitfeat_desktop.__main__`` was imported, which misses only the interpreter's own start-up).
    """
    now = time.time()
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); the two before the split are pid and comm
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return max(0.0, now - float(psutil.Process().create_time()))
    except Exception:  # not installed, or no permission
        return max(0.0, now - started_at)


def _quit_when_shown(app: QApplication, window: MainWindow, started_at: float) -> None:
    """``VITFEAT_QUIT_AFTER_SHOW=1``: print the seconds from process start to the window's first frame, quit.

    The timer fires on the event loop's first pass after ``show()``, i.e. once the window has been laid out and
    its first expose/paint events were handled, which is what a user waits for.
    """
    def report() -> None:
        app.processEvents()
        print(f"vitfeat-desktop: window shown {seconds_since_process_start(started_at):.3f} s after process start",
              flush=True)
        window.close()
        app.quit()

    QTimer.singleShot(0, report)


def run_app(path: Path | None, model: str | None, *, quantized: bool, started_at: float) -> int:
    """Open the window on ``path`` (a folder or an image file, checked by the caller) and run the event loop;
    returns the exit code. ``started_at``: the start-up timer's fallback for "process start"."""
    app = ensure_application()
    file_open = install_file_open_filter(app)
    window = build_window(path, model, quantized=quantized)
    freeze_startup_objects()
    file_open.attach(window)
    window.show()
    if os.environ.get("VITFEAT_QUIT_AFTER_SHOW", "").strip() not in ("", "0"):
        _quit_when_shown(app, window, started_at)
    return int(app.exec())
