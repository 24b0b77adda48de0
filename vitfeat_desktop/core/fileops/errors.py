"""What can go wrong with a file action, as exceptions the CLI and the GUI show as they are (a
:class:`~vitfeat_desktop.core.errors.VitfeatError`'s message is the sentence the user reads)."""

from __future__ import annotations

from vitfeat_desktop.core.errors import VitfeatError


class ProtectedFileError(VitfeatError):
    """A file in a reference folder (or a keeper) was about to be moved; no code path may do that."""


class JournalError(VitfeatError):
    """A journal is missing or cannot be read."""


class JournalWriteError(JournalError):
    """The journal could not be written (a full disk): no file may be touched without its journal line."""


class JournalDamaged(JournalError):
    """A journal that cannot be trusted: unreadable, empty, not authenticated by this installation's key, or
    with lines that do not describe an action this app takes. Nothing in it is acted on."""
