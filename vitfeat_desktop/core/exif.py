"""The few EXIF facts the catalogue keeps (orientation, capture date, camera), read leniently: bad EXIF gives
what it can, never an error."""

from __future__ import annotations

import re
from typing import Any

from PIL import Image


def exif_summary(image: Image.Image) -> dict[str, Any]:
    """Orientation, capture date (ISO 8601) and camera from an image's EXIF; bad EXIF gives what it can."""
    out: dict[str, Any] = {}
    try:
        exif = image.getexif()
    except Exception:
        return out
    try:
        orientation = int(exif.get(0x0112) or 1)
        out["orientation"] = orientation if 1 <= orientation <= 8 else 1
    except (TypeError, ValueError):
        out["orientation"] = 1
    make = exif_text(exif.get(0x010F))
    model = exif_text(exif.get(0x0110))
    if model and make and not model.lower().startswith(make.lower().split()[0]):
        model = f"{make} {model}"
    camera = model or make
    if camera:
        out["camera"] = camera
    date = None
    try:
        ifd = exif.get_ifd(0x8769)
        date = exif_text(ifd.get(0x9003) or ifd.get(0x9004))
    except Exception:
        pass
    date = date or exif_text(exif.get(0x0132))
    iso = exif_date(date) if date else None
    if iso:
        out["capture_date"] = iso
    return out


def exif_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join(str(value).replace("\x00", " ").split())
    return text[:100] or None


def exif_date(text: str) -> str | None:
    """"2021:07:04 18:30:05" -> "2021-07-04T18:30:05"; placeholders like "0000:00:00 00:00:00" -> None."""

    match = re.match(r"^(\d{4})[:-](\d{2})[:-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?", text)
    if not match:
        return None
    year, month, day = (int(match.group(i)) for i in (1, 2, 3))
    if year < 1800 or not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    date = f"{year:04d}-{month:02d}-{day:02d}"
    if match.group(4):
        date += f"T{match.group(4)}:{match.group(5)}:{match.group(6) or '00'}"
    return date
