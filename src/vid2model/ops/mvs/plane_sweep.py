"""Depth from a reference view and its sources: fronto-parallel plane sweep with windowed NCC, then a
per-pixel refinement sweep around the first estimate. Vectorised torch: the same code runs on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Cam:
    """A pinhole view at the working resolution: K (3, 3), R (3, 3), t (3,) world-to-camera."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window of a (..., H, W) tensor."""
    shape = x.shape
    y = F.avg_pool2d(x.reshape(-1, 1, *shape[-2:]), 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return y.reshape(shape)


def _warp(src: torch.Tensor, ref: Cam, cam: Cam, depth: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
    """Sample source image (H', W') at the projections of reference pixels at ``depth`` (..., H, W)."""
    dev = src.device
    Kinv = torch.as_tensor(np.linalg.inv(ref.K), dtype=torch.float32, device=dev)
    R_rel = torch.as_tensor(cam.R @ ref.R.T, dtype=torch.float32, device=dev)
    t_rel = torch.as_tensor(cam.t - cam.R @ ref.R.T @ ref.t, dtype=torch.float32, device=dev)
    Ks = torch.as_tensor(cam.K, dtype=torch.float32, device=dev)
    rays = pix @ Kinv.T  # (H, W, 3)
    X = rays * depth[..., None]  # (..., H, W, 3)
    x = X @ (Ks @ R_rel).T + Ks @ t_rel
    z = x[..., 2:3].clamp_min(1e-6)
    uv = x[..., :2] / z
    hs, ws = src.shape[-2:]
    grid = torch.stack([uv[..., 0] / (ws - 1) * 2 - 1, uv[..., 1] / (hs - 1) * 2 - 1], -1)
    lead = grid.shape[:-3]
    g = grid.reshape(-1, *grid.shape[-3:])
    out = F.grid_sample(src.expand(g.shape[0], 1, hs, ws), g, mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    valid = (g.abs() <= 1).all(-1) & (x[..., 2].reshape(g.shape[:-1]) > 0)
    out = torch.where(valid[:, None], out, torch.full_like(out, float("nan")))
    return out.reshape(*lead, *grid.shape[-3:-1])


def _ncc(ref: torch.Tensor, warped: torch.Tensor, r: int) -> torch.Tensor:
    """Windowed NCC between ref (H, W) and warped (..., H, W); NaN (outside) counts as -1."""
    valid = ~torch.isnan(warped)
    w = torch.nan_to_num(warped)
    mr, mw = _box(ref, r), _box(w, r)
    vr = _box(ref * ref, r) - mr * mr
    vw = _box(w * w, r) - mw * mw
    cov = _box(ref * w, r) - mr * mw
    ncc = cov / torch.sqrt(vr.clamp_min(1e-5) * vw.clamp_min(1e-5))
    return torch.where(valid, ncc, torch.full_like(ncc, -1.0))


def _aggregate(nccs: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the ``k`` best source scores per hypothesis: robust to occlusion in the other sources."""
    k = min(k, nccs.shape[0])
    return nccs.topk(k, dim=0).values.mean(0)


def _scaled(cam: Cam, f: float) -> Cam:
    K = cam.K.copy()
    K[:2] *= f
    K[0, 2] = (cam.K[0, 2] + 0.5) * f - 0.5
    K[1, 2] = (cam.K[1, 2] + 0.5) * f - 0.5
    return Cam(K, cam.R, cam.t)


def _half(img: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(img[None, None], 2, ceil_mode=True)[0, 0]


def _scores(ref_img, src_imgs, ref, srcs, depth, pix, window, best_k) -> torch.Tensor:
    nccs = torch.stack([_ncc(ref_img, _warp(img, ref, cam, depth, pix), window) for img, cam in zip(src_imgs, srcs)])
    return _aggregate(nccs, best_k)


def _pixels(H: int, W: int, dev) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                          torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
    return torch.stack([u, v, torch.ones_like(u)], -1)


def sweep_depth(ref_img: torch.Tensor, src_imgs: list[torch.Tensor], ref: Cam, srcs: list[Cam],
                dmin: float, dmax: float, n_planes: int = 48, n_refine: int = 8, window: int = 3,
                best_k: int = 2, chunk: int = 16, rounds: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate a depth map for the reference view, coarse to fine.

    A global sweep over ``n_planes`` fronto-parallel planes (uniform in inverse depth) runs at half
    resolution; the result is upsampled and refined at full resolution by ``rounds`` per-pixel sweeps
    of ``n_refine`` hypotheses, each narrower than the last.

    Args:
        ref_img: (H, W) grey reference image in [0, 1].
        src_imgs: source grey images (H', W').
        ref, srcs: cameras at the images' resolution.
        dmin, dmax: depth search range (z in the reference camera).
        n_planes: hypotheses of the global sweep.
        n_refine: per-pixel hypotheses of each refinement round.
        window: NCC window radius (full resolution).
        best_k: number of best sources averaged.
        chunk: planes processed at once (bounds memory).
        rounds: refinement rounds.

    Returns:
        depth (H, W) and score (H, W) = aggregated NCC in [-1, 1].
    """
    dev = ref_img.device
    H, W = ref_img.shape
    r_lo, s_lo = _half(ref_img), [_half(s) for s in src_imgs]
    c_lo, cs_lo = _scaled(ref, 0.5), [_scaled(c, 0.5) for c in srcs]
    h, w = r_lo.shape
    pix = _pixels(h, w, dev)
    inv = torch.linspace(1 / dmax, 1 / dmin, n_planes, device=dev)
    scores = torch.empty((n_planes, h, w), device=dev)
    for s in range(0, n_planes, chunk):
        d = (1 / inv[s:s + chunk])[:, None, None].expand(-1, h, w)
        scores[s:s + chunk] = _scores(r_lo, s_lo, c_lo, cs_lo, d, pix, window, best_k)
    best_i = scores.argmax(0)
    inv_lo = inv[best_i]
    step = float(inv[1] - inv[0]) if n_planes > 1 else 1e-3
    inv_est = F.interpolate(inv_lo[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    pix = _pixels(H, W, dev)
    best = _scores(ref_img, src_imgs, ref, srcs, (1 / inv_est)[None], pix, window, best_k)[0]
    radius = 1.5 * step
    for _ in range(rounds):
        deltas = torch.linspace(-radius, radius, n_refine, device=dev)
        cand_inv = (inv_est[None] + deltas[:, None, None]).clamp(1 / dmax * 0.5, 1 / dmin * 2)
        agg = _scores(ref_img, src_imgs, ref, srcs, 1 / cand_inv, pix, window, best_k)
        rb, ri = agg.max(0)
        better = rb > best
        inv_est = torch.where(better, cand_inv.gather(0, ri[None])[0], inv_est)
        best = torch.maximum(best, rb)
        radius = radius * 2.5 / n_refine
    return 1 / inv_est, best
