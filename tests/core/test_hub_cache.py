"""The model cache without the network: import (validated), list, remove, ids, and resolve_model's errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakehub import make_clip_like_repo
from helpers.files import tree_checksums

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import Cancelled, ModelError
from vitfeat_desktop.core.models.cache import default_import_id, import_model, list_cached_models, remove_model
from vitfeat_desktop.core.models.layout import MANIFEST_NAME, cache_folder, lock_path, read_manifest
from vitfeat_desktop.core.models.lock import ModelLock
from vitfeat_desktop.core.models.resolve import resolve_model

INT8 = "onnx/model_quantized.onnx"
FP32 = "onnx/model.onnx"


def leftovers() -> list[str]:
    root = config.models_dir()
    return [p.name for p in root.iterdir() if p.name.startswith((".import", ".removing", ".replaced"))] \
        if root.is_dir() else []


def save_model(model: object, path: Path) -> Path:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)  # type: ignore[arg-type]
    return path


def test_import_hub_layout_folder_validates_copies_and_never_touches_the_source(tiny_vit: Path) -> None:
    before = tree_checksums(tiny_vit)
    model = import_model(tiny_vit)
    assert tree_checksums(tiny_vit) == before
    assert model.model_id == "local/tiny-vit" and model.variants == ("int8", "fp32") and model.source == "import"
    assert model.imported_from == str(tiny_vit.resolve())
    for rel in ("config.json", "preprocessor_config.json", INT8, FP32):
        assert (model.folder / rel).read_bytes() == (tiny_vit / rel).read_bytes()
    manifest = read_manifest(model.folder)
    assert manifest["files"][INT8]["sha256"] == hashlib.sha256((tiny_vit / INT8).read_bytes()).hexdigest()
    assert "outputs" not in manifest
    from vitfeat_desktop.core.pipeline import pipeline

    vectors = pipeline(model="local/tiny-vit").embed(np.zeros((2, 3, 224, 224), dtype=np.float32))
    assert vectors.shape == (2, 32)
    assert leftovers() == []


def test_import_refuses_an_existing_id_unless_forced(tiny_vit: Path) -> None:
    import_model(tiny_vit, model_id="me/model")
    with pytest.raises(ModelError, match=r"already in the cache.*--force"):
        import_model(tiny_vit, model_id="me/model")
    model = import_model(tiny_vit / INT8, model_id="me/model", force=True)
    assert model.variants == ("int8",)
    assert leftovers() == []


def test_import_single_onnx_with_explicit_configs(tiny_vit: Path, tmp_path: Path) -> None:
    lone = tmp_path / "drop" / "encoder.onnx"
    lone.parent.mkdir()
    shutil.copy(tiny_vit / FP32, lone)
    with pytest.raises(ModelError, match=r"no preprocessor_config.json.*--preprocessor"):
        import_model(lone)
    assert not list_cached_models()
    model = import_model(lone, preprocessor_file=tiny_vit / "preprocessor_config.json",
                             config_file=tiny_vit / "config.json")
    assert model.model_id == "local/encoder" and model.variants == ("fp32",)
    assert resolve_model("local/encoder", quantized=False).onnx_path == model.folder / FP32
    # --variant overrides the guess from the name
    model = import_model(lone, model_id="me/as-int8", variant="int8",
                             preprocessor_file=tiny_vit / "preprocessor_config.json")
    assert model.variants == ("int8",)


def test_import_copied_cache_folder_keeps_its_id(tiny_vit: Path, tmp_path: Path) -> None:
    copy = tmp_path / "usb" / "Xenova--some-model"
    shutil.copytree(tiny_vit, copy)
    assert import_model(copy).model_id == "Xenova/some-model"
    (copy / MANIFEST_NAME).write_text(json.dumps({"model_id": "org/from-manifest", "commit": "a" * 40}))
    model = import_model(copy)
    assert model.model_id == "org/from-manifest" and model.commit == "a" * 40


def test_import_rejects_garbage_and_leaves_the_cache_alone(tiny_vit: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_vit, bad)
    (bad / INT8).write_bytes(b"this is not an onnx file")
    with pytest.raises(ModelError, match=r"not a model ONNX Runtime can open"):
        import_model(bad)
    assert not list_cached_models() and leftovers() == []


def test_import_rejects_models_that_are_not_image_encoders(tiny_vit: Path, tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    pre = tiny_vit / "preprocessor_config.json"

    def graph(inputs: list[tuple[str, list[object]]], outputs: list[tuple[str, list[object]]]) -> object:
        nodes = [helper.make_node("ReduceMean", [inputs[0][0]], [name], keepdims=0, axes=[1])
                 for name, _ in outputs[:1]]
        for name, _ in outputs[1:]:
            nodes.append(helper.make_node("Identity", [outputs[0][0]], [name]))
        g = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])

    four = save_model(graph([("x", ["N", 4, 224, 224])], [("last_hidden_state", ["N", 224, 224])]),
                      tmp_path / "four.onnx")
    with pytest.raises(ModelError, match=r"takes \[N,3,H,W\]"):
        import_model(four, preprocessor_file=pre)
    two = save_model(graph([("a", ["N", 3, 224, 224]), ("b", ["N", 3, 224, 224])],
                           [("last_hidden_state", ["N", 224, 224])]), tmp_path / "two.onnx")
    with pytest.raises(ModelError, match=r"takes inputs"):
        import_model(two, preprocessor_file=pre)
    flat = save_model(graph([("x", ["N", 3, 224, 224])], [("o", ["N", 224, 224]), ("p", ["N", 224, 224])]),
                      tmp_path / "flat.onnx")
    with pytest.raises(ModelError, match=r"no hidden states"):
        import_model(flat, preprocessor_file=pre)
    small = save_model(graph([("x", ["N", 3, 112, 112])], [("last_hidden_state", ["N", 112, 112])]),
                       tmp_path / "small.onnx")
    with pytest.raises(ModelError, match=r"112x112 images but .* makes 224x224"):
        import_model(small, preprocessor_file=pre)
    assert not list_cached_models() and leftovers() == []


def test_import_clip_like_folder_maps_the_pooled_output(tmp_path: Path) -> None:
    clip = make_clip_like_repo(tmp_path / "clip-export")
    model = import_model(clip)
    assert model.variants == ("int8", "fp32")
    assert read_manifest(model.folder)["outputs"] == {"pooler_output": "image_embeds"}
    from vitfeat_desktop.core.pipeline import pipeline

    extractor = pipeline(model=model.model_id)
    assert extractor.has_pooler and extractor.outputs.pooled == "image_embeds"


def test_import_cancel_leaves_nothing_behind(tiny_vit: Path) -> None:
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(Cancelled):
        import_model(tiny_vit, cancel=cancel)
    assert not list_cached_models() and leftovers() == []


def test_import_errors_for_missing_path_and_wrong_kind(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"does not exist"):
        import_model(tmp_path / "nope")
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(ModelError, match=r"neither a model folder nor an .onnx file"):
        import_model(text)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"has no onnx/model.onnx"):
        import_model(tmp_path / "empty")


def test_list_and_remove(tiny_vit: Path) -> None:
    assert list_cached_models() == []
    import_model(tiny_vit, model_id="a/one")
    import_model(tiny_vit / INT8, model_id="b/two")
    partial = cache_folder("c/three")
    (partial / "onnx").mkdir(parents=True)
    (partial / (INT8 + ".part")).write_bytes(b"12345")
    listed = {m.model_id: m for m in list_cached_models()}
    assert sorted(listed) == ["a/one", "b/two", "c/three"]
    assert listed["a/one"].variants == ("int8", "fp32") and not listed["a/one"].partial
    assert listed["c/three"].partial and listed["c/three"].variants == ()
    assert listed["a/one"].size_bytes > (tiny_vit / FP32).stat().st_size
    with ModelLock(lock_path("a/one")) as lock:
        assert lock.try_acquire()
        with pytest.raises(ModelError, match=r"being downloaded"):
            remove_model("a/one")
    assert remove_model("a/one") == cache_folder("a/one")
    assert not cache_folder("a/one").exists()
    assert [m.model_id for m in list_cached_models()] == ["b/two", "c/three"]
    with pytest.raises(ModelError, match=r"not in the model cache"):
        remove_model("a/one")
    with pytest.raises(ModelError, match=r"not a valid"):
        remove_model("../../etc")
    assert leftovers() == []


def test_cache_folder_and_ids() -> None:
    assert cache_folder("Xenova/dinov2-small") == config.models_dir() / "Xenova--dinov2-small"
    for bad in ("../x", "a/b/c", "/abs", "a/..", "a\\b", "org/name\n", "", "-x/y", "a/b."):
        with pytest.raises(ModelError):
            cache_folder(bad)
    assert default_import_id(Path("/x/My Model (v2)")) == "local/My-Model-v2"


def test_import_waits_for_no_one_while_a_download_of_that_id_runs(tiny_vit: Path) -> None:
    with ModelLock(lock_path("me/busy")) as lock:
        assert lock.try_acquire()
        with pytest.raises(ModelError, match=r"being downloaded by another process"):
            import_model(tiny_vit, model_id="me/busy")
    assert not cache_folder("me/busy").exists() and leftovers() == []
    assert import_model(tiny_vit, model_id="me/busy").variants == ("int8", "fp32")
