"""Umeyama similarity, pose-error metrics, scene-frame helpers and the transforms.json round trip."""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.ops.scene_frame import capture_kind, estimate_up, heading_to_y, look_at_point, rotation_to_z
from vid2model.ops.similarity import pose_errors, relative_rotation_errors, rotation_angle_deg, umeyama


def _rot(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(deg)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def _orbit(n=20, radius=3.0, height=1.0):
    """OpenCV camera-to-world poses on a circle looking at the origin."""
    out = []
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False):
        c = np.array([radius * np.cos(a), radius * np.sin(a), height])
        fwd = -c / np.linalg.norm(c)
        right = np.cross(fwd, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, :3] = np.stack([right, np.cross(fwd, right), fwd], axis=1)
        m[:3, 3] = c
        out.append(m)
    return np.array(out)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(30, 3))
    R = _rot([1, 2, 3], 40)
    dst = 2.5 * src @ R.T + [1, -2, 3]
    s, R2, t = umeyama(src, dst)
    assert abs(s - 2.5) < 1e-9 and np.allclose(R2, R) and np.allclose(t, [1, -2, 3])


def test_pose_errors_are_zero_up_to_similarity_and_see_perturbations():
    gt = _orbit()
    S = np.eye(4)
    S[:3, :3] = 0.3 * _rot([0, 1, 1], 70)
    S[:3, 3] = [5, 1, -2]
    est = np.array([S @ g for g in gt])
    est[:, :3, :3] /= 0.3  # a similarity scales centres, not rotations
    e = pose_errors(est, gt)
    assert e["rot_median_deg"] < 1e-6 and e["center_max_rel"] < 1e-9 and abs(e["scale"] - 1 / 0.3) < 1e-6
    est[3, :3, :3] = est[3, :3, :3] @ _rot([0, 0, 1], 2.0)
    est[5, :3, 3] += [0.03, 0, 0]
    e = pose_errors(est, gt)
    assert abs(e["rot_max_deg"] - 2.0) < 0.2 and e["rot_median_deg"] < 0.05
    assert 0.005 < e["center_max_rel"] < 0.05
    assert abs(relative_rotation_errors(est, gt).max() - 2.0) < 1e-6
    assert abs(rotation_angle_deg(np.eye(3), _rot([1, 0, 0], 30)) - 30) < 1e-9


def test_scene_frame_helpers_on_a_tilted_orbit():
    gt = _orbit(n=24)
    T = _rot([1, 0.3, 0], 35)  # the solved model comes out tilted
    R_w2c = np.array([(T @ g[:3, :3]).T for g in gt])
    centers = gt[:, :3, 3] @ T.T
    up = estimate_up(R_w2c, centers)
    assert np.degrees(np.arccos(np.clip(up @ T @ [0, 0, 1], -1, 1))) < 1.0
    Rz = rotation_to_z(up)
    assert np.allclose(Rz @ up, [0, 0, 1]) and np.isclose(np.linalg.det(Rz), 1)
    assert np.allclose(look_at_point(R_w2c, centers), 0, atol=1e-6)
    assert capture_kind(R_w2c @ Rz.T, centers @ Rz.T, np.zeros(3)) == "orbit"


def test_scene_frame_does_not_depend_on_the_frame_a_mapper_started_from():
    """Two solves of one capture, each in its own arbitrary frame, give the same cameras in the scene frame,
    and the first view looks along +Y."""
    gt = _orbit(n=24)
    out = []
    for T in (_rot([1, 0.3, 0], 35), _rot([0.2, -1, 0.5], 120)):
        R_w2c = np.array([(T @ g[:3, :3]).T for g in gt])
        R = rotation_to_z(estimate_up(R_w2c, gt[:, :3, 3] @ T.T))
        R = heading_to_y(R_w2c[0] @ R.T) @ R
        out.append(R_w2c @ R.T)
    assert np.allclose(out[0], out[1], atol=1e-9)
    fwd = out[0][0][2]
    assert fwd[0] == pytest.approx(0, abs=1e-9) and fwd[1] > 0.5
    down = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]])  # looking straight down: its up gives the heading
    assert np.allclose(heading_to_y(down) @ -down[1], [0, 1, 0])


def test_transforms_json_round_trip(tmp_path):
    import pycolmap

    from vid2model.io.transforms import read_transforms, write_transforms

    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera.create_from_model_name(1, "SIMPLE_RADIAL", 300.0, 320, 240)
    rec.add_camera_with_trivial_rig(cam)
    gt = _orbit(n=5)
    for i, m in enumerate(gt, start=1):
        w2c = np.linalg.inv(m)
        img = pycolmap.Image(name=f"f{i}.png", keypoints=np.zeros((0, 2)), camera_id=1, image_id=i)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3]))
    write_transforms(tmp_path / "transforms.json", rec, "images")
    intr, paths, c2w = read_transforms(tmp_path / "transforms.json")
    assert intr["fl_x"] == 300.0 and intr["w"] == 320 and intr["camera_model"] == "OPENCV"
    assert paths == [f"images/f{i}.png" for i in range(1, 6)]
    assert np.allclose(c2w, gt, atol=1e-9)


def test_capture_kind_partial_arc_strafe_and_walk():
    """A 45-degree sweep around a product is an orbit; a pan along a wall and a room walk are not."""
    from vid2model.synth import SynthConfig
    from vid2model.synth.camera import camera_path

    def kind(c2w):
        R = np.array([np.linalg.inv(m)[:3, :3] for m in c2w])
        C = c2w[:, :3, 3]
        return capture_kind(R, C, look_at_point(R, C))

    arc = _orbit(n=72)[:10]  # 10 views, 5 degrees apart: a 45-degree arc
    assert kind(arc) == "orbit"
    assert kind(_orbit(n=72)[:3]) == "walk"  # 10 degrees: too little to call it an object capture
    strafe = np.repeat(np.eye(4)[None], 10, 0)
    strafe[:, 0, 3] = np.linspace(-2, 2, 10)  # parallel optical axes: no common point
    assert kind(strafe) == "walk"
    walk = camera_path(SynthConfig(path="walk", n_frames=24, seed=0), np.linspace(0, 1, 24))
    assert kind(walk) == "walk"


def test_estimate_up_looking_steeply_down_on_a_short_arc():
    """A 60-degree sweep looking down 50 degrees at a product: the camera centres barely span a plane and
    the mean camera up is 50 degrees off, but the cameras' x axes (no roll) still give gravity."""
    out = []
    for a in np.radians(np.linspace(0, 60, 12)):
        c = 3.0 * np.array([np.cos(np.radians(50)) * np.cos(a), np.cos(np.radians(50)) * np.sin(a), np.sin(np.radians(50))])
        fwd = -c / np.linalg.norm(c)
        right = np.cross(fwd, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        out.append((np.stack([right, np.cross(fwd, right), fwd], axis=0), c))  # rows: camera axes (w2c)
    T = _rot([0.2, 1.0, 0.1], 30)  # the solved model's arbitrary orientation
    R_w2c = np.array([R @ T.T for R, _ in out])
    centers = np.array([T @ c for _, c in out])
    up = estimate_up(R_w2c, centers)
    assert np.degrees(np.arccos(np.clip(up @ (T @ [0, 0, 1.0]), -1, 1))) < 1.0


def test_similarity_residuals_single_out_the_misplaced_points():
    from vid2model.ops.similarity import similarity_residuals

    rng = np.random.default_rng(3)
    src = rng.normal(size=(8, 3))
    a = 0.4
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    dst = 2.5 * src @ R.T + np.array([1.0, -2.0, 0.5])
    dst[[2, 5]] += np.array([[3.0, 0, 0], [0, -4.0, 1.0]])  # two of eight frames misplaced
    res = similarity_residuals(src, dst)
    assert np.all(np.delete(res, [2, 5]) < 1e-6)
    assert res[2] > 2.9 and res[5] > 4.0


def test_icp_registers_from_several_times_its_pair_distance():
    """The scoring's ICP (synth.evaluate.refine_by_icp) starts from the cameras' registration, which for a
    small object was seen 5 % of the scene size off: it must find the surface from 5x its final pair distance."""
    import trimesh

    from vid2model.ops.metrics import sample_surface
    from vid2model.synth.evaluate import refine_by_icp

    parts = [trimesh.creation.box((2.0, 2.0, 0.02)), trimesh.creation.box((0.4, 0.3, 0.5)),
             trimesh.creation.icosphere(radius=0.2)]
    parts[1].apply_translation((0.3, -0.2, 0.26))
    parts[2].apply_translation((-0.4, 0.3, 0.2))
    scene = trimesh.util.concatenate(parts)
    V, F = np.asarray(scene.vertices), np.asarray(scene.faces)
    gt = sample_surface(V, F, 100_000)
    pts = sample_surface(V, F, 20_000, seed=1)
    size, max_dist = 1.0, 0.01
    a = np.radians(1.0)
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = pts @ Rz.T + np.array([0.04, -0.03, 0.02]) * size  # 0.054: 5.4x the pair distance
    back, info = refine_by_icp(moved, gt, max_dist)
    assert np.abs(back - pts).max() < 0.3 * max_dist, info  # 0.24 here: about 0.1 deg of rotation left
