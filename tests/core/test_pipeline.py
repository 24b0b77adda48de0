"""The image-feature-extraction pipeline: inputs, outputs, errors, and equality with a plain ONNX Runtime run."""

from __future__ import annotations

import http.server
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitfeat_desktop import pipeline
from vitfeat_desktop.core.errors import ImageReadError, ModelError, ModelNotCachedError
from vitfeat_desktop.core.preprocess import Preprocessor


def _reference(model_dir: Path, onnx_name: str, images: list[Image.Image]) -> list[np.ndarray]:
    """Outputs of the untouched ONNX graph (no fusions) on independently preprocessed pixels."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_dir / "onnx" / onnx_name), options, providers=["CPUExecutionProvider"])
    pixels = Preprocessor.from_file(model_dir / "preprocessor_config.json")(images)
    return session.run(None, {"pixel_values": pixels})


def test_only_the_feature_extraction_task_is_accepted(tiny_vit: Path) -> None:
    with pytest.raises(ValueError, match="image-feature-extraction"):
        pipeline("image-classification", model=tiny_vit)


@pytest.mark.parametrize("quantized", [True, False])
def test_shapes_and_dtypes(tiny_vit: Path, photos: list[Path], quantized: bool) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=quantized)
    hidden = extractor(str(photos[0]))
    assert hidden.shape == (1, 197, 32) and hidden.dtype == np.float32
    pooled = extractor([str(photos[0]), photos[1]], pool=True)
    assert pooled.shape == (2, 32) and pooled.dtype == np.float32
    assert extractor.variant == ("int8" if quantized else "fp32")


def test_every_input_type_gives_the_same_features(tiny_vit: Path, photos: list[Path]) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=False)
    path = photos[2]
    image = Image.open(path).convert("RGB")
    outputs = [
        extractor(str(path)),
        extractor(path),
        extractor(image),
        extractor(np.asarray(image)),
    ]
    for out in outputs[1:]:
        np.testing.assert_allclose(out, outputs[0], atol=1e-6)


def test_batch_equals_one_by_one_and_keeps_order(tiny_vit: Path, photos: list[Path]) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=False, batch_size=3)
    files = [str(p) for p in photos[:7]]
    batched = extractor(files, pool=True)
    single = np.concatenate([extractor(f, pool=True) for f in files])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert not np.allclose(batched[0], batched[1])


def test_int8_vectors_do_not_depend_on_their_batch(tiny_vit: Path, photos: list[Path]) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit, batch_size=4)
    files = [str(p) for p in photos[:5]]
    batched = extractor(files, pool=True)
    np.testing.assert_array_equal(batched[2:3], extractor(files[2], pool=True))
    np.testing.assert_array_equal(extractor(files[::-1], pool=True)[::-1], batched)
    hidden = extractor(files[:3])
    np.testing.assert_array_equal(hidden[1:2], extractor(files[1]))


def test_outputs_equal_the_unoptimised_graph(tiny_vit: Path, photos: list[Path]) -> None:
    """Graph fusions and threading must not change the numbers (1e-4 is the bar against transformers)."""
    images = [Image.open(p).convert("RGB") for p in photos[:3]]
    hidden_ref, pooled_ref = _reference(tiny_vit, "model.onnx", images)
    extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=False)
    np.testing.assert_allclose(extractor(images), hidden_ref, atol=1e-4)
    np.testing.assert_allclose(extractor(images, pool=True), pooled_ref, atol=1e-4)


def test_int8_is_close_to_fp32(tiny_vit: Path, photos: list[Path]) -> None:
    fp32 = pipeline("image-feature-extraction", model=tiny_vit, quantized=False)(str(photos[0]), pool=True)
    int8 = pipeline("image-feature-extraction", model=tiny_vit)(str(photos[0]), pool=True)
    cosine = float(fp32[0] @ int8[0] / np.linalg.norm(fp32[0]) / np.linalg.norm(int8[0]))
    assert cosine > 0.98
    assert not np.array_equal(fp32, int8)


def test_model_without_pooler(tiny_vit_no_pooler: Path, photos: list[Path]) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit_no_pooler)
    assert extractor(str(photos[0])).shape == (1, 197, 32)
    with pytest.raises(ModelError, match="no pooler_output"):
        extractor(str(photos[0]), pool=True)
    assert extractor.pooling == "cls_token"
    pixels = extractor.preprocess(str(photos[0]))
    np.testing.assert_allclose(extractor.embed(pixels), extractor(str(photos[0]))[:, 0, :], atol=1e-6)


def test_missing_variant_names_the_file(tiny_vit: Path, tmp_path: Path) -> None:
    folder = tmp_path / "only-fp32"
    shutil.copytree(tiny_vit, folder)
    (folder / "onnx" / "model_quantized.onnx").unlink()
    with pytest.raises(ModelError, match=r"onnx/model_quantized\.onnx"):
        pipeline("image-feature-extraction", model=folder)
    assert pipeline("image-feature-extraction", model=folder, quantized=False).variant == "fp32"


def test_uncached_hub_id_says_where_and_how(monkeypatch: pytest.MonkeyPatch, vitfeat_home: Path) -> None:
    monkeypatch.setenv("VITFEAT_OFFLINE", "1")
    with pytest.raises(ModelNotCachedError) as info:
        pipeline("image-feature-extraction", model="someone/not-here")
    message = str(info.value)
    assert "someone/not-here" in message
    assert str(vitfeat_home) in message
    assert "vitfeat model" in message


def test_hub_ids_that_escape_the_cache_are_refused() -> None:
    for bad in ("../../etc", "a/../../b", "org/name/../../x", "org//name"):
        with pytest.raises(ModelError):
            pipeline("image-feature-extraction", model=bad)


def test_unreadable_inputs_give_clear_errors(tiny_vit: Path, tmp_path: Path) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a picture")
    with pytest.raises(ImageReadError, match=r"notes\.jpg"):
        extractor(str(bad))
    with pytest.raises(ImageReadError, match="not found"):
        extractor(str(tmp_path / "missing.jpg"))
    with pytest.raises(TypeError, match="uint8"):
        extractor(np.zeros((224, 224, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        extractor(np.zeros((3, 224, 224, 2), dtype=np.uint8))


def test_http_url_input(tiny_vit: Path, photos: list[Path], tmp_path: Path) -> None:
    shutil.copy(photos[0], tmp_path / "photo.jpg")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=False)
        url = f"http://127.0.0.1:{server.server_address[1]}/photo.jpg"
        np.testing.assert_allclose(extractor(url), extractor(str(photos[0])), atol=1e-6)
        with pytest.raises(ImageReadError, match="404"):
            extractor(url.replace("photo.jpg", "nope.jpg"))
    finally:
        server.shutdown()
        server.server_close()


def test_one_session_is_safe_from_many_threads(tiny_vit: Path, photos: list[Path]) -> None:
    # fp32: int8 models quantise activations per batch, so their outputs depend slightly on batch company
    extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=False)
    files = [str(p) for p in photos[:6]]
    expected = extractor(files, pool=True)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda f: extractor(f, pool=True)[0], files * 3))
    np.testing.assert_allclose(np.stack(results), np.concatenate([expected] * 3), atol=1e-5)


def test_cancel_and_progress(tiny_vit: Path, photos: list[Path]) -> None:
    from vitfeat_desktop.core.errors import Cancelled

    extractor = pipeline("image-feature-extraction", model=tiny_vit, batch_size=2)
    seen: list[tuple[int, int]] = []
    extractor([str(p) for p in photos[:5]], pool=True, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5) and len(seen) == 3
    with pytest.raises(Cancelled):
        extractor([str(p) for p in photos[:5]], cancel=lambda: True)


def test_real_model_shapes_and_meaning(real_model: Path, photos: list[Path], tmp_path: Path) -> None:
    """A half-size copy of a photo must be far closer to its original than to any other photo."""
    extractor = pipeline("image-feature-extraction", model=real_model)
    assert extractor(str(photos[0])).shape == (1, 257, 384)
    originals = [str(p) for p in photos[:6]]
    half = Image.open(photos[0])
    half = half.resize((half.width // 2, half.height // 2))
    half_path = tmp_path / "half.jpg"
    half.save(half_path, quality=85)
    vectors = extractor([*originals, str(half_path)], pool=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = vectors[:-1] @ vectors[-1]
    assert sims[0] > 0.9
    assert sims[0] - sims[1:].max() > 0.1, sims


def test_dimensions_come_from_the_graph(tiny_vit: Path, tiny_vit_no_pooler: Path) -> None:
    assert pipeline("image-feature-extraction", model=tiny_vit).embedding_dim == 32
    assert pipeline("image-feature-extraction", model=tiny_vit).hidden_size == 32
    assert pipeline("image-feature-extraction", model=tiny_vit_no_pooler).embedding_dim == 32
