"""File actions on duplicates (trash, quarantine, move, copy) that can always be undone and never lose a photo.

Deleting is where duplicate finders lose people's pictures, so every action here follows three rules:

1. **Journal first.** Before a file is touched, an ``intent`` line (source, destination, size, SHA-256) is
   appended to a journal in the data dir and fsync'd; a ``done`` line follows once the file is in place. If the
   process dies in between, :func:`recover` (run before every new action or undo) looks at the disk and settles
   each unfinished step: a file that already reached its destination is recorded as moved, a half-copied
   destination is removed (the source is still intact), nothing is ever deleted unless an identical copy exists.
2. **No destructive primitive.** Files go to the system trash (send2trash) or to a quarantine folder; moves use
   ``link`` + ``unlink`` on one volume (never overwriting anything) and copy + fsync + verify + unlink across
   volumes. There is no permanent deletion in this module at all: emptying the trash or the quarantine is left to
   the user, who sees what is there.
3. **Reference folders are read-only.** Every entry point refuses to move a file that lies in a reference folder
   (the caller's list plus the ``reference_folders`` setting), whatever the caller asked for.

Quarantine location (when the user does not name one): a folder *on the same volume* as the photo, so the move
is a rename (instant, no extra space, no half-copied files), and *outside the photo folder*, because photo
folders may be synced, backed up or read by other apps that would then see the "deleted" copies. We try, in
order: the app's data dir (when it is on that volume), ``<mount point>/.vitfeat-quarantine``, the highest writable
folder above the photo folder on that volume, and only when none of those can be written, a
``.vitfeat-quarantine`` folder inside the photo folder itself (hidden, and skipped by the scanner because its name
starts with a dot).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.errors import VitfeatError
from vitfeat_desktop.core.links import same_file
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

log = logging.getLogger(__name__)

QUARANTINE_NAME = ".vitfeat-quarantine"
PART_SUFFIX = ".vitfeat-part"
ACTIONS = ("trash", "quarantine", "move", "copy")
_CHUNK = 1 << 20


class ProtectedFileError(VitfeatError):
    """A file in a reference folder (or a keeper) was about to be moved; no code path may do that."""


class JournalError(VitfeatError):
    """A journal is missing or cannot be read."""


class JournalWriteError(JournalError):
    """The journal could not be written (a full disk): no file may be touched without its journal line."""


class JournalDamaged(JournalError):
    """A journal that cannot be trusted: unreadable, empty, not authenticated by this installation's key, or
    with lines that do not describe an action this app takes. Nothing in it is acted on."""


# --------------------------------------------------------------------------------------------------------------
# helpers


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed; used to prove that what we put back is byte-identical to what we took."""
    from vitfeat_desktop.core.fileio import open_regular

    digest = hashlib.sha256()
    with open_regular(path) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename/link durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def reference_folders(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """The user's reference folders (setting ``reference_folders``) plus ``extra``, resolved."""
    folders = [Path(p) for p in extra]
    folders.extend(Path(p) for p in settings.load().reference_folders)
    return [_resolve(p) for p in folders]


def _resolve(path: Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(path)))


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def is_protected(path: str | os.PathLike[str], references: Iterable[Path]) -> bool:
    """True when ``path`` lies in (or is) one of the reference folders; symlinks are resolved on both sides."""
    raw = _resolve(Path(path))
    real = Path(os.path.realpath(raw))
    for folder in references:
        folder_real = Path(os.path.realpath(folder))
        if _is_within(raw, folder) or _is_within(real, folder_real) or _is_within(real, folder):
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


def _mount_point(path: Path) -> Path:
    probe = Path(os.path.realpath(path))
    while not os.path.ismount(probe) and probe.parent != probe:
        probe = probe.parent
    return probe


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
    src = _resolve(Path(path))
    dev = _device(src)
    roots = [_resolve(Path(r)) for r in photo_roots] or [src.parent]
    avoid = roots + reference_folders()

    def usable(folder: Path) -> bool:
        if any(_is_within(folder, r) for r in avoid):
            return False
        if _device(folder) != dev:
            return False
        return _writable_dir(folder) if create else True

    candidates = [config.data_dir() / "quarantine", _mount_point(src) / QUARANTINE_NAME]
    # Folders above the photo root, top-most first: a quarantine high up is less likely to be synced with photos.
    root = next((r for r in roots if _is_within(src, r)), src.parent)
    ancestors = [a for a in reversed(root.parents)]
    candidates.extend(a / QUARANTINE_NAME for a in ancestors)
    for folder in candidates:
        if usable(folder):
            return folder
    # Last resort, and only then: inside the photo folder itself (hidden; the scanner skips dot folders).
    return root / QUARANTINE_NAME


# --------------------------------------------------------------------------------------------------------------
# journal


KEY_NAME = "journal.key"
_keys: dict[Path, bytes] = {}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _key_path() -> Path:
    """The per-install key: in the data dir's ``keys`` folder, never next to the journals it signs."""
    return config.data_dir() / "keys" / KEY_NAME


def journal_key() -> bytes:
    """This installation's secret for journal MACs, created (0600, 32 random bytes) on first use."""
    path = _key_path()
    key = _keys.get(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) < 32:
            raise JournalError(f"the journal key {path} is damaged; move it away to start a new one") from None
    else:
        key = secrets.token_bytes(32)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
    _keys[path] = key
    return key


def _mac(journal_id: str, record: dict[str, Any]) -> str:
    """HMAC-SHA256 of one journal line (every field but ``mac``), bound to the journal's id so that lines cannot
    be moved from one journal to another."""
    body = json.dumps({k: v for k, v in record.items() if k != "mac"}, sort_keys=True)
    return hmac.new(journal_key(), f"{journal_id}\n{body}".encode(), hashlib.sha256).hexdigest()


def _check_record(record: Any) -> str | None:
    """Why a (MAC-verified) line is not one this app writes, or None."""
    if not isinstance(record, dict) or not isinstance(record.get("op"), str):
        return "a line is not a journal record"
    op = record["op"]
    if op == "begin":
        if record.get("action") not in ACTIONS or not isinstance(record.get("roots", []), list):
            return "its header names no known action"
        return None
    if op in ("end", "undo-begin", "undo-end"):
        return None
    if not isinstance(record.get("i"), int) or isinstance(record.get("i"), bool):
        return f"a {op!r} line has no step number"
    if op == "intent":
        ok = (record.get("action") in ACTIONS and isinstance(record.get("src"), str) and os.path.isabs(record["src"])
              and (record.get("dest") is None or (isinstance(record["dest"], str) and os.path.isabs(record["dest"])))
              and isinstance(record.get("sha256"), str) and _SHA256.match(record["sha256"]) is not None
              and isinstance(record.get("size"), int) and record["size"] >= 0
              and (record.get("within") is None or isinstance(record["within"], str)))
        return None if ok else "an intent line is malformed"
    if op in ("done", "failed", "rolled-back", "undone", "undo-failed"):
        for name in ("dest", "trash_info", "error"):
            if record.get(name) is not None and not isinstance(record[name], str):
                return f"a {op!r} line has a malformed {name}"
        return None
    return f"unknown line {op!r}"


class _ActiveLock:
    """An exclusive lock on ``<journal>.lock`` held while a batch or an undo runs, so that :func:`recover` in
    another process (the CLI while the GUI is moving files) never "settles" steps that are still in progress.
    POSIX only (fcntl); elsewhere recovery relies on being run when nothing else acts."""

    def __init__(self, journal_path: Path) -> None:
        self.path = journal_path.with_suffix(".lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> _ActiveLock:
        if not self.acquire():
            raise JournalError(f"journal {self.path.stem} is in use by another vitfeat process; try again later")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


LIBRARY_LOCK_WAIT_S = 30.0


class _LibraryLock:
    """Exclusive, cross-process locks (``flock``) on the libraries a batch takes files from, taken in a fixed
    order; waits up to :data:`LIBRARY_LOCK_WAIT_S` for another batch to finish. POSIX only, like
    :class:`_ActiveLock`."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]], cancel: CancelFn | None = None) -> None:
        names = sorted({hashlib.sha256(os.fsencode(str(_resolve(Path(r))))).hexdigest()[:20] for r in roots})
        folder = config.data_dir() / "locks"
        self.paths = [folder / f"library-{n}.lock" for n in names]
        self.cancel = cancel
        self._fds: list[int] = []

    def __enter__(self) -> _LibraryLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        deadline = time.monotonic() + LIBRARY_LOCK_WAIT_S
        try:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                self._fds.append(fd)
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError:
                        check_cancel(self.cancel)
                        if time.monotonic() > deadline:
                            raise JournalError("another vitfeat is moving files of this library; nothing was "
                                               "moved; try again when it has finished") from None
                        time.sleep(0.05)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


@dataclass
class Entry:
    """One planned file action as recorded in the journal."""

    i: int
    action: str
    src: str
    dest: str | None
    sha256: str
    size: int
    state: str = "pending"  # pending | done | failed | rolled-back | undone | undo-failed
    trash_info: str | None = None  # freedesktop .trashinfo of a trashed file, to put it back
    error: str = ""
    within: str | None = None  # the folder ``dest`` must lie in (quarantine/move/copy destination root)


@dataclass
class Journal:
    """An append-only JSON-lines file; each line is fsync'd before the step it announces is taken."""

    path: Path
    entries: dict[int, Entry] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    ended: bool = False
    undo_started: bool = False
    undo_ended: bool = False

    @property
    def id(self) -> str:
        return self.path.stem

    @classmethod
    def create(cls, action: str, meta: dict[str, Any] | None = None) -> Journal:
        folder = config.trash_journal_dir()
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
        journal = cls(path)
        journal.header = {"op": "begin", "action": action, "created": time.time(), **(meta or {})}
        journal._append(journal.header)
        return journal

    @property
    def roots(self) -> list[Path]:
        """The folders the batch's sources were in (recorded in its header): nothing outside them is restored."""
        return [Path(str(r)) for r in self.header.get("roots", [])]

    @classmethod
    def load(cls, path: Path) -> Journal:
        """Read a journal, or raise :class:`JournalDamaged` (never act on a journal this install did not write).

        Every line must carry this installation's MAC and describe a step this app takes; only a last line cut
        short by a crash (its step was never started) is ignored.
        """
        journal = cls(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from exc
        lines = data.decode("utf-8", errors="replace").splitlines()
        seen = 0
        for n, line in enumerate(lines):
            try:
                record = json.loads(line)
            except ValueError:
                # A line cut short by a crash (its step was never started, since a step starts only after its
                # line is on disk): it cannot vouch for anything, so it is skipped wherever it is.
                continue
            seen += 1
            mac = record.get("mac") if isinstance(record, dict) else None
            if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(journal.id, record)):
                raise JournalDamaged(f"journal {path.name} line {n + 1} is not authenticated by this installation "
                                     "(edited, copied from elsewhere, or written by an older vitfeat)")
            problem = _check_record(record)
            if problem is not None:
                raise JournalDamaged(f"journal {path.name}: {problem} (line {n + 1})")
            if seen == 1 and record.get("op") != "begin":
                raise JournalDamaged(f"journal {path.name} does not start with its header")
            journal._apply(record)
        if not seen:
            raise JournalDamaged(f"journal {path.name} is empty or unreadable (written on a full disk?)")
        return journal

    def _apply(self, record: dict[str, Any]) -> None:
        op = record.get("op")
        if op == "begin":
            self.header = record
        elif op == "intent":
            self.entries[record["i"]] = Entry(record["i"], record["action"], record["src"], record.get("dest"),
                                              record["sha256"], record["size"], within=record.get("within"))
        elif op in ("done", "failed", "rolled-back", "undone", "undo-failed"):
            entry = self.entries.get(record.get("i", -1))
            if entry is not None:
                entry.state = op
                entry.dest = record.get("dest", entry.dest)
                entry.trash_info = record.get("trash_info", entry.trash_info)
                entry.error = record.get("error", "")
        elif op == "end":
            self.ended = True
        elif op == "undo-begin":
            self.undo_started = True
        elif op == "undo-end":
            self.undo_ended = True

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        signed = {**record, "mac": _mac(self.id, record)}
        try:
            with open(self.path, "a+b") as fh:
                fh.seek(0, os.SEEK_END)
                torn = False
                if fh.tell():
                    fh.seek(-1, os.SEEK_END)
                    torn = fh.read(1) != b"\n"  # a crash cut the last line: start on a line of our own
                fh.write((b"\n" if torn else b"") + (json.dumps(signed, sort_keys=True) + "\n").encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise JournalWriteError(f"cannot write the undo journal {self.path} ({exc.strerror or exc})") from exc

    def record(self, op: str, **fields: Any) -> None:
        record = {"op": op, **fields}
        self._append(record)
        self._apply(record)

    def intent(self, entry: Entry) -> None:
        self.record("intent", i=entry.i, action=entry.action, src=entry.src, dest=entry.dest,
                    sha256=entry.sha256, size=entry.size, within=entry.within)


DAMAGED_DIR = "damaged"


def list_journals() -> list[Journal]:
    """All journals that can be trusted, oldest first.

    A damaged or unauthenticated journal never blocks the others: it is moved to ``journal/damaged/`` with a
    one-line warning (nothing in it is acted on; it stays readable there for the user) and the rest go on.
    """
    folder = config.trash_journal_dir()
    if not folder.is_dir():
        return []
    journals = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            journals.append(Journal.load(path))
        except JournalDamaged as exc:
            _set_aside(path, str(exc))
        except JournalError as exc:
            log.warning("%s; skipped", exc)
    return journals


def _set_aside(path: Path, reason: str) -> None:
    """Move a journal that cannot be trusted out of the way (never deleted), unless another process holds it."""
    lock = _ActiveLock(path)
    if not lock.acquire():
        return  # being written right now: not damaged, only half-read
    try:
        target = path.parent / DAMAGED_DIR / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        with contextlib.suppress(OSError):
            path.with_suffix(".lock").unlink()
        log.warning("%s; nothing in it was acted on; moved it to %s", reason, target)
    except OSError as exc:
        log.warning("%s; nothing in it was acted on (could not move it aside: %s)", reason, exc.strerror or exc)
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------------------------
# primitives


# Test hook: called at each step of a move so a test can simulate a crash there (raise a BaseException).
def _step(stage: str, entry: Entry) -> None:
    return None


def _place(src: Path, dest: Path, sha: str, entry: Entry) -> None:
    """Move ``src`` to ``dest`` without ever overwriting and without a moment where no complete copy exists."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(errno.EEXIST, "destination exists", str(dest))
    try:
        os.link(src, dest)  # atomic, fails if dest exists; same volume only
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        _copy_verified(src, dest, sha, entry)
    _step("placed", entry)
    _fsync_dir(dest.parent)
    os.unlink(src)
    _fsync_dir(src.parent)


def _copy_verified(src: Path, dest: Path, sha: str, entry: Entry) -> None:
    """Copy through ``dest.vitfeat-part``, fsync, check the SHA-256, then link into place (never overwriting)."""
    part = dest.with_name(dest.name + PART_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
    try:
        with open(src, "rb") as fin, open(part, "xb") as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, part)
        _step("copied", entry)
        if sha256_file(part) != sha:
            raise OSError(errno.EIO, "copy does not match the original (disk or network error)", str(dest))
        try:
            os.link(part, dest)
            os.unlink(part)
        except OSError:
            if dest.exists():
                raise
            os.rename(part, dest)  # file systems without hard links; dest was checked absent just before
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise


def _trash_dirs() -> list[Path]:
    """Freedesktop trash folders send2trash may have used (home trash, then per-volume ones)."""
    dirs: list[Path] = []
    try:
        from send2trash import plat_other

        dirs.append(Path(plat_other.HOMETRASH))
    except Exception:
        xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        dirs.append(Path(xdg) / "Trash")
    return dirs


def _trash_candidates(src: Path) -> list[Path]:
    """The trash folders a file from ``src`` can have gone to: the home trash and the volume's own."""
    mount = _mount_point(src)
    uid = getattr(os, "getuid", lambda: 0)()
    return [*_trash_dirs(), mount / ".Trash" / str(uid), mount / f".Trash-{uid}"]


def _find_trashed(src: Path, sha: str, since: float) -> tuple[Path, Path] | None:
    """Locate a file we just trashed (freedesktop trash): its ``files/`` path and its ``.trashinfo``."""
    mount = _mount_point(src)
    candidates = _trash_candidates(src)
    found: list[tuple[float, Path, Path]] = []
    for trash in candidates:
        info_dir = trash / "info"
        if not info_dir.is_dir():
            continue
        for info in info_dir.glob("*.trashinfo"):
            try:
                if info.stat().st_mtime < since - 2:
                    continue
                text = info.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            original = next((unquote(line[5:]) for line in text.splitlines() if line.startswith("Path=")), None)
            if original is None:
                continue
            original_path = Path(original) if os.path.isabs(original) else mount / original
            if _resolve(original_path) != _resolve(src):
                continue
            stored = trash / "files" / info.name[: -len(".trashinfo")]
            if stored.is_file() and sha256_file(stored) == sha:
                found.append((info.stat().st_mtime, stored, info))
    if not found:
        return None
    found.sort()
    return found[-1][1], found[-1][2]


def send_to_trash(path: Path) -> None:
    """The platform's trash, via send2trash (imported lazily: it is only needed when the user acts)."""
    from send2trash import send2trash

    send2trash(str(path))


# --------------------------------------------------------------------------------------------------------------
# actions


@dataclass
class ActionResult:
    """What one batch did; ``journal_id`` is what ``undo`` takes."""

    journal_id: str
    action: str
    done: list[tuple[str, str | None]] = field(default_factory=list)  # (source, where it went)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    def to_dict(self) -> dict[str, Any]:
        return {"journal": self.journal_id, "action": self.action,
                "done": [{"path": s, "dest": d} for s, d in self.done],
                "failed": [{"path": s, "reason": r} for s, r in self.failed]}


def _dest_under(root: Path, src: Path) -> Path:
    """``root/<absolute source path without its anchor>``: unique per source, and shows where it came from."""
    parts = src.parts[1:] if src.anchor else src.parts
    drive = src.drive.replace(":", "").strip("\\/")
    return root.joinpath(*([drive] if drive else []), *parts)


def apply_actions(
    action: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    folder: str | os.PathLike[str] | None = None,
    photo_roots: Sequence[str | os.PathLike[str]] = (),
    keepers: dict[str, str] | None = None,
    references: Iterable[str | os.PathLike[str]] = (),
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ActionResult:
    """Trash / quarantine / move / copy ``paths``, journalled; returns what happened to each file.

    ``folder``: destination for move/copy (required) and quarantine (optional; default from
    :func:`quarantine_root_for`). ``keepers`` maps a file to the copy that is kept instead of it: the action on
    that file is refused if the keeper is gone, so a group can never lose its last copy. Files in reference
    folders are refused, always. One file failing does not stop the others; cancelling stops between files
    and everything done so far stays undoable.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    if action in ("move", "copy") and folder is None:
        raise ValueError(f"{action} needs a destination folder")
    recover()
    refs = reference_folders(references)
    sources = [_resolve(Path(p)) for p in paths]
    for src in sources:  # checked for the whole batch first: a protected file means the plan itself is wrong
        if action != "copy" and is_protected(src, refs):
            raise ProtectedFileError(f"{src} is in a reference folder; reference files are never moved or deleted")
    dest_root = _resolve(Path(folder)) if folder is not None else None
    if dest_root is not None and action != "copy" and is_protected(dest_root, refs):
        raise ProtectedFileError(f"{dest_root} is a reference folder; nothing is written there")
    if dest_root is not None and any(_is_within(dest_root, r) for r in refs):
        raise ProtectedFileError(f"{dest_root} is inside a reference folder; nothing is written there")
    if action == "quarantine" and dest_root is not None:
        for root in photo_roots:
            if _inside(dest_root / "x", _resolve(Path(root))):
                raise VitfeatError(f"the quarantine folder {dest_root} is inside the library {root}: its files "
                                   "would be found as duplicates again and nest deeper on every run; choose a "
                                   "folder outside it")

    roots = sorted({str(_resolve(Path(r))) for r in photo_roots} or {str(src.parent) for src in sources})
    # One batch at a time per library, across processes: two batches planned with opposite keepers (the GUI
    # and the CLI, or two shells with opposite --reference) would otherwise each see the other's keeper still
    # in place and move both. Under the lock every keeper is checked again just before its copy moves.
    with _LibraryLock(photo_roots or roots, cancel):
        try:
            journal = Journal.create(action, {"folder": str(dest_root) if dest_root else None, "roots": roots})
        except JournalWriteError as exc:
            raise JournalError(f"{exc}; nothing was moved") from exc
        with _ActiveLock(journal.path):
            return _apply(journal, action, sources, dest_root, photo_roots, keepers, progress, cancel)


def _apply(journal: Journal, action: str, sources: list[Path], dest_root: Path | None, photo_roots: Sequence[Any],
           keepers: dict[str, str] | None, progress: ProgressFn | None, cancel: CancelFn | None) -> ActionResult:
    result = ActionResult(journal.id, action)
    reporter = Reporter(progress, action, total=len(sources))
    stopped: JournalWriteError | None = None
    try:
        for n, src in enumerate(sources):
            check_cancel(cancel)
            reporter.update(n, src.name)
            try:
                keeper = (keepers or {}).get(str(src))
                if keeper is not None and not Path(keeper).is_file():
                    raise VitfeatError(f"its keeper {keeper} is missing, so this copy is kept")
                if keeper is not None and _resolve(Path(keeper)) == src:
                    raise ProtectedFileError("it is the keeper of its group")
                if keeper is not None and same_file(keeper, src):
                    raise ProtectedFileError(f"it is the same file as its keeper {keeper} (a symbolic or hard "
                                             "link), not a copy; moving it would free nothing or break the link")
                dest, within = _plan_dest(action, src, dest_root, photo_roots, journal.id)
                _run_one(journal, n, action, src, dest, within)
                result.done.append((str(src), journal.entries[n].dest))
            except JournalWriteError:
                raise  # not this file's problem: no further file may be touched without a journal
            except (OSError, VitfeatError) as exc:
                reason = _reason(exc)
                if n in journal.entries and journal.entries[n].state == "pending":
                    journal.record("failed", i=n, error=reason)
                result.failed.append((str(src), reason))
        reporter.update(len(sources), force=True)
    except JournalWriteError as exc:
        stopped = exc
    finally:
        if stopped is None and not any(e.state == "pending" for e in journal.entries.values()):
            try:
                journal.record("end")
            except JournalWriteError as exc:
                stopped = exc
    if stopped is not None:
        moved = len(result.done) + sum(e.state == "pending" for e in journal.entries.values())
        if moved == 0:
            raise JournalError(f"{stopped}; nothing was moved") from stopped
        raise JournalError(f"{stopped}: stopped after {moved} of {len(sources)} files; the rest were not touched; "
                           f"free some space, then put them back with: vitfeat undo {journal.id}") from stopped
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _plan_dest(action: str, src: Path, dest_root: Path | None, photo_roots: Sequence[Any],
               jid: str) -> tuple[Path | None, Path | None]:
    """Where ``src`` goes, and the folder that destination must stay in (checked again on undo)."""
    if action == "trash":
        return None, None
    if action == "quarantine":
        root = dest_root if dest_root is not None else quarantine_root_for(src, photo_roots)
        return _dest_under(root / jid, src), root / jid
    assert dest_root is not None
    dest = dest_root / src.name
    stem, suffix, k = src.stem, src.suffix, 1
    while dest.exists() or dest.with_name(dest.name + PART_SUFFIX).exists():
        k += 1
        dest = dest_root / f"{stem} ({k}){suffix}"
    return dest, dest_root


def _run_one(journal: Journal, n: int, action: str, src: Path, dest: Path | None, within: Path | None) -> None:
    if not src.is_file():
        raise FileNotFoundError(errno.ENOENT, "file not found", str(src))
    size = src.stat().st_size
    sha = sha256_file(src)
    entry = Entry(n, action, str(src), str(dest) if dest else None, sha, size,
                  within=str(within) if within else None)
    journal.intent(entry)
    _step("intent", entry)
    if action == "trash":
        since = time.time()
        send_to_trash(src)
        _step("trashed", entry)
        where = _find_trashed(src, sha, since)
        journal.record("done", i=n, dest=str(where[0]) if where else None,
                       trash_info=str(where[1]) if where else None)
    elif action == "copy":
        assert dest is not None
        dest.parent.mkdir(parents=True, exist_ok=True)
        _copy_verified(src, dest, sha, entry)
        journal.record("done", i=n, dest=str(dest))
    else:
        assert dest is not None
        _place(src, dest, sha, entry)
        journal.record("done", i=n, dest=str(dest))


# --------------------------------------------------------------------------------------------------------------
# recovery and undo


def _real(path: Path) -> Path:
    """``path`` with its folder's symlinks and ``..`` resolved (the name itself is kept, links included)."""
    return Path(os.path.realpath(path.parent)) / path.name


def _inside(path: Path, folder: Path) -> bool:
    return _is_within(_real(path), Path(os.path.realpath(folder)))


def _check_paths(journal: Journal, entry: Entry) -> None:
    """Refuse a step whose paths are not where this action puts and takes files (a journal is data: even an
    authenticated one is only believed about files inside the folders its action involved)."""
    src = Path(entry.src)
    roots = journal.roots
    if not roots or not any(_inside(src, r) for r in roots):
        raise JournalError(f"{src} is outside the folders this action took files from; left as is")
    dest = Path(entry.dest) if entry.dest else None
    if entry.action == "trash":
        trashes = [Path(os.path.realpath(t)) for t in _trash_candidates(src)]
        if dest is not None and not any(_real(dest).parent == t / "files" for t in trashes):
            raise JournalError(f"{dest} is not in a trash folder; left as is")
        if entry.trash_info is not None:
            info = Path(entry.trash_info)
            if dest is None or _real(info) != _real(dest).parent.parent / "info" / f"{dest.name}.trashinfo":
                raise JournalError(f"{info} is not the trash record of {dest}; left as is")
        return
    within = Path(entry.within) if entry.within else None
    folder = journal.header.get("folder")
    if within is None or dest is None or not _inside(dest, within):
        raise JournalError(f"{dest} is outside the folder this action wrote to; left as is")
    if entry.action == "quarantine":
        expected_ok = within.name == journal.id and (
            folder is None or _real(within) == _real(Path(folder) / journal.id))
    else:
        expected_ok = folder is not None and _real(within) == _real(Path(folder))
    if not expected_ok:
        raise JournalError(f"{within} is not the folder this action wrote to; left as is")


def _settle(entry: Entry, journal: Journal) -> tuple[str, dict[str, Any]]:
    """Decide what an unfinished step actually did by looking at the disk. Recovery never deletes anything: a
    half-written ``.vitfeat-part`` or a second complete copy is left where it is (harmless, in the destination
    folder), because only what the journal proves may be acted on and a crash proves nothing about the disk."""
    try:
        _check_paths(journal, entry)
    except JournalError as exc:
        return "failed", {"error": str(exc)}
    src = Path(entry.src)
    dest = Path(entry.dest) if entry.dest else None
    src_ok = src.is_file() and src.stat().st_size == entry.size and sha256_file(src) == entry.sha256
    if entry.action == "trash":
        if src_ok:
            return "rolled-back", {}
        where = _find_trashed(src, entry.sha256, 0)
        return "done", {"dest": str(where[0]) if where else None, "trash_info": str(where[1]) if where else None}
    assert dest is not None
    dest_ok = dest.is_file() and dest.stat().st_size == entry.size and sha256_file(dest) == entry.sha256
    if entry.action == "copy":
        return ("done", {}) if dest_ok else ("rolled-back", {})
    if src_ok and dest_ok:
        # Crash between placing the copy and removing the source (or the source is a link to the destination):
        # the original is still in place; the second name in the destination folder stays, unused.
        return "rolled-back", {"error": f"an identical copy was left at {dest}"}
    if dest_ok:
        return "done", {}
    if src_ok:
        return "rolled-back", {}
    return "failed", {"error": "neither the original nor the moved copy matches the journal"}


def recover(finished: list[UndoResult] | None = None) -> list[str]:
    """Finish the journals a crash left open; returns their ids. Run before any new action or undo.

    ``finished`` receives the outcome of every undo that a crash interrupted and recovery completed (so the
    caller can say what was put back, rather than "nothing to undo")."""
    settled: list[str] = []
    for journal in list_journals():
        pending = [e for e in journal.entries.values() if e.state == "pending"]
        undo_pending = journal.undo_started and not journal.undo_ended
        if journal.ended and not pending and not undo_pending:
            continue
        lock = _ActiveLock(journal.path)
        if not lock.acquire():
            continue  # another process is acting on it right now: not a crash
        try:
            journal = Journal.load(journal.path)  # re-read under the lock
            outcome = _recover_one(journal)
            if outcome is not None and finished is not None:
                finished.append(outcome)
        finally:
            lock.release()
        settled.append(journal.id)
    return settled


def _recover_one(journal: Journal) -> UndoResult | None:
    pending = [e for e in journal.entries.values() if e.state == "pending"]
    undo_pending = journal.undo_started and not journal.undo_ended
    for entry in pending:
        state, extra = _settle(entry, journal)
        journal.record(state, i=entry.i, **extra)
    if not journal.ended:
        journal.record("end", recovered=True)
    if undo_pending:
        result = UndoResult(journal.id)
        _undo_journal(journal, result)
        return result
    return None


@dataclass
class UndoResult:
    journal_id: str
    restored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"journal": self.journal_id, "restored": self.restored,
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


def undo(journal_id: str | None = None, *, progress: ProgressFn | None = None,
         cancel: CancelFn | None = None) -> UndoResult:
    """Put back every file of a batch (the latest one not yet undone when ``journal_id`` is None).

    Each file is checked against its journalled SHA-256 before it is put back, so what returns is byte-identical
    to what left. A file whose original path is now taken by a different file is left where it is and reported.
    """
    finished: list[UndoResult] = []
    recover(finished)
    journals = list_journals()
    if journal_id is not None and any(r.journal_id == journal_id for r in finished):
        return next(r for r in finished if r.journal_id == journal_id)  # recovery just finished that undo
    if journal_id is None:
        candidates = [j for j in journals if any(e.state == "done" for e in j.entries.values())
                      and not j.undo_ended]
        if not candidates and finished:
            return finished[-1]  # an undo a crash interrupted: recovery put these back
        if not candidates:
            raise JournalError("nothing to undo")
        journal = candidates[-1]
    else:
        match = [j for j in journals if j.id == journal_id]
        if not match:
            raise JournalError(f"no journal named {journal_id}")
        journal = match[0]
    result = UndoResult(journal.id)
    with _ActiveLock(journal.path):
        journal.record("undo-begin")
        _undo_journal(journal, result, progress, cancel)
    return result


def _undo_journal(journal: Journal, result: UndoResult, progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None) -> None:
    entries = sorted((e for e in journal.entries.values() if e.state == "done"), key=lambda e: -e.i)
    reporter = Reporter(progress, "undo", total=len(entries))
    for n, entry in enumerate(entries):
        check_cancel(cancel)
        reporter.update(n, Path(entry.src).name)
        try:
            _check_paths(journal, entry)
            _undo_one(entry)
            journal.record("undone", i=entry.i)
            result.restored.append(entry.src)
        except (OSError, VitfeatError) as exc:
            reason = _reason(exc)
            journal.record("undo-failed", i=entry.i, error=reason)
            result.failed.append((entry.src, reason))
    journal.record("undo-end")


def _undo_one(entry: Entry) -> None:
    src = Path(entry.src)
    if entry.action == "copy":
        dest = Path(entry.dest or "")
        if (dest.is_file() and not dest.is_symlink() and sha256_file(dest) == entry.sha256 and src.is_file()
                and sha256_file(src) == entry.sha256):
            os.unlink(dest)  # our copy, and the original is still there, identical
            return
        raise VitfeatError(f"the copy {dest} changed or its original is gone; left as is")
    where = Path(entry.dest) if entry.dest else None
    if where is None and entry.action == "trash":
        found = _find_trashed(src, entry.sha256, 0)
        if found is None:
            raise VitfeatError("not found in the trash; restore it with your file manager's 'Restore'")
        where = found[0]
        entry.trash_info = str(found[1])
    if where is None or not where.is_file():
        if src.is_file() and sha256_file(src) == entry.sha256:
            return  # already back (restored by hand)
        raise VitfeatError(f"{where or 'the moved file'} is gone (trash or quarantine emptied?)")
    if sha256_file(where) != entry.sha256:
        raise VitfeatError(f"{where} no longer matches the original; left as is")
    if src.exists():
        if src.is_file() and sha256_file(src) == entry.sha256:
            return  # an identical file is already at the original path; the extra copy stays where it is
        raise VitfeatError(f"{src} now holds a different file; the original is still at {where}")
    _place(where, src, entry.sha256, entry)
    if sha256_file(src) != entry.sha256:  # pragma: no cover - _place verifies cross-volume copies already
        raise VitfeatError(f"restored {src} does not match the original")
    if entry.trash_info and _trash_info_names(Path(entry.trash_info), src):
        with contextlib.suppress(OSError):
            os.unlink(entry.trash_info)  # the trash's record of the file we just took back out of it


def _trash_info_names(info: Path, src: Path) -> bool:
    """True when ``info`` is a ``.trashinfo`` whose ``Path=`` is ``src`` (so removing it removes nothing else)."""
    if info.suffix != ".trashinfo" or info.parent.name != "info" or info.is_symlink():
        return False
    try:
        text = info.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    original = next((unquote(line[5:]) for line in text.splitlines() if line.startswith("Path=")), None)
    if original is None:
        return False
    original_path = Path(original) if os.path.isabs(original) else _mount_point(src) / original
    return _resolve(original_path) == _resolve(src)
