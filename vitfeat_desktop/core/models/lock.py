"""The per-model download lock: two processes never write the same model folder at once.

An OS file lock (``flock`` / ``msvcrt.locking``), not a marker file, because the OS drops it when a process dies:
a crashed download can never leave a stale lock that blocks the next one. The downloader holds it for the whole
transfer; adopting a Hugging Face cache snapshot, importing and removing a model only try it, and step back (or
refuse) while a download runs. Where the lock file lives is :func:`~vitfeat_desktop.core.models.layout.lock_path`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from vitfeat_desktop.core.errors import DownloadError
from vitfeat_desktop.core.progress import CancelFn, check_cancel

log = logging.getLogger(__name__)


class ModelLock:
    """An OS file lock (``flock``/``msvcrt.locking``) so two processes never download the same model at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: TextIO | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows CI only
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if sys.platform == "win32" or exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                fh.close()
                return False
            # The file system cannot lock (some network shares): go on unlocked rather than wait forever.
            log.warning("cannot lock %s (%s); continuing without a download lock", self.path, exc)
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
        self._fh = fh
        return True

    def acquire(
        self,
        *,
        timeout: float | None = None,
        cancel: CancelFn | None = None,
        on_wait: Callable[[], object] | None = None,
    ) -> None:
        """Wait for the lock (checking ``cancel``); ``timeout`` None waits as long as the other download runs."""
        start = time.monotonic()
        waited = False
        while not self.try_acquire():
            check_cancel(cancel)
            if timeout is not None and time.monotonic() - start >= timeout:
                raise DownloadError(
                    f"another vitfeat process is downloading this model (lock {self.path}); wait for it to finish"
                )
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(0.1)

    def release(self) -> None:
        if self._fh is None:
            return
        try:
            if sys.platform == "win32":  # pragma: no cover
                import msvcrt

                self._fh.seek(0)
                with contextlib.suppress(OSError):
                    msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                with contextlib.suppress(OSError):
                    fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ModelLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
