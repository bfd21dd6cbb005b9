"""`vid2model render`: images at given poses and a turntable MP4 from the splat; clear errors otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vid2model.errors import UserError
from vid2model.io import splat_formats as sf
from vid2model.render import look_at, render_orbit, render_poses
from vid2model.splat.model import model_from_data
from vid2model.workspace import Workspace


def _splat_ws(tmp_path) -> tuple[Workspace, sf.SplatData]:
    rng = np.random.default_rng(0)
    n = 400
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    d = sf.SplatData(means=f(rng.normal(size=(n, 3)) * 0.3), log_scales=f(np.full((n, 3), -2.5)),
                     quats=f(np.tile([1, 0, 0, 0], (n, 1))), opacity_logits=f(np.full(n, 2.0)),
                     sh0=f(rng.normal(size=(n, 3))), shN=np.zeros((n, 15, 3), np.float32))
    ws = Workspace(tmp_path / "ws").create()
    sf.write_ply(d, ws.splat_ply)
    ws.write_json(ws.scene_json, {"up": [0, 0, 1], "center": [0, 0, 0], "radius": 0.6, "scale": "arbitrary",
                                  "metres_per_unit": None, "capture": "orbit"})
    return ws, d


def test_render_poses_matches_direct_render(tmp_path):
    from PIL import Image

    ws, d = _splat_ws(tmp_path)
    K = [[80.0, 0, 40], [0, 80.0, 30], [0, 0, 1]]
    poses = [look_at(np.array([2.0 * np.cos(a), 2.0 * np.sin(a), 0.8]), np.zeros(3)) for a in (0.0, 2.0)]
    pj = tmp_path / "poses.json"
    pj.write_text(json.dumps({"width": 80, "height": 60, "K": K,
                              "frames": [{"name": f"v{i}.jpg", "cam_to_world": p.tolist()} for i, p in enumerate(poses)]}))
    res = render_poses(ws, pj, tmp_path / "out")
    assert res["source"] == "splat" and res["frames"] == 2
    img = np.asarray(Image.open(tmp_path / "out" / "v1.png"))
    assert img.shape == (60, 80, 3)
    with torch.no_grad():
        ref = model_from_data(d).render(np.linalg.inv(poses[1]), np.array(K), 80, 60)["image"].numpy()
    assert np.abs(img.astype(float) - ref.clip(0, 1) * 255).max() <= 1.0
    assert img.std() > 10  # something was drawn


def test_render_orbit_mp4(tmp_path):
    import av

    ws, _ = _splat_ws(tmp_path)
    out = tmp_path / "orbit.mp4"
    res = render_orbit(ws, out, n_frames=8, width=96, height=64)
    assert res["frames"] == 8
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (64, 96, 3)
    assert np.mean([f.std() for f in frames]) > 5


def test_render_errors(tmp_path):
    ws = Workspace(tmp_path / "empty").create()
    pj = tmp_path / "p.json"
    pj.write_text(json.dumps({"width": 8, "height": 8, "K": np.eye(3).tolist(), "frames": [
        {"name": "a", "cam_to_world": np.eye(4).tolist()}]}))
    with pytest.raises(UserError, match="nothing to render"):
        render_poses(ws, pj, tmp_path / "o")
    with pytest.raises(UserError, match="no mesh"):
        render_poses(ws, pj, tmp_path / "o", source="mesh")
    ws2, _ = _splat_ws(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{\"width\": 8}")
    with pytest.raises(UserError, match="bad poses file"):
        render_poses(ws2, bad, tmp_path / "o")


@pytest.mark.parametrize("name,pose,needle", [
    ("../../escaped", np.eye(4), "not a plain file name"),
    ("sub/x", np.eye(4), "not a plain file name"),
    ("..", np.eye(4), "not a plain file name"),
    ("nan", np.where(np.eye(4) == 1, np.nan, 0.0), "not a rigid camera-to-world"),
    ("scaled", np.diag([2.0, 2.0, 2.0, 1.0]), "not a rigid camera-to-world"),
    ("mirror", np.diag([1.0, 1.0, -1.0, 1.0]), "not a rigid camera-to-world"),
])
def test_poses_file_values_are_checked_where_they_enter(tmp_path, name, pose, needle):
    ws, _ = _splat_ws(tmp_path)
    pj = tmp_path / "p.json"
    pj.write_text(json.dumps({"width": 8, "height": 8, "K": [[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]],
                              "frames": [{"name": name, "cam_to_world": pose.tolist()}]}))
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(UserError, match=needle):
        render_poses(ws, pj, out)
    assert not (tmp_path / "a").exists() and not list(tmp_path.rglob("escaped*"))


def test_mesh_rasteriser_samples_pixel_centres():
    """The numba triangle rasteriser's pixel centres repeat camera.pixel_grid (its comments say so): the depth it
    gives a slanted plane is the plane's depth along Camera.pixel_rays, pixel by pixel."""
    from vid2model.camera import Camera
    from vid2model.ops.raster import rasterize

    centre = np.random.default_rng(2).normal(size=3) * 0.2
    K = np.array([[70.0, 0, 31.0], [0, 66.0, 22.5], [0, 0, 1]])
    cam = Camera(K, np.eye(3), -centre, 61, 45)
    n, d0 = np.array([0.3, -0.2, 1.0]), 3.0  # the plane n . X = d0, as two triangles past the view's edges
    corners = np.array([[x, y, (d0 - n[0] * x - n[1] * y) / n[2]] for x, y in [(-3, -3), (3, -3), (3, 3), (-3, 3)]])
    r = rasterize(corners, np.array([[0, 1, 2], [0, 2, 3]]), K, cam.world_to_cam, 61, 45)
    along = lambda rays: (d0 - n @ centre) / (rays @ n)  # noqa: E731  z-depth of the plane along z = 1 rays
    assert r.mask.all()
    np.testing.assert_allclose(r.depth, along(cam.pixel_rays()), rtol=1e-6)
    # a half-pixel shift of the centres would be off by far more than that
    shifted = Camera(cam.K_index, cam.R, cam.t, 61, 45).pixel_rays()
    assert np.abs(along(shifted) - r.depth).min() > 1e-4
