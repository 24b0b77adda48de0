"""File actions on duplicates (trash, quarantine, move, copy) that can always be undone and never lose a photo.

Deleting is where duplicate finders lose people's pictures, so every action here follows three rules:

1. **Journal first.** Before a file is touched, an ``intent`` line (source, destination, size, SHA-256) is
   appended to a journal in the data dir and fsync'd; a ``done`` line follows once the file is in place. If the
   process dies in between, :func:`recover` (run before every new action or undo) looks at the disk and settles
   each unfinished step: a file that already reached its destination is recorded as moved, a half-copied
   destination is removed (the source is still intact), nothing is ever deleted unless an identical copy exists.
2. **No destructive primitive.** Files go to the system trash (send2trash) or to a quarantine folder; moves use
   ``link`` + ``unlink`` on one volume (never overwriting anything) and copy + fsync + verify + unlink across
   volumes. There is no permanent deletion in this package at all: emptying the trash or the quarantine is left to
   the user, who sees what is there.
3. **Reference folders are read-only.** Every entry point refuses to move a file that lies in a reference folder
   (the caller's list plus the ``reference_folders`` setting), whatever the caller asked for.

Here: the actions (:func:`apply_actions`), recovery after a crash (:func:`recover`) and :func:`undo`. The journal,
the locks, the trash, the reference folders and the disk helpers are the other modules of this package.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitfeat_desktop.core.errors import VitfeatError, short_reason
from vitfeat_desktop.core.fileio import sha256_file
from vitfeat_desktop.core.fileops.disk import CHUNK, fsync_dir, inside, is_within, real_path, resolve
from vitfeat_desktop.core.fileops.errors import JournalError, JournalWriteError, ProtectedFileError
from vitfeat_desktop.core.fileops.journal import ACTIONS, Entry, Journal, list_journals
from vitfeat_desktop.core.fileops.locks import ActiveLock, LibraryLock
from vitfeat_desktop.core.fileops.references import is_protected, quarantine_root_for, reference_folders
from vitfeat_desktop.core.fileops.trash import find_trashed, send_to_trash, trash_candidates, trash_info_names
from vitfeat_desktop.core.links import same_file
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

PART_SUFFIX = ".vitfeat-part"


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
    fsync_dir(dest.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def _copy_verified(src: Path, dest: Path, sha: str, entry: Entry) -> None:
    """Copy through ``dest.vitfeat-part``, fsync, check the SHA-256, then link into place (never overwriting)."""
    part = dest.with_name(dest.name + PART_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
    try:
        with open(src, "rb") as fin, open(part, "xb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
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
    sources = [resolve(Path(p)) for p in paths]
    for src in sources:  # checked for the whole batch first: a protected file means the plan itself is wrong
        if action != "copy" and is_protected(src, refs):
            raise ProtectedFileError(f"{src} is in a reference folder; reference files are never moved or deleted")
    dest_root = resolve(Path(folder)) if folder is not None else None
    if dest_root is not None and action != "copy" and is_protected(dest_root, refs):
        raise ProtectedFileError(f"{dest_root} is a reference folder; nothing is written there")
    if dest_root is not None and any(is_within(dest_root, r) for r in refs):
        raise ProtectedFileError(f"{dest_root} is inside a reference folder; nothing is written there")
    if action == "quarantine" and dest_root is not None:
        for root in photo_roots:
            if inside(dest_root / "x", resolve(Path(root))):
                raise VitfeatError(f"the quarantine folder {dest_root} is inside the library {root}: its files "
                                   "would be found as duplicates again and nest deeper on every run; choose a "
                                   "folder outside it")

    roots = sorted({str(resolve(Path(r))) for r in photo_roots} or {str(src.parent) for src in sources})
    # One batch at a time per library, across processes: two batches planned with opposite keepers (the GUI
    # and the CLI, or two shells with opposite --reference) would otherwise each see the other's keeper still
    # in place and move both. Under the lock every keeper is checked again just before its copy moves.
    with LibraryLock(photo_roots or roots, cancel):
        try:
            journal = Journal.create(action, {"folder": str(dest_root) if dest_root else None, "roots": roots})
        except JournalWriteError as exc:
            raise JournalError(f"{exc}; nothing was moved") from exc
        with ActiveLock(journal.path):
            return _apply(journal, action, sources, dest_root, photo_roots, keepers, progress, cancel)


def _apply(journal: Journal, action: str, sources: list[Path], dest_root: Path | None,
           photo_roots: Sequence[str | os.PathLike[str]], keepers: dict[str, str] | None,
           progress: ProgressFn | None, cancel: CancelFn | None) -> ActionResult:
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
                if keeper is not None and resolve(Path(keeper)) == src:
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
                reason = short_reason(exc)
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


def _plan_dest(action: str, src: Path, dest_root: Path | None, photo_roots: Sequence[str | os.PathLike[str]],
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
        where = find_trashed(src, sha, since)
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


def _check_paths(journal: Journal, entry: Entry) -> None:
    """Refuse a step whose paths are not where this action puts and takes files (a journal is data: even an
    authenticated one is only believed about files inside the folders its action involved)."""
    src = Path(entry.src)
    roots = journal.roots
    if not roots or not any(inside(src, r) for r in roots):
        raise JournalError(f"{src} is outside the folders this action took files from; left as is")
    dest = Path(entry.dest) if entry.dest else None
    if entry.action == "trash":
        trashes = [Path(os.path.realpath(t)) for t in trash_candidates(src)]
        if dest is not None and not any(real_path(dest).parent == t / "files" for t in trashes):
            raise JournalError(f"{dest} is not in a trash folder; left as is")
        if entry.trash_info is not None:
            info = Path(entry.trash_info)
            if dest is None or real_path(info) != real_path(dest).parent.parent / "info" / f"{dest.name}.trashinfo":
                raise JournalError(f"{info} is not the trash record of {dest}; left as is")
        return
    within = Path(entry.within) if entry.within else None
    folder = journal.header.get("folder")
    if within is None or dest is None or not inside(dest, within):
        raise JournalError(f"{dest} is outside the folder this action wrote to; left as is")
    if entry.action == "quarantine":
        expected_ok = within.name == journal.id and (
            folder is None or real_path(within) == real_path(Path(folder) / journal.id))
    else:
        expected_ok = folder is not None and real_path(within) == real_path(Path(folder))
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
        where = find_trashed(src, entry.sha256, 0)
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
        lock = ActiveLock(journal.path)
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
    with ActiveLock(journal.path):
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
            reason = short_reason(exc)
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
        found = find_trashed(src, entry.sha256, 0)
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
    if entry.trash_info and trash_info_names(Path(entry.trash_info), src):
        with contextlib.suppress(OSError):
            os.unlink(entry.trash_info)  # the trash's record of the file we just took back out of it
