"""Differentiable Gaussian splat rasteriser: torch projection + compiled tile compositing.

On CPU everything runs in the compiled kernels of :mod:`vid2model.splat.kernels`: projection (EWA
splatting) and SH colour in one fused pass with an analytic backward (:func:`project_fused`), then
compositing (depth sort, tile binning, front-to-back alpha blending with early termination, and its
back-to-front backward). :func:`project` and :func:`sh.sh_to_rgb` are the vectorised-torch versions of
the first step: the reference for the tests and the path taken when no C++ compiler is available
(numba compositing). On CUDA the whole thing is delegated to gsplat when it is installed.

The projection and its Jacobian are :func:`vid2model.camera.project_with_jacobian` (COLMAP pixel
centres, OpenCV axes: x right, y down, z forward); ``viewmat`` is world-to-camera.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vid2model.camera import center_of, pinhole, project_with_jacobian
from vid2model.splat import kernels
from vid2model.ops.sh import sh_to_rgb, sh_to_rgb_split

TILE = 16
NEAR = 0.01  # splats closer than this (world units along z) are culled
LOWPASS = 0.3  # pixel^2 added to every 2D covariance (3DGS): keeps splats >= ~1 pixel wide


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any norm -> (N, 3, 3) rotations."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


def project(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
            viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int, near: float = NEAR):
    """Project 3D Gaussians to screen-space 2D Gaussians.

    Args:
        means: (N, 3) world positions; quats: (N, 4) wxyz; scales: (N, 3) std devs (not log);
        opacities: (N,) in (0, 1); viewmat: (4, 4) world-to-camera; K: (3, 3).

    Returns:
        means2d (N, 2) pixels, conics (N, 3) inverse 2D covariance (A, B, C), depths (N,),
        ext (N, 2) no-grad half extents in pixels of the region where alpha >= 1/255 (0 = culled).
    """
    means2d, z, J = project_with_jacobian(means, viewmat, K, width, height, near)
    rot = quat_to_rotmat(quats)
    M = rot * scales[:, None, :]  # (N, 3, 3): columns scaled
    row0, row1 = J[:, 0], J[:, 1]  # (N, 3) each
    # J M and the 2D covariance (J M)(J M)^T written out: batched 2x3 / 3x3 matmuls are slow on CPU
    t0 = (row0[:, :, None] * M).sum(1)  # (N, 3)
    t1 = (row1[:, :, None] * M).sum(1)
    a = (t0 * t0).sum(-1) + LOWPASS
    b = (t0 * t1).sum(-1)
    c = (t1 * t1).sum(-1) + LOWPASS
    det = (a * c - b * b).clamp_min(1e-12)
    conics = torch.stack([c / det, -b / det, a / det], -1)
    with torch.no_grad():
        o = opacities.detach().clamp_min(1e-12)
        k = 2.0 * torch.log(255.0 * o).clamp_min(0.0)
        ext = torch.stack([torch.sqrt(k * a.detach()), torch.sqrt(k * c.detach())], -1)
        ok = (z.detach() > near) & (o > 1.0 / 255.0) & torch.isfinite(ext).all(-1)
        ext = torch.where(ok[:, None], ext, torch.zeros_like(ext))
    return means2d, conics, z, ext


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of 2D Gaussians in the compiled CPU kernels."""

    @staticmethod
    def forward(ctx, means2d, conics, colors, opac, ext, depths, bg, width, height, tile):
        dev = means2d.device
        f32 = lambda x: np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())  # noqa: E731
        m, cn, col, op, ex, bgn = f32(means2d), f32(conics), f32(colors), f32(opac), f32(ext), f32(bg)
        order = kernels.sort_visible(f32(depths), ex)
        img, T, state = kernels.composite_forward(order, m, cn, col, op, ex, width, height, tile, bgn)
        ctx.saved = (state, bgn, width, height, tile, dev, means2d.dtype)
        out_T = torch.from_numpy(T).to(dev)
        ctx.mark_non_differentiable(out_T)
        return torch.from_numpy(img).to(dev, means2d.dtype), out_T

    @staticmethod
    def backward(ctx, dimg, _dT):
        state, bgn, W, H, tile, dev, dt = ctx.saved
        d = np.ascontiguousarray(dimg.detach().to("cpu", torch.float32).numpy())
        dm, dc, dcol, do = kernels.composite_backward(state, W, H, tile, bgn, d)
        g = lambda x: torch.from_numpy(x).to(dev, dt)  # noqa: E731
        return g(dm), g(dc), g(dcol), g(do), None, None, None, None, None, None


def _np32(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


class _Project(torch.autograd.Function):
    """Fused projection + SH colour in the compiled kernels (same maths as :func:`project` followed by
    :func:`sh.sh_to_rgb_split`, which serve as its reference)."""

    @staticmethod
    def forward(ctx, means, quats, scales, opacities, sh0, shN, viewmat, K, width, height, deg):
        dev, dt = means.device, means.dtype
        vm = _np32(viewmat)
        Kn = K.detach().cpu().double().numpy()
        cam = np.array([*pinhole(Kn), NEAR, LOWPASS, width, height], np.float32)
        campos = np.ascontiguousarray(center_of(vm.astype(np.float64)).astype(np.float32))
        ins = [_np32(x) for x in (means, quats, scales, opacities, sh0, shN)]
        deg = min(deg, math.isqrt(shN.shape[1] + 1) - 1)
        m2, cn, col, d, ex = kernels.project_forward(*ins, deg, vm, cam, campos)
        ctx.saved = (ins, deg, vm, cam, campos, dev, dt)
        t = lambda x: torch.from_numpy(x).to(dev, dt)  # noqa: E731
        depths, ext = t(d), t(ex)
        ctx.mark_non_differentiable(depths, ext)
        return t(m2), t(cn), t(col), depths, ext

    @staticmethod
    def backward(ctx, dm2, dcn, dcol, _dd, _de):
        ins, deg, vm, cam, campos, dev, dt = ctx.saved
        n = ins[0].shape[0]
        z = lambda g, c: np.zeros((n, c), np.float32) if g is None else _np32(g)  # noqa: E731
        grads = kernels.project_backward(ins[0], ins[1], ins[2], ins[4], ins[5], deg, vm, cam, campos,
                                         z(dm2, 2), z(dcn, 3), z(dcol, 3))
        dm, dq, ds, d0, dN = (torch.from_numpy(g).to(dev, dt) for g in grads)
        return dm, dq, ds, None, d0, dN, None, None, None, None, None


def project_fused(means, quats, scales, opacities, sh0, shN, sh_degree, viewmat, K, width, height):
    """Projection + SH colour in one compiled pass: means2d, conics, colors, depths, ext (CPU, C++ kernels)."""
    return _Project.apply(means, quats, scales, opacities, sh0, shN, viewmat, K, width, height, sh_degree)


def composite(means2d, conics, colors, opacities, ext, depths, bg, width, height, tile: int = TILE):
    """Differentiable compositing. Returns image (H, W, 3) and final transmittance (H, W)."""
    return _Composite.apply(means2d, conics, colors, opacities, ext, depths, bg, width, height, tile)


def _gsplat_available(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def render(means, quats, scales, opacities, sh, sh_degree: int, viewmat, K, width: int, height: int,
           bg=None, tile: int = TILE, shN=None) -> dict:
    """Render one view.

    Args:
        means (N, 3), quats (N, 4), scales (N, 3) std devs, opacities (N,), sh (N, K, 3) coefficients
        (or the DC part (N, 1, 3) with the rest passed as ``shN`` (N, K-1, 3));
        viewmat (4, 4) world-to-camera; K (3, 3); bg (3,) background colour (default black).

    Returns:
        dict with ``image`` (H, W, 3), ``alpha`` (H, W), ``means2d`` (N, 2) (call ``retain_grad`` on it
        before backward for densification statistics), ``visible`` (N,) bool.
    """
    dev = means.device
    viewmat = torch.as_tensor(viewmat, dtype=means.dtype, device=dev)
    K = torch.as_tensor(K, dtype=means.dtype, device=dev)
    bg = torch.zeros(3, dtype=means.dtype, device=dev) if bg is None else torch.as_tensor(bg, dtype=means.dtype,
                                                                                          device=dev)
    if _gsplat_available(dev):
        if shN is not None:
            sh = torch.cat([sh, shN], 1)
        return _render_gsplat(means, quats, scales, opacities, sh, sh_degree, viewmat, K, width, height, bg)
    if dev.type == "cpu" and kernels.load_cpp() is not None:
        if shN is None:
            sh, shN = sh[:, :1], sh[:, 1:]
        means2d, conics, colors, depths, ext = project_fused(means, quats, scales, opacities, sh, shN, sh_degree,
                                                             viewmat, K, width, height)
        img, T = composite(means2d, conics, colors, opacities, ext, depths, bg, width, height, tile)
        return {"image": img, "alpha": 1.0 - T, "means2d": means2d, "visible": ext[:, 0] > 0}
    means2d, conics, depths, ext = project(means, quats, scales, opacities, viewmat, K, width, height)
    dirs = means - center_of(viewmat)  # 3DGS also back-propagates the view direction of the SH colour
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    colors = sh_to_rgb(sh, dirs, sh_degree) if shN is None else sh_to_rgb_split(sh, shN, dirs, sh_degree)
    img, T = composite(means2d, conics, colors, opacities, ext, depths, bg, width, height, tile)
    return {"image": img, "alpha": 1.0 - T, "means2d": means2d, "visible": ext[:, 0] > 0}


def _render_gsplat(means, quats, scales, opacities, sh, sh_degree, viewmat, K, width, height, bg) -> dict:
    import gsplat

    k = (sh_degree + 1) ** 2
    img, alpha, meta = gsplat.rasterization(means, quats, scales, opacities, sh[:, :k], viewmat[None], K[None],
                                            width, height, sh_degree=sh_degree, backgrounds=bg[None],
                                            absgrad=False, packed=False)
    means2d = meta["means2d"]
    return {"image": img[0], "alpha": alpha[0, ..., 0], "means2d": means2d.squeeze(0) if means2d.dim() == 3
            else means2d, "visible": (meta["radii"].reshape(means.shape[0], -1) > 0).any(-1)}
