"""PHL: persistent-homology landmarks -- local Vietoris-Rips persistence as an outlier score."""

from __future__ import annotations

import numpy as np

from .._optional import require
from .._validation import Interval, Options
from . import _knn
from ._threads import Workers
from .base import Reducer

__all__ = ["PHL", "local_persistence"]

_CHUNK = 512


def _pairwise(P: np.ndarray) -> np.ndarray:
    """Batched Euclidean distance matrices: (B, m, d) -> (B, m, m), float64."""
    P = P.astype(np.float64)
    sq = np.einsum("bij,bij->bi", P, P)
    G = np.einsum("bid,bjd->bij", P, P)
    D2 = np.maximum(sq[:, :, None] - 2.0 * G + sq[:, None, :], 0.0)
    D = np.sqrt(D2)
    idx = np.arange(P.shape[1])
    D[:, idx, idx] = 0.0
    return D


def mst_max_edge(D: np.ndarray) -> np.ndarray:
    """Longest edge of the minimum spanning tree of each point cloud (batched Prim).

    This is the largest finite death time of the dimension-0 Vietoris-Rips
    persistence diagram (births are 0).

    Parameters
    ----------
    D : ndarray, shape (B, m, m)
        Distance matrices.

    Returns
    -------
    ndarray of float64, shape (B,)
    """
    B, m, _ = D.shape
    if m < 2:
        return np.zeros(B)
    rows = np.arange(B)
    in_tree = np.zeros((B, m), dtype=bool)
    in_tree[:, 0] = True
    best = D[:, 0, :].copy()
    best[:, 0] = np.inf
    longest = np.zeros(B)
    for _ in range(m - 1):
        j = np.argmin(best, axis=1)
        e = best[rows, j]
        np.maximum(longest, e, out=longest)
        in_tree[rows, j] = True
        best = np.minimum(best, D[rows, j, :])
        best[in_tree] = np.inf
    return longest


def _h1_max(ripser_fn, Ds: np.ndarray) -> np.ndarray:
    """Largest dimension-1 persistence of each distance matrix (ripser, maxdim=1)."""
    out = np.zeros(Ds.shape[0])
    for b in range(Ds.shape[0]):
        dgm = ripser_fn(Ds[b], maxdim=1, distance_matrix=True)["dgms"][1]
        if dgm.size:
            pers = dgm[:, 1] - dgm[:, 0]
            pers = pers[np.isfinite(pers)]
            if pers.size:
                out[b] = float(pers.max())
    return out


def local_persistence(
    X: np.ndarray, k: int, maxdim: int = 1, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Largest persistence (dims ``0..maxdim``) of each image's k-NN Vietoris-Rips complex.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    k : int
        Neighbours per image; the point cloud is the image and its ``k`` nearest
        neighbours (capped at ``n - 1``).
    maxdim : {0, 1}
        0: only the dimension-0 diagram (from the MST, no ripser); 1: also
        dimension 1 (ripser on the ``k + 1`` points).
    workers : int, optional
        Threads for the per-chunk work (default: the usable cores).

    Returns
    -------
    score : ndarray of float64, shape (n,)
        The largest finite persistence (0 where undefined).
    valid : ndarray of bool, shape (n,)
        False where the image has fewer than 2 distinct neighbours.
    """
    n = X.shape[0]
    kk = min(n, int(k) + 1)
    if kk < 3:
        return np.zeros(n), np.zeros(n, dtype=bool)
    dist, idx = _knn.knn(X, X, kk)
    # the image itself first (a duplicate may come back first from FAISS)
    self_pos = idx == np.arange(n)[:, None]
    has_self = self_pos.any(axis=1)
    pos = np.where(has_self, self_pos.argmax(axis=1), kk - 1)
    idx[np.arange(n), pos] = idx[:, 0]
    idx[:, 0] = np.arange(n)
    valid = (dist > 0).sum(axis=1) >= 2
    ripser_fn = require("ripser", purpose="PHL").ripser if maxdim >= 1 else None
    chunks = [(s, min(n, s + _CHUNK)) for s in range(0, n, _CHUNK)]
    score = np.zeros(n)

    def work(a: int, b: int) -> None:
        D = _pairwise(X[idx[a:b]])
        s0 = mst_max_edge(D)
        if ripser_fn is not None:
            s0 = np.maximum(s0, _h1_max(ripser_fn, D))
        score[a:b] = s0

    with Workers(workers) as pool:
        pool.run(work, chunks)
    score[~valid] = 0.0
    return score, valid


class PHL(Reducer):
    """Persistent-homology landmarks: rank images by the persistence of their neighbourhood.

    Each image's outlier score is the largest persistence (homology dimensions
    0 and 1) of the Vietoris-Rips diagram of the point cloud made of the image
    and its ``k`` nearest neighbours (exact FAISS k-NN). An isolated image joins
    its neighbourhood late, so its dimension-0 bar is long; an image in a dense,
    regular region has only short bars. The idea follows the witness/landmark
    view of topological data analysis (de Silva and Carlsson, 2004) and
    persistence-based outlier scores (e.g. Stolz et al., 2020, "Geometric anomaly
    detection in data"). Dimension 0 is computed from the minimum spanning tree of
    the neighbourhood (batched Prim, no ripser); dimension 1 by ``ripser``
    (``pip install "detprune[topology]"``) on the ``k + 1`` points.

    Parameters
    ----------
    k : int >= 2, default 16
        Neighbours per image.
    mode : {"representative", "vital"}, default "representative"
        ``"representative"`` keeps the lowest scores (typical images);
        ``"vital"`` keeps the highest (outliers, rare structure).
    maxdim : {0, 1}, default 1
        Highest homology dimension; 0 skips ripser (fast path).

    Scores
    ------
    The outlier score (Euclidean persistence). Images with fewer than 2 distinct
    neighbours (the score is undefined; score 0) come last in both modes.

    Pick order
    ----------
    By score (ascending for ``"representative"``, descending for ``"vital"``),
    ties by lowest index. Deterministic.
    """

    name = "phl"
    description = "Persistent-homology landmarks: rank images by local Vietoris-Rips persistence."
    _constraints = {  # noqa: RUF012
        "k": Interval("int", 2, None),
        "mode": Options(("representative", "vital")),
        "maxdim": Interval("int", 0, 1, "both"),
    }
    randomized = False

    def __init__(self, *, k: int = 16, mode: str = "representative", maxdim: int = 1) -> None:
        self.k = k
        self.mode = mode
        self.maxdim = maxdim

    def _check_extra(self) -> None:
        if self.maxdim == 1:
            require("ripser", purpose="PHL")

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        score, valid = local_persistence(X, int(self.k), int(self.maxdim))
        key = score if self.mode == "representative" else -score
        order = np.lexsort((np.arange(n), key, ~valid))[:budget]
        info = {"k": int(min(self.k, n - 1)), "undefined": int((~valid).sum())}
        return order.astype(np.int64), score[order], info
