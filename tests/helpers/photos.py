"""Where the repository and the shared sample data are, so a test in any folder finds them without counting
``parents[n]`` from its own path (and GUI tests can use the photos without the fixture)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REAL_MODEL = SHARED / "models" / "dinov2-small-imgfocus"
PHOTOS = SHARED / "data" / "photos"
SCENES = SHARED / "data" / "scenes"
BENCH = REPO / "tests" / "bench"


def shared_photos() -> list[Path]:
    return sorted(PHOTOS.glob("*.JPEG"))
