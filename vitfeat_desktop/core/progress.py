"""Progress reports and cancellation shared by every long core job (scan, download, duplicates, file actions).

Core functions never emit Qt signals; they call ``progress(Progress)`` and poll ``cancel()``. The GUI's workers
turn those into queued signals, the CLI into a terminal line. Reports are throttled here so a scan of 100,000
unchanged files does not flood the GUI thread with 100,000 events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vitfeat_desktop.core.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress report. ``total`` is None while unknown (e.g. still walking the folder)."""

    phase: str
    done: int
    total: int | None = None
    message: str = ""
    rate: float | None = None  # items (or bytes) per second over the current phase
    eta: float | None = None  # seconds left, when it can be estimated

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]


def check_cancel(cancel: CancelFn | None) -> None:
    """Raise :class:`Cancelled` if the caller asked to stop."""
    if cancel is not None and cancel():
        raise Cancelled()


@dataclass
class Reporter:
    """Throttles ``progress`` calls to one every ``interval`` seconds and computes rate and ETA."""

    progress: ProgressFn | None
    phase: str
    total: int | None = None
    interval: float = 0.1
    _start: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def update(self, done: int, message: str = "", *, force: bool = False, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        eta = (self.total - done) / rate if rate and self.total is not None else None
        self.progress(Progress(self.phase, done, self.total, message, rate, eta))

    def restart(self, phase: str, total: int | None = None) -> None:
        self.phase, self.total = phase, total
        self._start, self._last = time.monotonic(), 0.0
