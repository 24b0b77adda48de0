"""How a model is laid out on disk and what a ``model=`` value names: the rules every other models module shares.

A model folder is in the hub's own layout (``config.json``, ``preprocessor_config.json``, ``onnx/model.onnx``
for fp32, ``onnx/model_quantized.onnx`` for int8), so a cached model is also a valid ``model=`` folder and a copy
carried to an air-gapped machine can be imported back. The cache keeps one such folder per hub id under
``config.models_dir()`` (``Xenova/vit-base`` -> ``Xenova--vit-base``) with a manifest (``vitfeat-model.json``):
id, where it came from (hub commit or imported path), files with size and sha256, and the ``"outputs"`` mapping
when the ONNX output names are not the standard ones.

:func:`resolve_spec` is the one place that tells a folder from a hub id; it never touches the network nor the
Hugging Face cache (:mod:`~vitfeat_desktop.core.models.resolve` does, on top of it). This module imports nothing
of the other models modules, so each of them can use it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ModelError

MODEL_FILES_FP32 = "onnx/model.onnx"
MODEL_FILES_INT8 = "onnx/model_quantized.onnx"
CONFIG_FILES = ("config.json", "preprocessor_config.json")
MANIFEST_NAME = "vitfeat-model.json"
VARIANTS = ("int8", "fp32")

# Hub ids are "name" or "org/name"; each part: letters, digits, '-', '_', '.', not starting with '.' or '-'
# and never '..' (the hub enforces the same, and it keeps ids from escaping the cache folder).
_ID_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_ID_RE = re.compile(rf"^(?:{_ID_PART}/)?{_ID_PART}$")
# A revision is a branch, tag, or commit sha: "main", "v1.0", "refs/pr/3", 40 hex digits. Slashes are allowed
# (they are quoted into one URL segment, as huggingface_hub does) but no "..", no leading "/" and no odd characters.
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_FILE_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")


def validate_model_id(model_id: str) -> str:
    """Return ``model_id`` if it is a well-formed hub id, else raise ``ModelError`` before anything else runs."""
    if not isinstance(model_id, str) or not _ID_RE.fullmatch(model_id) or ".." in model_id:
        raise ModelError(
            f"{model_id!r} is not a valid Hugging Face model id (expected 'org/name' with letters, digits, '-', "
            "'_' or '.') nor an existing model folder"
        )
    return model_id


def validate_revision(revision: str) -> str:
    """Refuse revisions that could change the URL's meaning or contain odd characters, before any request."""
    if (
        not isinstance(revision, str)
        or not _REVISION_RE.fullmatch(revision)
        or ".." in revision
        or "//" in revision
        or revision.endswith(("/", ".lock", "."))
    ):
        raise ModelError(f"{revision!r} is not a valid revision (a branch, tag or commit id such as 'main')")
    return revision


def validate_filename(name: str) -> str:
    """A repo-relative file name that stays inside the model folder: ``a/b.onnx``, no ``..``, no absolute path."""
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        raise ModelError(f"refusing file name {name!r}: it would leave the model folder")
    parts = name.split("/")
    if any(p in ("", ".", "..") or not _FILE_PART_RE.fullmatch(p) for p in parts):
        raise ModelError(f"refusing file name {name!r}: it would leave the model folder or has odd characters")
    return name


def cache_folder(model_id: str) -> Path:
    """Where a hub id lives in the cache (whether or not it is there yet)."""
    validate_model_id(model_id)
    return config.models_dir() / model_id.replace("/", "--")


def lock_path(model_id: str) -> Path:
    """Locks live beside the model folders (not inside), so removing a model never removes a held lock."""
    return config.models_dir() / ".locks" / f"{model_id.replace('/', '--')}.lock"


def variant_file(quantized: bool) -> str:
    return MODEL_FILES_INT8 if quantized else MODEL_FILES_FP32


def variant_name(quantized: bool) -> str:
    return "int8" if quantized else "fp32"


def looks_like_path(model: str | Path) -> bool:
    """A ``model=`` value is treated as a folder if it is a Path, exists, or is written like a path."""
    if isinstance(model, Path):
        return True
    text = str(model)
    return (
        Path(text).expanduser().exists()
        or text.startswith((".", "/", "~", "\\"))
        or (len(text) > 1 and text[1] == ":")  # C:\...
        or text.count("/") > 1
        or "\\" in text
    )


@dataclass(frozen=True)
class ModelSpec:
    """What a ``model=`` value names, before anything is fetched: a folder, or a hub id and its cache folder.

    ``model_id`` is None for a folder the user points at; for a hub id ``folder`` is where the cache keeps it
    (it may not exist yet: ``cached`` says whether the requested variant is there).
    """

    model_id: str | None
    folder: Path
    quantized: bool

    @property
    def name(self) -> str:
        """What messages and the index key call it: the hub id, else the folder."""
        return self.model_id if self.model_id is not None else str(self.folder)

    @property
    def variant(self) -> str:
        return variant_name(self.quantized)

    @property
    def onnx_path(self) -> Path:
        return self.folder / variant_file(self.quantized)

    @property
    def cached(self) -> bool:
        return self.onnx_path.is_file()


def resolve_spec(model: str | Path | None, quantized: bool = True) -> ModelSpec:
    """Tell a folder from a hub id (None: the app's default model); a malformed hub id is a ``ModelError``."""
    if model is None:
        model = config.DEFAULT_MODEL_ID
    if looks_like_path(model):
        return ModelSpec(None, Path(model).expanduser().resolve(), quantized)
    model_id = validate_model_id(str(model))
    return ModelSpec(model_id, cache_folder(model_id), quantized)


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: the folder, the ONNX file of the requested variant, and what to call it."""

    model_id: str
    folder: Path
    onnx_path: Path
    quantized: bool

    @property
    def variant(self) -> str:
        return variant_name(self.quantized)


def check_folder(folder: Path, quantized: bool, model_id: str | None = None) -> ResolvedModel:
    """Check that a hub-layout folder has the configs and the requested ONNX variant."""
    name = model_id or str(folder)
    if not folder.is_dir():
        if folder.exists():  # issue 13: "does not exist" for a file was misleading
            raise ModelError(f"{folder} is a file, not a model folder (add an .onnx file with: vitfeat model import)")
        raise ModelError(f"model folder {folder} does not exist")
    missing = [f for f in CONFIG_FILES if not (folder / f).is_file()]
    if "preprocessor_config.json" in missing:
        raise ModelError(f"model {name} has no preprocessor_config.json in {folder}")
    onnx_path = folder / variant_file(quantized)
    if not onnx_path.is_file():
        other = folder / variant_file(not quantized)
        hint = ""
        if other.is_file():
            hint = " (use --fp32 / quantized=False)" if quantized else " (drop --fp32 to use the int8 variant)"
        raise ModelError(f"model {name} has no {variant_file(quantized)} in {folder}{hint}")
    return ResolvedModel(model_id=name, folder=folder, onnx_path=onnx_path, quantized=quantized)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's ``vitfeat-model.json`` as a dict ({} when absent or unreadable: such folders still work)."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_variants(folder: Path) -> tuple[str, ...]:
    return tuple(v for v, f in (("int8", MODEL_FILES_INT8), ("fp32", MODEL_FILES_FP32)) if (folder / f).is_file())


def revision_matches(manifest: dict[str, Any], revision: str | None) -> bool:
    """Whether a cached folder is at ``revision`` (None: any; a branch/tag name or a commit, full or abbreviated)."""
    if revision is None:
        return True
    commit = str(manifest.get("commit") or "")
    if revision == manifest.get("revision") or revision == commit:
        return True
    return len(revision) >= 7 and bool(commit) and bool(re.fullmatch(r"[0-9a-f]+", revision)) \
        and commit.startswith(revision)
