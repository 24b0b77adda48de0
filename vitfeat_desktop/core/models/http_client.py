"""The HTTP side of talking to the Hugging Face hub: endpoint, token, timeouts, TLS trust, redirects, retries.

Why our own small client on the standard library (``http.client``) rather than ``huggingface_hub`` or
``requests``: it pulls ``requests``/``httpx``, ``filelock``, ``fsspec``, ``tqdm``, ``pyyaml`` into a desktop
bundle that needs none of them for four files, and we need what it does not expose: a cancel that stops a stalled
transfer within a second (:func:`cancel_watch` shuts the socket down from a watcher thread).

The environment is read the way ``huggingface_hub`` reads it, so a user's setup carries over: ``HF_ENDPOINT``,
``HF_TOKEN`` (or the saved login), ``HF_HUB_DOWNLOAD_TIMEOUT``, the proxy variables. ``Authorization: Bearer``
goes only to the endpoint's own scheme+host+port, never to the CDN or any other host a redirect names (S3-style
CDNs refuse two auth mechanisms anyway, and the token must not leak). Offline mode is checked by the callers
(``config.offline()``) before a client is ever made.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import logging
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import TypeVar

from vitfeat_desktop.core.errors import DownloadError, short_reason
from vitfeat_desktop.core.models.hf_cache import hf_home
from vitfeat_desktop.core.progress import CancelFn, check_cancel
from vitfeat_desktop.version import __version__

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_REDIRECTS = 10
CANCEL_POLL = 0.1

T = TypeVar("T")


class Retryable(Exception):
    """A transient failure (5xx, dropped connection) worth another attempt after a backoff.

    ``kind`` picks the final message once the retries are spent: "network" (never got an answer), "server"
    (5xx) or "transfer" (the answer broke off or was inconsistent).
    """

    def __init__(self, message: str, kind: str = "transfer") -> None:
        super().__init__(message)
        self.kind = kind


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
    path = Path(token_path).expanduser() if token_path else hf_home() / "token"
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


@dataclass
class Response:
    """One answer of the hub or the CDN, with its connection (the body is streamed from ``raw``)."""

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
                    pp.hostname or "", pport, timeout=self.timeout, context=tls_context()
                )
                conn.set_tunnel(parts.hostname, port, headers=proxy_headers)
            else:
                conn = http.client.HTTPConnection(pp.hostname or "", pport, timeout=self.timeout)
                target = url  # plain-http proxies take the absolute URL
            return conn, target
        if parts.scheme == "https":
            return http.client.HTTPSConnection(parts.hostname, port, timeout=self.timeout,
                                               context=tls_context()), target
        return http.client.HTTPConnection(parts.hostname, port, timeout=self.timeout), target

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        *,
        follow: str = "all",
    ) -> Response:
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
            response = Response(url=url, status=raw.status, headers=raw.msg, raw=raw, conn=conn, sock=sock)
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


def tls_context() -> ssl.SSLContext:
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
    context = tls_context()
    return int(context.cert_store_stats().get("x509_ca", 0)), list(_TLS_SOURCES)


@contextlib.contextmanager
def cancel_watch(response: Response, cancel: CancelFn | None) -> Iterator[None]:
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


@dataclass
class RetryPolicy:
    """How often and how patiently to retry a transient failure, and the caller's cancel to poll meanwhile."""

    retries: int
    backoff: float
    cancel: CancelFn | None


def error_for_status(resp: Response, model_id: str, filename: str, revision: str) -> DownloadError:
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


def with_retries(opts: RetryPolicy, what: str, endpoint: str, func: Callable[[], T]) -> T:
    """Run ``func()``; on a transient failure back off (``backoff * 2**n``) and try again, ``retries`` times."""
    attempt = 0
    while True:
        check_cancel(opts.cancel)
        try:
            return func()
        except Retryable as exc:
            last = exc
        except ssl.SSLCertVerificationError as exc:  # retrying will not help; a TLS-inspecting proxy is likely
            raise DownloadError(
                f"the TLS certificate of the model hub could not be verified ({exc.verify_message or exc}); behind "
                "a proxy that inspects HTTPS, set SSL_CERT_FILE to its CA bundle"
            ) from exc
        except (ConnectionRefusedError, socket.gaierror, TimeoutError) as exc:
            last = Retryable(short_reason(exc), "network")
        except (ConnectionError, http.client.HTTPException) as exc:
            last = Retryable(short_reason(exc), "transfer")
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM) or isinstance(
                exc, PermissionError
            ):
                raise
            last = Retryable(short_reason(exc), "network")
        check_cancel(opts.cancel)
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
            check_cancel(opts.cancel)
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))


