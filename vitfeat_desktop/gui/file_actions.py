"""What happens to photo files: trash / quarantine / move / copy through the core's journal, Undo, and the
hand-offs to the system (reveal in the file manager, open in the default app, copy the path).

One object serves the window's commands and the Duplicates view's buttons alike: callers say which files (and,
for duplicates, which keeper protects each copy); it asks once before anything moves, runs the job and reports
through :attr:`FileActions.finished`. It never calls back into a panel.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QCheckBox, QFileDialog, QMessageBox, QWidget

from vitfeat_desktop import settings
from vitfeat_desktop.core.fileops.operations import ActionResult, UndoResult
from vitfeat_desktop.gui import jobs
from vitfeat_desktop.gui.grid import human_size
from vitfeat_desktop.gui.qtcompat import emit
from vitfeat_desktop.gui.session import Session
from vitfeat_desktop.gui.text import for_window, plural

VERBS = {"trash": "Moving to the trash", "quarantine": "Quarantining", "move": "Moving", "copy": "Copying"}
WHERE = {"trash": "to the trash", "quarantine": "to the quarantine folder", "move": "", "copy": ""}


def reveal(path: Path) -> None:
    """Show ``path`` in the system's file manager (selected where the OS can; its folder elsewhere)."""
    with contextlib.suppress(OSError):
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", str(path)])
            return
        if sys.platform.startswith("win"):
            subprocess.Popen(["explorer", "/select,", str(path)])
            return
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


def open_in_default_app(paths: list[Path]) -> None:
    for p in paths[:10]:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(p)))


def copy_paths(paths: list[Path]) -> None:
    QGuiApplication.clipboard().setText("\n".join(str(p) for p in paths))


class FileActions(QObject):
    """Move, copy, remove and undo, with one confirmation and a summary; ``finished`` carries the result."""

    status = Signal(str)  # a line for the status bar ("Moving 3 photos…", "Nothing was moved.")
    removed = Signal(list)  # Paths that left their folder (moved, trashed, quarantined): views drop them
    finished = Signal(object, str, bool)  # ActionResult | UndoResult, the summary line, whether Undo applies
    failed = Signal(str)

    def __init__(self, session: Session, parent: QWidget, selection: Callable[[], list[Path]]) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.selection = selection  # the photos the window's commands act on (the current view's selection)
        self.last_journal: str | None = None
        self.confirm_box: QMessageBox | None = None
        self._moved_sizes: dict[str, int] = {}  # sizes of the files an action is moving (for its summary)

    # -- the window's commands, on the current selection ---------------------------------------------------
    def move_selected(self) -> None:
        self.run("move", self.selection())

    def copy_selected(self) -> None:
        self.run("copy", self.selection())

    def open_selected(self) -> None:
        open_in_default_app(self.selection())

    def reveal_selected(self) -> None:
        paths = self.selection()
        if paths:
            reveal(paths[0])

    def copy_path(self) -> None:
        paths = self.selection()
        if paths:
            copy_paths(paths)
            emit(self.status, f"Copied {len(paths)} path(s).")

    def run(self, action: str, paths: list[Path], *, folder: str | None = None,
            keepers: dict[str, str] | None = None) -> None:
        """Trash / quarantine / move / copy ``paths``; ``keepers`` (copy -> keeper) lets the core refuse to move
        a copy whose keeper has gone. Move and copy ask for the folder when none is given."""
        if not paths:
            return
        if action in ("move", "copy") and folder is None:
            start = str(self.session.library_folder or Path.home())
            folder = QFileDialog.getExistingDirectory(self.parent_widget,
                                                      f"{action.capitalize()} {len(paths)} photos to…", start)
            if not folder:
                return
        if action in ("trash", "quarantine") and not self.confirm_removal(action, paths):
            return
        roots = [str(self.session.library_folder)] if self.session.library_folder else []
        emit(self.status, f"{VERBS[action]} {len(paths)} photos…")
        for p in paths:
            with contextlib.suppress(OSError):
                self._moved_sizes[str(p)] = p.stat().st_size
        self.session.runner.submit(jobs.apply_file_action, action, [str(p) for p in paths], folder=folder,
                                   photo_roots=roots, keepers=keepers, key="action",
                                   on_result=self._done, on_error=lambda m: emit(self.failed, m))

    def confirm_removal(self, action: str, paths: list[Path]) -> bool:
        """Ask once, with the count and total size, before photos go to the trash or the quarantine; "Don't ask
        again" is remembered in the settings (Undo still puts every file back)."""
        if not settings.load().confirm_trash:
            return True
        total = 0
        for p in paths:
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        where = "the trash" if action == "trash" else "vitfeat's quarantine folder"
        box = QMessageBox(QMessageBox.Icon.Question, "Move photos?",
                          f"Move {plural(len(paths), 'photo')} ({human_size(total)}) to {where}?",
                          parent=self.parent_widget)
        box.setInformativeText("Nothing is deleted: Undo (Ctrl+Z) puts every file back where it was."
                               if action != "trash" or settings.trash_undo_supported() else
                               "Nothing is deleted: restore them with Explorer's Restore or Finder's Put Back "
                               "(vitfeat's Undo cannot take files out of the system trash here).")
        ok = box.addButton("Move to the Trash" if action == "trash" else "Quarantine",
                           QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(ok)
        again = QCheckBox("Don't ask again")
        box.setCheckBox(again)
        self.confirm_box = box
        box.exec()
        if box.clickedButton() is not ok:
            emit(self.status, "Nothing was moved.")
            return False
        if again.isChecked():
            settings.update(confirm_trash=False)
        return True

    def _done(self, result: ActionResult) -> None:
        done = [Path(s) for s, _ in result.done]
        self.last_journal = result.journal_id
        total = sum(self._moved_sizes.pop(str(p), 0) for p in done)
        verb = "Copied" if result.action == "copy" else "Moved"
        where = WHERE.get(result.action, "")
        if result.action in ("move", "copy") and result.done:
            where = f"to {Path(result.done[0][1]).parent}" if result.done[0][1] else ""
        text = f"{verb} {plural(len(done), 'file')}" + (f" ({human_size(total)})" if total else "") + \
            (f" {where}" if where else "")
        if result.failed:
            text += f"; {len(result.failed)} not: {for_window(result.failed[0][1])}"
        if result.action != "copy":
            emit(self.removed, done)
        emit(self.finished, result, text + ".", bool(done))
        if result.action != "copy" and done and self.session.library is not None:
            self.session.rescan()  # the library learns what moved (the journal can put it back)

    def undo(self) -> None:
        emit(self.status, "Undoing…")
        self.session.runner.submit(jobs.undo_last, self.last_journal, key="action", on_result=self._undone,
                                   on_error=lambda m: emit(self.failed, m))

    def _undone(self, result: UndoResult) -> None:
        self.last_journal = None
        text = f"Restored {len(result.restored)} photos"
        if result.failed:
            text += f"; {len(result.failed)} could not be restored: {result.failed[0][1]}"
        emit(self.finished, result, text + ".", False)
        if self.session.library is not None:
            self.session.rescan()
