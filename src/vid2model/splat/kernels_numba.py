"""numba versions of the CPU compositing kernels (used when no C++ compiler is available).

Same algorithm and conventions as the C++ source in :mod:`vid2model.splat.kernel_src`; slower
(scalar inner loops), parallel over tiles.
"""

from __future__ import annotations

import math

import numba
import numpy as np

MIN_ALPHA = 1.0 / 255.0
MAX_ALPHA = 0.99
MIN_T = 1e-4


@numba.njit(cache=True, inline="always")
def _prange(m, e, size):
    if not e > 0.0:
        return 0, -1
    # pixels whose centre (vid2model.camera.pixel_grid: index + 0.5) lies in [m - e, m + e]
    a = math.ceil(m - e - 0.5)
    b = math.floor(m + e - 0.5)
    if b < 0 or a > size - 1 or a > b:
        return 0, -1
    return max(int(a), 0), min(int(b), size - 1)


@numba.njit(cache=True)
def _bin(order, means, ext, W, H, tile, offsets, ids, fill):
    tw = (W + tile - 1) // tile
    total = 0
    cur = offsets[:-1].copy()
    for i in range(order.shape[0]):
        g = order[i]
        x0, x1 = _prange(means[g, 0], ext[g, 0], W)
        y0, y1 = _prange(means[g, 1], ext[g, 1], H)
        if x1 < x0 or y1 < y0:
            continue
        for ty in range(y0 // tile, y1 // tile + 1):
            for tx in range(x0 // tile, x1 // tile + 1):
                t = ty * tw + tx
                if fill:
                    ids[cur[t]] = g
                    cur[t] += 1
                else:
                    offsets[t + 1] += 1
                total += 1
    return total


def bin_tiles(order, means, ext, W, H, tile):
    n_tiles = ((W + tile - 1) // tile) * ((H + tile - 1) // tile)
    offsets = np.zeros(n_tiles + 1, np.int64)
    dummy = np.zeros(1, np.int32)
    total = _bin(order, means, ext, W, H, tile, offsets, dummy, False)
    offsets = np.cumsum(offsets).astype(np.int64)
    ids = np.empty(max(total, 1), np.int32)
    _bin(order, means, ext, W, H, tile, offsets, ids, True)
    return offsets, ids


@numba.njit(parallel=True, cache=True, fastmath=True)
def _forward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids, img, Tout, last):
    tw = (W + tile - 1) // tile
    th = (H + tile - 1) // tile
    for t in numba.prange(tw * th):
        bx = (t % tw) * tile
        by = (t // tw) * tile
        for y in range(by, min(by + tile, H)):
            for x in range(bx, min(bx + tile, W)):
                px, py = x + 0.5, y + 0.5  # pixel centre: the rule of vid2model.camera.pixel_grid
                T = 1.0
                c0 = c1 = c2 = 0.0
                lst = -1
                for k in range(offsets[t], offsets[t + 1]):
                    g = ids[k]
                    dx, dy = px - means[g, 0], py - means[g, 1]
                    power = -0.5 * (conics[g, 0] * dx * dx + conics[g, 2] * dy * dy) - conics[g, 1] * dx * dy
                    if power > 0.0:
                        continue
                    alpha = min(MAX_ALPHA, opac[g] * math.exp(max(power, -30.0)))
                    if alpha < MIN_ALPHA:
                        continue
                    Tn = T * (1.0 - alpha)
                    if Tn < MIN_T:
                        break
                    w = alpha * T
                    c0 += w * colors[g, 0]
                    c1 += w * colors[g, 1]
                    c2 += w * colors[g, 2]
                    T = Tn
                    lst = k
                img[y, x, 0] = c0 + T * bg[0]
                img[y, x, 1] = c1 + T * bg[1]
                img[y, x, 2] = c2 + T * bg[2]
                Tout[y, x] = T
                last[y, x] = lst


def forward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids):
    img = np.empty((H, W, 3), np.float32)
    T = np.empty((H, W), np.float32)
    last = np.empty((H, W), np.int32)
    _forward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids, img, T, last)
    return img, T, last


@numba.njit(parallel=True, cache=True, fastmath=True)
def _backward(means, conics, colors, opac, W, H, tile, bg, offsets, ids, Tfin, last, dimg, buf):
    tw = (W + tile - 1) // tile
    th = (H + tile - 1) // tile
    for t in numba.prange(tw * th):
        acc = buf[numba.get_thread_id()]
        bx = (t % tw) * tile
        by = (t // tw) * tile
        for y in range(by, min(by + tile, H)):
            for x in range(bx, min(bx + tile, W)):
                px, py = x + 0.5, y + 0.5  # pixel centre: the rule of vid2model.camera.pixel_grid
                T = Tfin[y, x]
                d0, d1, d2 = dimg[y, x, 0], dimg[y, x, 1], dimg[y, x, 2]
                bgd = T * (bg[0] * d0 + bg[1] * d1 + bg[2] * d2)
                s0 = s1 = s2 = 0.0
                for k in range(last[y, x], offsets[t] - 1, -1):
                    g = ids[k]
                    A, B, C, o = conics[g, 0], conics[g, 1], conics[g, 2], opac[g]
                    dx, dy = px - means[g, 0], py - means[g, 1]
                    power = -0.5 * (A * dx * dx + C * dy * dy) - B * dx * dy
                    if power > 0.0:
                        continue
                    G = math.exp(max(power, -30.0))
                    araw = o * G
                    alpha = min(MAX_ALPHA, araw)
                    if alpha < MIN_ALPHA:
                        continue
                    om = 1.0 / (1.0 - alpha)
                    Tj = T * om
                    w = alpha * Tj
                    r, gg, b = colors[g, 0], colors[g, 1], colors[g, 2]
                    dal = (r * Tj - s0 * om) * d0 + (gg * Tj - s1 * om) * d1 + (b * Tj - s2 * om) * d2 - bgd * om
                    if araw >= MAX_ALPHA:
                        dal = 0.0
                    acc[g, 5] += w * d0
                    acc[g, 6] += w * d1
                    acc[g, 7] += w * d2
                    acc[g, 8] += G * dal
                    dp = G * o * dal
                    acc[g, 0] += dp * (A * dx + B * dy)
                    acc[g, 1] += dp * (C * dy + B * dx)
                    acc[g, 2] += dp * (-0.5 * dx * dx)
                    acc[g, 3] += dp * (-dx * dy)
                    acc[g, 4] += dp * (-0.5 * dy * dy)
                    s0 += w * r
                    s1 += w * gg
                    s2 += w * b
                    T = Tj


def backward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids, T, last, dimg):
    n = means.shape[0]
    buf = np.zeros((numba.get_num_threads(), n, 9), np.float32)
    _backward(means, conics, colors, opac, W, H, tile, bg, offsets, ids, T, last, dimg, buf)
    s = buf.sum(0)
    return (np.ascontiguousarray(s[:, 0:2]), np.ascontiguousarray(s[:, 2:5]), np.ascontiguousarray(s[:, 5:8]),
            np.ascontiguousarray(s[:, 8]))
