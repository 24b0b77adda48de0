"""Generated pictures for the self-test and the test-suite: photo-like content and a hand-written linear DNG.

Why generated: the installed bundle must prove its codecs on a machine with no photos of ours, and the tests
need many distinct pictures without shipping megabytes of them. ``synthetic_photo(i)`` is deterministic per
index; ``write_linear_dng`` writes the one RAW flavour that needs no camera.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # Pillow is imported when a picture is made (the self-test's checks decide the order)
    from PIL import Image


def synthetic_photo(index: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct, photo-like picture (gradient sky, coloured shapes) so decoders and features have content.

    Each index gets different colours and shapes; flat colours would all look alike to a ViT and make the
    query check meaningless.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1000 + index)
    w, h = size
    top = rng.integers(0, 256, 3)
    bottom = rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    grad = (top[None, None, :] * (1 - t) + bottom[None, None, :] * t).repeat(w, axis=1)
    noise = rng.normal(0, 6, (h, w, 3))
    image = Image.fromarray(np.clip(grad + noise, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(3 + index % 4):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    return image


def write_linear_dng(path: Path, rgb16: np.ndarray) -> None:
    """Write a minimal *linear* DNG (demosaiced RGB, 16 bit) that LibRaw decodes.

    Why hand-written: no library here writes DNG, and a real camera file would add megabytes to the bundle.
    The file has only the tags DNG 1.4 requires for LinearRaw data (identity colour matrix, D65).
    """
    h, w, _ = rgb16.shape
    pixels = np.ascontiguousarray(rgb16.astype("<u2")).tobytes()
    entries: list[tuple[int, int, int, bytes]] = []

    def tag(code: int, kind: int, values: Any) -> None:
        if kind == 2:  # ASCII
            raw = values.encode("ascii") + b"\0"
            count = len(raw)
        elif kind == 10:  # SRATIONAL pairs
            raw = b"".join(struct.pack("<ii", *v) for v in values)
            count = len(values)
        else:
            code_char = {1: "B", 3: "H", 4: "I"}[kind]
            raw = struct.pack(f"<{len(values)}{code_char}", *values)
            count = len(values)
        entries.append((code, kind, count, raw))

    tag(254, 4, [0])  # NewSubfileType: main image
    tag(256, 4, [w])
    tag(257, 4, [h])
    tag(258, 3, [16, 16, 16])
    tag(259, 3, [1])  # no compression
    tag(262, 3, [34892])  # PhotometricInterpretation: LinearRaw
    tag(271, 2, "vitfeat")
    tag(272, 2, "self-test")
    tag(273, 4, [0])  # StripOffsets, patched below
    tag(274, 3, [1])
    tag(277, 3, [3])
    tag(278, 4, [h])
    tag(279, 4, [len(pixels)])
    tag(284, 3, [1])
    tag(50706, 1, [1, 4, 0, 0])  # DNGVersion
    tag(50708, 2, "vitfeat self-test")  # UniqueCameraModel
    tag(50717, 4, [65535])  # WhiteLevel
    tag(50721, 10, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)])  # ColorMatrix1
    tag(50778, 3, [21])  # CalibrationIlluminant1: D65
    entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    extra_start = 8 + ifd_size
    extra = b""
    records = []
    strip_record = -1
    for i, (code, kind, count, raw) in enumerate(entries):
        if code == 273:
            strip_record = i
        if len(raw) <= 4:
            records.append(struct.pack("<HHI", code, kind, count) + raw.ljust(4, b"\0"))
        else:
            records.append(struct.pack("<HHII", code, kind, count, extra_start + len(extra)))
            extra += raw + (b"\0" if len(raw) % 2 else b"")
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(entries)) + b"".join(records) + b"\0\0\0\0" + extra)
    struct.pack_into("<I", out, 8 + 2 + 12 * strip_record + 8, len(out))
    path.write_bytes(bytes(out) + pixels)


def mean_rgb(image: Image.Image) -> np.ndarray:
    """The mean colour: what a decoded picture is compared on (lossy codecs change pixels, not the mean)."""
    return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
