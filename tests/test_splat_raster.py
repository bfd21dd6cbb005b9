"""The compiled splat rasteriser against the plain-torch reference (values, gradients) and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vid2model.splat import kernels
from vid2model.splat.rasterize import composite, project, render
from vid2model.splat.reference import composite_reference
from vid2model.ops.sh import sh_to_rgb

W, H, N = 61, 45, 80  # odd sizes: partial tiles on both edges
K = torch.tensor([[50.0, 0, 30], [0, 50.0, 22], [0, 0, 1]])
BG = torch.tensor([0.2, 0.5, 0.9])


def _params(dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(N, 3, generator=g) - 0.5) * torch.tensor([2.0, 1.5, 1.0]) + torch.tensor([0, 0, 4.0])
    quats = torch.randn(N, 4, generator=g)
    scales = torch.rand(N, 3, generator=g) * 0.15 + 0.02
    opac = torch.rand(N, generator=g) * 0.9 + 0.05
    sh = torch.randn(N, 16, 3, generator=g) * 0.3
    return [x.to(dtype).requires_grad_() for x in (means, quats, scales, opac, sh)]


def _run(fn, dtype, viewmat=None):
    p = _params(dtype)
    vm = (torch.eye(4) if viewmat is None else viewmat).to(dtype)
    m2, cn, d, ext = project(p[0], p[1], p[2], p[3], vm, K.to(dtype), W, H)
    dirs = p[0] - (-vm[:3, :3].T @ vm[:3, 3])
    col = sh_to_rgb(p[4], dirs / dirs.norm(dim=-1, keepdim=True), 3)
    img, T = fn(m2, cn, col, p[3], ext, d, BG.to(dtype), W, H)
    weights = torch.linspace(-1, 1, W * H * 3, dtype=dtype).reshape(H, W, 3)
    (img * weights).sum().backward()
    return img.detach(), T.detach(), [x.grad.clone() for x in p]


def test_kernel_backend_builds():
    assert kernels.backend() in ("cpp", "numba")


@pytest.mark.parametrize("tiled", [False, True])
def test_forward_and_gradients_match_reference(tiled):
    ref = (lambda *a: composite_reference(*a, tile=16)) if tiled else composite_reference
    img, T, grads = _run(composite, torch.float32)
    img_r, T_r, grads_r = _run(ref, torch.float64)
    assert img.shape == (H, W, 3)
    assert (img.double() - img_r).abs().max() < 1e-4
    assert (T.double() - T_r).abs().max() < 1e-4
    assert 0.05 < float(1 - T.mean()) < 0.999  # the scene really covers part of the image
    for name, g, gr in zip(["means", "quats", "scales", "opacities", "sh"], grads, grads_r):
        rel = float((g.double() - gr).abs().max() / gr.abs().max())
        assert rel < 1e-4, f"{name} gradient off by {rel:.2e}"


def test_gradients_match_finite_differences():
    """Central differences of the full float64 reference pipeline vs the kernel's analytic gradients."""
    _, _, grads = _run(composite, torch.float32)
    p = _params(torch.float64)
    weights = torch.linspace(-1, 1, W * H * 3, dtype=torch.float64).reshape(H, W, 3)

    def loss(ps):
        m2, cn, d, ext = project(ps[0], ps[1], ps[2], ps[3], torch.eye(4, dtype=torch.float64),
                                 K.double(), W, H)
        dirs = ps[0] / ps[0].norm(dim=-1, keepdim=True)
        col = sh_to_rgb(ps[4], dirs, 3)
        img, _ = composite_reference(m2, cn, col, ps[3], ext, d, BG.double(), W, H)
        return float((img * weights).sum())

    rng = np.random.default_rng(0)
    checked = 0
    for pi, eps in [(0, 1e-5), (2, 1e-6), (3, 1e-6), (4, 1e-6)]:
        g = grads[pi].double()
        flat = g.reshape(-1)
        # the largest few entries: clear of the 1/255 alpha cut-off and well above float32 noise
        for j in np.argsort(-flat.abs().numpy())[:2].tolist() + [int(rng.integers(len(flat)))]:
            ps = [x.detach().clone() for x in p]
            ps[pi].reshape(-1)[j] += eps
            up = loss(ps)
            ps[pi].reshape(-1)[j] -= 2 * eps
            fd = (up - loss(ps)) / (2 * eps)
            assert abs(fd - float(flat[j])) <= 2e-3 * flat.abs().max() + 1e-3 * abs(fd), (pi, j, fd, float(flat[j]))
            checked += 1
    assert checked == 12


def test_slanted_splats_skip_the_tiles_their_ellipse_misses():
    """Long, thin splats across the image at every slant: the kernels bin each to the tiles its ellipse (where
    alpha reaches 1/255) meets, not all of its bounding box, and visit only the rows of a tile it crosses; the
    image and every gradient stay the reference's."""
    if kernels.load_cpp() is None:
        pytest.skip("no C++ compiler")
    w, h, n = 97, 83, 24
    g = torch.Generator().manual_seed(3)
    ang = torch.linspace(0, torch.pi, n + 1)[:-1]  # every slant, the axis-aligned ones included
    cx, cy = 48.5 + 10 * torch.randn(n, generator=g), 41.5 + 10 * torch.randn(n, generator=g)
    means2d = torch.stack([cx, cy], -1)
    c, s_ = torch.cos(ang), torch.sin(ang)
    R = torch.stack([torch.stack([c, -s_], -1), torch.stack([s_, c], -1)], -2)  # (n, 2, 2)
    cov = R @ torch.diag_embed(torch.stack([torch.full((n,), 30.0 ** 2), torch.full((n,), 1.5 ** 2)], -1)) @ R.mT
    a, b, cc = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = a * cc - b * b
    conics = torch.stack([cc / det, -b / det, a / det], -1)
    opac = torch.rand(n, generator=g) * 0.8 + 0.15
    k = 2 * torch.log(255 * opac)
    ext = torch.stack([torch.sqrt(k * a), torch.sqrt(k * cc)], -1)
    colors = torch.rand(n, 3, generator=g)
    depths = torch.rand(n, generator=g) + 1

    def run(fn, dtype):
        ins = [x.to(dtype).clone().requires_grad_() for x in (means2d, conics, colors, opac)]
        img, T = fn(ins[0], ins[1], ins[2], ins[3], ext.to(dtype), depths.to(dtype), BG.to(dtype), w, h)
        (img * torch.linspace(-1, 1, w * h * 3, dtype=dtype).reshape(h, w, 3)).sum().backward()
        return img.detach(), [x.grad for x in ins]

    img, grads = run(composite, torch.float32)
    img_r, grads_r = run(composite_reference, torch.float64)
    assert (img.double() - img_r).abs().max() < 1e-4
    for name, gk, gr in zip(["means2d", "conics", "colors", "opacities"], grads, grads_r):
        assert float((gk.double() - gr).abs().max() / gr.abs().max()) < 1e-4, name
    f32 = lambda x: np.ascontiguousarray(x.numpy(), dtype=np.float32)  # noqa: E731
    order = kernels.sort_visible(f32(depths), f32(ext))
    *_, state = kernels.composite_forward(order, f32(means2d), f32(conics), f32(colors), f32(opac), f32(ext), w, h,
                                          16, f32(BG))
    pairs = int(state[4][-1])  # the tile lists' total length
    lo = np.clip(np.ceil(means2d.numpy() - ext.numpy() - 0.5), 0, [w - 1, h - 1]) // 16
    hi = np.clip(np.floor(means2d.numpy() + ext.numpy() - 0.5), 0, [w - 1, h - 1]) // 16
    boxes = int(np.prod(hi - lo + 1, axis=1).sum())
    assert pairs < 0.5 * boxes  # 292 of the boxes' 719 pairs: long diagonals cross few of their boxes' tiles


def test_render_empty_and_behind_camera():
    p = _params(torch.float32)
    means = p[0].detach() * torch.tensor([1.0, 1.0, -1.0])  # all behind the camera
    out = render(means, p[1].detach(), p[2].detach(), p[3].detach(), p[4].detach(), 3, torch.eye(4), K, W, H,
                 bg=BG)
    assert torch.allclose(out["image"], BG.expand(H, W, 3))
    assert not out["visible"].any()


@pytest.mark.slow  # the first numba compile takes ~30-50 s on 2 cores
def test_numba_fallback_matches_reference(monkeypatch):
    """Without a C++ compiler the numba kernels run: same values and gradients."""
    monkeypatch.setenv("VID2MODEL_SPLAT_BACKEND", "numba")
    assert kernels.backend() == "numba"
    img, T, grads = _run(composite, torch.float32)
    img_r, T_r, grads_r = _run(composite_reference, torch.float64)
    assert (img.double() - img_r).abs().max() < 1e-4
    for g, gr in zip(grads, grads_r):
        assert float((g.double() - gr).abs().max() / gr.abs().max()) < 1e-4


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_split_sh_matches_full(degree):
    from vid2model.ops.sh import sh_to_rgb_split

    p = _params(torch.float32)
    dirs = torch.nn.functional.normalize(torch.randn(N, 3), dim=-1)
    full = sh_to_rgb(p[4], dirs, degree)
    split = sh_to_rgb_split(p[4][:, :1], p[4][:, 1:], dirs, degree)
    assert torch.allclose(full, split, atol=1e-6)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_fused_projection_matches_torch(degree):
    """The compiled projection + SH colour against the torch version: values and gradients."""
    if kernels.load_cpp() is None:
        pytest.skip("no C++ compiler")
    from vid2model.splat.rasterize import project_fused
    from vid2model.ops.sh import sh_to_rgb_split

    c2w = torch.eye(4, dtype=torch.float64)
    a = 0.4
    c2w[:3, :3] = torch.tensor([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    c2w[:3, 3] = torch.tensor([0.3, -0.2, -0.5])
    vm = torch.linalg.inv(c2w)
    p = _params(torch.float64, seed=3)
    p[0].data[:4] *= torch.tensor([8.0, 8.0, 1.0], dtype=torch.float64)  # far off-screen: Jacobian clamp
    p[0].data[4, 2] = -1.0  # behind the camera
    g = torch.Generator().manual_seed(5)
    ups = [torch.randn(N, c, generator=g, dtype=torch.float64) for c in (2, 3, 3)]

    def run(fused, dtype):
        ps = [x.detach().to(dtype).requires_grad_() for x in p]
        sh0, shN = ps[4][:, :1], ps[4][:, 1:]
        if fused:
            m2, cn, col, d, ext = project_fused(ps[0], ps[1], ps[2], ps[3], sh0, shN, degree, vm.to(dtype),
                                                K.to(dtype), W, H)
        else:
            m2, cn, d, ext = project(ps[0], ps[1], ps[2], ps[3], vm.to(dtype), K.to(dtype), W, H)
            campos = -vm[:3, :3].T.to(dtype) @ vm[:3, 3].to(dtype)
            dirs = ps[0] - campos
            col = sh_to_rgb_split(sh0, shN, dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12), degree)
        ((m2 * ups[0].to(dtype)).sum() + (cn * ups[1].to(dtype)).sum() + (col * ups[2].to(dtype)).sum()).backward()
        return [m2, cn, col, d, ext], [x.grad for x in (ps[0], ps[1], ps[2], ps[4])]

    outs, grads = run(True, torch.float32)
    outs_r, grads_r = run(False, torch.float64)
    for name, o, r in zip(["means2d", "conics", "colors", "depths", "ext"], outs, outs_r):
        rel = float((o.detach().double() - r.detach()).abs().max() / r.detach().abs().max().clamp_min(1e-6))
        assert rel < 1e-5, f"{name} off by {rel:.2e}"
    assert not bool(outs[4][4].any())  # behind the camera: culled
    for name, gg, gr in zip(["means", "quats", "scales", "sh"], grads, grads_r):
        rel = float((gg.double() - gr).abs().max() / gr.abs().max().clamp_min(1e-12))
        assert rel < 1e-4, f"{name} gradient off by {rel:.2e}"


def test_fused_kernel_repeats_the_camera_projection():
    """The C++ projection repeats :func:`vid2model.camera.project_with_jacobian` (its comment says so): on random
    splats, on- and off-screen and behind the camera, its means2d and depths are the camera's, and its conics
    invert J Sigma J^T + LOWPASS with the camera's J."""
    if kernels.load_cpp() is None:
        pytest.skip("no C++ compiler")
    from vid2model.camera import Camera, project_with_jacobian
    from vid2model.splat.rasterize import LOWPASS, NEAR, project_fused, quat_to_rotmat

    rng = np.random.default_rng(11)
    n, w, h = 500, 97, 71
    Km = np.array([[rng.uniform(60, 120), 0, rng.uniform(40, 57)], [0, rng.uniform(60, 120), rng.uniform(30, 41)],
                   [0, 0, 1.0]])
    a, b = rng.uniform(-0.5, 0.5, 2)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) @ \
        np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    cam = Camera(Km, R, rng.normal(size=3) * 0.3, w, h)
    xc = np.c_[rng.uniform(-1, 1, (n, 2)) * 3, rng.uniform(-0.5, 5, n)]  # some behind, some far off-screen
    f32 = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    means, vm, K = f32(cam.to_world(xc)), f32(cam.world_to_cam), f32(Km)
    quats, scales = f32(rng.normal(size=(n, 4))), f32(rng.uniform(0.01, 0.2, (n, 3)))
    opac, sh = f32(rng.uniform(0.1, 0.9, n)), f32(rng.normal(size=(n, 16, 3)))
    m2, cn, _, d, ext = project_fused(means, quats, scales, opac, sh[:, :1], sh[:, 1:], 3, vm, K, w, h)
    uv, z, J = project_with_jacobian(means.double(), vm.double(), K.double(), w, h, NEAR)
    front = z > NEAR
    assert 20 < int((~front).sum()) and bool((ext[~front] == 0).all())
    assert int((uv[front, 0].abs() > 2 * w).sum()) > 20  # the Jacobian clamp is exercised
    torch.testing.assert_close(d.double(), z, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m2.double()[front], uv[front], rtol=1e-5, atol=1e-3)
    M = quat_to_rotmat(quats.double()) * scales.double()[:, None, :]
    JM = J @ M
    cov = JM @ JM.transpose(1, 2) + LOWPASS * torch.eye(2, dtype=torch.float64)
    inv = torch.linalg.inv(cov[front])
    torch.testing.assert_close(cn.double()[front], torch.stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]], -1),
                               rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("shape", [(270, 480), (31, 17)])
def test_fused_ssim_matches_the_torch_one_and_its_gradient(shape):
    from vid2model.splat.kernels import load_cpp
    from vid2model.splat.losses import ssim

    if load_cpp() is None:
        pytest.skip("no C++ compiler: the torch SSIM is the only one")
    torch.manual_seed(0)
    x = torch.rand(*shape, 3, requires_grad=True)
    y = (0.7 * x.detach() + 0.3 * torch.rand(*shape, 3)).clamp(0, 1)
    ref = ssim(x, y, fused=False)
    ref.backward()
    g_ref, x.grad = x.grad.clone(), None
    out = ssim(x, y)
    out.backward()
    assert abs(float(out) - float(ref)) < 1e-6
    # float32 sums in another order: the gradients agree to 1e-5 of their largest entry (seen: 1.4e-6)
    assert float((x.grad - g_ref).abs().max()) <= 1e-5 * float(g_ref.abs().max())
