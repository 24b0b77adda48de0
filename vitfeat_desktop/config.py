"""Where vitfeat keeps its data, and the user's settings.

Every path the app writes to comes from here, so one environment variable (``VITFEAT_HOME``) can move all of
it: tests point it at a temporary folder, portable installs at a USB stick. Nothing is ever written inside
the user's photo folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

APP_NAME = "vitfeat-desktop"
DEFAULT_MODEL_ID = "Xenova/vit-base-patch16-224-in21k"

_settings_lock = threading.Lock()


def data_dir() -> Path:
    """The root of everything we store: ``$VITFEAT_HOME`` or the platform's user data dir."""
    override = os.environ.get("VITFEAT_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Cached models, one folder per hub id (``org--name``)."""
    return data_dir() / "models"


def libraries_dir() -> Path:
    """Per-library catalogues and indexes."""
    return data_dir() / "libraries"


def cache_dir() -> Path:
    """Regenerable data (thumbnails, optimised model graphs): safe to delete at any time."""
    return data_dir() / "cache"


def trash_journal_dir() -> Path:
    """Journals of file actions, so every move can be undone even after a crash."""
    return data_dir() / "journal"


def settings_path() -> Path:
    return data_dir() / "settings.json"


def window_state_path() -> Path:
    """Window geometry and dock layout (Qt's QSettings, INI format), kept beside settings.json.

    Qt's default QSettings location is ``~/.config/<org>/<app>.conf`` (or the registry), outside ``VITFEAT_HOME``;
    the GUI opens this file explicitly instead, so tests, self-tests and portable installs never touch the user's
    real configuration.
    """
    return data_dir() / "window.ini"


def offline() -> bool:
    """True when the user asked us never to touch the network (the hub's and transformers' variables too)."""
    truthy = {"1", "true", "yes", "on"}
    names = ("VITFEAT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").strip().lower() in truthy for name in names)


# -- what "remove" (the Delete key) does on each system ------------------------------------------------------------
SETTING_REMOVAL = "removal"  # "trash" or "quarantine"; unset: default_removal_action()'s choice for this OS


def trash_undo_supported(platform: str | None = None) -> bool:
    """Whether vitfeat's Undo can take a file back out of the system trash on ``platform`` (default: this one).

    Only the freedesktop trash (Linux, BSD) keeps its put-back record in an open format (``.trashinfo``) that
    we read. Windows' Recycle Bin (``$I``/``$R`` files behind the shell's interface) and macOS' Trash (Finder's
    private put-back records) are not implemented: there a trashed photo is restored with Explorer's Restore or
    Finder's Put Back, and vitfeat's Undo says so instead of restoring it.
    """
    return (platform or sys.platform) not in ("win32", "cygwin", "darwin")


def default_removal_action(platform: str | None = None) -> str:
    """The action behind "remove" (Delete key, the main Remove command): the user's ``removal`` setting, else the
    trash where Undo can restore from it and vitfeat's quarantine folder (always undoable) elsewhere."""
    choice = load_settings().get(SETTING_REMOVAL)
    if choice in ("trash", "quarantine"):
        return str(choice)
    return "trash" if trash_undo_supported(platform) else "quarantine"


def load_settings() -> dict[str, Any]:
    """Read the settings file; a missing or corrupt file gives defaults rather than an error at start-up."""
    path = settings_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the settings file atomically, so a crash never leaves it half written."""
    with _settings_lock:
        current = load_settings()
        current.update(updates)
        write_json_atomic(settings_path(), current)
        return current


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file + fsync + rename: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
