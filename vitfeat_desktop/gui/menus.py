"""The window's commands as one table: text, the window method it runs, shortcut, tip; and where each appears.

Adding a command is one row in :data:`ACTIONS` and its name in the menus, toolbar or context menu below; the
window only provides the methods. The Delete command's wording follows the removal policy of this system
(:func:`vitfeat_desktop.settings.default_removal_action`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMainWindow, QMenu, QSlider, QToolBar, QWidget

from vitfeat_desktop import settings
from vitfeat_desktop.gui.grid import ImageGrid

K = QKeySequence.StandardKey
Shortcut = QKeySequence.StandardKey | str | list[QKeySequence] | None


@dataclass(frozen=True)
class Command:
    name: str
    text: str
    slot: str  # the window's method it runs, without arguments ("files.undo": a method of window.files)
    shortcut: Shortcut = None
    tip: str = ""


def _commands() -> tuple[Command, ...]:
    # Delete goes to the trash only where Undo can take photos back out of it (settings.default_removal_action)
    trash = settings.default_removal_action() == "trash"
    return (
        Command("open", "Open Folder…", "choose_folder", K.Open, "Open a photo folder and index it"),
        Command("rescan", "Rescan", "rescan", K.Refresh, "Look for new, changed and removed photos"),
        Command("similar", "Find Similar", "find_similar_selected", "Ctrl+F",
                "Show the photos most similar to the selected one"),
        Command("query_file", "Find Similar to a File…", "choose_query_file", "Ctrl+Shift+F",
                "Pick any image file (indexed or not) and find similar photos"),
        Command("compare", "Compare", "compare_selected", "C",
                "Show the selected photos side by side, zoomed together"),
        Command("inspect", "Inspect Features", "inspect_selected", "I",
                "Run the model on the selected photo and show its output"),
        Command("preview", "Preview", "preview", "Space", "Show the selected photo large"),
        Command("trash", "Move to Trash" if trash else "Quarantine", "remove_selected",
                [QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")],
                "Move the selected photos to the system trash (undoable)" if trash
                else "Move the selected photos to vitfeat's quarantine folder (undoable)"),
        Command("undo", "Undo", "files.undo", K.Undo, "Undo the last move, trash or copy"),
        Command("move", "Move to Folder…", "files.move_selected", None,
                "Move the selected photos into a folder (undoable)"),
        Command("copy", "Copy to Folder…", "files.copy_selected", None, "Copy the selected photos into a folder"),
        Command("reveal", "Show in File Manager", "files.reveal_selected", None,
                "Open the folder that contains the photo"),
        Command("open_file", "Open in Default App", "files.open_selected", "Return",
                "Open the photo with your usual image viewer"),
        Command("copy_path", "Copy Path", "files.copy_path", "Ctrl+Shift+C", "Copy the file path"),
        Command("dupes", "Find Duplicates", "show_duplicates", "Ctrl+D",
                "Group exact copies, re-saved files and near-duplicates"),
        Command("prefs", "Preferences…", "show_preferences", K.Preferences,
                "How many processor cores the model may use"),
        Command("models", "Models…", "show_model_manager", None,
                "Download, import and choose the model that describes your photos"),
        Command("zoom_in", "Larger Thumbnails", "thumbs.zoom_in", K.ZoomIn),
        Command("zoom_out", "Smaller Thumbnails", "thumbs.zoom_out", K.ZoomOut),
        Command("quit", "Quit", "close", K.Quit),
        Command("skipped", "Skipped Files…", "show_skipped", None, "Files that could not be read, and why"),
        Command("about", "About vitfeat", "show_about"),
    )


# None: a separator. "docks": the dock widgets' show/hide toggles.
MENUS = (
    ("&File", ("open", "rescan", "query_file", None, "skipped", "models", "prefs", None, "quit")),
    ("&Edit", ("undo", None, "trash", "move", "copy", None, "copy_path")),
    ("&View", ("zoom_in", "zoom_out", None, "preview", "compare", "inspect", None, "docks")),
    ("F&ind", ("similar", "query_file", "dupes")),
    ("&Help", ("about",)),
)
TOOLBAR = ("open", "rescan", None, "similar", "compare", "dupes", None, "trash", "undo")
CONTEXT_MENU = ("open_file", "reveal", "copy_path", None, "similar", "compare", "inspect", "preview", None, "move",
                "copy", "trash")
DUPES_CONTEXT_MENU = ("open_file", "reveal", "copy_path", None, "trash")  # after the list's own commands
NEED_SELECTION = ("trash", "move", "copy", "reveal", "open_file", "copy_path", "preview", "inspect")
SORT_KEYS = (("Name", "name"), ("Date taken", "date"), ("File size", "size"), ("Visual similarity", "visual"))


def build_actions(window: QMainWindow) -> dict[str, QAction]:
    """Every command as a QAction of ``window`` (so its shortcut works anywhere in it), by name."""
    actions: dict[str, QAction] = {}
    for cmd in _commands():
        act = QAction(cmd.text, window)
        act.triggered.connect(lambda *_, path=cmd.slot: _slot(window, path)())
        if cmd.shortcut is not None:
            sc = cmd.shortcut
            act.setShortcuts(sc if isinstance(sc, list) else [QKeySequence(sc)])
        if cmd.tip:
            shown = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(cmd.tip + (f" ({shown})" if cmd.shortcut is not None else ""))
            act.setStatusTip(cmd.tip)
        if cmd.name != "about":
            window.addAction(act)
        actions[cmd.name] = act
    return actions


def _slot(window: QMainWindow, path: str) -> Callable[[], object]:
    """The method a command runs, looked up when it runs (the window builds its parts after its commands)."""
    owner: object = window
    for part in path.split(".")[:-1]:
        owner = getattr(owner, part)
    method: Callable[[], object] = getattr(owner, path.rsplit(".", 1)[-1])
    return method


def actions_of(actions: dict[str, QAction], names: tuple[str | None, ...]) -> list[QAction | None]:
    return [None if n is None else actions[n] for n in names]


def fill_menu(menu: QMenu | QToolBar, items: list[QAction | None]) -> None:
    for a in items:
        menu.addSeparator() if a is None else menu.addAction(a)


def build_menus(window: QMainWindow, actions: dict[str, QAction], docks: list[QAction]) -> None:
    bar = window.menuBar()
    for title, names in MENUS:
        menu = bar.addMenu(title)
        for name in names:
            if name == "docks":
                for toggle in docks:
                    menu.addAction(toggle)
            else:
                fill_menu(menu, actions_of(actions, (name,)) if name else [None])


def build_toolbar(window: QMainWindow, actions: dict[str, QAction]) -> tuple[QToolBar, QComboBox, QSlider]:
    """The toolbar with the grid's Sort and Size controls; returns (toolbar, sort combo, size slider)."""
    tb = QToolBar("Main")
    tb.setObjectName("main-toolbar")
    tb.setMovable(False)
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    fill_menu(tb, actions_of(actions, TOOLBAR))
    tb.addSeparator()
    tb.addWidget(QLabel(" Sort: "))
    sort_combo = QComboBox()
    for text, key in SORT_KEYS:
        sort_combo.addItem(text, key)
    sort_combo.setToolTip("Order of the library grid; Visual similarity puts look-alike photos together")
    tb.addWidget(sort_combo)
    tb.addWidget(QLabel("  Size: "))
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(64, 320)
    slider.setFixedWidth(120)
    slider.setToolTip("Thumbnail size (Ctrl + and Ctrl −)")
    tb.addWidget(slider)
    tb.addSeparator()
    tb.addAction(actions["models"])
    window.addToolBar(tb)
    return tb, sort_combo, slider


def popup(parent: QWidget, actions: dict[str, QAction], names: tuple[str | None, ...]) -> QMenu:
    """A context menu of the named commands (the caller pops it up and keeps a reference)."""
    menu = QMenu(parent)
    fill_menu(menu, actions_of(actions, names))
    return menu


def update_enabled(actions: dict[str, QAction], *, selection: bool, library: bool, comparable: bool,
                   scanning: bool) -> None:
    """Commands that need a selection, an open library, something to compare, or no scan running."""
    for name in NEED_SELECTION:
        actions[name].setEnabled(selection)
    actions["similar"].setEnabled(selection and library)
    actions["query_file"].setEnabled(library)
    actions["compare"].setEnabled(comparable)
    actions["rescan"].setEnabled(library and not scanning)
    actions["dupes"].setEnabled(library)


class ThumbSize(QObject):
    """The toolbar's Size slider and Ctrl + / Ctrl −: both grids' thumbnail side, remembered in the settings."""

    def __init__(self, slider: QSlider, grids: list[ImageGrid], closing: Callable[[], bool],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.slider, self.grids, self.closing = slider, grids, closing
        self._side = slider.value()
        slider.valueChanged.connect(self.set_side)

    def set_side(self, side: int) -> None:
        side = max(64, min(320, int(side)))
        if self.slider.value() != side:
            self.slider.blockSignals(True)
            self.slider.setValue(side)
            self.slider.blockSignals(False)
        for grid in self.grids:
            grid.set_thumb_side(side)
        self._side = side
        QTimer.singleShot(500, self._save)  # once the slider rests

    def _save(self) -> None:
        if not self.closing():
            settings.update(thumb_size=self._side)

    def zoom_in(self) -> None:
        self.set_side(int(self.slider.value() * 1.25))

    def zoom_out(self) -> None:
        self.set_side(int(self.slider.value() * 0.8))
