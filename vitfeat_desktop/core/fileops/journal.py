"""The undo journal: an append-only JSON-lines file per batch in the data dir, each line signed with this
installation's key (HMAC-SHA256) and fsync'd before the step it announces is taken.

A journal is data from disk, so it is only believed when every line is authenticated and describes a step this
app takes; one that is not is moved aside (never deleted, never acted on) and the others go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitfeat_desktop import config
from vitfeat_desktop.core.fileops.errors import JournalDamaged, JournalError, JournalWriteError
from vitfeat_desktop.core.fileops.locks import ActiveLock

log = logging.getLogger(__name__)

ACTIONS = ("trash", "quarantine", "move", "copy")
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
    lock = ActiveLock(path)
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
