"""The window's geometry and dock layout, kept in an INI file under the data folder.

Qt's default QSettings location is outside ``VITFEAT_HOME`` (``~/.config`` or the registry); opening this file
explicitly keeps tests, self-tests and portable installs away from the user's real configuration.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow

from vitfeat_desktop import config


def window_settings() -> QSettings:
    return QSettings(str(config.window_state_path()), QSettings.Format.IniFormat)


def restore(window: QMainWindow) -> None:
    """The last session's geometry and docks; a first start gets 90 % of the screen, at most 1400 × 900."""
    qs = window_settings()
    geom, state = qs.value("window/geometry"), qs.value("window/state")
    if isinstance(geom, QByteArray) and not geom.isEmpty():
        window.restoreGeometry(geom)
    else:
        screen = QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen else None
        window.resize(min(1400, int(avail.width() * 0.9)) if avail else 1280,
                      min(900, int(avail.height() * 0.9)) if avail else 800)
    if isinstance(state, QByteArray) and not state.isEmpty():
        window.restoreState(state)


def save(window: QMainWindow) -> None:
    qs = window_settings()
    qs.setValue("window/geometry", window.saveGeometry())
    qs.setValue("window/state", window.saveState())
    qs.sync()
