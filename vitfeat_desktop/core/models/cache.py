"""Model folders: tell a local folder from a hub id, find, download, import, list and remove cached models.

The cache keeps one folder per hub id under ``config.models_dir()`` (``Xenova/vit-base`` ->
``Xenova--vit-base``) in the hub's own layout, so a cached model is also a valid ``model=`` folder, and a copy
of it carried to an air-gapped machine can be imported back under the same id. Each cached folder has a
manifest (``vitfeat-model.json``): id, where it came from (hub commit or imported path), files with size and
sha256, and the ``"outputs"`` mapping when the ONNX output names are not the standard ones.
Downloading itself lives in :mod:`vitfeat_desktop.core.models.download`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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
    if not isinstance(model_id, str) or not _ID_RE.fullmatch(model_id) or ".." in model_id:
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


def resolve_model(
    model: str | Path | None,
    *,
    quantized: bool = True,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> ResolvedModel:
    """Turn a ``model=`` argument (folder, hub id, or None for the default) into files on disk.

    A hub id is looked up in our cache first, then in the Hugging Face cache (``cache_dir``, else
    ``HF_HUB_CACHE`` / ``$HF_HOME/hub`` / ``~/.cache/huggingface/hub``), where a snapshot that has the files is
    adopted into our cache (hard links, so no second copy on the same disk), and only then downloaded.
    ``revision`` (branch, tag or commit) must match what is cached, else the hub is asked; ``local_files_only``
    (or offline mode) never downloads. A hub id that cannot be found is an error naming the id, the folders we
    looked in and the command that fetches it.
    """
    if model is None:
        model = config.DEFAULT_MODEL_ID
    if looks_like_path(model):
        folder = Path(model).expanduser()
        return check_folder(folder.resolve(), quantized)
    model_id = validate_model_id(str(model))
    if revision is not None:
        from vitfeat_desktop.core.models.download import validate_revision

        validate_revision(revision)
    folder = cache_folder(model_id)
    onnx_path = folder / variant_file(quantized)
    if folder.is_dir() and onnx_path.is_file() and _revision_matches(read_manifest(folder), revision):
        return check_folder(folder, quantized, model_id)
    hf_root = Path(cache_dir).expanduser() if cache_dir is not None else hf_hub_cache()
    snapshot = find_hf_snapshot(model_id, quantized, revision, hf_root)
    if snapshot is not None:
        adopted = adopt_hf_snapshot(model_id, snapshot, quantized, revision)
        if adopted is not None:
            return adopted
    if local_files_only or config.offline():
        why = ("local_files_only=True" if local_files_only
               else "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/VITFEAT_OFFLINE)")
        at = f" at revision {revision}" if revision else ""
        raise ModelNotCachedError(
            f"model {model_id}{at} ({variant_file(quantized)}) is neither in the model cache {folder} nor in the "
            f"Hugging Face cache {hf_root}, and {why}; copy the model folder or .onnx file to this machine and run: "
            f"vitfeat model import PATH --id {model_id}"
        )
    from vitfeat_desktop.core.models.download import download_model

    download_model(model_id, variants=("int8" if quantized else "fp32",), revision=revision, token=token,
                   progress=progress, cancel=cancel)
    return check_folder(folder, quantized, model_id)


def _revision_matches(manifest: dict[str, Any], revision: str | None) -> bool:
    """Whether a cached folder is at ``revision`` (None: any; a branch/tag name or a commit, full or abbreviated)."""
    if revision is None:
        return True
    commit = str(manifest.get("commit") or "")
    if revision == manifest.get("revision") or revision == commit:
        return True
    return len(revision) >= 7 and bool(commit) and bool(re.fullmatch(r"[0-9a-f]+", revision)) \
        and commit.startswith(revision)


# -- the Hugging Face cache (huggingface_hub's layout) -------------------------------------------------------------

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
    from vitfeat_desktop.core.models import registry

    repo = (root or hf_hub_cache()) / f"models--{model_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    needed = [remote for _, remote in registry.files_for(model_id, "int8" if quantized else "fp32")]

    def complete(folder: Path) -> bool:
        return folder.is_dir() and all((folder / name).is_file() for name in needed)

    wanted = revision or "main"
    if re.fullmatch(r"[0-9a-f]{40}", wanted):
        return snapshots / wanted if complete(snapshots / wanted) else None
    try:
        commit = (repo / "refs" / wanted).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        commit = ""
    if re.fullmatch(r"[0-9a-f]{40}", commit):
        return snapshots / commit if complete(snapshots / commit) else None
    if revision is not None:
        return None  # asked for a revision this cache does not know
    candidates = sorted((p for p in snapshots.iterdir() if complete(p)), key=lambda p: p.stat().st_mtime,
                        reverse=True)
    return candidates[0] if candidates else None


def from_hf_cache(model_id: str, quantized: bool) -> ResolvedModel | None:
    """The model from the Hugging Face cache, adopted into ours, or None; never touches the network.

    For callers that must not download (the GUI opens a library, then offers the download itself).
    """
    snapshot = find_hf_snapshot(validate_model_id(model_id), quantized)
    return adopt_hf_snapshot(model_id, snapshot, quantized) if snapshot is not None else None


def adopt_hf_snapshot(model_id: str, snapshot: Path, quantized: bool,
                      revision: str | None = None) -> ResolvedModel | None:
    """Bring a Hugging Face cache snapshot's files into our cache folder for ``model_id``; None if it cannot.

    Hard links where the two caches share a disk (no extra space; the HF cache's blobs are never modified in
    place, so sharing them is safe), else copies. The snapshot's name is the commit, which the manifest records
    so the folder is pinned like a download. Refuses (None) to mix commits: when our folder already holds another
    variant from a different commit, the regular download path brings the folder to one commit instead.
    """
    from vitfeat_desktop.core.models import registry
    from vitfeat_desktop.core.models.download import ModelLock, lock_path

    variant = "int8" if quantized else "fp32"
    folder = cache_folder(model_id)
    commit = snapshot.name if re.fullmatch(r"[0-9a-f]{40}", snapshot.name) else None
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
                digest = hashlib.sha256()
                with tmp.open("rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):  # type: ignore[misc]
                        digest.update(block)
                os.replace(tmp, dest)
                files[local] = {"remote": remote, "size": dest.stat().st_size, "sha256": digest.hexdigest()}
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


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's ``vitfeat-model.json`` as a dict ({} when absent or unreadable: such folders still work)."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_variants(folder: Path) -> tuple[str, ...]:
    return tuple(v for v, f in (("int8", MODEL_FILES_INT8), ("fp32", MODEL_FILES_FP32)) if (folder / f).is_file())


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
    from vitfeat_desktop.core.models.download import DownloadError, ModelLock, lock_path

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

@dataclass(frozen=True)
class EncoderSignature:
    """What ONNX Runtime says an ONNX file takes and gives, and which outputs hold hidden states / pooled vector."""

    input_name: str
    input_shape: tuple[Any, ...]
    outputs: dict[str, tuple[Any, ...]]
    hidden: str
    pooled: str | None

    def mapping(self) -> dict[str, str]:
        """The manifest's ``"outputs"`` entry: only names that differ from the standard ones."""
        out = {}
        if self.hidden != "last_hidden_state":
            out["last_hidden_state"] = self.hidden
        if self.pooled is not None and self.pooled != "pooler_output":
            out["pooler_output"] = self.pooled
        return out


def inspect_encoder(onnx_path: Path, mapping: dict[str, str] | None = None) -> EncoderSignature:
    """Open ``onnx_path`` with ONNX Runtime and check it is an image encoder the pipeline can run.

    It must take one float32 input ``[N,3,H,W]`` and give a rank-3 hidden-state output: ``last_hidden_state``,
    the name ``mapping`` gives, or the only rank-3 output. The pooled output is ``pooler_output``, the mapped
    name, or the only rank-2 output (``image_embeds`` of a CLIP vision tower), and may be absent.
    """
    import onnxruntime as ort

    mapping = mapping or {}
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{onnx_path} is not a model ONNX Runtime can open: {first}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{onnx_path} takes inputs {[i.name for i in inputs]}; an image encoder takes one "
                         "(pixel_values [N,3,H,W])")
    inp = inputs[0]
    shape = tuple(inp.shape)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ModelError(f"{onnx_path} input {inp.name} has shape {list(shape)}; an image encoder takes [N,3,H,W]")
    if inp.type != "tensor(float)":
        raise ModelError(f"{onnx_path} input {inp.name} is {inp.type}; vitfeat feeds float32 pixels")
    outputs = {o.name: tuple(o.shape) for o in session.get_outputs()}

    def pick(standard: str, rank: int) -> str | None:
        wanted = mapping.get(standard)
        if wanted:
            if wanted not in outputs:
                raise ModelError(f"{onnx_path} has no output {wanted!r} (outputs: {list(outputs)})")
            return wanted
        if standard in outputs:
            return standard
        candidates = [n for n, s in outputs.items() if len(s) == rank]
        return candidates[0] if len(candidates) == 1 else None

    hidden = pick("last_hidden_state", 3)
    if hidden is None:
        raise ModelError(f"{onnx_path} has outputs {list(outputs)} but no hidden states [N,tokens,hidden]; "
                         "it is not an image encoder vitfeat can run")
    pooled = pick("pooler_output", 2)
    return EncoderSignature(inp.name, shape, outputs, hidden, pooled)


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
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> CachedModel:
    """Copy a model from a folder or a single ``.onnx`` (plus config files) into the cache, after validating it.

    The source is only read. Every ONNX file is opened with ONNX Runtime and checked (one ``[N,3,H,W]`` float
    input, a hidden-state output, the preprocessor's output size matching a fixed input size) before anything is
    written; the copy is assembled in a hidden folder beside the cache and renamed into place, so a failed or
    cancelled import leaves the cache as it was. ``variant`` ("int8"/"fp32") overrides the guess from the file
    name for a single file. ``force`` replaces a model already cached under the same id.
    """
    from vitfeat_desktop.core.preprocess import Preprocessor

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
        from vitfeat_desktop.core.models.registry import output_mapping

        mapping_hint = output_mapping(model_id)
    signatures = {}
    for v, path in onnx_files.items():
        if cancel is not None and cancel():
            from vitfeat_desktop.core.errors import Cancelled

            raise Cancelled()
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
    try:
        done = 0
        files: dict[str, Any] = {}
        for path, rel in copies:
            dest = staging / rel
            with path.open("rb") as fin, dest.open("wb") as fout:
                digest = hashlib.sha256()
                for block in iter(lambda fin=fin: fin.read(1 << 20), b""):  # type: ignore[misc]
                    if cancel is not None and cancel():
                        from vitfeat_desktop.core.errors import Cancelled

                        raise Cancelled()
                    fout.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total, f"importing {rel}")
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
        from vitfeat_desktop.core.models.download import ModelLock, lock_path

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
