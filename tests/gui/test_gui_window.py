"""The main window end to end on the offscreen platform, with a tiny generated ViT and ~10 photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.qt import wait_scan
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

from vitfeat_desktop import config, settings
from vitfeat_desktop.gui import thumbs

pytestmark = pytest.mark.gui


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))


def drop(window: Any, path: Path) -> None:
    """What a file manager does: a drag enters the window (it must accept), then the drop."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)


def test_open_folder_indexes_and_fills_grid(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(photo_folder)
    report = wait_scan(qtbot, window)
    files = image_files(photo_folder)
    assert report.indexed == len(files)
    assert window.library_model.rowCount() == len(files)
    assert {it.path.name for it in window.library_model.items()} == {p.name for p in files}
    assert "10 photos" in window.status_label.text()
    assert not window.progress_bar.isVisible() and not window.cancel_button.isVisible()
    # thumbnails are rendered lazily by the delegate and cached on disk, outside the photo folder
    window.grid.viewport().repaint()
    qtbot.waitUntil(lambda: window.loader.rendered >= 1, timeout=20_000)
    cached = list(thumbs.thumb_dir().rglob("*.jpg"))
    assert cached and all(config.data_dir() in p.parents for p in cached)
    assert {p.name for p in photo_folder.iterdir()} == {p.name for p in files}  # nothing written there
    # sorting by size puts the largest file first
    window.sort_combo.setCurrentIndex(window.sort_combo.findData("size"))
    sizes = [it.size for it in window.library_model.items()]
    assert sizes == sorted(sizes, reverse=True)
    # the library is remembered and reopened (incrementally: nothing re-embedded) by the next window
    window.close()
    again = make_window(None)
    report2 = wait_scan(qtbot, again)
    assert again.library_folder == photo_folder.resolve()
    assert report2.indexed == 0 and report2.unchanged == len(files)
    assert again.library_model.rowCount() == len(files)


def test_drop_image_shows_similar_with_scores(qtbot: Any, make_window: Any, photo_folder: Path,
                                              tmp_path: Path) -> None:
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    files = image_files(photo_folder)
    query = files[0]
    with qtbot.waitSignal(window.similar_ready, timeout=30_000) as blocker:
        drop(window, query)
    items = blocker.args[0]
    assert window.tabs.currentWidget() is window.similar_panel
    assert window.similar_model.rowCount() == len(items) == len(files) - 1  # all others, the query excluded
    scores = [it.score for it in items]
    assert scores == sorted(scores, reverse=True)
    # the byte-identical copy of the query is the best match, with similarity 1
    assert items[0].path.name == f"zz_copy_of_{query.name}"
    assert items[0].score == pytest.approx(1.0, abs=1e-4)
    # a file from outside the library works too (not indexed)
    outside = tmp_path / "outside.png"
    from PIL import Image

    with Image.open(files[3]) as im:
        im.convert("RGB").save(outside)
    with qtbot.waitSignal(window.similar_ready, timeout=30_000) as blocker2:
        drop(window, outside)
    assert blocker2.args[0][0].path.name == files[3].name
    # dropping something that is neither an image nor a folder says so and changes nothing
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    drop(window, junk)
    assert "not a folder or a supported image" in window.status_label.text()


def test_cancel_indexing_keeps_app_usable(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(None)
    window.library_ready.connect(window.cancel_scan)  # cancel right after the scan job was submitted
    with qtbot.waitSignal(window.scan_cancelled, timeout=30_000):
        window.open_folder(photo_folder)
    window.library_ready.disconnect(window.cancel_scan)
    assert "cancelled" in window.status_label.text().lower()
    assert not window.cancel_button.isVisible() and not window.progress_bar.isVisible()
    qtbot.waitUntil(lambda: not window.runner.is_running("scan"), timeout=10_000)
    with qtbot.waitSignal(window.scan_finished, timeout=60_000):
        window.rescan()
    assert window.library_model.rowCount() == len(image_files(photo_folder))


def test_inspector_shows_real_shape_and_exports(qtbot: Any, make_window: Any, photo_folder: Path,
                                                tmp_path: Path) -> None:
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    path = image_files(photo_folder)[2]
    with qtbot.waitSignal(window.inspection_ready, timeout=30_000) as blocker:
        window.inspect(path)
    ins = blocker.args[0]
    assert ins.shape_text() == "last_hidden_state [1, 197, 32]"
    assert "last_hidden_state [1, 197, 32]" in window.inspector.fields["output"].text()
    assert window.inspector.fields["tokens"].text().startswith("197 = 1 CLS + 196 patches")
    assert window.inspector.fields["grid"].text() == "14 × 14"
    assert ins.heat.shape == (14, 14) and ins.heat.min() >= 0.0 and ins.heat.max() <= 1.0
    assert ins.pooled_size == 32 and ins.pooled_name == "pooler_output"
    assert ins.dtype == "float32"
    # the numbers match a direct pipeline call on the same file
    direct = window.extractor(str(path))
    np.testing.assert_allclose(ins.features, direct, rtol=1e-4, atol=1e-4)
    assert ins.stats["std"] == pytest.approx(float(direct.std()), rel=1e-4)
    window.inspector.copy_json()
    data = json.loads(QGuiApplication.clipboard().text())
    assert data["output"]["shape"] == [1, 197, 32] and data["tokens"]["patch_grid"] == [14, 14]
    saved = window.inspector.save_npy(str(tmp_path / "f.npy"))
    assert saved is not None and np.load(saved).shape == (1, 197, 32)


def test_inspector_without_pooler(qtbot: Any, make_window: Any, tiny_vit_no_pooler: Path,
                                  photo_folder: Path) -> None:
    window = make_window(None, model=str(tiny_vit_no_pooler))
    qtbot.waitUntil(lambda: window.extractor is not None, timeout=30_000)
    with qtbot.waitSignal(window.inspection_ready, timeout=30_000) as blocker:
        window.inspect(image_files(photo_folder)[0])
    assert blocker.args[0].pooled_name.startswith("CLS token")


def test_compare_loads_every_pane(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(None)
    files = image_files(photo_folder)[:3]
    window.compare(files)
    assert window.tabs.currentWidget() is window.compare_panel
    qtbot.waitUntil(lambda: all(not v.item.pixmap().isNull() for v in window.compare_panel.views), timeout=20_000)
    captions = [c.text() for c in window.compare_panel.captions]
    assert all(" px" in c and "kB" in c for c in captions)
    # "100 %" (clicked) shows the first photo's pixels 1:1 in every pane; panning one pane pans the others
    qtbot.mouseClick(window.compare_panel.actual_button, Qt.MouseButton.LeftButton)
    views = window.compare_panel.views
    assert all(v.scale_factor() == pytest.approx(1.0) for v in views)
    h = views[0].horizontalScrollBar()
    h.setValue(h.maximum())
    centre = views[0].center()
    for v in views[1:]:
        assert v.center().x() == pytest.approx(centre.x(), abs=2) and v.center().y() == pytest.approx(centre.y(), abs=2)


def test_close_drains_running_jobs(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(photo_folder)
    qtbot.waitUntil(lambda: window.runner.is_running("scan"), timeout=30_000)
    window.close()  # while indexing: cancels and drains (make_window asserts nothing is left)
    assert window.runner.active_count() == 0
    assert window.runner.pool.activeThreadCount() == 0


def test_drop_folder_opens_it(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(None)
    qtbot.waitUntil(lambda: window.extractor is not None, timeout=30_000)
    with qtbot.waitSignal(window.scan_finished, timeout=60_000):
        drop(window, photo_folder)
    assert window.library_model.rowCount() == len(image_files(photo_folder))


def test_inspector_heatmap_compares_patches_to_the_query(qtbot: Any, make_window: Any, photo_folder: Path) -> None:
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    files = image_files(photo_folder)
    with qtbot.waitSignal(window.similar_ready, timeout=30_000):
        window.find_similar(files[0])
    assert window.similar_panel.query_vector is not None and window.similar_panel.query_vector.shape == (32,)
    with qtbot.waitSignal(window.inspection_ready, timeout=30_000) as blocker:
        window.inspect(files[4])
    ins = blocker.args[0]
    assert ins.heat_mode.startswith("cosine similarity")
    # the map is the per-patch cosine to the query, rescaled to 0..1
    q = window.similar_panel.query_vector / np.linalg.norm(window.similar_panel.query_vector)
    patches = ins.features[0, 1:]
    sims = patches @ q / np.linalg.norm(patches, axis=1)
    expected = (sims - sims.min()) / (sims.max() - sims.min())
    np.testing.assert_allclose(ins.heat.ravel(), expected, atol=1e-5)


def test_model_change_reindexes_and_keeps_old_index_meanwhile(qtbot: Any, make_window: Any, photo_folder: Path,
                                                              tiny_vit_no_pooler: Path) -> None:
    window = make_window(photo_folder)
    wait_scan(qtbot, window)
    old = window.library
    during: list[Any] = []
    window.library_ready.connect(lambda: during.append(window.query_library()))
    with qtbot.waitSignal(window.scan_finished, timeout=60_000) as finished:
        window.session.choose_model(str(tiny_vit_no_pooler), True)
    assert during and during[0] is old  # searches used the previous model's index while re-indexing
    assert window.library is not old and window.query_library() is window.library
    # every photo embedded with the new model; the exact copy may reuse its original's vector when the original
    # was committed first (a race between decode batches), so it counts as reused rather than indexed
    report = finished.args[0]
    assert report.indexed + report.reused == len(image_files(photo_folder)) and report.indexed >= len(
        image_files(photo_folder)) - 1
    assert settings.read_file()["model"] == str(tiny_vit_no_pooler)
    with qtbot.waitSignal(window.similar_ready, timeout=30_000) as got:
        window.find_similar(image_files(photo_folder)[0])
    assert len(got.args[0]) == len(image_files(photo_folder)) - 1


def test_settings_thread_count_and_geometry_persist(qtbot: Any, make_window: Any) -> None:
    settings.update(threads=1)
    window = make_window(None)
    qtbot.waitUntil(lambda: window.extractor is not None, timeout=30_000)
    assert window.extractor.intra_op_threads == 1
    window.resize(window.width(), 701)
    window.close()
    again = make_window(None)
    assert again.height() == 701  # window geometry comes back from QSettings
