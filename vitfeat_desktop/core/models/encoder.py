"""Is this ONNX file an image encoder the pipeline can run? Asked of every import and every downloaded graph.

A file can be a valid ONNX graph and still be useless here (a text tower, a classifier head, a 7-byte error page
served with a matching checksum): ONNX Runtime opens it and its inputs and outputs are checked before it is ever
listed as a usable model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vitfeat_desktop.core.errors import ModelError, one_line

Dim = int | str | None  # an ONNX dimension: a size, a symbolic name, or unknown


@dataclass(frozen=True)
class EncoderSignature:
    """What ONNX Runtime says an ONNX file takes and gives, and which outputs hold hidden states / pooled vector."""

    input_name: str
    input_shape: tuple[Dim, ...]
    outputs: dict[str, tuple[Dim, ...]]
    hidden: str
    pooled: str | None

    def mapping(self) -> dict[str, str]:
        """The manifest's ``"outputs"`` entry: only names that differ from the standard ones."""
        out = {}
        if self.hidden != "last_hidden_state":
            out["last_hidden_state"] = self.hidden
        if self.pooled is not None and self.pooled != "pooler_output":
            out["pooler_output"] = self.pooled
        return out


def inspect_encoder(onnx_path: Path, mapping: dict[str, str] | None = None) -> EncoderSignature:
    """Open ``onnx_path`` with ONNX Runtime and check it is an image encoder the pipeline can run.

    It must take one float32 input ``[N,3,H,W]`` and give a rank-3 hidden-state output: ``last_hidden_state``,
    the name ``mapping`` gives, or the only rank-3 output. The pooled output is ``pooler_output``, the mapped
    name, or the only rank-2 output (``image_embeds`` of a CLIP vision tower), and may be absent.
    """
    import onnxruntime as ort

    mapping = mapping or {}
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{onnx_path} is not a model ONNX Runtime can open: {one_line(exc, first_line=True)}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{onnx_path} takes inputs {[i.name for i in inputs]}; an image encoder takes one "
                         "(pixel_values [N,3,H,W])")
    inp = inputs[0]
    shape = tuple(inp.shape)
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ModelError(f"{onnx_path} input {inp.name} has shape {list(shape)}; an image encoder takes [N,3,H,W]")
    if inp.type != "tensor(float)":
        raise ModelError(f"{onnx_path} input {inp.name} is {inp.type}; vitfeat feeds float32 pixels")
    outputs = {o.name: tuple(o.shape) for o in session.get_outputs()}

    def pick(standard: str, rank: int) -> str | None:
        wanted = mapping.get(standard)
        if wanted:
            if wanted not in outputs:
                raise ModelError(f"{onnx_path} has no output {wanted!r} (outputs: {list(outputs)})")
            return wanted
        if standard in outputs:
            return standard
        candidates = [n for n, s in outputs.items() if len(s) == rank]
        return candidates[0] if len(candidates) == 1 else None

    hidden = pick("last_hidden_state", 3)
    if hidden is None:
        raise ModelError(f"{onnx_path} has outputs {list(outputs)} but no hidden states [N,tokens,hidden]; "
                         "it is not an image encoder vitfeat can run")
    pooled = pick("pooler_output", 2)
    return EncoderSignature(inp.name, shape, outputs, hidden, pooled)
