"""Model weights are checked against their manifest before ONNX Runtime is given them.

A model folder is identified (its index key) by its size and a hash of its first and last MiB, which is cheap
but blind to the middle: 64 KB of garbage there gave wrong features under the same key, silently (the hare
was no longer found; top score 0.18). The manifest (``vitfeat-model.json``, written by ``model download`` and
``model import``) records every file's SHA-256; this module checks the graph file against it when a model is
loaded. Hashing a 350 MB fp32 ViT-B takes a few tenths of a second, so a successful check is remembered by the
file's (size, mtime_ns, inode) in the cache dir and redone only when one of them changes.

A folder without a manifest, or a manifest without a hash for the file (a model folder the user points at),
has nothing to check against and is used as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ModelError
from vitfeat_desktop.core.fileio import sha256_file

CACHE_NAME = "verified-weights.json"
_lock = threading.Lock()


def _cache_path() -> Path:
    return config.cache_dir() / CACHE_NAME


def _load_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def expected_sha256(folder: Path, onnx_path: Path, manifest: dict[str, Any] | None) -> str | None:
    """The SHA-256 the manifest records for ``onnx_path`` (relative to ``folder``), or None."""
    files = (manifest or {}).get("files")
    if not isinstance(files, dict):
        return None
    try:
        rel = onnx_path.resolve().relative_to(folder.resolve()).as_posix()
    except (OSError, ValueError):
        rel = onnx_path.name
    record = files.get(rel)
    sha = record.get("sha256") if isinstance(record, dict) else None
    return sha if isinstance(sha, str) and len(sha) == 64 else None


def verify_weights(folder: str | os.PathLike[str], onnx_path: str | os.PathLike[str],
                   manifest: dict[str, Any] | None) -> None:
    """Raise :class:`ModelError` when ``onnx_path`` does not match the SHA-256 its manifest recorded."""
    folder, onnx_path = Path(folder), Path(onnx_path)
    expected = expected_sha256(folder, onnx_path, manifest)
    if expected is None:
        return
    try:
        st = os.stat(onnx_path)
    except OSError as exc:
        raise ModelError(f"cannot read the model weights {onnx_path}: {exc.strerror or exc}") from exc
    stamp = [int(st.st_size), int(st.st_mtime_ns), int(st.st_ino)]
    key = str(onnx_path.resolve())
    with _lock:
        cached = _load_cache().get(key)
    if isinstance(cached, dict) and cached.get("stamp") == stamp and cached.get("sha256") == expected:
        return
    try:
        actual = sha256_file(onnx_path)
    except OSError as exc:
        raise ModelError(f"cannot read the model weights {onnx_path}: {exc.strerror or exc}") from exc
    if actual != expected:
        model_id = (manifest or {}).get("model_id") or folder.name
        raise ModelError(
            f"the weights of model {model_id} are damaged: {onnx_path.name} does not match the SHA-256 recorded "
            f"when it was installed; download or import it again (vitfeat model download {model_id})")
    with _lock:
        cache = _load_cache()
        cache[key] = {"stamp": stamp, "sha256": expected}
        with contextlib.suppress(OSError):  # a read-only cache dir only costs a re-hash next time
            config.write_json_atomic(_cache_path(), cache)
