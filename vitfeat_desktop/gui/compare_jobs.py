"""The Compare panel's requests, run on workers: each pane's full-size decode, and its alignment to the first.

Shared by the Compare tab and the Preview dialog (one pane, so nothing to align), so both decode the same way.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QImage

from vitfeat_desktop.gui.compare import ComparePanel, PhotoFacts, compare_alignment, load_full
from vitfeat_desktop.gui.tasks import TaskRunner


def serve(panel: ComparePanel, runner: TaskRunner, key: str) -> None:
    """Answer ``panel``'s load and align requests on ``runner``; ``key`` + pane index names each job."""
    def load(index: int, path: str) -> None:
        def shown(res: tuple[QImage, PhotoFacts]) -> None:
            panel.set_image(index, res[0], res[1])

        runner.submit(load_full, Path(path), key=f"{key}{index}", pass_callbacks=False, on_result=shown,
                      on_error=lambda msg: panel.set_error(index, msg))

    def align(index: int, first: str, path: str) -> None:
        runner.submit(compare_alignment, first, path, key=f"{key}-align{index}", pass_callbacks=False,
                      on_result=lambda al: panel.set_alignment(index, al),
                      on_error=lambda _msg: None)  # unaligned panes stay scaled to the first photo's size

    panel.load_requested.connect(load)
    panel.align_requested.connect(align)
