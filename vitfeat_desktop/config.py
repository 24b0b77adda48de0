"""Where vitfeat keeps its data (the settings themselves are typed in :mod:`vitfeat_desktop.settings`).

Every path the app writes to comes from here, so one environment variable (``VITFEAT_HOME``) can move all of
it: tests point it at a temporary folder, portable installs at a USB stick. Nothing is ever written inside
the user's photo folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

APP_NAME = "vitfeat-desktop"
DEFAULT_MODEL_ID = "Xenova/vit-base-patch16-224-in21k"

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
    """The user's settings (read and written only by :mod:`vitfeat_desktop.settings`)."""
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
