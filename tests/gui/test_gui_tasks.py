"""TaskRunner: results arrive on the GUI thread, the newest request per key wins, errors are one line, and
shutdown cancels and drains."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from PySide6.QtCore import QThread

from vitfeat_desktop.core.errors import Cancelled, VitfeatError
from vitfeat_desktop.gui.tasks import TaskRunner

pytestmark = pytest.mark.gui


def slow_echo(value: Any, delay: float, *, progress: Any = None, cancel: Any = None) -> Any:
    end = time.monotonic() + delay
    while time.monotonic() < end:
        if cancel():
            raise Cancelled()
        time.sleep(0.005)
    progress(value)
    return value


def test_newest_request_wins(qtbot: Any) -> None:
    runner = TaskRunner(max_threads=4)
    results: list[Any] = []
    threads: list[Any] = []
    first = runner.submit(slow_echo, "old", 0.3, key="q", on_result=results.append)
    second = runner.submit(slow_echo, "new", 0.05, key="q",
                           on_result=lambda v: (results.append(v), threads.append(QThread.currentThread())))
    assert first is not None and second is not None and first.is_cancelled()
    qtbot.waitUntil(lambda: runner.active_count() == 0, timeout=10_000)
    assert results == ["new"]
    assert threads[0] is runner.thread()  # delivered on the GUI thread
    assert not runner.is_running("q")


def test_errors_are_one_line_and_bugs_do_not_escape(qtbot: Any) -> None:
    runner = TaskRunner()
    errors: list[str] = []

    def user_error(**_: Any) -> None:
        raise VitfeatError("that folder is gone\nsecond line")

    def bug(**_: Any) -> None:
        raise KeyError("boom")

    runner.submit(user_error, on_error=errors.append)
    runner.submit(bug, on_error=errors.append)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=10_000)
    assert "that folder is gone" in errors and all("\n" not in e for e in errors)
    assert any(e.startswith("unexpected error") for e in errors)


def test_shutdown_cancels_and_drains(qtbot: Any) -> None:
    runner = TaskRunner(max_threads=2)
    started = threading.Event()

    def forever(*, progress: Any = None, cancel: Any = None) -> None:
        started.set()
        while not cancel():
            time.sleep(0.005)
        raise Cancelled()

    for _ in range(5):  # two run, three wait in the queue
        runner.submit(forever)
    assert started.wait(5)
    assert runner.shutdown(timeout=2.0)
    assert runner.pool.activeThreadCount() == 0 and runner.active_count() == 0
    assert runner.submit(forever) is None  # closed runners start nothing


def test_emit_keeps_refcounts_balanced() -> None:
    """PySide6 6.12.0 steals a reference to True on every emit; ours gives it back (a long scan would abort)."""
    import sys

    from vitfeat_desktop.gui.qtcompat import emit
    from vitfeat_desktop.gui.tasks import WorkerSignals

    signals = WorkerSignals()
    before = sys.getrefcount(True)
    for i in range(20_000):
        emit(signals.progress, i)
    assert abs(sys.getrefcount(True) - before) < 50


def test_qt_binding_keeps_none_refcount(qtbot: Any) -> None:
    """A binding that over-releases None (PySide6 6.12.0) aborts the app mid-scan; refuse it here, loudly."""
    import sys

    from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
    from PySide6.QtWidgets import QApplication

    class Model(QAbstractListModel):
        def rowCount(self, parent: Any = QModelIndex()) -> int:  # noqa: B008
            return 1

        def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
            return None

    model = Model()
    before = sys.getrefcount(None)
    for _ in range(2000):
        QApplication.processEvents()
        model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert sys.getrefcount(None) - before > -100, "this PySide6 build drops references to None; use another version"
