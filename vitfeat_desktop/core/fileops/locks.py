"""Cross-process locks (``flock``) around file actions: one on the journal a batch or an undo is writing, so
recovery in another process never settles steps still in progress, and one per library, so two batches never
move files of the same library at once. POSIX only; elsewhere the actions rely on one vitfeat acting at a time."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from vitfeat_desktop import config
from vitfeat_desktop.core.fileops.disk import resolve
from vitfeat_desktop.core.fileops.errors import JournalError
from vitfeat_desktop.core.progress import CancelFn, check_cancel


class ActiveLock:
    """An exclusive lock on ``<journal>.lock`` held while a batch or an undo runs, so that :func:`recover` in
    another process (the CLI while the GUI is moving files) never "settles" steps that are still in progress.
    POSIX only (fcntl); elsewhere recovery relies on being run when nothing else acts."""

    def __init__(self, journal_path: Path) -> None:
        self.path = journal_path.with_suffix(".lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> ActiveLock:
        if not self.acquire():
            raise JournalError(f"journal {self.path.stem} is in use by another vitfeat process; try again later")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


LIBRARY_LOCK_WAIT_S = 30.0


class LibraryLock:
    """Exclusive, cross-process locks (``flock``) on the libraries a batch takes files from, taken in a fixed
    order; waits up to :data:`LIBRARY_LOCK_WAIT_S` for another batch to finish. POSIX only, like
    :class:`ActiveLock`."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]], cancel: CancelFn | None = None) -> None:
        names = sorted({hashlib.sha256(os.fsencode(str(resolve(Path(r))))).hexdigest()[:20] for r in roots})
        folder = config.data_dir() / "locks"
        self.paths = [folder / f"library-{n}.lock" for n in names]
        self.cancel = cancel
        self._fds: list[int] = []

    def __enter__(self) -> LibraryLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        deadline = time.monotonic() + LIBRARY_LOCK_WAIT_S
        try:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                self._fds.append(fd)
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError:
                        check_cancel(self.cancel)
                        if time.monotonic() > deadline:
                            raise JournalError("another vitfeat is moving files of this library; nothing was "
                                               "moved; try again when it has finished") from None
                        time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []
