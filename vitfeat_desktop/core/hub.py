"""Model folders: tell a local folder from a hub id, find cached models, and say how to get a missing one.

The cache keeps one folder per hub id under ``config.models_dir()`` (``Xenova/vit-base`` ->
``Xenova--vit-base``) in the hub's own layout, so a cached model is also a valid ``model=`` folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ModelError, ModelNotCachedError

MODEL_FILES_FP32 = "onnx/model.onnx"
MODEL_FILES_INT8 = "onnx/model_quantized.onnx"
CONFIG_FILES = ("config.json", "preprocessor_config.json")
MANIFEST_NAME = "vitfeat-model.json"

# Hub ids are "name" or "org/name"; each part: letters, digits, '-', '_', '.', not starting with '.' or '-'
# and never '..' (the hub enforces the same, and it keeps ids from escaping the cache folder).
_ID_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_ID_RE = re.compile(rf"^(?:{_ID_PART}/)?{_ID_PART}$")

ProgressCallback = Callable[[int, int | None, str], None]
CancelCallback = Callable[[], bool]


def validate_model_id(model_id: str) -> str:
    """Return ``model_id`` if it is a well-formed hub id, else raise ``ModelError`` before anything else runs."""
    if not isinstance(model_id, str) or not _ID_RE.match(model_id) or ".." in model_id:
        raise ModelError(
            f"{model_id!r} is not a valid Hugging Face model id (expected 'org/name' with letters, digits, '-', "
            "'_' or '.') nor an existing model folder"
        )
    return model_id


def cache_folder(model_id: str) -> Path:
    """Where a hub id lives in the cache (whether or not it is there yet)."""
    validate_model_id(model_id)
    return config.models_dir() / model_id.replace("/", "--")


def variant_file(quantized: bool) -> str:
    return MODEL_FILES_INT8 if quantized else MODEL_FILES_FP32


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
class ResolvedModel:
    """A model ready to load: the folder, the ONNX file of the requested variant, and what to call it."""

    model_id: str
    folder: Path
    onnx_path: Path
    quantized: bool

    @property
    def variant(self) -> str:
        return "int8" if self.quantized else "fp32"


def check_folder(folder: Path, quantized: bool, model_id: str | None = None) -> ResolvedModel:
    """Check that a hub-layout folder has the configs and the requested ONNX variant."""
    name = model_id or str(folder)
    if not folder.is_dir():
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


def resolve_model(
    model: str | Path | None,
    *,
    quantized: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> ResolvedModel:
    """Turn a ``model=`` argument (folder, hub id, or None for the default) into files on disk.

    A hub id that is not cached is an error naming the id, the folder we looked in and the command that
    fetches it.
    """
    if model is None:
        model = config.DEFAULT_MODEL_ID
    if looks_like_path(model):
        folder = Path(model).expanduser()
        return check_folder(folder.resolve(), quantized)
    model_id = validate_model_id(str(model))
    folder = cache_folder(model_id)
    onnx_path = folder / variant_file(quantized)
    if folder.is_dir() and onnx_path.is_file():
        return check_folder(folder, quantized, model_id)
    flag = "" if quantized else " --fp32"
    raise ModelNotCachedError(
        f"model {model_id} ({variant_file(quantized)}) is not in the model cache {folder}; "
        f"fetch it with: vitfeat model download {model_id}{flag}"
    )
