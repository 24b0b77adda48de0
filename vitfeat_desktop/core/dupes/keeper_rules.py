"""The keeper rules that need no pixels: the static order of the catalogue's facts and its reasons in words.

The first guess of every group's keeper, the fall-back when pixels cannot be read (``keeper.py`` decides from
pixel evidence on top of it), and the finder's ranking of files (who may be a keeper at all).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vitfeat_desktop.core.dupes.records import FileInfo, is_raw


def has_camera(info: FileInfo) -> bool:
    return bool(info.camera)


def under(path: str, folders: Sequence[Path]) -> bool:
    if not folders:
        return False
    p = Path(os.path.abspath(path))
    return any(p == f or f in p.parents for f in folders)


def keeper_key(info: FileInfo, references: Sequence[Path] = ()) -> tuple[Any, ...]:
    """Sort key, best keeper first, from the catalogue's facts alone: reference folder, RAW, camera EXIF,
    resolution, larger file, oldest capture date, oldest file date, shorter path (copies add to the name)."""
    return (
        0 if under(info.path, references) else 1,
        0 if is_raw(info) else 1,
        0 if has_camera(info) else 1,
        -info.pixels,
        -info.size,
        info.capture_date or "9999",  # no date sorts last: we cannot claim it is the original
        info.mtime or float("inf"),
        len(info.path),
        info.path,
    )


def keeper_reason(keeper: FileInfo, other: FileInfo, references: Sequence[Path] = ()) -> str:
    """The first static rule that separates ``keeper`` from ``other``, in words for the user."""
    if under(keeper.path, references):
        return "in a reference folder"
    if is_raw(keeper) != is_raw(other):
        return "RAW original"
    if has_camera(keeper) != has_camera(other):
        return f"camera original ({keeper.camera}); the other file has no camera data (an export)"
    if keeper.pixels != other.pixels:
        return f"higher resolution ({keeper.width}x{keeper.height} vs {other.width}x{other.height})"
    if keeper.size != other.size:
        return f"larger file, less compressed ({keeper.size:,} vs {other.size:,} bytes)"
    if (keeper.capture_date or "9999") != (other.capture_date or "9999"):
        return f"older capture date ({keeper.capture_date})"
    if keeper.mtime and other.mtime and keeper.mtime != other.mtime:
        return "older file date (otherwise equal)"
    return "otherwise equal: the shorter name (a copy's name adds to the original's)"
