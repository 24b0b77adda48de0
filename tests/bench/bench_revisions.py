"""End-to-end cost of one revision against another on the same benchmark, alternating, several rounds.

Timings on a shared machine drift by more than the difference being measured, so each round runs both revisions
back to back (the order flips every round) and the report gives per-round ratios and their median. Both
revisions read the same cached embeddings (``--reuse-vectors``): the embedding step is measured once, in the
warm-up run of the new revision, and added to both sides for the end-to-end ratio; the ratio without it (the
stages that differ) is reported too, as the stricter figure.

Usage: python tests/bench/bench_revisions.py --old /path/to/old-worktree [--new .] [--rounds 2]
       [--lib /tmp/vf-dupes-lib] [--bench tests/bench/bench_dupes.py] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bench(tree: Path, bench: str, lib: Path) -> dict:
    """One run of ``bench`` from ``tree`` (its own code: the script puts its tree first on sys.path)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(tree / bench), "--lib", str(lib), "--reuse-vectors", "--json", str(out)],
                       cwd=tree, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = json.loads(out.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load": round(os.getloadavg()[0], 2),
            "timing": report.get("timing", {}),
            "f1_at_0.5": report.get("vitfeat_sensitivity_0.5", {}).get("f1")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="worktree of the baseline revision")
    parser.add_argument("--new", type=Path, default=REPO)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lib", type=Path, default=Path("/tmp/vf-dupes-lib"))
    parser.add_argument("--bench", default="tests/bench/bench_dupes.py")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-vectors", action="store_true",
                        help="reuse the cached embeddings and the embedding time stored with them (no warm-up)")
    args = parser.parse_args(argv)
    cache = args.lib.parent / f".{args.lib.name}-vectors-int8.npz"
    warm: dict = {}
    if args.keep_vectors and cache.is_file():
        import numpy as np

        embed_s = float(np.load(cache)["seconds"])
    else:
        cache.unlink(missing_ok=True)  # the warm-up embeds afresh, so its embedding time is this machine's, now
        warm = run_bench(args.new, args.bench, args.lib)
        embed_s = float(warm["timing"]["embed_s"])
    runs: list[dict] = []
    for r in range(args.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        pair = {}
        for name in order:
            pair[name] = run_bench(args.old if name == "old" else args.new, args.bench, args.lib)
            print(f"round {r + 1} {name}: {pair[name]['wall_s']} s wall, {pair[name]['cpu_s']} s CPU", flush=True)
        runs.append(pair)
    stage_ratio = [p["new"]["wall_s"] / p["old"]["wall_s"] for p in runs]
    end_ratio = [(p["new"]["wall_s"] + embed_s) / (p["old"]["wall_s"] + embed_s) for p in runs]
    cpu_ratio = [p["new"]["cpu_s"] / p["old"]["cpu_s"] for p in runs]
    summary = {"rounds": args.rounds, "embed_s_measured_once": embed_s, "warm_up_new": warm, "runs": runs,
               "end_to_end_ratio_new_over_old": [round(x, 3) for x in end_ratio],
               "end_to_end_ratio_median": round(statistics.median(end_ratio), 3),
               "without_embedding_ratio": [round(x, 3) for x in stage_ratio],
               "without_embedding_ratio_median": round(statistics.median(stage_ratio), 3),
               "cpu_ratio_without_embedding": [round(x, 3) for x in cpu_ratio]}
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
