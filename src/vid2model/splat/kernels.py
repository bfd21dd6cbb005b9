"""Compiled CPU compositing kernels: C++/OpenMP built with g++ at first use (cached), numba otherwise.

The C++ library has a plain C ABI and is called through ctypes on numpy/torch buffers, so building it
takes seconds (no torch headers) and needs only a C++ compiler. The build lands in
``$VID2MODEL_CACHE`` (default ``~/.cache/vid2model``)/kernels, named by a hash of the source, flags and
CPU, and is written atomically so concurrent processes never load a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from vid2model.splat.kernel_src import SOURCE

log = logging.getLogger("vid2model")

# -ffast-math only when compiling: linking a shared library with it adds crtfastmath.o, which turns on
# flush-to-zero for the whole process (and broke scipy's cKDTree here).
_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp", "-fPIC", "-std=c++17"]
_LINK = ["-shared", "-fopenmp", "-fPIC"]
_lib: ctypes.CDLL | None = None
_tried = False

_p = ctypes.c_void_p
_i = ctypes.c_int
_SIGS = {
    "v2m_num_threads": ([], _i),
    "v2m_bin_count": ([_i, _p, _p, _p, _i, _i, _i, _p], ctypes.c_int64),
    "v2m_bin_fill": ([_i, _p, _p, _p, _i, _i, _i, _p, _p], None),
    "v2m_forward": ([_p, _p, _p, _p, _p, _i, _i, _i, _p, _p, _p, _p, _p, _p], None),
    "v2m_backward": ([_i, _p, _p, _p, _p, _p, _i, _i, _i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p], None),
}


def cache_dir() -> Path:
    root = os.environ.get("VID2MODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vid2model")
    return Path(root) / "kernels"


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _build(compiler: str) -> Path:
    key = hashlib.sha256((SOURCE + " ".join(_FLAGS + _LINK) + _cpu_id() + compiler).encode()).hexdigest()[:16]
    out = cache_dir() / f"splat_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / "splat.cpp"
        src.write_text(SOURCE, encoding="utf-8")
        obj, so = Path(tmp) / "splat.o", Path(tmp) / "splat.so"
        log.info("building the CPU splat kernels (once) ...")
        for cmd in ([compiler, *_FLAGS, "-c", str(src), "-o", str(obj)], [compiler, *_LINK, str(obj), "-o", str(so)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"compiling splat kernels failed: {res.stderr[-2000:]}")
        os.replace(so, out)
    return out


def load_cpp() -> ctypes.CDLL | None:
    """The compiled C++ kernel library, or None when no compiler works (then numba is used)."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("VID2MODEL_SPLAT_BACKEND", "").lower() == "numba":
        return None
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        log.warning("no C++ compiler found; splat training uses the slower numba kernels")
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (RuntimeError, OSError) as exc:
        log.warning("C++ splat kernels unavailable (%s); using numba", str(exc).splitlines()[0])
        return None
    for name, (args, res) in _SIGS.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _lib = lib
    return lib


def backend() -> str:
    """'cpp' or 'numba': which kernels the CPU rasteriser runs."""
    return "cpp" if load_cpp() is not None else "numba"


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


def bin_tiles(order: np.ndarray, means: np.ndarray, ext: np.ndarray, W: int, H: int, tile: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile lists of splat ids in front-to-back order.

    Args:
        order: (M,) int32 splat ids sorted near to far (only visible splats).
        means: (N, 2) float32 pixel positions; ext: (N, 2) float32 half extents (<= 0: culled).

    Returns:
        offsets (T+1,) int64 and ids (offsets[-1],) int32; tile t's splats are ids[offsets[t]:offsets[t+1]].
    """
    n_tiles = ((W + tile - 1) // tile) * ((H + tile - 1) // tile)
    counts = np.zeros(n_tiles, np.int32)
    lib = load_cpp()
    if lib is None:
        from vid2model.splat import kernels_numba as nb

        return nb.bin_tiles(order, means, ext, W, H, tile)
    total = lib.v2m_bin_count(len(order), _ptr(order), _ptr(means), _ptr(ext), W, H, tile, _ptr(counts))
    offsets = np.zeros(n_tiles + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    ids = np.empty(max(int(total), 1), np.int32)
    lib.v2m_bin_fill(len(order), _ptr(order), _ptr(means), _ptr(ext), W, H, tile, _ptr(offsets), _ptr(ids))
    return offsets, ids


def forward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids):
    """Composite. Returns img (H, W, 3), T_final (H, W), last (H, W) int32 (all numpy)."""
    lib = load_cpp()
    if lib is None:
        from vid2model.splat import kernels_numba as nb

        return nb.forward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids)
    img = np.empty((H, W, 3), np.float32)
    T = np.empty((H, W), np.float32)
    last = np.empty((H, W), np.int32)
    lib.v2m_forward(_ptr(means), _ptr(conics), _ptr(colors), _ptr(opac), _ptr(ext), W, H, tile, _ptr(bg), _ptr(offsets),
                    _ptr(ids), _ptr(img), _ptr(T), _ptr(last))
    return img, T, last


def backward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids, T, last, dimg):
    """Gradients: d_means (N, 2), d_conics (N, 3), d_colors (N, 3), d_opac (N,) (numpy float32)."""
    lib = load_cpp()
    if lib is None:
        from vid2model.splat import kernels_numba as nb

        return nb.backward(means, conics, colors, opac, ext, W, H, tile, bg, offsets, ids, T, last, dimg)
    n = means.shape[0]
    dm = np.empty((n, 2), np.float32)
    dc = np.empty((n, 3), np.float32)
    dcol = np.empty((n, 3), np.float32)
    do = np.empty(n, np.float32)
    lib.v2m_backward(n, _ptr(means), _ptr(conics), _ptr(colors), _ptr(opac), _ptr(ext), W, H, tile, _ptr(bg),
                     _ptr(offsets), _ptr(ids), _ptr(T), _ptr(last), _ptr(dimg), _ptr(dm), _ptr(dc), _ptr(dcol), _ptr(do))
    return dm, dc, dcol, do
