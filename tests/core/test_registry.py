"""The registry of known-good encoders: what the GUI offers and what the downloader fetches."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import ModelError
from vitfeat_desktop.core.models import registry
from vitfeat_desktop.core.models.layout import check_folder, resolve_spec, validate_filename, validate_model_id


def test_registry_has_the_default_dinov2_and_a_clip_vision_tower() -> None:
    ids = set(registry.KNOWN_MODELS)
    assert {config.DEFAULT_MODEL_ID, "Xenova/dinov2-small", "Xenova/clip-vit-base-patch32"} <= ids
    assert registry.default_model().model_id == config.DEFAULT_MODEL_ID


@pytest.mark.parametrize("model", list(registry.KNOWN_MODELS.values()), ids=lambda m: m.model_id)
def test_entries_are_complete_and_safe(model: registry.KnownModel) -> None:
    validate_model_id(model.model_id)
    assert set(model.remote_files) == set(registry.VARIANTS)
    for variant in registry.VARIANTS:
        validate_filename(model.remote_name(variant))
        assert model.download_bytes[variant] > 1_000_000
        assert "MB" in model.describe_size(variant)
    assert model.download_bytes["fp32"] > 2.5 * model.download_bytes["int8"]  # int8 weights are ~4x smaller
    assert len(model.hidden_shape) == 2 and model.embedding_dim > 0
    assert model.display_name and model.description
    assert set(model.outputs) <= {registry.HIDDEN, registry.POOLED}


def test_files_for_maps_remote_names_to_the_standard_layout() -> None:
    clip = registry.files_for("Xenova/clip-vit-base-patch32", "int8")
    assert clip[-1] == ("onnx/model_quantized.onnx", "onnx/vision_model_quantized.onnx")
    assert clip[:2] == [("config.json", "config.json"), ("preprocessor_config.json", "preprocessor_config.json")]
    assert registry.files_for("someone/unknown", "fp32")[-1] == ("onnx/model.onnx", "onnx/model.onnx")
    assert registry.output_mapping("Xenova/clip-vit-base-patch32") == {"pooler_output": "image_embeds"}
    assert registry.output_mapping("Xenova/dinov2-small") == {}
    with pytest.raises(ValueError, match=r"unknown model variant"):
        registry.files_for("a/b", "fp16")


def test_local_names_are_what_check_folder_expects(tmp_path) -> None:
    for variant, quantized in (("int8", True), ("fp32", False)):
        folder = tmp_path / variant
        for local, _ in registry.files_for("Xenova/clip-vit-base-patch32", variant):
            (folder / local).parent.mkdir(parents=True, exist_ok=True)
            (folder / local).write_text("{}")
        assert check_folder(folder, quantized).onnx_path == folder / registry.LOCAL_FILES[variant]


def test_sizes_say_which_are_estimates() -> None:
    clip = registry.known_model("Xenova/clip-vit-base-patch32")
    assert clip is not None
    assert clip.describe_size("int8") == "89 MB" and clip.describe_size("fp32").startswith("about ")
    assert registry.known_model("nobody/nothing") is None


def test_resolve_spec_tells_a_folder_from_a_hub_id(tmp_path: Path) -> None:
    """One place decides what a ``model=`` value names; it never downloads nor looks in the HF cache."""
    default = resolve_spec(None)
    assert default.model_id == config.DEFAULT_MODEL_ID and default.folder == config.models_dir() / \
        config.DEFAULT_MODEL_ID.replace("/", "--")
    hub_id = resolve_spec("org/name", quantized=False)
    assert hub_id.name == "org/name" and hub_id.variant == "fp32" and hub_id.onnx_path.name == "model.onnx"
    assert not hub_id.cached
    folder = resolve_spec(tmp_path)
    assert folder.model_id is None and folder.folder == tmp_path.resolve() and folder.name == str(tmp_path.resolve())
    assert resolve_spec(f"{tmp_path}/x/y").model_id is None  # written like a path, even if it is not there
    with pytest.raises(ModelError, match="not a valid Hugging Face model id"):
        resolve_spec("org/na me")
