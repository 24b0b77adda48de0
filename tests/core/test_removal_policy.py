"""What "remove" does on each system: the trash only where vitfeat's Undo can take files back out of it."""

from __future__ import annotations

import pytest

from vitfeat_desktop import settings


@pytest.mark.parametrize(("platform", "undo", "action"), [
    ("linux", True, "trash"), ("freebsd14", True, "trash"),
    ("win32", False, "quarantine"), ("cygwin", False, "quarantine"), ("darwin", False, "quarantine"),
])
def test_default_removal_per_system(platform: str, undo: bool, action: str) -> None:
    assert settings.trash_undo_supported(platform) is undo
    assert settings.default_removal_action(platform) == action


def test_the_users_choice_wins_and_nonsense_is_ignored() -> None:
    settings.update(removal="trash")
    assert settings.default_removal_action("darwin") == "trash"
    settings.update(removal="quarantine")
    assert settings.default_removal_action("linux") == "quarantine"
    settings.update(removal="shred")
    assert settings.default_removal_action("linux") == "trash"
