"""Native code: our compiled CPU kernels (C++ built with the system compiler at first use, cached), and
native libraries' own chatter (Poisson's warnings, written straight to the process's stderr) kept out of the
user's terminal unless debugging."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("vid2model")

# -ffast-math only when compiling: linking a shared library with it adds crtfastmath.o, which turns on
# flush-to-zero for the whole process (and broke scipy's cKDTree here).
_FLAGS = ["-O3", "-ffast-math", "-march=native", "-fopenmp", "-fPIC", "-std=c++17"]
_LINK = ["-shared", "-fopenmp", "-fPIC"]


def kernel_cache() -> Path:
    """Where built kernels are kept: ``$VID2MODEL_CACHE`` (default ``~/.cache/vid2model``)/kernels."""
    root = os.environ.get("VID2MODEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vid2model")
    return Path(root) / "kernels"


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _build(name: str, source: str, compiler: str, what: str) -> Path:
    """The shared library of C++ ``source``, named by a hash of the source, flags, CPU and compiler, and
    written atomically so that concurrent processes never load a half-written one."""
    key = hashlib.sha256((source + " ".join(_FLAGS + _LINK) + _cpu_id() + compiler).encode()).hexdigest()[:16]
    out = kernel_cache() / f"{name}_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src, obj, so = Path(tmp) / f"{name}.cpp", Path(tmp) / f"{name}.o", Path(tmp) / f"{name}.so"
        src.write_text(source, encoding="utf-8")
        log.info("building the %s (once) ...", what)
        for cmd in ([compiler, *_FLAGS, "-c", str(src), "-o", str(obj)], [compiler, *_LINK, str(obj), "-o", str(so)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"compiling the {what} failed: {res.stderr[-2000:]}")
        os.replace(so, out)
    return out


_loaded: dict[str, ctypes.CDLL | None] = {}


def load_kernels(name: str, source: str, signatures: dict, what: str, fallback: str) -> ctypes.CDLL | None:
    """The compiled library of ``source`` with ``signatures`` ({function: (argtypes, restype)}) set, or None
    (with a warning naming ``fallback``, what runs instead) when no C++ compiler works; built and loaded once
    per process."""
    if name not in _loaded:
        _loaded[name] = _load(name, source, signatures, what, fallback)
    return _loaded[name]


def _load(name: str, source: str, signatures: dict, what: str, fallback: str) -> ctypes.CDLL | None:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        log.warning("no C++ compiler found; %s", fallback)
        return None
    try:
        lib = ctypes.CDLL(str(_build(name, source, compiler, what)))
    except (RuntimeError, OSError) as exc:
        log.warning("%s unavailable (%s); %s", what, str(exc).splitlines()[0], fallback)
        return None
    for fn_name, (args, res) in signatures.items():
        fn = getattr(lib, fn_name)
        fn.argtypes, fn.restype = args, res
    return lib


def _showing_debug() -> bool:
    """Whether debug lines reach the terminal: the CLI's logger takes every level for the workspace's log
    file, so its console handler's level decides, not the logger's."""
    logger = logging.getLogger("vid2model")
    consoles = [h for h in logger.handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    if consoles:
        return any(h.level <= logging.DEBUG for h in consoles)
    return logger.isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null for the block (not with ``-vv``): C++ code writes there directly,
    past Python's ``sys.stderr``."""
    if _showing_debug():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
