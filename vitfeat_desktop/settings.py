"""The user's settings: one typed record with its defaults, and the only place their keys are spelled.

Stored in ``settings.json`` (see :func:`vitfeat_desktop.config.settings_path`) as a flat JSON object whose keys
are the ones earlier versions wrote (``gui_libraries``, ``threads``, ...), so an existing user's file loads the
same. A missing file, a corrupt file or a value of the wrong type gives the default rather than an error at
start-up; keys this version does not know are kept when the file is written back.

Qt-free on purpose: the core (reference folders, the default model) and the CLI read the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from vitfeat_desktop import config

_lock = threading.Lock()


def _key(name: str) -> dict[str, str]:
    """Field metadata: the key the field has in settings.json (when it differs from the field's name)."""
    return {"key": name}


@dataclass
class Settings:
    """Every setting with its default. Field names are what the code reads; ``key`` metadata is the file's key."""

    model: str | None = None  #: hub id or model folder; None: ``config.DEFAULT_MODEL_ID``
    model_fp32: bool = False  #: run the full-precision model instead of int8
    threads: int = 0  #: model (intra-op) threads; 0: all cores
    dupes_sensitivity: float = 0.5  #: the Duplicates view's slider, 0 (strict) .. 1 (loose)
    removal: str | None = None  #: "trash" or "quarantine"; None: :func:`default_removal_action`'s choice
    confirm_trash: bool = True  #: ask before photos go to the trash or the quarantine
    reference_folders: list[str] = field(default_factory=list)  #: never moved; their copies are duplicates
    libraries: list[str] = field(default_factory=list, metadata=_key("gui_libraries"))  #: folders opened
    active_library: str | None = field(default=None, metadata=_key("gui_active_library"))  #: opens at start
    thumb_size: int = field(default=160, metadata=_key("gui_thumb_size"))  #: grid thumbnail side in pixels

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """The typed settings of a parsed settings.json; a value of the wrong type keeps the field's default."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(key_of(f.name))
            if f.name == "model" and not (isinstance(value, str) and value.strip()):
                value = data.get("model_id")  # the key of the first releases
            checked = _checked(f.name, value)
            if checked is not None:
                values[f.name] = checked
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings.json object (file keys, JSON types)."""
        return {key_of(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


def key_of(name: str) -> str:
    """The settings.json key of field ``name``."""
    for f in dataclasses.fields(Settings):
        if f.name == name:
            return str(f.metadata.get("key", name))
    raise KeyError(f"no setting named {name!r}")


def _checked(name: str, value: Any) -> Any:
    """``value`` when it has the type field ``name`` needs (normalised), else None (: the default)."""
    if value is None:
        return None
    if name in ("model", "active_library"):
        return value.strip() if isinstance(value, str) and value.strip() else None
    if name == "removal":
        return value if value in ("trash", "quarantine") else None
    if name in ("model_fp32", "confirm_trash"):
        return value if isinstance(value, bool) else None
    if name in ("threads", "thumb_size"):
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    if name == "dupes_sensitivity":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None
    if name in ("reference_folders", "libraries"):
        return [p for p in value if isinstance(p, str)] if isinstance(value, list) else None
    raise KeyError(f"no setting named {name!r}")


def read_file() -> dict[str, Any]:
    """settings.json as stored (every key, also those this version does not know); {} when missing or corrupt."""
    try:
        data = json.loads(config.settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load() -> Settings:
    """The user's settings (defaults for whatever the file lacks)."""
    return Settings.from_dict(read_file())


def update(**changes: Any) -> Settings:
    """Set the named fields and write them atomically, keeping every other key of the file; returns the result.

    Only the changed keys are written over what the file holds now, so two parts of the app saving different
    settings never undo each other.
    """
    keyed = {key_of(name): value for name, value in changes.items()}
    with _lock:
        current = read_file()
        current.update(keyed)
        config.write_json_atomic(config.settings_path(), current)
        return Settings.from_dict(current)


# -- what "remove" (the Delete key) does on each system ------------------------------------------------------------
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
    choice = load().removal
    if choice is not None:
        return choice
    return "trash" if trash_undo_supported(platform) else "quarantine"
