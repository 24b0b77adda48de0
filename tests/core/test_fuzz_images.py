"""Fuzzing the image loader with seeded mutations of real photos: no crash, no hang, every file accounted for.

Each case is a real shared photo (JPEG, and re-encoded as PNG, WebP, TIFF and GIF) with one seeded mutation:
flipped bits, a run of random bytes, a truncation, a duplicated or deleted chunk, or a header field (size,
length, marker) changed. The loader must give an upright RGB image or an :class:`ImageReadError` with a
one-line reason; anything else (another exception, a native crash, a hang) fails. The decoding runs in a
child process so a native crash fails this test instead of ending the test run.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.photos import REPO

CASES = 320
SEED = 1313

_CHILD = r"""
import json, sys, traceback
from pathlib import Path
from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.images import open_image, open_image_with_info

out = {"ok": 0, "refused": 0, "unexpected": [], "bad_reasons": []}
for n, path in enumerate(sorted(Path(sys.argv[1]).iterdir())):
    try:
        if n % 3 == 2:
            image = open_image(path, hf_compatible=True)  # the pipeline's exact path
        else:
            image, info = open_image_with_info(path, min_side=224)  # the indexer's reduced decode
        assert image.mode == "RGB" and image.width > 0 and image.height > 0, (image.mode, image.size)
        image.tobytes()
        out["ok"] += 1
    except ImageReadError as exc:
        out["refused"] += 1
        if not exc.reason or "\n" in exc.reason or len(exc.reason) > 300:
            out["bad_reasons"].append([path.name, exc.reason])
    except Exception as exc:
        out["unexpected"].append([path.name, type(exc).__name__, str(exc)[:200]])
print(json.dumps(out))
"""


def _encodings(photo: Path) -> list[tuple[str, bytes]]:
    from PIL import Image

    data = photo.read_bytes()
    out = [(".jpg", data)]
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        im.thumbnail((320, 320))
        for fmt, ext, kwargs in (("PNG", ".png", {}), ("WEBP", ".webp", {"quality": 80}),
                                 ("TIFF", ".tif", {}), ("GIF", ".gif", {})):
            buf = io.BytesIO()
            im.save(buf, fmt, **kwargs)
            out.append((ext, buf.getvalue()))
    return out


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    n = len(buf)
    kind = int(rng.integers(0, 7))
    if kind == 0:  # flipped bits anywhere
        for pos in rng.integers(0, n, int(rng.integers(1, 33))):
            buf[int(pos)] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # a run of random bytes
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 4096))
        buf[start : start + length] = rng.integers(0, 256, min(length, n - start), dtype=np.uint8).tobytes()
    elif kind == 2:  # truncated
        del buf[int(rng.integers(1, n)) :]
    elif kind == 3:  # a chunk duplicated
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 2048))
        buf[start:start] = buf[start : start + length]
    elif kind == 4:  # a chunk deleted
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 2048))
        del buf[start : start + length]
    elif kind == 5:  # the header: bytes in the first 64 set to extremes (sizes, lengths, markers)
        for pos in rng.integers(0, min(64, n), int(rng.integers(1, 5))):
            buf[int(pos)] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80]))
    else:  # a 16-bit size field (JPEG SOF / PNG IHDR region) set to something absurd
        pos = int(rng.integers(0, min(200, n - 2)))
        buf[pos : pos + 2] = int(rng.choice([0, 1, 0xFFFF, 0x8000])).to_bytes(2, "big")
    return bytes(buf)


def test_fuzzed_photos_decode_or_give_a_reason(tmp_path: Path, photos: list[Path]) -> None:
    rng = np.random.default_rng(SEED)
    sources = [photos[int(i)] for i in rng.choice(len(photos), 16, replace=False)]
    encoded = [e for p in sources for e in _encodings(p)]
    folder = tmp_path / "fuzzed"
    folder.mkdir()
    for n in range(CASES):
        ext, data = encoded[n % len(encoded)]
        (folder / f"{n:04d}{ext}").write_bytes(_mutate(data, rng))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True,
                              timeout=240, env=env, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        pytest.fail("decoding a fuzzed photo hung")
    assert done.returncode == 0, f"the decoder crashed (rc {done.returncode}): {done.stderr[-2000:]}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"fuzz: {out['ok']} decoded, {out['refused']} refused with a reason")
    assert out["unexpected"] == [], out["unexpected"][:10]
    assert out["bad_reasons"] == []
    assert out["ok"] + out["refused"] == CASES  # every file accounted for
    assert out["ok"] > CASES // 10 and out["refused"] > CASES // 10  # the mutations hit both ways
