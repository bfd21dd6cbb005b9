"""Fused numba kernels of the CPU plane sweep (the torch path in plane_sweep.py is the reference and runs on CUDA)
and of the depth maps' consistency check (filtering.consistency).

One kernel call scores ``D`` per-pixel inverse-depth hypothesis maps against every source: warp (bilinear),
windowed NCC from running box sums over a small ring of rows, and best-k aggregation over sources, in one
pass over the image per hypothesis. Nothing of size D x S x H x W is ever materialised, which is what makes
the torch version memory-bound on a CPU.

Conventions match plane_sweep.py: COLMAP pixel centres at +0.5; a reference pixel at inverse depth ``iz``
projects to ``A @ (u, v, 1) + b * iz`` (homogeneous) in the source; window means average what is inside the
image; a source pixel outside the source image counts as 0 in the window sums and its centre scores -1.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, fastmath=True, parallel=True)
def score_hypotheses(ref, ref_mean, ref_istd, srcs, sizes, A, b, inv, r, best_k, out):  # pragma: no cover
    """Aggregated NCC ``out`` (D, H, W) of the inverse-depth hypotheses ``inv`` (D, H, W).

    Args:
        ref: (H, W) float32 reference image.
        ref_mean, ref_istd: (H, W) window mean and 1 / std of the reference.
        srcs: (S, Hs, Ws) float32 source images (zero padded past each one's ``sizes`` (S, 2) = (h, w)).
        A, b: (S, 3, 3), (S, 3) float64 warp of each source.
        inv: (D, H, W) float32 inverse depths (> 0).
        r: window radius.
        best_k: sources averaged (the best ones per pixel and hypothesis).
        out: (D, H, W) float32 result.
    """
    D, H, W = inv.shape
    S = srcs.shape[0]
    K = 2 * r + 1
    for d in numba.prange(D):
        ring = np.zeros((S, 3, K, W), np.float32)  # horizontal window sums of the last K rows
        col = np.zeros((S, 3, W), np.float64)  # their running vertical sums
        vring = np.zeros((S, K, W), np.bool_)
        wrow = np.empty(W, np.float64)
        pxs = np.empty(W, np.float64)
        pys = np.empty(W, np.float64)
        pre = np.zeros((3, W + 1), np.float64)
        nccs = np.empty((S, W), np.float32)
        invn = np.empty(W, np.float64)
        a1 = np.empty(W, np.float32)
        a2 = np.empty(W, np.float32)
        us = np.empty(W, np.float64)
        for x in range(W):
            us[x] = x + 0.5  # pixel centres: the rule of vid2model.camera.pixel_grid
        for yi in range(H + r):
            slot = yi % K
            if yi >= K:  # the row leaving the window
                for s in range(S):
                    for c in range(3):
                        for x in range(W):
                            col[s, c, x] -= ring[s, c, slot, x]
            if yi < H:
                v = yi + 0.5  # pixel centres: the rule of vid2model.camera.pixel_grid
                invrow = inv[d, yi]
                for s in range(S):
                    hs = sizes[s, 0]
                    wsz = sizes[s, 1]
                    a00 = A[s, 0, 0]
                    a10 = A[s, 1, 0]
                    a20 = A[s, 2, 0]
                    c0 = A[s, 0, 1] * v + A[s, 0, 2]
                    c1 = A[s, 1, 1] * v + A[s, 1, 2]
                    c2 = A[s, 2, 1] * v + A[s, 2, 2]
                    b0 = b[s, 0]
                    b1 = b[s, 1]
                    b2 = b[s, 2]
                    xmax = wsz - 0.5
                    ymax = hs - 0.5
                    # the warp of vid2model.camera.Camera.depth_warp, then index_coords (centre at 0), in a
                    # branch-free loop the compiler vectorises; behind the camera goes far off the image
                    for x in range(W):
                        u = us[x]
                        iz = invrow[x]
                        Z = a20 * u + c2 + b2 * iz
                        iZ = 1.0 / max(Z, 1e-12)
                        px = (a00 * u + c0 + b0 * iz) * iZ - 0.5
                        py = (a10 * u + c1 + b1 * iz) * iZ - 0.5
                        bad = Z <= 1e-12
                        pxs[x] = -10.0 if bad else px
                        pys[x] = py
                    for x in range(W):
                        px = pxs[x]
                        py = pys[x]
                        ok = px >= -0.5 and px <= xmax and py >= -0.5 and py <= ymax
                        val = 0.0
                        if ok:
                            fx = np.floor(px)
                            fy = np.floor(py)
                            ax = px - fx
                            ay = py - fy
                            x0 = int(fx)
                            y0 = int(fy)
                            x1 = min(x0 + 1, wsz - 1)
                            y1 = min(y0 + 1, hs - 1)
                            x0 = max(x0, 0)
                            y0 = max(y0, 0)
                            top = srcs[s, y0, x0] * (1 - ax) + srcs[s, y0, x1] * ax
                            bot = srcs[s, y1, x0] * (1 - ax) + srcs[s, y1, x1] * ax
                            val = top * (1 - ay) + bot * ay
                        wrow[x] = val
                        vring[s, slot, x] = ok
                    p0 = 0.0
                    p1 = 0.0
                    p2 = 0.0
                    refrow = ref[yi]
                    for x in range(W):
                        w_ = wrow[x]
                        p0 += w_
                        p1 += w_ * w_
                        p2 += w_ * refrow[x]
                        pre[0, x + 1] = p0
                        pre[1, x + 1] = p1
                        pre[2, x + 1] = p2
                    for c in range(3):
                        for x in range(W):
                            hsum = pre[c, min(W, x + r + 1)] - pre[c, max(0, x - r)]
                            ring[s, c, slot, x] = hsum
                            col[s, c, x] += hsum
            yo = yi - r
            if yo < 0:
                continue
            ny = min(yi, H - 1) - max(0, yo - r) + 1
            oslot = yo % K
            for x in range(W):
                invn[x] = 1.0 / (ny * (min(W - 1, x + r) - max(0, x - r) + 1))
                a1[x] = -3.0
                a2[x] = -3.0
            mrow = ref_mean[yo]
            irow = ref_istd[yo]
            for s in range(S):
                for x in range(W):
                    m = col[s, 0, x] * invn[x]
                    var = max(col[s, 1, x] * invn[x] - m * m, 1e-5)
                    cov = col[s, 2, x] * invn[x] - mrow[x] * m
                    c_ = np.float32(cov * irow[x] / np.sqrt(var))
                    c_ = c_ if vring[s, oslot, x] else np.float32(-1.0)
                    nccs[s, x] = c_
                for x in range(W):
                    c_ = nccs[s, x]
                    lo = min(a1[x], c_)
                    a1[x] = max(a1[x], c_)
                    a2[x] = max(a2[x], lo)
            k = min(best_k, S)
            if k == 1:
                for x in range(W):
                    out[d, yo, x] = a1[x]
            elif k == 2:
                for x in range(W):
                    out[d, yo, x] = 0.5 * (a1[x] + a2[x])
            else:
                for x in range(W):
                    # sum of the k largest: remove the smallest S - k (S is small)
                    tot = 0.0
                    for s in range(S):
                        tot += nccs[s, x]
                    for _ in range(S - k):
                        lo_i = 0
                        for s in range(1, S):
                            if nccs[s, x] < nccs[lo_i, x]:
                                lo_i = s
                        tot -= nccs[lo_i, x]
                        nccs[lo_i, x] = 3.0
                    out[d, yo, x] = tot / k
    return out


@numba.njit(cache=True, fastmath=True, parallel=True)
def median_filter(x, r, out):  # pragma: no cover
    """Median over a (2r+1)^2 window of a (H, W) float32 array, edges replicated (like torch's median3)."""
    H, W = x.shape
    n = (2 * r + 1) ** 2
    for y in numba.prange(H):
        buf = np.empty(n, np.float32)
        for xx in range(W):
            m = 0
            for dy in range(-r, r + 1):
                yy = min(max(y + dy, 0), H - 1)
                for dx in range(-r, r + 1):
                    v = x[yy, min(max(xx + dx, 0), W - 1)]
                    j = m
                    while j > 0 and buf[j - 1] > v:
                        buf[j] = buf[j - 1]
                        j -= 1
                    buf[j] = v
                    m += 1
            out[y, xx] = buf[(n - 1) // 2]
    return out


def zero_padded(maps: list[np.ndarray]) -> np.ndarray:
    """(S, max H, max W) float32 stack of 2-D maps of any sizes, zero past each one's own edge (the
    kernels read a zero there as no data)."""
    hs = max((m.shape[0] for m in maps), default=1)
    ws = max((m.shape[1] for m in maps), default=1)
    out = np.zeros((len(maps), hs, ws), np.float32)
    for k, m in enumerate(maps):
        out[k, :m.shape[0], :m.shape[1]] = m
    return out


# serial (no prange): dense filters views on threads, and numba's workqueue threading layer is not safe for
# parallel kernels called from several threads at once
@numba.njit(cache=True, fastmath=True)
def agree_counts(ref_depth, Kr, Rr, tr, src_depths, Ks, Rs, ts, max_px, max_rel, count, depth_sum):  # pragma: no cover
    """Forward-backward agreement of a reference depth map with each source depth map (filtering.consistency).

    Args:
        ref_depth: (H, W) float32 z-depth, 0 = none.
        Kr, Rr, tr: reference camera (3, 3), (3, 3), (3,) float64, world-to-camera.
        src_depths: (S, Hs, Ws) float32 source depth maps (zero padded past each one's own size).
        Ks, Rs, ts: (S, 3, 3), (S, 3, 3), (S, 3) float64 source cameras.
        max_px, max_rel: agreement tolerances (reference pixels, relative depth).
        count: (H, W) int32 out, agreeing sources per pixel.
        depth_sum: (H, W) float64 out, the reference depth plus the agreeing sources' depths along its ray.
    """
    H, W = ref_depth.shape
    S, Hs, Ws = src_depths.shape
    for i in range(H):
        v = i + 0.5  # pixel centres: the rule of vid2model.camera.pixel_grid
        for j in range(W):
            z = ref_depth[i, j]
            count[i, j] = 0
            depth_sum[i, j] = 0.0
            if z <= 0:
                continue
            depth_sum[i, j] = z
            # reference pixel -> camera -> world: vid2model.camera.Camera.unproject
            xc = (j + 0.5 - Kr[0, 2]) / Kr[0, 0] * z
            yc = (v - Kr[1, 2]) / Kr[1, 1] * z
            X0 = Rr[0, 0] * (xc - tr[0]) + Rr[1, 0] * (yc - tr[1]) + Rr[2, 0] * (z - tr[2])
            X1 = Rr[0, 1] * (xc - tr[0]) + Rr[1, 1] * (yc - tr[1]) + Rr[2, 1] * (z - tr[2])
            X2 = Rr[0, 2] * (xc - tr[0]) + Rr[1, 2] * (yc - tr[1]) + Rr[2, 2] * (z - tr[2])
            for s in range(S):
                zs = Rs[s, 2, 0] * X0 + Rs[s, 2, 1] * X1 + Rs[s, 2, 2] * X2 + ts[s, 2]
                if zs <= 0:
                    continue
                # vid2model.camera.Camera.project (skew dropped: the undistorted PINHOLE models have none)
                px = Ks[s, 0, 0] * (Rs[s, 0, 0] * X0 + Rs[s, 0, 1] * X1 + Rs[s, 0, 2] * X2 + ts[s, 0]) / zs + Ks[s, 0, 2]
                py = Ks[s, 1, 1] * (Rs[s, 1, 0] * X0 + Rs[s, 1, 1] * X1 + Rs[s, 1, 2] * X2 + ts[s, 1]) / zs + Ks[s, 1, 2]
                # the source pixel it falls in: vid2model.camera.pixel_index
                c = int(np.floor(px))
                r = int(np.floor(py))
                if c < 0 or r < 0 or c >= Ws or r >= Hs:
                    continue
                ds = src_depths[s, r, c]
                if ds <= 0:
                    continue
                # the source's own point there, source camera -> world -> reference camera: Camera.unproject, project
                a0 = (px - Ks[s, 0, 2]) / Ks[s, 0, 0] * ds - ts[s, 0]
                a1 = (py - Ks[s, 1, 2]) / Ks[s, 1, 1] * ds - ts[s, 1]
                a2 = ds - ts[s, 2]
                Y0 = Rs[s, 0, 0] * a0 + Rs[s, 1, 0] * a1 + Rs[s, 2, 0] * a2
                Y1 = Rs[s, 0, 1] * a0 + Rs[s, 1, 1] * a1 + Rs[s, 2, 1] * a2
                Y2 = Rs[s, 0, 2] * a0 + Rs[s, 1, 2] * a1 + Rs[s, 2, 2] * a2
                zr = Rr[2, 0] * Y0 + Rr[2, 1] * Y1 + Rr[2, 2] * Y2 + tr[2]
                if zr <= 1e-9:
                    continue
                ur = Kr[0, 0] * (Rr[0, 0] * Y0 + Rr[0, 1] * Y1 + Rr[0, 2] * Y2 + tr[0]) / zr + Kr[0, 2]
                vr = Kr[1, 1] * (Rr[1, 0] * Y0 + Rr[1, 1] * Y1 + Rr[1, 2] * Y2 + tr[1]) / zr + Kr[1, 2]
                err = np.sqrt((ur - j - 0.5) ** 2 + (vr - v) ** 2)  # to the pixel centre (camera.pixel_grid)
                if err < max_px and abs(zr - z) < max_rel * z:
                    count[i, j] += 1
                    depth_sum[i, j] += zr
