"""What duplicate finding hands out and takes in: a file's facts (:class:`FileInfo`), the groups and sets it
finds (:class:`DuplicateGroup`, :class:`Member`, :class:`SimilarSet`) and the tier names.

Plain records with no behaviour beyond their own fields, so the CLI, the GUI and the exporter can use them
without pulling in the finder's maths.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vitfeat_desktop.core.images import RAW_EXTENSIONS
from vitfeat_desktop.core.phash import ImageHashes

if TYPE_CHECKING:
    from vitfeat_desktop.core.library.catalog import FileRecord

TIERS = ("exact", "same-pixels", "near-duplicate", "similar")
TIER_RANK = {t: n for n, t in enumerate(TIERS)}
RAW_FORMATS = frozenset({"DNG", "CR2", "CR3", "NEF", "NRW", "ARW", "RAF", "ORF", "RW2", "PEF", "SRW", "RAW"})


@dataclass(frozen=True)
class FileInfo:
    """What duplicate finding needs to know about one file (a subset of the catalogue's FileRecord)."""

    id: int
    path: str
    size: int = 0
    width: int | None = None
    height: int | None = None
    format: str | None = None
    capture_date: str | None = None
    content_hash: str | None = None
    hashes: ImageHashes | None = None
    mtime: float = 0.0
    camera: str | None = None  # EXIF "Make Model" (the keeper prefers the camera's file over an export)
    orientation: int | None = None  # EXIF orientation tag

    @classmethod
    def from_record(cls, record: FileRecord) -> FileInfo:
        """From a catalogue ``FileRecord``."""
        return cls(id=int(record.id), path=str(record.path), size=int(record.size or 0), width=record.width,
                   height=record.height, format=record.format, capture_date=record.capture_date,
                   content_hash=record.content_hash, hashes=record.hashes, mtime=float(record.mtime or 0.0),
                   camera=record.camera, orientation=record.orientation)

    @property
    def pixels(self) -> int:
        return int(self.width or 0) * int(self.height or 0)

    @property
    def is_raw(self) -> bool:
        return is_raw(self)



def is_raw(info: FileInfo) -> bool:
    """A camera RAW file (by format or extension): the keeper rules put it before anything rendered from it."""
    return (info.format or "").upper() in RAW_FORMATS or os.path.splitext(info.path)[1].lower() in RAW_EXTENSIONS



@dataclass(frozen=True)
class Member:
    info: FileInfo
    tier: str  # "keeper" for the keeper itself
    reason: str
    score: float
    reference: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.info.path, "tier": self.tier, "reason": self.reason, "score": round(self.score, 4),
                "reference": self.reference}


@dataclass(frozen=True)
class DuplicateGroup:
    keeper: FileInfo
    members: tuple[Member, ...]  # keeper first
    tier: str  # the loosest tier of its members

    @property
    def files(self) -> list[str]:
        return [m.info.path for m in self.members]

    @property
    def removable(self) -> list[Member]:
        """Members an action may move: not the keeper, not in a reference folder."""
        return [m for m in self.members if m.tier != "keeper" and not m.reference]

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "keeper": self.keeper.path, "tier": self.tier,
                "members": [m.to_dict() for m in self.members]}


@dataclass(frozen=True)
class SimilarSet:
    """Different captures of one scene (a burst, a walk-around, brackets): listed apart, never auto-selected.

    ``reason`` says in words why the set was formed and, where it can be told, what differs between the shots
    (viewpoint moved, subject moved, exposure); ``files`` are best-ranked first. Iterating yields the files, so a
    set reads like the plain list it replaced.
    """

    files: tuple[FileInfo, ...]
    reason: str = "close in content and layout, but not the same capture"

    def __iter__(self) -> Iterator[FileInfo]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> FileInfo:
        return self.files[index]

    def to_dict(self) -> dict[str, Any]:
        return {"files": [f.path for f in self.files], "reason": self.reason}

