"""Opening a user's file without trusting what its name promises.

A photo folder can hold a FIFO named ``p.jpg``, a symlink to ``/dev/zero`` or a file swapped for either
between the scan listing it and a decoder opening it. Reading such a thing blocks forever (a FIFO with no
writer, beyond Ctrl-C's reach on a worker thread) or never ends. Everything that reads a photo's bytes goes
through :func:`open_regular`. No third-party imports: the file actions use it too.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO


class NotAFileError(OSError):
    """The path names a FIFO, a device, a socket or a folder: something that is not a photo file. Opening such
    a thing for reading can block forever (a FIFO with no writer) or never end (``/dev/zero``)."""


def kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words ("a named pipe (FIFO)"), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (links followed), never blocking on the open.

    The open is non-blocking (a FIFO with no writer would otherwise hang the process beyond Ctrl-C's reach) and
    the check is made on the opened descriptor (``fstat``), so a file swapped for a FIFO between listing and
    opening is refused too. Raises :class:`NotAFileError` (an ``OSError``) for anything else.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotAFileError(f"{os.fsdecode(os.fspath(path))} is {kind}, not a photo file")
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
