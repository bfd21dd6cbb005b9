"""Workspace layout (COLMAP-compatible) and atomic writes."""

from __future__ import annotations

import pytest

from vid2model.workspace import Workspace, atomic_dir, atomic_path, clean_temps


def test_layout_is_colmap_compatible(tmp_path):
    ws = Workspace(tmp_path / "ws")
    rel = lambda p: p.relative_to(ws.root).as_posix()  # noqa: E731
    assert rel(ws.images_dir) == "images"
    assert rel(ws.sparse_dir) == "sparse/0"
    assert rel(ws.depth_maps_dir) == "dense/stereo/depth_maps"
    assert rel(ws.normal_maps_dir) == "dense/stereo/normal_maps"
    assert rel(ws.fused_ply) == "dense/fused.ply"
    assert rel(ws.transforms_json) == "transforms.json"
    assert rel(ws.manifest_path) == "manifest.json"
    assert rel(ws.report_html) == "report/index.html"
    assert rel(ws.export_path("glb")) == "export/model.glb"
    assert rel(ws.lod_mesh(10000)) == "mesh/mesh_lod_10000.ply"
    assert rel(ws.splat_ply) == "splat/point_cloud.ply"


def test_named_files_keep_the_layout_stages_used_to_build(tmp_path):
    ws = Workspace(tmp_path / "ws")
    rel = lambda p: p.relative_to(ws.root).as_posix()  # noqa: E731
    assert rel(ws.keyframe_image("f.jpg")) == "images/f.jpg"
    assert rel(ws.full_image("f.jpg")) == "images_full/f.jpg"
    assert rel(ws.probe_image("p.jpg")) == "ingest/probes/p.jpg"
    assert rel(ws.undistorted_image("f.jpg")) == "dense/images/f.jpg"
    assert rel(ws.texture_png) == "texture/texture.png" and rel(ws.texture_mtl) == "texture/model.mtl"
    assert rel(ws.mapping_scratch("global")) == "sfm/models/global"
    assert rel(ws.mapping_scratch("relaxed", merged=True)) == "sfm/models/relaxed_merged"
    attempt = ws.rescue_scratch("fixed_focal0")
    assert [rel(p) for p in attempt] == ["sfm/models/rescue/fixed_focal0" + s for s in
                                         ("", "/database.db", "/models", "/merged")]
    assert rel(ws.thumbs_dir) == "report/thumbs" and rel(ws.coverage_png) == "report/coverage.png"
    assert rel(ws.timeline_png) == "report/timeline.png" and rel(ws.site_html) == "site/index.html"
    assert rel(ws.thumb("frame_000012.jpg")) == "report/thumbs/frame_000012.jpg"
    assert rel(ws.thumb("IMG_1.png")) == "report/thumbs/IMG_1.jpg"
    assert [rel(p) for p in ws.texture_files()] == ["texture/model.obj", "texture/model.mtl", "texture/texture.png"]
    assert ws.relative(ws.textured_obj) == "texture/model.obj"


def test_a_temp_folder_gets_the_names_of_the_folder_it_stands_in_for(tmp_path):
    ws, tmp = Workspace(tmp_path / "ws"), tmp_path / "ws" / ".tmp-images-x"
    for named, folder in ((ws.keyframe_image, ws.images_dir), (ws.full_image, ws.images_full_dir),
                          (ws.probe_image, ws.probes_dir), (ws.thumb, ws.thumbs_dir)):
        assert named("f.jpg", root=tmp) == tmp / named("f.jpg").relative_to(folder)
    assert [p.name for p in ws.texture_files(root=tmp)] == [p.name for p in ws.texture_files()]
    assert {p.parent for p in ws.texture_files(root=tmp)} == {tmp}


def test_scratch_models_are_the_model_folders_in_name_order(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert ws.scratch_models("incremental") == []
    for name in ("2", "10", "0", "empty"):
        (ws.mapping_scratch("incremental") / name).mkdir(parents=True)
    for name in ("2", "10", "0"):
        (ws.mapping_scratch("incremental") / name / "cameras.bin").touch()
    (ws.mapping_scratch("incremental") / "stray.bin").touch()
    assert [p.name for p in ws.scratch_models("incremental")] == ["0", "10", "2"]


def test_image_names_and_exports_leave_out_temps_and_other_files(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.images_dir.mkdir(parents=True)
    for name in ("b.jpg", "a.jpg", ".tmp-c.jpg"):
        (ws.images_dir / name).touch()
    assert ws.image_names() == ["a.jpg", "b.jpg"]
    assert ws.exported_models() == []
    ws.export_dir.mkdir()
    for fmt, stem in (("obj", "model"), ("glb", "model"), ("ply", "splat")):
        ws.export_path(fmt, stem).touch()
    ws.export_json.touch()
    assert [p.name for p in ws.exported_models()] == ["model.glb", "model.obj"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a" / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".json" and tmp.parent == target.parent
        tmp.write_text("one")
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "one"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "images"
    with atomic_dir(target) as tmp:
        (tmp / "a.jpg").write_bytes(b"1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b.jpg").write_bytes(b"2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a.jpg"]
    with atomic_dir(target) as tmp:
        (tmp / "c.jpg").write_bytes(b"3")
    assert sorted(p.name for p in target.iterdir()) == ["c.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_clean_temps(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / ".tmp-mesh-123.ply").write_text("half")
    (tmp_path / ".tmp-images-1").mkdir()
    (tmp_path / "keep.ply").write_text("ok")
    clean_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.ply", "x"]


def test_json_roundtrip_with_numpy(tmp_path):
    import numpy as np

    ws = Workspace(tmp_path).create()
    ws.write_json(ws.scene_json, {"center": np.zeros(3), "r": np.float32(2.5)})
    assert ws.read_json(ws.scene_json) == {"center": [0.0, 0.0, 0.0], "r": 2.5}
