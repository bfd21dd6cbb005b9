"""The compiled CPU kernels of the radiance field, built with g++ at first use the way the splat kernels
are (plain C ABI, ctypes, cached by a hash of source, flags and CPU, written atomically). Without a
compiler, training runs the torch renderer (:mod:`vid2model.nerf.render`), which CUDA uses anyway."""

from __future__ import annotations

import ctypes
import os

import numpy as np

from vid2model.nerf.kernel_src import SOURCE

_p, _i, _f, _l = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_int64
_SIGS = {
    "nerf_num_threads": ([], _i),
    "nerf_forward": ([_i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p], None),
    "nerf_backward": ([_i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _f, _f, _l, _p, _p], None),
    "nerf_tv": ([_l, _p, _p, _p, _i, _i, _f, _f, _l, _l, _p, _p], None),
    "nerf_adam": ([_l, _i, _i, _p, _p, _p, _p, _p, _f, _f, _f, _f, _f, _f, _f], None),
}


def load() -> ctypes.CDLL | None:
    """The kernel library, or None when no C++ compiler works (training then runs the torch renderer)."""
    if os.environ.get("VID2MODEL_NERF_BACKEND", "").lower() == "torch":
        return None
    from vid2model.ops.native import load_kernels

    return load_kernels("nerf", SOURCE, _SIGS, "CPU radiance-field kernels",
                        "the radiance field trains with the slower torch renderer")


def ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous, "kernel buffers must be C-contiguous"
    return a.ctypes.data
