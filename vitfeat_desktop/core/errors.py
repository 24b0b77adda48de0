"""Errors that reach the user: each message is one line that says what happened and what to do."""

from __future__ import annotations


class VitfeatError(Exception):
    """Base class for errors whose message is fit to show to a user as is (the CLI prints it, no traceback)."""


class ImageReadError(VitfeatError):
    """An image could not be opened or decoded; ``reason`` is short enough for a "skipped" list."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot read image {path}: {reason}")


class ModelError(VitfeatError):
    """A model folder is missing, incomplete or not an image encoder we can run."""


class ModelNotCachedError(ModelError):
    """A hub id was asked for that is not in the local model cache (and could not or may not be downloaded)."""


class Cancelled(VitfeatError):
    """The caller's ``cancel`` callback asked us to stop; work done so far is kept."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)
