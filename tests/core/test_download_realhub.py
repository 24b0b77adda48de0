"""Against the real Hugging Face hub (marked slow; skipped when the hub cannot be reached).

It checks the assumptions the fake hub is built on (302 to a CDN with X-Linked-Size/X-Linked-Etag, X-Repo-Commit,
git-sha1 ETags for small files) and that a real model downloads, verifies and runs. Run with ``pytest -m slow``.
"""

from __future__ import annotations

import socket
import urllib.parse

import numpy as np
import pytest

from vitfeat_desktop.core.models import download
from vitfeat_desktop.core.models.http_client import HubClient, hub_endpoint, normalize_etag, resolve_url
from vitfeat_desktop.core.models.layout import read_manifest

pytestmark = pytest.mark.slow
MODEL = "Xenova/dinov2-small"


@pytest.fixture
def online() -> str:
    endpoint = hub_endpoint()
    parts = urllib.parse.urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        socket.create_connection((host, parts.port or (443 if parts.scheme == "https" else 80)), timeout=5).close()
    except OSError as exc:
        pytest.skip(f"the hub ({host}) cannot be reached here: {exc}")
    return endpoint


def test_real_hub_headers(online: str) -> None:
    client = HubClient(online)
    resp = client.request("HEAD", resolve_url(online, MODEL, "main", "onnx/model_quantized.onnx"),
                          follow="same-host")
    resp.close()
    assert resp.status in (302, 307) and not client.same_origin(resp.header("Location") or "")
    assert resp.header("X-Linked-Size") and len(normalize_etag(resp.header("X-Linked-Etag")) or "") == 64
    assert len(resp.header("X-Repo-Commit") or "") == 40
    resp = client.request("HEAD", resolve_url(online, MODEL, "main", "config.json"), follow="same-host")
    resp.close()
    assert resp.status == 200 and len(normalize_etag(resp.header("ETag")) or "") == 40


def test_real_download_verifies_and_runs(online: str) -> None:
    result = download.download_model(MODEL)
    assert result.commit and len(result.commit) == 40
    from vitfeat_desktop.core.pipeline import pipeline

    extractor = pipeline(model=MODEL)
    vectors = extractor.embed(np.zeros((1, 3, 224, 224), dtype=np.float32))
    assert vectors.shape == (1, 384)
    assert read_manifest(result.folder)["files"]["onnx/model_quantized.onnx"]["lfs"] is True
