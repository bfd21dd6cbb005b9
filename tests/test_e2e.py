"""The whole pipeline through the CLI on a synthetic orbit with exact ground truth."""

from __future__ import annotations

import json

import numpy as np

from vid2model.cli import main
from vid2model.io.colmap_dense import read_array, read_points_ply
from vid2model.synth.evaluate import camera_errors, load_gt, surface_fscore


def test_every_stage_done_and_layout(orbit_workspace):
    ws = orbit_workspace
    m = json.loads(ws.manifest_path.read_text())
    for stage in ("ingest", "sfm", "dense", "mesh", "texture", "export"):
        e = m["stages"][stage]
        assert e["status"] == "done" and e["wall_s"] > 0 and e["peak_mem_mb"] > 0
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        assert (ws.sparse_dir / name).exists()
    assert (ws.dense_sparse_dir / "cameras.bin").exists()
    depth_files = sorted(ws.depth_maps_dir.glob("*.geometric.bin"))
    assert len(depth_files) == len(list(ws.images_dir.iterdir()))
    d = read_array(depth_files[0])
    assert d.ndim == 2 and (d > 0).mean() > 0.1
    assert ws.transforms_json.exists() and ws.report_html.exists()
    for fmt in ("glb", "gltf", "obj", "usdz", "fbx", "ply"):
        assert ws.export_path(fmt).stat().st_size > 1000, fmt
    assert ws.export_path("usd").exists()


def test_cameras_match_ground_truth(orbit_workspace, synth_orbit):
    err = camera_errors(orbit_workspace, load_gt(synth_orbit.gt_path))
    assert err["registered_share"] == 1.0
    assert err["rot_median_deg"] < 0.25  # 320x240 video; the 0.1° target is checked at 640x480 in test_sfm
    assert err["center_median_rel"] < 0.005


def test_dense_points_are_accurate(orbit_workspace, synth_orbit):
    pts = read_points_ply(orbit_workspace.fused_ply)
    assert pts["normals"] is not None and pts["rgb"] is not None
    res = surface_fscore(pts["xyz"], orbit_workspace, load_gt(synth_orbit.gt_path), synth_orbit.mesh_vertices,
                         synth_orbit.mesh_faces)
    # measured at 1335721: F 0.980, P 0.987, F@0.5 % 0.903 (same in two runs); with the GT samples drawn inside
    # the scored region: 0.979, 0.987, 0.922. Floors about 0.05 under, for other machines and
    # library builds
    assert res["at_0.01"]["fscore"] > 0.93 and res["at_0.01"]["precision"] > 0.94
    assert res["at_0.005"]["fscore"] > 0.87


def test_a_perfect_cloud_scores_one(orbit_workspace, synth_orbit):
    """The scoring itself: points drawn on the seen ground-truth surface (other draws than the GT samples)
    score F 1 at both thresholds; with the samples spread over the whole scene this scored F@0.5 % ~0.6."""
    from vid2model.synth.evaluate import gt_surface_samples, region_of, to_gt_frame

    gt, V, F = load_gt(synth_orbit.gt_path), synth_orbit.mesh_vertices, synth_orbit.mesh_faces
    samples = gt_surface_samples(gt, V, F)  # 1M samples, as every score here uses
    q, seen = gt_surface_samples(gt, V, F, seed=1)
    centre, radius = region_of(gt)
    q = q[seen & (np.linalg.norm(q - centre, axis=1) <= radius)]
    s, R, t = to_gt_frame(orbit_workspace, gt)
    res = surface_fscore(((q - t) @ R) / s, orbit_workspace, gt, V, F, gt_samples=samples)
    assert res["at_0.005"]["precision"] > 0.99 and res["at_0.005"]["recall"] > 0.99, res


def test_mesh_is_accurate(orbit_workspace, synth_orbit):
    import trimesh

    from vid2model.ops.metrics import sample_surface

    mesh = trimesh.load(orbit_workspace.clean_mesh, process=False)
    pts = sample_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces), 100_000)
    res = surface_fscore(pts, orbit_workspace, load_gt(synth_orbit.gt_path), synth_orbit.mesh_vertices,
                         synth_orbit.mesh_faces)
    # measured at 1335721: F 0.907-0.908 (P 0.994-0.995, R 0.835) in two runs; floors about 0.05 under
    assert res["at_0.01"]["fscore"] > 0.86 and res["at_0.01"]["precision"] > 0.95


def test_glb_reads_back_textured(orbit_workspace):
    import trimesh

    scene = trimesh.load(orbit_workspace.export_path("glb"))
    geom = list(scene.geometry.values())[0]
    assert len(geom.faces) > 1000
    assert geom.visual.material.baseColorTexture is not None
    exp = json.loads(orbit_workspace.export_json.read_text())
    assert exp["triangles"] == len(geom.faces)
    # Y-up: the floor spans X and Z, and the objects stand on it towards +Y (the floor is at the bottom);
    # measured 0.13 and 0.09 against the bounds 0.3 and 0.25 (upside down: 0.95)
    v = np.asarray(geom.vertices)
    span = np.ptp(v, axis=0)
    assert span[1] < 0.3 * min(span[0], span[2])
    floor = np.percentile(v[:, 1], 5)
    assert floor - v[:, 1].min() < 0.25 * (v[:, 1].max() - floor)


def test_rerun_skips_everything(orbit_workspace, capsys):
    assert main(["run", str(json.loads(orbit_workspace.input_path.read_text())["path"]), "-o",
                 str(orbit_workspace.root), "--skip", "splat", "-q", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["status"] for s in out["stages"].values()} == {"skipped"}
    assert main(["status", str(orbit_workspace.root)]) == 0
