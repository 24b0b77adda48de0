"""Where the shared sample photos are (a helper module, so GUI tests can use them without the fixture)."""

from __future__ import annotations

from pathlib import Path

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "photos"


def shared_photos() -> list[Path]:
    return sorted(PHOTOS.glob("*.JPEG"))
