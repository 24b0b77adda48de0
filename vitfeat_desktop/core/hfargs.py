"""``pipeline()``'s keyword arguments as transformers and transformers.js spell them, mapped onto vitfeat's.

Code ported from ``transformers.pipeline("image-feature-extraction", model, revision=..., device=...,
torch_dtype=..., model_kwargs=...)`` or from transformers.js (``dtype: "q8"``, ``device: "cpu"``,
``session_options``, ``local_files_only``) must either work or fail with one message that says what to use
instead, never with a ``TypeError`` about an unexpected keyword. This module does only that translation; the
factory in :mod:`vitfeat_desktop.core.pipeline` passes the result to the hub lookup and the extractor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubOptions:
    """What the factory passes on: to :func:`.models.resolve.resolve_model` and to the :class:`FeatureExtractor`."""

    quantized: bool
    revision: str | None
    token: str | None
    cache_dir: str | Path | None
    local_files_only: bool
    intra_op_threads: int | None
    providers: list[str] | None


# transformers.js' dtype names (and torch's) -> our variants. "q8" is transformers.js' name for
# onnx/model_quantized.onnx, which is exactly our int8 variant; its "int8"/"uint8" name other files of the same
# 8-bit dynamic quantisation (model_int8.onnx / model_uint8.onnx), which we map to the one 8-bit file we keep.
_DTYPE_VARIANTS = {"fp32": False, "float32": False, "float": False, "q8": True, "int8": True, "uint8": True,
                   "quantized": True}
_DTYPE_REFUSED = ("fp16", "float16", "half", "bfloat16", "q4", "q4f16", "bnb4", "int4")
_DEVICE_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider",
                     "dml": "DmlExecutionProvider", "directml": "DmlExecutionProvider",
                     "coreml": "CoreMLExecutionProvider", "mps": "CoreMLExecutionProvider"}
# transformers arguments that only tune PyTorch loading or pick tokenizers/processors: harmless to ignore here
_IGNORED_MODEL_KWARGS = ("low_cpu_mem_usage", "attn_implementation", "use_safetensors", "trust_remote_code")
_FORWARDED_MODEL_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "dtype", "torch_dtype",
                           "device_map", "session_options", "quantized")


def _dtype_to_quantized(dtype: Any, quantized: bool | None) -> bool:
    """Map ``dtype`` (transformers.js / torch names) and ``quantized`` to our variant, refusing what we lack."""
    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        return True if quantized is None else bool(quantized)
    if isinstance(dtype, dict):  # transformers.js: {"vision_model": "q8", ...} per sub-model
        values = set(map(str, dtype.values()))
        if len(values) != 1:
            raise ValueError(f"dtype={dtype!r}: vitfeat runs one image encoder, give one dtype")
        dtype = values.pop()
    name = str(dtype).lower().removeprefix("torch.")
    if name in _DTYPE_REFUSED:
        raise ValueError(f"dtype={dtype!r} is not supported: vitfeat runs 'fp32' (onnx/model.onnx) or 'q8'/'int8' "
                         "(onnx/model_quantized.onnx) on ONNX Runtime")
    if name not in _DTYPE_VARIANTS:
        raise ValueError(f"unknown dtype {dtype!r}; use 'fp32' or 'q8' (also accepted: int8, uint8, float32, auto)")
    wanted = _DTYPE_VARIANTS[name]
    if quantized is not None and bool(quantized) != wanted:
        raise ValueError(f"dtype={dtype!r} contradicts quantized={quantized!r}; give one of them")
    return wanted


def _device_to_providers(device: Any) -> list[str] | None:
    """Map a transformers/transformers.js ``device`` to ONNX Runtime providers (None: the default choice).

    cpu / -1 -> CPU; cuda, cuda:0, 0, gpu -> CUDA; dml -> DirectML; coreml / mps -> CoreML; auto -> the best
    this onnxruntime build has. A GPU this build cannot use is an error, not a silent fall-back to the CPU.
    """
    if device is None:
        return None
    if isinstance(device, bool):
        raise ValueError(f"device={device!r} is not a device; use 'cpu', 'cuda', 'dml', 'coreml' or 'auto'")
    kind = getattr(device, "type", None)  # torch.device
    index: int | None = getattr(device, "index", None) if kind is not None else None
    if kind is None and isinstance(device, int):
        kind, index = ("cpu", None) if device < 0 else ("cuda", device)
    text = str(kind if kind is not None else device).strip().lower()
    if kind is None and ":" in text:
        text, _, number = text.partition(":")
        index = int(number) if number.isdigit() else None
        if index is None:
            raise ValueError(f"device={device!r}: expected a name such as 'cuda' or 'cuda:0'")
    if text == "auto":
        return None
    if text not in _DEVICE_PROVIDERS:
        raise ValueError(f"device={device!r} is not supported; use one of: auto, "
                         f"{', '.join(sorted(_DEVICE_PROVIDERS))} (ONNX Runtime execution providers)")
    if index not in (None, 0):
        raise ValueError(f"device={device!r}: vitfeat runs on the first GPU only (device 0)")
    provider = _DEVICE_PROVIDERS[text]
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider not in available:
        raise ValueError(f"device={device!r} needs {provider}, which this onnxruntime build lacks (it has "
                         f"{', '.join(available)}); install the onnxruntime package for that device or use 'cpu'")
    return [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]


def _session_threads(session_options: Any) -> int | None:
    """``intra_op_num_threads`` from ``session_options`` (an ``onnxruntime.SessionOptions`` or a dict); every
    other setting is refused, because the extractor tunes its own session (see FeatureExtractor._create_session)."""
    if session_options is None:
        return None
    if isinstance(session_options, dict):
        options = dict(session_options)
        threads = options.pop("intra_op_num_threads", options.pop("intraOpNumThreads", None))
        if options:
            raise ValueError(f"session_options {sorted(options)} are not supported; vitfeat takes only "
                             "intra_op_num_threads (its own session settings are tuned for ViTs on the CPU)")
    else:
        import onnxruntime as ort

        if not isinstance(session_options, ort.SessionOptions):
            raise ValueError(f"session_options must be an onnxruntime.SessionOptions or a dict, not "
                             f"{type(session_options).__name__}")
        default = ort.SessionOptions()
        changed = [name for name in ("inter_op_num_threads", "execution_mode", "enable_profiling",
                                     "enable_mem_pattern", "enable_cpu_mem_arena")
                   if getattr(session_options, name) != getattr(default, name)]
        if changed:
            raise ValueError(f"session_options sets {', '.join(changed)}, which vitfeat does not take; only "
                             "intra_op_num_threads is used")
        threads = session_options.intra_op_num_threads
    if threads in (None, 0):
        return None
    if not isinstance(threads, int) or threads < 0:
        raise ValueError(f"intra_op_num_threads={threads!r} must be a positive number of threads")
    return threads


def hf_options(
    *,
    quantized: bool | None = None,
    dtype: Any = None,
    device: Any = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    session_options: Any = None,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> HubOptions:
    """Map the factory's keywords (see :func:`vitfeat_desktop.core.pipeline.pipeline`) or raise ``ValueError``.

    ``extra`` holds the keywords the factory does not name: transformers' defaults (``tokenizer=None``,
    ``framework="pt"``, ``use_fast``, ``trust_remote_code``) pass, its older spellings (``use_auth_token``,
    ``torch_dtype``, ``device_map``) are mapped, anything else is refused by name.
    """
    given = dict(extra or {})
    for name in ("tokenizer", "feature_extractor", "image_processor", "processor", "config"):
        if given.get(name) is None:
            given.pop(name, None)  # transformers' defaults: nothing given
    if given.pop("framework", None) not in (None, "pt", "onnx"):
        raise ValueError("framework= is not supported: vitfeat runs ONNX models on ONNX Runtime")
    if given.pop("trust_remote_code", None):
        log.info("trust_remote_code ignored: vitfeat never runs code from a model repo")
    given.pop("use_fast", None)  # picks a tokenizer/processor implementation; ours is always the same
    if "use_auth_token" in given:
        token = given.pop("use_auth_token") if token is None else token
    if "torch_dtype" in given:
        dtype = given.pop("torch_dtype") if dtype is None else dtype
    if "device_map" in given:
        device_map = given.pop("device_map")
        if device is None and device_map not in (None, "auto"):
            device = device_map
    if given:
        raise ValueError(f"pipeline() does not support {', '.join(sorted(given))}; vitfeat's pipeline takes model, "
                         "dtype/quantized, device/providers, revision, token, cache_dir, local_files_only, "
                         "model_kwargs, session_options, batch_size")
    settings = {"revision": revision, "token": token, "cache_dir": cache_dir, "dtype": dtype,
                "session_options": session_options, "quantized": quantized}
    for key, value in (model_kwargs or {}).items():
        if key in _IGNORED_MODEL_KWARGS:
            log.info("model_kwargs[%r] ignored: it only tunes PyTorch loading", key)
            continue
        if key not in _FORWARDED_MODEL_KWARGS:
            raise ValueError(f"model_kwargs[{key!r}] is not supported; vitfeat takes "
                             f"{', '.join(_FORWARDED_MODEL_KWARGS)} there")
        if key == "local_files_only":
            local_files_only = local_files_only or bool(value)
            continue
        name = {"torch_dtype": "dtype", "device_map": "device"}.get(key, key)
        if name == "device":
            if device is None and value not in (None, "auto"):
                device = value
            continue
        if settings.get(name) is not None and settings[name] != value:
            raise ValueError(f"{name} given twice with different values ({settings[name]!r} and "
                             f"model_kwargs[{key!r}]={value!r})")
        settings[name] = value
    use_quantized = _dtype_to_quantized(settings["dtype"], settings["quantized"])
    mapped = _device_to_providers(device)
    if mapped is not None and providers is not None:
        raise ValueError("give device= or providers=, not both")
    threads = _session_threads(settings["session_options"])
    if threads is not None and intra_op_threads is not None and threads != intra_op_threads:
        raise ValueError("session_options' intra_op_num_threads contradicts intra_op_threads")
    tok = settings["token"]
    if tok is not None and not isinstance(tok, str | bool):
        raise ValueError("token must be a string (or True/None for the saved Hugging Face login)")
    if tok is False:
        raise ValueError("token=False (never send a token) is not supported; unset HF_TOKEN instead")
    return HubOptions(
        quantized=use_quantized,
        revision=settings["revision"],
        token=tok if isinstance(tok, str) else None,
        cache_dir=settings["cache_dir"],
        local_files_only=bool(local_files_only),
        intra_op_threads=intra_op_threads or threads,
        providers=list(providers) if providers is not None else mapped,
    )
