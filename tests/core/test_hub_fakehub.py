"""The fake hub itself answers like the real one (so the other tests prove something), and its fixture works."""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse

from fakehub import FakeHub, fake_hub  # noqa: F401  (fake_hub is a fixture)

from vitfeat_desktop.core.models.resolve import resolve_model


def head(url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    conn.request("HEAD", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
    return conn.getresponse()


def test_fixture_serves_a_tiny_model_and_sets_hf_endpoint(fake_hub: FakeHub) -> None:  # noqa: F811
    resolved = resolve_model("Xenova/tiny-vit")
    assert resolved.onnx_path.is_file()
    assert fake_hub.count("GET", "onnx/model_quantized.onnx", "cdn") == 1


def test_headers_match_the_real_hub(fake_hub: FakeHub) -> None:  # noqa: F811
    base = f"{fake_hub.endpoint}/Xenova/tiny-vit/resolve/main"
    small = head(f"{base}/config.json")
    data = fake_hub.file_bytes("Xenova/tiny-vit", "config.json")
    assert small.status == 200 and small.getheader("X-Repo-Commit") == fake_hub.commit("Xenova/tiny-vit")
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    assert small.getheader("ETag") == f'"{git_sha1}"' and int(small.getheader("Content-Length") or 0) == len(data)

    lfs = head(f"{base}/onnx/model.onnx")
    data = fake_hub.file_bytes("Xenova/tiny-vit", "onnx/model.onnx")
    assert lfs.status == 302
    assert lfs.getheader("X-Linked-Etag") == f'"{hashlib.sha256(data).hexdigest()}"'
    assert int(lfs.getheader("X-Linked-Size") or 0) == len(data)
    location = lfs.getheader("Location") or ""
    assert location.startswith(fake_hub.cdn_endpoint) and fake_hub.cdn_endpoint != fake_hub.endpoint
    cdn = head(location)
    assert cdn.status == 200 and cdn.getheader("Accept-Ranges") == "bytes"
    assert head(location, {"Authorization": "Bearer x"}).status == 400  # like S3: one auth mechanism only

    missing = head(f"{base}/onnx/nope.onnx")
    assert missing.status == 404 and missing.getheader("X-Error-Code") == "EntryNotFound"
    unknown = head(f"{fake_hub.endpoint}/Xenova/nothing/resolve/main/config.json")
    assert unknown.status == 401 and unknown.getheader("X-Error-Code") == "RepositoryNotFound"
    bad_rev = head(f"{fake_hub.endpoint}/Xenova/tiny-vit/resolve/v9/config.json")
    assert bad_rev.status == 404 and bad_rev.getheader("X-Error-Code") == "RevisionNotFound"
