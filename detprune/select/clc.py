"""CLC: clustering centroids -- k-means with k = budget, the real image nearest each centroid."""

from __future__ import annotations

import numpy as np

from .._validation import Interval
from . import _knn
from .base import Reducer

__all__ = ["CLC", "nearest_unique"]


def nearest_unique(
    X: np.ndarray, centroids: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Assign each centroid a distinct row of ``X``: its nearest row not yet taken.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    centroids : ndarray, shape (k, d), ``k <= n``
    order : ndarray of int, shape (k,)
        Centroids are served in this order (earlier ones win collisions).

    Returns
    -------
    rows : ndarray of int64, shape (k,)
        ``rows[i]`` is the row given to centroid ``order[i]``.
    dist : ndarray of float64, shape (k,)
        Euclidean distance between that row and its centroid.
    """
    n = X.shape[0]
    k = centroids.shape[0]
    order = np.asarray(order, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    rows = np.full(k, -1, dtype=np.int64)
    dist = np.zeros(k, dtype=np.float64)
    width = min(n, 8)
    pending = np.arange(k)  # positions in ``order`` still without a row
    while pending.size:
        dd, ii = _knn.knn(X, centroids[order[pending]], width)
        still = []
        for t, pos in enumerate(pending):
            for dv, iv in zip(dd[t], ii[t], strict=True):
                if not taken[iv]:
                    taken[iv] = True
                    rows[pos] = iv
                    dist[pos] = float(dv)
                    break
            else:
                still.append(pos)
        pending = np.asarray(still, dtype=np.int64)
        # with width == n every pending centroid sees all rows, and k <= n: all resolve
        width = min(n, width * 4)
    return rows, dist


class CLC(Reducer):
    """Clustering centroids: FAISS k-means with ``k = budget``, keep the image nearest each centroid.

    Each centroid, in pick order, takes its nearest image not already taken by an
    earlier centroid (collisions go to the next-nearest unused image). With
    ``budget == n`` every image is kept in index order (k-means with k = n is the
    identity).

    Parameters
    ----------
    niter : int, default 20
        Lloyd iterations.

    Scores
    ------
    Euclidean distance from the kept image to its centroid.

    Pick order
    ----------
    By cluster size (images assigned to the centroid), largest first; ties by
    centroid index.
    """

    name = "clc"
    description = "Clustering centroids: k-means (k = budget), keep the image nearest each centre."
    _constraints = {"niter": Interval("int", 1, 100_000)}  # noqa: RUF012
    randomized = True

    def __init__(self, *, niter: int = 20) -> None:
        self.niter = niter

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        if budget == n:
            return np.arange(n, dtype=np.int64), np.zeros(n), {}
        cent = _knn.kmeans(X, budget, seed=seed, niter=self.niter)
        _, lab = _knn.assign(X, cent)
        size = np.bincount(lab, minlength=budget)
        order = np.lexsort((np.arange(budget), -size))
        rows, dist = nearest_unique(X, cent, order)
        return rows, dist, {}
