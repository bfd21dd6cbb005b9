"""Stops are clean: SIGTERM is handled like Ctrl-C, and nothing else's signal handler gets in first.

A service manager, a container or ``timeout`` stops a run with SIGTERM. The running stage is left at
its last atomic write (the runner marks it ``interrupted``), the CLI prints the one resume line and
exits 143. pycolmap installs glog's failure handler for SIGTERM when it is imported, which prints a
native stack dump and aborts; it is imported here first so that our handler replaces it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_stop_signal: int | None = None
_default_unraisable = sys.unraisablehook


def stop_requested() -> int | None:
    """The signal number that asked this process to stop, if one did."""
    return _stop_signal


def acknowledge_stop() -> None:
    """For commands whose normal end is a stop signal (the viewer): the stop was handled, not an interruption."""
    global _stop_signal
    _stop_signal = None


def _on_stop(signum: int, frame: Any) -> None:
    global _stop_signal
    if _stop_signal is not None:  # asked again while stopping: stop now (the stage is already marked)
        os._exit(128 + signum)
    _stop_signal = signum
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _on_unraisable(args: Any) -> None:
    """A stop that lands while native code has called back into Python (numba's compiler does, through
    ctypes) cannot unwind through the native frames: Python would print it as "Exception ignored" with a
    traceback and let the run go on. It is raised again a moment later, and again until it lands where
    Python runs on its own."""
    if _stop_signal is not None and isinstance(args.exc_value, KeyboardInterrupt):
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return
    _default_unraisable(args)


def _again(signum: int, frame: Any) -> None:
    if _stop_signal is not None:
        raise KeyboardInterrupt(signal.Signals(_stop_signal).name)


def install_stop_handlers() -> None:
    """Route SIGTERM and SIGINT to a KeyboardInterrupt in the main thread (call from the main thread)."""
    global _stop_signal
    _stop_signal = None
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        import pycolmap  # noqa: F401  (see the module docstring)
    except ImportError:
        pass
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_stop)
    signal.signal(signal.SIGALRM, _again)
    sys.unraisablehook = _on_unraisable


def interruptible_all(calls: list[Callable[[], T]]) -> list[T]:
    """Each of ``calls`` on its own worker thread at once (native work that releases the GIL: independent
    bundle adjustments), their results in order; a stop is acted on at once as in :func:`interruptible`. The
    workers hold BLAS at one thread each (see :mod:`vid2model.ops.threads`)."""
    from threadpoolctl import threadpool_limits

    if len(calls) <= 1:
        return [interruptible(c) for c in calls]
    with threadpool_limits(1, user_api="blas"):
        return _on_workers(calls)


def interruptible(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with a stop acted on at once.

    Python runs a signal's handler only when the main thread is back in Python, so a stop during one long
    native call (a mapper run takes minutes on a long video) waited for it to end, and so did a second stop.
    The call runs on a worker thread (the native code releases the GIL) while the main thread waits where a
    handler can run; a stop leaves the worker's results unused, and the process ends with it."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args, **kwargs)
    return _on_workers([lambda: fn(*args, **kwargs)])[0]


def _on_workers(calls: list[Callable[[], T]]) -> list[T]:
    """Each of ``calls`` on a daemon thread of its own, waited for in short joins (where a signal's handler can
    run); their results in order, or the first one's error raised as it is."""
    out: list[dict[str, Any]] = [{} for _ in calls]

    def work(k: int) -> None:
        try:
            out[k]["value"] = calls[k]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as it is
            out[k]["error"] = exc

    workers = [threading.Thread(target=work, args=(k,), name="vid2model-native", daemon=True)
               for k in range(len(calls))]
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(0.2)
    for o in out:
        if "error" in o:
            raise o["error"]
    return [o["value"] for o in out]
