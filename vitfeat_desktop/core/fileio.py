"""Opening a user's file without trusting what its name promises.

A photo folder can hold a FIFO named ``p.jpg``, a symlink to ``/dev/zero`` or a file swapped for either
between the scan listing it and a decoder opening it. Reading such a thing blocks forever (a FIFO with no
writer, beyond Ctrl-C's reach on a worker thread) or never ends. Everything that reads a photo's bytes goes
through :func:`open_regular`. No third-party imports: the file actions use it too.

The SHA-256 of a file is computed here, once for everyone (the file actions prove a restored file is the one
they took, the scanner finds exact duplicates and moved files, the model cache and the downloader verify
weights): streamed in 1 MiB blocks, through :func:`open_regular`, cancellable between blocks.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from vitfeat_desktop.core.errors import Cancelled

if TYPE_CHECKING:
    from hashlib import _Hash

HASH_CHUNK = 1 << 20


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


def feed_digest(digest: _Hash, fh: BinaryIO, *, cancel: Callable[[], bool] | None = None,
                chunk: int = HASH_CHUNK) -> int:
    """Feed the rest of ``fh`` into ``digest`` block by block; the number of bytes read.

    For callers that keep the digest going (a resumed download hashes what is on disk, then what arrives).
    ``cancel`` is polled after every block and raises :class:`Cancelled`.
    """
    size = 0
    while block := fh.read(chunk):
        digest.update(block)
        size += len(block)
        if cancel is not None and cancel():
            raise Cancelled()
    return size


def sha256_stream(fh: BinaryIO, *, cancel: Callable[[], bool] | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and size of everything in an open file, read from its start."""
    fh.seek(0)
    digest = hashlib.sha256()
    size = feed_digest(digest, fh, cancel=cancel)
    return digest.hexdigest(), size


def sha256_file(path: str | os.PathLike[str], *, cancel: Callable[[], bool] | None = None) -> str:
    """SHA-256 (hex) of a regular file, streamed (a FIFO or a device is refused, see :func:`open_regular`)."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        feed_digest(digest, fh, cancel=cancel)
    return digest.hexdigest()
