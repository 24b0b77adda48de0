"""The Hugging Face cache (``huggingface_hub``'s layout): where it is, which snapshot holds a model, adopting it.

A user who ran ``transformers`` or ``hf download`` already has the files; finding them there spares a download.
``models--{org}--{name}/refs/{revision}`` names a commit, ``snapshots/{commit}/`` holds the files (symlinks into
``blobs/``). A snapshot is *adopted* into our cache (hard links where both caches share a disk, else copies)
rather than used in place, so the model folder is a plain folder in the hub layout like every other.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vitfeat_desktop import config
from vitfeat_desktop.core.fileio import sha256_file
from vitfeat_desktop.core.models import registry
from vitfeat_desktop.core.models.layout import (
    HEX40,
    MANIFEST_NAME,
    ResolvedModel,
    cache_folder,
    cached_variants,
    check_folder,
    lock_path,
    read_manifest,
    variant_name,
)
from vitfeat_desktop.core.models.lock import ModelLock


def hf_home() -> Path:
    """``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface`` (huggingface_hub's rule)."""
    home = os.environ.get("HF_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


def hf_hub_cache() -> Path:
    """Where huggingface_hub keeps models: ``$HF_HUB_CACHE`` (or the older ``$HUGGINGFACE_HUB_CACHE``), else
    ``hf_home()/hub``."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(name, "").strip()
        if value:
            return Path(value).expanduser()
    return hf_home() / "hub"


def find_hf_snapshot(model_id: str, quantized: bool, revision: str | None = None,
                     root: Path | None = None) -> Path | None:
    """A snapshot folder of ``model_id`` in the Hugging Face cache that holds every file the variant needs.

    ``models--{org}--{name}/refs/{revision}`` names the commit (default ``main``), ``snapshots/{commit}/`` holds
    the files (symlinks into ``blobs/``; a dangling link is a file that was never fetched). A 40-hex revision is
    the snapshot's name itself. Without refs/main (a cache filled by ``hf download --revision X``), the newest
    snapshot that has the files is used.
    """
    repo = (root or hf_hub_cache()) / f"models--{model_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    needed = [remote for _, remote in registry.files_for(model_id, variant_name(quantized))]

    def complete(folder: Path) -> bool:
        return folder.is_dir() and all((folder / name).is_file() for name in needed)

    wanted = revision or "main"
    if HEX40.fullmatch(wanted):
        return snapshots / wanted if complete(snapshots / wanted) else None
    try:
        commit = (repo / "refs" / wanted).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        commit = ""
    if HEX40.fullmatch(commit):
        return snapshots / commit if complete(snapshots / commit) else None
    if revision is not None:
        return None  # asked for a revision this cache does not know
    candidates = sorted((p for p in snapshots.iterdir() if complete(p)), key=lambda p: p.stat().st_mtime,
                        reverse=True)
    return candidates[0] if candidates else None


def adopt_hf_snapshot(model_id: str, snapshot: Path, quantized: bool,
                      revision: str | None = None) -> ResolvedModel | None:
    """Bring a Hugging Face cache snapshot's files into our cache folder for ``model_id``; None if it cannot.

    Hard links where the two caches share a disk (no extra space; the HF cache's blobs are never modified in
    place, so sharing them is safe), else copies. The snapshot's name is the commit, which the manifest records
    so the folder is pinned like a download. Refuses (None) to mix commits: when our folder already holds another
    variant from a different commit, the regular download path brings the folder to one commit instead.
    """
    variant = variant_name(quantized)
    folder = cache_folder(model_id)
    commit = snapshot.name if HEX40.fullmatch(snapshot.name) else None
    previous = read_manifest(folder)
    if cached_variants(folder) and previous.get("commit") != commit:
        return None
    try:
        root = config.models_dir()
        root.mkdir(parents=True, exist_ok=True)
        with ModelLock(lock_path(model_id)) as lock:
            if not lock.try_acquire():
                return None  # a download of it runs now; it will be there after
            files: dict[str, Any] = dict(previous.get("files") or {})
            for local, remote in registry.files_for(model_id, variant):  # the ONNX file last: it marks "cached"
                src = (snapshot / remote).resolve()
                dest = folder / local
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(dest.name + ".adopt")
                tmp.unlink(missing_ok=True)
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
                sha256 = sha256_file(tmp)
                os.replace(tmp, dest)
                files[local] = {"remote": remote, "size": dest.stat().st_size, "sha256": sha256}
            manifest: dict[str, Any] = dict(previous)
            manifest.update({"model_id": model_id, "source": "hf-cache", "imported_from": str(snapshot),
                             "revision": revision or previous.get("revision") or "main", "commit": commit,
                             "files": files, "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            mapping = registry.output_mapping(model_id)
            if mapping:
                manifest["outputs"] = mapping
            config.write_json_atomic(folder / MANIFEST_NAME, manifest)
    except OSError:
        return None  # unreadable snapshot or read-only cache: downloading is still possible
    return check_folder(folder, quantized, model_id)
