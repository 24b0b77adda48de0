"""First run without a model: the setup panel downloads the default model from a (fake, local) hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakehub import fake_hub  # noqa: F401  (fixture)

from vitfeat_desktop import config
from vitfeat_desktop.core.models import cache

pytestmark = pytest.mark.gui


def test_first_run_download_from_fake_hub(qtbot: Any, make_window: Any, fake_hub: Any,  # noqa: F811
                                          tiny_vit: Path, photo_folder: Path) -> None:
    fake_hub.publish(config.DEFAULT_MODEL_ID, tiny_vit)
    window = make_window(photo_folder, model=None)
    panel = window.setup_panel
    qtbot.waitUntil(lambda: window.library_stack.currentWidget() is panel, timeout=30_000)
    assert "not in the model cache" in panel.detail.text()
    assert "MB" in panel.download_button.text() and panel.download_button.isEnabled()
    with qtbot.waitSignal(window.model_ready, timeout=60_000) as ready:
        panel.download_button.click()
    assert ready.args[0].model_id == config.DEFAULT_MODEL_ID
    assert (cache.cache_folder(config.DEFAULT_MODEL_ID) / "onnx" / "model_quantized.onnx").is_file()
    assert fake_hub.count("GET", "onnx/model_quantized.onnx") >= 1
    # the folder given on the command line opens once the model is there
    with qtbot.waitSignal(window.scan_finished, timeout=60_000):
        pass
    assert window.library_stack.currentWidget() is window.grid
    assert window.library_model.rowCount() == len(list(photo_folder.iterdir()))


def test_download_can_be_cancelled_and_offline_offers_import(qtbot: Any, make_window: Any, fake_hub: Any,  # noqa: F811
                                                             tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.publish(config.DEFAULT_MODEL_ID, tiny_vit)
    fake_hub.add_fault("onnx/model_quantized.onnx", "stall", at=0.2, delay=30)
    window = make_window(None, model=None)
    panel = window.setup_panel
    qtbot.waitUntil(lambda: window.library_stack.currentWidget() is panel, timeout=30_000)
    panel.download_button.click()
    assert panel.cancel_button.isVisible()
    qtbot.waitUntil(lambda: fake_hub.count("GET", "onnx/model_quantized.onnx") >= 1, timeout=30_000)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: "cancelled" in panel.status.text().lower(), timeout=10_000)
    assert window.extractor is None and not panel.cancel_button.isVisible()
    monkeypatch.setenv("VITFEAT_OFFLINE", "1")
    panel.set_missing("model not cached")
    assert not panel.download_button.isEnabled() and panel.import_button.isEnabled()
    assert "Offline" in panel.text.text()
    # importing a model folder (what an offline user does) makes the app usable
    with qtbot.waitSignal(window.model_ready, timeout=60_000):
        panel.import_model(str(tiny_vit))
    assert window.extractor is not None


def test_model_manager_lists_registry_and_cache(qtbot: Any, make_window: Any) -> None:
    from vitfeat_desktop.core.models import registry
    from vitfeat_desktop.gui.models_panel import ModelManagerDialog

    window = make_window(None)
    qtbot.waitUntil(lambda: window.extractor is not None, timeout=30_000)
    dialog = ModelManagerDialog(window.runner, window, active=window.extractor)
    qtbot.addWidget(dialog)
    names = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    for known in registry.KNOWN_MODELS.values():
        assert known.display_name in names
    in_use = [dialog.table.item(r, 4).text() for r in range(dialog.table.rowCount())]
    assert sum(1 for t in in_use if t.startswith("✓")) == 1
    statuses = [dialog.table.item(r, 3).text() for r in range(dialog.table.rowCount())]
    assert "not downloaded" in statuses
