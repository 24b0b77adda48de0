"""``pipeline("image-feature-extraction")`` on ONNX Runtime.

One :class:`FeatureExtractor` per model holds one ONNX Runtime session, created on first use and shared by all
threads (``InferenceSession.run`` is thread-safe). Inputs are decoded and preprocessed on a small thread pool
while the previous batch runs, because on a 2-core laptop the JPEG decoder would otherwise sit idle half the
time waiting for the model, and the model for the decoder.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitfeat_desktop import config
from vitfeat_desktop.core import optimize
from vitfeat_desktop.core.errors import Cancelled, ModelError
from vitfeat_desktop.core.hfargs import hf_options
from vitfeat_desktop.core.images import load_image
from vitfeat_desktop.core.models.layout import MANIFEST_NAME, ResolvedModel
from vitfeat_desktop.core.models.resolve import resolve_model
from vitfeat_desktop.core.preprocess import Preprocessor
from vitfeat_desktop.core.progress import CancelFn, ProgressFn

log = logging.getLogger(__name__)

SUPPORTED_TASKS = ("image-feature-extraction",)
HIDDEN = "last_hidden_state"
POOLED = "pooler_output"
PREFERRED_PROVIDERS = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)


def default_threads() -> int:
    """Intra-op threads for inference: all cores (ONNX Runtime scales well on the big MatMuls of a ViT)."""
    env = os.environ.get("VITFEAT_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, os.cpu_count() or 1)


def select_providers(requested: Sequence[str] | None = None) -> list[str]:
    """The best execution providers this onnxruntime build has, GPU first, always ending with the CPU."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    env = os.environ.get("VITFEAT_PROVIDERS")
    wanted = list(requested) if requested else (env.split(",") if env else list(PREFERRED_PROVIDERS))
    chosen = [p.strip() for p in wanted if p.strip() in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


@dataclass(frozen=True)
class OutputNames:
    """The ONNX output names that hold the hidden states and the pooled vector (None: the model has none)."""

    hidden: str
    pooled: str | None


class FeatureExtractor:
    """Callable like transformers' ``ImageFeatureExtractionPipeline``; returns numpy float32 arrays."""

    task = "image-feature-extraction"

    def __init__(
        self,
        resolved: ResolvedModel,
        *,
        intra_op_threads: int | None = None,
        providers: Sequence[str] | None = None,
        batch_size: int = 8,
    ) -> None:
        self.resolved = resolved
        self.model_id = resolved.model_id
        self.folder = resolved.folder
        self.quantized = resolved.quantized
        self.variant = resolved.variant
        self.onnx_path = resolved.onnx_path
        # the file the session runs: onnx_path, or its exact int8-weight copy (core/optimize.py)
        self.session_path: Path = resolved.onnx_path
        self.batch_size = max(1, int(batch_size))
        self.intra_op_threads = intra_op_threads or default_threads()
        self._requested_providers = providers
        self.preprocessor = Preprocessor.from_file(self.folder / "preprocessor_config.json")
        self.model_config = _read_json(self.folder / "config.json")
        self.manifest = _read_json(self.folder / MANIFEST_NAME)
        self._session: Any = None
        self._session_lock = threading.Lock()
        self._outputs: OutputNames | None = None
        self._input_name = "pixel_values"
        self._decode_pool: ThreadPoolExecutor | None = None

    # -- session --------------------------------------------------------------------------------------------
    @property
    def session(self) -> Any:
        """The ONNX Runtime session, created once on first use (onnxruntime itself is imported lazily)."""
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    self._session = self._create_session()
        return self._session

    def _create_session(self) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # ENABLE_ALL fuses LayerNorm, GELU and the MatMul+Add pairs at load time. onnxruntime's offline
        # transformer optimizer was measured on top of it (tests/bench/bench_extract.py) and gained nothing on
        # these exports (their attention pattern is not fused) while slowing int8 down, so it is not used.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Decode threads share the cores with inference; spinning intra-op threads would steal their time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers = select_providers(self._requested_providers)
        from vitfeat_desktop.core.models.weights import verify_weights  # issue 13: never run damaged weights silently

        verify_weights(self.folder, self.onnx_path, self.manifest)
        path = self.onnx_path
        if self.quantized:
            # The same integer arithmetic with int8 weights runs on the CPU's VNNI/AMX kernel (core/optimize.py)
            path = optimize.prepare_for_cpu(self.onnx_path, config.cache_dir())
        ort.disable_telemetry_events()  # no usage events from the session (the app stays local)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            if path == self.onnx_path:
                raise ModelError(f"ONNX Runtime cannot load {self.onnx_path}: {_first_line(exc)}") from exc
            log.warning("converted graph %s failed to load (%s); using %s", path, _first_line(exc), self.onnx_path)
            path = self.onnx_path
            try:
                session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
            except Exception as exc2:
                raise ModelError(f"ONNX Runtime cannot load {self.onnx_path}: {_first_line(exc2)}") from exc2
        self.session_path = path
        self._bind_io(session)
        return session

    def _bind_io(self, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            raise ModelError(f"{self.onnx_path} takes inputs {names}; an image encoder takes one (pixel_values)")
        self._input_name = inputs[0].name
        available = [o.name for o in session.get_outputs()]
        mapping = self.manifest.get("outputs", {}) if isinstance(self.manifest.get("outputs"), dict) else {}
        hidden = mapping.get(HIDDEN) or (HIDDEN if HIDDEN in available else None)
        pooled = mapping.get(POOLED) or (POOLED if POOLED in available else None)
        if hidden is None or hidden not in available:
            raise ModelError(
                f"{self.onnx_path} has outputs {available} but no {HIDDEN}; it is not an image encoder we can run"
            )
        if pooled is not None and pooled not in available:
            pooled = None
        self._outputs = OutputNames(hidden=hidden, pooled=pooled)

    @property
    def outputs(self) -> OutputNames:
        _ = self.session
        assert self._outputs is not None
        return self._outputs

    @property
    def has_pooler(self) -> bool:
        return self.outputs.pooled is not None

    @property
    def pooling(self) -> str:
        """How :meth:`embed` pools: the model's ``pooler_output`` or, without one, the CLS token."""
        return POOLED if self.has_pooler else "cls_token"

    @property
    def hidden_size(self) -> int:
        """Width of each token in ``last_hidden_state``."""
        return self._output_width(self.outputs.hidden, HIDDEN)

    @property
    def embedding_dim(self) -> int:
        """Length of the vectors :meth:`embed` returns (CLIP's projected ``image_embeds`` are narrower than its
        hidden size, so an index must be sized by this, not by ``hidden_size``)."""
        if self.outputs.pooled is None:
            return self.hidden_size
        return self._output_width(self.outputs.pooled, POOLED)

    def _output_width(self, onnx_name: str, hf_name: str) -> int:
        declared = {o.name: o.shape for o in self.session.get_outputs()}[onnx_name][-1]
        if isinstance(declared, int):
            return declared
        return int(self.run(self._blank(1), hidden=hf_name == HIDDEN, pooled=hf_name == POOLED)[hf_name].shape[-1])

    def _blank(self, n: int) -> np.ndarray:
        h, w = self.preprocessor.output_hw()
        return np.zeros((n, 3, h, w), dtype=np.float32)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    # -- running --------------------------------------------------------------------------------------------
    def run(self, pixel_values: np.ndarray, *, hidden: bool = True, pooled: bool = True) -> dict[str, np.ndarray]:
        """One ``session.run`` on a preprocessed batch; returns the requested outputs under their HF names."""
        names = self.outputs
        wanted: list[tuple[str, str]] = []
        if hidden:
            wanted.append((HIDDEN, names.hidden))
        if pooled and names.pooled is not None:
            wanted.append((POOLED, names.pooled))
        if not wanted:  # pooled only was asked of a model without a pooler: the CLS token needs the hidden state
            wanted.append((HIDDEN, names.hidden))
        onnx_names = [onnx_name for _, onnx_name in wanted]
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        if self.quantized and pixels.shape[0] > 1:
            # Dynamic int8 graphs quantise activations per run, so one image per run makes a vector independent
            # of its batch; it is also faster (bench_extract.py, 2 threads: ViT-B 11.0 vs 5.9 images/s,
            # DINOv2-S 12.7 vs 12.0): one image's activations stay in the core's L2 cache.
            runs = [self.session.run(onnx_names, {self._input_name: pixels[i:i + 1]}) for i in range(len(pixels))]
            arrays = [np.concatenate([r[k] for r in runs]) for k in range(len(onnx_names))]
        else:
            arrays = self.session.run(onnx_names, {self._input_name: pixels})
        return {hf: np.asarray(arr, dtype=np.float32) for (hf, _), arr in zip(wanted, arrays, strict=True)}

    def embed(self, pixel_values: np.ndarray) -> np.ndarray:
        """Pooled vectors for the library index: ``pooler_output`` if the model has one, else the CLS token."""
        out = self.run(pixel_values, hidden=not self.has_pooler, pooled=True)
        if POOLED in out:
            return out[POOLED]
        return out[HIDDEN][:, 0, :].copy()

    def preprocess(self, inputs: Any) -> np.ndarray:
        """``pixel_values`` for one input or a list of inputs (paths, URLs, PIL images, uint8 arrays)."""
        items = inputs if isinstance(inputs, list | tuple) else [inputs]
        return np.stack([self._prepare_one(item) for item in items])

    def _prepare_one(self, item: Any) -> np.ndarray:
        image = load_image(item)
        return self.preprocessor.normalize_uint8(self.preprocessor.to_uint8_chw(image))

    def __call__(
        self,
        inputs: Any,
        *,
        pool: bool = False,
        batch_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """Features for an image or a list of images: ``last_hidden_state`` ``[N, tokens, hidden]``, or with
        ``pool=True`` ``pooler_output`` ``[N, hidden]``.

        Like transformers.js, ``pool=True`` on a model without a pooler is an error, not a silent fallback.
        """
        if pool and not self.has_pooler:
            raise ModelError(
                f"model {self.model_id} has no pooler_output, so pool=True cannot be used; call it with "
                "pool=False and take the CLS token (features[:, 0]) or a mean over tokens yourself"
            )
        items = list(inputs) if isinstance(inputs, list | tuple) else [inputs]
        if not items:
            raise ValueError("no images given")
        size = max(1, batch_size or self.batch_size)
        results: list[np.ndarray] = []
        done = 0
        for batch in self._prefetched_batches(items, size):
            if cancel is not None and cancel():
                raise Cancelled()
            out = self.run(batch, hidden=not pool, pooled=pool)
            results.append(out[POOLED] if pool else out[HIDDEN])
            done += batch.shape[0]
            if progress is not None:
                progress(done, len(items))
        return np.concatenate(results, axis=0) if len(results) > 1 else results[0]

    def _prefetched_batches(self, items: list[Any], size: int) -> Iterator[np.ndarray]:
        """Yield preprocessed batches, decoding the next batch on worker threads while this one runs."""
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if len(items) == 1:
            yield self.preprocess(items)
            return
        pool = self._pool()
        pending: list[Future[np.ndarray]] = [pool.submit(self._prepare_one, x) for x in chunks[0]]
        for index in range(len(chunks)):
            current = pending
            pending = [pool.submit(self._prepare_one, x) for x in chunks[index + 1]] if index + 1 < len(chunks) else []
            try:
                yield np.stack([f.result() for f in current])
            except BaseException:
                for f in pending:
                    f.cancel()
                raise

    def _pool(self) -> ThreadPoolExecutor:
        if self._decode_pool is None:
            with self._session_lock:
                if self._decode_pool is None:
                    workers = max(2, min(4, os.cpu_count() or 2))
                    self._decode_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vitfeat-decode")
        return self._decode_pool

    def close(self) -> None:
        """Release the decode threads (the session is freed with the object)."""
        if self._decode_pool is not None:
            self._decode_pool.shutdown(wait=False, cancel_futures=True)
            self._decode_pool = None

    def describe(self) -> dict[str, Any]:
        """What the inspector and ``vitfeat extract`` show about the loaded model."""
        return {
            "model": self.model_id,
            "folder": str(self.folder),
            "variant": self.variant,
            "onnx": str(self.onnx_path),
            "onnx_loaded": str(self.session_path),
            "providers": self.providers,
            "hidden_output": self.outputs.hidden,
            "pooled_output": self.outputs.pooled,
            "pooling": self.pooling,
            "input_size": list(self.preprocessor.output_hw()),
        }

    def __repr__(self) -> str:
        return f"FeatureExtractor(model={self.model_id!r}, variant={self.variant!r})"


def pipeline(
    task: str = "image-feature-extraction",
    model: str | Path | None = None,
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
    batch_size: int = 8,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    **unsupported: Any,
) -> FeatureExtractor:
    """Build a feature extractor for ``model`` (a hub-layout folder or a hub id; default: the app's model).

    Takes what transformers' and transformers.js' ``pipeline()`` take, mapped onto ONNX Runtime:

    * ``dtype``: ``"q8"``/``"int8"``/``"uint8"`` (also ``quantized=True``, the default) run
      ``onnx/model_quantized.onnx``; ``"fp32"``/``torch.float32`` (``quantized=False``) run ``onnx/model.onnx``;
      fp16/q4 variants are refused.
    * ``device``: ``"cpu"``/``-1``, ``"cuda"``/``0``, ``"dml"``, ``"coreml"``/``"mps"``, ``"auto"`` -> execution
      providers (or pass ``providers`` directly); a device this onnxruntime cannot use is an error.
    * ``revision``, ``token`` (a string; ``True``/``None`` mean the saved login), ``cache_dir`` (a Hugging Face
      cache to look in before downloading; downloads go to vitfeat's cache), ``local_files_only``.
    * ``model_kwargs``: the keys above may also come from there; PyTorch-only hints (``low_cpu_mem_usage``,
      ``attn_implementation``, ...) are ignored; anything else is refused.
    * ``session_options`` (an ``onnxruntime.SessionOptions`` or a dict): only ``intra_op_num_threads`` is taken.

    Every other keyword is refused with one message naming it (a ``ValueError``, not a ``TypeError``).
    ``progress``/``cancel`` are passed to the model download when a hub id is not cached yet.
    """
    if task not in SUPPORTED_TASKS:
        raise ValueError(f"unsupported task {task!r}; vitfeat supports: {', '.join(SUPPORTED_TASKS)}")
    opts = hf_options(quantized=quantized, dtype=dtype, device=device, revision=revision, token=token,
                      cache_dir=cache_dir, local_files_only=local_files_only, model_kwargs=model_kwargs,
                      session_options=session_options, intra_op_threads=intra_op_threads, providers=providers,
                      extra=unsupported)
    resolved = resolve_model(
        model,
        quantized=opts.quantized,
        revision=opts.revision,
        token=opts.token,
        cache_dir=opts.cache_dir,
        local_files_only=opts.local_files_only,
        progress=progress,
        cancel=cancel,
    )
    return FeatureExtractor(
        resolved,
        intra_op_threads=opts.intra_op_threads,
        providers=opts.providers,
        batch_size=batch_size,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
