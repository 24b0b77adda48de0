"""Perceptual hashes computed on the image the decoder already produced.

They catch resized and recompressed copies at hash speed, before any model runs, and stay useful where an
embedding is weak (flat or dark pictures). We keep, per image, the DCT pHash of all eight rotations/mirrors
(the dihedral group), so a copy turned 90 degrees or flipped is found by comparing its hash with any of the
original's eight, and a difference hash (dHash) as an independent second opinion.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

HASH_SIZE = 8
_DCT_SIZE = 32


@lru_cache(maxsize=1)
def _dct_matrix(n: int = _DCT_SIZE) -> np.ndarray:
    """Orthonormal DCT-II matrix, so pHash needs no SciPy."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0, :] = np.sqrt(1.0 / n)
    return m


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bool(bit))
    return value


def _gray(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    small = image.convert("L").resize(size, Image.Resampling.BOX if min(image.size) > 4 * max(size) else
                                      Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float64)


def _phash_from_gray(gray32: np.ndarray) -> int:
    dct = _dct_matrix()
    coeffs = dct @ gray32 @ dct.T
    low = coeffs[:HASH_SIZE, :HASH_SIZE]
    median = np.median(low.ravel()[1:])  # the DC term says only how bright the picture is
    return _bits_to_int(low > median)


def dihedral(array: np.ndarray) -> list[np.ndarray]:
    """The eight rotations/mirrors of a 2-D array, identity first."""
    out = []
    for flipped in (array, array[:, ::-1]):
        for turns in range(4):
            out.append(np.rot90(flipped, turns))
    return out


@dataclass(frozen=True)
class ImageHashes:
    """pHash of each of the eight orientations (index 0 = as decoded) and the dHash as decoded."""

    phashes: tuple[int, ...]
    dhash: int

    @property
    def phash(self) -> int:
        return self.phashes[0]

    def to_bytes(self) -> bytes:
        return struct.pack("<9Q", *self.phashes, self.dhash)

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageHashes:
        values = struct.unpack("<9Q", data)
        return cls(phashes=tuple(values[:8]), dhash=values[8])


def image_hashes(image: Image.Image) -> ImageHashes:
    """Hashes of an (already decoded, upright RGB) image; costs well under a millisecond after the resize."""
    gray32 = _gray(image, (_DCT_SIZE, _DCT_SIZE))
    phashes = tuple(_phash_from_gray(np.ascontiguousarray(g)) for g in dihedral(gray32))
    gray9 = _gray(image, (HASH_SIZE + 1, HASH_SIZE))
    dhash = _bits_to_int(gray9[:, 1:] > gray9[:, :-1])
    return ImageHashes(phashes=phashes, dhash=dhash)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_signed64(value: int) -> int:
    """SQLite integers are signed 64-bit; store unsigned hashes in that range."""
    return value - (1 << 64) if value >= (1 << 63) else value


def from_signed64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
