"""The typed settings read an existing user's settings.json the same, and write it back without losing keys."""

from __future__ import annotations

import json

from vitfeat_desktop import config, settings


def test_an_existing_file_loads_the_same() -> None:
    stored = {"gui_libraries": ["/photos/a", 3, "/photos/b"], "gui_active_library": "/photos/b",
              "gui_thumb_size": 200, "model": "org/vit", "model_fp32": True, "reference_folders": ["/ref"],
              "confirm_trash": False, "threads": 2, "dupes_sensitivity": 0.7, "removal": "quarantine",
              "something_newer": {"x": 1}}
    config.settings_path().parent.mkdir(parents=True, exist_ok=True)
    config.settings_path().write_text(json.dumps(stored), encoding="utf-8")
    s = settings.load()
    assert (s.libraries, s.active_library, s.thumb_size) == (["/photos/a", "/photos/b"], "/photos/b", 200)
    assert (s.model, s.model_fp32, s.reference_folders) == ("org/vit", True, ["/ref"])
    assert (s.confirm_trash, s.threads, s.dupes_sensitivity, s.removal) == (False, 2, 0.7, "quarantine")
    settings.update(thumb_size=120)
    assert settings.read_file() == {**stored, "gui_thumb_size": 120}  # every other key as it was


def test_missing_corrupt_and_wrong_types_give_defaults() -> None:
    assert settings.load() == settings.Settings()
    config.settings_path().parent.mkdir(parents=True, exist_ok=True)
    config.settings_path().write_text("{not json", encoding="utf-8")
    assert settings.load() == settings.Settings()
    config.settings_path().write_text(json.dumps({"gui_thumb_size": "big", "threads": -1, "removal": "shred",
                                                  "model": " ", "model_id": "old/id", "confirm_trash": "no"}))
    s = settings.load()
    assert (s.thumb_size, s.threads, s.removal, s.confirm_trash) == (160, 0, None, True)
    assert s.model == "old/id"  # the first releases' key
    assert settings.Settings().to_dict()["gui_active_library"] is None
