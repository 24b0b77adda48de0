"""What the keeper rules measure in pixels: per-file working images, JPEG block grids and quantisers, uniform
frames, overlays, colour signatures, detail above a resolution, and whether a re-encode reproduces a file.

Pure measurements on images and arrays, with the constants they were measured with (``tests/bench/
keeper_report.py``); ``keeper.py`` turns them into verdicts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from PIL.JpegImagePlugin import get_sampling

LOSSLESS_FORMATS = frozenset({"PNG", "TIFF", "BMP", "GIF", "PPM", "DIB"})

WORK_SIDE = 320  # longer side of the working images for colour, frame and overlay checks
GRID_MAX_PIXELS = 16_000_000  # the JPEG-grid check decodes in full; bigger files skip it
GRID_CROP = 1024  # ... and measures a central crop of at most this size (offset kept on the 8-pixel grid)
# 8x8 grid strength: the mean gradient across a block boundary over the median of the eight phases, minus 1.
# Natural pictures without a grid stay below 0.05 on the shared photos (periodic content rarely reaches 0.1);
# a JPEG at quality ~75 shows 0.15-0.8, and a copy decoded and re-saved keeps its source's grid.
GRID_SEEN = 0.12
GRID_KEPT = 0.6  # a finer JPEG whose grid is at least this share of the coarser one's inherited it
QUALITY_STEP = 1.15  # mean luminance quantiser ratio that counts as "recompressed harder"
DETAIL_RATIO = 0.14  # energy above the smaller file's resolution over its own top octave: below = upscale (benchmark:
# upscales 0.02-0.13, genuinely sharper files 0.15-3.7; see detail_ratio)
# ... but real camera files are soft per pixel (demosaicing, lenses): 3072x2048 frames of the shared scenes beside
# their own web exports score 0.07-0.10 there too. What an interpolated upscale has and a soft original has not is
# a cliff at the smaller file's resolution: the larger file's energy just above it over the octave-half just below.
# Measured: camera originals 0.24-1.18 (ImageNet originals 0.93-2.6), bicubic/Lanczos upscales 0.09-0.33. An
# upscale is called only below CLIFF_RATIO; between the two the evidence is ambiguous and the larger file is kept
# (keeping an upscale loses no detail; keeping an export over a camera original would).
CLIFF_RATIO = 0.2
# Far apart (5x linear or more, e.g. a 24-MP upscale of a web picture) the first ratio alone separates: camera
# frames beside their 1/6 and 1/8 exports 0.28-0.73, upscales of 4-11x 0.02-0.13.
FAR_LINEAR = 5.0
FAR_DETAIL = 0.2
SIZE_STEP = 1.2  # pixel-count ratio that counts as "a different resolution"
GRAY_CHROMA = 3.0  # mean |R-G|,|G-B| of a grey picture (JPEG chroma noise)
COLOUR_CHROMA = 8.0  # ... and of a picture with real colour
GRAY_EXACT = 1.0  # R = G = B (a conversion to grey); a nearly grey photo with a colour cast still has 3 or more
FRAME_TOLERANCE = 12  # grey levels a frame may vary by (JPEG ringing) and still count as uniform
FRAME_MIN = 0.02  # a frame must cover at least this share of the picture
ASPECT_TOLERANCE = 0.04


@dataclass(frozen=True)
class Small:
    """A file's working image (longer side ~WORK_SIDE) and what it tells at a glance."""

    rgb: np.ndarray  # uint8 [h, w, 3] (~230 KB; a bounded number are kept)
    chroma: float  # mean colour spread: ~0 for a grey picture
    frame: tuple[int, int, int, int]  # uniform rows/columns at top, bottom, left, right (working pixels)
    frame_colour: tuple[int, int, int]


@dataclass(frozen=True)
class Grid:
    own: float  # grid strength at the file's own JPEG block boundaries (0 for other formats)
    foreign: float  # strongest grid anywhere else (any phase for formats without their own 8x8 grid)


def quality_step(image: Image.Image) -> float | None:
    """Mean luminance quantiser of a JPEG (1 = quality ~98, 5 = ~92, 29 = ~50), None for other formats."""
    tables = getattr(image, "quantization", None)
    if not tables:
        return None
    table = tables.get(0) or next(iter(tables.values()))
    return float(np.mean(table))


_IJG_LUMA_MEAN = 57.625  # mean of the standard luminance table (quality 50)


def jpeg_quality(step: float) -> int:
    """The IJG quality setting whose luminance table has this mean step (for the words only)."""
    scale = 100.0 * step / _IJG_LUMA_MEAN
    q = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return round(min(100.0, max(1.0, q)))


def _grid_profile(gray: np.ndarray, axis: int) -> np.ndarray:
    d = np.abs(np.diff(gray, axis=axis))
    d = d.mean(axis=0) if axis == 1 else d.mean(axis=1)
    n = len(d) // 8 * 8
    if n < 16:
        return np.zeros(8)
    p = d[:n].reshape(-1, 8).mean(axis=0)
    med = float(np.median(p))
    return p / med - 1.0 if med > 1e-6 else np.zeros(8)


def grid_strength(gray: np.ndarray, own_grid: bool) -> Grid:
    """How strongly an 8x8 block grid shows in ``gray`` (stored orientation), at the file's own JPEG block
    boundaries (between pixels 8k+7 and 8k+8) and elsewhere. Each axis separately: a mirrored copy moves the
    grid along one axis only."""
    own = foreign = 0.0
    for axis in (1, 0):
        p = _grid_profile(gray, axis)
        if own_grid:
            own = max(own, float(p[7]))
            foreign = max(foreign, float(np.delete(p, 7).max()))
        else:
            foreign = max(foreign, float(p.max()))
    return Grid(own, foreign)


def frame_of(rgb: np.ndarray) -> tuple[tuple[int, int, int, int], tuple[int, int, int]]:
    """Uniform rows/columns around the picture, in the colour of the corners (border, letterbox bars)."""
    h, w = rgb.shape[:2]
    corners = np.array([rgb[0, 0], rgb[0, -1], rgb[-1, 0], rgb[-1, -1]])
    colour = np.median(corners, axis=0)
    off = np.abs(rgb - colour).max(axis=2) > FRAME_TOLERANCE
    rows = np.flatnonzero(off.mean(axis=1) > 0.01)
    cols = np.flatnonzero(off.mean(axis=0) > 0.01)
    if rows.size == 0 or cols.size == 0:
        return (0, 0, 0, 0), (0, 0, 0)
    top, bottom = int(rows[0]), h - 1 - int(rows[-1])
    left, right = int(cols[0]), w - 1 - int(cols[-1])
    if (h - top - bottom) * (w - left - right) < 0.2 * h * w:  # a portrait photo pillarboxed to 16:9: 26 %
        return (0, 0, 0, 0), (0, 0, 0)
    # A border or letterbox is symmetric (an editor pads, a player centres); a photo's own dark or white edge
    # (a night sky, a studio background) is on one side, or uneven.
    # Sides under 3 % are the picture's own edge or JPEG ringing, not a frame.
    top, bottom = (v if v >= 0.03 * h else 0 for v in (top, bottom))
    left, right = (v if v >= 0.03 * w else 0 for v in (left, right))

    def even(x: int, y: int) -> bool:
        return abs(x - y) <= max(2, 0.3 * max(x, y))
    if not (even(top, bottom) and even(left, right)):
        return (0, 0, 0, 0), (0, 0, 0)
    return (top, bottom, left, right), (int(colour[0]), int(colour[1]), int(colour[2]))


def frame_share(small: Small) -> float:
    h, w = small.rgb.shape[:2]
    t, b, left, r = small.frame
    return 1.0 - (h - t - b) * (w - left - r) / float(h * w)


def inner_aspect(small: Small) -> float:
    h, w = small.rgb.shape[:2]
    t, b, left, r = small.frame
    return (w - left - r) / max(1.0, float(h - t - b))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114, dtype=np.float32)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def inside_matches(framed: Small, other: Small) -> bool:
    """The inside of ``framed``'s frame is ``other``'s whole picture (not a crop of it, nor a different one)."""
    h, w = framed.rgb.shape[:2]
    t, b, left, r = framed.frame
    inner = _gray(framed.rgb)[t:h - b, left:w - r]
    target = _gray(other.rgb)
    if inner.size < 64 or target.size < 64:
        return False
    side = (64, max(8, round(64 * target.shape[0] / target.shape[1])))  # coarse: the two were resized differently
    resized = np.asarray(Image.fromarray(inner, mode="F").resize(side, Image.Resampling.BOX), dtype=np.float32)
    coarse = np.asarray(Image.fromarray(target, mode="F").resize(side, Image.Resampling.BOX), dtype=np.float32)
    return _correlation(resized, coarse) >= FRAME_CONTENT


def overlay_of(a: Small, b: Small) -> int | None:
    """Which of two same-size working images carries a local overlay (watermark, text, logo) the other lacks:
    after matching brightness and contrast, they differ strongly in a small area only, and there the overlay
    adds edges (0 = ``a``, 1 = ``b``, None = no overlay)."""
    if a.rgb.shape != b.rgb.shape:
        return None
    ga, gb = _gray(a.rgb), _gray(b.rgb)
    g = ga.ravel() / 255.0
    x = np.stack([g, g * g, np.ones(ga.size, dtype=np.float32)], axis=1)  # a tone curve, not only a line
    y = gb.ravel()
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    # fit again without the worst 15 %: the overlay itself must not bend the brightness/contrast match
    keep = np.abs(y - x @ coef) <= np.quantile(np.abs(y - x @ coef), 0.85)
    coef, *_ = np.linalg.lstsq(x[keep], y[keep], rcond=None)
    residual = np.abs(y - x @ coef).reshape(gb.shape)
    mask = residual > OVERLAY_LEVEL
    share = float(mask.mean())
    if not (0.0005 < share < OVERLAY_MAX_SHARE) or float(np.median(residual)) > 3.0:
        return None
    # an overlay sits in one place (a line of text, a logo); a colour edit's clipped highlights are everywhere
    rows, cols = mask.sum(axis=1), mask.sum(axis=0)
    if _span(rows, 0.8) > 0.35 * len(rows) and _span(cols, 0.8) > 0.35 * len(cols):
        return None
    grown = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0

    def edges(g: np.ndarray) -> float:
        gy, gx = np.gradient(g)
        return float(((gx * gx + gy * gy) * grown).sum())

    slope = float(np.median(coef[0] + 2 * coef[1] * g)) / 255.0  # d(b)/d(a): b's edges in a's contrast units
    ea, eb = edges(ga), edges(gb / max(slope, 1e-3))
    if eb > OVERLAY_EDGES * ea:
        return 1
    if ea > OVERLAY_EDGES * eb:
        return 0
    return None


def _span(counts: np.ndarray, share: float) -> int:
    """Length of the shortest run of consecutive entries holding ``share`` of the total."""
    total = float(counts.sum())
    if total <= 0:
        return len(counts)
    cum = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    need = share * total
    ends = np.searchsorted(cum, cum[:-1] + need, side="left")
    return int((ends - np.arange(len(counts))).min())


def colour_signature(small: Small) -> np.ndarray:
    """Mean and spread of each channel: a brightness, contrast or saturation edit moves them."""
    rgb = small.rgb.reshape(-1, 3).astype(np.float32)
    return np.concatenate([rgb.mean(axis=0), rgb.std(axis=0)])


def _colour_word(colour: tuple[int, int, int]) -> str:
    level = sum(colour) / 3
    if max(colour) - min(colour) > 30:
        return "coloured"
    return "white" if level > 200 else "black" if level < 50 else "grey"


def frame_words(small: Small) -> str:
    t, b, left, r = small.frame
    h, w = small.rgb.shape[:2]
    word = _colour_word(small.frame_colour)
    sides = (t > 0.01 * h) + (b > 0.01 * h) + (left > 0.01 * w) + (r > 0.01 * w)
    if sides == 2 and (t > 0.01 * h) == (b > 0.01 * h):
        return f"adds {word} letterbox bars" if t > 0.01 * h else f"adds {word} bars at the sides (pillarbox)"
    return f"adds a {word} border"


DETAIL_CROP = 384


def central(arr: np.ndarray, side: int) -> np.ndarray:
    h, w = arr.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return arr[y0:y0 + side, x0:x0 + side]


def band_energy(gray: np.ndarray, factor: float) -> float:
    """Energy removed by scaling ``gray`` down by ``factor`` and back up: its detail above 1/factor of its
    own resolution."""
    h, w = gray.shape
    img = Image.fromarray(gray.astype(np.float32), mode="F")
    small = img.resize((max(4, round(w / factor)), max(4, round(h / factor))), Image.Resampling.LANCZOS)
    back = np.asarray(small.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32)
    m = max(2, round(2 * factor))  # edges ring after resampling
    return float(np.mean((gray[m:-m, m:-m] - back[m:-m, m:-m]) ** 2))


_DIHEDRAL = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
             Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.TRANSPOSE, Image.Transpose.FLIP_TOP_BOTTOM,
             Image.Transpose.TRANSVERSE)
DIHEDRAL_WORDS = ("", "turned 90°", "turned 180°", "turned 90°", "mirrored", "mirrored and turned",
                   "flipped upside down", "mirrored and turned")
# upright -> stored for each EXIF orientation (the inverse of what ImageOps.exif_transpose applies)
_TO_STORED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_270}
# Share of pixels a re-encode must reproduce within one grey level to call a file re-saved from the other. Measured
# on the benchmark: a file re-saved (turned, mirrored, recompressed) from the other is reproduced at 1.000; the
# other way round at most 0.81 when the copy is coarser, but up to 0.998 when the copy is finer (re-encoding is
# nearly idempotent), which is why "each reproduces the other" means "the coarser one is the source".
REPRODUCED = 0.9
REPRODUCED_MARGIN = 0.05
OVERLAY_BELOW = 0.985  # reproduced, but not everywhere: a local addition (watermark, text, logo)
OVERLAY_LEVEL = 25.0  # grey levels by which an overlay differs from the picture under it (working size)
OVERLAY_MAX_SHARE = 0.12  # an overlay covers a small part of the picture
OVERLAY_EDGES = 1.3  # the file with this much more edge energy where the two differ carries the overlay
COLOUR_OFF = 8.0  # mean level (or 12 % of the contrast) by which a colour-edited copy differs from the group
FRAME_CONTENT = 0.5  # a framed copy's inside must correlate this well with the other picture (64 pixels wide)


def _transpose(image: Image.Image, t: int) -> Image.Image:
    method = _DIHEDRAL[t]
    return image if method is None else image.transpose(method)


def reencode_match(src: Image.Image, dst_path: str) -> tuple[float, int, bool] | None:
    """Re-encode ``src`` (upright RGB) the way ``dst`` is stored (its orientation, quantisation tables and chroma
    subsampling) and return (share of ``dst``'s pixels reproduced within 2 grey levels, the dihedral turn that
    maps ``src`` onto ``dst``, whether the stored orientation differs). A file saved from the other's decoded
    pixels is reproduced almost exactly; the other way round it is not, because a JPEG's rounding cannot be
    undone."""
    with Image.open(dst_path) as opened:
        tables = getattr(opened, "quantization", None)
        if (opened.format or "").upper() not in ("JPEG", "MPO") or not tables:
            return None
        sampling = get_sampling(opened)
        mode = "L" if opened.mode == "L" else "RGB"
        orientation = int(opened.getexif().get(0x0112) or 1)
        stored = opened.convert(mode)
    upright = ImageOps.exif_transpose(stored) if orientation != 1 else stored
    target = np.asarray(upright.convert("L").resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    best_t, best_err = -1, float("inf")
    for t in range(8):
        turned = _transpose(src, t)
        if turned.size != upright.size:
            continue
        thumb = np.asarray(turned.convert("L").resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
        err = float(np.mean(np.abs(thumb - target)))
        if err < best_err:
            best_t, best_err = t, err
    if best_t < 0:
        return None
    candidate = _transpose(src, best_t).convert(mode)
    if orientation in _TO_STORED:
        candidate = candidate.transpose(_TO_STORED[orientation])
    buffer = io.BytesIO()
    candidate.save(buffer, "JPEG", qtables=tables, subsampling=sampling if sampling >= 0 else 0)
    buffer.seek(0)
    with Image.open(buffer) as again:
        redone = np.asarray(again.convert("L"), dtype=np.int16)
    actual = np.asarray(stored.convert("L"), dtype=np.int16)
    if redone.shape != actual.shape:
        return None
    return float(np.mean(np.abs(redone - actual) <= 1)), best_t, orientation != 1
