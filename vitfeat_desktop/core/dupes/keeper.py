"""Which file of a duplicate group is the original: the one the others were made from.

The old rules ("highest resolution, then RAW, then larger file, then oldest") ranked by container size, not by
how much of the picture a file holds, so a 4000-pixel upscale, a bordered or letterboxed copy, a PNG re-save of a
JPEG and a watermarked re-save all beat the photographer's original (51 % of groups kept the original on the
edited-copies benchmark). Here the keeper is decided by evidence about *which file was made from which*, each
piece cheap and measured on the pair at small working sizes (``tests/bench/keeper_report.py``):

* **RAW** over anything rendered from it (a JPEG export, even an upscaled one).
* **colour over grayscale**: a black-and-white copy cannot give the colours back.
* **a uniform frame** (border, letterbox or pillarbox bars) whose inside has the other file's aspect ratio is an
  addition.
* **effective resolution**: a bigger file wins only if it has detail above the smaller file's Nyquist limit. The
  energy in the octave just above the smaller file's resolution is compared with the smaller file's own top
  octave; an upscale has none (ratio < 0.1 on the benchmark, genuine higher-resolution files 0.3-1).
* **JPEG history**: a file carrying an 8x8 block grid it did not make itself (a PNG/TIFF showing JPEG blocks, a
  JPEG whose grid sits off its own block boundaries after a turn, mirror or crop, a higher-quality JPEG as blocky as
  the coarser one) was re-saved from a JPEG; of two same-size JPEGs otherwise, the coarser is the harder
  recompression. A lossless file with exactly the pixels of a JPEG was saved from that JPEG.
* **orientation**: a file turned or mirrored against the rest of its group is the edited one.
* **camera EXIF** (make/model, capture date) over a file without it: exports often drop them.
* then the plain facts: resolution, file size, capture date, file date; never the name (``x copy.JPEG`` must not
  win over ``x.JPEG``: the last tie-break prefers the shorter path, as every copy convention adds to the name).

Reference folders always win, then the user's own choice for a group (:class:`KeeperChoices`, kept per library
in the data dir, by content hash, so it survives rescans, moves and regrouping).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.images import RAW_EXTENSIONS, open_image
from vitfeat_desktop.core.progress import CancelFn, Reporter, check_cancel

if TYPE_CHECKING:
    from vitfeat_desktop.core.dupes.finder import FileInfo

RAW_FORMATS = frozenset({"DNG", "CR2", "CR3", "NEF", "NRW", "ARW", "RAF", "ORF", "RW2", "PEF", "SRW", "RAW"})
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


# --------------------------------------------------------------------------------------------------------------
# static order (no file is read): the first guess, and the fall-back when pixels cannot be read


def is_raw(info: FileInfo) -> bool:
    return (info.format or "").upper() in RAW_FORMATS or os.path.splitext(info.path)[1].lower() in RAW_EXTENSIONS


def has_camera(info: FileInfo) -> bool:
    return bool(getattr(info, "camera", None))


def under(path: str, folders: Sequence[Path]) -> bool:
    if not folders:
        return False
    p = Path(os.path.abspath(path))
    return any(p == f or f in p.parents for f in folders)


def keeper_key(info: FileInfo, references: Sequence[Path] = ()) -> tuple[Any, ...]:
    """Sort key, best keeper first, from the catalogue's facts alone: reference folder, RAW, camera EXIF,
    resolution, larger file, oldest capture date, oldest file date, shorter path (copies add to the name)."""
    return (
        0 if under(info.path, references) else 1,
        0 if is_raw(info) else 1,
        0 if has_camera(info) else 1,
        -info.pixels,
        -info.size,
        info.capture_date or "9999",  # no date sorts last: we cannot claim it is the original
        info.mtime or float("inf"),
        len(info.path),
        info.path,
    )


def keeper_reason(keeper: FileInfo, other: FileInfo, references: Sequence[Path] = ()) -> str:
    """The first static rule that separates ``keeper`` from ``other``, in words for the user."""
    if under(keeper.path, references):
        return "in a reference folder"
    if is_raw(keeper) != is_raw(other):
        return "RAW original"
    if has_camera(keeper) != has_camera(other):
        return f"camera original ({keeper.camera}); the other file has no camera data (an export)"
    if keeper.pixels != other.pixels:
        return f"higher resolution ({keeper.width}x{keeper.height} vs {other.width}x{other.height})"
    if keeper.size != other.size:
        return f"larger file, less compressed ({keeper.size:,} vs {other.size:,} bytes)"
    if (keeper.capture_date or "9999") != (other.capture_date or "9999"):
        return f"older capture date ({keeper.capture_date})"
    if keeper.mtime and other.mtime and keeper.mtime != other.mtime:
        return "older file date (otherwise equal)"
    return "otherwise equal: the shorter name (a copy's name adds to the original's)"


# --------------------------------------------------------------------------------------------------------------
# the user's choices


class KeeperChoices:
    """The keeper the user picked per group, by content hash (so the choice survives rescans and moves).

    Stored per library in the data dir next to the "not a duplicate" marks, written atomically. Choosing a
    file drops any earlier choice among the same group, so the latest pick wins.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = 0
        self._chosen: set[str] = set()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._chosen = {str(k) for k in data.get("keepers", [])}
        except (OSError, ValueError, TypeError, AttributeError):
            self._chosen = set()

    @classmethod
    def for_library(cls, library_folder: str | os.PathLike[str]) -> KeeperChoices:
        key = hashlib.sha256(os.fsencode(os.path.abspath(library_folder))).hexdigest()[:16]
        return cls(config.data_dir() / "dupes" / f"keepers-{key}.json")

    @staticmethod
    def _keys(info: FileInfo) -> tuple[str, ...]:
        path = f"path:{os.path.abspath(info.path)}"
        return (info.content_hash, path) if info.content_hash else (path,)

    def choose(self, keeper: FileInfo, group: Sequence[FileInfo] = ()) -> None:
        """Make ``keeper`` the keeper of its group; ``group``'s other members lose any earlier choice. Among
        exact copies (one content hash) the choice is kept by path."""
        for other in group:
            self._chosen.difference_update(self._keys(other))
        twin = any(o.content_hash and o.content_hash == keeper.content_hash and o.path != keeper.path
                   for o in group)
        self._chosen.add(self._keys(keeper)[-1 if twin else 0])
        self._save()

    def clear(self, group: Sequence[FileInfo]) -> None:
        """Back to the automatic keeper for ``group``."""
        for info in group:
            self._chosen.difference_update(self._keys(info))
        self._save()

    def is_chosen(self, info: FileInfo) -> bool:
        return any(k in self._chosen for k in self._keys(info))

    def __len__(self) -> int:
        return len(self._chosen)

    def _save(self) -> None:
        self.version += 1
        config.write_json_atomic(self.path, {"keepers": sorted(self._chosen)})


# --------------------------------------------------------------------------------------------------------------
# per-file facts


@dataclass(frozen=True)
class _Small:
    """A file's working image (longer side ~WORK_SIDE) and what it tells at a glance."""

    rgb: np.ndarray  # uint8 [h, w, 3] (~230 KB; a bounded number are kept)
    chroma: float  # mean colour spread: ~0 for a grey picture
    frame: tuple[int, int, int, int]  # uniform rows/columns at top, bottom, left, right (working pixels)
    frame_colour: tuple[int, int, int]


@dataclass(frozen=True)
class _Grid:
    own: float  # grid strength at the file's own JPEG block boundaries (0 for other formats)
    foreign: float  # strongest grid anywhere else (any phase for formats without their own 8x8 grid)


def _quality_step(image: Image.Image) -> float | None:
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


def grid_strength(gray: np.ndarray, own_grid: bool) -> _Grid:
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
    return _Grid(own, foreign)


def _frame(rgb: np.ndarray) -> tuple[tuple[int, int, int, int], tuple[int, int, int]]:
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


def _frame_share(small: _Small) -> float:
    h, w = small.rgb.shape[:2]
    t, b, left, r = small.frame
    return 1.0 - (h - t - b) * (w - left - r) / float(h * w)


def _inner_aspect(small: _Small) -> float:
    h, w = small.rgb.shape[:2]
    t, b, left, r = small.frame
    return (w - left - r) / max(1.0, float(h - t - b))


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114, dtype=np.float32)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _inside_matches(framed: _Small, other: _Small) -> bool:
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


def _overlay(a: _Small, b: _Small) -> int | None:
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


def colour_signature(small: _Small) -> np.ndarray:
    """Mean and spread of each channel: a brightness, contrast or saturation edit moves them."""
    rgb = small.rgb.reshape(-1, 3).astype(np.float32)
    return np.concatenate([rgb.mean(axis=0), rgb.std(axis=0)])


def _colour_word(colour: tuple[int, int, int]) -> str:
    level = sum(colour) / 3
    if max(colour) - min(colour) > 30:
        return "coloured"
    return "white" if level > 200 else "black" if level < 50 else "grey"


def _frame_words(small: _Small) -> str:
    t, b, left, r = small.frame
    h, w = small.rgb.shape[:2]
    word = _colour_word(small.frame_colour)
    sides = (t > 0.01 * h) + (b > 0.01 * h) + (left > 0.01 * w) + (r > 0.01 * w)
    if sides == 2 and (t > 0.01 * h) == (b > 0.01 * h):
        return f"adds {word} letterbox bars" if t > 0.01 * h else f"adds {word} bars at the sides (pillarbox)"
    return f"adds a {word} border"


DETAIL_CROP = 384


def _central(arr: np.ndarray, side: int) -> np.ndarray:
    h, w = arr.shape
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return arr[y0:y0 + side, x0:x0 + side]


def _band_energy(gray: np.ndarray, factor: float) -> float:
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
_DIHEDRAL_WORDS = ("", "turned 90°", "turned 180°", "turned 90°", "mirrored", "mirrored and turned",
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


def _reencode_match(src: Image.Image, dst_path: str) -> tuple[float, int, bool] | None:
    """Re-encode ``src`` (upright RGB) the way ``dst`` is stored (its orientation, quantisation tables and chroma
    subsampling) and return (share of ``dst``'s pixels reproduced within 2 grey levels, the dihedral turn that
    maps ``src`` onto ``dst``, whether the stored orientation differs). A file saved from the other's decoded
    pixels is reproduced almost exactly; the other way round it is not, because a JPEG's rounding cannot be
    undone."""
    from PIL import ImageOps
    from PIL.JpegImagePlugin import get_sampling

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


# --------------------------------------------------------------------------------------------------------------
# pairwise evidence


@dataclass(frozen=True)
class Verdict:
    """Evidence that one of two files was made from the other: ``keeper`` (0 = first, 1 = second) is the
    original; ``reason`` is said from the keeper's side ("the other file is ...")."""

    keeper: int
    reason: str
    rule: str


Loader = Callable[..., Image.Image]


class KeeperJudge:
    """Decides keepers from pixel evidence; caches what it measured per file and per pair (thread-safe).

    The finder holds one per library, so moving the sensitivity slider re-decides from the cache; files that
    cannot be read give no evidence and the static rules decide.
    """

    def __init__(self, loader: Loader | None = None, cache_size: int = 512) -> None:
        self._loader: Loader = loader or open_image
        self._lock = threading.Lock()
        # working images, least recently used dropped (groups are decided one at a time); scalar facts are kept
        self._small: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._facts: dict[tuple[str, str], Any] = {}
        self._pairs: dict[tuple[str, str], Verdict | None] = {}
        self._cache_size = cache_size

    # -- per-file facts ---------------------------------------------------------------------------------------
    def _memo(self, kind: str, info: FileInfo, compute: Callable[[], Any]) -> Any:
        key = (kind, f"{info.path}\0{info.size}\0{info.mtime}")
        store: dict[tuple[str, str], Any] = self._small if kind == "small" else self._facts
        with self._lock:
            if key in store:
                if kind == "small":
                    self._small.move_to_end(key)
                return store[key]
        try:
            value = compute()
        except (ImageReadError, OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError):
            value = None
        with self._lock:
            store[key] = value
            while len(self._small) > self._cache_size:
                self._small.popitem(last=False)
        return value

    def small(self, info: FileInfo) -> _Small | None:
        def compute() -> _Small:
            image = self._loader(info.path, min_side=WORK_SIDE)
            image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
            chroma = float((np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])).mean() / 2)
            frame, colour = _frame(rgb)
            return _Small(rgb.astype(np.uint8), chroma, frame, colour)
        return self._memo("small", info, compute)

    def header(self, info: FileInfo) -> tuple[str, float | None, str | None, bool] | None:
        """(format, JPEG quantiser step, camera "Make Model", lossless) from the file's header, no decode."""
        def compute() -> tuple[str, float | None, str | None, bool]:
            with Image.open(info.path) as opened:
                fmt = (opened.format or "").upper()
                camera = getattr(info, "camera", None)
                if camera is None:
                    try:
                        exif = opened.getexif()
                        make, model = exif.get(0x010F), exif.get(0x0110)
                        camera = " ".join(str(x).strip("\0 ") for x in (make, model) if x) or None
                    except Exception:  # damaged EXIF only means "no camera data"
                        camera = None
                lossless = fmt in LOSSLESS_FORMATS or (fmt == "WEBP" and "lossless" in str(
                    opened.info.get("compression", "")).lower())
                return fmt, _quality_step(opened), camera, lossless
        if is_raw(info):
            return (info.format or "RAW").upper(), None, getattr(info, "camera", None), False
        return self._memo("header", info, compute)

    def grid(self, info: FileInfo) -> _Grid | None:
        if info.pixels > GRID_MAX_PIXELS or is_raw(info):
            return None

        def compute() -> _Grid:
            with Image.open(info.path) as opened:
                fmt = (opened.format or "").upper()
                if opened.width * opened.height > GRID_MAX_PIXELS:
                    raise ValueError("too big for the grid check")
                gray = np.asarray(opened.convert("L"), dtype=np.float32)
            h, w = gray.shape
            y0 = max(0, (h - GRID_CROP) // 2) // 8 * 8
            x0 = max(0, (w - GRID_CROP) // 2) // 8 * 8
            return grid_strength(gray[y0:y0 + GRID_CROP, x0:x0 + GRID_CROP], own_grid=fmt in ("JPEG", "MPO"))
        return self._memo("grid", info, compute)

    def digest(self, info: FileInfo) -> str | None:
        def compute() -> str:
            image = self._loader(info.path)
            d = hashlib.sha256(f"{image.width}x{image.height}".encode())
            d.update(image.convert("RGB").tobytes())
            return d.hexdigest()
        return self._memo("digest", info, compute)

    def detail_ratio(self, large: FileInfo, small: FileInfo) -> tuple[float, float] | None:
        """Energy of ``large`` above ``small``'s resolution over ``small``'s own top-octave energy, measured at
        a common working scale (~0 for an upscale, 0.3-1 for a genuinely sharper file), and over ``large``'s own
        energy in the half-octave just below that resolution (the cliff an interpolated upscale has)."""
        def compute() -> tuple[float, float] | None:
            # Both measured relative to the smaller file's native resolution, on central crops: downscaling the
            # smaller file first would move its Nyquist limit and credit an upscale with the original's detail.
            s_img = self._loader(small.path).convert("L")
            factor = min(2.0, (large.pixels / max(1, small.pixels)) ** 0.5)
            linear = (large.pixels / max(1, small.pixels)) ** 0.5
            s_arr = _central(np.asarray(s_img, dtype=np.float32), DETAIL_CROP)
            want = (max(8, round((large.width or 1) * factor / linear)),
                    max(8, round((large.height or 1) * factor / linear)))
            l_img = self._loader(large.path, min_side=min(want)).convert("L")
            l_arr = np.asarray(l_img.resize(want, Image.Resampling.BOX), dtype=np.float32)
            l_arr = _central(l_arr, round(DETAIL_CROP * factor))
            own = _band_energy(s_arr, factor)
            if own < 1e-3:
                return None
            above = _band_energy(l_arr, factor)
            below = _band_energy(l_arr, factor * 1.5) - above
            return above / own, above / max(below, 1e-6)
        return self._memo(f"detail:{small.path}\0{small.size}", large, compute)

    def reproduces(self, src: FileInfo, dst: FileInfo) -> tuple[float, int, bool] | None:
        """:func:`_reencode_match` of ``src``'s pixels against ``dst`` (same-size JPEG ``dst`` only)."""
        if max(src.pixels, dst.pixels) > GRID_MAX_PIXELS or is_raw(dst):
            return None

        def compute() -> tuple[float, int, bool] | None:
            return _reencode_match(self._loader(src.path).convert("RGB"), dst.path)
        return self._memo(f"reproduces:{dst.path}\0{dst.size}\0{dst.mtime}", src, compute)

    def prefetch(self, files: Sequence[FileInfo], *, reporter: Reporter | None = None,
                 cancel: CancelFn | None = None) -> None:
        """Measure the per-file facts of ``files`` on a few threads (decoding releases the GIL)."""
        def one(info: FileInfo) -> None:
            self.small(info)
            self.header(info)
            self.grid(info)

        if reporter is not None:
            reporter.restart("choosing keepers", total=len(files))
        workers = max(1, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(files), 64):
                check_cancel(cancel)
                list(pool.map(one, files[start:start + 64]))
                if reporter is not None:
                    reporter.update(min(len(files), start + 64))

    # -- one pair -----------------------------------------------------------------------------------------------
    def compare(self, a: FileInfo, b: FileInfo) -> Verdict | None:
        """Which of ``a``/``b`` the other was made from, with the reason; None without evidence."""
        key = (f"{a.path}\0{a.size}\0{a.mtime}", f"{b.path}\0{b.size}\0{b.mtime}")
        with self._lock:
            if key in self._pairs:
                return self._pairs[key]
        verdict = self._compare(a, b)
        with self._lock:
            self._pairs[key] = verdict
            self._pairs[(key[1], key[0])] = None if verdict is None else Verdict(
                1 - verdict.keeper, verdict.reason, verdict.rule)
        return verdict

    def _compare(self, a: FileInfo, b: FileInfo) -> Verdict | None:
        pair = (a, b)
        raw = (is_raw(a), is_raw(b))
        if raw[0] != raw[1]:
            return Verdict(0 if raw[0] else 1, "RAW original; the other file is rendered from it", "raw")
        sa, sb = self.small(a), self.small(b)
        if sa is not None and sb is not None:
            for k, (x, y) in enumerate(((sa, sb), (sb, sa))):
                if (x.chroma >= COLOUR_CHROMA and y.chroma <= GRAY_CHROMA) or (x.chroma >= GRAY_CHROMA
                                                                                 and y.chroma <= GRAY_EXACT):
                    return Verdict(k, "colour original of a black-and-white copy", "grayscale")
            fa, fb = _frame_share(sa), _frame_share(sb)
            for k, (x, y, fx, fy) in enumerate(((sa, sb, fa, fb), (sb, sa, fb, fa))):
                full = x.rgb.shape[1] / x.rgb.shape[0]
                if fy >= FRAME_MIN and fy > max(fx + FRAME_MIN, 2 * fx) and min(
                        abs(_inner_aspect(y) / _inner_aspect(x) - 1), abs(_inner_aspect(y) / full - 1)
                ) <= ASPECT_TOLERANCE and _inside_matches(y, x):
                    return Verdict(k, f"the other file {_frame_words(y)}", "border")
        verdict = self._resolution(a, b)
        if verdict is not None:
            return verdict
        verdict = self._jpeg_history(pair)
        if verdict is not None:
            return verdict
        if sa is not None and sb is not None and a.pixels and sorted((a.width or 0, a.height or 0)) == sorted(
                (b.width or 0, b.height or 0)):
            marked = _overlay(sa, sb)
            if marked is not None:
                return Verdict(1 - marked, "the other file adds a watermark or text (a local overlay on this "
                                           "picture)", "overlay")
        cams = (self._camera(a), self._camera(b))
        if bool(cams[0]) != bool(cams[1]):
            k = 0 if cams[0] else 1
            return Verdict(k, f"camera original ({cams[k]}); the other file has no camera data (an export)",
                           "exif")
        return None

    def _camera(self, info: FileInfo) -> str | None:
        head = self.header(info)
        return head[2] if head is not None else getattr(info, "camera", None)

    def _resolution(self, a: FileInfo, b: FileInfo) -> Verdict | None:
        if not a.pixels or not b.pixels:
            return None
        ratio = a.pixels / b.pixels
        if 1 / SIZE_STEP < ratio < SIZE_STEP:
            return None
        big, little = (0, 1) if ratio > 1 else (1, 0)
        large, small = (a, b) if big == 0 else (b, a)
        measured = self.detail_ratio(large, small)
        if measured is None:
            return None
        detail, cliff = measured
        linear = (large.pixels / small.pixels) ** 0.5
        if (detail < DETAIL_RATIO and cliff < CLIFF_RATIO) or (linear >= FAR_LINEAR and detail < FAR_DETAIL):
            times = f"{linear:.0f}x" if linear >= 1.95 else f"{linear:.1f}x"
            return Verdict(little, f"the other file is this picture upscaled {times}: no extra detail", "upscale")
        if detail < DETAIL_RATIO:
            return None  # a soft camera file or an upscale: not told apart, so the static order keeps the larger
        share = round(100 / linear)
        return Verdict(big, f"higher resolution with real detail ({large.width}x{large.height}); the other file "
                            f"holds {share} % of it", "resolution")

    def _resaved(self, pair: tuple[FileInfo, FileInfo], heads: tuple[Any, Any]) -> Verdict | None:
        """One file re-encoded from the other's decoded pixels: the re-encode test of :func:`_reencode_match`
        in both directions."""
        if heads[0][1] is None or heads[1][1] is None:  # both JPEG: lossless files are decided elsewhere
            return None
        ab, ba = self.reproduces(pair[0], pair[1]), self.reproduces(pair[1], pair[0])
        m_ab, m_ba = (ab[0] if ab else 0.0), (ba[0] if ba else 0.0)
        qa, qb = heads[0][1], heads[1][1]
        if m_ab >= REPRODUCED and m_ba >= REPRODUCED:
            # Each reproduces the other: one is the other re-saved without a geometric change, and re-encoding
            # is nearly idempotent. The coarser file is the source: a harder recompression of the finer one
            # could not give the finer one's detail back.
            if min(m_ab, m_ba) < OVERLAY_BELOW:  # alike but for a local difference: which one adds it?
                sa, sb = self.small(pair[0]), self.small(pair[1])
                marked = _overlay(sa, sb) if sa is not None and sb is not None else None
                if marked is not None:
                    return Verdict(1 - marked, "the other file adds a watermark or text (a local overlay on this "
                                               "picture)", "overlay")
            if qa == qb:
                return None
            coarse = 1 if qa < qb else 0
            return Verdict(coarse, f"the other file is a re-save of this JPEG at a higher quality setting "
                                   f"(~{jpeg_quality(min(qa, qb))} vs ~{jpeg_quality(max(qa, qb))}): no extra "
                                   "detail", "resaved")
        for k, (m, other, hit) in enumerate(((m_ab, m_ba, ab), (m_ba, m_ab, ba))):
            if hit is None or m < REPRODUCED or m < other + REPRODUCED_MARGIN:
                continue
            _share, turn, restored = hit
            src, dst = heads[k], heads[1 - k]
            if m < OVERLAY_BELOW and not turn and not restored:
                return Verdict(k, "the other file is this picture with a local addition (a watermark, text or "
                                  "logo)", "overlay")
            if turn:
                what = f"this picture {_DIHEDRAL_WORDS[turn]} and re-saved"
            elif restored:
                what = "this picture re-saved with its pixels turned (EXIF orientation)"
            elif src[1] is not None and dst[1] is not None and dst[1] < src[1] / QUALITY_STEP:
                what = (f"a re-save of this JPEG at a higher quality setting (~{jpeg_quality(dst[1])} vs "
                        f"~{jpeg_quality(src[1])}): no extra detail")
            elif src[1] is not None and dst[1] is not None and dst[1] > src[1] * QUALITY_STEP:
                what = f"this picture recompressed harder (JPEG quality ~{jpeg_quality(dst[1])} vs " \
                       f"~{jpeg_quality(src[1])})"
            else:
                what = "a re-save of this JPEG: no extra detail"
            return Verdict(k, f"the other file is {what}", "resaved")
        return None

    def _jpeg_history(self, pair: tuple[FileInfo, FileInfo]) -> Verdict | None:
        a, b = pair
        same_size = sorted((a.width or 0, a.height or 0)) == sorted((b.width or 0, b.height or 0)) and a.pixels
        ha, hb = self.header(a), self.header(b)
        if ha is None or hb is None:
            return None
        heads = (ha, hb)
        grids = (self.grid(a), self.grid(b))
        if same_size:
            verdict = self._resaved(pair, heads)
            if verdict is not None:
                return verdict
        # a grid that is not the file's own: re-saved from a JPEG after a turn, mirror, crop or format change
        for k in (0, 1):
            g, other = grids[k], grids[1 - k]
            head = heads[k]
            if g is None or other is None or head[0] == "WEBP":  # WebP's own 4x4 blocks alias onto the grid
                continue
            if g.foreign >= GRID_SEEN and other.foreign < GRID_SEEN / 2:
                what = "a lossless re-save" if head[3] else "a re-save"
                return Verdict(1 - k, f"the other file is {what} of a JPEG (it carries JPEG blocks that are not "
                                      "its own): no extra detail", "jpeg-history")
        if not same_size:
            return None
        qa, qb = heads[0][1], heads[1][1]
        lossless = (heads[0][3], heads[1][3])
        if lossless[0] != lossless[1] and (qa is not None or qb is not None):
            k_jpeg = 0 if qa is not None else 1
            if self.digest(a) is not None and self.digest(a) == self.digest(b):
                return Verdict(k_jpeg, f"the other file is a lossless {heads[1 - k_jpeg][0]} re-save of this JPEG "
                                       "(identical pixels): no extra detail", "jpeg-history")
            hit = self.reproduces(pair[1 - k_jpeg], pair[k_jpeg])
            if hit is not None and hit[0] >= REPRODUCED:
                return Verdict(1 - k_jpeg, f"lossless original ({heads[1 - k_jpeg][0]}); the other file is a JPEG "
                                           "of it", "jpeg-history")
            gj, gl = grids[k_jpeg], grids[1 - k_jpeg]
            if gj is not None and gl is not None and gj.own >= GRID_SEEN and gl.foreign < GRID_SEEN / 2:
                return Verdict(1 - k_jpeg, f"lossless original ({heads[1 - k_jpeg][0]}); the other file is a JPEG "
                                           "of it", "jpeg-history")
            return None
        if qa is None or qb is None or max(qa, qb) / max(min(qa, qb), 1e-6) < QUALITY_STEP:
            return None
        sa, sb = self.small(a), self.small(b)
        if sa is None or sb is None or sa.rgb.shape != sb.rgb.shape or float(
                np.abs(sa.rgb.astype(np.int16) - sb.rgb).mean()) > 3.0:
            return None  # not the same pixels (an edit): the quality of the container says nothing
        fine, coarse = (0, 1) if qa < qb else (1, 0)
        gf, gc = grids[fine], grids[coarse]
        q_fine, q_coarse = jpeg_quality(min(qa, qb)), jpeg_quality(max(qa, qb))
        if gf is not None and gc is not None and gc.own >= GRID_SEEN and gf.own >= GRID_KEPT * gc.own \
                and gf.foreign < GRID_SEEN:
            return Verdict(coarse, f"the other file is a re-save of this JPEG at a higher quality setting "
                                   f"(~{q_fine} vs ~{q_coarse}) that keeps its JPEG blocks: no extra detail",
                           "jpeg-history")
        return Verdict(fine, f"the other file is this picture recompressed harder (JPEG quality ~{q_coarse} vs "
                             f"~{q_fine})", "recompressed")

    def _colour_outliers(self, files: Sequence[FileInfo]) -> set[int]:
        """Members whose colours differ from what most of the group agrees on (a brightness, contrast or
        saturation edit); needs at least three colour members that agree."""
        sigs: dict[int, np.ndarray] = {}
        for i, f in enumerate(files):
            small = self.small(f)
            if small is not None and small.chroma > GRAY_CHROMA and _frame_share(small) < FRAME_MIN:
                sigs[i] = colour_signature(small)
        if len(sigs) < 4:
            return set()
        consensus = np.median(np.stack(list(sigs.values())), axis=0)
        spread = np.maximum(consensus[3:], 1.0)

        def off(sig: np.ndarray) -> float:
            return max(float(np.abs(sig[:3] - consensus[:3]).max()) / COLOUR_OFF,
                       float((np.abs(sig[3:] - consensus[3:]) / spread).max()) / 0.12)

        agree = [i for i, sig in sigs.items() if off(sig) < 0.5]
        if len(agree) < 3:
            return set()
        return {i for i, sig in sigs.items() if off(sig) >= 1.0}

    # -- a group ------------------------------------------------------------------------------------------------
    def choose(self, files: Sequence[FileInfo], references: Sequence[Path] = (),
               choices: KeeperChoices | None = None) -> tuple[int, str]:
        """Index of the keeper among ``files`` and the reason (without "kept: ")."""
        order = sorted(range(len(files)), key=lambda i: keeper_key(files[i], references))
        if len(files) < 2:
            return order[0], "the only file"
        refs = [i for i in order if under(files[i].path, references)]
        if refs:
            return refs[0], "in a reference folder"
        if choices is not None:
            picked = [i for i in order if choices.is_chosen(files[i])]
            if picked:
                return picked[0], "your choice"
        # turned or mirrored against the rest of the group: not a candidate while the others agree
        turned = _against_majority(files)
        recoloured = self._colour_outliers(files)
        candidates = [i for i in order if i not in turned and i not in recoloured] or order
        current = candidates[0]
        reason: str | None = None
        seen = {current}
        for _round in range(3):
            changed = False
            for other in candidates:
                if other == current:
                    continue
                verdict = self.compare(files[current], files[other])
                if verdict is not None and verdict.keeper == 1:
                    current = other
                    reason = verdict.reason
                    changed = True
                    if current in seen:
                        break
                    seen.add(current)
            if not changed:
                break
        beaten = [o for o in candidates if o != current and (v := self.compare(files[current], files[o]))
                  is not None and v.keeper == 1]
        if beaten:  # a cycle of verdicts: the visited candidate that loses least often
            def losses(i: int) -> int:
                return sum(1 for o in candidates if o != i and (v := self.compare(files[i], files[o])) is not None
                           and v.keeper == 1)
            current = min(sorted(seen, key=order.index), key=losses)
            reason = None
        # Say why not the file the plain facts would have kept (the biggest, usually), else the last decision.
        first = order[0] if order[0] != current else next(i for i in order if i != current)
        verdict = self.compare(files[current], files[first])
        if first in turned:
            reason = f"the other file is {turned[first]} against the rest of the group"
        elif first in recoloured:
            reason = "the other file's colours are edited (brightness, contrast or saturation differ from the " \
                     "rest of the group)"
        elif verdict is not None and verdict.keeper == 0:
            reason = verdict.reason
        elif reason is None:
            reason = keeper_reason(files[current], files[first])
        if len(files) > 2:
            reason = reason.replace("the other file", f"{Path(files[first].path).name}", 1)
        return current, reason


_TURN_WORDS = ("", "turned 90°", "turned 180°", "turned 90°", "mirrored", "mirrored and turned",
               "turned upside down and mirrored", "mirrored and turned")
_HASH_MATCH = 10


def _against_majority(files: Sequence[FileInfo]) -> dict[int, str]:
    """Files whose picture is turned or mirrored relative to most of the group (by the eight-orientation
    pHash), with the words; empty when no orientation has a clear majority."""
    hashes = [f.hashes for f in files]
    ref = next((i for i, h in enumerate(hashes) if h is not None), None)
    if ref is None:
        return {}
    base = hashes[ref].phashes[0]  # type: ignore[union-attr]
    cls: dict[int, int] = {}
    for i, h in enumerate(hashes):
        if h is None:
            continue
        dist = [bin(base ^ int(p)).count("1") for p in h.phashes]
        t = int(np.argmin(dist))
        if dist[t] <= _HASH_MATCH:
            cls[i] = t
    if len(cls) < 3:
        return {}
    counts = Counter(cls.values())
    (top, n_top), *rest = counts.most_common()
    if n_top <= len(cls) / 2 or (rest and rest[0][1] == n_top):
        return {}
    return {i: _TURN_WORDS[_relative(t, top)] or "turned" for i, t in cls.items() if t != top}


def _relative(t: int, top: int) -> int:
    """Transform index of a file in class ``t`` relative to the majority class ``top`` (for the words: turns
    and mirrors compose; only "mirrored or not" and the amount of turn matter)."""
    mirrored = (t >= 4) != (top >= 4)
    turn = (t % 4 - top % 4) % 4
    return (4 if mirrored else 0) + turn
