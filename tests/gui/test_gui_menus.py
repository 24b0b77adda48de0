"""The command table (gui/menus.py): every command runs a method that exists, and sits where it did."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.gui


def test_every_command_reaches_its_method_and_menu(make_window: Any) -> None:
    from vitfeat_desktop.gui import menus

    window = make_window(None)
    for cmd in menus._commands():
        assert callable(menus._slot(window, cmd.slot)), cmd.slot  # resolved when triggered: check them all here
    menus_by_title = {a.text(): a.menu() for a in window.menuBar().actions() if a.menu() is not None}
    assert list(menus_by_title) == ["&File", "&Edit", "&View", "F&ind", "&Help"]
    view = [a.text() for a in menus_by_title["&View"].actions() if not a.isSeparator()]
    assert view == ["Larger Thumbnails", "Smaller Thumbnails", "Preview", "Compare", "Inspect Features", "Folders",
                    "Inspector"]
    tools = [a.text() for a in window.toolbar.actions() if not a.isSeparator() and a.text()]
    assert tools[:7] == ["Open Folder…", "Rescan", "Find Similar", "Compare", "Find Duplicates",
                         window.commands["trash"].text(), "Undo"]
    assert window.commands["dupes"].shortcut().toString() == "Ctrl+D"
