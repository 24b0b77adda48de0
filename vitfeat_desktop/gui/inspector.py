"""The inspector: what the model actually produced for one photo, and where in the photo it came from.

Photographers and developers both ask "why did these two match?". The panel shows the raw ONNX output exactly as
the pipeline returns it (name, shape, dtype, statistics), how the token axis splits into the CLS token and the
patch grid, the pooled vector used by the index, and a heatmap over the model's own 224×224 crop: per-patch
feature norm, or, when a query is active, each patch's cosine similarity to the query's pooled vector. The heavy
part (:func:`inspect_image`) runs on a worker; the widget only draws the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
        QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop.core.images import open_image


@dataclass
class Inspection:
    """Everything the panel shows; ``to_json()`` is what "Copy as JSON" puts on the clipboard."""

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


def inspect_image(extractor: Any, path: Path, query: np.ndarray | None = None) -> Inspection:
    """Run the model once on ``path`` and compute what the inspector shows (runs on a worker thread)."""
    image = open_image(path, min_side=extractor.preprocessor.min_decode_side())
    chw = extractor.preprocessor.to_uint8_chw(image)
    pixel_values = extractor.preprocessor.normalize_uint8(chw)[None]
    out = extractor.run(pixel_values, hidden=True, pooled=True)
    hidden = out["last_hidden_state"]
    if "pooler_output" in out:
        pooled, pooled_name = out["pooler_output"][0], "pooler_output"
    else:
        pooled, pooled_name = hidden[0, 0], "CLS token (the model has no pooler_output)"
    tokens = int(hidden.shape[1])
    patch_size = extractor.model_config.get("patch_size") if isinstance(extractor.model_config, dict) else None
    gh, gw, extra = patch_layout(tokens, tuple(extractor.preprocessor.output_hw()), patch_size)
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


def heatmap_image(crop: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> QImage:
    """Blend a blue→yellow→red map of ``heat`` over the crop, nearest-neighbour so each patch reads as a square."""
    h, w = crop.shape[:2]
    gh, gw = heat.shape
    ys = np.minimum((np.arange(h) * gh) // max(1, h), gh - 1)
    xs = np.minimum((np.arange(w) * gw) // max(1, w), gw - 1)
    big = heat[ys[:, None], xs[None, :]]
    stops = np.array([[40, 60, 200], [60, 200, 220], [250, 230, 60], [230, 40, 30]], dtype=np.float32)
    pos = big * (len(stops) - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    frac = (pos - i0)[..., None]
    colors = stops[i0] * (1 - frac) + stops[i0 + 1] * frac
    blended = (crop.astype(np.float32) * (1 - alpha) + colors * alpha).clip(0, 255).astype(np.uint8)
    blended = np.ascontiguousarray(blended)
    return QImage(blended.data, w, h, w * 3, QImage.Format.Format_RGB888).copy()


class InspectorPanel(QWidget):
    """Shows an :class:`Inspection`. ``request`` asks the window to inspect a file (it owns the workers)."""

    request = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.current: Inspection | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.title = QLabel("Select a photo to see what the model makes of it.")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)
        self.heat_label = QLabel()
        self.heat_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heat_label.setMinimumSize(160, 160)
        self.heat_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.heat_label)
        self.heat_caption = QLabel()
        self.heat_caption.setWordWrap(True)
        self.heat_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.heat_caption)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.fields: dict[str, QLabel] = {}
        for key, label in (("model", "Model"), ("output", "Output"), ("dtype", "Type"), ("stats", "Values"),
                           ("tokens", "Tokens"), ("grid", "Patch grid"), ("pooled", "Pooled vector")):
            value = QLabel("–")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[key] = value
            form.addRow(label + ":", value)
        layout.addLayout(form)
        buttons = QVBoxLayout()
        self.copy_button = QPushButton("Copy as JSON")
        self.copy_button.setToolTip("Copy the shape and statistics shown here to the clipboard")
        self.save_button = QPushButton("Save features (.npy)…")
        self.save_button.setToolTip("Save the full last_hidden_state array as a NumPy file")
        self.copy_button.clicked.connect(self.copy_json)
        self.save_button.clicked.connect(lambda _checked=False: self.save_npy())  # not the checked flag
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self._set_enabled(False)
        self.heat_label.setVisible(False)

    def _set_enabled(self, on: bool) -> None:
        self.copy_button.setEnabled(on)
        self.save_button.setEnabled(on)

    def show_busy(self, path: Path) -> None:
        self.title.setText(f"Running the model on {path.name}…")

    def show_error(self, message: str) -> None:
        self.current = None
        self._set_enabled(False)
        self.title.setText(f"Cannot inspect: {message}")
        self.heat_label.clear()

    def show_inspection(self, ins: Inspection) -> None:
        self.current = ins
        self.title.setText(f"<b>{Path(ins.path).name}</b>")
        name = Path(ins.model).name if ("/" in ins.model and Path(ins.model).is_absolute()) else ins.model
        self.fields["model"].setText(f"{name} ({ins.variant})")
        self.fields["model"].setToolTip(ins.model)
        self.fields["output"].setText(f"<code>{ins.shape_text()}</code>")
        self.fields["dtype"].setText(ins.dtype)
        s = ins.stats
        self.fields["stats"].setText(
            f"min {s['min']:.3f} · max {s['max']:.3f}<br>mean {s['mean']:.3f} · std {s['std']:.3f}")
        extra = f" + {ins.extra_tokens} register" if ins.extra_tokens else ""
        self.fields["tokens"].setText(f"{ins.shape[1]} = {ins.cls_tokens} CLS + {ins.patch_tokens} patches{extra}")
        self.fields["grid"].setText(f"{ins.patch_grid[0]} × {ins.patch_grid[1]}")
        self.fields["pooled"].setText(f"{ins.pooled_size} values, L2 norm {ins.pooled_norm:.3f}<br>"
                                      f"<small>from {ins.pooled_name}</small>")
        self._pixmap = QPixmap.fromImage(heatmap_image(ins.crop, ins.heat))
        self.heat_label.setVisible(True)
        self._rescale()
        self.heat_caption.setText(f"Heatmap: {ins.heat_mode} (red = high)")
        self._set_enabled(True)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        pm = getattr(self, "_pixmap", None)
        if pm is None:
            return
        side = max(120, min(self.width() - 24, 360))
        self.heat_label.setPixmap(pm.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.SmoothTransformation))

    def copy_json(self) -> None:
        if self.current is not None:
            QGuiApplication.clipboard().setText(json.dumps(self.current.to_json(), indent=2))

    def save_npy(self, path: str | None = None) -> Path | None:
        if self.current is None:
            return None
        if not path:
            default = str(Path.home() / (Path(self.current.path).stem + "-features.npy"))
            path, _ = QFileDialog.getSaveFileName(self, "Save features", default, "NumPy array (*.npy)")
            if not path:
                return None
        target = Path(path)
        np.save(target, self.current.features)
        return target
