"""Where a library keeps its files: one data folder per photo folder, never anything inside the photo folder.

Layout of ``config.libraries_dir()/<folder name>-<hash of its resolved path>/``::

    library.json                 which photo folder this is (``vitfeat similar`` finds a library by it)
    catalog.sqlite (+ -wal/-shm) the catalogue: the source of truth
    indexes/<model key>/         one hnswlib index per model/variant/weights: index.json + index-<seq>.bin
    damaged-<time>/              what ``vitfeat index --repair`` set aside (never deleted)
    <sidecar name>               per-library side files of other features (duplicate marks, verified pairs...)

Everything that belongs to one library is keyed by :func:`library_dir` alone, so a side file follows the
library's own key (the resolved path, symlinks followed) rather than a second, slightly different hash.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vitfeat_desktop import config

CATALOG_NAME = "catalog.sqlite"
LIBRARY_RECORD = "library.json"
INDEXES_DIR = "indexes"
INDEX_RECORD = "index.json"  # the commit point of a saved index (see ``ann.VectorIndex.save``)
DAMAGED_PREFIX = "damaged-"

# Names a sidecar may not take: the library's own files.
_RESERVED = {CATALOG_NAME, f"{CATALOG_NAME}-wal", f"{CATALOG_NAME}-shm", LIBRARY_RECORD, INDEXES_DIR}


def library_dir(folder: str | os.PathLike[str]) -> Path:
    """Where the data of the library rooted at ``folder`` lives (stable for the folder's absolute path)."""
    root = Path(folder).expanduser().resolve()
    digest = hashlib.sha256(os.fsencode(str(root))).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name)[:40].strip("._") or "root"
    return config.libraries_dir() / f"{name}-{digest}"


def sidecar(folder: str | os.PathLike[str], name: str) -> Path:
    """The path of the side file ``name`` (e.g. ``"not-duplicates.json"``) of the library of photo folder
    ``folder``: inside that library's data folder, so it is found by the same key as the catalogue and goes
    wherever the library goes. Nothing is created; writers make the parent folder (``write_json_atomic`` does).

    ``name`` is one plain file name, not a path, and not one of the library's own files.
    """
    return LibraryPaths.of(folder).sidecar(name)


@dataclass(frozen=True)
class LibraryPaths:
    """The files of one library, from its data folder ``data`` (see :func:`library_dir`)."""

    data: Path

    @classmethod
    def of(cls, folder: str | os.PathLike[str]) -> LibraryPaths:
        """The paths of the library of photo folder ``folder``."""
        return cls(library_dir(folder))

    @property
    def catalog(self) -> Path:
        return self.data / CATALOG_NAME

    @property
    def catalog_files(self) -> tuple[Path, ...]:
        """The catalogue and its WAL companions: what a repair sets aside together."""
        return (self.catalog, self.data / f"{CATALOG_NAME}-wal", self.data / f"{CATALOG_NAME}-shm")

    @property
    def record(self) -> Path:
        """``library.json``: the photo folder this data folder belongs to."""
        return self.data / LIBRARY_RECORD

    @property
    def indexes(self) -> Path:
        return self.data / INDEXES_DIR

    def index_dir(self, model_key: str) -> Path:
        """The folder of the hnswlib index of ``model_key`` (see ``model_key.make_model_key``)."""
        return self.indexes / model_key

    def index_record(self, model_key: str) -> Path:
        return self.index_dir(model_key) / INDEX_RECORD

    def damaged(self, stamp: str) -> Path:
        """Where a repair at time ``stamp`` puts the damaged files."""
        return self.data / f"{DAMAGED_PREFIX}{stamp}"

    def sidecar(self, name: str) -> Path:
        """See :func:`sidecar`."""
        if not name or name in (".", "..") or Path(name).name != name or "/" in name or os.sep in name:
            raise ValueError(f"a sidecar name is one file name, not {name!r}")
        if name in _RESERVED or name.startswith(DAMAGED_PREFIX):
            raise ValueError(f"{name!r} is one of the library's own files")
        return self.data / name
