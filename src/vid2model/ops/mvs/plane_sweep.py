"""Depth from a reference view and its sources: fronto-parallel plane sweep with windowed NCC at half
resolution, then per-pixel refinement sweeps at full resolution around the upsampled estimate.

On CPU tensors the hypotheses are scored by the fused numba kernel of kernels.py (warp, windowed NCC and
best-k aggregation in one pass, much faster than the chain of torch ops); the torch path is the reference
and the one that runs on CUDA. Cameras are :class:`vid2model.camera.Camera` at the images' resolution
(COLMAP pixel centres, so halving an image halves K).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vid2model.camera import Camera, grid_sample_coords, pixel_grid


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window of a (..., H, W) tensor; separable, edges average what is inside."""
    shape = x.shape
    y = x.reshape(-1, 1, *shape[-2:])
    k = 2 * r + 1
    y = F.avg_pool2d(y, (1, k), stride=1, padding=(0, r), count_include_pad=False)
    y = F.avg_pool2d(y, (k, 1), stride=1, padding=(r, 0), count_include_pad=False)
    return y.reshape(shape)


class _Pair:
    """Precomputed warp of reference pixels into one source (:meth:`Camera.depth_warp`)."""

    def __init__(self, A: np.ndarray, b: np.ndarray, pix: torch.Tensor):
        dev = pix.device
        self.b = torch.as_tensor(b, dtype=torch.float32, device=dev)
        self.rays = pix @ torch.as_tensor(A, dtype=torch.float32, device=dev).T  # (H, W, 3)


def _warp(src: torch.Tensor, pair: _Pair, depth: torch.Tensor) -> torch.Tensor:
    """Sample source image (H', W') at the projections of reference pixels at ``depth`` (D, H, W).

    Returns (D, H, W) with NaN where the projection falls outside the source or behind it.
    """
    x = pair.rays * depth[..., None] + pair.b
    z = x[..., 2]
    zc = z.clamp_min(1e-6)
    hs, ws = src.shape[-2:]
    grid = torch.stack(grid_sample_coords(x[..., 0] / zc, x[..., 1] / zc, ws, hs), -1)
    out = F.grid_sample(src.expand(grid.shape[0], 1, hs, ws), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)[:, 0]
    valid = (grid.abs() <= 1).all(-1) & (z > 0)
    return torch.where(valid, out, torch.full_like(out, float("nan")))


class _RefStats:
    """Window mean and standard deviation of the reference image, shared by every hypothesis."""

    def __init__(self, ref: torch.Tensor, r: int):
        self.img, self.r = ref, r
        self.mean = box(ref, r)
        self.std = torch.sqrt((box(ref * ref, r) - self.mean ** 2).clamp_min(1e-5))


def _ncc(ref: _RefStats, warped: torch.Tensor) -> torch.Tensor:
    """Windowed NCC between the reference and warped (D, H, W); outside the source counts as -1."""
    valid = ~torch.isnan(warped)
    w = torch.nan_to_num(warped)
    r = ref.r
    mw = box(w, r)
    vw = (box(w * w, r) - mw * mw).clamp_min(1e-5)
    cov = box(ref.img * w, r) - ref.mean * mw
    ncc = cov / (ref.std * torch.sqrt(vw))
    return torch.where(valid, ncc, torch.full_like(ncc, -1.0))


def _scores(ref: _RefStats, src_imgs, pairs, depth: torch.Tensor, best_k: int) -> torch.Tensor:
    """Aggregated score (D, H, W): mean of the ``best_k`` best sources (robust to occlusion in others)."""
    nccs = torch.stack([_ncc(ref, _warp(img, p, depth)) for img, p in zip(src_imgs, pairs)])
    k = min(best_k, nccs.shape[0])
    return nccs.topk(k, dim=0).values.mean(0) if k > 1 else nccs.max(0).values


class _Scorer:
    """Scores inverse-depth hypothesis maps (D, H, W) of one level: fused numba kernel on the CPU, torch elsewhere."""

    def __init__(self, ref_img: torch.Tensor, src_imgs: list[torch.Tensor], ref: Camera, srcs: list[Camera],
                 window: int, best_k: int, impl: str, chunk: int):
        H, W = ref_img.shape
        self.window, self.best_k, self.chunk = window, best_k, chunk
        self.numba = impl == "numba" or (impl == "auto" and ref_img.device.type == "cpu")
        self.stats = _RefStats(ref_img, window)
        warps = [ref.depth_warp(c) for c in srcs]
        if not self.numba:
            pix = torch.as_tensor(pixel_grid(H, W), dtype=torch.float32, device=ref_img.device)
            self.pairs = [_Pair(A, b, pix) for A, b in warps]
            self.srcs = src_imgs
            return
        self.A = np.array([A for A, _ in warps], np.float64).reshape(-1, 3, 3)
        self.b = np.array([b for _, b in warps], np.float64).reshape(-1, 3)
        from vid2model.ops.mvs.kernels import zero_padded

        self.src_np = zero_padded([s.cpu().numpy() for s in src_imgs])
        self.sizes = np.array([s.shape for s in src_imgs], np.int64)
        self.ref_np = ref_img.cpu().numpy().astype(np.float32)
        self.mean_np = self.stats.mean.cpu().numpy().astype(np.float32)
        self.istd_np = (1.0 / self.stats.std).cpu().numpy().astype(np.float32)

    def __call__(self, inv: torch.Tensor) -> torch.Tensor:
        """Aggregated NCC (D, H, W) of the inverse depths ``inv`` (D, H, W)."""
        if self.numba:
            from vid2model.ops.mvs.kernels import score_hypotheses

            inv_np = np.ascontiguousarray(inv.cpu().numpy(), dtype=np.float32)
            out = np.empty(inv_np.shape, np.float32)
            score_hypotheses(self.ref_np, self.mean_np, self.istd_np, self.src_np, self.sizes, self.A, self.b,
                             inv_np, self.window, self.best_k, out)
            return torch.from_numpy(out).to(inv.device)
        return torch.cat([_scores(self.stats, self.srcs, self.pairs, 1 / inv[s:s + self.chunk], self.best_k)
                          for s in range(0, inv.shape[0], self.chunk)])


def median3(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Median over a (2r+1)^2 window of a (H, W) tensor (edges replicated)."""
    if x.device.type == "cpu":
        from vid2model.ops.mvs.kernels import median_filter

        a = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        return torch.from_numpy(median_filter(a, r, np.empty_like(a))).to(x.dtype)
    k = 2 * r + 1
    p = F.pad(x[None, None], (r, r, r, r), mode="replicate")
    return F.unfold(p, k).median(1).values.reshape(x.shape)


def _half(img: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(img[None, None], 2, ceil_mode=False)[0, 0]


def _halved(cam: Camera, img: torch.Tensor) -> Camera:
    """The camera of :func:`_half` of its (H, W) image: 2x2 pooling (odd edges dropped) halves coordinates."""
    return cam.scaled(0.5, img.shape[-1] // 2, img.shape[-2] // 2)


def spacing_of(radius: float, n: int) -> float:
    """Step between ``n`` evenly spaced hypotheses spanning [-radius, radius]."""
    return 2 * radius / max(n - 1, 1)


def shifted(x: torch.Tensor, px: int) -> torch.Tensor:
    """(4, H, W): the (H, W) map moved ``px`` pixels right, left, down and up (edges replicated), so pixel
    (i, j) holds the values of its neighbours ``px`` away."""
    H, W = x.shape
    p = F.pad(x[None, None], (px, px, px, px), mode="replicate")[0, 0]
    return torch.stack([p[px:px + H, :W], p[px:px + H, 2 * px:], p[:H, px:px + W], p[2 * px:, px:px + W]])


def sweep_depth(ref_img: torch.Tensor, src_imgs: list[torch.Tensor], ref: Camera, srcs: list[Camera],
                dmin: float, dmax: float, n_planes: int = 48, n_refine: int = 8, window: int = 3,
                best_k: int = 2, chunk: int = 8, rounds: int = 3, impl: str = "auto",
                anchor: float = 1.0, refine_planes: int = 0,
                propagate: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate a depth map for the reference view, coarse to fine.

    A global sweep over ``n_planes`` fronto-parallel planes (uniform in inverse depth) runs at half
    resolution; the result is upsampled and refined at full resolution by ``rounds`` per-pixel sweeps
    of ``n_refine`` hypotheses, each narrower than the last, then a parabola through the best score and
    its neighbours gives sub-sample depth. The refinement windows follow the current depth map, so slanted
    surfaces are matched with their slant rather than as fronto-parallel patches, and each estimate is
    anchored at the window mean of that map (see ``anchor``). Round k also scores the estimates of the four
    pixels ``propagate[k]`` pixels away (PatchMatch-style propagation, far to near like jump flooding): the
    half-resolution window smears a foreground depth onto the background beside it, a band the narrow
    per-pixel search cannot leave, while the background's own depth a few pixels further out wins there.

    Args:
        ref_img: (H, W) grey reference image in [0, 1].
        src_imgs: source grey images (H', W').
        ref, srcs: cameras at the images' resolution.
        dmin, dmax: depth search range (z in the reference camera).
        n_planes: hypotheses of the global sweep.
        n_refine: per-pixel hypotheses of each refinement round.
        window: NCC window radius in pixels (both levels: the coarse window covers twice the area).
        best_k: number of best sources averaged.
        chunk: planes processed at once by the torch path (bounds memory: chunk * sources * H * W floats).
        rounds: refinement rounds.
        impl: ``numba`` (fused CPU kernel), ``torch`` (any device) or ``auto`` (numba for CPU tensors).
        anchor: read each refined estimate off the window mean of the offset surface, not its centre value,
            where the two differ by at most ``anchor`` x (the round's search radius + step); past that the
            window straddles a depth edge and the centre value is kept (0 = always the centre).
            A window matches where the offset surface fits the scene on average, so the centre value puts the
            surface's own pixel noise into the result.
        refine_planes: the first refinement searches +-1.5 plane steps of a sweep with this many planes
            (0 = ``n_planes``): a denser global sweep does not narrow it below what the half-resolution
            estimate is accurate to.
        propagate: per refinement round, the distance (full-resolution pixels) of the neighbours whose
            estimates that round scores too; rounds past its length score none.

    Returns:
        depth (H, W) and score (H, W) = aggregated NCC in [-1, 1].
    """
    dev = ref_img.device
    H, W = ref_img.shape
    # coarse level: half resolution, global sweep
    r_lo = _half(ref_img)
    h, w = r_lo.shape
    # 2x2 average pooling (odd edges dropped) halves COLMAP pixel coordinates exactly
    score = _Scorer(r_lo, [_half(s) for s in src_imgs], _halved(ref, ref_img),
                    [_halved(c, s) for c, s in zip(srcs, src_imgs)], window, best_k, impl, chunk)
    inv = torch.linspace(1 / dmax, 1 / dmin, n_planes, device=dev)
    lo_inv, hi_inv = 0.5 / dmax, 2.0 / dmin
    best = torch.full((h, w), -2.0, device=dev)
    inv_lo = torch.full((h, w), float(inv[n_planes // 2]), device=dev)
    for s in range(0, n_planes, 64):
        planes = inv[s:s + 64, None, None].expand(-1, h, w).contiguous()
        sc, si = score(planes).max(0)
        better = sc > best
        best = torch.where(better, sc, best)
        inv_lo = torch.where(better, planes.gather(0, si[None])[0], inv_lo)
    n_step = refine_planes or n_planes
    step = (1 / dmin - 1 / dmax) / (n_step - 1) if n_step > 1 else 0.5 / dmin
    # fine level: full resolution, per-pixel sweeps around the upsampled estimate
    inv_est = F.interpolate(inv_lo[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    score = _Scorer(ref_img, src_imgs, ref, srcs, window, best_k, impl, chunk)
    radius = 1.5 * step
    for k in range(rounds):
        n = n_refine + (1 - n_refine % 2)  # odd: the centre is the current estimate
        deltas = torch.linspace(-radius, radius, n, device=dev)
        # hypotheses are offsets from a smoothed surface: every window then follows one coherent
        # (possibly slanted) surface, which the box-filtered NCC needs to be exact
        base = median3(inv_est, 2)
        cand = (base[None] + deltas[:, None, None]).clamp(lo_inv, hi_inv)
        if k < len(propagate):
            cand = torch.cat([cand, shifted(base, propagate[k])])
        agg = score(cand)
        rb, ri = agg.max(0)
        moved = ri >= n  # a neighbour's estimate won: take it as it is
        moved_to = cand.gather(0, ri[None])[0]
        ri = ri.clamp_max(n - 1)
        # The window at a pixel matches best where the offset surface agrees with the scene *on average over
        # the window*, so the estimate belongs to the window mean of the base, not to its centre value (which
        # would put the base's own pixel noise straight into the result). Across depth edges the window mean
        # mixes surfaces: keep the centre value there.
        if anchor:
            bm = box(base, window)
            base_at = torch.where((bm - base).abs() <= anchor * (radius + spacing_of(radius, n)), bm, base)
        else:
            base_at = base
        if k == rounds - 1:
            # parabola through the best hypothesis and its two neighbours: sub-sample inverse depth
            i0 = ri.clamp(1, n - 2)
            sm, s0, sp = (agg.gather(0, (i0 + o)[None])[0] for o in (-1, 0, 1))
            den = sm - 2 * s0 + sp
            off = torch.where(den < -1e-6, 0.5 * (sm - sp) / den, torch.zeros_like(den)).clamp(-0.5, 0.5)
            interior = (ri >= 1) & (ri <= n - 2)
            off = torch.where(interior, off, torch.zeros_like(off))
        else:
            off = torch.zeros_like(base)
        refined = (base_at + deltas[ri] + off * spacing_of(radius, n)).clamp(lo_inv, hi_inv)
        refined = torch.where(moved, moved_to, refined)
        inv_est, best = refined, rb
        radius = radius * 2.5 / n_refine
    return 1 / inv_est.clamp_min(1e-9), best
