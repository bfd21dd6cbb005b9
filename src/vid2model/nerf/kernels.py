"""The compiled CPU kernels of the radiance field, built with g++ at first use the way the splat kernels
are (plain C ABI, ctypes, cached by a hash of source, flags and CPU, written atomically). Without a
compiler, training runs the torch renderer (:mod:`vid2model.nerf.render`), which CUDA uses anyway."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from vid2model.nerf.kernel_src import SOURCE

log = logging.getLogger("vid2model")

_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp", "-fPIC", "-std=c++17"]
_LINK = ["-shared", "-fopenmp", "-fPIC"]  # no -ffast-math here: see splat/kernels.py (crtfastmath)
_p, _i, _f, _l = ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_int64
_SIGS = {
    "nerf_num_threads": ([], _i),
    "nerf_forward": ([_i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p, _p], None),
    "nerf_backward": ([_i, _p, _p, _p, _p, _p, _p, _p, _p, _p, _l, _p, _p], None),
    "nerf_tv": ([_l, _p, _p, _p, _i, _i, _f, _f, _l, _l, _p, _p], None),
    "nerf_adam": ([_l, _i, _i, _p, _p, _p, _p, _p, _f, _f, _f, _f, _f, _f, _f], None),
}
_lib: ctypes.CDLL | None = None
_tried = False


def _cache_dir() -> Path:
    root = os.environ.get("VID2MODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vid2model")
    return Path(root) / "kernels"


def _build(compiler: str) -> Path:
    try:
        cpu = next((ln for ln in open("/proc/cpuinfo", encoding="utf-8") if ln.startswith("flags")), "")
    except OSError:
        cpu = ""
    key = hashlib.sha256((SOURCE + " ".join(_FLAGS + _LINK) + cpu + compiler).encode()).hexdigest()[:16]
    out = _cache_dir() / f"nerf_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src, obj, so = Path(tmp) / "nerf.cpp", Path(tmp) / "nerf.o", Path(tmp) / "nerf.so"
        src.write_text(SOURCE, encoding="utf-8")
        log.info("building the CPU radiance-field kernels (once) ...")
        for cmd in ([compiler, *_FLAGS, "-c", str(src), "-o", str(obj)], [compiler, *_LINK, str(obj), "-o", str(so)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"compiling radiance-field kernels failed: {res.stderr[-2000:]}")
        os.replace(so, out)
    return out


def load() -> ctypes.CDLL | None:
    """The kernel library, or None when no C++ compiler works (training then runs the torch renderer)."""
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    if os.environ.get("VID2MODEL_NERF_BACKEND", "").lower() == "torch":
        return None
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        log.warning("no C++ compiler found; the radiance field trains with the slower torch renderer")
        return None
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (RuntimeError, OSError) as exc:
        log.warning("C++ radiance-field kernels unavailable (%s); using torch", str(exc).splitlines()[0])
        return None
    for name, (args, res) in _SIGS.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    _lib = lib
    return lib


def ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous, "kernel buffers must be C-contiguous"
    return a.ctypes.data
