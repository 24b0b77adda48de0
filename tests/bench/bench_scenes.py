"""Real scenes: another shot of one scene is never a duplicate; its exports are; neighbouring frames are similar.

The library: the shared scene frames (``../shared/data/scenes``: fountain/ and entry/ walk-around sequences,
3072x2048, and sacre_coeur/, one church by different photographers; every frame a distinct capture), seeded
photographer-style exports of each frame (web export, phone share, 4:5 crop, border, black-and-white,
straightened, tone edit, TIFF, HEIC, watermark; two or three kinds per frame), and the 300 shared photos as
unrelated pictures. True duplicate pairs are a frame and its exports (and two exports of one frame).

Reports, for vitfeat (hashes + the shared DINOv2 model with its calibration + verification) and the imagehash
pHash baseline (Hamming <= 8) in the same run: pair precision, recall, recall per export kind, same-scene false
pairs (two different frames of one scene called duplicates), and similar-shot sets: how many frames share a set
(or a set with a copy of theirs) with another frame of their scene, and how many similar pairs join different
scenes. Also the verification's cost per pair.

Usage: PYTHONPATH=. /work/venv/bin/python tests/bench/bench_scenes.py [--lib /tmp/vf-scenes-lib] [--rebuild]
       [--no-photos] [--json out.json]
       ... --study rows.json [--lib /tmp/vf-dupes-lib --study-vectors /tmp/.vf-dupes-lib-vectors-int8.npz]
       (the per-pair evidence verify.py's cuts were read from)
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dupes import embed_all, imagehash_pass, quick_pass  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
SCENES = SHARED / "scenes"
PHOTOS = SHARED / "photos"


# --------------------------------------------------------------------------------------------------------------
# exports, the way a photographer or a phone makes them


def _fit(img: Image.Image, long_side: int) -> Image.Image:
    s = long_side / max(img.size)
    if s >= 1:
        return img
    return img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)


def _web(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return _fit(img, rng.choice([1600, 2048])), "jpg", {"quality": rng.randint(75, 85)}


def _phone(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return _fit(img, rng.choice([1280, 1600])), "jpg", {"quality": rng.randint(55, 70)}


def _crop45(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    w, h = img.size
    cw, ch = (round(h * 4 / 5), h) if w > h else (w, round(w * 5 / 4))
    zoom = rng.uniform(0.8, 1.0)
    cw, ch = round(cw * zoom), round(ch * zoom)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return _fit(img.crop((x, y, x + cw, y + ch)), 2048), "jpg", {"quality": 90, "box": [x, y, cw, ch]}


def _border(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    small = _fit(img, 1800)
    pad = round(min(small.size) * rng.uniform(0.03, 0.08))
    colour = rng.choice([(255, 255, 255), (0, 0, 0), (240, 236, 228)])
    return ImageOps.expand(small, border=pad, fill=colour), "jpg", {"quality": 90, "pad": pad}


def _grayscale(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    grey = ImageOps.grayscale(_fit(img, 2400))
    grey = ImageEnhance.Contrast(grey).enhance(rng.uniform(1.0, 1.3))
    return grey.convert("RGB"), "jpg", {"quality": 90}


def _straighten(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    angle = rng.choice([-1, 1]) * rng.uniform(1.5, 4.0)
    small = _fit(img, 2400)
    turned = small.rotate(angle, resample=Image.Resampling.BICUBIC)
    # the largest centred box without the empty corners, as an editor's straighten tool crops
    a = np.radians(abs(angle))
    w, h = small.size
    s = 1 / (np.cos(a) + np.sin(a) * max(w / h, h / w))
    cw, ch = round(w * s), round(h * s)
    x, y = (w - cw) // 2, (h - ch) // 2
    return turned.crop((x, y, x + cw, y + ch)), "jpg", {"quality": 90, "angle": round(angle, 2)}


def _tone(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    out = ImageEnhance.Brightness(_fit(img, 2400)).enhance(rng.uniform(0.8, 1.25))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.85, 1.25))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.6, 1.4))
    return out, "jpg", {"quality": 88}


def _tiff(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return _fit(img, 2048), "tiff", {}


def _heic(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return _fit(img, 2048), "heic", {"quality": 75}


def _watermark(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    out = _fit(img, 2048).convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(16, out.height // 16)
    font = ImageFont.load_default(size=size)
    text = rng.choice(["© Jane Doe Photography", "© 2024 M. Rossi", "instagram.com/someone"])
    x = rng.randint(out.width // 20, out.width // 3)
    y = rng.randint(out.height * 3 // 4, out.height - size * 2)
    draw.text((x, y), text, fill=(255, 255, 255, 170), font=font)
    return Image.alpha_composite(out, layer).convert("RGB"), "jpg", {"quality": 90, "text": text}


EXPORTS = {"web": _web, "phone": _phone, "crop-4x5": _crop45, "border": _border, "grayscale": _grayscale,
           "straighten": _straighten, "tone": _tone, "tiff": _tiff, "heic": _heic, "watermark": _watermark}


def _save(img: Image.Image, path: Path, fmt: str, params: dict) -> None:
    if fmt == "jpg":
        img.save(path, "JPEG", quality=int(params.get("quality", 90)))
    elif fmt == "tiff":
        img.save(path, "TIFF", compression="tiff_deflate")
    elif fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        img.save(path, "HEIF", quality=int(params.get("quality", 75)))
    else:  # pragma: no cover
        raise ValueError(fmt)


def scene_frames() -> list[tuple[str, Path]]:
    return [(d.name, p) for d in sorted(SCENES.iterdir()) if d.is_dir() for p in sorted(d.glob("*.jpg"))]


def build(out: Path, *, seed: int = 0, photos: bool = True) -> dict:
    """Write the library into ``out`` (emptied first) and return the manifest."""
    if out.exists():
        shutil.rmtree(out)
    (out / "scenes").mkdir(parents=True)
    (out / "exports").mkdir()
    rng = random.Random(seed)
    files: dict[str, dict] = {}
    kinds = list(EXPORTS)
    queue: list[str] = []
    for group, (scene, path) in enumerate(scene_frames()):
        name = f"scenes/{scene}-{path.name}"
        shutil.copyfile(path, out / name)
        files[name] = {"group": group, "scene": scene, "edit": "original", "source": f"{scene}/{path.name}"}
        with Image.open(path) as opened:
            base = ImageOps.exif_transpose(opened).convert("RGB")
        chosen: list[str] = []
        for _ in range(rng.choice([2, 3])):  # every kind about equally often: draw from a shuffled queue
            if not queue:
                queue = kinds[:]
                rng.shuffle(queue)
            pick = next((k for k in queue if k not in chosen), queue[0])
            queue.remove(pick)
            chosen.append(pick)
        for kind in chosen:
            img, fmt, params = EXPORTS[kind](base, rng)
            ename = f"exports/{scene}-{path.stem}-{kind}.{fmt}"
            _save(img, out / ename, fmt, params)
            files[ename] = {"group": group, "scene": scene, "edit": kind, "source": f"{scene}/{path.name}",
                            "params": params}
    if photos:
        (out / "photos").mkdir()
        for p in sorted(PHOTOS.glob("*.JPEG")):
            shutil.copyfile(p, out / "photos" / p.name)
            files[f"photos/{p.name}"] = {"group": None, "scene": f"photo:{p.name}", "edit": "unrelated",
                                         "source": p.name}
    manifest = {"seed": seed, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


# --------------------------------------------------------------------------------------------------------------
# scoring


def true_pairs(manifest: dict, names: list[str]) -> set[tuple[int, int]]:
    by_group: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(names):
        if manifest[n]["group"] is not None:
            by_group[manifest[n]["group"]].append(i)
    return {tuple(sorted(p)) for m in by_group.values() for p in itertools.combinations(m, 2)}  # type: ignore[misc]


def score_pairs(pred: set[tuple[int, int]], manifest: dict, names: list[str]) -> dict:
    truth = true_pairs(manifest, names)
    tp = len(pred & truth)
    precision = tp / len(pred) if pred else 1.0
    recall = tp / len(truth) if truth else 1.0
    scene = [manifest[n]["scene"] for n in names]
    group = [manifest[n]["group"] for n in names]
    same_scene_false = sorted((names[a], names[b]) for a, b in pred - truth if scene[a] == scene[b])
    originals = {group[i]: i for i, n in enumerate(names) if manifest[n]["edit"] == "original"}
    per_kind: dict[str, list[bool]] = defaultdict(list)
    for i, n in enumerate(names):
        kind = manifest[n]["edit"]
        if kind in ("original", "unrelated"):
            continue
        per_kind[kind].append(tuple(sorted((i, originals[group[i]]))) in pred)
    return {"precision": round(precision, 4), "recall": round(recall, 4),
            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
            "pairs_true": len(truth), "pairs_predicted": len(pred), "true_positives": tp,
            "same_scene_false_pairs": len(same_scene_false), "same_scene_false_examples": same_scene_false[:10],
            "other_false_pairs": len(pred - truth) - len(same_scene_false),
            "recall_per_export": {k: round(float(np.mean(v)), 3) for k, v in sorted(per_kind.items())}}


def score_similar(sets: list, groups: list, manifest: dict, names: list[str], index: dict[str, int]) -> dict:
    """Frames that share a similar-shot set (directly or through a copy of theirs, which a set lists by its
    keeper) with another frame of their scene, and similar pairs that join different scenes."""
    group = [manifest[n]["group"] for n in names]
    scene = [manifest[n]["scene"] for n in names]
    copies_of: dict[int, set[int]] = defaultdict(set)  # file -> frame groups it stands for
    for i in range(len(names)):
        if group[i] is not None:
            copies_of[i].add(group[i])
    for g in groups:
        members = [index[m.info.path] for m in g.members]
        keeper = index[g.keeper.path]
        for m in members:
            if group[m] is not None:
                copies_of[keeper].add(group[m])
    covered: set[int] = set()
    cross, pairs = 0, 0
    for s in sets:
        ids = [index[f.path] for f in s.files]
        for a, b in itertools.combinations(ids, 2):
            pairs += 1
            if scene[a] != scene[b]:
                cross += 1
                continue
            ga, gb = copies_of.get(a, set()), copies_of.get(b, set())
            for x in ga:
                if any(y != x for y in gb):
                    covered.add(x)
            for y in gb:
                if any(x != y for x in ga):
                    covered.add(y)
    frames = sorted({g for g in group if g is not None})
    return {"sets": len(sets), "similar_pairs": pairs, "cross_scene_pairs": cross,
            "frames_in_same_scene_set": len(covered), "frames": len(frames),
            "coverage": round(len(covered) / len(frames), 3) if frames else 0.0,
            "reasons": [s.reason for s in sets[:8]]}


def phash_baseline(paths: list[Path], manifest: dict, names: list[str]) -> dict:
    from vitfeat_desktop.core.dupes.vectors import hamming_u64
    from vitfeat_desktop.core.images import ensure_plugins

    ensure_plugins()  # HEIC for the baseline too (a tool without a HEIF plugin could not read them at all)
    hashes, seconds = imagehash_pass(paths)
    hb = np.array(hashes, dtype=np.uint64)
    pred = set()
    for i in range(len(hb)):
        d = hamming_u64(np.full(len(hb) - i - 1, hb[i], dtype=np.uint64), hb[i + 1:])
        pred.update((i, i + 1 + int(j)) for j in np.nonzero(d <= 8)[0])
    out = score_pairs(pred, manifest, names)
    out["seconds"] = round(seconds, 1)
    return out


def study(lib: Path, out: Path, vectors: Path | None = None, limit: int = 1500) -> None:
    """The distributions verify.py's cuts come from: geometric and photometric evidence (align.py) for copy pairs
    and for pairs that are not copies, written as JSON rows. On a bench_scenes library: every pair of two files
    of one scene (a frame and its exports are copies, any two frames are not). On a make_dupes_library library
    (``vectors``: its bench_dupes vector cache): every edited copy against its original, and each file's three
    nearest different pictures by embedding."""
    from vitfeat_desktop.core.dupes.align import FeatureCache, better, match_features, photometric

    manifest = json.loads((lib / "manifest.json").read_text())["files"]
    names = sorted(manifest)
    pairs: list[tuple[str, str, bool, str]] = []
    if vectors is None:
        files = [n for n in names if manifest[n]["group"] is not None]
        for a, b in itertools.combinations(files, 2):
            if manifest[a]["scene"] == manifest[b]["scene"]:
                pairs.append((a, b, manifest[a]["group"] == manifest[b]["group"],
                              manifest[a]["edit"] + "|" + manifest[b]["edit"]))
    else:
        from vitfeat_desktop.core.dupes.vectors import center_vectors

        unit = center_vectors(np.load(vectors)["vectors"])
        original = {manifest[n]["group"]: n for n in names if manifest[n]["edit"] == "original"}
        pairs += [(original[manifest[n]["group"]], n, True, manifest[n]["edit"]) for n in names
                  if manifest[n]["edit"] not in ("original", "distractor")]
        sims = unit @ unit.T
        for i, n in enumerate(names):
            others = [j for j in np.argsort(-sims[i])[1:10] if manifest[names[j]]["group"] is None
                      or manifest[names[j]]["group"] != manifest[n]["group"]][:3]
            pairs += [(n, names[j], False, f"neighbour {sims[i, j]:.2f}") for j in others if i < j]
        random.Random(0).shuffle(pairs)
        pairs = pairs[:limit]
    cache = FeatureCache(size=100_000)
    rows = []
    for a, b, same, kind in pairs:
        fa, fb = cache.get(lib / a), cache.get(lib / b)
        al = match_features(fa, fb) if fa and fb else None
        if fa and (al is None or al.inlier_ratio < 0.5):
            fbm = cache.get(lib / b, mirror=True)
            if fbm is not None:
                al = better(al, match_features(fa, fbm, mirrored=True))
        ph = photometric(fa, fb, al) if al and fa and fb else None
        row: dict = {"a": a, "b": b, "same": same, "kind": kind}
        if al is not None:
            row.update(inliers=al.inliers, matches=al.matches, homography_inliers=al.homography_inliers,
                       residual_work=round(al.residual_work, 3), scale=round(al.scale, 3), mirrored=al.mirrored)
        if ph is not None:
            row.update(residual=round(ph.residual, 4), local=round(ph.local, 4),
                       changed_local=round(ph.changed_local, 4), overlap=round(ph.overlap, 3))
        rows.append(row)
    out.write_text(json.dumps(rows))
    for same in (True, False):
        got = [r for r in rows if r["same"] == same and "residual" in r]
        if got:
            res, loc = np.array([r["residual"] for r in got]), np.array([r["local"] for r in got])
            print(("copies" if same else "not copies"), len(got), f"residual {res.min():.3f}-{res.max():.3f}",
                  f"local {loc.min():.3f}-{loc.max():.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", type=Path, default=Path("/tmp/vf-scenes-lib"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-photos", action="store_true", help="leave the 300 unrelated photos out (faster)")
    parser.add_argument("--fp32", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--study", type=Path, help="write the per-pair evidence of --lib's pairs here and stop")
    parser.add_argument("--study-vectors", type=Path,
                        help="with --study on a make_dupes_library library: its bench_dupes vector cache (.npz)")
    args = parser.parse_args(argv)
    if args.study is not None:
        if args.study_vectors is None and (args.rebuild or not (args.lib / "manifest.json").is_file()):
            build(args.lib, photos=not args.no_photos)
        study(args.lib, args.study, args.study_vectors)
        return 0
    from vitfeat_desktop.core.dupes.calibrate import calibrate
    from vitfeat_desktop.core.dupes.finder import DuplicateFinder
    from vitfeat_desktop.core.dupes.verify import AlignmentVerifier, alignment_score

    manifest_path = args.lib / "manifest.json"
    if args.rebuild or not manifest_path.is_file():
        build(args.lib, photos=not args.no_photos)
    manifest = json.loads(manifest_path.read_text())["files"]
    names = sorted(n for n in manifest if not (args.no_photos and manifest[n]["edit"] == "unrelated"))
    paths = [args.lib / n for n in names]
    index = {str(p): i for i, p in enumerate(paths)}
    report: dict = {"files": len(paths), "frames": sum(manifest[n]["edit"] == "original" for n in names),
                    "exports": sum(manifest[n]["edit"] not in ("original", "unrelated") for n in names)}
    report["baseline_imagehash_phash_le8"] = phash_baseline(paths, manifest, names)
    infos, t_quick = quick_pass(paths)
    digest = hashlib.sha256(("\n".join(names) + manifest_path.read_text()).encode()).hexdigest()
    cache = args.lib.parent / f".{args.lib.name}-vectors-{'fp32' if args.fp32 else 'int8'}.npz"
    cached = np.load(cache) if cache.is_file() else None
    if cached is not None and str(cached["digest"]) == digest:
        from vitfeat_desktop.core.pipeline import pipeline

        vectors, t_embed = cached["vectors"], float(cached["seconds"])
        ext = pipeline("image-feature-extraction", model=str(REPO.parent / "shared" / "models" /
                                                              "dinov2-small-imgfocus"), quantized=not args.fp32)
    else:
        vectors, t_embed, ext = embed_all(paths, quantized=not args.fp32)
        np.savez(cache, vectors=vectors, seconds=t_embed, digest=digest)
    t0 = time.perf_counter()
    ph = np.array([f.hashes.phashes for f in infos], dtype=np.uint64)
    cal = calibrate(ext, paths, vectors, hashes=ph, sample=32, verifier=alignment_score)
    t_cal = time.perf_counter() - t0
    verifier = AlignmentVerifier()
    t0, c0 = time.perf_counter(), time.process_time()
    finder = DuplicateFinder.build(infos, vectors=vectors, thresholds=cal.thresholds, mean=cal.mean,
                                   verifier=verifier)
    t_build, c_build = time.perf_counter() - t0, time.process_time() - c0
    report["timing"] = {"quick_pass_s": round(t_quick, 1), "embed_s": round(t_embed, 1),
                        "calibrate_s": round(t_cal, 1), "build_with_verification_s": round(t_build, 1),
                        "build_cpu_s": round(c_build, 1), "pairs_ncc_verified": verifier.pairs_scored}
    geo = getattr(verifier, "geometry", None)  # None: a checkout from before geometric verification
    if geo is not None:
        from bench_dupes import geometry_cost

        report["timing"]["geometry"] = geometry_cost(geo, len(paths))
    for s in (0.0, 0.5, 1.0):
        groups = finder.groups(s)
        pred = set()
        for g in groups:
            pred.update(itertools.combinations(sorted(index[m.info.path] for m in g.members), 2))
        result = score_pairs(pred, manifest, names)
        result["similar"] = score_similar(finder.similar_groups(s), groups, manifest, names, index)
        report[f"vitfeat_sensitivity_{s}"] = result
    groups = finder.groups(0.5)
    from keeper_report import keeper_report  # issue 11: is each group's keeper the camera frame it came from?

    report["keeper_at_0.5"] = keeper_report(groups, {
        str(args.lib / n): (None if manifest[n]["edit"] == "unrelated" else manifest[n]["group"], manifest[n]["edit"])
        for n in names})
    report["example_reasons"] = [m.reason for g in groups[:40] for m in g.members[1:2]][:12]
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
