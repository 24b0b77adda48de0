"""The Duplicates view: grouping with keeper/tier/reason, live regrouping, trash + undo, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.qt import answer_next_dialog, wait_scan
from PySide6.QtCore import Qt

pytestmark = pytest.mark.gui


def open_dupes(qtbot: Any, window: Any) -> Any:
    panel = window.dupes_panel
    wait_scan(qtbot, window)
    qtbot.mouseClick(window.toolbar.widgetForAction(window.commands["dupes"]), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.finder is not None and panel.tree.topLevelItemCount() > 0, timeout=30_000)
    return panel


def test_groups_trash_and_undo(qtbot: Any, make_window: Any, photo_folder: Path, trash_home: Path,
                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.gui import dupes_panel

    window = make_window(photo_folder)
    panel = open_dupes(qtbot, window)
    files = sorted(photo_folder.iterdir())
    copy = photo_folder / f"zz_copy_of_{files[0].name}"
    by_keeper = {g.keeper.path: g for g in panel.groups}
    exact = [g for g in panel.groups if copy.name in {Path(p).name for p in g.files}]
    assert len(exact) == 1 and exact[0].tier == "exact"
    group = exact[0]
    assert {Path(p).name for p in group.files} == {files[0].name, copy.name}
    assert group.members[0].tier == "keeper" and group.members[1].tier == "exact"
    assert by_keeper  # every group has a keeper
    # the tree shows the keeper in bold with "KEEP", the copy with its tier and reason, only copies checkable
    rows = {panel.tree.topLevelItem(0).child(j).text(0): panel.tree.topLevelItem(0).child(j)
            for j in range(panel.tree.topLevelItem(0).childCount())}
    kinds = {name: item.text(2) for name, item in rows.items()}
    assert "KEEP" in kinds.values()
    keeper_item = next(it for it in rows.values() if it.text(2) == "KEEP")
    assert not keeper_item.flags() & Qt.ItemFlag.ItemIsUserCheckable
    # similar shots never appear among duplicates
    dup_files = {p for g in panel.groups for p in g.files}
    assert not dup_files & {f.path for shots in panel.similar for f in shots}

    # export before acting: the Export… button, answered by the (patched) save dialog
    csv_path, json_path = tmp_path / "groups.csv", tmp_path / "groups.json"
    for target in (csv_path, json_path):
        monkeypatch.setattr(dupes_panel.QFileDialog, "getSaveFileName", lambda *a, t=target, **k: (str(t), ""))
        qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
        assert target.is_file()
    rows_csv = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert any(r["path"] == str(copy) and r["tier"] == "exact" for r in rows_csv)
    assert json.loads(json_path.read_text())["groups"][0]["keeper"]

    # auto-select checks copies only; trash them; the keeper stays
    qtbot.mouseClick(panel.auto_button, Qt.MouseButton.LeftButton)
    checked = set(panel.checked_paths())
    assert str(copy) in checked and all(g.keeper.path not in checked for g in panel.groups)
    answer_next_dialog(qtbot, "Move to the Trash")
    with qtbot.waitSignal(window.action_done, timeout=30_000) as done:
        qtbot.mouseClick(panel.trash_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert {Path(s).name for s, _ in result.done} == {Path(p).name for p in checked}
    assert not copy.exists() and files[0].exists()
    assert "Undo" in window.undo_label.text()
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=30_000)
    assert copy.name not in {it.path.name for it in window.library_model.items()}

    # undo puts every file back, byte-identical
    with qtbot.waitSignal(window.action_done, timeout=30_000) as undone:
        qtbot.mouseClick(window.toolbar.widgetForAction(window.commands["undo"]), Qt.MouseButton.LeftButton)
    assert set(undone.args[0].restored) == checked
    assert copy.exists() and copy.read_bytes() == files[0].read_bytes()
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=30_000)
    qtbot.waitUntil(lambda: window.library_model.rowCount() == len(list(photo_folder.iterdir())), timeout=30_000)


def test_sensitivity_regroups_live_and_not_a_duplicate(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(photo_folder)
    panel = open_dupes(qtbot, window)
    counts = {}
    for value in (0, 100):
        with qtbot.waitSignal(window.runner.active_changed, timeout=10_000):
            panel.slider.setValue(value)
        qtbot.waitUntil(lambda: not window.runner.is_running("dupes-regroup"), timeout=10_000)
        counts[value] = sum(len(g.members) for g in panel.groups)
    assert counts[0] <= counts[100]  # looser never groups fewer files
    panel.slider.setValue(50)
    qtbot.waitUntil(lambda: not window.runner.is_running("dupes-regroup"), timeout=10_000)
    # "not a duplicate" on the exact copy's row removes it from its group for good
    files = sorted(photo_folder.iterdir())
    copy = str(photo_folder / f"zz_copy_of_{files[0].name}")
    item = next(it for it in panel._members() if it.data(0, Qt.ItemDataRole.UserRole + 1) == copy)
    panel.tree.setCurrentItem(item)
    qtbot.mouseClick(panel.not_dup_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.runner.is_running("dupes-regroup"), timeout=10_000)
    assert all(not (copy in g.files and str(files[0]) in g.files) for g in panel.groups)


def test_keep_this_one_sticks(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(photo_folder)
    panel = open_dupes(qtbot, window)
    files = sorted(photo_folder.iterdir())
    copy = str(photo_folder / f"zz_copy_of_{files[0].name}")
    group = next(g for g in panel.groups if copy in g.files)
    assert group.keeper.path != copy
    item = next(it for it in panel._members() if it.data(0, Qt.ItemDataRole.UserRole + 1) == copy)
    panel.tree.setCurrentItem(item)
    assert panel.keep_button.isEnabled()
    qtbot.mouseClick(panel.keep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(g.keeper.path == copy for g in panel.groups), timeout=30_000)
    kept = next(g for g in panel.groups if g.keeper.path == copy)
    assert kept.members[0].reason == "kept: your choice"
    # a new search of the library (as after reopening it) keeps the choice
    before = panel.finder
    panel.refresh()
    qtbot.waitUntil(lambda: panel.finder is not before, timeout=30_000)
    qtbot.waitUntil(lambda: not window.runner.is_running("dupes-regroup"), timeout=10_000)
    qtbot.waitUntil(lambda: any(copy in g.files for g in panel.groups), timeout=10_000)
    assert next(g for g in panel.groups if copy in g.files).keeper.path == copy
