"""vitfeat-desktop: find duplicate and similar photos with Vision Transformer features.

The public Python API mirrors Hugging Face's ``pipeline("image-feature-extraction")`` so code written for
transformers reads the same here, but runs on ONNX Runtime without PyTorch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# ONNX Runtime (1.32+) writes a device id and an event database under ~/.cache/Microsoft/DeveloperTools/ when
# it is first imported, unless this is set before that import; the app promises to keep everything local.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from vitfeat_desktop.version import __version__

__all__ = ["__version__", "pipeline"]

if TYPE_CHECKING:
    from vitfeat_desktop.core.pipeline import FeatureExtractor


def pipeline(task: str = "image-feature-extraction", model: Any = None, **kwargs: Any) -> FeatureExtractor:
    """Create a feature extractor; see :func:`vitfeat_desktop.core.pipeline.pipeline`.

    Defined here (not re-exported) so ``import vitfeat_desktop`` stays cheap: onnxruntime is only imported
    when a pipeline is actually built.
    """
    from vitfeat_desktop.core.pipeline import pipeline as _pipeline

    return _pipeline(task, model=model, **kwargs)
