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

Reference folders always win, then the user's own choice for a group (:class:`sidecars.KeeperChoices`, kept in
the library's data folder, by content hash, so it survives rescans, moves and regrouping).

Here: :class:`KeeperJudge`, which turns the measurements of ``keeper_pixels.py`` into verdicts and decides a
group; the static order and its words (no pixels) are in ``keeper_rules.py``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
from PIL import Image

from vitfeat_desktop.core.dupes.keeper_pixels import (
    ASPECT_TOLERANCE,
    CLIFF_RATIO,
    COLOUR_CHROMA,
    COLOUR_OFF,
    DETAIL_CROP,
    DETAIL_RATIO,
    DIHEDRAL_WORDS,
    FAR_DETAIL,
    FAR_LINEAR,
    FRAME_MIN,
    GRAY_CHROMA,
    GRAY_EXACT,
    GRID_CROP,
    GRID_KEPT,
    GRID_MAX_PIXELS,
    GRID_SEEN,
    LOSSLESS_FORMATS,
    OVERLAY_BELOW,
    QUALITY_STEP,
    REPRODUCED,
    REPRODUCED_MARGIN,
    SIZE_STEP,
    WORK_SIDE,
    Grid,
    Small,
    band_energy,
    central,
    colour_signature,
    frame_of,
    frame_share,
    frame_words,
    grid_strength,
    inner_aspect,
    inside_matches,
    jpeg_quality,
    overlay_of,
    quality_step,
    reencode_match,
)
from vitfeat_desktop.core.dupes.keeper_rules import keeper_key, keeper_reason, under
from vitfeat_desktop.core.dupes.records import FileInfo, is_raw
from vitfeat_desktop.core.dupes.sidecars import KeeperChoices
from vitfeat_desktop.core.errors import ImageReadError
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.progress import CancelFn, Reporter, check_cancel


@dataclass(frozen=True)
class Verdict:
    """Evidence that one of two files was made from the other: ``keeper`` (0 = first, 1 = second) is the
    original; ``reason`` is said from the keeper's side ("the other file is ...")."""

    keeper: int
    reason: str
    rule: str


Loader = Callable[..., Image.Image]
T = TypeVar("T")
Header = tuple[str, float | None, str | None, bool]  # format, JPEG quantiser step, camera, lossless


class KeeperJudge:
    """Decides keepers from pixel evidence; caches what it measured per file and per pair (thread-safe).

    The finder holds one per library, so moving the sensitivity slider re-decides from the cache; files that
    cannot be read give no evidence and the static rules decide.
    """

    def __init__(self, loader: Loader | None = None, cache_size: int = 512) -> None:
        self._loader: Loader = loader or open_image
        self._lock = threading.Lock()
        # working images, least recently used dropped (groups are decided one at a time); scalar facts are kept
        self._small: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._facts: dict[tuple[str, str], object] = {}
        self._pairs: dict[tuple[str, str], Verdict | None] = {}
        self._cache_size = cache_size

    # -- per-file facts ---------------------------------------------------------------------------------------
    def _memo(self, kind: str, info: FileInfo, compute: Callable[[], T]) -> T | None:
        key = (kind, f"{info.path}\0{info.size}\0{info.mtime}")
        store: dict[tuple[str, str], object] = self._small if kind == "small" else self._facts
        with self._lock:
            if key in store:
                if kind == "small":
                    self._small.move_to_end(key)
                return cast("T | None", store[key])  # stored by this method for this kind
        value: T | None
        try:
            value = compute()
        except (ImageReadError, OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError):
            value = None
        with self._lock:
            store[key] = value
            while len(self._small) > self._cache_size:
                self._small.popitem(last=False)
        return value

    def small(self, info: FileInfo) -> Small | None:
        def compute() -> Small:
            image = self._loader(info.path, min_side=WORK_SIDE)
            image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
            chroma = float((np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])).mean() / 2)
            frame, colour = frame_of(rgb)
            return Small(rgb.astype(np.uint8), chroma, frame, colour)
        return self._memo("small", info, compute)

    def header(self, info: FileInfo) -> Header | None:
        """(format, JPEG quantiser step, camera "Make Model", lossless) from the file's header, no decode."""
        def compute() -> tuple[str, float | None, str | None, bool]:
            with Image.open(info.path) as opened:
                fmt = (opened.format or "").upper()
                camera = info.camera
                if camera is None:
                    try:
                        exif = opened.getexif()
                        make, model = exif.get(0x010F), exif.get(0x0110)
                        camera = " ".join(str(x).strip("\0 ") for x in (make, model) if x) or None
                    except Exception:  # damaged EXIF only means "no camera data"
                        camera = None
                lossless = fmt in LOSSLESS_FORMATS or (fmt == "WEBP" and "lossless" in str(
                    opened.info.get("compression", "")).lower())
                return fmt, quality_step(opened), camera, lossless
        if is_raw(info):
            return (info.format or "RAW").upper(), None, info.camera, False
        return self._memo("header", info, compute)

    def grid(self, info: FileInfo) -> Grid | None:
        if info.pixels > GRID_MAX_PIXELS or is_raw(info):
            return None

        def compute() -> Grid:
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
            s_arr = central(np.asarray(s_img, dtype=np.float32), DETAIL_CROP)
            want = (max(8, round((large.width or 1) * factor / linear)),
                    max(8, round((large.height or 1) * factor / linear)))
            l_img = self._loader(large.path, min_side=min(want)).convert("L")
            l_arr = np.asarray(l_img.resize(want, Image.Resampling.BOX), dtype=np.float32)
            l_arr = central(l_arr, round(DETAIL_CROP * factor))
            own = band_energy(s_arr, factor)
            if own < 1e-3:
                return None
            above = band_energy(l_arr, factor)
            below = band_energy(l_arr, factor * 1.5) - above
            return above / own, above / max(below, 1e-6)
        return self._memo(f"detail:{small.path}\0{small.size}", large, compute)

    def reproduces(self, src: FileInfo, dst: FileInfo) -> tuple[float, int, bool] | None:
        """:func:`reencode_match` of ``src``'s pixels against ``dst`` (same-size JPEG ``dst`` only)."""
        if max(src.pixels, dst.pixels) > GRID_MAX_PIXELS or is_raw(dst):
            return None

        def compute() -> tuple[float, int, bool] | None:
            return reencode_match(self._loader(src.path).convert("RGB"), dst.path)
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
            fa, fb = frame_share(sa), frame_share(sb)
            for k, (x, y, fx, fy) in enumerate(((sa, sb, fa, fb), (sb, sa, fb, fa))):
                full = x.rgb.shape[1] / x.rgb.shape[0]
                if fy >= FRAME_MIN and fy > max(fx + FRAME_MIN, 2 * fx) and min(
                        abs(inner_aspect(y) / inner_aspect(x) - 1), abs(inner_aspect(y) / full - 1)
                ) <= ASPECT_TOLERANCE and inside_matches(y, x):
                    return Verdict(k, f"the other file {frame_words(y)}", "border")
        verdict = self._resolution(a, b)
        if verdict is not None:
            return verdict
        verdict = self._jpeg_history(pair)
        if verdict is not None:
            return verdict
        if sa is not None and sb is not None and a.pixels and sorted((a.width or 0, a.height or 0)) == sorted(
                (b.width or 0, b.height or 0)):
            marked = overlay_of(sa, sb)
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
        return head[2] if head is not None else info.camera

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

    def _resaved(self, pair: tuple[FileInfo, FileInfo], heads: tuple[Header, Header]) -> Verdict | None:
        """One file re-encoded from the other's decoded pixels: the re-encode test of :func:`reencode_match`
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
                marked = overlay_of(sa, sb) if sa is not None and sb is not None else None
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
                what = f"this picture {DIHEDRAL_WORDS[turn]} and re-saved"
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
            if small is not None and small.chroma > GRAY_CHROMA and frame_share(small) < FRAME_MIN:
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
