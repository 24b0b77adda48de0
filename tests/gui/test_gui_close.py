"""Closing the window while jobs run: everything is cancelled and drained, and nothing a late job reports reaches
the deleted window (PySide would print "Signal source has been deleted" tracebacks)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fakehub import fake_hub  # noqa: F401  (fixture)
from PySide6.QtWidgets import QWidget

from vitfeat_desktop import config
from vitfeat_desktop.gui.tasks import TaskRunner

pytestmark = pytest.mark.gui


def _no_tracebacks(capfd: Any) -> None:
    _out, err = capfd.readouterr()
    assert "Traceback" not in err and "has been deleted" not in err and "already deleted" not in err, err


def _retried(fake: Any) -> bool:
    """The hub has answered the same request with a 500 at least twice (the downloader is in its retry ladder)."""
    seen: dict[str, int] = {}
    for r in list(fake.requests):
        if r.status == 500:
            seen[r.path] = seen.get(r.path, 0) + 1
    return any(n >= 2 for n in seen.values())


def _close_and_delete(qtbot: Any, window: Any) -> bool:
    """Close (which drains the pool for at most 2 s), then delete the window and keep the event loop running
    while any late report could still arrive."""
    window.close()
    drained = window.runner.active_count() == 0 and window.runner.pool.activeThreadCount() == 0
    window.deleteLater()
    qtbot.wait(300)
    return drained


def test_close_while_first_run_download_retries(qtbot: Any, fake_hub: Any, tiny_vit: Path,  # noqa: F811
                                                capfd: Any) -> None:
    from vitfeat_desktop.gui.app import build_window

    fake_hub.publish(config.DEFAULT_MODEL_ID, tiny_vit)
    fake_hub.add_fault("*", "status", times=None, status=500, method="*")
    window = build_window(None, None)
    window.show()
    panel = window.setup_panel
    qtbot.waitUntil(lambda: window.library_stack.currentWidget() is panel, timeout=30_000)
    panel.download_button.click()
    qtbot.waitUntil(lambda: _retried(fake_hub), timeout=30_000)
    assert window.runner.is_running("model-download")
    assert _close_and_delete(qtbot, window), "the download did not stop when the window closed"
    requests = len(fake_hub.requests)
    qtbot.wait(1500)  # longer than the first backoff step: a download still running would ask again
    assert len(fake_hub.requests) == requests
    _no_tracebacks(capfd)


def _stubborn(seconds: float, *, progress: Any, cancel: Any) -> str:
    """A job that ignores cancel for a while (a core call between two cancel checks)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        progress("tick")
        time.sleep(0.01)
    return "done"


def test_a_job_outliving_its_window_reports_to_nobody(qtbot: Any, capfd: Any) -> None:
    owner = QWidget()
    runner = TaskRunner(parent=owner)
    heard: list[Any] = []
    runner.submit(_stubborn, 0.8, key="x", on_result=heard.append, on_progress=heard.append,
                  on_finished=lambda: heard.append("finished"))
    qtbot.waitUntil(lambda: len(heard) > 0, timeout=10_000)
    assert not runner.shutdown(timeout=0.1)  # still running after the timeout
    heard.clear()
    owner.deleteLater()  # the window goes while the job still runs
    qtbot.wait(1500)  # the job finishes and emits result/finished into the void
    assert heard == []
    _no_tracebacks(capfd)


def _noop(i: int) -> int:
    return i


def test_many_short_jobs_finish_and_drain(qtbot: Any) -> None:
    """Thousands of jobs finishing at once: every result arrives once, nothing is left running, and the runner
    shuts down cleanly."""
    owner = QWidget()
    runner = TaskRunner(parent=owner)
    got: list[int] = []
    for i in range(3000):
        runner.submit(_noop, i, pass_callbacks=False, on_result=got.append)
    qtbot.waitUntil(lambda: len(got) == 3000 and runner.active_count() == 0, timeout=60_000)
    assert sorted(got) == list(range(3000))
    assert runner.shutdown(timeout=2.0)
    owner.deleteLater()
    qtbot.wait(50)
