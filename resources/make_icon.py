"""Draw the vitfeat-desktop app icon and write it in every format the installers need.

Why a script rather than committed binaries: one source of truth that reviews as text, and the .ico/.icns/PNG
set (about 1 MB together) is regenerated at build time instead of bloating the repository.

The picture: two photo cards fanned out on a deep-blue rounded square, the front one a landscape, linked to the
back one by a bright "match" arc with two nodes: a photo stack and the similarity between two pictures.

``resources/icon.png`` in the repository is this script's output (``python resources/make_icon.py --png-only``),
kept so the app shows its icon when run from a source checkout.

Usage: ``python resources/make_icon.py OUT_DIR`` writes
``OUT_DIR/icon.png`` (1024 px), ``vitfeat-desktop.ico`` (16-256 px), ``vitfeat-desktop.icns`` (16-1024 px) and
``hicolor/<N>x<N>/apps/vitfeat-desktop.png`` for the freedesktop icon theme.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

APP_ID = "vitfeat-desktop"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)
SUPERSAMPLE = 2

BG_TOP = (28, 52, 110)
BG_BOTTOM = (12, 22, 52)
CARD = (246, 246, 242)
SKY_TOP = (120, 190, 240)
SKY_BOTTOM = (200, 230, 250)
HILL_BACK = (70, 140, 110)
HILL_FRONT = (40, 105, 80)
SUN = (255, 196, 64)
MATCH = (255, 170, 40)


def _rounded_mask(size: int, box: tuple[float, float, float, float], radius: float) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).rounded_rectangle(box, radius=radius, fill=255)
    return mask


def _vertical_gradient(width: int, height: int, top: tuple[int, int, int],
                       bottom: tuple[int, int, int]) -> Image.Image:
    strip = Image.new("RGB", (1, 256))
    for y in range(256):
        t = y / 255
        strip.putpixel((0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return strip.resize((width, height), Image.Resampling.BILINEAR)


def _photo_card(w: int, h: int, landscape: bool, tint: tuple[int, int, int]) -> Image.Image:
    """A white-bordered print; the front one shows a landscape, the back one a softer variant of it."""
    card = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    radius = w * 0.06
    ImageDraw.Draw(card).rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=(*CARD, 255))
    border = round(w * 0.07)
    pw, ph = w - 2 * border, h - 2 * border
    sky_bottom = tuple(round(c * 0.7 + t * 0.3) for c, t in zip(SKY_BOTTOM, tint, strict=True))
    picture = _vertical_gradient(pw, ph, SKY_TOP, sky_bottom).convert("RGBA")
    draw = ImageDraw.Draw(picture)
    sun_r = pw * 0.11
    sun_c = (pw * 0.72, ph * 0.3)
    draw.ellipse((sun_c[0] - sun_r, sun_c[1] - sun_r, sun_c[0] + sun_r, sun_c[1] + sun_r), fill=SUN)
    back = [(0, ph * 0.72), (pw * 0.28, ph * 0.42), (pw * 0.55, ph * 0.66), (pw * 0.8, ph * 0.5), (pw, ph * 0.64),
            (pw, ph), (0, ph)]
    draw.polygon(back, fill=HILL_BACK)
    if landscape:
        front = [(0, ph * 0.86), (pw * 0.35, ph * 0.66), (pw * 0.7, ph * 0.84), (pw, ph * 0.74), (pw, ph), (0, ph)]
        draw.polygon(front, fill=HILL_FRONT)
    mask = _rounded_mask(max(pw, ph), (0, 0, pw - 1, ph - 1), radius * 0.5).crop((0, 0, pw, ph))
    card.paste(picture, (border, border), mask)
    return card


def _shadow(card: Image.Image, blur: float, opacity: int) -> Image.Image:
    alpha = card.getchannel("A").point(lambda a: opacity if a else 0)
    shadow = Image.new("RGBA", card.size, (0, 0, 0, 0))
    shadow.putalpha(alpha)
    return shadow.filter(ImageFilter.GaussianBlur(blur))


def _place(canvas: Image.Image, card: Image.Image, center: tuple[float, float], angle: float) -> None:
    rotated = card.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    pad = round(canvas.width * 0.04)
    framed = Image.new("RGBA", (rotated.width + 2 * pad, rotated.height + 2 * pad), (0, 0, 0, 0))
    framed.paste(rotated, (pad, pad))
    shadow = _shadow(framed, canvas.width * 0.012, 120)
    x = round(center[0] - framed.width / 2)
    y = round(center[1] - framed.height / 2)
    canvas.alpha_composite(shadow, (x + round(canvas.width * 0.008), y + round(canvas.width * 0.016)))
    canvas.alpha_composite(framed, (x, y))


def draw_icon(size: int = 1024) -> Image.Image:
    """Return the icon as an RGBA image of ``size`` pixels (drawn larger and reduced, for smooth edges)."""
    s = size * SUPERSAMPLE
    canvas = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    margin = s * 0.06
    box = (margin, margin, s - margin, s - margin)
    background = _vertical_gradient(s, s, BG_TOP, BG_BOTTOM).convert("RGBA")
    canvas.paste(background, (0, 0), _rounded_mask(s, box, s * 0.2))

    card_w, card_h = round(s * 0.5), round(s * 0.4)
    _place(canvas, _photo_card(card_w, card_h, landscape=False, tint=(255, 200, 150)), (s * 0.41, s * 0.39), 12)
    _place(canvas, _photo_card(card_w, card_h, landscape=True, tint=(150, 200, 255)), (s * 0.57, s * 0.6), -8)

    # The similarity motif: an arc joining a node on each picture.
    draw = ImageDraw.Draw(canvas)
    a = (s * 0.3, s * 0.3)
    b = (s * 0.74, s * 0.73)
    width = max(2, round(s * 0.022))
    mid = ((a[0] + b[0]) / 2 + s * 0.16, (a[1] + b[1]) / 2 - s * 0.16)
    points = []
    for i in range(41):
        t = i / 40
        points.append(((1 - t) ** 2 * a[0] + 2 * (1 - t) * t * mid[0] + t**2 * b[0],
                       (1 - t) ** 2 * a[1] + 2 * (1 - t) * t * mid[1] + t**2 * b[1]))
    draw.line(points, fill=(*MATCH, 255), width=width, joint="curve")
    for cx, cy in (a, b):
        r = s * 0.045
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*MATCH, 255), outline=(255, 255, 255, 255),
                     width=max(1, round(s * 0.01)))
    # A small spark at the arc's apex: "found".
    apex = points[20]
    r = s * 0.03
    spark = [(apex[0] + r * math.cos(k * math.pi / 4) * (1.0 if k % 2 == 0 else 0.4),
              apex[1] + r * math.sin(k * math.pi / 4) * (1.0 if k % 2 == 0 else 0.4)) for k in range(8)]
    draw.polygon(spark, fill=(255, 255, 255, 255))
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def write_all(out_dir: Path) -> dict[str, Path]:
    """Write every icon file into ``out_dir``; returns a name -> path map of what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    master = draw_icon(1024)
    written: dict[str, Path] = {}
    png = out_dir / "icon.png"
    master.save(png, optimize=True)
    written["png"] = png
    ico = out_dir / f"{APP_ID}.ico"
    master.save(ico, format="ICO", sizes=[(n, n) for n in ICO_SIZES])
    written["ico"] = ico
    icns = out_dir / f"{APP_ID}.icns"
    master.save(icns, format="ICNS", append_images=[master.resize((n, n), Image.Resampling.LANCZOS)
                                                    for n in ICNS_SIZES if n != 1024])
    written["icns"] = icns
    for n in HICOLOR_SIZES:
        # Small sizes are drawn directly rather than shrunk from 1024 px: the strokes stay visible.
        image = draw_icon(n) if n <= 64 else master.resize((n, n), Image.Resampling.LANCZOS)
        path = out_dir / "hicolor" / f"{n}x{n}" / "apps" / f"{APP_ID}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, optimize=True)
        written[f"hicolor{n}"] = path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, nargs="?", help="folder to write the icon files into")
    parser.add_argument("--png-only", action="store_true", help="only (re)write resources/icon.png")
    args = parser.parse_args(argv)
    if args.png_only or args.out_dir is None:
        path = Path(__file__).resolve().parent / "icon.png"
        draw_icon(1024).save(path, optimize=True)
        print(f"png: {path} ({path.stat().st_size} bytes)")
        return 0
    for name, path in write_all(args.out_dir).items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
