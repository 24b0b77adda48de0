"""``vitfeat dupes FOLDER`` and ``vitfeat undo``: duplicate groups, exports, and safe removal from the shell.

The folder is indexed first (incrementally; ``--quick`` stops after the hash pass, no model). Groups go to
stdout (text, or one JSON object with ``--json``); ``--csv FILE`` exports every member with its keeper, tier and
reason before anything is touched (``core/dupes/export.py``: the same file the GUI's Export… writes).
``--trash`` / ``--quarantine [DIR]`` move the non-keepers, after a confirmation (``--yes`` skips it; without a
terminal and without ``--yes`` nothing is moved). Every move is journalled; ``vitfeat undo`` puts the last batch
back. There is no permanent deletion in the CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitfeat_desktop.commands import add_model_options
from vitfeat_desktop.commands.index import ProgressLine
from vitfeat_desktop.core.errors import ModelError, VitfeatError

if TYPE_CHECKING:
    from vitfeat_desktop.core.dupes.records import DuplicateGroup, SimilarSet
    from vitfeat_desktop.core.fileops.operations import ActionResult


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dupes",
        help="find duplicate photos in a folder (and optionally move the extra copies to the trash)",
        description="Index FOLDER if needed, then print groups of files that are copies of one picture "
        "(exact, same-pixels, near-duplicate), each with its keeper and the reason every member matched.",
    )
    parser.add_argument("folder", metavar="FOLDER", type=Path)
    add_model_options(parser)
    parser.add_argument("--sensitivity", type=float, default=0.5, metavar="S",
                        help="0 (only the surest copies) .. 1 (looser); 0.5 = the cut calibrated for the model")
    parser.add_argument("--quick", action="store_true", help="hashes only, no model (exact/same-pixel/resized)")
    parser.add_argument("--json", action="store_true", help='print {"groups": [...], "skipped": [...]}')
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write every group member as a CSV row")
    parser.add_argument("--reference", action="append", default=[], metavar="DIR",
                        help="a reference folder: its files are always keepers and never moved (repeatable; "
                        "adds to the reference_folders setting)")
    parser.add_argument("--similar", action="store_true", help="also list similar shots (not duplicates)")
    act = parser.add_mutually_exclusive_group()
    act.add_argument("--trash", action="store_true", help="move every non-keeper to the system trash")
    act.add_argument("--quarantine", nargs="?", const="", default=None, metavar="DIR",
                     help="move every non-keeper to a quarantine folder (default: one on the same volume, "
                     "outside the photo folder)")
    parser.add_argument("--yes", action="store_true", help="do not ask before moving files")
    parser.set_defaults(func=run_dupes)

    undo = sub.add_parser("undo", help="put back the files of the last trash/quarantine/move",
                          description="Restore the files moved by the last action (or by JOURNAL) to their "
                          "original paths, checking each is byte-identical to what was moved.")
    undo.add_argument("journal", nargs="?", default=None, metavar="JOURNAL", help="a journal id from --list")
    undo.add_argument("--list", action="store_true", help="list the journals of past actions")
    undo.add_argument("--json", action="store_true", help="print the result as JSON")
    undo.set_defaults(func=run_undo)


def _display(path: str) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def run_dupes(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.dupes.export import write_csv
    from vitfeat_desktop.core.dupes.for_library import finder_for_library
    from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
    from vitfeat_desktop.core.fileops.references import reference_folders
    from vitfeat_desktop.core.library.facade import Library

    if not 0.0 <= args.sensitivity <= 1.0:
        raise VitfeatError("--sensitivity must be between 0 and 1")
    if args.yes and not (args.trash or args.quarantine is not None):
        raise VitfeatError("--yes only goes with --trash or --quarantine")
    references = [str(p) for p in reference_folders(args.reference)]
    progress = ProgressLine()
    with Library.open(args.folder, model=args.model, quantized=not args.fp32) as lib:
        use_model = not args.quick
        try:
            try:
                lib.scan(embed=use_model, progress=progress)
            except ModelError as exc:
                if args.model is not None:
                    raise  # the user asked for this model: say why it cannot be used
                print(f"vitfeat: the default model is not available ({exc}); showing exact, same-pixel and "
                      "hash-level duplicates only (use --model ID|PATH for crops and edits)", file=sys.stderr)
                use_model = False
                lib.scan(embed=False, progress=progress)
            finder = finder_for_library(lib, references=references,
                                        marks=NotDuplicateMarks.for_library(lib.folder),
                                        use_model=use_model, progress=progress)
        finally:
            progress.end()
        groups = finder.groups(args.sensitivity)
        similar = finder.similar_groups(args.sensitivity, groups) if args.similar else []
        skipped = [{"path": _display(p), "reason": r} for p, r in lib.skipped()]
        folder = lib.folder
    if args.csv is not None:
        write_csv(args.csv, groups, similar)
    if args.json:
        out: dict[str, Any] = {"groups": [_json_group(g) for g in groups], "skipped": skipped,
                               "sensitivity": args.sensitivity, "thresholds": finder.thresholds.source}
        if args.similar:
            out["similar"] = [{"files": [_display(f.path) for f in s], "reason": s.reason} for s in similar]
    else:
        _print_groups(groups, similar, skipped)
    removable = {m.info.path: g.keeper.path for g in groups for m in g.removable}
    if args.trash or args.quarantine is not None:
        action = "trash" if args.trash else "quarantine"
        result = _act(action, removable, args, folder)
        if args.json and result is not None:
            out["action"] = result.to_dict()
    if args.json:
        print(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


def _json_group(group: DuplicateGroup) -> dict[str, Any]:
    data = group.to_dict()
    data["files"] = [_display(p) for p in data["files"]]
    data["keeper"] = _display(data["keeper"])
    for m in data["members"]:
        m["path"] = _display(m["path"])
    return data


def _print_groups(groups: list[DuplicateGroup], similar: list[SimilarSet], skipped: list[dict[str, str]]) -> None:
    if not groups:
        print("no duplicates found")
    for n, g in enumerate(groups, 1):
        print(f"group {n} ({g.tier}, {len(g.members)} files)")
        for m in g.members:
            mark = "keep  " if m.tier == "keeper" else ("ref   " if m.reference else "extra ")
            print(f"  {mark}{_display(m.info.path)}  [{m.tier}] {m.reason}")
    for n, s in enumerate(similar, 1):
        print(f"similar shots {n} ({s.reason}): " + ", ".join(_display(f.path) for f in s))
    if skipped:
        print(f"{len(skipped)} files skipped (unreadable or not images):", file=sys.stderr)
        for item in skipped[:20]:
            print(f"  {item['path']}: {item['reason']}", file=sys.stderr)


def _act(action: str, removable: dict[str, str], args: argparse.Namespace, root: Path) -> ActionResult | None:
    from vitfeat_desktop.core.fileops import operations as actions

    if not removable:
        print("nothing to move", file=sys.stderr)
        return None
    where = "the system trash" if action == "trash" else (args.quarantine or "a quarantine folder")
    if not args.yes:
        if not sys.stdin.isatty():
            raise VitfeatError(f"would move {len(removable)} files to {where}; re-run with --yes to confirm "
                               "(no terminal to ask on)")
        answer = input(f"Move {len(removable)} duplicate files to {where}? Keepers stay. [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing moved", file=sys.stderr)
            return None
    result = actions.apply_actions(action, sorted(removable), folder=args.quarantine or None,
                                   photo_roots=[root], keepers=removable, references=args.reference)
    print(f"moved {len(result.done)} files to {where}; undo with: vitfeat undo {result.journal_id}",
          file=sys.stderr)
    for path, reason in result.failed:
        print(f"  not moved: {_display(path)}: {reason}", file=sys.stderr)
    return result


def run_undo(args: argparse.Namespace) -> int:
    from vitfeat_desktop.core.fileops import operations as actions
    from vitfeat_desktop.core.fileops.journal import list_journals

    if args.list:
        rows = []
        for j in list_journals():
            done = sum(e.state == "done" for e in j.entries.values())
            undone = sum(e.state == "undone" for e in j.entries.values())
            rows.append({"journal": j.id, "action": j.header.get("action"), "moved": done, "restored": undone})
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            for r in rows:
                print(f"{r['journal']}  {r['action']:<10} moved {r['moved']}  restored {r['restored']}")
            if not rows:
                print("no actions recorded")
        return 0
    result = actions.undo(args.journal)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(f"restored {len(result.restored)} files (journal {result.journal_id})")
        for path, reason in result.failed:
            print(f"  not restored: {_display(path)}: {reason}", file=sys.stderr)
    return 1 if result.failed else 0
