"""Known-good image encoders on the Hugging Face hub, so the GUI can offer them by name and size.

Why a registry at all: a repo on the hub holds many files (text towers, tokenizers, fp16/q4 variants, weights for
other frameworks), and we must fetch exactly the few an image encoder needs, under the names our cache uses.
Some repos keep their image encoder under other names (a CLIP repo's vision tower is ``onnx/vision_model.onnx``)
and give its outputs other names (``image_embeds`` instead of ``pooler_output``); the registry knows both so the
cache can store the files under the standard layout that :func:`~vitfeat_desktop.core.models.layout.check_folder`
expects and
the pipeline can find the right output through the manifest's ``"outputs"`` mapping.

A hub id that is not in the registry is fetched with the standard Xenova/Optimum layout
(``onnx/model.onnx``, ``onnx/model_quantized.onnx``) and standard output names.

What was verified and how (the build machine cannot reach the hub): the CLIP file names, the int8 vision tower's
size (89,117,001 bytes) and sha256 at commit ``d15189d7028b43f1d3e65039190477f6af591c2a`` come from public
projects that pin that file; the other sizes are estimates from parameter counts (ViT-B/16 86 M, DINOv2-S 22 M,
CLIP ViT-B/32 vision tower 88 M parameters: 4 bytes each in fp32, about 1 byte each in int8) and are labelled
"approximate" where shown. Output names of the ViT and DINOv2 exports are Optimum's feature-extraction names
(``last_hidden_state``, ``pooler_output``); the CLIP vision tower is exported with the
``CLIPVisionWithProjectionOnnxConfig`` used by the transformers.js conversion scripts, whose outputs are
``image_embeds`` [N,512] and ``last_hidden_state`` [N,50,768]. Note that for CLIP the embedding the index stores
(``image_embeds``, 512-d) is narrower than the hidden size (768): use ``embedding_dim``, not the hidden size, to
size an index.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vitfeat_desktop import config
from vitfeat_desktop.core.models.layout import CONFIG_FILES, MODEL_FILES_FP32, MODEL_FILES_INT8, VARIANTS

# Where each variant lives in our cache (the standard hub layout).
LOCAL_FILES = {"int8": MODEL_FILES_INT8, "fp32": MODEL_FILES_FP32}
HIDDEN = "last_hidden_state"
POOLED = "pooler_output"

_MB = 1_000_000


@dataclass(frozen=True)
class KnownModel:
    """One image encoder we know how to fetch and run."""

    model_id: str
    display_name: str
    description: str
    # variant ("int8"/"fp32") -> file name in the hub repo
    remote_files: dict[str, str]
    # HF output name -> ONNX output name, only where they differ (goes into the manifest's "outputs")
    outputs: dict[str, str] = field(default_factory=dict)
    # shapes without the batch dimension
    hidden_shape: tuple[int, int] = (197, 768)
    embedding_dim: int = 768
    pooling: str = POOLED  # which output embed() uses
    # approximate download size per variant, configs included (bytes)
    download_bytes: dict[str, int] = field(default_factory=dict)
    size_verified: tuple[str, ...] = ()  # variants whose size is an exact, verified number
    license: str = ""
    input_size: int = 224

    def remote_name(self, variant: str) -> str:
        return self.remote_files[variant]

    def describe_size(self, variant: str) -> str:
        """"87 MB" or "about 87 MB", honest about which numbers were measured."""
        size = self.download_bytes.get(variant)
        if size is None:
            return "unknown size"
        text = f"{size / _MB:.0f} MB"
        return text if variant in self.size_verified else f"about {text}"


KNOWN_MODELS: dict[str, KnownModel] = {
    m.model_id: m
    for m in (
        KnownModel(
            model_id="Xenova/vit-base-patch16-224-in21k",
            display_name="ViT-B/16 (ImageNet-21k)",
            description="Google's ViT-Base trained on ImageNet-21k: general-purpose features, the default model.",
            remote_files={"int8": MODEL_FILES_INT8, "fp32": MODEL_FILES_FP32},
            hidden_shape=(197, 768),
            embedding_dim=768,
            download_bytes={"int8": 88 * _MB, "fp32": 346 * _MB},
            license="apache-2.0",
        ),
        KnownModel(
            model_id="Xenova/dinov2-small",
            display_name="DINOv2 small",
            description="Meta's self-supervised DINOv2 ViT-S/14: small and fast, strong at near-duplicates.",
            remote_files={"int8": MODEL_FILES_INT8, "fp32": MODEL_FILES_FP32},
            hidden_shape=(257, 384),
            embedding_dim=384,
            download_bytes={"int8": 24 * _MB, "fp32": 89 * _MB},
            license="apache-2.0",
        ),
        KnownModel(
            model_id="Xenova/clip-vit-base-patch32",
            display_name="CLIP ViT-B/32 (vision tower)",
            description="OpenAI CLIP's image encoder: groups photos by what they show (objects, scenes, styles).",
            remote_files={"int8": "onnx/vision_model_quantized.onnx", "fp32": "onnx/vision_model.onnx"},
            outputs={POOLED: "image_embeds"},
            hidden_shape=(50, 768),
            embedding_dim=512,
            pooling="image_embeds",
            download_bytes={"int8": 89_117_001 + 5_044, "fp32": 352 * _MB},
            size_verified=("int8",),
            license="mit",
        ),
    )
}


def known_model(model_id: str) -> KnownModel | None:
    return KNOWN_MODELS.get(model_id)


def default_model() -> KnownModel:
    return KNOWN_MODELS[config.DEFAULT_MODEL_ID]


def files_for(model_id: str, variant: str) -> list[tuple[str, str]]:
    """``(local name, remote name)`` for every file one variant of ``model_id`` needs, configs first.

    Configs come first and the ONNX file last on purpose: the ONNX file being in place is what marks a variant
    as cached, so it must be the last thing renamed into the folder.
    """
    if variant not in LOCAL_FILES:
        raise ValueError(f"unknown model variant {variant!r} (expected one of {', '.join(VARIANTS)})")
    known = known_model(model_id)
    remote = known.remote_name(variant) if known else LOCAL_FILES[variant]
    return [(name, name) for name in CONFIG_FILES] + [(LOCAL_FILES[variant], remote)]


def output_mapping(model_id: str) -> dict[str, str]:
    """The manifest's ``"outputs"`` entry for a hub id (empty when the ONNX names are the standard ones)."""
    known = known_model(model_id)
    return dict(known.outputs) if known else {}
