"""Hugging Face image processors, reproduced with PIL and numpy, to the last bit that matters.

Features of one picture must not depend on which program computed them: the library built here has to agree
with vectors made by transformers (and the independent checks compare the two within 1e-4). So every step
follows transformers' ``PilBackend`` exactly: resize on the 8-bit image with PIL and the configured filter,
``int()``-truncated shortest-edge sizes, floor-divided centre-crop offsets (padding when the image is smaller),
rescale in float64 then float32, normalise in float32.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitfeat_desktop.core.errors import ModelError

# transformers' defaults when a key is absent from preprocessor_config.json (BaseImageProcessor / ViT).
IMAGENET_STANDARD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessor:
    """The fields of ``preprocessor_config.json`` that change pixel values."""

    do_convert_rgb: bool = True
    do_resize: bool = True
    size: dict[str, int] = field(default_factory=lambda: {"height": 224, "width": 224})
    resample: int = Image.Resampling.BILINEAR
    do_center_crop: bool = False
    crop_size: dict[str, int] | None = None
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, ...] = IMAGENET_STANDARD
    image_std: tuple[float, ...] = IMAGENET_STANDARD

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> Preprocessor:
        """Build from a parsed ``preprocessor_config.json``; unknown keys are ignored like transformers does."""
        kwargs: dict[str, Any] = {}
        for key in ("do_convert_rgb", "do_resize", "do_center_crop", "do_rescale", "do_normalize"):
            if key in config and config[key] is not None:
                kwargs[key] = bool(config[key])
        if config.get("size") is not None:
            kwargs["size"] = _size_dict(config["size"], "size")
        if config.get("crop_size") is not None:
            kwargs["crop_size"] = _size_dict(config["crop_size"], "crop_size")
        if config.get("resample") is not None:
            kwargs["resample"] = int(config["resample"])
        if config.get("rescale_factor") is not None:
            kwargs["rescale_factor"] = float(config["rescale_factor"])
        for key in ("image_mean", "image_std"):
            value = config.get(key)
            if value is not None:
                values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3
                kwargs[key] = tuple(values)
        pre = cls(**kwargs)
        if pre.do_center_crop and pre.crop_size is None:
            object.__setattr__(pre, "crop_size", {"height": 224, "width": 224})
        return pre

    @classmethod
    def from_file(cls, path: str | Path) -> Preprocessor:
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelError(f"missing {path}: a model folder needs its preprocessor_config.json") from exc
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {path}: {exc}") from exc
        if not isinstance(config, dict):
            raise ModelError(f"{path} is not a JSON object")
        return cls.from_dict(config)

    # -- geometry -------------------------------------------------------------------------------------------
    def output_hw(self) -> tuple[int, int]:
        """Height and width of the tensor fed to the model (when they do not depend on the input)."""
        if self.do_center_crop and self.crop_size:
            return self.crop_size["height"], self.crop_size["width"]
        if self.do_resize and "height" in self.size:
            return self.size["height"], self.size["width"]
        raise ModelError("this preprocessor keeps the input's aspect ratio; its output size varies per image")

    def min_decode_side(self) -> int:
        """The smallest shorter side an image may be decoded at without losing detail the model would see.

        Used for JPEG draft decoding: a 6000x4000 photo is decoded at 750x500 instead of full size when the
        model only needs 224 (or 256 then a 224 crop).
        """
        if self.do_resize:
            if "shortest_edge" in self.size:
                return int(self.size["shortest_edge"])
            if "height" in self.size:
                return int(max(self.size["height"], self.size["width"]))
        if self.do_center_crop and self.crop_size:
            return int(max(self.crop_size["height"], self.crop_size["width"]))
        return 224

    def resize_hw(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) transformers resizes an image of this size to."""
        size = self.size
        if "shortest_edge" in size and "longest_edge" in size:
            return _size_with_aspect_ratio((height, width), size["shortest_edge"], size["longest_edge"])
        if "shortest_edge" in size:
            target = int(size["shortest_edge"])
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = target, int(target * long / short)
            return (new_long, new_short) if width <= height else (new_short, new_long)
        if "height" in size and "width" in size:
            return int(size["height"]), int(size["width"])
        raise ModelError(f"unsupported preprocessor size {size}")

    # -- pixels ---------------------------------------------------------------------------------------------
    def to_uint8_chw(self, image: Image.Image) -> np.ndarray:
        """Resize and crop in 8 bits (as transformers does with PIL), returning a CHW uint8 array."""
        if image.mode != "RGB":
            if not self.do_convert_rgb:
                raise ModelError(f"image mode {image.mode} needs do_convert_rgb")
            from vitfeat_desktop.core.pixels import to_rgb_composited

            image = to_rgb_composited(image)
        if self.do_resize:
            height, width = self.resize_hw(image.height, image.width)
            if (width, height) != image.size:
                image = image.resize((width, height), resample=Image.Resampling(self.resample))
        array = np.asarray(image, dtype=np.uint8)
        if self.do_center_crop and self.crop_size:
            array = _center_crop_hwc(array, self.crop_size["height"], self.crop_size["width"])
        return np.ascontiguousarray(array.transpose(2, 0, 1))

    def normalize_uint8(self, chw: np.ndarray) -> np.ndarray:
        """Rescale and normalise a CHW (or NCHW) uint8 array into float32 model input."""
        if self.do_rescale:
            values = (chw.astype(np.float64) * self.rescale_factor).astype(np.float32)
        else:
            values = chw.astype(np.float32)
        if self.do_normalize:
            mean = np.asarray(self.image_mean, dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(self.image_std, dtype=np.float32).reshape(-1, 1, 1)
            values = (values - mean) / std
        return values.astype(np.float32, copy=False)

    def __call__(self, images: Image.Image | Sequence[Image.Image]) -> np.ndarray:
        """``pixel_values`` for one image or a batch, NCHW float32."""
        batch = [images] if isinstance(images, Image.Image) else list(images)
        arrays = [self.normalize_uint8(self.to_uint8_chw(img)) for img in batch]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ModelError(f"preprocessed images differ in size {sorted(shapes)}; batch them one by one")
        return np.stack(arrays)


def _size_dict(value: Any, name: str) -> dict[str, int]:
    """Normalise the many spellings of ``size`` in old and new configs to transformers' dict form."""
    if isinstance(value, int):
        return {"height": value, "width": value}
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"height": int(value[0]), "width": int(value[1])}
    if isinstance(value, dict):
        out = {k: int(v) for k, v in value.items() if v is not None}
        if "height" in out or "shortest_edge" in out:
            return out
    raise ModelError(f"unsupported {name} in preprocessor_config.json: {value!r}")


def _size_with_aspect_ratio(hw: tuple[int, int], shortest: int, longest: int) -> tuple[int, int]:
    """transformers' ``get_size_with_aspect_ratio`` (shortest edge capped by a longest edge)."""
    height, width = hw
    size = shortest
    min_original, max_original = float(min(height, width)), float(max(height, width))
    if max_original / min_original * size > longest:
        size = round(longest * min_original / max_original)
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def _center_crop_hwc(array: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """transformers' ``center_crop``: floor offsets, zero padding where the image is smaller than the crop."""
    height, width = array.shape[:2]
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    if top >= 0 and left >= 0:
        return array[top : top + crop_h, left : left + crop_w]
    new_h, new_w = max(crop_h, height), max(crop_w, width)
    padded = np.zeros((new_h, new_w, array.shape[2]), dtype=array.dtype)
    top_pad = (new_h - height) // 2
    left_pad = (new_w - width) // 2
    padded[top_pad : top_pad + height, left_pad : left_pad + width] = array
    top = (new_h - crop_h) // 2
    left = (new_w - crop_w) // 2
    return padded[top : top + crop_h, left : left + crop_w]
