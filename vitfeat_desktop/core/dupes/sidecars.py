"""What duplicate finding keeps per library beside the catalogue: the user's "not a duplicate" marks, the user's
keeper picks, and the verified-pairs cache.

All three live in the library's own data folder (``<library data>/<name>.json``, next to its catalogue, keyed
like it, never next to the photos), decided by :func:`sidecar_path` alone. Earlier versions kept them in the data
dir's ``dupes/`` folder under a key of their own (a hash of the folder's absolute path, not the library's); such a
file is moved to the new place the first time it is asked for, so no user's marks or picks are lost. Writes are
atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vitfeat_desktop import config
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.library.paths import sidecar

MARKS = "not-duplicates"
KEEPERS = "keepers"
VERIFIED = "verified-pairs"
_LEGACY_STEMS = {MARKS: "not-duplicates", KEEPERS: "keepers", VERIFIED: "verified"}  # <stem>-<key>.json


def sidecar_path(library_folder: str | os.PathLike[str], name: str) -> Path:
    """Where the sidecar ``name`` (:data:`MARKS`, :data:`KEEPERS`, :data:`VERIFIED`) of the library rooted at
    ``library_folder`` lives: the one place that decides it. A file left at the old place is moved here first;
    if it cannot be moved (a read-only data dir), the old place is used, so it is still read."""
    path = sidecar(library_folder, f"{name}.json")
    if path.exists():
        return path
    old = legacy_sidecar_path(library_folder, name)
    if not old.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.migrating")
        shutil.copy2(old, staging)
        os.replace(staging, path)
    except OSError:
        return old
    with contextlib.suppress(OSError):  # the copy is in place and wins from now on; a stale one is harmless
        old.unlink()
    return path


def legacy_sidecar_path(library_folder: str | os.PathLike[str], name: str) -> Path:
    """Where versions before the per-library data folder kept the sidecar (read once, to move it)."""
    key = hashlib.sha256(os.fsencode(os.path.abspath(library_folder))).hexdigest()[:16]
    return config.data_dir() / "dupes" / f"{_LEGACY_STEMS[name]}-{key}.json"


def _read_json(path: Path) -> dict[str, Any]:
    """The stored object, or an empty one when the file is missing or damaged (a sidecar is never fatal)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------------------------------------------
# "not a duplicate" marks


class NotDuplicateMarks:
    """Pairs the user said are not duplicates; keyed by content hash so the mark survives renames and moves.

    Stored in the library's data folder (never next to the photos), written atomically.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0  # bumped on every change, so a finder holding this object regroups with it
        self._pairs: set[tuple[str, str]] = set()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._pairs = {(str(min(p)), str(max(p))) for p in data.get("pairs", []) if len(p) == 2}
        except (OSError, ValueError, TypeError):
            self._pairs = set()

    @classmethod
    def for_library(cls, library_folder: str | os.PathLike[str]) -> NotDuplicateMarks:
        return cls(sidecar_path(library_folder, MARKS))

    @staticmethod
    def _key(info: FileInfo) -> str:
        return info.content_hash or f"path:{os.path.abspath(info.path)}"

    def _pair(self, a: FileInfo, b: FileInfo) -> tuple[str, str]:
        x, y = self._key(a), self._key(b)
        return (x, y) if x <= y else (y, x)

    def mark(self, a: FileInfo, b: FileInfo) -> None:
        self._pairs.add(self._pair(a, b))
        self._save()

    def unmark(self, a: FileInfo, b: FileInfo) -> None:
        self._pairs.discard(self._pair(a, b))
        self._save()

    def is_marked(self, a: FileInfo, b: FileInfo) -> bool:
        return self._pair(a, b) in self._pairs

    def __len__(self) -> int:
        return len(self._pairs)

    def pairs(self) -> list[tuple[str, str]]:
        """The stored pairs of keys (content hashes, or ``path:...``), sorted: what the GUI lists for unmarking."""
        return sorted(self._pairs)

    def _save(self) -> None:
        self.version += 1
        config.write_json_atomic(self.path, {"pairs": sorted(list(p) for p in self._pairs)})


# --------------------------------------------------------------------------------------------------------------
# the user's keeper picks


class KeeperChoices:
    """The keeper the user picked per group, by content hash (so the choice survives rescans and moves).

    Stored in the library's data folder next to the "not a duplicate" marks, written atomically. Choosing a
    file drops any earlier choice among the same group, so the latest pick wins.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0
        self._chosen: set[str] = set()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._chosen = {str(k) for k in data.get("keepers", [])}
        except (OSError, ValueError, TypeError, AttributeError):
            self._chosen = set()

    @classmethod
    def for_library(cls, library_folder: str | os.PathLike[str]) -> KeeperChoices:
        return cls(sidecar_path(library_folder, KEEPERS))

    @staticmethod
    def _keys(info: FileInfo) -> tuple[str, ...]:
        path = f"path:{os.path.abspath(info.path)}"
        return (info.content_hash, path) if info.content_hash else (path,)

    def choose(self, keeper: FileInfo, group: Sequence[FileInfo] = ()) -> None:
        """Make ``keeper`` the keeper of its group; ``group``'s other members lose any earlier choice. Among
        exact copies (one content hash) the choice is kept by path."""
        for other in group:
            self._chosen.difference_update(self._keys(other))
        twin = any(o.content_hash and o.content_hash == keeper.content_hash and o.path != keeper.path
                   for o in group)
        self._chosen.add(self._keys(keeper)[-1 if twin else 0])
        self._save()

    def clear(self, group: Sequence[FileInfo]) -> None:
        """Back to the automatic keeper for ``group``."""
        for info in group:
            self._chosen.difference_update(self._keys(info))
        self._save()

    def is_chosen(self, info: FileInfo) -> bool:
        return any(k in self._chosen for k in self._keys(info))

    def __len__(self) -> int:
        return len(self._chosen)

    def _save(self) -> None:
        self.version += 1
        config.write_json_atomic(self.path, {"keepers": sorted(self._chosen)})


# --------------------------------------------------------------------------------------------------------------
# the verified-pairs cache


class VerifiedPairs:
    """The stored verification results of one library, by the two files' content hashes: pixel-correlation
    scores and geometric checks (as plain dicts; ``verify.CachedVerifier`` turns them back into evidence).
    A file from another :data:`VERSION` is ignored, so a change of the measurement never reuses old scores."""

    VERSION = 4  # 2: band-pass alignment scores (verify.py); 3: minimum template size; 4: geometric checks

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scores: dict[str, float] = {}
        self.checks: dict[str, dict[str, Any]] = {}
        self.dirty = False
        data = _read_json(path)
        if data.get("version") == self.VERSION:
            try:
                self.scores = {str(k): float(v) for k, v in data.get("scores", {}).items()}
                self.checks = {str(k): dict(v) for k, v in data.get("checks", {}).items()}
            except (ValueError, TypeError, AttributeError):
                self.scores, self.checks = {}, {}

    @classmethod
    def for_library(cls, library_folder: str | os.PathLike[str]) -> VerifiedPairs:
        return cls(sidecar_path(library_folder, VERIFIED))

    def save(self) -> None:
        if self.dirty:
            config.write_json_atomic(self.path, {"version": self.VERSION, "scores": self.scores,
                                                 "checks": self.checks})
            self.dirty = False
