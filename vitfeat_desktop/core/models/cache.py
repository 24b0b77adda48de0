"""The local model cache: list, remove and import models (the folder layout is :mod:`.layout`).

Import is for air-gapped machines: a hub-layout folder, a copied cache folder or a single ``.onnx`` file (plus
its configs) is validated with ONNX Runtime and copied in under an id, with a manifest recording every file's
sha256 so the weights are verified on load like a download's. Finding a model for ``model=`` (our cache, the
Hugging Face cache, the hub) is :mod:`.resolve`; downloading is :mod:`.download`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import DownloadError, ModelError
from vitfeat_desktop.core.models.encoder import inspect_encoder
from vitfeat_desktop.core.models.layout import (
    MANIFEST_NAME,
    MODEL_FILES_FP32,
    MODEL_FILES_INT8,
    cache_folder,
    cached_variants,
    lock_path,
    read_manifest,
    validate_model_id,
)
from vitfeat_desktop.core.models.lock import ModelLock
from vitfeat_desktop.core.models.registry import output_mapping
from vitfeat_desktop.core.preprocess import Preprocessor
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

IMPORT_PHASE = "import"


# -- the cache: list and remove --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CachedModel:
    """One model in the cache, as ``vitfeat model list`` and the GUI's model picker show it."""

    model_id: str
    folder: Path
    variants: tuple[str, ...]  # "int8", "fp32": the ONNX files present
    size_bytes: int
    source: str  # "hub", "import" or "unknown" (no manifest)
    revision: str | None = None
    commit: str | None = None
    imported_from: str | None = None
    partial: bool = False  # an interrupted download left .part files (the next download resumes them)
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def list_cached_models() -> list[CachedModel]:
    """Every model folder in the cache, sorted by id; folders without any ONNX variant are listed as partial."""
    root = config.models_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        model_id = folder.name.replace("--", "/", 1)
        manifest = read_manifest(folder)
        size = 0
        partial = False
        for path in folder.rglob("*"):
            if path.is_file():
                size += path.stat().st_size
                partial = partial or path.name.endswith(".part")
        found.append(CachedModel(
            model_id=model_id,  # from the folder name: the id every other call maps back to this folder
            folder=folder,
            variants=cached_variants(folder),
            size_bytes=size,
            source=str(manifest.get("source") or "unknown"),
            revision=manifest.get("revision"),
            commit=manifest.get("commit"),
            imported_from=manifest.get("imported_from"),
            partial=partial or not cached_variants(folder),
            manifest=manifest,
        ))
    return found


def remove_model(model_id: str) -> Path:
    """Delete a model from the cache (never anything outside it); refuses while a download of it runs."""
    folder = cache_folder(model_id)
    if not folder.is_dir():
        raise ModelError(f"model {model_id} is not in the model cache {config.models_dir()}")
    lock = ModelLock(lock_path(model_id))
    try:
        if not lock.try_acquire():
            raise DownloadError(f"model {model_id} is being downloaded by another process; remove it afterwards")
    except OSError:
        pass  # a read-only cache: rmtree below gives the real error
    try:
        # Rename first so a half-finished removal never looks like a valid (but broken) model folder.
        doomed = folder.with_name(f".removing-{folder.name}-{os.getpid()}")
        os.replace(folder, doomed)
        shutil.rmtree(doomed)
    finally:
        lock.release()
    return folder


# -- import (air-gapped machines) -------------------------------------------------------------------------------------

def _guess_variant(path: Path) -> str:
    name = path.name.lower()
    return "int8" if any(t in name for t in ("quant", "int8", "uint8", "q8")) else "fp32"


def _import_sources(source: Path, variant: str | None) -> dict[str, Path]:
    """Variant -> ONNX file for an import source (a hub-layout folder, a flat folder, or one .onnx file)."""
    if source.is_file():
        if source.suffix.lower() != ".onnx":
            raise ModelError(f"{source} is neither a model folder nor an .onnx file")
        return {variant or _guess_variant(source): source}
    found: dict[str, Path] = {}
    for v, rel in (("int8", MODEL_FILES_INT8), ("fp32", MODEL_FILES_FP32)):
        for candidate in (source / rel, source / Path(rel).name):
            if candidate.is_file():
                found.setdefault(v, candidate)
    if not found:
        onnx_files = sorted(p for p in [*source.glob("*.onnx"), *source.glob("onnx/*.onnx")] if p.is_file())
        known = [p for p in onnx_files if "vision_model" in p.name] or onnx_files
        for path in known:
            found.setdefault(_guess_variant(path), path)
        if len(onnx_files) > 2 and not any("vision_model" in p.name for p in onnx_files):
            raise ModelError(f"{source} holds several .onnx files {[p.name for p in onnx_files]}; import the one "
                             "image encoder file directly (vitfeat model import FILE.onnx)")
    if not found:
        raise ModelError(f"{source} has no onnx/model.onnx, onnx/model_quantized.onnx or other .onnx file")
    if variant is not None:
        if variant not in found:
            raise ModelError(f"{source} has no {variant} model file")
        found = {variant: found[variant]}
    return found


def default_import_id(source: Path) -> str:
    """An id for an imported model: the id in its manifest, ``org/name`` for a copied cache folder
    (``org--name``), else ``local/<name>`` after the folder (or the file, when its name says more)."""
    is_file = source.suffix.lower() == ".onnx"
    folder = source.parent if is_file else source
    if folder.name == "onnx":
        folder = folder.parent
    manifest_id = read_manifest(folder).get("model_id")
    if isinstance(manifest_id, str):
        with contextlib.suppress(ModelError):
            return validate_model_id(manifest_id)
    stem = folder.name
    generic = ("model", "model_quantized", "vision_model", "vision_model_quantized", "model_fp16")
    if is_file and source.parent.name != "onnx" and source.stem.lower() not in generic:
        stem = source.stem
    if "--" in stem:
        with contextlib.suppress(ModelError):
            return validate_model_id(stem.replace("--", "/", 1))
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)[:90].strip("-._") or "model"
    return validate_model_id(f"local/{clean}")


def import_model(
    source: str | Path,
    *,
    model_id: str | None = None,
    variant: str | None = None,
    config_file: str | Path | None = None,
    preprocessor_file: str | Path | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> CachedModel:
    """Copy a model from a folder or a single ``.onnx`` (plus config files) into the cache, after validating it.

    The source is only read. Every ONNX file is opened with ONNX Runtime and checked (one ``[N,3,H,W]`` float
    input, a hidden-state output, the preprocessor's output size matching a fixed input size) before anything is
    written; the copy is assembled in a hidden folder beside the cache and renamed into place, so a failed or
    cancelled import leaves the cache as it was. ``variant`` ("int8"/"fp32") overrides the guess from the file
    name for a single file. ``force`` replaces a model already cached under the same id. ``progress`` gets a
    :class:`~vitfeat_desktop.core.progress.Progress` (phase ``"import"``, bytes copied) at most ~10 times a second.
    """
    src = Path(source).expanduser()
    if not src.exists():
        raise ModelError(f"{src} does not exist")
    if variant is not None and variant not in ("int8", "fp32"):
        raise ModelError(f"unknown variant {variant!r} (expected int8 or fp32)")
    src = src.resolve()
    model_id = validate_model_id(model_id) if model_id else default_import_id(src)
    folder = cache_folder(model_id)
    if folder.exists() and not force:
        raise ModelError(f"model {model_id} is already in the cache ({folder}); use --force to replace it or --id NAME")
    onnx_files = _import_sources(src, variant)
    base = src if src.is_dir() else src.parent
    near = [base, base.parent] if base.name == "onnx" else [base]

    def find_config(name: str, explicit: str | Path | None) -> Path | None:
        if explicit is not None:
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise ModelError(f"{path} does not exist")
            return path
        return next((d / name for d in near if (d / name).is_file()), None)

    pre_path = find_config("preprocessor_config.json", preprocessor_file)
    if pre_path is None:
        raise ModelError(f"no preprocessor_config.json next to {src}: put the model's preprocessor_config.json there "
                         "or pass --preprocessor FILE (vitfeat must resize and normalise images as the model expects)")
    preprocessor = Preprocessor.from_file(pre_path)
    cfg_path = find_config("config.json", config_file)
    if cfg_path is not None:
        try:
            json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{cfg_path} is not valid JSON: {exc}") from exc
    manifest_in = read_manifest(near[-1])
    mapping_hint = manifest_in.get("outputs") if isinstance(manifest_in.get("outputs"), dict) else None
    if mapping_hint is None:
        mapping_hint = output_mapping(model_id)
    signatures = {}
    for v, path in onnx_files.items():
        check_cancel(cancel)
        sig = inspect_encoder(path, mapping_hint)
        h, w = preprocessor.output_hw()
        static = sig.input_shape[2:]
        if all(isinstance(d, int) for d in static) and tuple(static) != (h, w):
            raise ModelError(f"{path} takes {static[0]}x{static[1]} images but {pre_path} makes {h}x{w}; "
                             "they do not belong together")
        signatures[v] = sig
    mappings = {json.dumps(s.mapping(), sort_keys=True) for s in signatures.values()}
    if len(mappings) > 1:
        raise ModelError(f"the ONNX files in {src} have different output names; import them one at a time")

    copies: list[tuple[Path, str]] = [(pre_path, "preprocessor_config.json")]
    if cfg_path is not None:
        copies.append((cfg_path, "config.json"))
    copies += [(path, MODEL_FILES_INT8 if v == "int8" else MODEL_FILES_FP32) for v, path in onnx_files.items()]
    total = sum(p.stat().st_size for p, _ in copies)
    root = config.models_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".import-{folder.name}-{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        (staging / "onnx").mkdir(parents=True)
    except OSError as exc:
        raise ModelError(f"cannot write to the model cache {root} ({exc.strerror or exc}); set VITFEAT_HOME to a "
                         "writable folder") from exc
    reporter = Reporter(progress, IMPORT_PHASE, total)
    try:
        done = 0
        files: dict[str, Any] = {}
        for path, rel in copies:
            dest = staging / rel
            with path.open("rb") as fin, dest.open("wb") as fout:
                digest = hashlib.sha256()
                for block in iter(lambda fin=fin: fin.read(1 << 20), b""):  # type: ignore[misc]
                    check_cancel(cancel)
                    fout.write(block)
                    digest.update(block)
                    done += len(block)
                    reporter.update(done, f"importing {rel}")
            reporter.update(done, f"importing {rel}", force=True)
            files[rel] = {"size": dest.stat().st_size, "sha256": digest.hexdigest(), "source": str(path)}
        manifest: dict[str, Any] = {
            "model_id": model_id,
            "source": "import",
            "imported_from": str(src),
            "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "revision": manifest_in.get("revision"),
            "commit": manifest_in.get("commit"),
            "files": files,
            "inputs": {"name": next(iter(signatures.values())).input_name},
        }
        mapping = next(iter(signatures.values())).mapping()
        if mapping:
            manifest["outputs"] = mapping
        config.write_json_atomic(staging / MANIFEST_NAME, manifest)
        with ModelLock(lock_path(model_id)) as lock:
            if not lock.try_acquire():
                raise ModelError(f"model {model_id} is being downloaded by another process; import it afterwards")
            if folder.exists():
                old = folder.with_name(f".replaced-{folder.name}-{os.getpid()}")
                os.replace(folder, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(staging, folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise ModelError(f"the disk is full while importing into {root}; free some space") from exc
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return next(m for m in list_cached_models() if m.folder == folder)
