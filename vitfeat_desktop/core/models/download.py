"""Download model files from the Hugging Face hub into our own cache: resumable, verified, cancellable, locked.

Why our own small client on the standard library (``http.client``) rather than ``huggingface_hub``:

* ``huggingface_hub`` keeps a ``blobs/`` + ``snapshots/`` cache linked by symlinks, which on Windows without
  developer mode silently degrades to copies; we want one plain folder per model in the hub layout (so a cached
  model is also a valid ``model=`` folder, can be copied to an air-gapped machine, and imported back).
* it pulls ``requests``/``httpx``, ``filelock``, ``fsspec``, ``tqdm``, ``pyyaml`` into a desktop bundle that needs
  none of them for four files;
* we need two things it does not expose: a cancel callback that stops a stalled transfer within a second (we
  shut the socket down from a watcher thread), and byte progress in our own ``progress(done, total, message)``
  shape for the GUI.

The protocol is the one ``huggingface_hub.file_download`` speaks: ``HEAD {endpoint}/{id}/resolve/{rev}/{file}``
answers ``X-Repo-Commit`` (the commit the revision points at), and for files in LFS (the ONNX weights) a 302 to
a CDN plus ``X-Linked-Size`` and ``X-Linked-Etag`` (the file's sha256); small git files answer 200 with
``ETag`` = the git blob sha1. Relative redirects are a renamed repo on the same host. After resolving the commit
we fetch every file at that commit, so a model is never assembled from two different commits, and we record
the commit in the manifest so the cached model is pinned.

``Authorization: Bearer $HF_TOKEN`` goes only to the endpoint's own scheme+host+port, never to the CDN or any
other host a redirect names (S3-style CDNs refuse two auth mechanisms anyway, and the token must not leak).
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
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path
from typing import Any

from vitfeat_desktop import __version__, config
from vitfeat_desktop.core.errors import Cancelled, ModelError, ModelNotCachedError
from vitfeat_desktop.core.models import cache as hub
from vitfeat_desktop.core.models import registry
from vitfeat_desktop.core.models.cache import (
    MANIFEST_NAME,
    CancelCallback,
    ProgressCallback,
    cache_folder,
    read_manifest,
    validate_model_id,
)

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK_SIZE = 1024 * 1024
MAX_REDIRECTS = 10
PROGRESS_INTERVAL = 0.1
CANCEL_POLL = 0.1

# A revision is a branch, tag, or commit sha: "main", "v1.0", "refs/pr/3", 40 hex digits. Slashes are allowed
# (they are quoted into one URL segment, as huggingface_hub does) but no "..", no leading "/" and no odd characters.
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_FILE_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(ModelNotCachedError):
    """A model could not be fetched; the message is one line that says why and what to do.

    It is a :class:`ModelNotCachedError` so callers that handle "this model is not available here" handle a
    failed download the same way.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Retryable(Exception):
    """Internal: a transient failure (5xx, dropped connection) worth another attempt after a backoff.

    ``kind`` picks the final message once the retries are spent: "network" (never got an answer), "server"
    (5xx) or "transfer" (the answer broke off or was inconsistent).
    """

    def __init__(self, message: str, kind: str = "transfer") -> None:
        super().__init__(message)
        self.kind = kind


# -- small helpers ------------------------------------------------------------------------------------------------

def hub_endpoint() -> str:
    """``$HF_ENDPOINT`` (mirrors, tests) or the public hub, without a trailing slash."""
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(f"HF_ENDPOINT={endpoint!r} is not an http(s) URL")
    return endpoint


def hub_token() -> str | None:
    """The user's hub token for gated/private repos, found where huggingface_hub looks.

    ``HF_TOKEN`` (or the older ``HUGGING_FACE_HUB_TOKEN``), else the file ``hf auth login`` /
    ``huggingface-cli login`` saved: ``$HF_TOKEN_PATH``, default ``$HF_HOME/token`` (``~/.cache/huggingface/token``).
    """
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    token_path = os.environ.get("HF_TOKEN_PATH", "").strip()
    path = Path(token_path).expanduser() if token_path else hub.hf_home() / "token"
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return None
    return value or None


def download_timeout(default: float = 30.0) -> float:
    """Socket timeout in seconds: ``$HF_HUB_DOWNLOAD_TIMEOUT`` (huggingface_hub's variable) or ``default``."""
    value = os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        log.warning("ignoring HF_HUB_DOWNLOAD_TIMEOUT=%r: not a number of seconds", value)
        return default
    return seconds if seconds > 0 else default


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


def resolve_url(endpoint: str, model_id: str, revision: str, filename: str) -> str:
    quoted_rev = urllib.parse.quote(revision, safe="")
    quoted_file = urllib.parse.quote(filename, safe="/")
    return f"{endpoint}/{model_id}/resolve/{quoted_rev}/{quoted_file}"


def normalize_etag(value: str | None) -> str | None:
    """``W/"abc"`` / ``"abc"`` -> ``abc`` (the hub quotes ETags; proxies may weaken them)."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').strip().lower() or None


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file: what the hub sends as ETag for small (non-LFS) files."""
    size = path.stat().st_size
    digest = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path, cancel: CancelCallback | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            if cancel is not None and cancel():
                raise Cancelled()
    return digest.hexdigest()


def _disk_free(path: Path) -> int:
    """Free bytes where ``path`` lives (a function so tests can pretend the disk is full)."""
    return shutil.disk_usage(path).free


def _open_part(path: Path, mode: str) -> Any:
    """Open a part file (a function so tests can simulate a disk that fills up half-way)."""
    return path.open(mode)


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1_000_000:.1f} MB"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    text = str(exc).strip()
    return " ".join(text.split()) or type(exc).__name__


# -- the lock -----------------------------------------------------------------------------------------------------

class ModelLock:
    """An OS file lock (``flock``/``msvcrt.locking``) so two processes never download the same model at once.

    An OS lock, not a marker file, because the OS drops it when a process dies: a crashed download can never
    leave a stale lock that blocks the next one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows CI only
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if sys.platform == "win32" or exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                fh.close()
                return False
            # The file system cannot lock (some network shares): go on unlocked rather than wait forever.
            log.warning("cannot lock %s (%s); continuing without a download lock", self.path, exc)
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
        self._fh = fh
        return True

    def acquire(
        self,
        *,
        timeout: float | None = None,
        cancel: CancelCallback | None = None,
        on_wait: Any = None,
    ) -> None:
        """Wait for the lock (checking ``cancel``); ``timeout`` None waits as long as the other download runs."""
        start = time.monotonic()
        waited = False
        while not self.try_acquire():
            if cancel is not None and cancel():
                raise Cancelled()
            if timeout is not None and time.monotonic() - start >= timeout:
                raise DownloadError(
                    f"another vitfeat process is downloading this model (lock {self.path}); wait for it to finish"
                )
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(0.1)

    def release(self) -> None:
        if self._fh is None:
            return
        try:
            if sys.platform == "win32":  # pragma: no cover
                import msvcrt

                self._fh.seek(0)
                with contextlib.suppress(OSError):
                    msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                with contextlib.suppress(OSError):
                    fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ModelLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_path(model_id: str) -> Path:
    """Locks live beside the model folders (not inside), so removing a model never removes a held lock."""
    return config.models_dir() / ".locks" / f"{model_id.replace('/', '--')}.lock"


# -- HTTP ---------------------------------------------------------------------------------------------------------

@dataclass
class _Response:
    url: str
    status: int
    headers: Message
    raw: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    # kept apart because http.client drops ``conn.sock`` as soon as a response will close the connection
    sock: socket.socket | None = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()
        with contextlib.suppress(Exception):
            self.conn.close()

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class HubClient:
    """A minimal HTTP client for the hub's ``resolve`` endpoint: manual redirects, token only to the endpoint."""

    def __init__(self, endpoint: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        parts = urllib.parse.urlsplit(self.endpoint)
        self._origin = (parts.scheme, parts.netloc.lower())
        self.token = token
        self.timeout = timeout
        self.user_agent = f"vitfeat-desktop/{__version__}; python/{sys.version_info[0]}.{sys.version_info[1]}"

    def same_origin(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        return (parts.scheme, parts.netloc.lower()) == self._origin

    def _connect(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        """A connection for ``url`` (through the environment's proxy if one applies) and the request target."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DownloadError(f"refusing to follow a redirect to {parts.scheme or '?'}:// URL")
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname):
            pp = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            proxy_headers = {}
            if pp.username:
                import base64

                cred = f"{urllib.parse.unquote(pp.username)}:{urllib.parse.unquote(pp.password or '')}"
                proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
            pport = pp.port or 8080
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    pp.hostname or "", pport, timeout=self.timeout, context=_tls_context()
                )
                conn.set_tunnel(parts.hostname, port, headers=proxy_headers)
            else:
                conn = http.client.HTTPConnection(pp.hostname or "", pport, timeout=self.timeout)
                target = url  # plain-http proxies take the absolute URL
            return conn, target
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, port, timeout=self.timeout,
                                               context=_tls_context()), target
        return http.client.HTTPConnection(parts.hostname, port, timeout=self.timeout), target

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        follow: str = "all",
    ) -> _Response:
        """Send ``method`` to ``url`` and follow redirects: ``follow`` is "all", "same-host" or "none".

        "same-host" is what a HEAD wants: follow a renamed repo's relative redirect but stop at the CDN redirect,
        whose response carries the ``X-Linked-*`` headers we need.
        """
        for _ in range(MAX_REDIRECTS + 1):
            send = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
            send.update(headers or {})
            if self.token and self.same_origin(url):
                send["Authorization"] = f"Bearer {self.token}"
            conn, target = self._connect(url)
            try:
                conn.request(method, target, headers=send)
                sock = conn.sock
                raw = conn.getresponse()
            except BaseException:
                conn.close()
                raise
            response = _Response(url=url, status=raw.status, headers=raw.msg, raw=raw, conn=conn, sock=sock)
            location = raw.getheader("Location")
            if raw.status in (301, 302, 303, 307, 308) and location and follow != "none":
                next_url = urllib.parse.urljoin(url, location)
                if follow == "same-host" and not self.same_origin(next_url):
                    return response
                response.close()
                url = next_url
                if raw.status == 303:
                    method = "GET" if method != "HEAD" else "HEAD"
                continue
            return response
        raise DownloadError(f"too many redirects fetching {url}")


_TLS: ssl.SSLContext | None = None
_TLS_SOURCES: list[str] = []


def _tls_context() -> ssl.SSLContext:
    """A verifying context with the system's trust store plus certifi's CA bundle (a dependency, bundled).

    Why both: a frozen macOS app (and python.org builds) has no CA file OpenSSL can find, so without certifi the
    first download fails with CERTIFICATE_VERIFY_FAILED; the system store (Windows' certificate store, the
    distribution's bundle on Linux, ``SSL_CERT_FILE``/``SSL_CERT_DIR``) keeps corporate and self-added roots
    working. The self-test checks that the result holds CA certificates.
    """
    global _TLS
    if _TLS is None:
        context = ssl.create_default_context()
        sources = []
        if context.cert_store_stats().get("x509_ca"):
            sources.append("system")
        try:
            import certifi

            context.load_verify_locations(certifi.where())
            sources.append(f"certifi {getattr(certifi, '__version__', '?')}")
        except (ImportError, OSError) as exc:
            log.warning("certifi's CA bundle is not available (%s); using the system trust store only", exc)
        _TLS_SOURCES[:] = sources
        _TLS = context
    return _TLS


def tls_trust() -> tuple[int, list[str]]:
    """(number of CA certificates loaded, where they came from) of the context downloads use; for the self-test.

    Linux's hashed ``/etc/ssl/certs`` directory is read lazily by OpenSSL and not counted, so the count is of
    certifi's bundle and the CA files loaded eagerly.
    """
    context = _tls_context()
    return int(context.cert_store_stats().get("x509_ca", 0)), list(_TLS_SOURCES)


@contextlib.contextmanager
def _cancel_watch(response: _Response, cancel: CancelCallback | None) -> Iterator[None]:
    """Shut the socket down from a helper thread as soon as ``cancel()`` is true.

    Checking ``cancel`` between chunks is not enough: a stalled server leaves ``read()`` blocked until the socket
    timeout (tens of seconds). Shutting the socket makes that ``read()`` return at once.
    """
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(CANCEL_POLL):
            try:
                stop = cancel()
            except Exception:  # a broken callback must not kill the download thread silently
                stop = False
            if stop:
                sock = response.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    thread = threading.Thread(target=watch, name="vitfeat-download-cancel", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=1.0)


# -- planning -----------------------------------------------------------------------------------------------------

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
        return self.etag if self.etag and not self.lfs and _HEX40.match(self.etag) else None


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


class _Progress:
    """Aggregates bytes over all files of a model and throttles calls to the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, total: int | None, prefix: str = "") -> None:
        self.callback = callback
        self.prefix = prefix
        self.total = total
        self.done_files = 0
        self.current = 0
        self._last = 0.0

    def update(self, current: int, message: str, *, force: bool = False) -> None:
        self.current = current
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        self.callback(self.done_files + current, self.total, f"{self.prefix}{message}")

    def file_done(self, size: int) -> None:
        self.done_files += size
        self.current = 0


# -- the work -----------------------------------------------------------------------------------------------------

@dataclass
class _Options:
    retries: int
    backoff: float
    cancel: CancelCallback | None


def _error_for_status(resp: _Response, model_id: str, filename: str, revision: str) -> DownloadError:
    """A one-line, actionable message for a hub error status (uses the hub's ``X-Error-Code`` when present)."""
    code = (resp.header("X-Error-Code") or "").strip()
    status = resp.status
    token_set = hub_token() is not None
    if code == "GatedRepo":
        return DownloadError(
            f"model {model_id} is gated: accept its terms on its hub page, then set HF_TOKEN to a token of that "
            f"account (HTTP {status})", status=status)
    if code == "RepositoryNotFound" or (status == 401 and not token_set and code == ""):
        hint = "check the id" if token_set else "check the id; if it is private or gated, set HF_TOKEN"
        what = "was not found on the hub or is private" if code == "RepositoryNotFound" else "needs authentication"
        return DownloadError(f"model {model_id} {what} (HTTP {status}): {hint}", status=status)
    if code == "RevisionNotFound":
        return DownloadError(f"model {model_id} has no revision {revision!r} (HTTP {status})", status=status)
    if code == "EntryNotFound" or status == 404:
        return DownloadError(
            f"model {model_id} has no file {filename} at revision {revision!r} (HTTP {status}): the id is wrong "
            "or that variant is not published (try --fp32 or the other variant)", status=status)
    if status == 401:
        return DownloadError(
            f"the hub refused the token in HF_TOKEN for model {model_id} (HTTP 401): check that it is valid",
            status=status)
    if status == 403:
        return DownloadError(
            f"access to model {model_id} is forbidden (HTTP 403): it is gated or private; accept its terms on the hub "
            "and set HF_TOKEN to a token with read access", status=status)
    return DownloadError(f"the hub answered HTTP {status} for {model_id}/{filename}", status=status)


def _with_retries(opts: _Options, what: str, endpoint: str, func: Any) -> Any:
    """Run ``func()``; on a transient failure back off (``backoff * 2**n``) and try again, ``retries`` times."""
    attempt = 0
    while True:
        if opts.cancel is not None and opts.cancel():
            raise Cancelled()
        try:
            return func()
        except _Retryable as exc:
            last = exc
        except ssl.SSLCertVerificationError as exc:  # retrying will not help; a TLS-inspecting proxy is likely
            raise DownloadError(
                f"the TLS certificate of the model hub could not be verified ({exc.verify_message or exc}); behind "
                "a proxy that inspects HTTPS, set SSL_CERT_FILE to its CA bundle"
            ) from exc
        except (ConnectionRefusedError, socket.gaierror, TimeoutError) as exc:
            last = _Retryable(_reason(exc), "network")
        except (ConnectionError, http.client.HTTPException) as exc:
            last = _Retryable(_reason(exc), "transfer")
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM) or isinstance(
                exc, PermissionError
            ):
                raise
            last = _Retryable(_reason(exc), "network")
        if opts.cancel is not None and opts.cancel():
            raise Cancelled()
        attempt += 1
        # Never reaching the host (no DNS, refused) is rarely fixed by waiting: give up after one retry so an
        # offline user hears it in a second, not after the whole backoff ladder.
        allowed = min(opts.retries, 1) if last.kind == "network" else opts.retries
        if attempt > allowed:
            tries = f"{allowed + 1} attempt{'s' if allowed else ''}"
            if last.kind == "server":
                raise DownloadError(f"the hub kept failing for {what} ({last} after {tries}); try again later")
            if last.kind == "network":
                raise DownloadError(
                    f"cannot reach the model hub at {endpoint} for {what} ({last}); check the network connection, "
                    "or import the model on this machine with: vitfeat model import PATH"
                )
            raise DownloadError(
                f"downloading {what} failed ({last}) after {tries}; run it again to resume where it stopped"
            )
        delay = opts.backoff * (2 ** (attempt - 1))
        log.info("retrying %s in %.2fs after: %s", what, delay, last)
        end = time.monotonic() + delay
        while time.monotonic() < end:  # sleep in slices so cancel stays responsive during backoff
            if opts.cancel is not None and opts.cancel():
                raise Cancelled()
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def _head(
    client: HubClient, model_id: str, revision: str, local: str, remote: str, opts: _Options
) -> RemoteFile:
    url = resolve_url(client.endpoint, model_id, revision, remote)

    def once() -> RemoteFile:
        resp = client.request("HEAD", url, follow="same-host")
        try:
            if resp.status >= 500:
                raise _Retryable(f"HTTP {resp.status}", "server")
            if resp.status >= 400:
                raise _error_for_status(resp, model_id, remote, revision)
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
            if commit is not None and not _HEX40.match(commit.strip().lower()):
                commit = None
            return RemoteFile(model_id=model_id, revision=revision, local=local, remote=remote, url=url, size=size,
                              etag=etag, commit=commit.strip().lower() if commit else None, lfs=lfs)
        finally:
            resp.close()

    return _with_retries(opts, f"{model_id}/{remote}", client.endpoint, once)


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


def _fetch(client: HubClient, rf: RemoteFile, dest: Path, prog: _Progress, opts: _Options) -> int:
    """Fetch one file to ``dest`` via ``dest.part`` (resuming what is there), verify it, rename it into place.

    Returns the number of bytes transferred this time.
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
    hashed: dict[str, Any] = {"digest": None, "upto": -1}

    def once() -> None:
        nonlocal transferred
        offset = part.stat().st_size if part.exists() else 0
        if rf.size is not None and offset == rf.size:
            return
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = client.request("GET", rf.url, headers, follow="all")
        try:
            if resp.status >= 500:
                raise _Retryable(f"HTTP {resp.status}", "server")
            if resp.status == 416:  # our part is at or past the end: start over
                part.unlink(missing_ok=True)
                raise _Retryable("HTTP 416 (range not satisfiable)")
            if resp.status in (401, 403) and not client.same_origin(resp.url):
                # A CDN link expires; the next attempt asks the hub for a fresh one.
                raise _Retryable(f"the download server refused the link (HTTP {resp.status})")
            if resp.status >= 400:
                raise _error_for_status(resp, rf.model_id, rf.remote, rf.revision)
            mode = "ab"
            if resp.status == 206:
                content_range = resp.header("Content-Range") or ""
                match = re.match(r"bytes (\d+)-", content_range)
                if not match or int(match.group(1)) != offset:
                    raise _Retryable(f"server resumed at the wrong offset ({content_range!r})")
            else:
                mode, offset = "wb", 0  # server ignored our Range: take the whole file again
            position = offset
            if hashed["upto"] != offset:
                digest = hashlib.sha256()
                if offset:
                    with part.open("rb") as existing:
                        for block in iter(lambda: existing.read(1 << 20), b""):
                            digest.update(block)
                hashed["digest"], hashed["upto"] = digest, offset
            prog.update(position, rf.local, force=True)
            # Never more than announced: a server that keeps sending would otherwise fill the disk.
            limit = rf.size
            if limit is None:
                length = resp.header("Content-Length")
                limit = offset + int(length) if length and length.isdigit() else None
            with _cancel_watch(resp, opts.cancel):
                try:
                    fh = _open_part(part, mode)
                except OSError as exc:
                    raise _writable_error(dest, exc) from exc
                with fh:
                    while True:
                        if opts.cancel is not None and opts.cancel():
                            raise Cancelled()
                        try:
                            block = resp.raw.read1(CHUNK_SIZE)
                        except (OSError, http.client.HTTPException) as exc:
                            if opts.cancel is not None and opts.cancel():
                                raise Cancelled() from None
                            raise _Retryable(f"connection broke off after {_mb(position)}: {_reason(exc)}") from exc
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
                        hashed["digest"].update(block)
                        position += len(block)
                        hashed["upto"] = position
                        transferred += len(block)
                        prog.update(position, rf.local)
            if opts.cancel is not None and opts.cancel():
                raise Cancelled()
            expected = rf.size
            if expected is None:
                length = resp.header("Content-Length")
                expected = offset + int(length) if length and length.isdigit() else None
            if expected is not None and position < expected:
                raise _Retryable(f"connection dropped after {_mb(position)} of {_mb(expected)}")
        finally:
            resp.close()

    _with_retries(opts, f"{rf.remote}", client.endpoint, once)
    size_now = part.stat().st_size if part.exists() else -1
    streamed = hashed["digest"].hexdigest() if hashed["digest"] is not None and hashed["upto"] == size_now else None
    _verify(rf, part, meta, opts, streamed)
    if dest.suffix == ".onnx":
        _check_onnx(rf, part, meta)
    try:
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
    except OSError as exc:
        raise _writable_error(dest, exc) from exc
    return transferred


def _verify(rf: RemoteFile, part: Path, meta: Path, opts: _Options, streamed_sha256: str | None = None) -> None:
    """Size, then sha256 (LFS files) or the git blob sha1 (small files) against what the hub announced."""
    size = part.stat().st_size
    problem = None
    if rf.size is None or (rf.sha256 is None and rf.git_sha1 is None):
        # Nothing to check it against (a redirect to a plain file server, say): never installed unverified.
        problem = "the server announced no size and checksum for it"
    elif size != rf.size:
        problem = f"size {size} bytes instead of {rf.size}"
    elif rf.sha256 is not None:
        got = streamed_sha256 or sha256_file(part, opts.cancel)
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
        hub.inspect_encoder(part, registry.output_mapping(rf.model_id) or None)
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
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float | None = None,
    lock_timeout: float | None = None,
) -> DownloadResult:
    """Fetch the configs and the requested ONNX variants of ``model_id`` into ``hub.cache_folder(model_id)``.

    ``variants``: any of "int8" (``onnx/model_quantized.onnx``) and "fp32" (``onnx/model.onnx``).
    ``revision``: branch, tag or commit (default: the commit the cache is pinned to, else "main").
    Files already in the cache are not fetched again unless ``force`` or a different ``revision`` is asked.
    ``progress(done_bytes, total_bytes_or_None, message)`` is throttled to ~10 calls a second; ``cancel()``
    is polled and stops the transfer within ~0.1 s, leaving a ``.part`` file the next call resumes.
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
    opts = _Options(retries=max(0, retries), backoff=max(0.0, backoff), cancel=cancel)
    try:
        config.models_dir().mkdir(parents=True, exist_ok=True)
        lock = ModelLock(lock_path(model_id))
        lock.acquire(timeout=lock_timeout, cancel=cancel, on_wait=lambda: progress and progress(
            0, None, f"waiting for another download of {model_id}"))
    except OSError as exc:
        raise _writable_error(config.models_dir(), exc) from exc
    with lock:
        return _download_locked(model_id, folder, plan_names, revision, force, endpoint, token, timeout,
                                opts, progress)


def _download_locked(
    model_id: str,
    folder: Path,
    plan_names: list[tuple[str, str]],
    revision: str | None,
    force: bool,
    endpoint: str,
    token: str | None,
    timeout: float,
    opts: _Options,
    progress: ProgressCallback | None,
) -> DownloadResult:
    manifest = read_manifest(folder)
    pinned = manifest.get("commit") if isinstance(manifest.get("commit"), str) else None
    pinned = pinned if pinned and _HEX40.match(pinned) else None
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
            for variant in hub.cached_variants(folder):
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

    prog = _Progress(progress, total, f"{model_id}: ")
    result = DownloadResult(model_id, folder, commit, asked or manifest.get("revision") or revision)
    prog.update(0, remotes[0].local, force=True)
    records: dict[str, Any] = {}
    for rf in remotes:
        dest = folder / rf.local
        result.bytes_fetched += _fetch(client, rf, dest, prog, opts)
        result.fetched.append(rf.local)
        size = dest.stat().st_size
        records[rf.local] = {
            "remote": rf.remote,
            "size": size,
            "sha256": rf.sha256 or sha256_file(dest, opts.cancel),
            "etag": rf.etag,
            "lfs": rf.lfs,
        }
        prog.file_done(size)
        prog.update(0, f"{rf.local} done", force=True)

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
