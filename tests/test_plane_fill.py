"""Plain horizontal regions take the level their measured rim agrees on (ops/mvs/plane_fill.py)."""

from __future__ import annotations

import numpy as np

from vid2model.camera import Camera
from vid2model.ops.mvs.plane_fill import fill_levels, seen_through

H, W = 120, 160
K = np.array([[150.0, 0, W / 2], [0, 150.0, H / 2], [0, 0, 1]])


def _camera(height: float = 1.0, pitch_deg: float = 40.0):
    """A camera ``height`` above the floor z = 0, looking down by ``pitch_deg`` (world +Z up)."""
    p = np.radians(pitch_deg)
    fwd = np.array([0.0, np.cos(p), -np.sin(p)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # rows: camera axes in world coordinates
    C = np.array([0.0, 0.0, height])
    return R, -R @ C


def _cam(R, t) -> Camera:
    return Camera(K, R, t, W, H)


def _floor_depth(R, t, level: float = 0.0) -> np.ndarray:
    rays = _cam(R, t).pixel_rays() @ R
    C = -R.T @ t
    with np.errstate(divide="ignore"):
        z = (level - C[2]) / rays[..., 2]
    return np.where(z > 0, z, 0).astype(np.float32)


def test_plain_floor_takes_its_rims_level():
    R, t = _camera()
    truth = _floor_depth(R, t)
    plain = np.zeros((H, W), bool)
    plain[50:100, 40:120] = True  # a plain patch of the floor, its rim measured
    depth = np.where(plain, 0, truth)
    got = fill_levels(depth, plain, _cam(R, t), np.array([0, 0, 1.0]), tol=0.01, max_depth=10.0, min_cos=0.17)
    assert (got[plain] > 0).mean() > 0.99
    assert np.abs(got[plain] - truth[plain]).max() < 1e-3 * truth[plain].max()
    assert not got[~plain].any()


def test_rim_without_one_level_stays_empty():
    R, t = _camera()
    truth = _floor_depth(R, t)
    plain = np.zeros((H, W), bool)
    plain[50:100, 40:120] = True
    depth = np.where(plain, 0, truth)
    depth[:, :80] *= 0.7  # the left half of the rim is a different surface, nearer
    got = fill_levels(depth, plain, _cam(R, t), np.array([0, 0, 1.0]), tol=0.01, max_depth=10.0, min_cos=0.17)
    assert not got.any()


def test_no_fill_above_the_horizon_or_outside_the_region():
    R, t = _camera(pitch_deg=5.0)  # the horizon crosses the image
    truth = _floor_depth(R, t)
    plain = np.zeros((H, W), bool)
    plain[:, 30:130] = True  # sky above, floor below
    depth = np.where(plain, 0, truth)
    got = fill_levels(depth, plain, _cam(R, t), np.array([0, 0, 1.0]), tol=0.01, max_depth=8.0, min_cos=0.17)
    sky = truth == 0
    assert not got[sky].any()
    assert got.max() <= 8.0
    near = fill_levels(depth, plain, _cam(R, t), np.array([0, 0, 1.0]), tol=0.01, max_depth=8.0, min_cos=0.17,
                       region=(np.zeros(3), 3.0))
    X = _cam(R, t).backproject(near)[near > 0]
    assert len(X) and np.linalg.norm(X, axis=1).max() <= 3.0 + 1e-6


def test_floor_and_sky_beside_it_are_filled_apart():
    """A plain floor meets a plain sky at the horizon; what is measured against the sky sits on the sky's
    side of the rim. Taken as one region the rim agreed on no level; split at the horizon, the floor does."""
    R, t = _camera(pitch_deg=-10.0)  # looking up a little: more sky than floor
    truth = _floor_depth(R, t)
    sky = truth == 0
    plain = np.zeros((H, W), bool)
    plain[:, 30:130] = True
    depth = np.where(plain, 0, truth).astype(np.float32)
    depth[sky & ~plain] = 4.0  # something measured against the sky (a wall, a tall object), above the floor
    assert (sky & ~plain).sum() > 2 * (~sky & ~plain).sum()  # more outline than floor rim
    args = dict(tol=0.01, max_depth=8.0, min_cos=0.17)
    got = fill_levels(depth, plain, _cam(R, t), np.array([0, 0, 1.0]), **args)
    alone = fill_levels(np.where(sky, 0, depth), plain, _cam(R, t), np.array([0, 0, 1.0]), **args)
    floor = plain & ~sky & (truth <= 8.0)
    assert (alone[floor] > 0).sum() > 500  # the floor short of grazing angles
    assert np.array_equal(got, alone)  # the outline against the sky changes nothing
    assert np.abs(got[got > 0] - truth[got > 0]).max() < 1e-3 * 8.0


def test_a_view_that_sees_through_a_point_rejects_it():
    R, t = _camera()
    floor = _floor_depth(R, t)
    cam = _cam(R, t)
    X = cam.backproject(floor)[floor > 0][::50]
    assert not seen_through(X, [floor], [cam]).any()  # on the measured surface: fine
    above = X + np.array([0, 0, 0.3])  # floating above the floor the view measured
    x = (above @ R.T + t) @ K.T
    u, v = x[:, 0] / x[:, 2], x[:, 1] / x[:, 2]
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    assert inside.sum() > 100
    assert seen_through(above, [floor], [cam])[inside].mean() > 0.95
