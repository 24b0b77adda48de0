"""Wording the window shows for messages that the core writes for every front end.

The core's errors are one line, fit for a terminal; a few name a CLI command as the way out ("run: vitfeat model
import PATH --id ..."), which is no help to someone looking at an Import button, and some libraries' reasons reach
us as the ``repr`` of bytes (``b'Unsupported file format or not RAW file'``). Kept here so every view says it the
same way.
"""

from __future__ import annotations

import re

IMPORT_BUTTON = 'the "Import from a folder or file…" button'
_CLI_RUN = re.compile(r"\s*and run:\s*vitfeat model import (?:PATH|FILE\.onnx)(?: --id \S+)?")
_CLI_IMPORT = re.compile(r"(?:\s*with:?)?\s*\(?vitfeat model import (?:PATH|FILE\.onnx)(?: --id \S+)?\)?")
_BYTES_REPR = re.compile(r"""\bb(['"])(.*?)\1""")


def for_window(message: str) -> str:
    """``message`` as the window says it: CLI import hints point at the Import button, bytes reprs read as text."""
    text = _BYTES_REPR.sub(lambda m: m.group(2), str(message))
    text = _CLI_RUN.sub(" and import it with " + IMPORT_BUTTON, text)
    text = _CLI_IMPORT.sub(" with " + IMPORT_BUTTON, text)
    return re.sub(r"\s{2,}", " ", text).strip()


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 set"``, ``"2 sets"``: the count with the right form of the noun."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
