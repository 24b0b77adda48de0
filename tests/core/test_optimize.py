"""The int8 weight conversion (core/optimize.py): exact, cached, and never in the way when it cannot help."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitfeat_desktop import config, pipeline
from vitfeat_desktop.core import optimize


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _pixels(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, 224, 224)).astype(np.float32)


def _weight_types(path: Path) -> set[int]:
    model = onnx.load(str(path))
    inits = {t.name: t.data_type for t in model.graph.initializer}
    return {inits[n.input[1]] for n in model.graph.node if n.op_type == "MatMulInteger" and n.input[1] in inits}


needs_exact_kernel = pytest.mark.skipif(not optimize.u8s8_is_exact(),
                                        reason="this CPU's uint8 x int8 kernel saturates; no conversion here")


@needs_exact_kernel
def test_converted_graph_computes_the_same_vectors(tiny_vit: Path, tmp_path: Path) -> None:
    source = tiny_vit / "onnx" / "model_quantized.onnx"
    assert _weight_types(source) == {TensorProto.UINT8}
    target = optimize.convert_to_signed_weights(source, tmp_path / "s8.onnx")
    assert target == tmp_path / "s8.onnx"
    assert _weight_types(target) == {TensorProto.INT8}
    pixels = _pixels()
    original = _session(source).run(None, {"pixel_values": pixels})
    converted = _session(target).run(None, {"pixel_values": pixels})
    for a, b in zip(original, converted, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


@needs_exact_kernel
def test_pipeline_runs_the_cached_copy_and_keeps_the_downloaded_file_as_identity(tiny_vit: Path) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit)
    pixels = _pixels(2)
    vectors = extractor.embed(pixels)
    loaded = extractor.session_path
    assert loaded != extractor.onnx_path
    assert loaded.parent == config.cache_dir() / optimize.OPTIMIZED_DIR
    assert extractor.onnx_path == tiny_vit / "onnx" / "model_quantized.onnx"  # the model key fingerprints this
    assert extractor.describe()["onnx_loaded"] == str(loaded)
    original = _session(extractor.onnx_path)  # int8 runs one image per run (batch-independent vectors)
    reference = np.concatenate([original.run(["pooler_output"], {"pixel_values": p[None]})[0] for p in pixels])
    np.testing.assert_allclose(vectors, reference, rtol=0, atol=1e-6)
    mtime = loaded.stat().st_mtime_ns
    again = pipeline("image-feature-extraction", model=tiny_vit)
    _ = again.outputs
    assert again.session_path == loaded and loaded.stat().st_mtime_ns == mtime  # converted once, then reused


def test_fp32_is_never_converted(tiny_vit: Path) -> None:
    extractor = pipeline("image-feature-extraction", model=tiny_vit, quantized=False)
    _ = extractor.outputs
    assert extractor.session_path == extractor.onnx_path
    assert not (config.cache_dir() / optimize.OPTIMIZED_DIR).exists()


def test_a_saturating_kernel_keeps_the_downloaded_file(tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optimize, "u8s8_is_exact", lambda: False)
    extractor = pipeline("image-feature-extraction", model=tiny_vit)
    _ = extractor.outputs
    assert extractor.session_path == extractor.onnx_path


@needs_exact_kernel
def test_a_damaged_cached_copy_falls_back_to_the_downloaded_file(tiny_vit: Path, caplog: pytest.LogCaptureFixture
                                                                 ) -> None:
    source = tiny_vit / "onnx" / "model_quantized.onnx"
    target = optimize.signed_weights_path(source, config.cache_dir())
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not an onnx file")
    with caplog.at_level(logging.WARNING):
        extractor = pipeline("image-feature-extraction", model=tiny_vit)
        vectors = extractor.embed(_pixels(1))
    assert extractor.session_path == source
    assert "failed to load" in caplog.text
    assert vectors.shape == (1, 32)


def test_a_changed_source_gets_a_new_copy(tiny_vit: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_vit, folder)
    source = folder / "onnx" / "model_quantized.onnx"
    first = optimize.signed_weights_path(source, tmp_path / "cache")
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert optimize.signed_weights_path(source, tmp_path / "cache") != first


def test_only_tensors_read_solely_as_matmulinteger_weights_are_shifted() -> None:
    w_own = numpy_helper.from_array(np.array([[0, 128], [255, 7]], dtype=np.uint8), "w_own")
    w_shared = numpy_helper.from_array(np.array([[1, 2], [3, 4]], dtype=np.uint8), "w_shared")
    zp = numpy_helper.from_array(np.array(128, dtype=np.uint8), "zp")
    graph = helper.make_graph(
        [
            helper.make_node("MatMulInteger", ["a", "w_own", "", "zp"], ["y1"]),
            helper.make_node("MatMulInteger", ["a", "w_shared"], ["y2"]),
            helper.make_node("Cast", ["w_shared"], ["w_shared_f"], to=TensorProto.FLOAT),
        ],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 2])],
        [helper.make_tensor_value_info(n, TensorProto.INT32, [2, 2]) for n in ("y1", "y2")]
        + [helper.make_tensor_value_info("w_shared_f", TensorProto.FLOAT, [2, 2])],
        initializer=[w_own, w_shared, zp],
    )
    model = helper.make_model(graph)
    assert optimize.shift_matmul_weights(model) == 2
    after = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(after["w_own"], np.array([[-128, 0], [127, -121]], dtype=np.int8))
    assert after["zp"] == 0 and after["zp"].dtype == np.int8
    assert after["w_shared"].dtype == np.uint8  # also read by a Cast: left alone


def test_conversion_problems_never_reach_the_user(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "onnx" / "model_quantized.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING):
        assert optimize.prepare_for_cpu(broken, tmp_path / "cache") == broken
    assert "conversion skipped" in caplog.text
