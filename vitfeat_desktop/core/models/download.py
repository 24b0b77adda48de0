"""Download model files from the Hugging Face hub into our own cache: resumable, verified, pinned, cancellable.

Why our own cache layout rather than ``huggingface_hub``'s ``blobs/`` + ``snapshots/`` linked by symlinks (which
on Windows without developer mode silently degrade to copies): one plain folder per model in the hub layout is
also a valid ``model=`` folder, and can be copied to an air-gapped machine and imported back. The HTTP side
(endpoint, token, TLS, redirects, retries) is :mod:`~vitfeat_desktop.core.models.http_client`.

The protocol is the one ``huggingface_hub.file_download`` speaks: ``HEAD {endpoint}/{id}/resolve/{rev}/{file}``
answers ``X-Repo-Commit`` (the commit the revision points at), and for files in LFS (the ONNX weights) a 302 to
a CDN plus ``X-Linked-Size`` and ``X-Linked-Etag`` (the file's sha256); small git files answer 200 with
``ETag`` = the git blob sha1. Relative redirects are a renamed repo on the same host. After resolving the commit
we fetch every file at that commit, so a model is never assembled from two different commits, and we record
the commit in the manifest so the cached model is pinned. Every file goes through ``name.part`` (resumed with a
``Range`` request next time), is checked against the announced size and checksum, graphs are opened with ONNX
Runtime, and only then renamed into place. Byte progress over the whole model goes through the core's
:class:`~vitfeat_desktop.core.progress.Reporter` (phase ``"download"``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import Cancelled, DownloadError, ModelError, ModelNotCachedError, short_reason
from vitfeat_desktop.core.fileio import feed_digest, sha256_file
from vitfeat_desktop.core.models import registry
from vitfeat_desktop.core.models.encoder import inspect_encoder
from vitfeat_desktop.core.models.http_client import (
    HubClient,
    Retryable,
    RetryPolicy,
    cancel_watch,
    download_timeout,
    error_for_status,
    hub_endpoint,
    hub_token,
    normalize_etag,
    resolve_url,
    with_retries,
)
from vitfeat_desktop.core.models.layout import (
    HEX40,
    MANIFEST_NAME,
    cache_folder,
    cached_variants,
    lock_path,
    read_manifest,
    validate_filename,
    validate_model_id,
    validate_revision,
)
from vitfeat_desktop.core.models.lock import ModelLock
from vitfeat_desktop.core.progress import CancelFn, ProgressFn, Reporter, check_cancel

if TYPE_CHECKING:
    from hashlib import _Hash

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
PHASE = "download"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file: what the hub sends as ETag for small (non-LFS) files."""
    size = path.stat().st_size
    digest = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as fh:
        feed_digest(digest, fh)
    return digest.hexdigest()


def _disk_free(path: Path) -> int:
    """Free bytes where ``path`` lives (a function so tests can pretend the disk is full)."""
    return shutil.disk_usage(path).free


def _open_part(path: Path, mode: Literal["ab", "wb"]) -> BinaryIO:
    """Open a part file (a function so tests can simulate a disk that fills up half-way)."""
    return path.open(mode)


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1_000_000:.1f} MB"


@dataclass
class RemoteFile:
    """What the hub announced about one file at one commit."""

    model_id: str
    revision: str
    local: str
    remote: str
    url: str  # the resolve URL at the pinned commit
    size: int | None
    etag: str | None
    commit: str | None
    lfs: bool

    @property
    def sha256(self) -> str | None:
        return self.etag if self.etag and _HEX64.match(self.etag) else None

    @property
    def git_sha1(self) -> str | None:
        return self.etag if self.etag and not self.lfs and HEX40.match(self.etag) else None


@dataclass
class DownloadResult:
    """What :func:`download_model` did: the folder, the pinned commit, and the files it fetched this time."""

    model_id: str
    folder: Path
    commit: str | None
    revision: str
    fetched: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    already_cached: bool = False


@dataclass
class _PartDigest:
    """The sha256 of a part file's first ``upto`` bytes (-1: none yet), kept while streaming."""

    digest: _Hash = field(default_factory=hashlib.sha256)
    upto: int = -1


# -- the work -----------------------------------------------------------------------------------------------------

def _head(
    client: HubClient, model_id: str, revision: str, local: str, remote: str, opts: RetryPolicy
) -> RemoteFile:
    url = resolve_url(client.endpoint, model_id, revision, remote)

    def once() -> RemoteFile:
        resp = client.request("HEAD", url, follow="same-host")
        try:
            if resp.status >= 500:
                raise Retryable(f"HTTP {resp.status}", "server")
            if resp.status >= 400:
                raise error_for_status(resp, model_id, remote, revision)
            linked_size = resp.header("X-Linked-Size")
            lfs = linked_size is not None or resp.header("X-Linked-Etag") is not None
            size_text = linked_size if linked_size is not None else (
                resp.header("Content-Length") if resp.status < 300 else None)
            try:
                size = int(size_text) if size_text is not None else None
            except ValueError:
                size = None
            etag = normalize_etag(resp.header("X-Linked-Etag") or resp.header("ETag"))
            commit = resp.header("X-Repo-Commit")
            if commit is not None and not HEX40.match(commit.strip().lower()):
                commit = None
            return RemoteFile(model_id=model_id, revision=revision, local=local, remote=remote, url=url, size=size,
                              etag=etag, commit=commit.strip().lower() if commit else None, lfs=lfs)
        finally:
            resp.close()

    return with_retries(opts, f"{model_id}/{remote}", client.endpoint, once)


def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


def _writable_error(path: Path, exc: OSError) -> DownloadError:
    if exc.errno == errno.ENOSPC:
        return DownloadError(
            f"the disk is full while writing {path}: free some space (the partial download is kept and resumes)"
        )
    return DownloadError(
        f"cannot write to the model cache {config.models_dir()} ({exc.strerror or exc}); it is read-only or not "
        "yours: set VITFEAT_HOME to a writable folder"
    )


def _fetch(client: HubClient, rf: RemoteFile, dest: Path, reporter: Reporter, base: int, label: str,
           opts: RetryPolicy) -> int:
    """Fetch one file to ``dest`` via ``dest.part`` (resuming what is there), verify it, rename it into place.

    Reports ``base`` (the bytes of the files before this one) plus this file's bytes, as ``label``. Returns the
    number of bytes transferred this time.
    """
    part, meta = _part_paths(dest)
    identity = {"etag": rf.etag, "size": rf.size, "commit": rf.commit, "remote": rf.remote}
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if part.exists():
            try:
                previous = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                previous = None
            if previous != identity or (rf.size is not None and part.stat().st_size > rf.size):
                log.info("discarding %s: it belongs to another version of the file", part)
                part.unlink()
        if not part.exists():
            meta.write_text(json.dumps(identity), encoding="utf-8")
    except OSError as exc:
        raise _writable_error(dest, exc) from exc
    transferred = 0
    # sha256 of the part file's bytes so far, kept while streaming so a clean download needs no second pass
    # over the file; after a resume it is rebuilt from the bytes already on disk.
    hashed = _PartDigest()

    def once() -> None:
        nonlocal transferred
        offset = part.stat().st_size if part.exists() else 0
        if rf.size is not None and offset == rf.size:
            return
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = client.request("GET", rf.url, headers, follow="all")
        try:
            if resp.status >= 500:
                raise Retryable(f"HTTP {resp.status}", "server")
            if resp.status == 416:  # our part is at or past the end: start over
                part.unlink(missing_ok=True)
                raise Retryable("HTTP 416 (range not satisfiable)")
            if resp.status in (401, 403) and not client.same_origin(resp.url):
                # A CDN link expires; the next attempt asks the hub for a fresh one.
                raise Retryable(f"the download server refused the link (HTTP {resp.status})")
            if resp.status >= 400:
                raise error_for_status(resp, rf.model_id, rf.remote, rf.revision)
            mode: Literal["ab", "wb"] = "ab"
            if resp.status == 206:
                content_range = resp.header("Content-Range") or ""
                match = re.match(r"bytes (\d+)-", content_range)
                if not match or int(match.group(1)) != offset:
                    raise Retryable(f"server resumed at the wrong offset ({content_range!r})")
            else:
                mode, offset = "wb", 0  # server ignored our Range: take the whole file again
            position = offset
            if hashed.upto != offset:
                digest = hashlib.sha256()
                if offset:
                    with part.open("rb") as existing:
                        feed_digest(digest, existing)
                hashed.digest, hashed.upto = digest, offset
            reporter.update(base + position, label, force=True)
            # Never more than announced: a server that keeps sending would otherwise fill the disk.
            limit = rf.size
            if limit is None:
                length = resp.header("Content-Length")
                limit = offset + int(length) if length and length.isdigit() else None
            with cancel_watch(resp, opts.cancel):
                try:
                    fh = _open_part(part, mode)
                except OSError as exc:
                    raise _writable_error(dest, exc) from exc
                with fh:
                    while True:
                        check_cancel(opts.cancel)
                        try:
                            block = resp.raw.read1(CHUNK_SIZE)
                        except (OSError, http.client.HTTPException) as exc:
                            if opts.cancel is not None and opts.cancel():
                                raise Cancelled() from None
                            raise Retryable(f"connection broke off after {_mb(position)}: {short_reason(exc)}") from exc
                        if not block:
                            break
                        if limit is not None and position + len(block) > limit:
                            fh.close()
                            _discard(part, meta)
                            raise DownloadError(f"{rf.remote}: the server sent more than the announced "
                                                f"{_mb(limit)}; stopped there and deleted the partial download")
                        try:
                            fh.write(block)
                        except OSError as exc:
                            raise _writable_error(dest, exc) from exc
                        hashed.digest.update(block)
                        position += len(block)
                        hashed.upto = position
                        transferred += len(block)
                        reporter.update(base + position, label)
            check_cancel(opts.cancel)
            expected = rf.size
            if expected is None:
                length = resp.header("Content-Length")
                expected = offset + int(length) if length and length.isdigit() else None
            if expected is not None and position < expected:
                raise Retryable(f"connection dropped after {_mb(position)} of {_mb(expected)}")
        finally:
            resp.close()

    with_retries(opts, f"{rf.remote}", client.endpoint, once)
    size_now = part.stat().st_size if part.exists() else None
    streamed = hashed.digest.hexdigest() if hashed.upto == size_now else None
    _verify(rf, part, meta, opts, streamed)
    if dest.suffix == ".onnx":
        _check_onnx(rf, part, meta)
    try:
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
    except OSError as exc:
        raise _writable_error(dest, exc) from exc
    return transferred


def _verify(rf: RemoteFile, part: Path, meta: Path, opts: RetryPolicy, streamed_sha256: str | None = None) -> None:
    """Size, then sha256 (LFS files) or the git blob sha1 (small files) against what the hub announced."""
    size = part.stat().st_size
    problem = None
    if rf.size is None or (rf.sha256 is None and rf.git_sha1 is None):
        # Nothing to check it against (a redirect to a plain file server, say): never installed unverified.
        problem = "the server announced no size and checksum for it"
    elif size != rf.size:
        problem = f"size {size} bytes instead of {rf.size}"
    elif rf.sha256 is not None:
        got = streamed_sha256 or sha256_file(part, cancel=opts.cancel)
        if got != rf.sha256:
            problem = f"sha256 {got[:12]}… instead of {rf.sha256[:12]}…"
    elif rf.git_sha1 is not None:
        got = git_blob_sha1(part)
        if got != rf.git_sha1:
            problem = f"git sha1 {got[:12]}… instead of {rf.git_sha1[:12]}…"
    if problem:
        with contextlib.suppress(OSError):
            part.unlink()
        with contextlib.suppress(OSError):
            meta.unlink()
        raise DownloadError(
            f"{rf.remote} failed verification ({problem}); the corrupted download was deleted, run the download again"
        )


def _discard(part: Path, meta: Path) -> None:
    """Delete our own partial download (never anything else: both names are derived from the destination)."""
    with contextlib.suppress(OSError):
        part.unlink()
    with contextlib.suppress(OSError):
        meta.unlink()


def _check_onnx(rf: RemoteFile, part: Path, meta: Path) -> None:
    """Open a downloaded graph with ONNX Runtime before it is put in place: a file that is not an image encoder
    (a 7-byte error page served with a matching checksum) must never be listed as a usable model."""
    try:
        inspect_encoder(part, registry.output_mapping(rf.model_id) or None)
    except ModelError as exc:
        _discard(part, meta)
        reason = str(exc).replace(str(part), rf.remote)
        raise DownloadError(f"{rf.remote} is not a usable model ({reason}); it was not installed") from exc


def download_model(
    model_id: str,
    *,
    variants: Sequence[str] = ("int8",),
    revision: str | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float | None = None,
    lock_timeout: float | None = None,
) -> DownloadResult:
    """Fetch the configs and the requested ONNX variants of ``model_id`` into ``cache_folder(model_id)``.

    ``variants``: any of "int8" (``onnx/model_quantized.onnx``) and "fp32" (``onnx/model.onnx``).
    ``revision``: branch, tag or commit (default: the commit the cache is pinned to, else "main").
    Files already in the cache are not fetched again unless ``force`` or a different ``revision`` is asked.
    ``progress`` gets a :class:`~vitfeat_desktop.core.progress.Progress` (phase ``"download"``, bytes of the
    whole model, message ``"{model_id}: {file}"``) at most ~10 times a second; ``cancel()`` is polled and stops
    the transfer within ~0.1 s, leaving a ``.part`` file the next call resumes.
    ``backoff`` is the first retry delay in seconds (doubling); tests pass a tiny value. ``timeout`` (seconds a
    socket may stay silent) defaults to ``$HF_HUB_DOWNLOAD_TIMEOUT`` or 30; ``token`` to :func:`hub_token`.
    """
    validate_model_id(model_id)
    timeout = timeout if timeout is not None and timeout > 0 else download_timeout()
    if revision is not None:
        validate_revision(revision)
    plan_names: list[tuple[str, str]] = []
    for variant in dict.fromkeys(variants):
        for local, remote in registry.files_for(model_id, variant):
            validate_filename(local)
            validate_filename(remote)
            if (local, remote) not in plan_names:
                plan_names.append((local, remote))
    if not plan_names:
        raise ModelError("nothing to download: no model variant was asked for")
    folder = cache_folder(model_id)
    if config.offline():
        raise ModelNotCachedError(
            f"offline mode is on (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE/VITFEAT_OFFLINE), so model {model_id} cannot "
            "be downloaded; "
            f"import it from a folder or .onnx file with: vitfeat model import PATH --id {model_id}"
        )
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    opts = RetryPolicy(retries=max(0, retries), backoff=max(0.0, backoff), cancel=cancel)
    try:
        config.models_dir().mkdir(parents=True, exist_ok=True)
        lock = ModelLock(lock_path(model_id))
        reporter = Reporter(progress, PHASE)
        lock.acquire(timeout=lock_timeout, cancel=cancel, on_wait=lambda: reporter.update(
            0, f"waiting for another download of {model_id}", force=True))
    except OSError as exc:
        raise _writable_error(config.models_dir(), exc) from exc
    with lock:
        return _download_locked(model_id, folder, plan_names, revision, force, endpoint, token, timeout,
                                opts, reporter)


def _download_locked(
    model_id: str,
    folder: Path,
    plan_names: list[tuple[str, str]],
    revision: str | None,
    force: bool,
    endpoint: str,
    token: str | None,
    timeout: float,
    opts: RetryPolicy,
    reporter: Reporter,
) -> DownloadResult:
    manifest = read_manifest(folder)
    pinned = manifest.get("commit") if isinstance(manifest.get("commit"), str) else None
    pinned = pinned if pinned and HEX40.match(pinned) else None
    asked = revision
    client = HubClient(endpoint, token if token is not None else hub_token(), timeout=timeout)
    moved = False  # the asked revision points at another commit than the cached one
    if asked is None or asked == pinned:
        revision = pinned or "main"
    else:
        # An explicit revision (e.g. "main" to update) is resolved to its commit first: if that is the cached
        # commit nothing needs fetching; if not, every cached file is refreshed so the folder never mixes commits.
        probe = _head(client, model_id, asked, *plan_names[0], opts)
        moved = pinned is not None and probe.commit != pinned
        revision = asked
        if moved:
            for variant in cached_variants(folder):
                for pair in registry.files_for(model_id, variant):
                    if pair not in plan_names:
                        plan_names.append(pair)
    needed = [(lo, re_) for lo, re_ in plan_names if force or moved or not (folder / lo).is_file()]
    if not needed:
        return DownloadResult(model_id, folder, pinned, asked or manifest.get("revision") or revision,
                              already_cached=True)

    # Resolve the revision to a commit with the first HEAD, then ask for every file at that commit.
    first = _head(client, model_id, revision, *needed[0], opts)
    commit = first.commit
    at = commit or revision
    remotes = [first] + [_head(client, model_id, at, lo, re_, opts) for lo, re_ in needed[1:]]
    if commit:
        for rf in remotes:
            rf.url = resolve_url(endpoint, model_id, commit, rf.remote)

    sizes = [rf.size for rf in remotes]
    total = sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None
    already = 0
    for rf in remotes:
        part, _ = _part_paths(folder / rf.local)
        with contextlib.suppress(OSError):
            already += part.stat().st_size
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = _disk_free(folder)
    except OSError as exc:
        raise _writable_error(folder, exc) from exc
    if total is not None and total - already > free:
        raise DownloadError(
            f"not enough disk space for {model_id}: it needs {_mb(total - already)} in {folder} but only "
            f"{_mb(free)} are free"
        )

    reporter.restart(PHASE, total)
    result = DownloadResult(model_id, folder, commit, asked or manifest.get("revision") or revision)
    reporter.update(0, f"{model_id}: {remotes[0].local}", force=True)
    records: dict[str, Any] = {}
    done_files = 0  # bytes of the files already in place: progress counts the whole model
    for rf in remotes:
        dest = folder / rf.local
        result.bytes_fetched += _fetch(client, rf, dest, reporter, done_files, f"{model_id}: {rf.local}", opts)
        result.fetched.append(rf.local)
        size = dest.stat().st_size
        records[rf.local] = {
            "remote": rf.remote,
            "size": size,
            "sha256": rf.sha256 or sha256_file(dest, cancel=opts.cancel),
            "etag": rf.etag,
            "lfs": rf.lfs,
        }
        done_files += size
        reporter.update(done_files, f"{model_id}: {rf.local} done", force=True)

    _write_manifest(folder, model_id, manifest, records, commit, result.revision, not moved)
    return result


def _write_manifest(
    folder: Path,
    model_id: str,
    previous: dict[str, Any],
    records: dict[str, Any],
    commit: str | None,
    revision: str,
    keep_previous: bool,
) -> None:
    """Merge the new file records into ``vitfeat-model.json`` (atomically)."""
    files: dict[str, Any] = dict(previous.get("files") or {}) if keep_previous else {}
    files.update(records)
    # Drop records of files that are gone (e.g. removed by hand), so the manifest never vouches for them.
    for rel in list(files):
        if not (folder / rel).is_file():
            files.pop(rel)
    manifest = dict(previous) if keep_previous else {}
    manifest.update({
        "model_id": model_id,
        "source": "hub",
        "revision": revision,
        "commit": commit,
        "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    })
    mapping = registry.output_mapping(model_id)
    if mapping:
        manifest["outputs"] = mapping
    else:
        manifest.pop("outputs", None)
    try:
        config.write_json_atomic(folder / MANIFEST_NAME, manifest)
    except OSError as exc:
        raise _writable_error(folder, exc) from exc
