"""Texture baking pieces: UV rasterisation, view labels, sampling the original (distorted) frames."""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.ops import texture_bake as T


def test_rasterize_uv_covers_each_texel_once_with_exact_barycentrics():
    rng = np.random.default_rng(0)
    size = 64
    # a grid of quads split into two triangles each: every texel centre lies in exactly one triangle
    g = np.linspace(0, 1, 9)
    quads = [(g[i], g[j], g[i + 1], g[j + 1]) for i in range(8) for j in range(8)]
    tris = []
    for x0, y0, x1, y1 in quads:
        tris += [[(x0, y0), (x1, y0), (x1, y1)], [(x0, y0), (x1, y1), (x0, y1)]]
    uv = np.array(tris) + rng.normal(0, 1e-9, (len(tris), 3, 2))
    rows, cols, face, bary = T.rasterize_uv(uv, size)
    covered = np.zeros((size, size), int)
    np.add.at(covered, (rows, cols), 1)
    assert (covered >= 1).all()  # no holes inside charts
    # barycentrics rebuild the texel centre's uv (row 0 at the top: v = 1 - (row + 0.5) / size)
    p = np.einsum("ti,tij->tj", bary, uv[face])
    want = np.stack([(cols + 0.5) / size, 1 - (rows + 0.5) / size], 1)
    inner = bary.min(1) > 0.01
    assert np.abs(p - want)[inner].max() < 1e-6


def _strip(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A strip of 2n triangles along x; face k neighbours k-1 and k+1."""
    V = np.array([(i, y, 0.0) for i in range(n + 1) for y in (0, 1)])
    F = []
    for i in range(n):
        a, b, c, d = 2 * i, 2 * i + 1, 2 * i + 2, 2 * i + 3
        F += [(a, c, b), (b, c, d)]
    return V, np.array(F)


def _table(F):
    import trimesh

    return T.neighbour_table(trimesh.graph.face_adjacency(F), len(F))


def test_unseen_faces_take_a_neighbours_view_not_view_zero():
    _, F = _strip(5)
    labels = np.array([3, 3, 3, 0, 0, 0, 0, 2, 2, 2])  # faces 3-6 unseen: argmax of zeros gave 0
    seen = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1, 1], bool)
    out = T.fill_labels(labels, seen, _table(F))
    assert (out[:5] == 3).all() and (out[5:] == 2).all()
    assert (out[seen] == labels[seen]).all()


def test_smooth_labels_removes_islands_only_when_the_view_sees_the_face():
    _, F = _strip(3)
    labels = np.array([1, 1, 0, 1, 1, 1])
    scores = np.ones((2, 6))
    assert (T.smooth_labels(labels, scores, _table(F)) == 1).all()
    scores[1, 2] = 0.1  # view 1 barely sees face 2: keep its own view
    assert T.smooth_labels(labels, scores, _table(F))[2] == 0


def _distorted_frame(tmp_path, k: float, scale: int):
    """A full-resolution frame of the textured plane z = 1 seen by a SIMPLE_RADIAL camera at the origin."""
    import cv2
    import pycolmap

    from vid2model.io.colmap import View

    w, h, f = 160, 120, 150.0
    cam = pycolmap.Camera(model="SIMPLE_RADIAL", width=w, height=h, params=np.array([f, w / 2, h / 2, k]))
    full = pycolmap.Camera(model="SIMPLE_RADIAL", width=w * scale, height=h * scale,
                           params=np.array([f * scale, w * scale / 2, h * scale / 2, k]))
    ys, xs = np.mgrid[0:h * scale, 0:w * scale]
    # COLMAP pixel centres at +0.5; the ray of each full-res pixel meets z = 1 at its normalised coordinates
    xy = full.cam_from_img(np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1).astype(np.float64))
    pattern = lambda p: 0.5 + 0.4 * np.sin(9 * p[:, 0]) * np.cos(7 * p[:, 1])  # noqa: E731
    img = (np.repeat(pattern(xy)[:, None], 3, 1).reshape(h * scale, w * scale, 3) * 255).round().astype(np.uint8)
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), img)
    view = View(name="frame.png", image_id=1, K=np.asarray(cam.calibration_matrix()), R=np.eye(3), t=np.zeros(3),
                width=w, height=h, model="SIMPLE_RADIAL", params=np.asarray(cam.params))
    return view, cam, path, pattern


@pytest.mark.parametrize("scale", [1, 2])
def test_full_res_source_follows_the_lens_distortion(tmp_path, scale):
    from vid2model.stages.texture import _sample, _Source

    view, cam, path, pattern = _distorted_frame(tmp_path, k=-0.15, scale=scale)
    rng = np.random.default_rng(1)
    X = np.c_[rng.uniform(-0.45, 0.45, (500, 2)), np.ones(500)]
    src = _Source(view, path, cam, float(scale))
    got = _sample(src.image(), src.project(X))[:, 0]
    err = np.abs(got - pattern(X[:, :2]))
    # the pinhole projection of the same points misses the distortion: far larger errors off-centre
    pinhole = _sample(src.image(), _Source(view, path).project(X) * scale + (scale - 1) / 2)[:, 0]
    err_pinhole = np.abs(pinhole - pattern(X[:, :2]))
    assert np.median(err) < 0.01 and err.max() < 0.05
    assert np.median(err_pinhole) > 5 * np.median(err)


def test_consistency_weights_single_out_the_view_that_sees_something_else():
    rng = np.random.default_rng(2)
    n_views, n_faces = 6, 200
    colour = rng.uniform(0.2, 0.8, (n_faces, 3))
    samples = colour[None] + rng.normal(0, 0.01, (n_views, n_faces, 3))  # codec-like noise
    samples[4, :50] = rng.uniform(0, 1, (50, 3))  # view 4 sees the background on faces 0-49
    valid = np.ones((n_views, n_faces), bool)
    valid[5, 100:] = False
    w = T.consistency_weights(samples.astype(np.float32), valid, sigma=0.1)
    far = np.abs(samples[4, :50] - colour[:50]).max(1) > 0.3
    assert (w[4, :50][far] < 0.01).all()
    assert np.median(w[:4]) > 0.95 and w[:4].min() > 0.5
    assert np.array_equal(T.consistency_weights(samples.astype(np.float32), valid, 0.1, block=7), w)
    # two views cannot outvote each other: faces seen by fewer than three keep weight 1
    valid2 = np.zeros_like(valid)
    valid2[:2] = True
    assert (T.consistency_weights(samples.astype(np.float32), valid2, 0.1) == 1).all()


def test_huge_full_res_frames_are_area_averaged_to_twice_the_working_size(tmp_path):
    from vid2model.stages.texture import _sample, _Source

    view, cam, path, pattern = _distorted_frame(tmp_path, k=-0.15, scale=4)
    src = _Source(view, path, cam, 4.0)
    img = src.image()
    assert src.scale == 2.0 and img.shape[:2] == (2 * cam.height, 2 * cam.width)
    X = np.c_[np.random.default_rng(3).uniform(-0.4, 0.4, (300, 2)), np.ones(300)]
    err = np.abs(_sample(img, src.project(X))[:, 0] - pattern(X[:, :2]))
    assert np.median(err) < 0.01
