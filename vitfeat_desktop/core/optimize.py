"""Offline preparation of a downloaded int8 graph for this CPU: the same arithmetic, a faster kernel.

The hub's ``model_quantized.onnx`` files are dynamic-quantisation exports whose weights are *unsigned* 8-bit
(``MatMulInteger`` with uint8 activations and uint8 weights). onnxruntime's CPU library (MLAS) has no VNNI/AMX
kernel for that pair, only for uint8 activations times *signed* weights, so on a CPU with AVX-512 VNNI, AVX-VNNI
or AMX the hub file runs barely faster than fp32 (``tests/bench/bench_extract.py``: ViT-B 2.97 vs 3.08
images/s per core).

Re-basing the weights is exact: ``(w_u8 - zp_u8) == ((w_u8 - 128) - (zp_u8 - 128))`` for every weight, so a
graph whose uint8 weight initialisers and zero points are shifted by -128 into int8 computes bit-for-bit the
same integer products, hence the same vectors, as the file that was downloaded. It runs 2.4x faster on the
bench's CPU (ViT-B 7.2 vs 3.0 images/s per core). Because the vectors do not change, an index built with the hub
file stays valid: the library's model key keeps fingerprinting the downloaded file.

The one catch: CPUs without VNNI multiply uint8 by int8 with ``vpmaddubsw``, which saturates pairs of products
at 32767 (onnxruntime's documented "U8S8 saturation"). Whether this machine's kernel is exact is not guessed
from CPU flags (no portable way on Windows and macOS): :func:`u8s8_is_exact` runs a tiny graph whose products
would saturate and compares the result. Only where it is exact is the converted file used.

Converted files are regenerable and live in ``config.cache_dir()/optimized`` (model folders may be read-only
imports), keyed by the source file's path, size and mtime; any failure falls back to the downloaded file.

Measured and not adopted (figures in ``bench_extract.py``'s docstring): static per-channel QDQ quantisation
calibrated on photos (batch-independent, but pooled cosine to fp32 0.989 mean / 0.956 worst on DINOv2-S, below
the 0.995 bar, and slower than the converted dynamic file), and saving onnxruntime's optimised graph offline
(saves 0.1-0.3 s of CPU per session start, but ties the file to one execution provider).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Bump when the conversion changes, so older converted files are not reused.
CONVERSION_VERSION = "s8-1"
OPTIMIZED_DIR = "optimized"


def signed_weights_path(onnx_path: Path, cache_root: Path) -> Path:
    """Where the int8-weight copy of ``onnx_path`` is kept (a name that changes with the source file)."""
    stat = onnx_path.stat()
    key = f"{onnx_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{CONVERSION_VERSION}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    folder_name = onnx_path.resolve().parent.parent.name or "model"
    return cache_root / OPTIMIZED_DIR / f"{folder_name}-{onnx_path.stem}-{digest}.onnx"


def prepare_for_cpu(onnx_path: Path, cache_root: Path) -> Path:
    """The file a CPU session should load for ``onnx_path``: its exact int8-weight copy where that is faster
    and exact on this machine, else ``onnx_path`` itself. Never raises: a failed conversion only costs speed."""
    try:
        target = signed_weights_path(onnx_path, cache_root)
        if target.is_file():
            return target
        if not _has_unsigned_integer_weights(onnx_path) or not u8s8_is_exact():
            return onnx_path
        return convert_to_signed_weights(onnx_path, target)
    except Exception as exc:  # any problem here must leave the user with the working original
        log.warning("int8 weight conversion skipped for %s: %s", onnx_path, exc)
        return onnx_path


def convert_to_signed_weights(source: Path, target: Path) -> Path:
    """Write ``source`` with every uint8 ``MatMulInteger`` weight and weight zero point shifted to int8.

    Written to a temporary file in the target folder and renamed into place, so two processes converting at
    once, or a crash halfway, never leave a truncated model to be loaded later.
    """
    import onnx

    model = onnx.load(str(source))
    converted = shift_matmul_weights(model)
    if converted == 0:
        return source
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem, suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("converted %d uint8 weight tensors of %s to int8 (%s)", converted, source, target)
    return target


def shift_matmul_weights(model: Any) -> int:
    """Shift the uint8 weight initialisers (input 1) and weight zero points (input 3) of every
    ``MatMulInteger`` in ``model`` by -128 into int8, in place; returns how many tensors changed.

    A tensor is only changed when *every* node that reads it is a ``MatMulInteger`` reading it as the weight or
    its zero point, and both of a node's inputs are changed or neither (mixed signedness is not valid ONNX).
    """
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    readers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, index))

    def is_u8_init(name: str) -> bool:
        tensor = initializers.get(name)
        return tensor is not None and tensor.data_type == TensorProto.UINT8

    def only_weight_reader(name: str) -> bool:
        return all(n.op_type == "MatMulInteger" and i in (1, 3) for n, i in readers.get(name, []))

    to_shift: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 2:
            continue
        weight = node.input[1]
        zero_point = node.input[3] if len(node.input) > 3 and node.input[3] else ""
        names = [weight] + ([zero_point] if zero_point else [])
        if all(is_u8_init(n) and only_weight_reader(n) for n in names):
            to_shift.update(names)
    for name in to_shift:
        tensor = initializers[name]
        shifted = (numpy_helper.to_array(tensor).astype(np.int16) - 128).astype(np.int8)
        tensor.CopyFrom(numpy_helper.from_array(shifted, name))
    return len(to_shift)


def _has_unsigned_integer_weights(onnx_path: Path) -> bool:
    """Whether any ``MatMulInteger`` of the graph has a uint8 weight initialiser (external data not read)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(onnx_path), load_external_data=False)
    u8 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.UINT8}
    return any(node.op_type == "MatMulInteger" and len(node.input) > 1 and node.input[1] in u8
               for node in model.graph.node)


@functools.cache
def u8s8_is_exact() -> bool:
    """Whether this machine's onnxruntime multiplies uint8 activations by int8 weights without saturating.

    The probe is the pattern the converted graphs run (``DynamicQuantizeLinear`` -> ``MatMulInteger`` with a
    constant int8 weight -> scale), on activations that quantise to 255 and weights of -128/127: with
    ``vpmaddubsw`` (AVX2 without VNNI) each pair of products would saturate at 32767 instead of 64770.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = 256, 32
    rng = np.random.default_rng(0)
    weights = rng.choice(np.array([-128, 127, 127, -128, 100], dtype=np.int8), size=(k, n))
    graph = helper.make_graph(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
            helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
            helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["accf", "xs"], ["y"]),
        ],
        "u8s8_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array(0, np.int8), "wz")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.ones((64, k), dtype=np.float32)  # quantises to 255 with zero point 0 and scale 1/255
    got = session.run(["y"], {"x": x})[0]
    expected = x @ weights.astype(np.float32)
    exact = bool(np.allclose(got, expected, rtol=1e-5, atol=1e-3))
    if not exact:
        log.info("this CPU's uint8 x int8 kernel saturates; int8 models run with their downloaded weights")
    return exact
