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


class DownloadError(ModelNotCachedError):
    """A model could not be fetched; the message is one line that says why and what to do.

    It is a :class:`ModelNotCachedError` so callers that handle "this model is not available here" handle a
    failed download the same way. It lives here, not in the downloader, because the lock and the cache raise it
    too (a removal refused while a download runs) and must not import the downloader for it.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def one_line(exc: BaseException, *, first_line: bool = False, limit: int | None = None,
             name_type: bool = False) -> str:
    """An exception as one line for a terminal, a status bar or a report: its message, else its type's name.

    By default every line of the message is kept, joined with single spaces (the CLI prints this); an ``OSError``
    whose message does not name its file gets the file put in front. ``first_line`` keeps only the first line
    (ONNX Runtime and Qt put details on the following ones, and a status bar has room for one), ``limit`` cuts the
    text to that many characters, ``name_type`` puts the type's name in front of anything but an ``OSError`` /
    ``ValueError``, whose messages say what happened on their own (the self-test must say what broke).
    """
    text = str(exc).strip()
    text = (text.splitlines()[0] if text else "") if first_line else " ".join(text.split())
    if not text:
        text = type(exc).__name__
    elif isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    if limit is not None:
        text = text[:limit]
    if name_type and not isinstance(exc, OSError | ValueError):
        text = f"{type(exc).__name__}: {text}"
    return text


def short_reason(exc: BaseException) -> str:
    """Why one file operation or one connection failed, short enough for a "failed" list or a retry log.

    An ``OSError`` gives its ``strerror`` ("Permission denied", not "[Errno 13] Permission denied: '/x/y'": the
    caller names the file), a failed DNS lookup "host name not found" (its strerror is resolver jargon), anything
    else its message on one line.
    """
    import socket  # here, not at the top: most callers never see a socket error

    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return one_line(exc)
