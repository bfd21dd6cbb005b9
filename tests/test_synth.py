"""The synthetic scene generator: exact ground truth, video round trips, defects where asked."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import replace

import av
import cv2
import numpy as np
import pytest

from vid2model.synth import SynthConfig, generate, make_scene, mesh_colors, render_depth, render_views
from vid2model.synth.camera import look_at
from vid2model.synth.mesh import nearest_surface, scene_mesh
from vid2model.synth.render import cast


def _project(K, c2w, X):
    """Pixel coordinates (N, 2) (centres at +0.5) and camera z (N,) of world points X (N, 3)."""
    w2c = np.linalg.inv(c2w)
    x = X @ w2c[:3, :3].T + w2c[:3, 3]
    return np.stack([K[0, 0] * x[:, 0] / x[:, 2] + K[0, 2], K[1, 1] * x[:, 1] / x[:, 2] + K[1, 2]], 1), x[:, 2]


def _decode(path):
    with av.open(str(path)) as c:
        return [(f.rotation, float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def test_gt_mesh_lies_on_the_rendered_surfaces(synth_orbit):
    r = synth_orbit
    scene = make_scene(r.config)
    # Every facet centroid is on an analytic surface: tessellation error < 0.1% of the scene size.
    cen = r.mesh_vertices[r.mesh_faces].mean(1)
    assert nearest_surface(scene, cen)[1].max() < 1e-3 * 2 * r.scene_radius
    # Rays cast at GT facet centroids stop there when visible and never pass them (rays at vertices
    # would graze box edges and the floor's rim, where a float ulp decides).
    rng = np.random.default_rng(0)
    X = cen[rng.choice(len(cen), 6000, replace=False)]
    for i in (0, 9, 17):
        o = r.cam_to_world[i, :3, 3]
        dist = np.linalg.norm(X - o, axis=1)
        t, _ = cast(scene, o, (X - o) / dist[:, None])
        assert np.all(t <= dist + 1e-6)
        assert np.mean(np.abs(t - dist) < 1e-3) > 0.3  # a good share is visible, hit where the mesh is
    # The same holds per pixel through the public depth maps (within a pixel's depth footprint).
    i = 5
    depth = render_depth(r.config, r.K, r.width, r.height, r.cam_to_world[i])[0]
    uv, z = _project(r.K, r.cam_to_world[i], X)
    u, v = np.floor(uv).astype(int).T
    ok = (z > 0) & (u >= 0) & (u < r.width) & (v >= 0) & (v < r.height)
    d = depth[v[ok], u[ok]]
    d_min = cv2.erode(depth, np.ones((3, 3), np.uint8))[v[ok], u[ok]]  # silhouettes, grazing floor
    assert np.mean(d_min > z[ok] * 1.001) < 0.002
    assert np.mean(np.abs(d - z[ok]) < 0.02 * z[ok]) > 0.3


def test_object_silhouette_matches_mesh_rasterisation(synth_orbit):
    r = synth_orbit
    objects = replace(make_scene(r.config), ground_half=0.0)  # objects only: a tight silhouette test
    verts, faces, _ = scene_mesh(objects)
    for i in (3, 14):
        mask_render = np.isfinite(render_depth(objects, r.K, r.width, r.height, r.cam_to_world[i])[0])
        uv, z = _project(r.K, r.cam_to_world[i], verts)
        mask_mesh = np.zeros((r.height, r.width), np.uint8)
        # OpenCV rasterises with pixel centres at integers: shift by the +0.5 convention of K.
        pts = np.round((uv - 0.5) * 16).astype(np.int32)
        for f in faces:
            cv2.fillConvexPoly(mask_mesh, pts[f], 1, shift=4)
        inter = np.logical_and(mask_render, mask_mesh > 0).sum()
        union = np.logical_or(mask_render, mask_mesh > 0).sum()
        assert mask_render.mean() > 0.05 and inter / union > 0.97


def test_mesh_colors_are_the_rendered_colours(synth_orbit):
    r = synth_orbit
    i = 7
    img = render_views(r.config, r.K, r.width, r.height, r.cam_to_world[i])[0]
    depth = render_depth(r.config, r.K, r.width, r.height, r.cam_to_world[i])[0]
    v, u = np.nonzero(np.isfinite(depth))
    rays = np.stack([u + 0.5, v + 0.5, np.ones_like(u, float)], 1) @ np.linalg.inv(r.K).T
    P = (rays * depth[v, u, None]) @ r.cam_to_world[i, :3, :3].T + r.cam_to_world[i, :3, 3]
    diff = np.abs(mesh_colors(r.config, P).astype(int) - img[v, u]).max(1)
    assert np.mean(diff <= 1) > 0.99
    # The PLY carries the same per-vertex colours, from the same function, with exact normals.
    assert np.array_equal(r.mesh_colors, mesh_colors(r.config, r.mesh_vertices, r.mesh_normals))
    assert r.mesh_colors.std() > 30  # textured, not flat


def test_video_roundtrip_gt_json_and_sift(synth_orbit):
    r = synth_orbit
    dec = _decode(r.video_path)
    assert len(dec) == 24 and dec[0][2].shape == (240, 320, 3) and dec[0][0] == 0
    gt = json.loads(r.gt_path.read_text())
    assert len(gt["frames"]) == 24 and np.allclose(gt["K"], r.K) and gt["world_up"] == [0, 0, 1]
    assert np.allclose(gt["frames"][5]["cam_to_world"], r.cam_to_world[5])
    assert np.allclose([f[1] for f in dec], r.timestamps, atol=1e-3)
    # Poses are rigid with OpenCV axes: the camera looks at the object and image "down" is world -Z.
    R = r.cam_to_world[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(R), 1)
    to_center = r.scene_center - r.cam_to_world[:, :3, 3]
    assert np.all(np.einsum("ni,ni->n", R[:, :, 2], to_center) / np.linalg.norm(to_center, axis=1) > 0.98)
    assert np.all(R[:, 2, 1] < -0.8)
    ref = render_views(r.config, r.K, 320, 240, r.cam_to_world[:1])[0]
    assert np.abs(ref.astype(float) - dec[0][2]).mean() < 8  # codec loss only
    kps = cv2.SIFT_create().detect(cv2.cvtColor(dec[0][2], cv2.COLOR_RGB2GRAY))
    assert len(kps) > 300


def _tkhd_matrix(path) -> tuple[float, float, float, float]:
    """(a, b, c, d) of the MP4 track header's display matrix (QuickTime: x' = a x + c y, y' = b x + d y)."""
    data = path.read_bytes()
    i = data.find(b"tkhd")
    off = i + 4 + 4 + (32 if data[i + 4] == 1 else 20) + 8 + 8
    m = struct.unpack(">9i", data[off:off + 36])
    return m[0] / 65536, m[1] / 65536, m[3] / 65536, m[4] / 65536


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_metadata_vfr_blur_exposure(tmp_path, rotation):
    cfg = SynthConfig(width=160, height=240, n_frames=12, rotation=rotation, vfr=True, blur_frames=((4, 7),),
                      exposure_gain=((8, 1.8),), seed=3)
    r = generate(tmp_path, cfg)
    dec = _decode(r.video_path)
    rot, _, stored = dec[0]
    assert rot % 360 == rotation and stored.shape[:2] == (160, 240)  # stored landscape, displayed portrait
    assert json.loads(r.gt_path.read_text())["rotation"] == rotation
    # A player honouring the container matrix turns the stored picture counter-clockwise by `rotation`.
    a, b, c, d = _tkhd_matrix(r.video_path)
    s = 1 if rotation == 90 else -1
    assert (a, b, c, d) == (0, -s, s, 0)
    upright = np.rot90(stored, k=rotation // 90)
    assert upright.shape[:2] == (240, 160) and (r.width, r.height) == (160, 240)
    ref = render_views(cfg, r.K, 160, 240, r.cam_to_world[:1])[0]
    assert np.abs(ref.astype(float) - upright).mean() < 10
    # VFR: file PTS are the GT timestamps, which are irregular.
    assert np.allclose([f[1] for f in dec], r.timestamps, atol=1e-6)
    assert np.std(np.diff(r.timestamps)) > 0.01
    grays = [cv2.cvtColor(np.ascontiguousarray(f[2]), cv2.COLOR_RGB2GRAY) for f in dec]
    sharp = [cv2.Laplacian(g, cv2.CV_64F).var() for g in grays]
    assert max(sharp[4:7]) < 0.6 * min(sharp[0:4] + sharp[7:8])
    means = [g.mean() for g in grays]
    assert np.mean(means[8:]) > 1.3 * np.mean(means[:8])
    assert abs(means[7] - means[6]) < 0.15 * means[6]  # the step is at frame 8, not before


def test_marker_is_detected_at_its_gt_corners(tmp_path):
    r = generate(tmp_path, SynthConfig(n_frames=2, marker_size=0.2, write_video=False))
    corners = r.marker_corners
    edges = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    assert np.allclose(edges, 0.2) and np.allclose(corners[:, 2], 0)
    assert json.loads(r.gt_path.read_text())["marker"]["size"] == 0.2
    c = corners.mean(0)
    pose = look_at(c + np.array([0.1, -0.35, 0.6]), c)
    img = render_views(r.config, r.K, 320, 240, pose)[0]
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), params)
    found, ids, _ = det.detectMarkers(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    assert ids is not None and ids.ravel().tolist() == [0]
    uv, _ = _project(r.K, pose, corners)
    assert np.abs(found[0][0] - (uv - 0.5)).max() < 1.0  # same corners, same order


def test_walk_scene_image_folder(tmp_path):
    r = generate(tmp_path, SynthConfig(path="walk", n_frames=6, write_video=False, write_images=True,
                                       image_ext="jpg", seed=2))
    names = sorted(p.name for p in r.images_dir.iterdir())
    assert names[0] == "frame_000000.jpg" and len(names) == 6 and r.video_path is None
    depth = render_depth(r.config, r.K, r.width, r.height, r.cam_to_world)
    assert np.isfinite(depth).all()  # inside a closed room every ray hits
    img = cv2.imread(str(r.images_dir / names[3]), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (240, 320) and len(cv2.SIFT_create().detect(img)) > 300
    steps = np.linalg.norm(np.diff(r.cam_to_world[:, :3, 3], axis=0), axis=1)
    assert np.all(steps > 0.1)  # walking forward


def test_speed_and_config_checks(tmp_path):
    t = time.perf_counter()
    generate(tmp_path, SynthConfig(n_frames=24, seed=5))
    assert time.perf_counter() - t < 10
    with pytest.raises(ValueError):
        SynthConfig(path="spiral")
    with pytest.raises(ValueError):
        SynthConfig(width=321)


def test_room_openings_are_holes_in_the_walls_the_renders_and_the_gt_mesh_agree_on():
    from vid2model.synth.generate import scene_fields, scene_of_gt
    from vid2model.synth.scene import in_opening, opening_truth

    cfg = SynthConfig(path="walk", walk_tour=True, room_openings=True, write_video=False)
    scene = make_scene(cfg)
    assert scene_of_gt({"scene_config": scene_fields(cfg)}) == scene  # gt.json rebuilds it
    truth = opening_truth(scene)
    assert [(t["wall"], t["kind"], round(t["width"], 9), round(t["height"], 9), round(t["sill"], 9)) for t in truth] \
        == [("y-", "door", 0.9, 2.0, 0.0), ("y-", "window", 1.0, 1.2, 0.9), ("x+", "window", 1.4, 1.0, 1.0)]
    V, F, N = scene_mesh(scene)
    cen = V[F].mean(1)
    assert not in_opening(scene, cen).any() and nearest_surface(scene, cen)[1].max() < 1e-3 * 2 * scene.radius
    area = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    walls = (np.abs(N[F[:, 0], 2]) < 0.5) & (np.abs(cen[:, 0]) <= 2 + 1e-9) & (np.abs(cen[:, 1]) <= 3 + 1e-9)
    walls &= (np.abs(np.abs(cen[:, 0]) - 2) < 1e-9) | (np.abs(np.abs(cen[:, 1]) - 3) < 1e-9)
    assert area[walls].sum() == pytest.approx(2 * (4 + 6) * 2.5 - sum(t["width"] * t["height"] for t in truth))
    # the larger room's floor and ceiling stop at the room's: no second surface on top of its own
    nz = N[F[:, 0], 2]
    flat = ((np.abs(cen[:, 2]) < 1e-9) & (nz > 0.5)) | ((np.abs(cen[:, 2] - 2.5) < 1e-9) & (nz < -0.5))
    assert area[flat].sum() == pytest.approx(2 * (6.4 * 8.4), rel=1e-9)
    eye = np.array([0.2, -0.3, 1.4])
    for t in truth:  # through each opening's middle the ray goes on to the larger room; beside it, the wall
        for target, beyond in ((np.array(t["center"]), True), (np.array(t["center"]) + [0, 0, 0.6 * t["height"]],
                                                                False)):
            d = target - eye
            hit, _ = cast(scene, eye, (d / np.linalg.norm(d))[None])
            assert (hit[0] > np.linalg.norm(d) + 1.0) == beyond
    # rays at the GT facets stop at them or in front: the mesh has nothing where the renders see through
    dist = np.linalg.norm(cen - eye, axis=1)
    hit, _ = cast(scene, eye, (cen - eye) / dist[:, None])
    assert np.all(hit <= dist + 1e-6) and np.mean(np.abs(hit - dist) < 1e-6) > 0.3


def test_a_plain_cylinder_product_is_one_colour_and_in_the_gt_mesh():
    from vid2model.synth.scene import product_scene, surface_albedo

    scene = product_scene((0.2, 0.14, 0.25), plain=True, shape="cylinder")
    assert not scene.cylinders and len(scene.plain_cylinders) == 1
    K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    c2w = look_at(np.array([0.9, 0.5, 0.6]), np.array([0.0, 0.0, 0.12]))
    depth = render_depth(scene, K, 320, 240, c2w[None])[0]
    # the ray through the image's middle meets the can's side (its ellipse x/0.1, y/0.07), not the floor
    x = np.linalg.inv(K) @ np.array([160.5, 120.5, 1.0])
    hit = c2w[:3, :3] @ (x * depth[120, 160]) + c2w[:3, 3]
    assert 0 < hit[2] < 0.25 and abs(np.hypot(hit[0] / 0.1, hit[1] / 0.07) - 1) < 0.01
    # its whole surface is one colour; the GT mesh holds its side and caps
    verts, faces = scene_mesh(scene)[:2]
    on = (np.hypot(verts[:, 0] / 0.1, verts[:, 1] / 0.07) < 1.001) & (verts[:, 2] > 1e-6)
    assert on.sum() > 100
    col = surface_albedo(scene, verts[on])
    assert np.allclose(col, scene.plain_color, atol=1e-6)
    with pytest.raises(ValueError, match="box or cylinder"):
        product_scene((0.2, 0.14, 0.25), shape="cone")
