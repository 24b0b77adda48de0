"""Make camera-sized JPEGs (default 6000x4000, quality 92) from the shared photos, for indexing benchmarks.

Run: ``.venv/bin/python tests/bench/make_camera_jpegs.py OUT_DIR [-n 48]``. Existing files are kept, so a
second run costs nothing.

Why noise: an upscaled 500x375 photo is smooth, so its JPEG is small and decodes faster than a real camera file
whose sensor noise and detail fill the entropy-coded data. Adding grain (sigma ~6 levels) brings the files
to a camera-like 6-10 MB and the decode cost with them; the EXIF block names a camera and a capture date and
half the files carry an orientation tag, as phone and camera files do.

``--preview 1920x1280`` also embeds the same picture downscaled (Lanczos, quality 85) as an MPF "large thumbnail
(full-HD equivalent)", as Canon, Nikon, Sony, Fujifilm and Panasonic cameras do; Pillow's MPO writer marks the
extra frame "undefined", so the MP type is patched to 0x010002 afterwards.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO.parent / "shared" / "data" / "photos"


def _grain(rng: np.random.Generator, tile: int = 1024) -> np.ndarray:
    return np.clip(rng.normal(0, 6.0, size=(tile, tile, 3)), -18, 18).astype(np.int16)


def mp_entries(buf: bytes | bytearray) -> tuple[int, str, int, int]:
    """Where a JPEG's MPF "MP entry" table is: (TIFF base offset, struct endianness, table offset from the base,
    number of 16-byte entries). Every frame of a multi-picture file has one entry there."""
    at = buf.find(b"MPF\x00")
    if at < 0:
        raise ValueError("no MPF block")
    base = at + 4
    endian = "<" if buf[base : base + 2] == b"II" else ">"
    (ifd,) = struct.unpack_from(endian + "I", buf, base + 4)
    (count,) = struct.unpack_from(endian + "H", buf, base + ifd)
    for i in range(count):
        tag, _typ, n, value = struct.unpack_from(endian + "HHII", buf, base + ifd + 2 + 12 * i)
        if tag == 0xB002:
            return base, endian, value, n // 16
    raise ValueError("no MP entries")


def mark_large_thumbnails(data: bytes) -> bytes:
    """Set the MP type of every frame after the first to "large thumbnail (full-HD equivalent)" (0x010002)."""
    buf = bytearray(data)
    base, endian, table, entries = mp_entries(buf)
    for entry in range(1, entries):
        struct.pack_into(endian + "I", buf, base + table + 16 * entry, 0x010002)
    return bytes(buf)


def make_one(source: Path, target: Path, size: tuple[int, int], quality: int, seed: int,
             preview: tuple[int, int] | None = None) -> None:
    rng = np.random.default_rng(seed)
    width, height = size
    with Image.open(source) as im:
        im = im.convert("RGB")
        scale = max(width / im.width, height / im.height)
        big = im.resize((round(im.width * scale) + 1, round(im.height * scale) + 1), Image.Resampling.BICUBIC)
    left, top = (big.width - width) // 2, (big.height - height) // 2
    arr = np.asarray(big.crop((left, top, left + width, top + height)), dtype=np.int16)
    grain = _grain(rng)
    for y in range(0, height, grain.shape[0]):
        for x in range(0, width, grain.shape[1]):
            block = arr[y : y + grain.shape[0], x : x + grain.shape[1]]
            dy, dx = rng.integers(0, 64, size=2)
            g = np.roll(grain, (int(dy), int(dx)), axis=(0, 1))[: block.shape[0], : block.shape[1]]
            block += g
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "Benchmark"
    exif[0x0110] = "Cam 24MP"
    exif[0x0112] = 1 if seed % 2 == 0 else 6
    exif.get_ifd(0x8769)[0x9003] = f"2024:05:{seed % 28 + 1:02d} 12:00:00"
    tmp = target.with_suffix(".tmp")
    if preview is None:
        out.save(tmp, format="JPEG", quality=quality, exif=exif)
    else:
        small = out.resize(preview, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        out.save(buf, format="MPO", save_all=True, append_images=[small], quality=quality, exif=exif)
        tmp.write_bytes(mark_large_thumbnails(buf.getvalue()))
    tmp.replace(target)


def make(out_dir: Path, n: int, size: tuple[int, int] = (6000, 4000), quality: int = 92,
         preview: tuple[int, int] | None = None) -> list[Path]:
    sources = sorted(PHOTOS.glob("*.JPEG"))
    if not sources:
        raise SystemExit(f"no photos in {PHOTOS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(n):
        target = out_dir / f"IMG_{i:04d}.jpg"
        if not target.exists():
            make_one(sources[(i * 7) % len(sources)], target, size, quality, seed=i, preview=preview)
        made.append(target)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=48)
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--quality", type=int, default=92)
    parser.add_argument("--preview", default=None, help="embed an MPF large preview of this size, e.g. 1920x1280")
    args = parser.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))
    preview = tuple(int(x) for x in args.preview.lower().split("x")) if args.preview else None
    files = make(args.out, args.n, (w, h), args.quality, preview=preview)  # type: ignore[arg-type]
    total = sum(f.stat().st_size for f in files)
    print(f"{len(files)} files of {w}x{h} in {args.out}, {total / len(files) / 2**20:.1f} MiB each on average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
