"""The self-test's GUI part: open the main window offscreen (the ``window`` check), and ``--startup``, which
opens it on the real platform and times the cold start.

The only self-test module that imports the GUI (``vitfeat_desktop.gui.app``: ``build_window``,
``ensure_application``, ``icon_path``), and only inside these functions, after the other checks ran: the
runner imports this module at start-up, before onnxruntime is loaded, and Qt must come after it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from vitfeat_desktop.selftest.context import CheckFailed, Context

if TYPE_CHECKING:
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QWidget


def check_window(ctx: Context) -> str:
    from PySide6.QtCore import qInstallMessageHandler

    from vitfeat_desktop.gui.app import build_window, ensure_application

    if ctx.qt_app is None:  # run without the qt check (--only ...)
        ctx.qt_app = ensure_application()
    app = ctx.qt_app

    # Qt's own chatter (e.g. the offscreen platform's "does not support propagateSizeHints()") would break the
    # one-line-per-check output; keep it with the app's log warnings instead.
    previous = qInstallMessageHandler(lambda _kind, _context, message: ctx.warnings.append(str(message)))
    try:
        start = time.perf_counter()
        folder = ctx.photos_dir if ctx.photos_dir.is_dir() else None
        model = str(ctx.model_folder) if ctx.model_folder else None
        window = build_window(folder=folder, model=model)
        window.show()
        shown = _wait_exposed(app, window)
        elapsed = time.perf_counter() - start
        title = window.windowTitle()
        window.close()
        window.deleteLater()
        _process_events(app, 0.2)
    finally:
        qInstallMessageHandler(previous)
    if not shown:
        raise CheckFailed("the main window was not shown within 10 s")
    return f"main window {title!r} shown in {elapsed:.2f} s and closed; icon: {_icon_source()}"


def _icon_source() -> str:
    """Which app icon the window got: the packaged ``resources/icon.png`` or the GUI's drawn fallback."""
    from vitfeat_desktop.gui.app import icon_path

    path = icon_path()
    return f"{path.parent.name}/{path.name}" if path is not None else "drawn fallback (resources/icon.png missing)"


def _process_events(app: QCoreApplication, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def _wait_exposed(app: QCoreApplication, window: QWidget, timeout: float = 10.0) -> bool:
    """Pump events until the window is visible and exposed (the offscreen platform exposes it at once)."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        handle = window.windowHandle()
        if window.isVisible() and handle is not None and handle.isExposed():
            return True
        time.sleep(0.005)
    return False


def startup_probe(out: TextIO | None = None) -> int:
    """Create the app and its main window the way ``run_app`` does, quit as soon as it is shown.

    Why a separate mode: the cold start users feel (bundle bootloader, Python start-up, imports, first paint)
    is measured from outside by timing this process (``packaging/bench_startup.py``); the printed in-process
    figures split it up. The window is built without restoring the last library, so the figure is the same
    on every machine.
    """
    out = out or sys.stdout
    # Without a cached model the window starts the first-run download; that is not start-up time, and a probe
    # must not reach for the network.
    os.environ.setdefault("VITFEAT_OFFLINE", "1")
    t0 = time.perf_counter()
    from vitfeat_desktop.gui.app import build_window, ensure_application

    t_import = time.perf_counter()
    app = ensure_application()
    window = build_window(restore=False)
    window.show()
    shown = _wait_exposed(app, window)
    t_shown = time.perf_counter()
    since_start = _seconds_since_process_start()
    window.close()
    _process_events(app, 0.1)
    if not shown:
        print("FAIL startup: the main window was not shown within 10 s", file=out)
        return 1
    total = f"{since_start:.2f} s after process start; " if since_start is not None else ""
    print(f"ok   startup: window shown {total}imports {t_import - t0:.2f} s, app+window {t_shown - t_import:.2f} s",
          file=out, flush=True)
    return 0


def _seconds_since_process_start() -> float | None:
    """Wall time since this process was created (Linux /proc), None where the OS does not tell us cheaply."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
