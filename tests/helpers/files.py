"""Checksums a test takes before and after touching files, computed here (not by the code under test), so "the
same bytes came back" is checked independently of the app's own hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_checksums(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative POSIX path) with its SHA-256."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
