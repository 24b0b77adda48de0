"""The one export of a duplicate review, for the CLI (``vitfeat dupes --csv``) and the GUI's Export… button.

One CSV row per file: the duplicate groups (keeper first) with what an action would do to each member, then the
similar-shot sets, which no action touches. The columns are what both front ends need:

``group`` (1, 2, ... for duplicate groups, S1, S2, ... for similar shots), ``kind`` ("duplicates" or "similar
shots"), ``path``, ``role`` ("keep", "remove", or "reference": a non-keeper in a reference folder, never moved),
``keeper`` (the file the group keeps, or the set's best-ranked shot), ``tier``, ``reason``, ``score``, ``size``,
``width``, ``height``.

Paths that are not valid UTF-8 (a file name from another system's encoding) are written with backslash escapes,
as the CLI prints them, so the export never fails on a name. :func:`write_export` also writes the JSON form the GUI
offers, chosen by the file's suffix.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

from vitfeat_desktop.core.dupes.records import DuplicateGroup, Member, SimilarSet

COLUMNS = ("group", "kind", "path", "role", "keeper", "tier", "reason", "score", "size", "width", "height")


def display_path(path: str) -> str:
    """``path`` as text that can always be written (undecodable bytes as backslash escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _role(member: Member) -> str:
    return "keep" if member.tier == "keeper" else ("reference" if member.reference else "remove")


def rows(groups: Sequence[DuplicateGroup], similar: Sequence[SimilarSet] = ()) -> list[list[str]]:
    """The export's rows (without the header), in :data:`COLUMNS` order."""
    out: list[list[str]] = []
    for n, g in enumerate(groups, 1):
        for m in g.members:
            info = m.info
            out.append([str(n), "duplicates", display_path(info.path), _role(m), display_path(g.keeper.path),
                        m.tier, m.reason, f"{m.score:.4f}", str(info.size), _text(info.width), _text(info.height)])
    for n, shots in enumerate(similar, 1):
        best = shots.files[0].path if shots.files else ""
        for f in shots:
            out.append([f"S{n}", "similar shots", display_path(f.path), "keep", display_path(best), "similar",
                        shots.reason, "", str(f.size), _text(f.width), _text(f.height)])
    return out


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


def write_csv(path: str | os.PathLike[str], groups: Sequence[DuplicateGroup],
              similar: Sequence[SimilarSet] = ()) -> Path:
    """Write the groups (and similar-shot sets) as CSV with a header row; returns the path written."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows(groups, similar))
    return target


def write_export(path: str | os.PathLike[str], groups: Sequence[DuplicateGroup],
                 similar: Sequence[SimilarSet] = (), *, sensitivity: float = 0.5) -> Path:
    """CSV (:func:`write_csv`), or JSON when ``path`` ends in ``.json``: ``{"sensitivity", "groups",
    "similar_shots"}`` with each group's :meth:`DuplicateGroup.to_dict` and each set's files and reason."""
    target = Path(path)
    if target.suffix.lower() != ".json":
        return write_csv(target, groups, similar)
    data = {"sensitivity": sensitivity, "groups": [g.to_dict() for g in groups],
            "similar_shots": [{"files": [f.path for f in shots], "reason": shots.reason} for shots in similar]}
    target.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return target
