"""Which model a library's vectors belong to, named without loading it: the model key.

A library keeps one index per (model, variant, weights). The key is computed from the files alone (never a
download, never an ONNX session), so opening a library and a quick scan stay cheap; once the model is really
loaded the library computes it again from the extractor (a hub model may have been downloaded meanwhile).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from vitfeat_desktop import config, settings
from vitfeat_desktop.core.models.layout import resolve_spec


@dataclass(frozen=True)
class ModelIdentity:
    """What names a library's index: the model id, the variant (``int8``/``fp32``) and the resulting key."""

    model_id: str
    variant: str
    key: str

    @classmethod
    def of(cls, model_id: str, variant: str, onnx_path: str | os.PathLike[str] | None) -> ModelIdentity:
        return cls(model_id, variant, make_model_key(model_id, variant, weights_fingerprint(onnx_path)))


def default_model() -> str:
    """The model a library uses when none is given: the user's setting, else the app default."""
    return settings.load().model or config.DEFAULT_MODEL_ID


def model_folder(spec: str | Path) -> Path:
    """The local folder of a model given as a path or a hub id (which need not be downloaded yet)."""
    return resolve_spec(spec, True).folder


def identify(spec: str | Path, quantized: bool) -> ModelIdentity:
    """The identity of model ``spec`` from its files only: resolving a hub id may start a download, which
    opening a library must not."""
    resolved = resolve_spec(spec, quantized)
    onnx = resolved.onnx_path
    # No fingerprint when the weights are not here yet; the key then changes once they are, which is right:
    # no vectors can exist for weights we never had.
    return ModelIdentity.of(resolved.name, resolved.variant, onnx if onnx.is_file() else None)


def make_model_key(model_id: str, variant: str, fingerprint: str = "") -> str:
    """A file-name-safe, stable key for (model, variant, weights): readable name + hash of id and weights.

    The weights' fingerprint is part of the key so that a model folder updated in place (a new revision of
    the same hub id) gets a new index instead of mixing vectors of two different networks.
    """
    base = Path(model_id).name if ("/" in model_id and os.path.isabs(model_id)) else model_id
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base.replace("/", "--"))[:60].strip("._") or "model"
    digest = hashlib.sha256(f"{model_id}|{fingerprint}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe}-{variant}-{digest}"


def weights_fingerprint(onnx_path: str | os.PathLike[str] | None) -> str:
    """Size plus a hash of the first and last MiB of an ONNX file: cheap, and changes with the weights."""
    if onnx_path is None:
        return ""
    try:
        with open(onnx_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            digest = hashlib.sha256(str(size).encode())
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(size - (1 << 20))
                digest.update(fh.read(1 << 20))
    except OSError:
        return ""
    return digest.hexdigest()[:16]
