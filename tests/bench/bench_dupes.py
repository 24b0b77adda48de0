"""Duplicate-finding quality and speed on the edited-copies library (see make_dupes_library.py).

Scores pairs (precision, recall, F1, recall per edit type) for:
  * vitfeat: content hash + dihedral pHash + the real DINOv2 model with calibrated cuts + pixel alignment,
  * vitfeat quick pass only (hashes, no model),
  * baseline: imagehash pHash, Hamming distance <= 8 (what Czkawka/dupeGuru-style tools do),
and times the quick pass against imagehash on the same files, the model pass, calibration, verification and
regrouping (also on a synthetic 100,000-file graph). True pairs are copies of the same original only.

Usage: .venv/bin/python tests/bench/bench_dupes.py [--lib /tmp/vf-dupes-lib] [--originals 60] [--rebuild]
       [--fp32] [--json out.json] [--patch-study]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_dupes_library import build as build_library  # noqa: E402

from vitfeat_desktop.core.dupes.calibrate import calibrate  # noqa: E402
from vitfeat_desktop.core.dupes.finder import DuplicateFinder  # noqa: E402
from vitfeat_desktop.core.dupes.keeper import KeeperJudge  # noqa: E402
from vitfeat_desktop.core.dupes.records import FileInfo  # noqa: E402
from vitfeat_desktop.core.dupes.thresholds import Thresholds  # noqa: E402
from vitfeat_desktop.core.dupes.verify import AlignmentVerifier, GeometricVerifier, alignment_score  # noqa: E402
from vitfeat_desktop.core.images import open_image  # noqa: E402
from vitfeat_desktop.core.phash import image_hashes  # noqa: E402

MODEL = REPO.parent / "shared" / "models" / "dinov2-small-imgfocus"
QUICK_MIN_SIDE = 64


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def quick_pass(paths: list[Path]) -> tuple[list[FileInfo], float]:
    """Content hash + draft decode + dihedral pHash/dHash, one thread: what the library's quick scan does."""
    t0 = time.perf_counter()
    infos = []
    for i, p in enumerate(paths):
        digest = sha256(p)
        img = open_image(p, min_side=QUICK_MIN_SIDE)
        hashes = image_hashes(img)
        from PIL import Image

        with Image.open(p) as opened:  # header only: the real size for the keeper rules
            w, h = opened.size
            if (opened.getexif() or {}).get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            fmt = opened.format
        infos.append(FileInfo(id=i, path=str(p), size=p.stat().st_size, width=w, height=h, format=fmt,
                              content_hash=digest, hashes=hashes))
    return infos, time.perf_counter() - t0


def imagehash_pass(paths: list[Path]) -> tuple[list[int], float]:
    import imagehash
    from PIL import Image

    t0 = time.perf_counter()
    out = []
    for p in paths:
        with Image.open(p) as img:
            out.append(int(str(imagehash.phash(img)), 16))
    return out, time.perf_counter() - t0


def embed_all(paths: list[Path], quantized: bool) -> tuple[np.ndarray, float, object]:
    from vitfeat_desktop.core.pipeline import pipeline

    ext = pipeline("image-feature-extraction", model=str(MODEL), quantized=quantized)
    pre = ext.preprocessor
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()

    def prep(p: Path) -> np.ndarray:
        return pre.normalize_uint8(pre.to_uint8_chw(open_image(p, min_side=pre.min_decode_side())))

    vecs = []
    with ThreadPoolExecutor(2) as pool:
        arrays = list(pool.map(prep, paths))
    for start in range(0, len(arrays), 16):
        vecs.append(ext.embed(np.stack(arrays[start:start + 16])))
    return np.concatenate(vecs).astype(np.float32), time.perf_counter() - t0, ext


def score(pred_pairs: set[tuple[int, int]], truth: dict[int, int | None], edits: list[str]) -> dict:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, g in truth.items():
        if g is not None:
            groups[g].append(i)
    true_pairs = {tuple(sorted(p)) for members in groups.values() for p in itertools.combinations(members, 2)}
    tp = len(pred_pairs & true_pairs)
    precision = tp / len(pred_pairs) if pred_pairs else 1.0
    recall = tp / len(true_pairs) if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    original = {truth[i]: i for i in truth if edits[i] == "original"}
    per_edit: dict[str, list[bool]] = defaultdict(list)
    for i, e in enumerate(edits):
        if e in ("original", "distractor"):
            continue
        o = original[truth[i]]
        per_edit[e].append(tuple(sorted((i, o))) in pred_pairs)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "pairs_true": len(true_pairs), "pairs_predicted": len(pred_pairs), "true_positives": tp,
            "recall_per_edit": {e: round(float(np.mean(v)), 3) for e, v in sorted(per_edit.items())}}


def group_pairs(groups: list, index: dict[str, int]) -> set[tuple[int, int]]:
    out = set()
    for g in groups:
        ids = sorted(index[m.info.path] for m in g.members)
        out.update(itertools.combinations(ids, 2))
    return out


def misses(finder: DuplicateFinder, groups: list, truth: dict[int, int | None], edits: list[str],
           index: dict[str, int], limit: int = 40) -> list[dict]:
    """Why copies were not grouped with their original: the stored evidence against the group's keeper."""
    group_of = {}
    for g in groups:
        for m in g.members:
            group_of[index[m.info.path]] = g
    original = {truth[i]: i for i in truth if edits[i] == "original"}
    out = []
    for i, e in enumerate(edits):
        if e in ("original", "distractor"):
            continue
        o = original[truth[i]]
        if i in group_of and o in group_of and group_of[i] is group_of[o]:
            continue
        g = group_of.get(o)
        keeper = index[g.keeper.path] if g is not None else o
        row = {"edit": e, "grouped_elsewhere": i in group_of, "keeper_edit": edits[keeper]}
        for name, other in (("vs_original", o), ("vs_keeper", keeper)):
            p = finder._pair_index.get((min(i, other), max(i, other)))
            if p is None:
                row[name] = "no stored pair"
            else:
                row[name] = {"cos": round(float(finder.cos[p]), 3), "hash": int(finder.hash_dist[p]),
                             "align": None if np.isnan(finder.align[p]) else round(float(finder.align[p]), 3),
                             "related": bool(finder.related[p])}
        out.append(row)
    return out[:limit]


def false_links(finder: DuplicateFinder, groups: list, truth: dict[int, int | None], edits: list[str],
                index: dict[str, int], limit: int = 30) -> list[dict]:
    """Members grouped with a keeper that is not a copy of the same original, with the evidence used."""
    out = []
    for g in groups:
        k = index[g.keeper.path]
        for m in g.members[1:]:
            i = index[m.info.path]
            if truth[i] is not None and truth[i] == truth[k]:
                continue
            p = finder._pair_index.get((min(i, k), max(i, k)))
            ev = None
            if p is not None:
                align = None if np.isnan(finder.align[p]) else round(float(finder.align[p]), 3)
                ev = {"cos": round(float(finder.cos[p]), 3), "hash": int(finder.hash_dist[p]), "align": align,
                      "related": bool(finder.related[p])}
            out.append({"member_edit": edits[i], "keeper_edit": edits[k], "evidence": ev, "reason": m.reason})
    return out[:limit]


def synthetic_regroup(n: int = 100_000, k: int = 10, seed: int = 0) -> dict:
    """Regroup timing on a 100,000-file graph (random evidence; 2 % of files in copy groups)."""
    rng = np.random.default_rng(seed)
    files = [FileInfo(id=i, path=f"/p/{i:06d}.jpg", size=int(rng.integers(1e5, 1e7)), width=4000, height=3000)
             for i in range(n)]
    a = np.repeat(np.arange(n), k)
    b = rng.integers(0, n, size=n * k)
    keep = a != b
    pairs = np.unique(np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], 1), axis=0)
    m = len(pairs)
    cos = rng.uniform(0.0, 0.9, m).astype(np.float32)
    hit = rng.random(m) < 0.02
    cos[hit] = rng.uniform(0.85, 1.0, hit.sum())
    hdist = rng.integers(12, 40, m)
    finder = DuplicateFinder(files, pairs, cos=cos, hash_dist=hdist, transform=np.zeros(m, dtype=np.int64),
                             align=np.full(m, np.nan, dtype=np.float32), exact=np.zeros(m, dtype=bool),
                             same_pixels=np.zeros(m, dtype=bool), thresholds=Thresholds())
    times = {}
    for s in (0.2, 0.5, 0.8):
        t0 = time.perf_counter()
        groups = finder.groups(s)
        times[str(s)] = {"seconds": round(time.perf_counter() - t0, 3), "groups": len(groups)}
    return {"files": n, "pairs": m, "regroup": times}


def patch_study(paths: list[Path], ext: object, truth: dict[int, int | None], infos: list[FileInfo],
                vectors: np.ndarray, limit: int = 400) -> dict:
    """Mutual-nearest-neighbour patch-token matching on candidate pairs the hash does not settle."""
    from vitfeat_desktop.core.dupes.vectors import brute_knn, center_vectors, dihedral_distance

    unit = center_vectors(vectors)
    knn = brute_knn(unit, 5)
    ph = np.array([f.hashes.phashes for f in infos], dtype=np.uint64)
    pairs = {tuple(sorted((i, int(j)))) for i in range(len(paths)) for j in knn[i] if j >= 0}
    arr = np.array(sorted(pairs))
    hd, _ = dihedral_distance(ph, arr[:, 0], arr[:, 1])
    arr = arr[hd > 10]
    rng = np.random.default_rng(0)
    arr = arr[rng.permutation(len(arr))[:limit]]
    pre = ext.preprocessor  # type: ignore[attr-defined]
    tokens: dict[int, np.ndarray] = {}

    def tok(i: int) -> np.ndarray:
        if i not in tokens:
            x = pre.normalize_uint8(pre.to_uint8_chw(open_image(paths[i], min_side=pre.min_decode_side())))
            t = ext.run(x[None], hidden=True, pooled=False)["last_hidden_state"][0, 1:]  # type: ignore[attr-defined]
            tokens[i] = t / np.linalg.norm(t, axis=1, keepdims=True)
        return tokens[i]

    pos, neg = [], []
    for i, j in arr:
        a, b = tok(int(i)), tok(int(j))
        sim = a @ b.T
        ab, ba = sim.argmax(1), sim.argmax(0)
        mutual = float((ba[ab] == np.arange(len(ab))).mean())
        same = truth[int(i)] is not None and truth[int(i)] == truth[int(j)]
        (pos if same else neg).append(mutual)
    q = lambda v, x: round(float(np.quantile(v, x)), 3) if v else None  # noqa: E731
    return {"pairs": len(arr), "copies": len(pos), "different": len(neg),
            "copies_mutual_nn_q05": q(pos, 0.05), "copies_mutual_nn_q50": q(pos, 0.5),
            "different_mutual_nn_q99": q(neg, 0.99), "different_mutual_nn_max": q(neg, 1.0)}


def geometry_cost(geo: GeometricVerifier, n_files: int, at: int = 100_000, cores: int = 2) -> dict:
    """CPU cost of geometric verification, per file (decode + ORB) and per pair (matching, RANSAC, tone fit),
    and the extrapolation to ``at`` files on ``cores`` cores (pairs and feature files grow with the library:
    candidates are a bounded number of neighbours per file)."""
    cache = geo.cache
    files, pairs = int(cache.computed), int(geo.pairs_checked)
    per_file = cache.seconds / max(1, files)
    per_pair = float(geo.seconds) / max(1, pairs)
    scale = at / max(1, n_files)
    total = scale * (files * per_file + pairs * per_pair)
    return {"files_with_features": files, "pairs_checked": pairs, "feature_cpu_ms_per_file": round(1000 * per_file, 1),
            "match_cpu_ms_per_pair": round(1000 * per_pair, 1),
            f"extrapolated_minutes_at_{at}_files_{cores}_cores": round(total / cores / 60, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", type=Path, default=Path("/tmp/vf-dupes-lib"))
    parser.add_argument("--originals", type=int, default=60)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--fp32", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--patch-study", action="store_true")
    parser.add_argument("--reuse-vectors", action="store_true",
                        help="reuse the embeddings of a previous run on the same library (for tuning)")
    args = parser.parse_args(argv)
    manifest_path = args.lib / "manifest.json"
    if args.rebuild or not manifest_path.is_file():
        build_library(args.lib, args.originals)
    manifest = json.loads(manifest_path.read_text())["files"]
    names = sorted(manifest)
    paths = [args.lib / n for n in names]
    truth = {i: manifest[n]["group"] for i, n in enumerate(names)}
    edits = [manifest[n]["edit"] for n in names]
    report: dict = {"files": len(paths), "originals": sum(e == "original" for e in edits),
                    "edit_types": sorted({e for e in edits if e not in ("original", "distractor")})}

    infos, t_quick = quick_pass(paths)
    baseline_hashes, t_imagehash = imagehash_pass(paths)
    report["timing"] = {"quick_pass_s": round(t_quick, 2), "imagehash_phash_s": round(t_imagehash, 2),
                        "quick_pass_files_per_s": round(len(paths) / t_quick, 1),
                        "imagehash_files_per_s": round(len(paths) / t_imagehash, 1),
                        "quick_over_imagehash_speed": round(t_imagehash / t_quick, 2)}
    index = {str(p): i for i, p in enumerate(paths)}

    # baseline: imagehash pHash, Hamming <= 8, every pair
    hb = np.array(baseline_hashes, dtype=np.uint64)
    from vitfeat_desktop.core.dupes.vectors import hamming_u64

    base_pairs = set()
    for i in range(len(hb)):
        d = hamming_u64(np.full(len(hb) - i - 1, hb[i], dtype=np.uint64), hb[i + 1:])
        base_pairs.update((i, i + 1 + int(j)) for j in np.nonzero(d <= 8)[0])
    report["baseline_imagehash_phash_le8"] = score(base_pairs, truth, edits)

    # quick pass only (no model)
    # one set of keeper evidence for the run, as the app's staged review shares it between its stages
    judge = KeeperJudge()
    t0 = time.perf_counter()
    quick = DuplicateFinder.build(infos, vectors=None, judge=judge)
    report["vitfeat_quick_pass"] = score(group_pairs(quick.groups(0.5), index), truth, edits)
    report["timing"]["quick_groups_s"] = round(time.perf_counter() - t0, 2)

    cache = args.lib.parent / f".{args.lib.name}-vectors-{'fp32' if args.fp32 else 'int8'}.npz"
    manifest_digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    cached = np.load(cache) if args.reuse_vectors and cache.is_file() else None
    if cached is not None and str(cached["digest"]) == manifest_digest:
        from vitfeat_desktop.core.pipeline import pipeline

        vectors, t_embed = cached["vectors"], float(cached["seconds"])
        ext = pipeline("image-feature-extraction", model=str(MODEL), quantized=not args.fp32)
        report["timing"]["embed_from_cache"] = True
    else:
        vectors, t_embed, ext = embed_all(paths, quantized=not args.fp32)
        np.savez(cache, vectors=vectors, seconds=t_embed, digest=manifest_digest)
    report["timing"]["embed_s"] = round(t_embed, 1)
    report["timing"]["embed_files_per_s"] = round(len(paths) / t_embed, 1)
    report["model"] = f"{MODEL.name} ({'fp32' if args.fp32 else 'int8'})"

    t0 = time.perf_counter()
    ph = np.array([f.hashes.phashes for f in infos], dtype=np.uint64)
    cal = calibrate(ext, paths, vectors, hashes=ph, sample=32, verifier=alignment_score)
    report["timing"]["calibrate_s"] = round(time.perf_counter() - t0, 1)
    t = cal.thresholds
    report["calibration"] = {"cos_accept": round(t.cos_accept, 4), "verify_min": round(t.verify_min, 4),
                             "similar_cut": round(t.similar_cut, 4), **t.stats}

    verifier = AlignmentVerifier()
    t0 = time.perf_counter()
    finder = DuplicateFinder.build(infos, vectors=vectors, thresholds=t, mean=cal.mean, verifier=verifier,
                                    judge=judge)
    report["timing"]["build_with_verification_s"] = round(time.perf_counter() - t0, 1)
    report["timing"]["pairs_verified"] = verifier.pairs_scored
    geo = getattr(verifier, "geometry", None)
    if geo is not None:  # geometric verification (align.py): per-file features once, then per-pair matching
        report["timing"]["geometry"] = geometry_cost(geo, len(paths))
    for s in (0.3, 0.5, 0.7):
        t0 = time.perf_counter()
        groups = finder.groups(s)
        elapsed = time.perf_counter() - t0
        result = score(group_pairs(groups, index), truth, edits)
        result["groups"] = len(groups)
        result["regroup_s"] = round(elapsed, 4)
        report[f"vitfeat_sensitivity_{s}"] = result
    from keeper_report import keeper_report  # issue 11: is each group's keeper the original?

    report["keeper_at_0.5"] = keeper_report(finder.groups(0.5), {str(p): (truth[i], edits[i])
                                                                 for i, p in enumerate(paths)})
    report["misses_at_0.5"] = misses(finder, finder.groups(0.5), truth, edits, index)
    report["false_links_at_0.5"] = false_links(finder, finder.groups(0.5), truth, edits, index)
    no_verify = DuplicateFinder.build(infos, vectors=vectors, thresholds=t, mean=cal.mean, verifier=None,
                                      judge=judge)
    report["vitfeat_no_verification"] = score(group_pairs(no_verify.groups(0.5), index), truth, edits)
    report["synthetic_100k_regroup"] = synthetic_regroup()
    if args.patch_study:
        report["patch_token_study"] = patch_study(paths, ext, truth, infos, vectors)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
