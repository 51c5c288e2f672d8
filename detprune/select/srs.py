"""SRS: simple random sampling without replacement (the baseline)."""

from __future__ import annotations

import numpy as np

from .base import Reducer

__all__ = ["SRS"]


class SRS(Reducer):
    """Uniform random sampling without replacement.

    Every row gets an independent uniform draw ``u ~ U[0, 1)`` from
    ``np.random.default_rng(seed)``; the ``budget`` rows with the smallest draws
    are kept, in increasing order of their draw (so any prefix of the pick order
    is itself a uniform sample).

    Scores
    ------
    The random draw of each pick (increasing along the pick order).
    """

    name = "srs"
    description = "Simple random sampling without replacement (baseline)."
    _constraints = {}  # noqa: RUF012 - no parameters
    randomized = True

    def __init__(self) -> None:
        pass

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        u = np.random.default_rng(seed).random(n)
        if budget < n:
            part = np.argpartition(u, budget - 1)[:budget]
        else:
            part = np.arange(n)
        order = part[np.lexsort((part, u[part]))]
        return order.astype(np.int64), u[order], {}
