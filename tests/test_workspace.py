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
