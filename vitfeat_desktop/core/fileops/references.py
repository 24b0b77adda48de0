"""Reference folders (read-only: nothing in them is ever moved) and where a quarantined photo goes.

Quarantine location (when the user does not name one): a folder *on the same volume* as the photo, so the move
is a rename (instant, no extra space, no half-copied files), and *outside the photo folder*, because photo
folders may be synced, backed up or read by other apps that would then see the "deleted" copies. We try, in
order: the app's data dir (when it is on that volume), ``<mount point>/.vitfeat-quarantine``, the highest writable
folder above the photo folder on that volume, and only when none of those can be written, a
``.vitfeat-quarantine`` folder inside the photo folder itself (hidden, and skipped by the scanner because its name
starts with a dot).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.fileops.disk import is_within, mount_point, resolve

QUARANTINE_NAME = ".vitfeat-quarantine"


def reference_folders(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The user's reference folders (setting ``reference_folders``) plus ``extra``, resolved."""
    folders = [Path(p) for p in extra]
    folders.extend(Path(p) for p in settings.load().reference_folders)
    return [resolve(p) for p in folders]


def is_protected(path: str | os.PathLike[str], references: Iterable[Path]) -> bool:
    """True when ``path`` lies in (or is) one of the reference folders; symlinks are resolved on both sides."""
    raw = resolve(Path(path))
    real = Path(os.path.realpath(raw))
    for folder in references:
        folder_real = Path(os.path.realpath(folder))
        if is_within(raw, folder) or is_within(real, folder_real) or is_within(real, folder):
            return True
    return False


def _device(path: Path) -> int:
    """st_dev of ``path`` or of its nearest existing ancestor (the folder we would create it in)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe.stat().st_dev


def _writable_dir(folder: Path) -> bool:
    """True if we can create ``folder`` (or it exists) and write in it; probes with a temp file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".vitfeat-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


def quarantine_root_for(
    path: str | os.PathLike[str],
    photo_roots: Sequence[str | os.PathLike[str]] = (),
    *,
    create: bool = True,
) -> Path:
    """Where a file from ``path`` is quarantined by default (see the module doc for the order and why)."""
    src = resolve(Path(path))
    dev = _device(src)
    roots = [resolve(Path(r)) for r in photo_roots] or [src.parent]
    avoid = roots + reference_folders()

    def usable(folder: Path) -> bool:
        if any(is_within(folder, r) for r in avoid):
            return False
        if _device(folder) != dev:
            return False
        return _writable_dir(folder) if create else True

    candidates = [config.data_dir() / "quarantine", mount_point(src) / QUARANTINE_NAME]
    # Folders above the photo root, top-most first: a quarantine high up is less likely to be synced with photos.
    root = next((r for r in roots if is_within(src, r)), src.parent)
    ancestors = [a for a in reversed(root.parents)]
    candidates.extend(a / QUARANTINE_NAME for a in ancestors)
    for folder in candidates:
        if usable(folder):
            return folder
    # Last resort, and only then: inside the photo folder itself (hidden; the scanner skips dot folders).
    return root / QUARANTINE_NAME
