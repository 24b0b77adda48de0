"""Background jobs for the GUI: the only way the window runs anything that can take longer than a frame.

A :class:`Worker` is a ``QRunnable`` that calls one core function with ``progress=`` and ``cancel=`` callbacks and
reports through a :class:`WorkerSignals` ``QObject``. The signals object is created on the GUI thread, so every
emission from the pool thread is *queued* to the GUI thread: workers never touch widgets or models, they only
emit. The :class:`TaskRunner` owns the ``QThreadPool``, keeps a strong reference to each worker until its
``finished`` signal (PySide otherwise garbage-collects the signals object mid-flight), lets the newest request
win per key (a new "find similar" cancels the previous one) and drains the pool when the window closes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from vitfeat_desktop.core.errors import Cancelled, VitfeatError
from vitfeat_desktop.gui.qtcompat import emit

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    """What a worker can say. ``error`` carries one user-facing line; ``finished`` always comes last."""

    progress = Signal(object)  # a core Progress (or any object the job reports)
    partial = Signal(object)  # intermediate results (e.g. a rendered thumbnail)
    result = Signal(object)
    error = Signal(str)
    cancelled = Signal()
    finished = Signal()


class Worker(QRunnable):
    """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` on the pool.

    ``fn`` receives ``progress`` and ``cancel`` keyword arguments only when ``pass_callbacks`` is true, so plain
    functions can be run too. ``partial`` is passed as a keyword when ``pass_partial`` is true.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        key: str | None = None,
        pass_callbacks: bool = True,
        pass_partial: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner owns the lifetime, not the pool
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.key = key
        self.pass_callbacks = pass_callbacks
        self.pass_partial = pass_partial
        self.signals = WorkerSignals()
        self._cancel = threading.Event()
        self.superseded = False  # a newer request with the same key replaced this one: drop its results
        self.started = threading.Event()
        self.done = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, report: Any) -> None:
        if not self._cancel.is_set():
            emit(self.signals.progress, report)

    def run(self) -> None:  # runs on a pool thread
        self.started.set()
        lower_thread_priority()
        try:
            if self._cancel.is_set():
                raise Cancelled()
            kwargs = dict(self.kwargs)
            if self.pass_callbacks:
                kwargs["progress"] = self._progress
                kwargs["cancel"] = self._cancel.is_set
            if self.pass_partial:
                kwargs["partial"] = lambda value: emit(self.signals.partial, value)
            value = self.fn(*self.args, **kwargs)
            if self._cancel.is_set():
                raise Cancelled()
        except Cancelled:
            emit(self.signals.cancelled)
        except (VitfeatError, OSError, ValueError) as exc:
            emit(self.signals.error, _one_line(exc))
        except Exception as exc:  # a bug: keep the app alive, say what happened, log the traceback
            log.error("background job failed:\n%s", traceback.format_exc())
            emit(self.signals.error, f"unexpected error: {_one_line(exc)}")
        else:
            emit(self.signals.result, value)
        finally:
            self.done.set()
            emit(self.signals.finished)


class TaskRunner(QObject):
    """Owns the thread pool and the workers in flight.

    ``submit(key=...)`` cancels the previous worker with the same key, so only the newest request's results reach
    the window (a stale result is dropped even if the old job ignores cancellation).
    """

    active_changed = Signal(int)

    def __init__(self, max_threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        if max_threads:
            self.pool.setMaxThreadCount(max_threads)
        self._workers: set[Worker] = set()
        self._latest: dict[str, Worker] = {}
        self._closed = False

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        key: str | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        pass_callbacks: bool = True,
        pass_partial: bool = False,
        priority: int = 0,
        **kwargs: Any,
    ) -> Worker | None:
        """Start ``fn`` on the pool; callbacks run on the GUI thread. Returns None after :meth:`shutdown`."""
        if self._closed:
            return None
        worker = Worker(fn, *args, key=key, pass_callbacks=pass_callbacks, pass_partial=pass_partial, **kwargs)
        if key is not None:
            old = self._latest.get(key)
            if old is not None:
                old.superseded = True
                old.cancel()
            self._latest[key] = worker

        def current() -> bool:
            return not worker.superseded

        def settle(callback: Callable[..., None] | None, *args: Any) -> None:
            # The job's outcome is known: it no longer counts as running for is_running(), even though its
            # finished signal is still queued behind this one (a callback may start the next job of that key).
            if key is not None and self._latest.get(key) is worker:
                del self._latest[key]
            if callback is not None and current():
                callback(*args)

        sig = worker.signals
        sig.result.connect(lambda value: settle(on_result, value))
        sig.error.connect(lambda msg: settle(on_error, msg))
        sig.cancelled.connect(lambda: settle(on_cancelled))
        if on_progress is not None:
            sig.progress.connect(lambda rep: on_progress(rep) if current() else None)
        if on_partial is not None:
            sig.partial.connect(lambda val: on_partial(val) if current() else None)
        sig.finished.connect(lambda: self._finished(worker, on_finished))
        self._workers.add(worker)
        emit(self.active_changed, len(self._workers))
        self.pool.start(worker, priority)
        return worker

    def _finished(self, worker: Worker, on_finished: Callable[[], None] | None) -> None:
        was_current = not worker.superseded
        self._workers.discard(worker)
        if worker.key is not None and self._latest.get(worker.key) is worker:
            del self._latest[worker.key]
        emit(self.active_changed, len(self._workers))
        if on_finished is not None and was_current:
            on_finished()

    def cancel(self, key: str) -> None:
        worker = self._latest.get(key)
        if worker is not None:
            worker.cancel()

    def is_running(self, key: str) -> bool:
        """True while the newest job of ``key`` has not delivered its result, error or cancellation."""
        return key in self._latest

    def active_count(self) -> int:
        """Workers started and not yet finished (as seen from the GUI thread)."""
        return len(self._workers)

    def running_threads(self) -> int:
        return self.pool.activeThreadCount()

    def shutdown(self, timeout: float = 2.0) -> bool:
        """Cancel everything, drop queued jobs and wait up to ``timeout`` seconds; True when the pool is idle."""
        self._closed = True
        for worker in list(self._workers):
            worker.cancel()
        self.pool.clear()  # queued, never-started workers are removed; they will not emit finished
        for worker in list(self._workers):
            if not worker.started.is_set():
                self._workers.discard(worker)
        deadline = time.monotonic() + timeout
        ok = self.pool.waitForDone(max(0, int(timeout * 1000)))
        if not ok:
            log.warning("%d background jobs still running after %.1f s", self.pool.activeThreadCount(), timeout)
        self._workers = {w for w in self._workers if not w.done.is_set()}
        self._latest.clear()
        return ok and time.monotonic() <= deadline + 0.5


_lowered = threading.local()
BACKGROUND_NICE = 10


def lower_thread_priority() -> None:
    """Run background work below the GUI thread's OS priority (once per pool thread).

    On a laptop with two cores, ONNX Runtime's intra-op threads and the decoders can keep every core busy, and
    the window then waits for the scheduler, not for us. Threads inherit their creator's priority on Linux, so
    the inference threads ONNX Runtime creates from a worker (the session is built on one) and the scan's decode
    threads run at the lower priority too; the GUI thread keeps the normal one.
    """
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    try:
        if sys.platform.startswith("linux"):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        else:
            from PySide6.QtCore import QThread

            QThread.currentThread().setPriority(QThread.Priority.LowPriority)
    except (OSError, AttributeError):
        pass  # no permission or no such API: run at normal priority


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
