"""Downloading models from the (fake) hub: redirects, tokens, resume, verification, pinning, errors, cancel."""

from __future__ import annotations

import errno
import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehub import FakeHub, make_clip_like_repo

from vitfeat_desktop.core.errors import Cancelled, DownloadError, ModelError, ModelNotCachedError
from vitfeat_desktop.core.models import download, registry
from vitfeat_desktop.core.models.download import download_model
from vitfeat_desktop.core.models.http_client import HubClient, normalize_etag, resolve_url
from vitfeat_desktop.core.models.layout import cache_folder, check_folder, lock_path, read_manifest, validate_revision
from vitfeat_desktop.core.models.lock import ModelLock
from vitfeat_desktop.core.models.resolve import resolve_model

REPO = "Xenova/tiny-vit"
INT8 = "onnx/model_quantized.onnx"
FP32 = "onnx/model.onnx"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def clip_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip_like_repo(tmp_path_factory.mktemp("cliprepo") / "clip")


@pytest.fixture
def fhub(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub({REPO: tiny_vit}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def fetch(**kwargs: object) -> download.DownloadResult:
    kwargs.setdefault("backoff", 0.001)
    return download_model(REPO, **kwargs)  # type: ignore[arg-type]


def test_downloads_configs_and_int8_through_cdn_redirect(fhub: FakeHub, tiny_vit: Path) -> None:
    result = fetch()
    folder = cache_folder(REPO)
    assert result.folder == folder and result.fetched == ["config.json", "preprocessor_config.json", INT8]
    for rel in ("config.json", "preprocessor_config.json", INT8):
        assert (folder / rel).read_bytes() == (tiny_vit / rel).read_bytes()
    assert not (folder / FP32).exists()  # only the asked variant
    # the ONNX file came from the CDN after a 302, the small files straight from the hub
    assert fhub.count("GET", INT8, "cdn") == 1 and fhub.count("GET", "config.json", "cdn") == 0
    assert not list(folder.rglob("*.part*"))
    resolved = resolve_model(REPO)
    assert resolved.onnx_path == folder / INT8


def test_fp32_and_all_variants(fhub: FakeHub, tiny_vit: Path) -> None:
    fetch(variants=("fp32",))
    folder = cache_folder(REPO)
    assert (folder / FP32).is_file() and not (folder / INT8).exists()
    fetch(variants=("int8", "fp32"))
    assert sha256(folder / INT8) == sha256(tiny_vit / INT8)
    assert fhub.count("GET", FP32, "cdn") == 1  # the cached fp32 was not fetched again


def test_manifest_records_commit_files_and_is_pinned(fhub: FakeHub, tiny_vit: Path, tmp_path: Path) -> None:
    first = fhub.commit(REPO)
    fetch()
    manifest = read_manifest(cache_folder(REPO))
    assert manifest["commit"] == first and manifest["revision"] == "main" and manifest["model_id"] == REPO
    assert manifest["files"][INT8]["sha256"] == sha256(tiny_vit / INT8)
    assert manifest["files"][INT8]["size"] == (tiny_vit / INT8).stat().st_size
    assert "outputs" not in manifest  # standard names need no mapping
    # main moves on: adding the fp32 variant later still comes from the pinned commit
    changed = {p.relative_to(tiny_vit).as_posix(): p.read_bytes() for p in tiny_vit.rglob("*") if p.is_file()}
    # a different (real: downloads are opened with ONNX Runtime before they are installed) model at a newer commit
    from vitfeat_desktop.selftest.tinyvit import write_model_folder

    changed["onnx/model.onnx"] = (write_model_folder(tmp_path / "newer", seed=7, quantized=False) / FP32).read_bytes()
    second = fhub.publish(REPO, changed)
    assert second != first
    fetch(variants=("fp32",))
    assert any(f"/resolve/{first}/onnx/model.onnx" in r.path for r in fhub.requests)
    assert (cache_folder(REPO) / FP32).read_bytes() == (tiny_vit / FP32).read_bytes()
    # asking for main explicitly moves the pin and refetches
    fetch(variants=("fp32",), revision="main")
    manifest = read_manifest(cache_folder(REPO))
    assert manifest["commit"] == second
    assert (cache_folder(REPO) / FP32).read_bytes() == changed["onnx/model.onnx"]


def test_revision_by_tag_and_unknown_revision(fhub: FakeHub, tiny_vit: Path) -> None:
    files = {p.relative_to(tiny_vit).as_posix(): p.read_bytes() for p in tiny_vit.rglob("*") if p.is_file()}
    sha = fhub.publish(REPO, files, tag="v1.0")
    result = fetch(revision="v1.0")
    assert result.commit == sha and read_manifest(result.folder)["revision"] == "v1.0"
    with pytest.raises(DownloadError, match=r"no revision 'nope'"):
        fetch(revision="nope", force=True)


def test_token_goes_to_the_hub_only_never_to_the_cdn(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({"me/private": tiny_vit}, private={"me/private": "s3cret"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", "s3cret")
        download_model("me/private", backoff=0.001)
        hub_requests = [r for r in server.requests if r.server == "hub"]
        cdn_requests = [r for r in server.requests if r.server == "cdn"]
        assert hub_requests and cdn_requests
        assert all(r.headers.get("Authorization") == "Bearer s3cret" for r in hub_requests)
        assert all("Authorization" not in r.headers for r in cdn_requests)


def test_private_repo_without_token_mentions_hf_token(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({"me/private": tiny_vit}, private={"me/private": "s3cret"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        with pytest.raises(DownloadError, match=r"HF_TOKEN") as info:
            download_model("me/private", backoff=0.001)
        assert info.value.status == 401 and "\n" not in str(info.value)
        assert not cache_folder("me/private").joinpath(INT8).exists()


def test_gated_repo_401_and_403(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({"org/gated": tiny_vit}, gated={"org/gated": "ok"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        with pytest.raises(DownloadError, match=r"gated.*HF_TOKEN") as info:
            download_model("org/gated", backoff=0.001)
        assert info.value.status == 401
        monkeypatch.setenv("HF_TOKEN", "wrong")
        with pytest.raises(DownloadError, match=r"gated.*HF_TOKEN") as info:
            download_model("org/gated", backoff=0.001)
        assert info.value.status == 403
        monkeypatch.setenv("HF_TOKEN", "ok")
        download_model("org/gated", backoff=0.001)


def test_plain_403_mentions_hf_token(fhub: FakeHub) -> None:
    fhub.add_fault("config.json", "status", status=403, method="HEAD")
    with pytest.raises(DownloadError, match=r"forbidden.*HF_TOKEN"):
        fetch()


def test_unknown_id_and_missing_variant_are_404(fhub: FakeHub, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "anything")  # with a token the hub says 404 for an unknown repo
    with pytest.raises(DownloadError, match=r"not found on the hub") as info:
        download_model("Xenova/does-not-exist", backoff=0.001)
    assert info.value.status == 404
    files = {p.relative_to(tiny_vit).as_posix(): p.read_bytes() for p in tiny_vit.rglob("*") if p.is_file()}
    del files[FP32]
    fhub.publish("Xenova/int8-only", files)
    with pytest.raises(DownloadError, match=r"has no file onnx/model.onnx") as info:
        download_model("Xenova/int8-only", variants=("fp32",), backoff=0.001)
    assert info.value.status == 404


def test_renamed_repo_follows_relative_redirect(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({"new/name": tiny_vit}, renames={"old/name": "new/name"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", "tok")
        download_model("old/name", backoff=0.001)
        assert (cache_folder("old/name") / INT8).read_bytes() == (tiny_vit / INT8).read_bytes()
        # the token still goes along a same-host redirect
        assert all(r.headers.get("Authorization") == "Bearer tok" for r in server.requests if r.server == "hub")


def test_500_twice_then_ok_is_retried(fhub: FakeHub, tiny_vit: Path) -> None:
    fhub.add_fault(INT8, "status", status=500, times=2, method="GET")
    fetch()
    assert sha256(cache_folder(REPO) / INT8) == sha256(tiny_vit / INT8)
    assert fhub.count("GET", INT8, "hub") == 3


def test_5xx_after_retries_is_a_clear_error(fhub: FakeHub) -> None:
    fault = fhub.add_fault("config.json", "status", status=503, times=None, method="HEAD")
    with pytest.raises(DownloadError, match=r"kept failing.*HTTP 503 after 3 attempts"):
        fetch(retries=2)
    assert fault.times is None and fhub.count("HEAD", "config.json") == 3


def test_no_network_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match=r"cannot reach the model hub.*vitfeat model import") as info:
        download_model(REPO, retries=1, backoff=0.001)
    assert "\n" not in str(info.value)


def test_dropped_connection_resumes_with_range(fhub: FakeHub, tiny_vit: Path) -> None:
    fhub.add_fault(INT8, "drop", at=0.4)
    fetch()
    assert sha256(cache_folder(REPO) / INT8) == sha256(tiny_vit / INT8)
    cdn_gets = [r for r in fhub.requests if r.server == "cdn" and r.method == "GET"]
    assert len(cdn_gets) == 2
    size = (tiny_vit / INT8).stat().st_size
    assert "Range" not in cdn_gets[0].headers
    assert cdn_gets[1].headers["Range"] == f"bytes={int(size * 0.4)}-" and cdn_gets[1].status == 206


def test_truncated_download_is_never_used_and_resumes_later(fhub: FakeHub, tiny_vit: Path) -> None:
    fhub.add_fault(INT8, "drop", at=0.5)
    with pytest.raises(DownloadError, match=r"run it again to resume"):
        fetch(retries=0)
    folder = cache_folder(REPO)
    assert not (folder / INT8).exists()
    part = folder / (INT8 + ".part")
    assert part.stat().st_size == int((tiny_vit / INT8).stat().st_size * 0.5)
    with pytest.raises(ModelError):
        check_folder(folder, True)
    kept = part.stat().st_size
    fetch()  # resumes from the part file
    assert sha256(folder / INT8) == sha256(tiny_vit / INT8) and not part.exists()
    last = [r for r in fhub.requests if r.server == "cdn"][-1]
    assert last.headers["Range"] == f"bytes={kept}-" and last.status == 206


def test_server_ignoring_range_restarts_cleanly(fhub: FakeHub, tiny_vit: Path) -> None:
    fhub.add_fault(INT8, "drop", at=0.3)
    fhub.add_fault(INT8, "ignore-range")
    fetch()
    assert sha256(cache_folder(REPO) / INT8) == sha256(tiny_vit / INT8)


def test_corrupted_bytes_fail_verification_and_delete_the_part(fhub: FakeHub) -> None:
    fhub.add_fault(INT8, "corrupt")
    with pytest.raises(DownloadError, match=r"failed verification.*sha256.*deleted"):
        fetch()
    folder = cache_folder(REPO)
    assert not (folder / INT8).exists() and not list(folder.rglob("*.part"))
    fetch()  # a clean retry works
    assert read_manifest(folder)["files"][INT8]["sha256"] == sha256(folder / INT8)


def test_corrupted_small_file_fails_git_sha1_check(fhub: FakeHub) -> None:
    fhub.add_fault("config.json", "corrupt")
    with pytest.raises(DownloadError, match=r"config.json failed verification.*git sha1"):
        fetch()
    assert not (cache_folder(REPO) / "config.json").exists()


def test_a_stale_part_of_another_version_is_discarded(fhub: FakeHub, tiny_vit: Path) -> None:
    folder = cache_folder(REPO)
    (folder / "onnx").mkdir(parents=True)
    (folder / (INT8 + ".part")).write_bytes(b"x" * 1000)  # no identity file: we cannot trust it
    fetch()
    assert sha256(folder / INT8) == sha256(tiny_vit / INT8)


def test_cancel_stops_a_stalled_transfer_quickly_and_leaves_a_resumable_part(fhub: FakeHub, tiny_vit: Path) -> None:
    fault = fhub.add_fault(INT8, "stall", at=0.5, delay=60)
    stop = threading.Event()
    threading.Thread(target=lambda: (fault.started.wait(10), time.sleep(0.2), stop.set()), daemon=True).start()
    with pytest.raises(Cancelled):
        fetch(cancel=stop.is_set)
    assert not fault.completed.is_set()  # we did not wait for the stalled server to go on
    part = cache_folder(REPO) / (INT8 + ".part")
    half = int((tiny_vit / INT8).stat().st_size * 0.5)
    assert part.stat().st_size == half
    fetch()
    assert sha256(cache_folder(REPO) / INT8) == sha256(tiny_vit / INT8)
    assert [r for r in fhub.requests if r.server == "cdn"][-1].headers["Range"] == f"bytes={half}-"


def test_cancel_before_start_makes_no_request(fhub: FakeHub) -> None:
    with pytest.raises(Cancelled):
        fetch(cancel=lambda: True)
    assert not [r for r in fhub.requests if r.method == "GET"]


def test_progress_reports_bytes_of_the_whole_model(fhub: FakeHub, tiny_vit: Path) -> None:
    calls: list[tuple[int, int | None, str]] = []
    fetch(variants=("int8", "fp32"), progress=lambda p: calls.append((p.done, p.total, p.message)))
    total = sum((tiny_vit / f).stat().st_size for f in ("config.json", "preprocessor_config.json", INT8, FP32))
    assert calls and all(t == total for _, t, _ in calls)
    dones = [d for d, _, _ in calls]
    assert dones == sorted(dones) and dones[-1] == total
    assert all(m.startswith(f"{REPO}: ") for _, _, m in calls)


def test_bad_ids_revisions_and_file_names_are_refused_before_any_request(
        fhub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad_id in ("../evil", "/abs/path", "a/b/c", "org/..", "org/name\n", "..", "x" * 200):
        with pytest.raises(ModelError):
            download_model(bad_id)
    for bad_rev in ("../main", "a/../b", "/abs", "main\n", "a b", "refs//x", "", "x.lock"):
        with pytest.raises(ModelError, match=r"revision"):
            fetch(revision=bad_rev)
    evil = registry.KnownModel("Xenova/tiny-vit", "evil", "", remote_files={"int8": "../../../etc/passwd"})
    monkeypatch.setitem(registry.KNOWN_MODELS, REPO, evil)
    with pytest.raises(ModelError, match=r"leave the model folder"):
        fetch()
    assert fhub.requests == []
    assert validate_revision("refs/pr/1") == "refs/pr/1"
    assert resolve_url("http://h", "a/b", "refs/pr/1", "onnx/x.onnx") == \
        "http://h/a/b/resolve/refs%2Fpr%2F1/onnx/x.onnx"


def test_clip_like_repo_fetches_only_the_vision_tower_under_standard_names(
        clip_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_id = "Xenova/clip-vit-base-patch32"
    with FakeHub({model_id: clip_repo}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        download_model(model_id, variants=("int8", "fp32"), backoff=0.001)
        assert server.paths() == ["config.json", "onnx/vision_model.onnx", "onnx/vision_model_quantized.onnx",
                                  "preprocessor_config.json"]  # no text tower, no tokenizer
    folder = cache_folder(model_id)
    assert (folder / INT8).read_bytes() == (clip_repo / "onnx/vision_model_quantized.onnx").read_bytes()
    manifest = read_manifest(folder)
    assert manifest["outputs"] == {"pooler_output": "image_embeds"}
    assert manifest["files"][INT8]["remote"] == "onnx/vision_model_quantized.onnx"
    import numpy as np

    from vitfeat_desktop.core.pipeline import pipeline

    extractor = pipeline(model=model_id)
    vectors = extractor.embed(np.zeros((1, 3, 224, 224), dtype=np.float32))
    assert vectors.shape == (1, 32) and extractor.has_pooler


def test_offline_mode_touches_nothing(fhub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotCachedError, match=r"vitfeat model import"):
        fetch()
    with pytest.raises(ModelNotCachedError, match=r"offline.*vitfeat model import PATH --id Xenova/tiny-vit"):
        resolve_model(REPO)
    assert fhub.requests == []


def test_resolve_model_downloads_a_missing_hub_id_with_progress(fhub: FakeHub) -> None:
    seen: list[int] = []
    resolved = resolve_model(REPO, quantized=False, progress=lambda p: seen.append(p.done))
    assert resolved.onnx_path.name == "model.onnx" and resolved.model_id == REPO and seen
    requests = len(fhub.requests)
    resolve_model(REPO, quantized=False)  # cached now: no network at all
    assert len(fhub.requests) == requests


def test_disk_full_before_and_during_the_download(fhub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "_disk_free", lambda path: 1000)
    with pytest.raises(DownloadError, match=r"not enough disk space"):
        fetch()
    assert fhub.count("GET", INT8) == 0
    monkeypatch.undo()
    monkeypatch.setenv("HF_ENDPOINT", fhub.endpoint)

    class FullDisk:
        def __init__(self, path: Path, mode: str) -> None:
            self.fh = path.open(mode)
            self.written = 0

        def write(self, data: bytes) -> int:
            if self.written + len(data) > 10_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return self.fh.write(data)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    monkeypatch.setattr(download, "_open_part", FullDisk)
    with pytest.raises(DownloadError, match=r"disk is full"):
        fetch(variants=("fp32",))


def test_read_only_data_dir_is_a_clear_error(fhub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = Path.mkdir

    def readonly_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if "models" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", readonly_mkdir)
    with pytest.raises(DownloadError, match=r"cannot write to the model cache.*VITFEAT_HOME"):
        fetch()
    assert fhub.requests == []


def test_lock_keeps_a_second_downloader_out(fhub: FakeHub) -> None:
    with ModelLock(lock_path(REPO)) as lock:
        assert lock.try_acquire()
        with pytest.raises(DownloadError, match=r"another vitfeat process is downloading"):
            fetch(lock_timeout=0.2)
        with pytest.raises(Cancelled):
            fetch(cancel=lambda: True)
    fetch(lock_timeout=0.2)  # released: fine now


def test_normalize_etag_and_git_sha1(tmp_path: Path) -> None:
    assert normalize_etag('W/"ABC"') == "abc"
    assert normalize_etag('"abc"') == "abc"
    assert normalize_etag(None) is None
    f = tmp_path / "f"
    f.write_bytes(b"hello\n")
    assert download.git_blob_sha1(f) == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`


def test_a_stalled_server_times_out_and_the_retry_resumes(fhub: FakeHub, tiny_vit: Path) -> None:
    fhub.add_fault(INT8, "stall", at=0.25, delay=30)
    fetch(timeout=0.3)
    assert sha256(cache_folder(REPO) / INT8) == sha256(tiny_vit / INT8)
    last = [r for r in fhub.requests if r.server == "cdn"][-1]
    assert last.headers["Range"] == f"bytes={int((tiny_vit / INT8).stat().st_size * 0.25)}-"


def test_network_errors_give_up_after_one_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def refused(self: object, method: str, url: str, *args: object, **kwargs: object) -> None:
        calls.append(url)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(HubClient, "request", refused)
    with pytest.raises(DownloadError, match=r"cannot reach the model hub .*Connection refused"):
        download_model(REPO, retries=5, backoff=0.001)
    assert len(calls) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_a_file_system_without_locks_does_not_hang_the_download(fhub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert fetch(lock_timeout=1.0).fetched[-1] == INT8
