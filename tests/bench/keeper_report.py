"""Keeper correctness: does each duplicate group keep the file the others were made from?

:func:`keeper_report` takes the groups a finder produced and the ground truth (file -> (original's group id,
edit type)) and returns (and prints) the share of groups whose keeper is the original, the groups whose
original was not in the group at all, and the confusion by edit type: which edit was kept instead of the
original, and how often. ``bench_dupes.py`` calls it on its real groups.

Run alone it scores the keeper rules on the ground-truth groups of a library built by ``make_dupes_library.py``
(every file of one original in one group; no model needed, so it is quick to iterate on) and on every
(copy, original) pair alone, the rules before issue 11 vs now:

    python tests/bench/keeper_report.py /tmp/vf-dupes-lib [--originals 60] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# edits after which keeping the copy over the original is never acceptable (the issue's hard requirement)
NEVER = ("upscale-24mp", "border", "grayscale", "png", "watermark")


def keeper_report(groups: Sequence[Any], truth: Mapping[str, tuple[int | None, str]], *,
                  label: str = "keeper", quiet: bool = False) -> dict[str, Any]:
    """``groups``: DuplicateGroup-like objects (``.keeper.path``, ``.members[i].info.path``, ``.members[0].reason``);
    ``truth``: path -> (group id of its original or None for a distractor, edit type, "original" for it)."""
    originals = {g: p for p, (g, e) in truth.items() if e == "original" and g is not None}
    kept: Counter[str] = Counter()
    missing = 0
    correct = 0
    scored = 0
    wrong_reasons: list[dict[str, str]] = []
    for group in groups:
        ids = Counter(truth.get(m.info.path, (None, ""))[0] for m in group.members)
        ids.pop(None, None)
        if not ids:
            continue
        gid = ids.most_common(1)[0][0]
        original = originals.get(gid) if gid is not None else None
        if original is None or original not in {m.info.path for m in group.members}:
            missing += 1
            continue
        scored += 1
        edit = truth.get(group.keeper.path, (None, "?"))[1]
        kept[edit] += 1
        if group.keeper.path == original:
            correct += 1
        elif len(wrong_reasons) < 12:
            wrong_reasons.append({"kept": edit, "reason": group.members[0].reason})
    share = correct / scored if scored else 0.0
    confusion = {e: n for e, n in kept.most_common() if e != "original"}
    result = {"groups_scored": scored, "groups_without_their_original": missing,
              "keeper_is_original": round(share, 4), "kept_instead_of_original": confusion,
              "never_rule_violations": {e: confusion[e] for e in NEVER if e in confusion},
              "examples_of_wrong_keepers": wrong_reasons}
    if not quiet:
        print(f"[{label}] keeper is the original in {correct}/{scored} groups ({100 * share:.1f} %); "
              f"{missing} groups without their original")
        for e, n in confusion.items():
            print(f"    kept the {e} copy instead: {n}")
    return result


def rules_before_issue_11(info: Any) -> tuple[Any, ...]:
    """The keeper order before issue 11 (for the "before" figure): resolution, RAW, larger file, oldest, name."""
    return (-info.pixels, 0 if info.is_raw else 1, -info.size, info.capture_date or "9999",
            info.mtime or float("inf"), info.path)


class _Group:
    """A ground-truth group with a keeper chosen by ``choose`` (the shape ``keeper_report`` reads)."""

    def __init__(self, members: list[Any], keeper: int, reason: str) -> None:
        from types import SimpleNamespace

        order = [keeper] + [i for i in range(len(members)) if i != keeper]
        self.keeper = members[keeper]
        self.members = [SimpleNamespace(info=members[i], reason=("kept: " + reason) if i == keeper else "")
                        for i in order]


def file_infos(lib: Path, names: Sequence[str]) -> list[Any]:
    """FileInfo for each file as the library scan records it (upright size, format, EXIF, pHashes)."""
    from vitfeat_desktop.core.dupes.records import FileInfo
    from vitfeat_desktop.core.images import open_image_with_info
    from vitfeat_desktop.core.phash import image_hashes

    infos = []
    for i, name in enumerate(names):
        p = lib / name
        image, info = open_image_with_info(p, min_side=64)
        st = p.stat()
        infos.append(FileInfo(id=i, path=str(p), size=st.st_size, width=info.get("width"),
                              height=info.get("height"), format=info.get("format"),
                              capture_date=info.get("capture_date"), camera=info.get("camera"),
                              orientation=info.get("orientation"), hashes=image_hashes(image),
                              mtime=st.st_mtime))
    return infos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lib", type=Path)
    parser.add_argument("--originals", type=int, default=60)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from make_dupes_library import build as build_library

    from vitfeat_desktop.core.dupes.keeper import KeeperJudge
    from vitfeat_desktop.core.dupes.keeper_rules import keeper_key, keeper_reason

    manifest_path = args.lib / "manifest.json"
    if args.rebuild or not manifest_path.is_file():
        build_library(args.lib, args.originals)
    manifest = json.loads(manifest_path.read_text())["files"]
    names = sorted(n for n, v in manifest.items() if v["group"] is not None)
    infos = file_infos(args.lib, names)
    truth = {str(args.lib / n): (manifest[n]["group"], manifest[n]["edit"]) for n in names}
    by_group: dict[int, list[Any]] = {}
    for info in infos:
        by_group.setdefault(truth[info.path][0] or -1, []).append(info)
    old, static, new = [], [], []
    judge = KeeperJudge()
    t0 = time.perf_counter()
    for members in by_group.values():
        before = min(range(len(members)), key=lambda i: rules_before_issue_11(members[i]))
        old.append(_Group(members, before, "rules before issue 11"))
        best = min(range(len(members)), key=lambda i: keeper_key(members[i]))
        other = next(i for i in range(len(members)) if i != best)
        static.append(_Group(members, best, keeper_reason(members[best], members[other])))
        k, reason = judge.choose(members)
        new.append(_Group(members, k, reason))
    # every copy alone with its original: the strict test (a two-file group has no majority to lean on)
    pairs, pairs_before = [], []
    for members in by_group.values():
        original = next(m for m in members if truth[m.path][1] == "original")
        for copy in members:
            if copy is original:
                continue
            two = [copy, original]
            k, reason = judge.choose(two)
            pairs.append(_Group(two, k, reason))
            before = min(range(2), key=lambda i: rules_before_issue_11(two[i]))
            pairs_before.append(_Group(two, before, "rules before issue 11"))
    seconds = time.perf_counter() - t0
    report = {"rules_before_issue_11": keeper_report(old, truth, label="rules before issue 11"),
              "static_rules": keeper_report(static, truth, label="static rules only (no pixels read)"),
              "with_pixel_evidence": keeper_report(new, truth, label="with pixel evidence"),
              "pairs_rules_before_issue_11": keeper_report(pairs_before, truth, label="pairs, rules before"),
              "pairs_with_pixel_evidence": keeper_report(pairs, truth, label="pairs (each copy alone with its "
                                                                             "original), with pixel evidence"),
              "judge_seconds": round(seconds, 2), "files": len(infos)}
    print(f"pixel evidence for {len(infos)} files took {seconds:.1f} s")
    reasons = Counter(g.members[0].reason.split("(")[0].split(":")[0:2][-1].strip() for g in new)
    print("keeper reasons:", dict(reasons.most_common(8)))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
