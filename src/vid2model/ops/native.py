"""Native libraries' own chatter (Poisson's warnings, written straight to the process's stderr) kept out of
the user's terminal unless debugging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null for the block (not with ``-vv``): C++ code writes there directly,
    past Python's ``sys.stderr``."""
    if logging.getLogger("vid2model").isEnabledFor(logging.DEBUG):
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
