"""The inspector panel: what the model actually produced for one photo, and where in the photo it came from.

The panel shows an :class:`~vitfeat_desktop.core.inspect.Inspection`: the raw ONNX output exactly as the pipeline
returns it (name, shape, dtype, statistics), how the token axis splits into the CLS token and the patch grid, the
pooled vector used by the index, and a heatmap over the model's own 224×224 crop: per-patch feature norm, or,
when a query is active, each patch's cosine similarity to the query's pooled vector. The computation
(``core.inspect.inspect_image``) runs on a worker; this module only draws its result.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from vitfeat_desktop.core.inspect import Inspection


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
        self._pixmap: QPixmap | None = None  # the heatmap at full size; the label shows it scaled to the panel
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

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        pm = self._pixmap
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
