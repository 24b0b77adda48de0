"""Background jobs for the GUI: the only way the window runs anything that can take longer than a frame.

A :class:`Worker` calls one core function on a ``QThreadPool`` thread with ``progress=`` and ``cancel=`` callbacks
and reports through a :class:`WorkerSignals` ``QObject``. The signals object is created on the GUI thread, so
every emission from the pool thread is *queued* to the GUI thread: workers never touch widgets or models, they
only emit. The :class:`TaskRunner` owns the pool, lets the newest request win per key (a new "find similar"
cancels the previous one) and drains the pool when the window closes.

Lifetimes (what made the GUI suite segfault in pytest-qt's event processing, 2 runs in 9):

* A :class:`_Relay` (the GUI-thread receiver of one worker's signals) is a C++ child of its runner and is
  deleted with ``deleteLater``. It used to hold a strong Python reference to the runner: when the last relay's
  deferred delete ran after the runner's own Python reference was gone (a runner that was a local variable),
  freeing the relay's attributes freed the runner, whose C++ destructor deleted its children, including the
  relay already being destroyed ("QObject: shared QObject was deleted directly", then a crash in ~QObject). The
  relay now reaches the runner through a weak reference, and nothing a relay holds owns the runner.
* A worker's Qt objects (its signals) must be freed on the GUI thread, after the pool thread is done with them.
  The pool runs a closure that drops its own reference to the worker before it reports ``released``; until
  then, and until its ``finished`` was delivered (or its relay is gone), the worker stays in a module-level
  registry that only the GUI thread prunes. No timer, no guess about how long a pool thread lingers.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThreadPool, Signal, SignalInstance

from vitfeat_desktop.core.errors import Cancelled, VitfeatError, one_line
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


class Worker:
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
        self.released = threading.Event()  # the pool thread holds no reference to this worker any more
        self.delivered = False  # ``finished`` reached the relay (GUI thread)
        self._relay: weakref.ref[_Relay] | None = None  # the runner's receiver of these signals (GUI thread)
        self._detached = threading.Event()

    @property
    def relay(self) -> _Relay | None:
        relay = self._relay() if self._relay is not None else None
        return relay if relay is not None and shiboken6.isValid(relay) else None

    @relay.setter
    def relay(self, relay: _Relay | None) -> None:
        self._relay = weakref.ref(relay) if relay is not None else None

    def pool_task(self) -> Callable[[], None]:
        """What the pool runs: :meth:`run`, then let go of this worker *before* saying so (``released``), so
        the worker's Qt objects are never freed on the pool thread (they are freed on the GUI thread, by
        :func:`_prune`)."""
        holder = [self]
        released = self.released

        def task() -> None:
            worker = holder.pop()
            try:
                worker.run()
            finally:
                del worker
                released.set()

        return task

    def cancel(self) -> None:
        self._cancel.set()

    def detach(self) -> None:
        """Cancel, and stop emitting: nothing this worker says reaches the window any more.

        The worker itself lives on (its thread holds it) until the core function returns.
        """
        self._cancel.set()
        self._detached.set()
        relay, self.relay = self.relay, None
        if relay is not None:
            relay.deleteLater()

    def _emit(self, signal: SignalInstance, *args: object) -> None:
        """Emit from the pool thread unless detached; an emit racing the runner's deletion is dropped, not raised
        (PySide raises "Signal source has been deleted" / "Internal C++ object already deleted")."""
        if self._detached.is_set():
            return
        try:
            emit(signal, *args)
        except RuntimeError:
            log.debug("dropped a report from a detached background job")

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, report: Any) -> None:
        if not self._cancel.is_set():
            self._emit(self.signals.progress, report)

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
                kwargs["partial"] = lambda value: self._emit(self.signals.partial, value)
            value = self.fn(*self.args, **kwargs)
            if self._cancel.is_set():
                raise Cancelled()
        except Cancelled:
            self._emit(self.signals.cancelled)
        except (VitfeatError, OSError, ValueError) as exc:
            self._emit(self.signals.error, one_line(exc, first_line=True, limit=300))
        except Exception as exc:  # a bug: keep the app alive, say what happened, log the traceback
            log.error("background job failed:\n%s", traceback.format_exc())
            self._emit(self.signals.error, f"unexpected error: {one_line(exc, first_line=True, limit=300)}")
        else:
            self._emit(self.signals.result, value)
        finally:
            self.done.set()
            self._emit(self.signals.finished)


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

        relay = _Relay(self, worker, on_result=on_result, on_error=on_error, on_progress=on_progress,
                       on_partial=on_partial, on_finished=on_finished, on_cancelled=on_cancelled)
        worker.relay = relay
        _prune()
        _LIVE.add(worker)
        self._workers.add(worker)
        emit(self.active_changed, len(self._workers))
        self.pool.start(worker.pool_task(), priority)
        return worker

    def _settle(self, worker: Worker) -> None:
        """The job's outcome is known: it no longer counts as running for :meth:`is_running`, even though its
        ``finished`` signal is still queued behind this one (a callback may start the next job of that key)."""
        if worker.key is not None and self._latest.get(worker.key) is worker:
            del self._latest[worker.key]

    def _finished(self, worker: Worker, on_finished: Callable[[], None] | None) -> None:
        was_current = not worker.superseded
        self._workers.discard(worker)
        worker.delivered = True
        relay = worker.relay
        if relay is not None:
            relay.deleteLater()
            worker.relay = None
        _prune()
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
                worker.released.set()  # the pool dropped its task (on this thread): nothing holds it there
        deadline = time.monotonic() + timeout
        ok = self.pool.waitForDone(max(0, int(timeout * 1000)))
        if not ok:
            log.warning("%d background jobs still running after %.1f s", self.pool.activeThreadCount(), timeout)
        self._workers = {w for w in self._workers if not w.done.is_set()}
        for worker in self._workers:
            # Still running after the timeout (a core call that does not check cancel often enough): whatever it
            # reports from now on must reach nobody, since the window that owns this runner is about to go. It
            # stays in _LIVE until its pool thread lets go of it.
            worker.detach()
        self._latest.clear()
        _prune()
        return ok and time.monotonic() <= deadline + 0.5


class _Relay(QObject):
    """Receives one worker's signals on the GUI thread and calls the submitter's callbacks.

    Why an object and not lambdas: a lambda connection has no receiver, so Qt keeps delivering to it after the
    window (and its :class:`TaskRunner`) is deleted, and the callback then touches deleted widgets or emits on a
    deleted runner ("Signal source has been deleted"). The relay is a child of the runner: when the runner goes,
    the relay goes, and Qt drops its connections, including events already queued for it.
    """

    def __init__(self, runner: TaskRunner, worker: Worker, *, on_result: Callable[[Any], None] | None,
                 on_error: Callable[[str], None] | None, on_progress: Callable[[Any], None] | None,
                 on_partial: Callable[[Any], None] | None, on_finished: Callable[[], None] | None,
                 on_cancelled: Callable[[], None] | None) -> None:
        super().__init__(runner)
        # Weak: the runner owns this relay (as its C++ child); a strong reference back made the relay's
        # deferred delete free the runner, which then deleted this relay a second time (see the module doc).
        self._runner = weakref.ref(runner)
        self.worker = worker
        self.on_result, self.on_error, self.on_cancelled = on_result, on_error, on_cancelled
        self.on_progress, self.on_partial, self.on_finished = on_progress, on_partial, on_finished
        sig = worker.signals
        sig.result.connect(self._result)
        sig.error.connect(self._error)
        sig.cancelled.connect(self._cancelled)
        if on_progress is not None:
            sig.progress.connect(self._progress)
        if on_partial is not None:
            sig.partial.connect(self._partial)
        sig.finished.connect(self._finished)

    def _current(self) -> bool:
        return not self.worker.superseded and not self.worker._detached.is_set()

    @property
    def runner(self) -> TaskRunner | None:
        runner = self._runner()
        return runner if runner is not None and shiboken6.isValid(runner) else None

    def _settle(self) -> None:
        runner = self.runner
        if runner is not None:
            runner._settle(self.worker)

    def _result(self, value: Any) -> None:
        self._settle()
        if self.on_result is not None and self._current():
            self.on_result(value)

    def _error(self, message: str) -> None:
        self._settle()
        if self.on_error is not None and self._current():
            self.on_error(message)

    def _cancelled(self) -> None:
        self._settle()
        if self.on_cancelled is not None and self._current():
            self.on_cancelled()

    def _progress(self, report: Any) -> None:
        if self.on_progress is not None and self._current():
            self.on_progress(report)

    def _partial(self, value: Any) -> None:
        if self.on_partial is not None and self._current():
            self.on_partial(value)

    def _finished(self) -> None:
        runner = self.runner
        if runner is not None:
            runner._finished(self.worker, self.on_finished)
        else:  # pragma: no cover - a runner deleted with events still queued drops them instead
            self.worker.delivered = True


# Every worker whose Qt objects may still be used by a pool thread or by a queued event; pruned on the GUI thread.
_LIVE: set[Worker] = set()


def _prune() -> None:
    """Free (on the GUI thread) the workers their pool thread has let go of and whose last event was delivered,
    or whose relay is gone (a deleted relay's queued events are dropped by Qt)."""
    for worker in [w for w in _LIVE if w.released.is_set() and (w.delivered or w.relay is None)]:
        _LIVE.discard(worker)

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
