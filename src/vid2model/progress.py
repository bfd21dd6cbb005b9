"""Progress bars with ETA (rich), silenced by ``--quiet`` or when output is not a terminal log."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_quiet = False
log = logging.getLogger("vid2model")


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def _make_progress():
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=Console(file=sys.stderr), transient=False)


class Bar:
    """A progress bar handle: ``advance(n)`` and ``info(text)`` (e.g. the current PSNR)."""

    def __init__(self, progress, task_id):
        self._p, self._t = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._p is not None:
            self._p.advance(self._t, n)

    def info(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._t, info=text)

    def total(self, total: float) -> None:
        if self._p is not None:
            self._p.update(self._t, total=total)


@contextlib.contextmanager
def bar(desc: str, total: float | None = None) -> Iterator[Bar]:
    """Context manager yielding a :class:`Bar`; no output when quiet."""
    log.info("%s ...", desc)
    if _quiet:
        yield Bar(None, None)
        return
    with _make_progress() as p:
        yield Bar(p, p.add_task(desc, total=total, info=""))


def track(it: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar."""
    if total is None and hasattr(it, "__len__"):
        total = len(it)  # type: ignore[arg-type]
    with bar(desc, total) as b:
        for x in it:
            yield x
            b.advance()
