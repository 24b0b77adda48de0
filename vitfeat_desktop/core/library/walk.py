"""List a photo folder for a scan: every image file below it with its stat, or why it cannot be read.

Kept apart from the scanner because it touches only the file system (no catalogue, no model): it decides
which names are one file (links), which folders are followed (symlinked ones, each once) and which are never
looked into (hidden ones, the app's own data folder).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitfeat_desktop import config
from vitfeat_desktop.core.fileio import kind_of
from vitfeat_desktop.core.images import is_image_path
from vitfeat_desktop.core.library.catalog import encode_path
from vitfeat_desktop.core.pixels import failure_reason
from vitfeat_desktop.core.progress import CancelFn, check_cancel


@dataclass(frozen=True)
class Entry:
    """A walked file: its stat, or why it could not be stat'ed."""

    path: str
    size: int
    mtime_ns: int
    error: str | None = None
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file itself, links followed
    symlink: bool = False

    @property
    def key(self) -> bytes:
        return encode_path(self.path)


# The start of the reason given to a second name of a file already listed (a symlink to it, or a hard link).
SAME_FILE_REASON = "the same file as "


def _one_name_per_file(entries: list[Entry]) -> list[Entry]:
    """Give every file one entry: a symlink and its target, or two hard links, are one file with two names.

    Indexing both made them an "exact duplicate" pair: trashing the target while the link was kept left a
    dangling link, and trashing one hard link frees nothing and removes a name the user made. The name that
    stays is a real file rather than a symlink, then the first by path; the others are listed as skipped with
    the reason (they come back by themselves on the next scan if that name goes).
    """
    by_file: dict[tuple[int, int], list[int]] = {}
    for n, entry in enumerate(entries):
        # st_ino 0: a file system without inode numbers (some FAT/network mounts); nothing to compare there.
        if entry.identity is not None and entry.identity[1] != 0 and entry.error is None:
            by_file.setdefault(entry.identity, []).append(n)
    out = list(entries)
    for positions in by_file.values():
        if len(positions) < 2:
            continue
        names = sorted(positions, key=lambda n: (entries[n].symlink, entries[n].path))
        main = entries[names[0]]
        for n in names[1:]:
            entry = entries[n]
            kind = "a symbolic link to it" if entry.symlink else "a hard link of it"
            out[n] = Entry(entry.path, -1, -1, f"{SAME_FILE_REASON}{main.path} ({kind}); listed once")
    return out


def walk(root: Path, *, cancel: CancelFn | None = None,
         on_entry: Callable[[int], None] | None = None) -> tuple[list[Entry], list[dict[str, str]]]:
    """Every image file below ``root`` (by extension), skipping hidden folders/files and the app's data.

    Symlinked folders are followed (people link an external drive's folder into their photos), each folder at
    most once by its device and inode, which is also what stops a link loop. Symlinked files are followed; a
    broken or looping link is returned with an error. Folders that cannot be listed are returned as skipped.
    """
    entries: list[Entry] = []
    skipped: list[dict[str, str]] = []
    try:
        data_root = config.data_dir().resolve()
    except OSError:
        data_root = None
    visited: set[tuple[int, int]] = set()
    with contextlib.suppress(OSError):
        st = os.stat(root)
        visited.add((st.st_dev, st.st_ino))
    stack = [str(root)]
    while stack:
        check_cancel(cancel)
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError as exc:
            skipped.append({"path": folder, "reason": f"folder cannot be read: {failure_reason(exc)}"})
            continue
        children.sort(key=lambda e: e.name)
        subdirs = []
        for child in children:
            name = child.name
            if name.startswith("."):
                continue
            try:
                is_dir = child.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if data_root is not None and _same_path(child.path, data_root):
                    continue
                try:
                    st = child.stat(follow_symlinks=True)
                except OSError as exc:
                    skipped.append({"path": child.path, "reason": f"folder cannot be read: {_stat_reason(child, exc)}"})
                    continue
                identity = (st.st_dev, st.st_ino)
                if identity in visited:
                    continue  # a link back up the tree, or a second way into a folder already listed
                visited.add(identity)
                subdirs.append(child.path)
                continue
            if not is_image_path(name):
                continue
            try:
                st = child.stat(follow_symlinks=True)
            except OSError as exc:
                entries.append(Entry(child.path, -1, -1, _stat_reason(child, exc)))
                continue
            kind = kind_of(st.st_mode)
            if kind is not None:  # a FIFO, a (link to a) device, a socket: listed, never opened
                entries.append(Entry(child.path, -1, -1, f"is {kind}, not a photo file"))
                continue
            try:
                symlink = child.is_symlink()
            except OSError:
                symlink = False
            entries.append(Entry(child.path, int(st.st_size), int(st.st_mtime_ns),
                                 identity=(int(st.st_dev), int(st.st_ino)), symlink=symlink))
        if on_entry is not None:
            on_entry(len(entries))
        stack.extend(reversed(subdirs))
    return _one_name_per_file(entries), skipped


def _same_path(path: str, other: Path) -> bool:
    try:
        return Path(path).resolve() == other
    except OSError:
        return False


def _stat_reason(child: os.DirEntry[str], exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENAMETOOLONG:
        return "its path is longer than the system allows; move it higher up to index it"
    if isinstance(exc, FileNotFoundError):
        try:
            if child.is_symlink():
                return "broken symbolic link (its target does not exist)"
        except OSError:
            pass
        return "file not found (deleted while scanning?)"
    return failure_reason(exc)
