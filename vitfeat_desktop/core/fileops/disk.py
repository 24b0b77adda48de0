"""Path and disk helpers every file action shares: durable renames, and the path comparisons the reference-folder
and journal checks rely on (symlinks resolved)."""

from __future__ import annotations

import os
from pathlib import Path

CHUNK = 1 << 20


def fsync_dir(folder: Path) -> None:
    """Make a rename/link durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def resolve(path: Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(path)))


def is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def real_path(path: Path) -> Path:
    """``path`` with its folder's symlinks and ``..`` resolved (the name itself is kept, links included)."""
    return Path(os.path.realpath(path.parent)) / path.name


def inside(path: Path, folder: Path) -> bool:
    return is_within(real_path(path), Path(os.path.realpath(folder)))


def mount_point(path: Path) -> Path:
    probe = Path(os.path.realpath(path))
    while not os.path.ismount(probe) and probe.parent != probe:
        probe = probe.parent
    return probe
