"""Plain-torch Gaussian compositing: the readable reference for tests and the benchmark baseline.

Same conventions as the compiled kernels (see :mod:`vid2model.splat.rasterize`): pixel centres at
+0.5, alpha = min(0.99, o exp(power)), splats with alpha < 1/255 skipped, a pixel stops before the
splat that would drop its transmittance below 1e-4. Autograd gives the gradients.
"""

from __future__ import annotations

import torch

from vid2model.camera import pixel_grid

MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.99
MIN_T = 1e-4


def _composite_block(px: torch.Tensor, means2d, conics, colors, opac, bg):
    """Composite pixels (P, 2) against depth-sorted splats (M, ...). Returns (P, 3), (P,)."""
    d = px[:, None, :] - means2d[None]
    dx, dy = d[..., 0], d[..., 1]
    A, B, C = conics[:, 0], conics[:, 1], conics[:, 2]
    power = -0.5 * (A * dx * dx + C * dy * dy) - B * dx * dy
    alpha = (opac * torch.exp(power)).clamp(max=MAX_ALPHA)
    valid = (power <= 0) & (alpha >= MIN_ALPHA)
    a = alpha * valid
    one = torch.ones_like(a[:, :1])
    t_excl = torch.cumprod(torch.cat([one, 1 - a[:, :-1]], 1), 1)
    keep = valid & (t_excl * (1 - a) >= MIN_T)
    ak = a * keep
    t_kept = torch.cumprod(torch.cat([one, 1 - ak[:, :-1]], 1), 1)
    w = ak * t_kept
    T = torch.prod(1 - ak, 1)
    return w @ colors + T[:, None] * bg, T


def composite_reference(means2d, conics, colors, opacities, ext, depths, bg, width: int, height: int,
                        tile: int | None = None):
    """Reference compositing; same signature/outputs as :func:`rasterize.composite`.

    Args:
        tile: None composites all pixels against all splats at once (tiny images only); an int loops
            over tiles of that size and keeps only the splats whose extent box meets the tile (the
            plain-torch tiled baseline the benchmark compares against).
    """
    dev, dt = means2d.device, means2d.dtype
    vis = torch.nonzero(ext[:, 0] > 0).squeeze(1)
    order = vis[torch.argsort(depths.detach()[vis], stable=True)]
    m, cn, col, op, ex = means2d[order], conics[order], colors[order], opacities[order], ext[order]
    bg = torch.as_tensor(bg, dtype=dt, device=dev)
    px = torch.as_tensor(pixel_grid(height, width)[..., :2], dtype=dt, device=dev)  # (H, W, 2) pixel centres
    if tile is None:
        img, T = _composite_block(px.reshape(-1, 2), m, cn, col, op, bg)
        return img.reshape(height, width, 3), T.reshape(height, width)
    rows = []
    lo, hi = (m - ex).detach(), (m + ex).detach()
    for y0 in range(0, height, tile):
        cols = []
        for x0 in range(0, width, tile):
            blk = px[y0:y0 + tile, x0:x0 + tile]
            bh, bw = blk.shape[:2]
            sel = ((hi[:, 0] >= x0) & (lo[:, 0] <= x0 + bw) & (hi[:, 1] >= y0) & (lo[:, 1] <= y0 + bh))
            idx = torch.nonzero(sel).squeeze(1)
            ci, ti = _composite_block(blk.reshape(-1, 2), m[idx], cn[idx], col[idx], op[idx], bg)
            cols.append((ci.reshape(bh, bw, 3), ti.reshape(bh, bw)))
        rows.append((torch.cat([c[0] for c in cols], 1), torch.cat([c[1] for c in cols], 1)))
    return torch.cat([r[0] for r in rows], 0), torch.cat([r[1] for r in rows], 0)
