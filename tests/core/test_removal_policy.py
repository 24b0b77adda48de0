"""What "remove" does on each system: the trash only where vitfeat's Undo can take files back out of it."""

from __future__ import annotations

import pytest

from vitfeat_desktop import config


@pytest.mark.parametrize(("platform", "undo", "action"), [
    ("linux", True, "trash"), ("freebsd14", True, "trash"),
    ("win32", False, "quarantine"), ("cygwin", False, "quarantine"), ("darwin", False, "quarantine"),
])
def test_default_removal_per_system(platform: str, undo: bool, action: str) -> None:
    assert config.trash_undo_supported(platform) is undo
    assert config.default_removal_action(platform) == action


def test_the_users_choice_wins_and_nonsense_is_ignored() -> None:
    config.save_settings({config.SETTING_REMOVAL: "trash"})
    assert config.default_removal_action("darwin") == "trash"
    config.save_settings({config.SETTING_REMOVAL: "quarantine"})
    assert config.default_removal_action("linux") == "quarantine"
    config.save_settings({config.SETTING_REMOVAL: "shred"})
    assert config.default_removal_action("linux") == "trash"
