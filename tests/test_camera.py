"""The one camera type: checked against pycolmap's own projection, round trips and resizing."""

from __future__ import annotations

import numpy as np
import pytest

from vid2model.camera import Camera, index_coords, pixel_grid, pixel_index


def _rot(a: float, b: float) -> np.ndarray:
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
    Ry = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    Rx = np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])
    return Rx @ Ry


def _points(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 3)) + np.array([0.0, 0.0, 4.0])


@pytest.mark.parametrize("model,params", [("PINHOLE", [510.0, 495.0, 321.5, 238.25]),
                                          ("SIMPLE_RADIAL", [505.0, 319.0, 241.0, 0.0])])
def test_projection_matches_pycolmap(model, params):
    pycolmap = pytest.importorskip("pycolmap")
    R, t = _rot(0.3, -0.2), np.array([0.1, -0.2, 0.5])
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model=model, width=640, height=480, params=params, camera_id=1))
    rec.add_image_with_trivial_frame(pycolmap.Image(name="a.png", camera_id=1, image_id=1),
                                     pycolmap.Rigid3d(pycolmap.Rotation3d(R), t))
    image = rec.image(1)
    cam = image.camera
    c = Camera.from_colmap(image, cam)
    np.testing.assert_allclose(c.R, R, atol=1e-12)
    np.testing.assert_allclose(c.t, t, atol=1e-12)
    X = (_points() - t) @ R  # in front of the camera
    uv, z = c.project(X)
    ref = np.asarray(cam.img_from_cam(X @ R.T + t))
    np.testing.assert_allclose(uv, ref, atol=1e-9)
    np.testing.assert_allclose(z, (X @ R.T + t)[:, 2], atol=1e-12)
    np.testing.assert_allclose(c.center, np.asarray(image.projection_center()), atol=1e-12)
    # pycolmap's inverse: image coordinates -> normalised camera rays
    np.testing.assert_allclose(c.rays(ref)[:, :2], np.asarray(cam.cam_from_img(ref))[:, :2], atol=1e-12)
    # the full lens model agrees too
    np.testing.assert_allclose(Camera.from_colmap(image, cam, lens=True).project(X)[0], ref, atol=1e-9)


def test_project_unproject_round_trip():
    K = np.array([[300.0, 0.0, 161.0], [0.0, 310.0, 118.5], [0.0, 0.0, 1.0]])
    c = Camera(K, _rot(-0.4, 0.25), np.array([0.3, 0.1, -0.2]), 320, 240)
    X = c.to_world(_points())
    uv, z = c.project(X)
    np.testing.assert_allclose(c.unproject(uv, z), X, atol=1e-10)
    np.testing.assert_allclose(c.to_world(c.to_cam(X)), X, atol=1e-12)
    np.testing.assert_allclose(c.cam_to_world @ c.world_to_cam, np.eye(4), atol=1e-12)
    P = c.P @ np.c_[X, np.ones(len(X))].T
    np.testing.assert_allclose((P[:2] / P[2]).T, uv, atol=1e-9)
    depth = np.full((240, 320), 2.5)
    back = c.backproject(depth)
    uv2, z2 = c.project(back.reshape(-1, 3))
    np.testing.assert_allclose(uv2, pixel_grid(240, 320)[..., :2].reshape(-1, 2), atol=1e-9)
    np.testing.assert_allclose(z2, 2.5)
    same = Camera.from_cam_to_world(K, c.cam_to_world, 320, 240)
    np.testing.assert_allclose(same.project(X)[0], uv, atol=1e-9)


def test_pixel_convention():
    K = np.array([[100.0, 0.0, 2.0], [0.0, 100.0, 1.5], [0.0, 0.0, 1.0]])
    c = Camera(K, np.eye(3), np.zeros(3), 4, 3)
    # the optical axis hits the principal point: the corner shared by pixels (row 1, col 1) and (1, 2) ...
    uv, _ = c.project(np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(uv, [[2.0, 1.5]])
    assert pixel_index(uv).tolist() == [[2, 1]]
    np.testing.assert_allclose(index_coords(uv), [[1.5, 1.0]])  # ... half-way between centres 1 and 2
    # the centre of pixel (row 0, col 0) is (0.5, 0.5); Open3D-style K puts it at (0, 0)
    ray = c.pixel_rays()[0, 0]
    np.testing.assert_allclose(c.project_cam(ray[None])[0], [0.5, 0.5])
    Ki = c.K_index
    np.testing.assert_allclose((Ki @ ray)[:2] / (Ki @ ray)[2], [0.0, 0.0], atol=1e-12)


def test_scaled_and_resized_keep_pixel_areas():
    K = np.array([[200.0, 0.0, 80.0], [0.0, 200.0, 60.0], [0.0, 0.0, 1.0]])
    c = Camera(K, _rot(0.1, 0.2), np.array([0.0, 0.1, 0.3]), 160, 120)
    X = c.to_world(_points(50))
    uv, _ = c.project(X)
    half = c.scaled(0.5)
    assert (half.width, half.height) == (80, 60)
    np.testing.assert_allclose(half.project(X)[0], uv * 0.5, atol=1e-9)
    # a pixel centre maps to the centre of the pixel it is averaged into (2 x 2 pooling)
    np.testing.assert_allclose(half.project_cam(c.pixel_rays()[:2, :2].reshape(-1, 3)).mean(0), [0.5, 0.5])
    r = c.resized(240, 90)
    np.testing.assert_allclose(r.project(X)[0], uv * [1.5, 0.75], atol=1e-9)
    np.testing.assert_allclose(r.center, c.center)


def test_depth_warp_lands_where_projection_does():
    K = np.array([[120.0, 0.0, 40.0], [0.0, 118.0, 30.0], [0.0, 0.0, 1.0]])
    ref = Camera(K, _rot(0.05, 0.0), np.array([0.1, 0.0, 0.0]), 80, 60)
    src = Camera(K * [[1.1], [1.1], [1]], _rot(-0.1, 0.03), np.array([-0.2, 0.05, 0.1]), 88, 66)
    A, b = ref.depth_warp(src)
    pix = pixel_grid(60, 80).reshape(-1, 3)
    z = np.linspace(1.0, 3.0, len(pix))
    x = pix @ A.T * z[:, None] + b
    X = ref.unproject(pix[:, :2], z)
    np.testing.assert_allclose(x[:, :2] / x[:, 2:], src.project(X)[0], atol=1e-8)


def test_lens_camera_follows_the_distortion_at_any_size():
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model="SIMPLE_RADIAL", width=320, height=240,
                                                    params=[250.0, 160.0, 120.0, -0.12], camera_id=1))
    rec.add_image_with_trivial_frame(pycolmap.Image(name="a.png", camera_id=1, image_id=1),
                                     pycolmap.Rigid3d(pycolmap.Rotation3d(_rot(0.2, 0.1)), np.array([0.0, 0.1, 0.2])))
    image = rec.image(1)
    c = Camera.from_colmap(image, image.camera, lens=True)
    X = c.to_world(_points())
    uv, z = c.project(X)
    np.testing.assert_allclose(uv, np.asarray(image.camera.img_from_cam(c.to_cam(X))), atol=1e-9)
    assert np.abs(uv - Camera(c.K, c.R, c.t, 320, 240).project(X)[0]).max() > 1.0  # the lens matters
    np.testing.assert_allclose(c.unproject(uv, z), X, atol=1e-6)
    big = c.scaled(2.0)
    assert (big.width, big.height) == (640, 480)
    np.testing.assert_allclose(big.project(X)[0], 2 * uv, atol=1e-9)
    np.testing.assert_allclose(big.rays(2 * uv), c.rays(uv), atol=1e-9)


def test_torch_projection_is_the_camera_projection_with_its_jacobian():
    """:func:`project_with_jacobian` (the splat rasteriser's projection) lands where :meth:`Camera.project` does,
    and J is its derivative, linearised at the projection clamped to JACOBIAN_BOX far off-screen."""
    torch = pytest.importorskip("torch")
    from vid2model.camera import JACOBIAN_BOX, project_with_jacobian

    K = np.array([[300.0, 0.0, 161.0], [0.0, 310.0, 118.5], [0.0, 0.0, 1.0]])
    c = Camera(K, _rot(-0.4, 0.25), np.array([0.3, 0.1, -0.2]), 320, 240)
    Xc = _points(300, seed=3)
    Xc[:40, :2] *= 6.0  # far off-screen: the clamp applies
    X = c.to_world(Xc)
    pts = torch.tensor(X, requires_grad=True)
    uv, z, J = project_with_jacobian(pts, torch.tensor(c.world_to_cam), torch.tensor(K), 320, 240, 0.01)
    ref_uv, ref_z = c.project(X)
    np.testing.assert_allclose(uv.detach().numpy(), ref_uv, atol=1e-9)
    np.testing.assert_allclose(z.detach().numpy(), ref_z, atol=1e-12)
    auto = torch.autograd.functional.jacobian(lambda p: project_with_jacobian(
        p, torch.tensor(c.world_to_cam), torch.tensor(K), 320, 240, 0.01)[0].sum(0), pts)  # (2, N, 3)
    auto = auto.permute(1, 0, 2).numpy()
    lo, hi = JACOBIAN_BOX
    inside = np.all((ref_uv >= [lo * 320, lo * 240]) & (ref_uv <= [hi * 320, hi * 240]), 1)
    assert 20 < (~inside).sum() < 60
    np.testing.assert_allclose(J.detach().numpy()[inside], auto[inside], rtol=1e-9, atol=1e-9)
    # outside: J is that of the point moved along its depth plane to the box's edge
    Xe = Xc[~inside].copy()
    uve = np.clip(ref_uv[~inside], [lo * 320, lo * 240], [hi * 320, hi * 240])
    Xe[:, :2] = c.rays(uve)[:, :2] * Xe[:, 2:]
    pe = torch.tensor(c.to_world(Xe), requires_grad=True)
    Je = project_with_jacobian(pe, torch.tensor(c.world_to_cam), torch.tensor(K), 320, 240, 0.01)[2]
    np.testing.assert_allclose(J.detach().numpy()[~inside], Je.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_grid_sample_coords_hit_pixel_centres():
    torch = pytest.importorskip("torch")
    from vid2model.camera import grid_sample_coords

    img = torch.rand(1, 1, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    uv = torch.as_tensor(pixel_grid(5, 7)[..., :2])
    grid = torch.stack(grid_sample_coords(uv[..., 0], uv[..., 1], 7, 5), -1)[None]
    out = torch.nn.functional.grid_sample(img, grid, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, img, rtol=0, atol=1e-12)


def test_camera_module_imports_without_torch():
    """The camera sits in the lowest layer: importing it must not pull in torch (its torch helper imports lazily)."""
    import subprocess
    import sys

    code = "import sys, vid2model.camera; assert 'torch' not in sys.modules, 'torch imported'"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
