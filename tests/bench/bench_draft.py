"""How far the fast JPEG path (draft decode at 1/2..1/8 scale) is from the exact path, on the real model.

Makes camera-sized JPEGs (6000x4000, quality 92) from the shared photos, then for each one compares the pooled
vector of the exact decode (full resolution, then the model's resize) with the draft decode (DCT-scaled to the
smallest scale whose shorter side is still >= the preprocessor's target), and times both decodes.

Usage: python tests/bench/bench_draft.py [--images 40] [--workdir /tmp/vitfeat-camera-jpegs]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def make_camera_jpegs(count: int, workdir: Path) -> list[Path]:
    """6000x4000 q92 JPEGs (landscape; every third one portrait) upscaled from the shared photos, cached."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = []
    for i, src in enumerate(sorted((SHARED / "data" / "photos").glob("*.JPEG"))[:count]):
        target = workdir / f"{src.stem}_24mp.jpg"
        if not target.is_file():
            size = (4000, 6000) if i % 3 == 2 else (6000, 4000)
            Image.open(src).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(target, quality=92)
        out.append(target)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vitfeat-camera-jpegs"))
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "dinov2-small-imgfocus")
    args = parser.parse_args()

    from vitfeat_desktop import pipeline
    from vitfeat_desktop.core.images import open_image

    files = make_camera_jpegs(args.images, args.workdir)
    extractor = pipeline("image-feature-extraction", model=args.model, quantized=False)
    pre = extractor.preprocessor
    min_side = pre.min_decode_side()
    cosines, exact_times, draft_times, draft_sizes = [], [], [], []
    for path in files:
        start = time.perf_counter()
        exact = open_image(path)
        exact_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        draft = open_image(path, min_side=min_side)
        draft_times.append(time.perf_counter() - start)
        draft_sizes.append(draft.size)
        vectors = extractor.run(np.concatenate([pre(exact), pre(draft)]), hidden=False)["pooler_output"]
        a, b = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        cosines.append(float(a @ b))
    cos = np.array(cosines)
    print(f"{len(files)} camera JPEGs (6000x4000 q92), model {args.model.name} fp32, min decode side {min_side}")
    print(f"draft sizes: {sorted(set(draft_sizes))}")
    print(f"cosine(exact, draft): min {cos.min():.5f}  mean {cos.mean():.5f}  "
          f"below 0.995: {(cos < 0.995).sum()} of {len(cos)}")
    exact_ms, draft_ms = np.mean(exact_times) * 1000, np.mean(draft_times) * 1000
    print(f"decode time per file: exact {exact_ms:.0f} ms, draft {draft_ms:.0f} ms ({exact_ms / draft_ms:.1f}x faster)")
    return 0 if cos.min() >= 0.995 else 1


if __name__ == "__main__":
    sys.exit(main())
