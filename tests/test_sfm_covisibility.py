"""Missing-correspondence test (ops.covisibility): false links between look-alike views are found."""

from __future__ import annotations

import numpy as np

from vid2model.camera import Camera
from vid2model.ops.covisibility import View, conflicting_pairs, pair_covisibility, predicted_shared

F, W, H = 500.0, 640, 480
K = np.array([[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]])
N = 72  # cameras on the ring, 5 degrees apart


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return np.hstack([R, (-R @ centre)[:, None]])


def _project(X: np.ndarray) -> np.ndarray:
    return np.stack([F * X[:, 0] / X[:, 2] + W / 2, F * X[:, 1] / X[:, 2] + H / 2], 1)


def _scene(n_cams: int = N, seed: int = 0):
    """Points on a sphere's surface, cameras on a ring around it; each sees the points facing it."""
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(4000, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    views = {}
    for i in range(n_cams):
        a = 2 * np.pi * i / n_cams
        c = np.array([4 * np.cos(a), 4 * np.sin(a), 1.0])
        M = _look_at(c, np.zeros(3))
        Xc = xyz @ M[:, :3].T + M[:, 3]
        uv = _project(Xc)
        # the sphere hides its far side; features are found where the surface is not seen at a grazing angle
        ray = (c - xyz) / np.linalg.norm(c - xyz, axis=1, keepdims=True)
        facing = (ray * xyz).sum(1) > 0.3
        vis = facing & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        seen = np.flatnonzero(vis & (rng.random(len(xyz)) < 0.6))  # features found on 60% of them
        views[i] = View(Camera.from_world_to_cam(K, M, W, H), seen)
    return xyz, views


def test_neighbours_share_what_their_poses_predict():
    xyz, views = _scene()
    pred, seen = predicted_shared(xyz, views[0], views[1])
    assert pred > 200 and seen / pred > 0.4
    # opposite sides of the ring: nothing predicted (rays too far apart, far side hidden)
    assert predicted_shared(xyz, views[0], views[N // 2])[0] == 0


def test_a_view_placed_beside_its_look_alike_is_flagged():
    xyz, views = _scene()
    pairs = [(i, (i + 1) % N) for i in range(N)] + [(i, (i + 2) % N) for i in range(N)]
    assert conflicting_pairs(pair_covisibility(xyz, views, pairs)) == []
    # view 5 was placed between views 52 and 54, where it does not belong: it shares only the few
    # points of its look-alike matches with them
    rng = np.random.default_rng(1)
    a = 2 * np.pi * 53 / N + 0.02
    c = np.array([4 * np.cos(a), 4 * np.sin(a), 1.0])
    wrong = View(Camera.from_world_to_cam(K, _look_at(c, np.zeros(3)), W, H),
                 np.concatenate([rng.choice(views[52].points, 20, replace=False),
                                 rng.choice(views[54].points, 20, replace=False)]))
    views = {**views, 5: wrong}
    stats = pair_covisibility(xyz, views, pairs + [(5, 52), (5, 54)])
    flagged = conflicting_pairs(stats)
    assert (5, 52) in flagged and (5, 54) in flagged
    assert all(5 in p for p in flagged)


def test_too_few_pairs_flag_nothing():
    assert conflicting_pairs({(0, 1): (500, 10)}) == []
