"""Work-arounds for bugs in the Qt bindings, kept in one place so they can be dropped when fixed upstream.

PySide6 6.12.0 ``SignalInstance.emit()`` returns ``True`` without taking a new reference, so every emit from
Python steals one reference to ``True``; after a few thousand emits (a scan's progress reports, thumbnails)
CPython aborts with "bool_dealloc: deallocating True or False". That release also over-releases ``None``
(``processEvents()``, Python ``data()`` overrides returning None), which cannot be patched from here, so
pyproject.toml excludes it; :func:`emit` still measures the emit leak once at import and gives the reference
back, so a stray broken build fails later and more clearly (``tests/gui/test_gui_tasks.py`` checks the binding).
Every ``emit`` in ``vitfeat_desktop.gui`` goes through it; on a correct binding it is a plain emit.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal, SignalInstance

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_incref.restype = None
_TRUE = ctypes.py_object(True)


class _Probe(QObject):
    ping = Signal()


def _measure_leak(samples: int = 64) -> int:
    """References to ``True`` lost per ``emit()`` (0 on a correct PySide6, 1 on 6.12.0)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(samples):
        probe.ping.emit()
    after = sys.getrefcount(True)
    leak = round((before - after) / samples)
    for _ in range(max(0, before - after)):  # pay back what the probe itself took
        _incref(_TRUE)
    return max(0, leak)


TRUE_LEAK_PER_EMIT = _measure_leak()


def emit(signal: SignalInstance, *args: object) -> None:
    """``signal.emit(*args)``, returning any reference the binding stole."""
    signal.emit(*args)
    for _ in range(TRUE_LEAK_PER_EMIT):
        _incref(_TRUE)
