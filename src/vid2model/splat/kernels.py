"""Compiled CPU compositing kernels: C++/OpenMP built with g++ at first use (cached), numba otherwise.

The C++ library has a plain C ABI and is called through ctypes on numpy/torch buffers, so building it
takes seconds (no torch headers) and needs only a C++ compiler. The build lands in
``$VID2MODEL_CACHE`` (default ``~/.cache/vid2model``)/kernels, named by a hash of the source, flags and
CPU, and is written atomically so concurrent processes never load a half-written library.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from vid2model.splat.kernel_src import SOURCE

_p = ctypes.c_void_p
_i = ctypes.c_int
_SIGS = {
    "v2m_num_threads": ([], _i),
    "v2m_project_fwd": ([_i, _p, _p, _p, _p, _p, _p, _i, _i, _p, _p, _p, _p, _p, _p, _p, _p], None),
    "v2m_project_bwd": ([_i, _p, _p, _p, _p, _p, _i, _i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p], None),
    "v2m_sort_visible": ([_i, _p, _p, _p], _i),
    "v2m_pack": ([_i, _p, _p, _p, _p, _p, _p, _p], None),
    "v2m_bin_count_p": ([_i, _p, _i, _i, _i, _i, _p], ctypes.c_int64),
    "v2m_bin_fill_p": ([_i, _p, _i, _i, _i, _i, _p, _p], None),
    "v2m_forward_p": ([_p, _i, _i, _i, _p, _p, _p, _p, _p, _p], None),
    "v2m_backward_p": ([_i, _p, _i, _i, _i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p], None),
    "v2m_ssim": ([_i, _i, _i, _p, _p, _p, _i, ctypes.c_float, ctypes.c_float, _p], ctypes.c_double),
}


def load_cpp() -> ctypes.CDLL | None:
    """The compiled C++ kernel library, or None when no compiler works (then numba is used)."""
    if os.environ.get("VID2MODEL_SPLAT_BACKEND", "").lower() == "numba":
        return None
    from vid2model.ops.native import load_kernels

    return load_kernels("splat", SOURCE, _SIGS, "CPU splat kernels",
                        "splat training uses the slower numba kernels")


def backend() -> str:
    """'cpp' or 'numba': which kernels the CPU rasteriser runs."""
    return "cpp" if load_cpp() is not None else "numba"


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


def sort_visible(depths: np.ndarray, ext: np.ndarray) -> np.ndarray:
    """int32 ids of the visible splats (ext[:, 0] > 0), stably sorted near to far by depth."""
    lib = load_cpp()
    if lib is None:
        vis = np.nonzero(ext[:, 0] > 0)[0]
        return np.ascontiguousarray(vis[np.argsort(depths[vis], kind="stable")].astype(np.int32))
    order = np.empty(max(len(depths), 1), np.int32)
    m = lib.v2m_sort_visible(len(depths), _ptr(depths), _ptr(ext), _ptr(order))
    return order[:m]


def project_forward(means, quats, scales, opac, sh0, shN, deg, viewmat, cam, campos):
    """Fused projection + SH colour (C++ only). All inputs float32 C-contiguous numpy; ``cam`` is
    (fx, fy, cx, cy, near, lowpass, width, height). Returns means2d (N, 2), conics (N, 3), colors (N, 3),
    depths (N,), ext (N, 2)."""
    lib = load_cpp()
    n = means.shape[0]
    m2 = np.empty((n, 2), np.float32)
    cn = np.empty((n, 3), np.float32)
    col = np.empty((n, 3), np.float32)
    d = np.empty(n, np.float32)
    ex = np.empty((n, 2), np.float32)
    lib.v2m_project_fwd(n, _ptr(means), _ptr(quats), _ptr(scales), _ptr(opac), _ptr(sh0), _ptr(shN), shN.shape[1],
                        deg, _ptr(viewmat), _ptr(cam), _ptr(campos), _ptr(m2), _ptr(cn), _ptr(col), _ptr(d), _ptr(ex))
    return m2, cn, col, d, ex


def project_backward(means, quats, scales, sh0, shN, deg, viewmat, cam, campos, dm2, dcn, dcol):
    """Gradients of :func:`project_forward` w.r.t. means, quats, scales, sh0, shN (numpy float32)."""
    lib = load_cpp()
    n = means.shape[0]
    dm = np.empty((n, 3), np.float32)
    dq = np.empty((n, 4), np.float32)
    ds = np.empty((n, 3), np.float32)
    d0 = np.empty((n, 1, 3), np.float32)
    dN = np.empty(shN.shape, np.float32)
    lib.v2m_project_bwd(n, _ptr(means), _ptr(quats), _ptr(scales), _ptr(sh0), _ptr(shN), shN.shape[1], deg,
                        _ptr(viewmat), _ptr(cam), _ptr(campos), _ptr(dm2), _ptr(dcn), _ptr(dcol), _ptr(dm), _ptr(dq),
                        _ptr(ds), _ptr(d0), _ptr(dN))
    return dm, dq, ds, d0, dN


def composite_forward(order, means, conics, colors, opac, ext, W, H, tile, bg):
    """Bin, then composite the splats ``order`` (visible ids, near to far).

    Returns img (H, W, 3), T_final (H, W) and an opaque state for :func:`composite_backward`. The C++
    path first packs the splats in depth order (one cache line each); numba uses the plain arrays.
    """
    lib = load_cpp()
    if lib is None:
        from vid2model.splat import kernels_numba as nb

        offsets, ids = nb.bin_tiles(order, means, ext, W, H, tile)
        img, T, last = nb.forward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids)
        return img, T, ("plain", means, conics, colors, opac, ext, offsets, ids, T, last)
    m = len(order)
    packed = np.empty((max(m, 1), 16), np.float32)
    lib.v2m_pack(m, _ptr(order), _ptr(means), _ptr(conics), _ptr(colors), _ptr(opac), _ptr(ext), _ptr(packed))
    n_tiles = ((W + tile - 1) // tile) * ((H + tile - 1) // tile)
    runs = max(1, min(lib.v2m_num_threads(), m // 4096))  # binned in parallel runs of the depth order
    counts = np.zeros((runs, n_tiles), np.int32)
    total = lib.v2m_bin_count_p(m, _ptr(packed), W, H, tile, runs, _ptr(counts))
    offsets = np.zeros(n_tiles + 1, np.int64)
    np.cumsum(counts.sum(0), out=offsets[1:])
    starts = np.ascontiguousarray(offsets[:-1] + np.cumsum(counts, 0) - counts)  # (runs, tiles)
    ids = np.empty(max(int(total), 1), np.int32)
    lib.v2m_bin_fill_p(m, _ptr(packed), W, H, tile, runs, _ptr(starts), _ptr(ids))
    img = np.empty((H, W, 3), np.float32)
    T = np.empty((H, W), np.float32)
    last = np.empty((H, W), np.int32)
    lib.v2m_forward_p(_ptr(packed), W, H, tile, _ptr(bg), _ptr(offsets), _ptr(ids), _ptr(img), _ptr(T), _ptr(last))
    return img, T, ("packed", order, packed, means.shape[0], offsets, ids, T, last)


def composite_backward(state, W, H, tile, bg, dimg):
    """Gradients d_means (N, 2), d_conics (N, 3), d_colors (N, 3), d_opac (N,) of :func:`composite_forward`."""
    if state[0] == "plain":
        from vid2model.splat import kernels_numba as nb

        _, means, conics, colors, opac, ext, offsets, ids, T, last = state
        return nb.backward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids, T, last, dimg)
    _, order, packed, n, offsets, ids, T, last = state
    dm = np.zeros((n, 2), np.float32)
    dc = np.zeros((n, 3), np.float32)
    dcol = np.zeros((n, 3), np.float32)
    do = np.zeros(n, np.float32)
    load_cpp().v2m_backward_p(len(order), _ptr(packed), W, H, tile, _ptr(bg), _ptr(offsets), _ptr(ids), _ptr(T),
                              _ptr(last), _ptr(dimg), _ptr(order), _ptr(dm), _ptr(dc), _ptr(dcol), _ptr(do))
    return dm, dc, dcol, do


def ssim(img: np.ndarray, ref: np.ndarray, win: np.ndarray, c1: float, c2: float,
         with_grad: bool) -> tuple[float, np.ndarray | None] | None:
    """Mean SSIM of ``img`` against ``ref`` (H, W, C) float32 with the separable window ``win`` (odd taps)
    over the valid region, and its gradient (H, W, C) with respect to ``img``; None without the C++ library."""
    lib = load_cpp()
    if lib is None:
        return None
    H, W, C = img.shape
    grad = np.empty_like(img) if with_grad else None
    val = lib.v2m_ssim(H, W, C, _ptr(img), _ptr(ref), _ptr(win), len(win) // 2, c1, c2,
                       _ptr(grad) if grad is not None else None)
    return float(val), grad
