"""The Inspector dock: what the model sees in one photo (run on a worker with the session's extractor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDockWidget, QWidget

from vitfeat_desktop.core.inspect import Inspection, inspect_image
from vitfeat_desktop.gui.inspector import InspectorPanel
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session


class InspectorDock(QDockWidget):
    inspected = Signal(object)  # Inspection

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Inspector", parent)
        self.session = session
        self.setObjectName("inspector-dock")
        self.panel = InspectorPanel()
        self.setWidget(self.panel)
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)

    def inspect(self, path: Path, query: np.ndarray | None = None) -> None:
        """Run the model on ``path``; with ``query`` (a similarity query's vector) the heatmap compares to it."""
        if self.session.extractor is None:
            self.panel.show_error("no model is loaded yet")
            return
        self.panel.show_busy(path)
        self.session.runner.submit(inspect_image, self.session.extractor, path, query, key="inspect",
                                   pass_callbacks=False, on_result=self._inspected, on_error=self.panel.show_error)

    def _inspected(self, ins: Inspection) -> None:
        self.panel.show_inspection(ins)
        emit(self.inspected, ins)
