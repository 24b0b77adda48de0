"""Build the near-duplicate benchmark library from the shared photos.

For ``--originals`` photos, every edit type the duplicates issue lists is written as a separate file (originals
included); the remaining photos are distractors. File names are random, so nothing can be read from them, and
``manifest.json`` records which original and which edit each file is. The photos are one per ImageNet class, so
two different originals are never a true pair.

Usage: python tests/bench/make_dupes_library.py OUT_DIR [--originals 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "photos"
UPSCALE_PIXELS = 24_000_000

Edit = Callable[[Image.Image, random.Random], tuple[Image.Image, str, dict]]


def _jpeg(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return img, "jpg", {"quality": rng.randint(30, 70)}


def _down(scale: float) -> Edit:
    def edit(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
        w, h = img.size
        return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS), "jpg", {}
    return edit


def _crop(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    keep = rng.uniform(0.70, 0.90)  # fraction of each side kept
    w, h = img.size
    cw, ch = round(w * keep), round(h * keep)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch)), "jpg", {"keep": round(keep, 3)}


def _rot90(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    turn = rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270])
    return img.transpose(turn), "jpg", {}


def _rot_small(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    angle = rng.uniform(2, 6) * rng.choice([-1, 1])
    rotated = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    w, h = img.size
    m = 0.12  # crop away the black corners
    return rotated.crop((round(w * m), round(h * m), round(w * (1 - m)), round(h * (1 - m)))), "jpg", \
        {"angle": round(angle, 2)}


def _mirror(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return ImageOps.mirror(img), "jpg", {}


def _colour(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    b, c, s = rng.uniform(0.75, 1.3), rng.uniform(0.75, 1.3), rng.uniform(0.6, 1.5)
    out = ImageEnhance.Brightness(img).enhance(b)
    out = ImageEnhance.Contrast(out).enhance(c)
    return ImageEnhance.Color(out).enhance(s), "jpg", {"brightness": round(b, 2), "contrast": round(c, 2),
                                                      "saturation": round(s, 2)}


def _gray(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return ImageOps.grayscale(img).convert("RGB"), "jpg", {}


def _watermark(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    size = max(12, img.height // 10)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # old Pillow
        font = ImageFont.load_default()
    text = rng.choice(["© My Photos 2024", "SAMPLE", "instagram.com/someone"])
    x, y = rng.randint(0, img.width // 3), rng.randint(img.height // 2, img.height - size - 2)
    draw.text((x + 1, y + 1), text, fill=(0, 0, 0), font=font)
    draw.text((x, y), text, fill=(255, 255, 255), font=font)
    return out, "jpg", {"text": text}


def _border(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    w, h = img.size
    if rng.random() < 0.5:  # letterbox to 16:9-ish canvas
        canvas = Image.new("RGB", (round(h * 16 / 9), h), (0, 0, 0))
        canvas.paste(img, ((canvas.width - w) // 2, 0))
        return canvas, "jpg", {"kind": "letterbox"}
    pad = round(min(w, h) * rng.uniform(0.04, 0.1))
    colour = rng.choice([(255, 255, 255), (0, 0, 0)])
    return ImageOps.expand(img, border=pad, fill=colour), "jpg", {"kind": "border", "pad": pad}


def _png(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return img, "png", {}


def _webp(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    return img, "webp", {"quality": 80}


def _exif_orient(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    # Stored pixels are turned; the EXIF tag says how to turn them back, as a phone camera writes them.
    return img.transpose(Image.Transpose.ROTATE_90), "jpg", {"orientation": 6}


def _upscale(img: Image.Image, rng: random.Random) -> tuple[Image.Image, str, dict]:
    w, h = img.size
    scale = (UPSCALE_PIXELS / (w * h)) ** 0.5
    return img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC), "jpg", {"quality": 90}


EDITS: dict[str, Edit] = {
    "downscale-50": _down(0.5),
    "downscale-25": _down(0.25),
    "jpeg-30-70": _jpeg,
    "crop-70-90": _crop,
    "rotate-90": _rot90,
    "rotate-small-crop": _rot_small,
    "mirror": _mirror,
    "colour": _colour,
    "grayscale": _gray,
    "watermark": _watermark,
    "border": _border,
    "png": _png,
    "webp": _webp,
    "exif-orientation": _exif_orient,
    "upscale-24mp": _upscale,
}


def _save(img: Image.Image, path: Path, fmt: str, params: dict) -> None:
    if fmt == "jpg":
        kwargs: dict = {"quality": int(params.get("quality", 92))}
        if "orientation" in params:
            exif = Image.Exif()
            exif[0x0112] = int(params["orientation"])
            kwargs["exif"] = exif.tobytes()
        img.save(path, "JPEG", **kwargs)
    elif fmt == "png":
        img.save(path, "PNG")
    elif fmt == "webp":
        img.save(path, "WEBP", quality=int(params.get("quality", 80)))
    else:  # pragma: no cover
        raise ValueError(fmt)


def build(out: Path, originals: int = 60, seed: int = 0, edits: list[str] | None = None) -> dict:
    """Write the library into ``out`` (emptied first) and return the manifest."""
    rng = random.Random(seed)
    photos = sorted(PHOTOS.glob("*.JPEG"))
    if not photos:
        raise SystemExit(f"no photos in {PHOTOS}")
    rng.shuffle(photos)
    chosen, distractors = photos[:originals], photos[originals:]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files: dict[str, dict] = {}
    names = set()

    def new_name(ext: str) -> str:
        while True:
            name = f"{rng.getrandbits(48):012x}.{ext}"
            if name not in names:
                names.add(name)
                return name

    for group, src in enumerate(chosen):
        name = new_name("jpg")
        shutil.copyfile(src, out / name)
        files[name] = {"group": group, "edit": "original", "source": src.name}
        with Image.open(src) as opened:
            base = ImageOps.exif_transpose(opened).convert("RGB")
        for edit_name in edits or EDITS:
            img, fmt, params = EDITS[edit_name](base, rng)
            name = new_name(fmt)
            _save(img, out / name, fmt, params)
            files[name] = {"group": group, "edit": edit_name, "source": src.name, "params": params}
    for src in distractors:
        name = new_name("jpg")
        shutil.copyfile(src, out / name)
        files[name] = {"group": None, "edit": "distractor", "source": src.name}
    manifest = {"seed": seed, "originals": originals, "edits": list(edits or EDITS), "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _buffer_size(img: Image.Image) -> int:  # pragma: no cover - handy when tuning sizes
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.tell()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--originals", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = build(args.out, args.originals, args.seed)
    print(f"wrote {len(manifest['files'])} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
