"""One file, several names: symbolic links and hard links are never a duplicate pair.

The scanner already lists a second name of a file as skipped (see ``indexer._one_name_per_file``); this is
the same rule for the places that take file lists from elsewhere (a catalogue written before that rule, a
link made since the last scan), and the check the file actions make before moving anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

_R = TypeVar("_R")


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` names (links followed), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return int(st.st_dev), int(st.st_ino)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` are two names of one file (a symlink and its target, or two hard links)."""
    ia = file_identity(a)
    return ia is not None and ia == file_identity(b)


def one_name_per_file(records: Sequence[_R], path_of: str = "path") -> list[_R]:
    """``records`` without second names of a file already present: a real file wins over a symlink to it, then
    the first in order. Records whose file cannot be stat'ed are kept (the caller decides about them)."""
    first: dict[tuple[int, int], int] = {}
    keep: list[_R | None] = list(records)
    for n, record in enumerate(records):
        path = str(getattr(record, path_of))
        identity = file_identity(path)
        if identity is None or identity[1] == 0:  # no inode numbers on this file system: nothing to compare
            continue
        if identity not in first:
            first[identity] = n
            continue
        held = first[identity]
        if os.path.islink(str(getattr(records[held], path_of))) and not os.path.islink(path):
            keep[held], first[identity] = None, n  # the real file replaces the link to it
        else:
            keep[n] = None
    return [r for r in keep if r is not None]
