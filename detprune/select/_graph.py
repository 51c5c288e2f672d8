"""A symmetric Gaussian-kernel k-NN graph in CSR form (private; FL and PRD).

Built from one exact FAISS k-NN search; no n x n matrix. Self-similarities
(1.0) are on the diagonal.
"""

from __future__ import annotations

import numpy as np

from . import _knn

__all__ = ["KernelGraph", "kernel_graph", "median_pairwise_distance"]


def median_pairwise_distance(X: np.ndarray, seed: int, sample: int = 1000) -> float:
    """Median Euclidean distance between distinct rows of a seeded sample of ``X``.

    Returns 1.0 when every sampled pair is at distance 0 (all rows equal).
    """
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    S = np.asarray(X[rows], dtype=np.float64)
    sq = (S**2).sum(axis=1)
    D2 = np.maximum(sq[:, None] - 2.0 * S @ S.T + sq[None, :], 0.0)
    iu = np.triu_indices(S.shape[0], 1)
    d = np.sqrt(D2[iu])
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


class KernelGraph:
    """CSR adjacency of a symmetric similarity graph.

    Attributes
    ----------
    indptr : ndarray of int64, shape (n + 1,)
    indices : ndarray of int64
        Row ``i``'s neighbours are ``indices[indptr[i]:indptr[i + 1]]``.
    data : ndarray of float64
        Their similarities in ``(0, 1]``, sorted descending within each row.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        self.indptr = indptr
        self.indices = indices
        self.data = data

    @property
    def n(self) -> int:
        return int(self.indptr.size - 1)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours and similarities of row ``i``."""
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.data[a:b]

    def row_sums(self) -> np.ndarray:
        """Sum of each row's similarities (including the diagonal)."""
        return np.add.reduceat(self.data, self.indptr[:-1]) if self.data.size else np.zeros(self.n)


def kernel_graph(
    X: np.ndarray, k: int, sigma: float | None, seed: int = 0, scale: float = 1.0
) -> tuple[KernelGraph, float]:
    """Symmetrised Gaussian k-NN graph: ``s_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``.

    An edge exists when ``j`` is among the ``k`` nearest neighbours of ``i`` or the
    reverse (the union); the self-loop has similarity 1. With ``k >= n - 1`` the
    graph is the full (dense) kernel. ``sigma=None``: ``scale`` times the median
    distance of an image to its ``k``-th neighbour (falling back to the median pairwise distance
    of a seeded sample when that is 0). Returns the graph and the ``sigma`` used.
    """
    n = X.shape[0]
    kk = min(n, int(k) + 1)
    dist, idx = _knn.knn(X, X, kk)
    if sigma is None:
        kth = dist[:, -1].astype(np.float64)
        kth = kth[kth > 0]
        sigma = scale * (float(np.median(kth)) if kth.size else median_pairwise_distance(X, seed))
    rows = np.repeat(np.arange(n, dtype=np.int64), kk)
    cols = idx.reshape(-1)
    d = dist.reshape(-1).astype(np.float64)
    valid = cols >= 0
    rows, cols, d = rows[valid], cols[valid], d[valid]
    # union with the transpose, self-loops forced, duplicates removed
    r = np.concatenate([rows, cols, np.arange(n)])
    c = np.concatenate([cols, rows, np.arange(n)])
    dd = np.concatenate([d, d, np.zeros(n)])
    key = r * n + c
    key_u, first = np.unique(key, return_index=True)
    r, c, dd = r[first], c[first], dd[first]
    dd[r == c] = 0.0
    sim = np.exp(-(dd**2) / (2.0 * sigma**2))
    # order rows, then similarity descending, then column
    order = np.lexsort((c, -sim, r))
    r, c, sim = r[order], c[order], sim[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    del key_u
    return KernelGraph(indptr, c.astype(np.int64), sim), float(sigma)
