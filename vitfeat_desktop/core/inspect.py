"""What the model actually produced for one photo, and where in the photo it came from.

Photographers and developers both ask "why did these two match?". :func:`inspect_image` runs the model once and
returns the raw ONNX output exactly as the pipeline gives it (name, shape, dtype, statistics), how the token axis
splits into the CLS token and the patch grid, the pooled vector the index uses, and a per-patch heatmap over the
model's own crop: each patch's feature norm or, given a query vector, its cosine similarity to the query. It is
in the core so a script or the CLI gets the same answer as the GUI's inspector, which only draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitfeat_desktop.core.images import open_image

if TYPE_CHECKING:  # only the type: the extractor is built by the caller
    from vitfeat_desktop.core.pipeline import FeatureExtractor


@dataclass
class Inspection:
    """Everything the inspector shows; ``to_json()`` is the summary (what "Copy as JSON" puts on the clipboard)."""

    path: str
    model: str
    variant: str
    output_name: str
    shape: list[int]
    dtype: str
    stats: dict[str, float]
    cls_tokens: int
    patch_tokens: int
    extra_tokens: int
    patch_grid: tuple[int, int]
    pooled_name: str
    pooled_size: int
    pooled_norm: float
    heat_mode: str
    heat: np.ndarray = field(repr=False)  # [gh, gw] float32 in 0..1
    crop: np.ndarray = field(repr=False)  # [H, W, 3] uint8, the pixels the model saw
    features: np.ndarray = field(repr=False)  # [1, T, H] float32
    pooled: np.ndarray = field(repr=False)  # [H]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "model": self.model,
            "variant": self.variant,
            "output": {"name": self.output_name, "shape": self.shape, "dtype": self.dtype, **self.stats},
            "tokens": {"cls": self.cls_tokens, "patches": self.patch_tokens, "extra": self.extra_tokens,
                       "patch_grid": list(self.patch_grid)},
            "pooled": {"source": self.pooled_name, "size": self.pooled_size, "l2_norm": self.pooled_norm},
            "heatmap": self.heat_mode,
        }

    def shape_text(self) -> str:
        return f"{self.output_name} [{', '.join(str(d) for d in self.shape)}]"


def patch_layout(tokens: int, input_hw: tuple[int, int], patch_size: int | None) -> tuple[int, int, int]:
    """Split the token axis into (grid_h, grid_w, extra): CLS first, then the patch grid, then register tokens.

    The patch size comes from config.json; without it we take the largest square grid that fits.
    """
    h, w = input_hw
    if patch_size and h % patch_size == 0 and w % patch_size == 0:
        gh, gw = h // patch_size, w // patch_size
        if gh * gw <= tokens - 1:
            return gh, gw, tokens - 1 - gh * gw
    side = math.isqrt(max(0, tokens - 1))
    return side, side, tokens - 1 - side * side


def inspect_image(extractor: FeatureExtractor, path: Path, query: np.ndarray | None = None) -> Inspection:
    """Run the model once on ``path`` and compute what the inspector shows (seconds on a CPU: call it off any
    GUI thread). ``query``: a pooled vector to compare each patch with, for the heatmap."""
    pre = extractor.preprocessor
    image = open_image(path, min_side=pre.min_decode_side())
    chw = pre.to_uint8_chw(image)
    pixel_values = pre.normalize_uint8(chw)[None]
    out = extractor.run(pixel_values, hidden=True, pooled=True)
    hidden = out["last_hidden_state"]
    if "pooler_output" in out:
        pooled, pooled_name = out["pooler_output"][0], "pooler_output"
    else:
        pooled, pooled_name = hidden[0, 0], "CLS token (the model has no pooler_output)"
    tokens = int(hidden.shape[1])
    patch_size = extractor.model_config.get("patch_size")
    gh, gw, extra = patch_layout(tokens, pre.output_hw(), patch_size if isinstance(patch_size, int) else None)
    patches = hidden[0, 1 + extra : 1 + extra + gh * gw] if extra and tokens - 1 - extra == gh * gw else \
        hidden[0, 1 : 1 + gh * gw]
    if query is not None and query.shape[-1] == patches.shape[-1]:
        q = query.astype(np.float32).ravel()
        q = q / (np.linalg.norm(q) + 1e-12)
        sims = patches @ q / (np.linalg.norm(patches, axis=1) + 1e-12)
        values, mode = sims, "cosine similarity of each patch to the query"
    else:
        values, mode = np.linalg.norm(patches, axis=1), "feature norm of each patch"
    heat = values.reshape(gh, gw).astype(np.float32)
    lo, hi = float(heat.min()), float(heat.max())
    heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    return Inspection(
        path=str(path), model=str(extractor.model_id), variant=str(extractor.variant),
        output_name="last_hidden_state", shape=[int(d) for d in hidden.shape], dtype=str(hidden.dtype),
        stats={"min": float(hidden.min()), "max": float(hidden.max()), "mean": float(hidden.mean()),
               "std": float(hidden.std())},
        cls_tokens=1, patch_tokens=gh * gw, extra_tokens=extra, patch_grid=(gh, gw),
        pooled_name=pooled_name, pooled_size=int(pooled.shape[-1]), pooled_norm=float(np.linalg.norm(pooled)),
        heat_mode=mode, heat=heat, crop=np.ascontiguousarray(chw.transpose(1, 2, 0)),
        features=hidden, pooled=np.asarray(pooled, dtype=np.float32),
    )
