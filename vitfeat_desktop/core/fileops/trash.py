"""The system trash: sending a file there (send2trash, whatever the OS) and, on freedesktop systems (Linux, BSD),
finding it again by its ``.trashinfo`` record, so undo can put it back itself. Elsewhere (the macOS Trash, the
Windows Recycle Bin) a trashed file is not located and undo points the user at the file manager's "Restore"."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from vitfeat_desktop.core.fileio import sha256_file
from vitfeat_desktop.core.fileops.disk import mount_point, resolve


def trash_dirs() -> list[Path]:
    """Freedesktop trash folders send2trash may have used (home trash, then per-volume ones)."""
    dirs: list[Path] = []
    try:
        from send2trash import plat_other

        dirs.append(Path(plat_other.HOMETRASH))
    except Exception:
        xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        dirs.append(Path(xdg) / "Trash")
    return dirs


def trash_candidates(src: Path) -> list[Path]:
    """The trash folders a file from ``src`` can have gone to: the home trash and the volume's own."""
    mount = mount_point(src)
    uid = getattr(os, "getuid", lambda: 0)()
    return [*trash_dirs(), mount / ".Trash" / str(uid), mount / f".Trash-{uid}"]


def find_trashed(src: Path, sha: str, since: float) -> tuple[Path, Path] | None:
    """Locate a file we just trashed (freedesktop trash): its ``files/`` path and its ``.trashinfo``."""
    mount = mount_point(src)
    candidates = trash_candidates(src)
    found: list[tuple[float, Path, Path]] = []
    for trash in candidates:
        info_dir = trash / "info"
        if not info_dir.is_dir():
            continue
        for info in info_dir.glob("*.trashinfo"):
            try:
                if info.stat().st_mtime < since - 2:
                    continue
                text = info.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            original = next((unquote(line[5:]) for line in text.splitlines() if line.startswith("Path=")), None)
            if original is None:
                continue
            original_path = Path(original) if os.path.isabs(original) else mount / original
            if resolve(original_path) != resolve(src):
                continue
            stored = trash / "files" / info.name[: -len(".trashinfo")]
            if stored.is_file() and sha256_file(stored) == sha:
                found.append((info.stat().st_mtime, stored, info))
    if not found:
        return None
    found.sort()
    return found[-1][1], found[-1][2]


def send_to_trash(path: Path) -> None:
    """The platform's trash, via send2trash (imported lazily: it is only needed when the user acts)."""
    from send2trash import send2trash

    send2trash(str(path))


def trash_info_names(info: Path, src: Path) -> bool:
    """True when ``info`` is a ``.trashinfo`` whose ``Path=`` is ``src`` (so removing it removes nothing else)."""
    if info.suffix != ".trashinfo" or info.parent.name != "info" or info.is_symlink():
        return False
    try:
        text = info.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    original = next((unquote(line[5:]) for line in text.splitlines() if line.startswith("Path=")), None)
    if original is None:
        return False
    original_path = Path(original) if os.path.isabs(original) else mount_point(src) / original
    return resolve(original_path) == resolve(src)
