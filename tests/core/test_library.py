"""The Library facade: incremental scans, reuse by content, removal, separate indexes per model, search."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitfeat_desktop import config
from vitfeat_desktop.core.errors import Cancelled, VitfeatError
from vitfeat_desktop.core.library.ann import VectorIndex
from vitfeat_desktop.core.library.facade import Library
from vitfeat_desktop.core.library.paths import library_dir, sidecar
from vitfeat_desktop.core.progress import Progress


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture()
def folder(tmp_path: Path, photos: list[Path]) -> Path:
    root = tmp_path / "My Photos"
    (root / "2023" / "trip").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for i, p in enumerate(photos[:12]):
        target = root / ("2023/trip" if i % 3 == 0 else "") / p.name
        shutil.copy2(p, target)
    shutil.copy2(photos[20], root / ".hidden" / "secret.jpg")
    (root / "readme.txt").write_text("not an image")
    return root


def _agree(lib: Library) -> None:
    """Catalogue and index hold the same files."""
    ids, _ = lib.vectors()
    index = lib.ensure_index_loaded()
    assert index is not None
    assert index.labels() == set(ids.tolist())


def test_first_scan_then_nothing_to_do(folder: Path, tiny_vit: Path) -> None:
    before = _snapshot(folder)
    events: list[Progress] = []
    with Library.open(folder, model=str(tiny_vit)) as lib:
        report = lib.scan(progress=events.append)
        assert report.indexed == 12 and report.skipped == [] and report.unchanged == 0
        assert {Path(r.path).name for r in lib.files()} == {p.name for p in sorted(folder.rglob("*.JPEG"))}
        assert not any(".hidden" in r.path for r in lib.files())
        _agree(lib)
        again = lib.scan()
        assert (again.indexed, again.unchanged, again.reused, again.removed) == (0, 12, 0, 0)
        record = lib.files()[0]
        assert record.content_hash and record.width and record.height and record.format == "JPEG"
        assert record.hashes is not None and record.phash == record.hashes.phash
    assert events and events[-1].done == events[-1].total == 12
    assert {e.phase for e in events} >= {"walking", "indexing"}
    assert _snapshot(folder) == before  # nothing written in the user's folder
    data = library_dir(folder)
    assert data.is_relative_to(config.libraries_dir())
    assert (data / "catalog.sqlite").is_file()
    assert any((data / "indexes").glob("*/index.json"))


def test_rescan_does_not_open_unchanged_files(folder: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
    from vitfeat_desktop.core.library import scanner

    def forbidden(*args: object, **kwargs: object) -> object:
        raise AssertionError("an unchanged file was opened")

    monkeypatch.setattr(scanner, "content_hash", forbidden)
    monkeypatch.setattr(scanner, "open_image_with_info", forbidden)
    with Library.open(folder, model=str(tiny_vit)) as lib:
        assert lib.scan().unchanged == 12


def test_moved_copied_changed_and_deleted_files(folder: Path, tiny_vit: Path, photos: list[Path]) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
        files = sorted(folder.glob("*.JPEG"))
        moved_from, copied, changed, deleted = files[0], files[1], files[2], files[3]
        moved_to = folder / "2023" / "moved.jpg"
        old_vector = lib.similar(moved_from, k=1, exclude_self=False)[0]
        os.rename(moved_from, moved_to)
        shutil.copy2(copied, folder / "copy of it.jpg")
        shutil.copy2(photos[100], changed)  # same name, new content
        deleted.unlink()
        embedded: list[int] = []
        real_embed = lib.extractor.embed

        def counting_embed(pixels: np.ndarray) -> np.ndarray:
            embedded.append(len(pixels))
            return real_embed(pixels)

        lib.extractor.embed = counting_embed  # type: ignore[method-assign]
        report = lib.scan()
        assert report.reused == 2  # the moved file and the copy: no inference
        assert report.indexed == 1 and sum(embedded) == 1  # only the changed file ran through the model
        assert report.removed == 2  # the moved file's old path and the deleted file
        assert report.unchanged == 12 - 3  # all but the moved, changed and deleted files
        paths = {r.path for r in lib.files()}
        assert str(moved_to) in paths and str(moved_from) not in paths and str(deleted) not in paths
        hit = lib.similar(moved_to, k=1, exclude_self=False)[0]
        assert hit.path == str(moved_to) and hit.score == pytest.approx(old_vector.score, abs=1e-5)
        # The copy and its original are each other's nearest neighbour, at cosine 1.
        best = lib.similar(folder / "copy of it.jpg", k=1)[0]
        assert best.path == str(copied) and best.score == pytest.approx(1.0, abs=1e-4)
        _agree(lib)


def test_separate_index_per_model_and_variant(folder: Path, tiny_vit: Path, tiny_vit_no_pooler: Path) -> None:
    keys = set()
    for model, quantized in ((tiny_vit, True), (tiny_vit, False), (tiny_vit_no_pooler, True)):
        with Library.open(folder, model=str(model), quantized=quantized) as lib:
            report = lib.scan()
            assert report.indexed == 12
            keys.add(lib.model_key)
            ids, vectors = lib.vectors()
            assert len(ids) == 12 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
            record = lib.ensure_index_loaded().record  # type: ignore[union-attr]
            assert record["variant"] == ("int8" if quantized else "fp32")
            assert record["pooling"] == ("pooler_output" if model == tiny_vit else "cls_token")
            assert record["dim"] == 32
    assert len(keys) == 3
    # The first index is still there and still used as is.
    with Library.open(folder, model=str(tiny_vit)) as lib:
        assert lib.scan().unchanged == 12
        assert len(list((lib.data_dir / "indexes").iterdir())) == 3


def test_no_pooler_model_indexes_the_cls_token(folder: Path, tiny_vit_no_pooler: Path) -> None:
    from vitfeat_desktop.core.pipeline import pipeline

    # fp32: int8 dynamic quantisation scales activations per batch, so batch of 8 != batch of 1 exactly.
    with Library.open(folder, model=str(tiny_vit_no_pooler), quantized=False) as lib:
        lib.scan()
        ids, vectors = lib.vectors()
        path = lib.catalog.get_file(int(ids[0])).path  # type: ignore[union-attr]
    extractor = pipeline(model=str(tiny_vit_no_pooler), quantized=False)
    pre = extractor.preprocessor
    from vitfeat_desktop.core.images import open_image

    pixels = pre.normalize_uint8(pre.to_uint8_chw(open_image(path, min_side=pre.min_decode_side())))[None]
    cls = extractor.run(pixels)["last_hidden_state"][0, 0]
    assert np.allclose(vectors[0], cls / np.linalg.norm(cls), atol=1e-4)


def test_quick_pass_then_embedding_reuses_the_catalogue(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        quick = lib.scan(embed=False)
        assert quick.indexed == 12 and not quick.embedded
        assert all(r.hashes is not None for r in lib.files())
        assert lib.vectors()[0].size == 0
        full = lib.scan()
        assert full.indexed == 12
        assert len(lib.vectors()[0]) == 12
        _agree(lib)


def test_similar_accepts_paths_images_arrays_and_vectors(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
        target = sorted(folder.glob("*.JPEG"))[0]
        by_path = lib.similar(target, k=3)
        assert len(by_path) == 3 and str(target) not in [r.path for r in by_path]
        assert [r.score for r in by_path] == sorted((r.score for r in by_path), reverse=True)
        with_self = lib.similar(target, k=3, exclude_self=False)
        assert with_self[0].path == str(target)
        image = Image.open(target)
        by_image = lib.similar(image, k=1)
        assert by_image[0].path == str(target) and by_image[0].score > 0.99
        by_array = lib.similar(np.asarray(image.convert("RGB")), k=1)
        assert by_array[0].path == str(target)
        ids, vectors = lib.vectors()
        by_vector = lib.similar(vectors[3], k=1)
        assert by_vector[0].file_id == ids[3]
        assert len(lib.similar(target, k=100)) == 11
        with pytest.raises(ValueError):
            lib.similar(target, k=0)


def test_knn_graph(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
        ids, neighbours, sims = lib.knn(4)
        vids, vectors = lib.vectors()
        assert np.array_equal(ids, vids)
        assert neighbours.shape == (12, 4) and sims.shape == (12, 4)
        assert not np.any(neighbours == ids[:, None])
        exact = vectors @ vectors.T
        np.fill_diagonal(exact, -2)
        best = ids[np.argmax(exact, axis=1)]
        assert np.array_equal(neighbours[:, 0], best)
        assert np.all(np.diff(sims, axis=1) <= 1e-6)
        _, padded, padded_sims = lib.knn(20)
        assert np.all(padded[:, 11:] == -1) and np.all(padded_sims[:, 11:] == -1.0)


def test_cancel_keeps_finished_work(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.extractor.batch_size = 2
        seen = []

        def cancel() -> bool:
            return len(lib.vectors()[0]) >= 4

        with pytest.raises(Cancelled):
            lib.scan(cancel=cancel, progress=seen.append)
        kept = len(lib.vectors()[0])
        assert 4 <= kept < 12
        _agree(lib)
        report = lib.scan()
        assert report.indexed == 12 - kept and report.unchanged == kept


def test_queries_while_scanning(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.extractor.batch_size = 1
        lib.scan(embed=False)
        errors: list[BaseException] = []
        done = threading.Event()
        target = sorted(folder.glob("*.JPEG"))[0]

        def reader() -> None:
            while not done.is_set():
                try:
                    lib.files()
                    lib.similar(target, k=3)
                except VitfeatError:
                    pass  # nothing indexed yet
                except BaseException as exc:
                    errors.append(exc)
                    return

        t = threading.Thread(target=reader)
        t.start()
        try:
            lib.scan()
        finally:
            done.set()
            t.join()
        assert not errors
        with pytest.raises(VitfeatError, match="already running"):
            lib._scan_lock.acquire()
            try:
                lib.scan()
            finally:
                lib._scan_lock.release()


def test_missing_folder_and_empty_library(tmp_path: Path, tiny_vit: Path) -> None:
    with pytest.raises(VitfeatError, match="does not exist"):
        Library.open(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with Library.open(empty, model=str(tiny_vit)) as lib:
        assert lib.scan().indexed == 0
        with pytest.raises(VitfeatError, match="no images indexed"):
            lib.similar(np.zeros(32, np.float32))
        ids, nb, _sims = lib.knn(3)
        assert ids.size == 0 and nb.shape == (0, 3)


def test_index_rebuilt_from_catalogue_when_lost(folder: Path, tiny_vit: Path) -> None:
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
        index_dir = lib.index_dir
    shutil.rmtree(index_dir)
    with Library.open(folder, model=str(tiny_vit)) as lib:
        assert lib.scan().unchanged == 12
        _agree(lib)
    assert VectorIndex.load(index_dir) is not None


def test_many_deletions_compact_the_index(folder: Path, tiny_vit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vitfeat_desktop.core.library import ann

    monkeypatch.setattr(ann, "COMPACT_MIN_DELETED", 2)
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
        for p in sorted(folder.glob("*.JPEG"))[:5]:
            p.unlink()
        assert lib.scan().removed == 5
        index = lib.ensure_index_loaded()
        assert index is not None and index.deleted_count == 0 and len(index) == 7
        _agree(lib)


def test_every_format_is_indexed_end_to_end(tmp_path: Path, tiny_vit: Path, photos: list[Path]) -> None:
    pytest.importorskip("pillow_heif").register_heif_opener()
    pytest.importorskip("rawpy")
    from vitfeat_desktop.selftest.fixtures import write_linear_dng

    root = tmp_path / "formats"
    root.mkdir()
    base = Image.open(photos[0]).convert("RGB")
    names = []
    for ext, kwargs in ((".png", {}), (".webp", {"quality": 85}), (".tif", {}), (".bmp", {}), (".gif", {}),
                        (".avif", {"quality": 80}), (".heic", {"quality": 80}), (".JPG", {"quality": 90})):
        base.save(root / f"photo{ext}", **kwargs)
        names.append(f"photo{ext}")
    Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257).save(root / "photo16.tif")
    rgb16 = np.asarray(base, dtype=np.uint16) * 257
    write_linear_dng(root / "photo.dng", rgb16)
    names += ["photo16.tif", "photo.dng"]
    with Library.open(root, model=str(tiny_vit)) as lib:
        report = lib.scan()
        assert report.skipped == [] and report.indexed == len(names)
        by_name = {Path(r.path).name: r for r in lib.files(status="ok")}
        assert set(by_name) == set(names)
        formats = {n: by_name[n].format for n in names}
        assert formats["photo.dng"] == "RAW" and formats["photo.heic"] in ("HEIF", "HEIC")
        # The same pixels in another container land on the JPEG in embedding space. (The DNG is developed by
        # LibRaw with its own tone curve and the 16-bit TIFF is greyscale, so a random tiny model may put them
        # anywhere; their decode is checked in test_images.)
        hits = lib.similar(root / "photo.JPG", k=len(names), exclude_self=True)
        same_pixels = {Path(h.path).name: h.score for h in hits if Path(h.path).name not in ("photo.dng",
                                                                                           "photo16.tif")}
        assert len(same_pixels) == 7 and min(same_pixels.values()) > 0.95, same_pixels


def test_model_updated_in_place_gets_a_new_index(folder: Path, tmp_path: Path) -> None:
    from vitfeat_desktop.selftest.tinyvit import write_model_folder

    model = write_model_folder(tmp_path / "m" / "tiny", seed=3)
    with Library.open(folder, model=str(model)) as lib:
        lib.scan()
        old_key = lib.model_key
    shutil.rmtree(model)
    write_model_folder(model, seed=4, hidden=48)  # a new revision: other weights, other size
    with Library.open(folder, model=str(model)) as lib:
        assert lib.model_key != old_key
        report = lib.scan()
        assert report.indexed == 12  # nothing reused from the old network's vectors
        assert lib.vectors()[1].shape == (12, 48)


def test_two_writers_on_one_library_stay_consistent(folder: Path, tiny_vit: Path, photos: list[Path]) -> None:
    """The GUI and ``vitfeat index`` may work on the same library; neither may hide the other's rows."""
    first = Library.open(folder, model=str(tiny_vit))
    first.scan()
    for p in photos[200:203]:
        shutil.copy2(p, folder / p.name)
    with Library.open(folder, model=str(tiny_vit)) as second:
        assert second.scan().indexed == 3
    for p in sorted(folder.glob("*.JPEG"))[:2]:
        p.unlink()
    report = first.scan()  # its in-memory index predates the second writer's batches
    assert report.removed == 2 and report.indexed == 0
    _agree(first)
    assert len(first.ensure_index_loaded()) == 13  # type: ignore[arg-type]
    first.close()
    with Library.open(folder, model=str(tiny_vit)) as again:
        _agree(again)
        assert len(again.vectors()[0]) == 13
        hit = again.similar(folder / photos[201].name, k=1, exclude_self=False)[0]
        assert Path(hit.path).name == photos[201].name


def test_close_from_another_thread_stops_the_scan(folder: Path, tiny_vit: Path) -> None:
    lib = Library.open(folder, model=str(tiny_vit))
    lib.extractor.batch_size = 1
    started = threading.Event()
    real = lib.extractor.embed

    def embed(pixels: np.ndarray) -> np.ndarray:
        started.set()
        return real(pixels)

    lib.extractor.embed = embed  # type: ignore[method-assign]
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            lib.scan()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(60)
    lib.close()
    t.join(60)
    assert not t.is_alive()
    assert outcome and (outcome[0] is None or isinstance(outcome[0], Cancelled))
    lib.close()  # twice is fine
    with Library.open(folder, model=str(tiny_vit)) as again:
        _agree(again)
        kept = len(again.vectors()[0])
        assert again.scan().indexed == 12 - kept  # the rest, nothing twice
        assert len(again.vectors()[0]) == 12


def test_knn_with_exact_copies_drops_only_self(folder: Path, tiny_vit: Path) -> None:
    original = sorted(folder.glob("*.JPEG"))[0]
    for i in range(3):
        shutil.copy2(original, folder / f"copy{i}.jpg")
    with Library.open(folder, model=str(tiny_vit)) as lib:
        lib.scan()
        ids, neighbours, sims = lib.knn(3)
        paths = lib.catalog.paths_for(ids.tolist())
        group = {fid for fid, p in paths.items() if Path(p).name.startswith("copy") or Path(p) == original}
        assert len(group) == 4
        for row, fid in enumerate(ids.tolist()):
            assert fid not in neighbours[row].tolist()
            if fid in group:
                assert set(neighbours[row].tolist()) == group - {fid}
                assert np.allclose(sims[row], 1.0, atol=1e-4)


def test_quick_scan_never_loads_or_downloads_a_model(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vitfeat_desktop.core.pipeline as pipeline_mod

    def forbidden(*args: object, **kwargs: object) -> object:
        raise AssertionError("the quick pass must not load a model")

    monkeypatch.setattr(pipeline_mod, "pipeline", forbidden)
    with Library.open(folder, model="someone/not-downloaded") as lib:
        report = lib.scan(embed=False)
        assert report.indexed == 12 and report.model_key is None
        assert all(r.phash is not None for r in lib.files())


def test_model_key_settles_when_the_weights_arrive(folder: Path, tiny_vit: Path, vitfeat_home: Path) -> None:
    """A hub model downloaded by the first scan must not leave its vectors under a provisional key."""
    from vitfeat_desktop.core.models.layout import cache_folder

    model_id = "acme/tiny-vit"
    lib = Library.open(folder, model=model_id)
    provisional = lib.model_key
    shutil.copytree(tiny_vit, cache_folder(model_id))  # what the download does during the scan
    lib.scan()
    assert lib.model_key != provisional
    lib.close()
    with Library.open(folder, model=model_id) as again:
        assert again.model_key == lib.model_key
        assert again.scan().unchanged == 12


def test_sidecars_live_in_the_library_data_folder_keyed_like_the_library(folder: Path, tmp_path: Path) -> None:
    """Per-library side files follow the library's own key: a symlink to the folder finds the same ones."""
    link = tmp_path / "link-to-photos"
    link.symlink_to(folder, target_is_directory=True)
    assert sidecar(folder, "not-duplicates.json") == library_dir(folder) / "not-duplicates.json"
    assert sidecar(link, "not-duplicates.json") == sidecar(folder, "not-duplicates.json")
    with Library.open(folder) as lib:
        assert lib.sidecar("verified-pairs.json") == lib.data_dir / "verified-pairs.json"
    for bad in ("", ".", "..", "a/b", "catalog.sqlite", "library.json", "indexes", "damaged-20260101-000000"):
        with pytest.raises(ValueError):
            sidecar(folder, bad)
    assert not any(p.name == "not-duplicates.json" for p in folder.rglob("*"))  # nothing in the photo folder


def test_the_scanner_never_imports_the_facade() -> None:
    """The scanner writes through the vector store; it neither imports Library nor calls back into it."""
    import ast

    from vitfeat_desktop.core.library import scanner, vector_store, walk

    for module in (scanner, vector_store, walk):
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "vitfeat_desktop.core.library.facade" not in imported, module.__name__
