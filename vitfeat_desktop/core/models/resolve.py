"""Turn a ``model=`` value into files on disk: a folder as it is; a hub id from our cache, the Hugging Face cache,
then the hub.

Two entry points because two kinds of caller exist: :func:`find_local` never touches the network (the GUI and a
library being opened must not start a download; the GUI offers it with a size and Cancel instead), and
:func:`resolve_model` downloads what is missing unless told not to (the CLI, ``pipeline()``).
"""

from __future__ import annotations

from pathlib import Path

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ModelNotCachedError
from vitfeat_desktop.core.models.download import download_model
from vitfeat_desktop.core.models.hf_cache import adopt_hf_snapshot, find_hf_snapshot, hf_hub_cache
from vitfeat_desktop.core.models.layout import (
    ModelSpec,
    ResolvedModel,
    check_folder,
    read_manifest,
    resolve_spec,
    revision_matches,
    validate_revision,
    variant_file,
)
from vitfeat_desktop.core.progress import CancelFn, ProgressFn


def find_local(spec: ModelSpec, *, revision: str | None = None,
               cache_dir: str | Path | None = None) -> ResolvedModel | None:
    """The model if its files are on this machine, else None; never touches the network.

    A folder is checked as it is (a broken one is a ``ModelError``). A hub id is looked up in our cache, then in
    the Hugging Face cache (``cache_dir``, else ``HF_HUB_CACHE`` / ``$HF_HOME/hub`` / ``~/.cache/huggingface/hub``),
    where a snapshot that has the files is adopted into our cache (hard links, so no second copy on the same
    disk). ``revision`` (branch, tag or commit) must match what is cached.
    """
    if spec.model_id is None:
        return check_folder(spec.folder, spec.quantized)
    if revision is not None:
        validate_revision(revision)
    if spec.folder.is_dir() and spec.cached and revision_matches(read_manifest(spec.folder), revision):
        return check_folder(spec.folder, spec.quantized, spec.model_id)
    hf_root = Path(cache_dir).expanduser() if cache_dir is not None else hf_hub_cache()
    snapshot = find_hf_snapshot(spec.model_id, spec.quantized, revision, hf_root)
    if snapshot is not None:
        return adopt_hf_snapshot(spec.model_id, snapshot, spec.quantized, revision)
    return None


def resolve_model(
    model: str | Path | None,
    *,
    quantized: bool = True,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> ResolvedModel:
    """Turn a ``model=`` argument (folder, hub id, or None for the default) into files on disk.

    What :func:`find_local` finds, else the hub id is downloaded (``progress``/``cancel`` go to
    :func:`~vitfeat_desktop.core.models.download.download_model`). ``revision`` must match what is cached, else
    the hub is asked; ``local_files_only`` (or offline mode) never downloads. A hub id that cannot be found is an
    error naming the id, the folders we looked in and the command that fetches it.
    """
    spec = resolve_spec(model, quantized)
    found = find_local(spec, revision=revision, cache_dir=cache_dir)
    if found is not None:
        return found
    assert spec.model_id is not None  # find_local answers (or raises) for a folder
    if local_files_only or config.offline():
        hf_root = Path(cache_dir).expanduser() if cache_dir is not None else hf_hub_cache()
        why = ("local_files_only=True" if local_files_only
               else "offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/VITFEAT_OFFLINE)")
        at = f" at revision {revision}" if revision else ""
        raise ModelNotCachedError(
            f"model {spec.model_id}{at} ({variant_file(quantized)}) is neither in the model cache {spec.folder} nor "
            f"in the Hugging Face cache {hf_root}, and {why}; copy the model folder or .onnx file to this machine "
            f"and run: vitfeat model import PATH --id {spec.model_id}"
        )
    download_model(spec.model_id, variants=(spec.variant,), revision=revision, token=token, progress=progress,
                   cancel=cancel)
    return check_folder(spec.folder, quantized, spec.model_id)
