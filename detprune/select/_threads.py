"""Thread helpers for the CPU code paths (private).

OpenBLAS' own threads spin-wait between calls; on a busy or oversubscribed host
many small matrix products then become orders of magnitude slower. The CPU
kernels of the selection engine therefore run BLAS single-threaded (via
``threadpoolctl``, when installed) and parallelise over independent row blocks
with a small Python thread pool instead (NumPy releases the GIL in BLAS calls
and ufunc loops).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["Workers", "n_workers", "single_threaded_blas"]


def n_workers() -> int:
    """Number of CPU cores this process may use (at least 1, at most 16)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    return max(1, min(16, count))


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS libraries to one thread inside the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class Workers:
    """A small thread pool (context manager) that runs independent tasks.

    With one worker the tasks run inline, in order.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = n_workers() if workers is None else max(1, int(workers))
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Workers:
        if self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> list[Any]:
        """Call ``fn(*task)`` for every task; results in task order."""
        if self._pool is None or len(tasks) <= 1:
            return [fn(*t) for t in tasks]
        return list(self._pool.map(lambda t: fn(*t), tasks))
