"""Dense stage on synthetic captures with exact ground truth (workspace built by tests/helpers_colmap.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers_colmap import make_dense_workspace
from vid2model.config import DenseConfig
from vid2model.errors import UserError
from vid2model.io.colmap import load_views
from vid2model.io.colmap_dense import read_array, read_points_ply
from vid2model.stages import dense
from vid2model.synth import SynthConfig, generate
from vid2model.synth.evaluate import load_gt, surface_fscore
from vid2model.workspace import Workspace

SMALL = DenseConfig(max_side=240, num_sources=3, n_planes=32, n_refine=9, rounds=2)


@pytest.fixture(scope="module")
def small_orbit(tmp_path_factory):
    """10 frames over a 150 degree arc at 240x180, workspace with GT cameras, dense stage run once."""
    synth = generate(tmp_path_factory.mktemp("dense_synth"),
                     SynthConfig(path="orbit", width=240, height=180, n_frames=10, arc_deg=150, seed=3,
                                 write_video=False, write_images=True))
    ws = make_dense_workspace(Workspace(tmp_path_factory.mktemp("dense_ws") / "ws"), synth)
    summary = dense.run(ws, SMALL)
    return synth, ws, summary


def test_helper_writes_a_complete_workspace(small_orbit):
    synth, ws, _ = small_orbit
    views = load_views(ws.dense_sparse_dir)
    assert len(views) == 10 and all(v.model == "PINHOLE" for v in views)
    np.testing.assert_allclose(views[4].cam_to_world, synth.cam_to_world[4], atol=1e-9)
    assert len(load_views(ws.sparse_dir)) == 10
    scene = ws.read_json(ws.scene_json)
    assert scene["up"] == [0, 0, 1] and scene["capture"] == "orbit" and scene["radius"] == synth.scene_radius
    assert all((ws.undistorted_dir / v.name).exists() for v in views)


def test_depth_maps_in_colmap_format_and_accurate(small_orbit):
    from vid2model.synth import render_depth

    synth, ws, summary = small_orbit
    views = load_views(ws.dense_sparse_dir)
    assert summary["n_views"] == 10 and summary["resolution"] == [240, 180]
    v = views[5]
    depth = read_array(ws.depth_map(v.name))
    normals = read_array(ws.normal_map(v.name))
    assert depth.shape == (180, 240) and normals.shape == (180, 240, 3)
    gt = render_depth(synth.config, v.K, 240, 180, v.cam_to_world)[0]
    ok = (depth > 0) & np.isfinite(gt)
    assert np.mean((depth > 0) & ~np.isfinite(gt)) < 0.01  # almost no depth where there is no surface
    assert ok.mean() > 0.15
    rel = np.abs(depth[ok] - gt[ok]) / gt[ok]
    assert np.median(rel) < 0.01 and np.mean(rel < 0.03) > 0.9
    unit = np.linalg.norm(normals[ok], axis=1)
    assert np.mean(np.abs(unit - 1) < 1e-3) > 0.99


def test_fused_cloud_fscore(small_orbit):
    synth, ws, summary = small_orbit
    cloud = read_points_ply(ws.fused_ply)
    assert cloud["normals"] is not None and cloud["rgb"] is not None
    assert len(cloud["xyz"]) == summary["n_points"] > 10_000
    res = surface_fscore(cloud["xyz"], ws, load_gt(synth.gt_path), synth.mesh_vertices, synth.mesh_faces,
                         thresholds=(0.02, 0.01), n_samples=100_000)
    print("small orbit F-scores", res)
    # measured at 1335721: F 0.955 / 0.813, P 0.994 / 0.773; floors 0.05 under. Lower than the e2e orbit:
    # 240x180 is coarse, the arc ends see little, and 100k GT samples cap the precision at 1 %
    assert res["at_0.02"]["precision"] >= 0.95
    assert res["at_0.02"]["fscore"] >= 0.90
    assert res["at_0.01"]["fscore"] >= 0.76


def test_held_out_views_stay_out_of_stereo(small_orbit, tmp_path):
    """dense.holdout_every: every n-th view by name is listed, gets no maps and serves as no source."""
    import shutil

    _, ws, _ = small_orbit
    held_ws = Workspace(tmp_path / "ws")
    shutil.copytree(ws.root, held_ws.root)
    summary = dense.run(held_ws, dataclasses.replace(SMALL, holdout_every=4))
    names = sorted(v.name for v in load_views(ws.dense_sparse_dir))
    held = held_ws.read_json(held_ws.holdout_json)
    assert held == [names[0], names[4], names[8]]
    assert summary["n_views"] == 7 and summary["held_out"] == 3
    assert not any(held_ws.depth_map(n).exists() for n in held)
    assert all(held_ws.depth_map(n).exists() for n in names if n not in held)
    assert read_points_ply(held_ws.fused_ply)["xyz"].shape[0] > 1000
    assert dense.split_holdout(load_views(ws.dense_sparse_dir)[:4], 2)[1] == []  # 2 left: nothing held


def test_colmap_cuda_backend_without_cuda_is_a_user_error(small_orbit):
    import pycolmap

    if getattr(pycolmap, "has_cuda", False):
        pytest.skip("pycolmap has CUDA here")
    with pytest.raises(UserError, match="CUDA"):
        dense.run(small_orbit[1], dataclasses.replace(SMALL, backend="colmap_cuda"))


def test_bad_propagation_distance_is_a_user_error(small_orbit):
    with pytest.raises(UserError, match="propagate_px"):
        dense.run(small_orbit[1], dataclasses.replace(SMALL, propagate_px=(8, -4)))


def test_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="sfm"):
        dense.run(Workspace(tmp_path / "empty"), SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["orbit", "walk"])
def test_default_preset_fscore_on_synthetic_scenes(path, request, tmp_path):
    """Done-when criterion of issue #5 on 24-frame 320x240 captures (default dense settings)."""
    synth = request.getfixturevalue(f"synth_{path}")
    ws = make_dense_workspace(Workspace(tmp_path / "ws"), synth)
    dense.run(ws, DenseConfig())
    # 1M GT samples: with the default 200k the samples left in the region lie so far apart that a perfect
    # cloud scores P@0.5% ~ 0.62 (bench/bench_dense.py does the same)
    res = surface_fscore(read_points_ply(ws.fused_ply)["xyz"], ws, load_gt(synth.gt_path), synth.mesh_vertices,
                         synth.mesh_faces, n_samples=1_000_000)
    print(path, res)
    # issue #5 targets 0.90 / 0.75; measured orbit 0.985 / 0.953, walk 0.930 / 0.896 (sources chosen for
    # coverage, 8 per view; with 4 by shared points only the walk was 0.812 / 0.777: the near floor was
    # matched against views ahead that no longer see it)
    assert res["at_0.01"]["precision"] >= 0.95
    assert res["at_0.01"]["fscore"] >= 0.90
    assert res["at_0.005"]["fscore"] >= (0.9 if path == "orbit" else 0.75)


def test_ordered_map_yields_in_order_from_threads():
    import time

    from vid2model.ops.threads import ordered_map

    def slow_for_some(i: int) -> int:
        time.sleep(0.01 * (i % 3))  # later items often finish first
        return i

    assert list(ordered_map(slow_for_some, 20, 2)) == list(range(20))
    assert list(ordered_map(slow_for_some, 5, 1)) == list(range(5))
