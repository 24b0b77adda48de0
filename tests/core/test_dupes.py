"""Duplicate tiers, grouping without chaining, sensitivity, "not a duplicate" marks and similar shots."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, PngImagePlugin

from vitfeat_desktop.core.dupes.finder import DuplicateFinder
from vitfeat_desktop.core.dupes.geometry import GEO_ALIGNED, Geometry
from vitfeat_desktop.core.dupes.records import FileInfo
from vitfeat_desktop.core.dupes.sidecars import NotDuplicateMarks
from vitfeat_desktop.core.dupes.thresholds import Thresholds
from vitfeat_desktop.core.dupes.vectors import brute_knn, center_vectors, hash_candidates
from vitfeat_desktop.core.images import open_image
from vitfeat_desktop.core.phash import image_hashes


def _file_info(i: int, path: Path) -> FileInfo:
    image = open_image(path)
    return FileInfo(id=i, path=str(path), size=path.stat().st_size, width=image.width, height=image.height,
                    format=Image.open(path).format, content_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
                    hashes=image_hashes(open_image(path, min_side=64)))


@pytest.fixture()
def tier_library(tmp_path: Path, photos: list[Path]) -> dict[str, Path]:
    lib = tmp_path / "lib"
    lib.mkdir()
    a = Image.open(photos[0]).convert("RGB")
    b = Image.open(photos[1]).convert("RGB")
    out = {"a": lib / "a.jpg", "a_copy": lib / "a_copy.jpg", "a_small": lib / "a_small.jpg",
           "a_rot": lib / "a_rot.jpg", "a_mirror": lib / "a_mirror.jpg", "b": lib / "b.png",
           "b_meta": lib / "b_meta.png", "c": lib / "c.jpg"}
    shutil.copyfile(photos[0], out["a"])
    shutil.copyfile(photos[0], out["a_copy"])
    a.resize((a.width // 2, a.height // 2), Image.Resampling.LANCZOS).save(out["a_small"], quality=60)
    a.transpose(Image.Transpose.ROTATE_90).save(out["a_rot"], quality=90)
    ImageOps.mirror(a).save(out["a_mirror"], quality=90)
    b.save(out["b"])
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Comment", "edited metadata only")
    b.save(out["b_meta"], pnginfo=meta)
    shutil.copyfile(photos[2], out["c"])
    return out


def test_tiers_from_hashes_and_pixels(tier_library: dict[str, Path]) -> None:
    files = [_file_info(i, p) for i, p in enumerate(tier_library.values())]
    finder = DuplicateFinder.build(files)  # quick pass: no model
    groups = finder.groups()
    by_keeper = {Path(g.keeper.path).name: g for g in groups}
    assert set(by_keeper) == {"a.jpg", "b_meta.png"}  # same pixels: the larger file is kept
    a_group = by_keeper["a.jpg"]
    tiers = {Path(m.info.path).name: m.tier for m in a_group.members}
    assert tiers == {"a.jpg": "keeper", "a_copy.jpg": "exact", "a_small.jpg": "near-duplicate",
                     "a_rot.jpg": "near-duplicate", "a_mirror.jpg": "near-duplicate"}
    reasons = {Path(m.info.path).name: m.reason for m in a_group.members}
    assert "rotated" in reasons["a_rot.jpg"] and "mirrored" in reasons["a_mirror.jpg"]
    assert "same bytes" in reasons["a_copy.jpg"]
    assert a_group.tier == "near-duplicate"
    b_group = by_keeper["b_meta.png"]
    assert [m.tier for m in b_group.members] == ["keeper", "same-pixels"]
    assert b_group.tier == "same-pixels"
    # a file is in at most one group; the distractor in none
    paths = [p for g in groups for p in g.files]
    assert len(paths) == len(set(paths)) and str(tier_library["c"]) not in paths
    as_json = a_group.to_dict()
    assert as_json["keeper"] == str(tier_library["a"]) and as_json["files"][0] == as_json["keeper"]
    assert {"path", "tier", "reason", "score"} <= set(as_json["members"][1])


def test_same_pixels_needs_identical_decode(tier_library: dict[str, Path]) -> None:
    # the half-size JPEG has the same pHash as the original but different pixels: never "same-pixels"
    files = [_file_info(0, tier_library["a"]), _file_info(1, tier_library["a_small"])]
    group = DuplicateFinder.build(files).groups()[0]
    assert group.members[1].tier == "near-duplicate"


def _finder(n: int, pairs: list[tuple[int, int]], cos: list[float], **kw: object) -> DuplicateFinder:
    files = [FileInfo(id=i, path=f"/p/{i}.jpg", width=1000 - i, height=800) for i in range(n)]
    m = len(pairs)
    return DuplicateFinder(files, np.array(pairs, dtype=np.int64).reshape(-1, 2), cos=np.array(cos, np.float32),
                           hash_dist=np.full(m, 30), transform=np.zeros(m, dtype=np.int64),
                           align=np.full(m, np.nan, dtype=np.float32), exact=np.zeros(m, dtype=bool),
                           same_pixels=np.zeros(m, dtype=bool), thresholds=Thresholds(), **kw)  # type: ignore[arg-type]


def test_no_transitive_chaining() -> None:
    # 0~1 and 1~2 are copies, 0 and 2 are not: 2 must not join 0's group through 1
    finder = _finder(3, [(0, 1), (1, 2), (0, 2)], [0.99, 0.99, 0.1])
    groups = finder.groups()
    assert [[m.info.id for m in g.members] for g in groups] == [[0, 1]]


def test_chain_without_keeper_link_starts_a_new_group() -> None:
    # 0~1, 2~3 linked through 1~2 (a burst): two groups, never one of four
    finder = _finder(4, [(0, 1), (1, 2), (2, 3)], [0.99, 0.95, 0.99])
    assert sorted([m.info.id for m in g.members] for g in finder.groups()) == [[0, 1], [2, 3]]


def test_sensitivity_moves_the_cut_without_reading_files() -> None:
    # pair 0-1 aligned geometrically with a tone residual between the calibrated and the loose copy limits
    geo = Geometry(kind=np.array([GEO_ALIGNED], dtype=np.int8), residual=np.array([0.13]), local=np.array([0.6]),
                   scene=np.array([True]), checks={})
    finder = _finder(2, [(0, 1)], [0.5], geometry=geo)
    assert finder.groups(0.0) == [] and finder.groups(0.5) == []
    assert len(finder.groups(1.0)) == 1


def test_loose_end_never_groups_on_the_embedding_alone() -> None:
    # issue 12: at the loose end a pooled-vector similarity just under the calibrated cut (a mushroom and a pizza)
    # must not make a duplicate; the loose half of the slider only loosens the copy test of aligned pixels
    finder = _finder(2, [(0, 1)], [0.915])
    assert all(finder.groups(s) == [] for s in (0.0, 0.5, 0.75, 1.0))
    assert len(_finder(2, [(0, 1)], [0.94]).groups(1.0)) == 1  # over the calibrated cut it still counts


def test_geometry_overrides_hash_and_embedding() -> None:
    # two frames of a burst: pHash 4 bits apart and cosine 0.99, but the pixels do not map onto each other
    geo = Geometry(kind=np.array([GEO_ALIGNED], dtype=np.int8), residual=np.array([0.3]), local=np.array([0.4]),
                   scene=np.array([True]), checks={})
    finder = _finder(2, [(0, 1)], [0.99], geometry=geo)
    finder.hash_dist[:] = 4
    assert all(finder.groups(s) == [] for s in (0.0, 0.5, 1.0))
    assert [[f.id for f in s] for s in finder.similar_groups()] == [[0, 1]]


def test_not_a_duplicate_marks_are_stored_and_respected(tmp_path: Path) -> None:
    marks = NotDuplicateMarks.for_library(tmp_path / "Photos")
    finder = _finder(3, [(0, 1), (0, 2)], [0.99, 0.99], marks=marks)
    assert len(finder.groups()[0].members) == 3
    marks.mark(finder.files[0], finder.files[2])
    assert [[m.info.id for m in g.members] for g in finder.groups()] == [[0, 1]]  # the same finder sees it
    reloaded = NotDuplicateMarks.for_library(tmp_path / "Photos")
    assert len(reloaded) == 1 and reloaded.is_marked(finder.files[2], finder.files[0])
    again = _finder(3, [(0, 1), (0, 2)], [0.99, 0.99], marks=reloaded)
    assert [[m.info.id for m in g.members] for g in again.groups()] == [[0, 1]]
    reloaded.unmark(finder.files[0], finder.files[2])
    assert len(NotDuplicateMarks.for_library(tmp_path / "Photos")) == 0


def test_similar_shots_are_kept_apart() -> None:
    finder = _finder(6, [(0, 1), (2, 3), (4, 5)], [0.99, 0.75, 0.75])
    finder.hash_dist[:] = [30, 14, 31]  # 2 and 3 share a layout (one scene); 4 and 5 only an embedding
    assert [[m.info.id for m in g.members] for g in finder.groups()] == [[0, 1]]
    assert [[f.id for f in s] for s in finder.similar_groups()] == [[2, 3]]


def test_similar_shots_do_not_chain() -> None:
    # 0~1, 1~2, 2~3 look alike pairwise; a set is built around one shot, not along the chain
    finder = _finder(4, [(0, 1), (1, 2), (2, 3)], [0.75, 0.75, 0.75])
    finder.hash_dist[:] = 12
    assert [[f.id for f in s] for s in finder.similar_groups()] == [[0, 1], [2, 3]]


def test_verified_pairs_group_and_unverified_do_not() -> None:
    finder = _finder(3, [(0, 1), (0, 2)], [0.7, 0.7])
    finder.align[:] = [0.95, 0.5]
    assert [[m.info.id for m in g.members] for g in finder.groups()] == [[0, 1]]
    assert "pixels align" in finder.groups()[0].members[1].reason


def test_build_with_vectors_and_verifier() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16)).astype(np.float32)
    vectors = np.concatenate([base, base[:2] + 0.08 * rng.normal(size=(2, 16)).astype(np.float32)])
    files = [FileInfo(id=i, path=f"/p/{i}.jpg", width=100 + i, height=100) for i in range(8)]
    calls: list[tuple[int, int]] = []

    def verifier(a: FileInfo, b: FileInfo) -> float:
        calls.append((a.id, b.id))
        return 0.99

    t = Thresholds(cos_accept=0.999, cos_accept_lo=0.998, cos_accept_hi=0.9995, verify_min=0.9)
    finder = DuplicateFinder.build(files, vectors=vectors, thresholds=t, verifier=verifier, pixel_digest=None)
    groups = finder.groups()
    assert sorted(sorted(m.info.id for m in g.members) for g in groups) == [[0, 6], [1, 7]]
    assert calls and all(finder.cos[finder._pair_index[tuple(sorted(c))]] >= 0.9 for c in calls)


def test_hash_candidates_find_rotated_copies() -> None:
    rng = np.random.default_rng(1)
    ph = rng.integers(0, 2**63, size=(5, 8), dtype=np.uint64)
    ph[4] = np.roll(ph[1], 4)  # file 4's upright hash equals one of file 1's rotated hashes
    pairs = hash_candidates(ph, np.ones(5, dtype=bool))
    assert [1, 4] in pairs.tolist()


def test_centering_and_knn() -> None:
    v = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32)
    unit = center_vectors(v)
    assert np.allclose(np.linalg.norm(unit[:3], axis=1), 1) and not unit[3].any()
    knn = brute_knn(unit, k=2)
    assert knn[0, 0] == 1 and knn.shape == (4, 2)


def test_a_bare_alignment_needs_the_model_to_agree() -> None:
    """Flat pictures can align by chance just over the cut (a balance beam and an airship did, at 0.79 with an
    embedding similarity of 0.6): a clear alignment needs only the embedding floor, a bare one more."""
    finder = _finder(6, [(0, 1), (2, 3), (4, 5)], [0.6, 0.6, 0.85])
    cut = Thresholds().align_cut
    finder.align[:] = [cut + 0.01, cut + 0.1, cut + 0.01]
    assert sorted([m.info.id for m in g.members] for g in finder.groups()) == [[2, 3], [4, 5]]


def test_a_burst_with_a_close_hash_but_moved_pixels_is_not_a_copy() -> None:
    """Frames of a burst share their layout (pHash a few bits apart) but their pixels do not line up."""
    finder = _finder(8, [(0, 1), (2, 3), (4, 5), (6, 7)], [0.3, 0.3, 0.3, 0.3])
    finder.hash_dist[:] = [8, 8, 4, 8]
    finder.align[:] = [0.5, np.nan, 0.5, 0.95]  # moved / not checked / near-identical hash / aligned
    assert sorted([m.info.id for m in g.members] for g in finder.groups()) == [[2, 3], [4, 5], [6, 7]]


def test_sidecars_from_before_the_library_folder_are_moved_there_and_kept(tmp_path: Path) -> None:
    """Marks, keeper picks and verified pairs used to live in the data dir's dupes/ folder under a key of their
    own; the first use moves each into the library's data folder, so nothing the user decided is lost."""
    import json

    from vitfeat_desktop.core.dupes.sidecars import (
        KEEPERS,
        MARKS,
        VERIFIED,
        KeeperChoices,
        VerifiedPairs,
        legacy_sidecar_path,
        sidecar_path,
    )
    from vitfeat_desktop.core.library.paths import library_dir

    folder = tmp_path / "Photos"
    a = FileInfo(id=0, path=str(folder / "a.jpg"), content_hash="aa")
    b = FileInfo(id=1, path=str(folder / "b.jpg"), content_hash="bb")
    old = {name: legacy_sidecar_path(folder, name) for name in (MARKS, KEEPERS, VERIFIED)}
    old[MARKS].parent.mkdir(parents=True, exist_ok=True)
    old[MARKS].write_text(json.dumps({"pairs": [["aa", "bb"]]}), encoding="utf-8")
    old[KEEPERS].write_text(json.dumps({"keepers": ["bb"]}), encoding="utf-8")
    old[VERIFIED].write_text(json.dumps({"version": VerifiedPairs.VERSION, "scores": {"aa:bb:0": 0.9},
                                         "checks": {}}), encoding="utf-8")
    marks = NotDuplicateMarks.for_library(folder)
    assert marks.is_marked(b, a)
    assert KeeperChoices.for_library(folder).is_chosen(b)
    assert VerifiedPairs.for_library(folder).scores == {"aa:bb:0": 0.9}
    for name, path in old.items():
        moved = sidecar_path(folder, name)
        assert moved.parent == library_dir(folder) and moved.is_file() and not path.exists()
    marks.unmark(a, b)  # written at the new place, and an old file is never read again
    old[MARKS].write_text(json.dumps({"pairs": [["aa", "bb"]]}), encoding="utf-8")
    assert len(NotDuplicateMarks.for_library(folder)) == 0


def test_one_export_for_the_cli_and_the_gui(tmp_path: Path) -> None:
    """export.py writes what both front ends need: the plan's role per member, the keeper, the similar shots."""
    import csv
    import json

    from vitfeat_desktop.core.dupes.export import COLUMNS, write_export
    from vitfeat_desktop.core.dupes.records import SimilarSet

    finder = _finder(3, [(0, 1)], [0.99])
    groups = finder.groups()
    shots = [SimilarSet((finder.files[2], finder.files[0]), "2 shots of one scene, not copies: viewpoint moved")]
    written = write_export(tmp_path / "plan.csv", groups, shots)
    rows = list(csv.DictReader(written.open(encoding="utf-8")))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["group"], r["kind"], r["path"], r["role"], r["tier"]) for r in rows] == [
        ("1", "duplicates", "/p/0.jpg", "keep", "keeper"), ("1", "duplicates", "/p/1.jpg", "remove", "near-duplicate"),
        ("S1", "similar shots", "/p/2.jpg", "keep", "similar"), ("S1", "similar shots", "/p/0.jpg", "keep", "similar")]
    assert {r["keeper"] for r in rows[:2]} == {"/p/0.jpg"} and rows[0]["width"] == "1000" and rows[2]["score"] == ""
    data = json.loads(write_export(tmp_path / "plan.json", groups, shots, sensitivity=0.4).read_text())
    assert data["sensitivity"] == 0.4 and data["groups"][0]["keeper"] == "/p/0.jpg"
    assert data["similar_shots"] == [{"files": ["/p/2.jpg", "/p/0.jpg"], "reason": shots[0].reason}]


def test_the_duplicates_package_has_no_import_cycle() -> None:
    """Every import between core/dupes modules, those inside functions and under TYPE_CHECKING too, goes one way
    (the finder once imported calibrate, which imported the finder)."""
    import ast

    import vitfeat_desktop.core.dupes as package

    folder = Path(package.__file__).parent
    prefix = "vitfeat_desktop.core.dupes."
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found |= {n[len(prefix):].split(".")[0] for n in names if n.startswith(prefix)}
        graph[path.stem] = found - {path.stem}
    state: dict[str, int] = {}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert state.get(module) != 1, f"import cycle: {' -> '.join((*trail, module))}"
        if state.get(module) == 2:
            return
        state[module] = 1
        for other in sorted(graph.get(module, ())):
            visit(other, (*trail, module))
        state[module] = 2

    for module in sorted(graph):
        visit(module, ())
    assert {"records", "finder", "calibrate", "sidecars", "for_library", "export"} <= set(graph)
