"""RKMEANS: representative k-means -- equal shares of the images nearest each cluster centre."""

from __future__ import annotations

import math

import numpy as np

from .._validation import Interval, IsNone
from . import _knn
from .base import Reducer

__all__ = ["RKMeans", "equal_shares"]


def equal_shares(total: int, caps: np.ndarray) -> np.ndarray:
    """Split ``total`` as evenly as possible over bins with capacities ``caps``.

    Water-filling: every bin gets the same level ``L`` (or its capacity if smaller),
    with ``L`` as high as the total allows; the remaining units go one each to
    bins with room, larger bins first, then lower index. ``total`` must not exceed
    ``caps.sum()``.

    Returns
    -------
    ndarray of int64, shape like ``caps``; sums to ``total``.
    """
    caps = np.asarray(caps, dtype=np.int64)
    total = int(total)
    # the highest common level L with sum(min(caps, L)) <= total
    lo, hi = 0, int(caps.max(initial=0))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.minimum(caps, mid).sum()) <= total:
            lo = mid
        else:
            hi = mid - 1
    out = np.minimum(caps, lo)
    left = total - int(out.sum())
    room = np.flatnonzero(caps > lo)
    order = room[np.lexsort((room, -caps[room]))]
    out[order[:left]] += 1
    return out


class RKMeans(Reducer):
    """Representative k-means: k-means on the stratum, then the images nearest each centre.

    Each cluster keeps an equal share of the budget (largest remainder for the
    rest, capped by the cluster's size, leftovers redistributed): its images
    nearest the centre.

    Parameters
    ----------
    n_clusters : int or None, default None
        Number of clusters; ``None`` uses ``round(sqrt(budget))`` (about as many
        clusters as images per cluster). Capped at ``budget``.
    niter : int, default 20
        Lloyd iterations.

    Scores
    ------
    Euclidean distance from the image to its cluster centre.

    Pick order
    ----------
    Round robin by rank within the cluster: every cluster's nearest image first
    (clusters by size, largest first, ties by index), then every cluster's
    second-nearest, and so on.
    """

    name = "rkmeans"
    description = "Representative k-means: equal shares of the images nearest each cluster centre."
    _constraints = {  # noqa: RUF012
        "n_clusters": [Interval("int", 1, None), IsNone()],
        "niter": Interval("int", 1, 100_000),
    }
    randomized = True

    def __init__(self, *, n_clusters: int | None = None, niter: int = 20) -> None:
        self.n_clusters = n_clusters
        self.niter = niter

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        k = self.n_clusters if self.n_clusters is not None else round(math.sqrt(budget))
        k = int(max(1, min(k, budget, n)))
        cent = _knn.kmeans(X, k, seed=seed, niter=self.niter)
        dist, lab = _knn.assign(X, cent)
        size = np.bincount(lab, minlength=k)
        share = equal_shares(budget, size)
        rows, ranks, clus, dists = [], [], [], []
        for c in range(k):
            if share[c] == 0:
                continue
            members = np.flatnonzero(lab == c)
            order = members[np.lexsort((members, dist[members]))][: share[c]]
            rows.append(order)
            ranks.append(np.arange(order.size))
            clus.append(np.full(order.size, c))
            dists.append(dist[order].astype(np.float64))
        r = np.concatenate(rows)
        cl = np.concatenate(clus)
        pos = np.lexsort((cl, -size[cl], np.concatenate(ranks)))
        return r[pos].astype(np.int64), np.concatenate(dists)[pos], {"n_clusters": k}
