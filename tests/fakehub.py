"""A fake Hugging Face hub on 127.0.0.1 that behaves like the real one where our downloader cares.

Reusable by any test (the GUI's download dialog too)::

    from tests.fakehub import FakeHub, make_repo

    with FakeHub({"Xenova/tiny": make_repo(tmp_path / "tiny")}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        hub.add_fault("onnx/model_quantized.onnx", "drop", at=0.5)
        ...
        assert hub.count("GET", "onnx/model_quantized.onnx") == 2

What it reproduces of the real hub (``huggingface_hub/file_download.py``, the hub's ``/resolve/`` route):

* ``HEAD`` and ``GET /{repo}/resolve/{revision}/{path}`` with ``X-Repo-Commit`` (40-hex commit the revision
  points at). The revision may be ``main``, a tag, or a full commit sha; older commits stay resolvable.
* Small files (the JSON configs) are answered directly: 200 with ``ETag: "<git blob sha1>"``, Content-Length,
  Range support.
* LFS files (``*.onnx``) answer 302 to a second server (the CDN: another port, so another host for the
  no-token-forwarding rule) with ``X-Linked-Size``, ``X-Linked-Etag: "<sha256>"`` and a signed-looking query;
  the CDN serves the bytes with Range support (206) and refuses requests that carry ``Authorization`` (400, as
  S3 does) while recording them.
* Errors carry ``X-Error-Code``: unknown or private repo without a token -> 401 ``RepositoryNotFound``, with a
  token -> 404; gated repo -> 401 ``GatedRepo`` without a token, 403 with a wrong one; unknown revision -> 404
  ``RevisionNotFound``; missing file -> 404 ``EntryNotFound``. Renamed repos -> 307 relative redirect.

Fault injection (``add_fault``): ``status`` (answer an HTTP status, e.g. 500 twice then normal), ``drop`` (send
the headers and a fraction of the body, then cut the connection), ``corrupt`` (right length, wrong bytes),
``stall`` (send a fraction then hang for ``delay`` seconds: for cancel tests), ``slow`` (throttle to ``rate``
bytes/s), ``ignore-range`` (answer 200 with the whole file to a Range request).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LFS_SUFFIXES = (".onnx", ".onnx_data", ".bin", ".safetensors")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def make_repo(folder: Path, *, seed: int = 0, with_pooler: bool = True, fp32: bool = True,
              quantized: bool = True) -> Path:
    """A tiny real ViT in hub layout (a few hundred KB), for serving."""
    from vitfeat_desktop.selftest.tinyvit import write_model_folder

    return write_model_folder(folder, seed=seed, with_pooler=with_pooler, fp32=fp32, quantized=quantized)


def make_clip_like_repo(folder: Path, *, seed: int = 2) -> Path:
    """A tiny ViT laid out like Xenova's CLIP repos: ``onnx/vision_model[_quantized].onnx`` whose pooled output is
    named ``image_embeds`` (plus a text tower file we must never fetch)."""
    import onnx

    make_repo(folder, seed=seed)
    for src, dst in (("model.onnx", "vision_model.onnx"), ("model_quantized.onnx", "vision_model_quantized.onnx")):
        model = onnx.load(folder / "onnx" / src)
        for node in model.graph.node:
            node.output[:] = ["image_embeds" if o == "pooler_output" else o for o in node.output]
        for out in model.graph.output:
            if out.name == "pooler_output":
                out.name = "image_embeds"
        onnx.save(model, folder / "onnx" / dst)
        (folder / "onnx" / src).unlink()
    (folder / "onnx" / "text_model_quantized.onnx").write_bytes(b"not an image encoder")
    (folder / "tokenizer.json").write_text("{}", encoding="utf-8")
    return folder


@dataclass
class Fault:
    file: str  # repo-relative path (or "*")
    kind: str
    times: int | None = 1  # None: forever
    status: int = 500
    at: float = 0.5
    delay: float = 5.0
    rate: int = 200_000
    method: str = "GET"  # "GET", "HEAD" or "*"
    repo: str = "*"
    # set when a stalled/slow response has sent its last byte (a cancel test asserts it was not)
    completed: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, repo: str, path: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and self.file in ("*", path)
            and self.method in ("*", method)
            and self.repo in ("*", repo)
        )


@dataclass
class Recorded:
    server: str  # "hub" or "cdn"
    method: str
    path: str  # request path with query
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Commit:
    sha: str
    files: dict[str, bytes]


@dataclass
class _Repo:
    commits: list[_Commit] = field(default_factory=list)  # newest last; "main" is the newest
    tags: dict[str, str] = field(default_factory=dict)


class FakeHub:
    """Two local HTTP servers (hub + CDN). Use as a context manager; ``endpoint`` is the value for HF_ENDPOINT."""

    def __init__(
        self,
        repos: Mapping[str, Path] | None = None,
        *,
        private: Mapping[str, str] | None = None,
        gated: Mapping[str, str] | None = None,
        renames: Mapping[str, str] | None = None,
    ) -> None:
        self._repos: dict[str, _Repo] = {}
        self.private = dict(private or {})  # repo -> the token that may read it
        self.gated = dict(gated or {})  # repo -> the token whose account accepted the terms
        self.renames = dict(renames or {})  # old id -> new id
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}  # sha256 -> content, served by the CDN
        self._digests: dict[int, tuple[str, str]] = {}  # id(content) -> (sha256, git sha1), computed once
        self._stop = threading.Event()
        for repo_id, folder in (repos or {}).items():
            self.publish(repo_id, folder)
        self._hub = self._server("hub")
        self._cdn = self._server("cdn")
        self.endpoint = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{self._cdn.server_address[1]}"
        self._threads: list[threading.Thread] = []

    # -- content ----------------------------------------------------------------------------------------------
    def publish(self, repo_id: str, folder: Path | Mapping[str, bytes], *, tag: str | None = None) -> str:
        """Add a commit to ``repo_id`` holding the files of ``folder`` (or a {path: bytes} dict); returns its sha."""
        if isinstance(folder, Mapping):
            files = dict(folder)
        else:
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo())
            seed = f"{repo_id}:{len(repo.commits)}:" + ",".join(f"{k}={hashlib.sha256(v).hexdigest()}"
                                                                for k, v in sorted(files.items()))
            sha = hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()
            repo.commits.append(_Commit(sha, files))
            if tag:
                repo.tags[tag] = sha
            for data in files.values():
                digest = hashlib.sha256(data).hexdigest()
                self._blobs[digest] = data
                self._digests[id(data)] = (digest, git_blob_sha1(data))
        return sha

    def commit(self, repo_id: str, revision: str = "main") -> str:
        found = self._find_commit(self._repos[repo_id], revision)
        assert found is not None
        return found.sha

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        found = self._find_commit(self._repos[repo_id], revision)
        assert found is not None
        return found.files[path]

    @staticmethod
    def _find_commit(repo: _Repo, revision: str) -> _Commit | None:
        if revision == "main" and repo.commits:
            return repo.commits[-1]
        revision = repo.tags.get(revision, revision)
        return next((c for c in repo.commits if c.sha == revision), None)

    # -- faults and records ---------------------------------------------------------------------------------
    def add_fault(self, file: str, kind: str, **kwargs: Any) -> Fault:
        kinds = ("status", "drop", "corrupt", "stall", "slow", "ignore-range")
        if kind not in kinds:
            raise ValueError(f"unknown fault {kind!r}; one of {kinds}")
        fault = Fault(file=file, kind=kind, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, repo: str, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.matches(method, repo, path):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def count(self, method: str, file: str, server: str | None = None) -> int:
        """How many ``method`` requests named ``file`` (the hub's resolve URL, or the CDN's ``file=`` query)."""
        return sum(1 for r in self.requests if r.method == method and _file_of(r.path) == file
                   and (server is None or r.server == server))

    def paths(self) -> list[str]:
        return sorted({f for r in self.requests if (f := _file_of(r.path))})

    # -- lifecycle --------------------------------------------------------------------------------------------
    def _server(self, role: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "FakeHub/1.0"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, role, "HEAD")

            def do_GET(self) -> None:
                hub._handle(self, role, "GET")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def __enter__(self) -> FakeHub:
        for server in (self._hub, self._cdn):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()  # wakes stalled responses
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    # -- request handling -----------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, role: str, method: str) -> None:
        record = Recorded(role, method, h.path, {k: v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(record)
        try:
            if role == "hub":
                self._hub_route(h, method, record)
            else:
                self._cdn_route(h, method, record)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reply(self, h: BaseHTTPRequestHandler, record: Recorded, status: int, headers: dict[str, str],
               body: bytes = b"") -> None:
        record.status = status
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)

    def _error(self, h: BaseHTTPRequestHandler, record: Recorded, status: int, code: str, message: str,
               commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._reply(h, record, status, headers, f'{{"error": "{message}"}}'.encode())

    def _hub_route(self, h: BaseHTTPRequestHandler, method: str, record: Recorded) -> None:
        path = urllib.parse.urlsplit(h.path).path
        match = re.match(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", path)
        if not match:
            return self._error(h, record, 404, "EntryNotFound", "not a resolve URL")
        repo_id = match["repo"]
        revision = urllib.parse.unquote(match["rev"])
        file = urllib.parse.unquote(match["file"])
        fault = self._take_fault(method, repo_id, file, ("status",))
        if fault is not None:
            return self._error(h, record, fault.status, "", f"injected {fault.status}")
        if repo_id in self.renames:
            target = f"/{self.renames[repo_id]}/resolve/{match['rev']}/{match['file']}"
            return self._reply(h, record, 307, {"Location": target})
        auth = h.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        repo = self._repos.get(repo_id)
        if repo is None or (repo_id in self.private and token != self.private[repo_id]):
            status = 404 if token else 401
            return self._error(h, record, status, "RepositoryNotFound", "Repository not found")
        if repo_id in self.gated and token != self.gated[repo_id]:
            return self._error(h, record, 403 if token else 401, "GatedRepo", "Access to this repo is restricted")
        commit = self._find_commit(repo, revision)
        if commit is None:
            return self._error(h, record, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        data = commit.files.get(file)
        if data is None:
            return self._error(h, record, 404, "EntryNotFound", f"{file} does not exist", commit.sha)
        sha256, sha1 = self._digests[id(data)]
        if file.endswith(LFS_SUFFIXES):
            query = urllib.parse.urlencode({"file": file, "X-Amz-Signature": sha256[:16], "Expires": "9999999999"})
            headers = {
                "Location": f"{self.cdn_endpoint}/repos/{sha256[:2]}/{sha256}?{query}",
                "X-Repo-Commit": commit.sha,
                "X-Linked-Size": str(len(data)),
                "X-Linked-Etag": f'"{sha256}"',
                "ETag": f'W/"{sha1[:20]}-lfs-pointer"',
            }
            return self._reply(h, record, 302, headers, b"Found. Redirecting")
        self._serve_bytes(h, record, method, repo_id, file, data,
                          {"X-Repo-Commit": commit.sha, "ETag": f'"{sha1}"'})

    def _cdn_route(self, h: BaseHTTPRequestHandler, method: str, record: Recorded) -> None:
        parts = urllib.parse.urlsplit(h.path)
        sha256 = parts.path.rsplit("/", 1)[-1]
        file = urllib.parse.parse_qs(parts.query).get("file", ["?"])[0]
        if "Authorization" in h.headers:
            return self._error(h, record, 400, "InvalidArgument", "Only one auth mechanism allowed")
        data = self._blobs.get(sha256)
        if data is None:
            return self._error(h, record, 404, "NoSuchKey", "The specified key does not exist")
        fault = self._take_fault(method, "*", file, ("status",))
        if fault is not None:
            return self._error(h, record, fault.status, "", f"injected {fault.status}")
        self._serve_bytes(h, record, method, "*", file, data, {"ETag": f'"{sha256}"'})

    def _serve_bytes(self, h: BaseHTTPRequestHandler, record: Recorded, method: str, repo: str, file: str,
                     data: bytes, headers: dict[str, str]) -> None:
        start, end = 0, len(data) - 1
        status = 200
        range_header = h.headers.get("Range")
        ignore = range_header and self._take_fault(method, repo, file, ("ignore-range",))
        if range_header and not ignore:
            match = re.match(r"^bytes=(\d+)-(\d*)$", range_header.strip())
            if not match or int(match[1]) >= len(data):
                return self._reply(h, record, 416, {"Content-Range": f"bytes */{len(data)}"})
            start = int(match[1])
            end = min(int(match[2]), len(data) - 1) if match[2] else len(data) - 1
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
        body = data[start:end + 1]
        out = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(body)),
               "Content-Type": "application/octet-stream"}
        fault = self._take_fault(method, repo, file, ("drop", "corrupt", "stall", "slow")) if method == "GET" else None
        record.status = status
        h.send_response(status)
        for key, value in out.items():
            h.send_header(key, value)
        h.end_headers()
        if method == "HEAD":
            return
        if fault is None:
            h.wfile.write(body)
            return
        fault.started.set()
        cut = int(len(body) * fault.at)
        if fault.kind == "corrupt":
            h.wfile.write(bytes(b ^ 0xFF for b in body[:64]) + body[64:])
        elif fault.kind == "drop":
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # the client sees the connection end before Content-Length bytes
        elif fault.kind == "stall":
            h.wfile.write(body[:cut])
            h.wfile.flush()
            if not self._stop.wait(fault.delay):
                h.wfile.write(body[cut:])
                fault.completed.set()
        elif fault.kind == "slow":
            step = max(1, fault.rate // 20)
            for i in range(0, len(body), step):
                if self._stop.is_set():
                    return
                h.wfile.write(body[i:i + step])
                h.wfile.flush()
                time.sleep(0.05)
            fault.completed.set()


def _file_of(path: str) -> str | None:
    parts = urllib.parse.urlsplit(path)
    if "/resolve/" in parts.path:
        return urllib.parse.unquote(parts.path.split("/resolve/", 1)[1].split("/", 1)[1])
    query = urllib.parse.parse_qs(parts.query)
    return query.get("file", [None])[0]


try:  # a fixture other test modules can import: ``from fakehub import fake_hub``
    import pytest

    @pytest.fixture
    def fake_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
        """A started :class:`FakeHub` serving ``Xenova/tiny-vit`` (a tiny ViT), with ``HF_ENDPOINT`` pointing at it.

        Publish more repos with ``fake_hub.publish(id, folder)``.
        """
        folder = make_repo(tmp_path_factory.mktemp("fakehub") / "tiny-vit")
        with FakeHub({"Xenova/tiny-vit": folder}) as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
            yield hub
except ImportError:  # pragma: no cover - usable without pytest too
    pass
