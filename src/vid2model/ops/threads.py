"""Numpy work spread over Python threads without OpenBLAS's shared buffers.

OpenBLAS called from several Python threads at once, each call itself threaded, can return one thread's
product to another (numpy issues 11046, 29391, 31618; seen with (N, 3) x (3, 3) products of a frame's rays,
CPU-type dependent). A corrupted frame or depth map looks like any other, so every pool that runs numpy
holds BLAS at one thread per caller: the pool already fills the cores.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def ordered_map(fn: Callable[[int], T], n: int, workers: int) -> Iterator[T]:
    """Yield ``fn(0) ... fn(n - 1)`` in order, computed on ``workers`` threads with at most 2 x workers
    results waiting (memory stays bounded however many items there are)."""
    if workers <= 1 or n <= 1:
        yield from (fn(i) for i in range(n))
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as ex:
        queue: deque = deque()
        for i in range(n):
            queue.append(ex.submit(fn, i))
            if len(queue) >= 2 * workers:
                yield queue.popleft().result()
        while queue:
            yield queue.popleft().result()
