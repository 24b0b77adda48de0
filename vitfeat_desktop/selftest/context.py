"""What the self-test's checks share: the two outcomes besides success, and the state of one run.

Kept apart from the checks so the window check (the only one that imports the GUI) and the runner depend on
this small module rather than on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type only: Qt is imported by the qt and window checks, after onnxruntime
    from PySide6.QtCore import QCoreApplication


class CheckFailed(Exception):
    """A check found a problem; the message is the one-line reason shown to the user."""


class CheckSkipped(Exception):
    """A check cannot run in this build or on this OS; not a failure."""


@dataclass
class Context:
    """State shared by the checks of one run (later checks use what earlier ones made)."""

    workdir: Path
    model_arg: str | None
    quantized: bool
    photos_dir: Path
    model_folder: Path | None = None
    qt_app: QCoreApplication | None = None
    warnings: list[str] = field(default_factory=list)  # the app's log warnings, kept off the check lines
