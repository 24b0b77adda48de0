"""The Hugging Face conventions people already use: the HF cache, the saved login, the offline/timeout switches,
and ``pipeline()`` keywords spelled the transformers / transformers.js way. All against the loopback hub."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from fakehub import FakeHub, fake_hub  # noqa: F401  (fake_hub is a fixture)

from vitfeat_desktop import pipeline
from vitfeat_desktop.core.errors import DownloadError, ModelNotCachedError
from vitfeat_desktop.core.models.download import download_model
from vitfeat_desktop.core.models.http_client import download_timeout, hub_token
from vitfeat_desktop.core.models.layout import cache_folder, read_manifest
from vitfeat_desktop.core.models.resolve import resolve_model

REPO_ID = "Xenova/tiny-vit"
INT8 = "onnx/model_quantized.onnx"


def hf_cache_snapshot(root: Path, model_id: str, source: Path, commit: str, *, ref: str | None = "main",
                      skip: tuple[str, ...] = ()) -> Path:
    """Lay ``source``'s files out like huggingface_hub does: blobs by hash, snapshot symlinks, refs/<ref>."""
    repo = root / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source).as_posix()
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        if rel not in skip:  # a skipped file leaves a dangling link, as an interrupted hf download does
            blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def gets(server: FakeHub) -> int:
    return sum(1 for r in server.requests if r.method == "GET")


# -- the Hugging Face cache --------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["HF_HUB_CACHE", "HF_HOME", "default"])
def test_a_snapshot_in_the_hf_cache_is_used_instead_of_downloading(
    fake_hub: FakeHub, tiny_vit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str  # noqa: F811
) -> None:
    if where == "HF_HUB_CACHE":
        root = tmp_path / "hub-cache"
        monkeypatch.setenv("HF_HUB_CACHE", str(root))
    elif where == "HF_HOME":
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        root = tmp_path / "hf" / "hub"
    else:
        monkeypatch.delenv("HF_HOME")
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "user"))
        root = tmp_path / "user" / ".cache" / "huggingface" / "hub"
    commit = "ab" * 20
    snapshot = hf_cache_snapshot(root, REPO_ID, tiny_vit, commit)
    extractor = pipeline("image-feature-extraction", model=REPO_ID)
    assert gets(fake_hub) == 0 and not fake_hub.requests  # nothing asked of the hub
    folder = cache_folder(REPO_ID)
    assert extractor.onnx_path == folder / INT8
    # hard links into the HF cache's blobs: no second copy of the weights on the same disk
    assert os.stat(folder / INT8).st_ino == os.stat((snapshot / INT8).resolve()).st_ino
    manifest = read_manifest(folder)
    assert manifest["source"] == "hf-cache" and manifest["commit"] == commit
    assert extractor(np.zeros((8, 8, 3), dtype=np.uint8), pool=True).shape == (1, 32)


def test_an_incomplete_snapshot_is_not_used(fake_hub: FakeHub, tiny_vit: Path, tmp_path: Path,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    hf_cache_snapshot(tmp_path / "c", REPO_ID, tiny_vit, "cd" * 20, skip=(INT8,))
    resolved = resolve_model(REPO_ID)
    assert fake_hub.count("GET", INT8, "cdn") == 1  # downloaded after all
    assert read_manifest(resolved.folder)["source"] == "hub"


def test_revision_picks_the_snapshot_and_a_missing_one_is_not_faked(
    fake_hub: FakeHub, tiny_vit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    root = tmp_path / "c"
    hf_cache_snapshot(root, REPO_ID, tiny_vit, "11" * 20, ref="v1")
    resolved = resolve_model(REPO_ID, revision="v1", cache_dir=root, local_files_only=True)
    assert read_manifest(resolved.folder)["commit"] == "11" * 20
    assert read_manifest(resolved.folder)["revision"] == "v1"
    # the cached folder is at v1 / 1111...; an abbreviated commit matches it, another revision does not
    assert resolve_model(REPO_ID, revision="1111111", local_files_only=True).folder == resolved.folder
    with pytest.raises(ModelNotCachedError, match=r"at revision v2.*local_files_only"):
        resolve_model(REPO_ID, revision="v2", cache_dir=root, local_files_only=True)
    assert not fake_hub.requests


def test_cache_dir_of_pipeline_is_a_hf_cache(tiny_vit: Path, tmp_path: Path) -> None:
    root = tmp_path / "transformers-cache"
    hf_cache_snapshot(root, "someone/vit", tiny_vit, "ef" * 20)
    extractor = pipeline("image-feature-extraction", model="someone/vit", cache_dir=root, local_files_only=True)
    assert read_manifest(extractor.folder)["imported_from"].startswith(str(root))


# -- token, offline, timeout ---------------------------------------------------------------------------------------

def test_the_token_saved_by_the_hf_cli_is_used(tiny_vit: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["HF_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text("s3cret\n")
    assert hub_token() == "s3cret"
    with FakeHub({"me/private": tiny_vit}, private={"me/private": "s3cret"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        download_model("me/private", backoff=0.001)
        assert all(r.headers.get("Authorization") == "Bearer s3cret" for r in server.requests if r.server == "hub")
    # HF_TOKEN_PATH wins over $HF_HOME/token, HF_TOKEN over both
    other = tmp_path / "elsewhere" / "tok"
    other.parent.mkdir()
    other.write_text("from-path")
    monkeypatch.setenv("HF_TOKEN_PATH", str(other))
    assert hub_token() == "from-path"
    monkeypatch.setenv("HF_TOKEN", "from-env")
    assert hub_token() == "from-env"
    monkeypatch.delenv("HF_TOKEN")
    other.unlink()
    assert hub_token() is None  # a missing token file is no token, not an error


def test_a_token_passed_to_pipeline_reaches_the_hub(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({"me/private": tiny_vit}, private={"me/private": "tok"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        extractor = pipeline("image-feature-extraction", model="me/private", token="tok")
        assert extractor.onnx_path.is_file()


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_transformers_offline_means_no_download(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                value: str) -> None:
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", value)
    with pytest.raises(ModelNotCachedError, match="TRANSFORMERS_OFFLINE") as info:
        pipeline("image-feature-extraction", model=REPO_ID)
    assert "\n" not in str(info.value) and not fake_hub.requests
    with pytest.raises(ModelNotCachedError, match="offline"):
        download_model(REPO_ID)
    assert not fake_hub.requests


def test_local_files_only_means_no_download(fake_hub: FakeHub) -> None:  # noqa: F811
    with pytest.raises(ModelNotCachedError, match="local_files_only"):
        pipeline("image-feature-extraction", model=REPO_ID, local_files_only=True)
    with pytest.raises(ModelNotCachedError, match="local_files_only"):
        pipeline("image-feature-extraction", model=REPO_ID, model_kwargs={"local_files_only": True})
    assert not fake_hub.requests


def test_hf_hub_download_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert download_timeout() == 30.0
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2.5")
    assert download_timeout() == 2.5
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "soon")
    assert download_timeout() == 30.0  # not a number: the default, with a warning


@pytest.mark.timeout(60)
def test_a_stalled_transfer_gives_up_after_hf_hub_download_timeout(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    # The CDN sends half the file and then says nothing for 120 s; with a 0.5 s timeout the download must give
    # up long before (the test's own timeout is half of that stall).
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "0.5")
    fault = fake_hub.add_fault(INT8, "stall", at=0.5, delay=120.0, times=None)
    with pytest.raises(DownloadError):
        download_model(REPO_ID, retries=1, backoff=0.001)
    assert fault.started.is_set() and not fault.completed.is_set()


# -- pipeline() keywords ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dtype", "variant"), [("q8", "int8"), ("int8", "int8"), ("uint8", "int8"),
                                                ("fp32", "fp32"), ("float32", "fp32"), ("auto", "int8"),
                                                ({"vision_model": "fp32"}, "fp32")])
def test_dtype_maps_to_our_variants(tiny_vit: Path, dtype: object, variant: str) -> None:
    assert pipeline("image-feature-extraction", model=tiny_vit, dtype=dtype).variant == variant


def test_torch_dtype_objects_and_refusals(tiny_vit: Path) -> None:
    class FakeTorchDtype:  # str(torch.float32) == "torch.float32"
        def __init__(self, name: str) -> None:
            self.name = name

        def __str__(self) -> str:
            return f"torch.{self.name}"

    assert pipeline(model=tiny_vit, torch_dtype=FakeTorchDtype("float32")).variant == "fp32"
    with pytest.raises(ValueError, match=r"fp32.*q8"):
        pipeline(model=tiny_vit, torch_dtype=FakeTorchDtype("float16"))
    for bad in ("fp16", "q4", "bnb4"):
        with pytest.raises(ValueError, match="not supported"):
            pipeline(model=tiny_vit, dtype=bad)
    with pytest.raises(ValueError, match="contradicts"):
        pipeline(model=tiny_vit, dtype="fp32", quantized=True)
    assert pipeline(model=tiny_vit, quantized=False).variant == "fp32"  # the old spelling stays


def test_device_maps_to_providers_or_is_refused_clearly(tiny_vit: Path) -> None:
    import onnxruntime as ort

    for device in ("cpu", -1, "CPU"):
        assert pipeline(model=tiny_vit, device=device).providers == ["CPUExecutionProvider"]

    class TorchDevice:
        type, index = "cpu", None

    assert pipeline(model=tiny_vit, device=TorchDevice()).providers == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in pipeline(model=tiny_vit, device="auto").providers
    available = ort.get_available_providers()
    for device, provider in (("cuda", "CUDAExecutionProvider"), (0, "CUDAExecutionProvider"),
                             ("dml", "DmlExecutionProvider"), ("coreml", "CoreMLExecutionProvider")):
        if provider in available:
            continue
        with pytest.raises(ValueError, match=f"{provider}.*lacks"):
            pipeline(model=tiny_vit, device=device)
    with pytest.raises(ValueError, match="first GPU"):
        pipeline(model=tiny_vit, device="cuda:1")
    with pytest.raises(ValueError, match="not supported"):
        pipeline(model=tiny_vit, device="webgpu")
    with pytest.raises(ValueError, match="not both"):
        pipeline(model=tiny_vit, device="cpu", providers=["CPUExecutionProvider"])


def test_session_options_and_model_kwargs(tiny_vit: Path) -> None:
    import onnxruntime as ort

    assert pipeline(model=tiny_vit, session_options={"intra_op_num_threads": 1}).intra_op_threads == 1
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    assert pipeline(model=tiny_vit, session_options=options).intra_op_threads == 2
    options.inter_op_num_threads = 3
    with pytest.raises(ValueError, match="inter_op_num_threads"):
        pipeline(model=tiny_vit, session_options=options)
    with pytest.raises(ValueError, match=r"\['graphOptimizationLevel'\]"):
        pipeline(model=tiny_vit, session_options={"graphOptimizationLevel": "all"})
    kwargs = {"torch_dtype": "float32", "low_cpu_mem_usage": True, "attn_implementation": "sdpa"}
    assert pipeline(model=tiny_vit, model_kwargs=kwargs).variant == "fp32"
    with pytest.raises(ValueError, match=r"model_kwargs\['load_in_8bit'\]"):
        pipeline(model=tiny_vit, model_kwargs={"load_in_8bit": True})
    with pytest.raises(ValueError, match="given twice"):
        pipeline(model=tiny_vit, dtype="q8", model_kwargs={"dtype": "fp32"})


def test_code_ported_from_transformers_runs_or_fails_with_a_message(tiny_vit: Path) -> None:
    # transformers' own defaults and spellings pass
    extractor = pipeline(task="image-feature-extraction", model=str(tiny_vit), tokenizer=None, image_processor=None,
                         framework="pt", use_fast=True, trust_remote_code=False, device=-1, revision=None,
                         device_map=None)
    assert extractor.variant == "int8"
    for bad in ({"tokenizer": "bert-base-uncased"}, {"feature_extractor": object()}, {"num_workers": 4},
                {"framework": "tf"}):
        with pytest.raises(ValueError, match=r"not supported|does not support") as info:
            pipeline(model=tiny_vit, **bad)
        assert next(iter(bad)) in str(info.value)


def test_revision_downloads_that_commit(fake_hub: FakeHub, tiny_vit: Path, tmp_path: Path) -> None:  # noqa: F811
    from vitfeat_desktop.selftest.tinyvit import write_model_folder

    first = fake_hub.commit(REPO_ID)
    second = fake_hub.publish(REPO_ID, write_model_folder(tmp_path / "v2", seed=7), tag="v2")
    extractor = pipeline("image-feature-extraction", model=REPO_ID, revision="v2")
    assert read_manifest(extractor.folder)["commit"] == second != first
    again = pipeline("image-feature-extraction", model=REPO_ID, model_kwargs={"revision": "v2"},
                     local_files_only=True)
    assert again.folder == extractor.folder


def test_the_app_opening_a_library_reuses_the_hf_cache_without_network(
    fake_hub: FakeHub, tiny_vit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from vitfeat_desktop.gui import jobs

    with pytest.raises(ModelNotCachedError):  # not anywhere yet: the GUI offers the download itself
        jobs.load_extractor(REPO_ID, True)
    assert not fake_hub.requests
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    hf_cache_snapshot(tmp_path / "c", REPO_ID, tiny_vit, "12" * 20)
    extractor = jobs.load_extractor(REPO_ID, True)
    assert extractor.folder == cache_folder(REPO_ID) and not fake_hub.requests
