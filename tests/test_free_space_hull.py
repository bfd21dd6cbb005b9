"""The volume no depth map saw through: a plain box on a textured floor, whose own pixels have no depth."""

from __future__ import annotations

import numpy as np

from vid2model.camera import Camera
from vid2model.ops.free_space_hull import carve
from vid2model.synth.camera import look_at
from vid2model.synth.generate import render_depth
from vid2model.synth.scene import product_scene

SIZE = (0.30, 0.20, 0.25)


def _views(n: int = 24, w: int = 160, h: int = 120):
    scene = product_scene(SIZE, plain=True)
    K = np.array([[140.0, 0, w / 2], [0, 140.0, h / 2], [0, 0, 1]])
    c2w = np.array([look_at(np.array([1.1 * np.cos(a), 1.1 * np.sin(a), 0.7]), np.array([0.0, 0.0, 0.12]))
                    for a in np.linspace(0, 2 * np.pi, n, endpoint=False)])
    depths = render_depth(scene, K, w, h, c2w)
    out = []
    for m, d in zip(c2w, depths):
        cam = Camera.from_cam_to_world(K, m, w, h)
        X = cam.backproject(np.where(np.isfinite(d), d, 0))
        # stereo measures the textured floor but nothing on the plain box
        out.append((cam, np.where(np.isfinite(d) & (X[..., 2] < 1e-3), d, 0.0)))
    return out


def test_hull_of_a_plain_box_is_the_box():
    voxel = 0.01
    hull = carve(_views(), lo=np.array([-0.4, -0.4, 2 * voxel]), hi=np.array([0.4, 0.4, 0.5]), voxel=voxel)
    hull = hull.standing(np.zeros(2))
    idx = np.argwhere(hull.solid)
    lo, hi = hull.lo + idx.min(0) * voxel, hull.lo + (idx.max(0) + 1) * voxel
    sx, sy, h = SIZE
    # its sides are the product's to two voxels (a voxel, and a depth pixel of 9 mm at the silhouette; seen: 1-2)
    assert np.allclose(lo[:2], [-sx / 2, -sy / 2], atol=2 * voxel)
    assert np.allclose(hi[:2], [sx / 2, sy / 2], atol=2 * voxel)
    # Above a plain top, views 30 degrees up see the top itself behind every point near it, never the floor:
    # a low roof stays (seen: 4 cm, in its middle only), which no view can carve
    assert h <= hi[2] <= h + 0.05
    volume = hull.solid.sum() * voxel ** 3
    assert 0.95 * sx * sy * (h - 2 * voxel) < volume < 1.3 * sx * sy * (h - 2 * voxel)
    X, N = hull.surface()
    top = X[:, 2] > h - voxel
    assert top.any() and np.median(N[top, 2]) > 0.9  # the top faces up
    side = np.abs(X[:, 0] - sx / 2) < voxel
    assert side.any() and np.median(N[side, 0]) > 0.9  # the +x side faces +x


def test_nothing_measured_behind_carves_nothing():
    views = [(cam, np.zeros_like(d)) for cam, d in _views(8)]
    hull = carve(views, lo=np.array([-0.4, -0.4, 0.01]), hi=np.array([0.4, 0.4, 0.5]), voxel=0.02)
    # every framed voxel stays: no depth says it is empty (a caller rejects a hull this full)
    assert hull.solid.mean() > 0.5
