"""A tiny but architecturally real ViT written with the ``onnx`` helper API.

Why it lives in the package rather than in the tests: the installed app's ``--self-test`` has to prove that
ONNX Runtime, preprocessing, indexing and search all work on a machine that has no model yet and may be
offline. The same builder serves the test-suite, so both exercise the very graph shapes the real
``Xenova/vit-base-patch16-224-in21k`` export has: input ``pixel_values [N,3,224,224]``, dynamic batch, 197
tokens (196 patches + CLS), outputs ``last_hidden_state [N,197,H]`` and ``pooler_output [N,H]``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # onnx itself is imported when a model is built (a bundle may lack it: see the onnx check)
    import onnx


def build_tiny_vit(
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    patch: int = 16,
    image_size: int = 224,
    with_pooler: bool = True,
    seed: int = 0,
    opset: int = 17,
) -> onnx.ModelProto:
    """Return an ``onnx.ModelProto`` of a randomly initialised ViT encoder (pre-norm, GELU MLP, tanh pooler)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    grid = image_size // patch
    tokens = grid * grid + 1
    head_dim = hidden // heads
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(name: str, *shape: int, scale: float = 0.02) -> str:
        return const(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{output}", **attrs))
        return output

    # Patch embedding: Conv with stride = patch, then [N,H,g,g] -> [N,g*g,H]
    conv = node("Conv", ["pixel_values", weight("patch_w", hidden, 3, patch, patch, scale=0.05),
                         weight("patch_b", hidden)], "patch_conv", strides=[patch, patch],
                kernel_shape=[patch, patch])
    flat = node("Reshape", [conv, const("shape_flat", np.array([0, hidden, -1], dtype=np.int64))], "patch_flat")
    patches = node("Transpose", [flat], "patches", perm=[0, 2, 1])

    # CLS token expanded to the dynamic batch size
    batch_dim = node("Shape", ["pixel_values"], "input_shape", start=0, end=1)
    cls_shape = node("Concat", [batch_dim, const("cls_tail", np.array([1, hidden], dtype=np.int64))],
                     "cls_shape", axis=0)
    cls = node("Expand", [weight("cls_token", 1, 1, hidden, scale=0.5), cls_shape], "cls_expanded")
    x = node("Concat", [cls, patches], "tokens", axis=1)
    x = node("Add", [x, weight("pos_embed", 1, tokens, hidden, scale=0.1)], "embedded")

    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    one = const("one", np.array(1.0, dtype=np.float32))
    half = const("half", np.array(0.5, dtype=np.float32))
    scale = const("attn_scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    split_heads = const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_heads = const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))

    def layer_norm(inp: str, name: str) -> str:
        gamma = const(f"{name}_g", (1 + rng.standard_normal(hidden) * 0.05).astype(np.float32))
        beta = const(f"{name}_b", (rng.standard_normal(hidden) * 0.05).astype(np.float32))
        return node("LayerNormalization", [inp, gamma, beta], f"{name}_out", axis=-1, epsilon=1e-12)

    def linear(inp: str, name: str, n_in: int, n_out: int) -> str:
        mm = node("MatMul", [inp, weight(f"{name}_w", n_in, n_out, scale=1 / math.sqrt(n_in))], f"{name}_mm")
        return node("Add", [mm, weight(f"{name}_b", n_out)], f"{name}_out")

    for i in range(layers):
        p = f"l{i}"
        h = layer_norm(x, f"{p}_ln1")
        q = node("Transpose", [node("Reshape", [linear(h, f"{p}_q", hidden, hidden), split_heads], f"{p}_qr")],
                 f"{p}_qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(h, f"{p}_k", hidden, hidden), split_heads], f"{p}_kr")],
                 f"{p}_kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(h, f"{p}_v", hidden, hidden), split_heads], f"{p}_vr")],
                 f"{p}_vt", perm=[0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [q, k], f"{p}_qk"), scale], f"{p}_scores")
        probs = node("Softmax", [scores], f"{p}_probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"{p}_ctx")], f"{p}_ctxt", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge_heads], f"{p}_ctxm")
        x = node("Add", [x, linear(ctx, f"{p}_o", hidden, hidden)], f"{p}_res1")
        h = layer_norm(x, f"{p}_ln2")
        up = linear(h, f"{p}_fc1", hidden, hidden * 4)
        erf = node("Erf", [node("Div", [up, sqrt2], f"{p}_gdiv")], f"{p}_erf")
        gated = node("Mul", [up, node("Add", [erf, one], f"{p}_gadd")], f"{p}_gmul")
        gelu = node("Mul", [gated, half], f"{p}_gelu")
        x = node("Add", [x, linear(gelu, f"{p}_fc2", hidden * 4, hidden)], f"{p}_res2")

    nodes.append(helper.make_node("LayerNormalization", [x, const("final_ln_g", np.ones(hidden, np.float32)),
                                                          const("final_ln_b", np.zeros(hidden, np.float32))],
                                  ["last_hidden_state"], name="final_ln", axis=-1, epsilon=1e-12))
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch_size", tokens, hidden])]
    if with_pooler:
        first = node("Gather", ["last_hidden_state", const("zero_index", np.array(0, dtype=np.int64))],
                     "cls_state", axis=1)
        dense = linear(first, "pooler", hidden, hidden)
        nodes.append(helper.make_node("Tanh", [dense], ["pooler_output"], name="pooler_tanh"))
        outputs.append(helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch_size", hidden]))

    graph = helper.make_graph(
        nodes,
        "tiny_vit",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT,
                                       ["batch_size", 3, image_size, image_size])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="vitfeat-tinyvit")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


VIT_PREPROCESSOR = {
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "image_processor_type": "ViTImageProcessor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 224, "width": 224},
}


def write_model_folder(
    folder: str | Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    with_pooler: bool = True,
    quantized: bool = True,
    fp32: bool = True,
    seed: int = 0,
) -> Path:
    """Write a complete hub-layout model folder (configs, ``onnx/model.onnx``, ``onnx/model_quantized.onnx``)."""
    import onnx

    folder = Path(folder)
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    model = build_tiny_vit(hidden=hidden, layers=layers, heads=heads, with_pooler=with_pooler, seed=seed)
    fp32_path = folder / "onnx" / "model.onnx"
    onnx.save(model, fp32_path)
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32_path), str(folder / "onnx" / "model_quantized.onnx"),
                         weight_type=QuantType.QUInt8)
    if not fp32:
        fp32_path.unlink()
    config = {
        "model_type": "vit",
        "architectures": ["ViTModel"],
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "patch_size": 16,
        "image_size": 224,
        "num_channels": 3,
        "_note": "tiny random ViT generated by vitfeat_desktop.selftest.tinyvit for tests and self-tests",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(VIT_PREPROCESSOR, indent=2), encoding="utf-8")
    return folder
