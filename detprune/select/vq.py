"""VQ: vector-quantisation coverage -- a k-means codebook, dampened quotas per codeword."""

from __future__ import annotations

import math

import numpy as np

from .._validation import Interval, IsNone, Options
from . import _knn
from .base import Reducer

__all__ = ["VQ", "dampened_quotas"]


def dampened_quotas(sizes: np.ndarray, budget: int, alpha: float) -> np.ndarray:
    """Quotas ``∝ size**alpha``, capped by size, summing to ``budget`` (largest remainder).

    Capped codewords are fixed at their size and the rest of the budget is
    re-apportioned among the others until no quota exceeds its size. Ties of the
    remainder go to the larger codeword, then the lower index.

    Parameters
    ----------
    sizes : ndarray of int, shape (k,)
    budget : int, ``0 <= budget <= sizes.sum()``
    alpha : float in [0, 1]

    Returns
    -------
    ndarray of int64, shape (k,)
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    quota = np.zeros(sizes.size, dtype=np.int64)
    open_ = sizes > 0
    left = int(budget)
    while left > 0:
        w = np.where(open_, sizes.astype(np.float64) ** alpha, 0.0)
        share = left * w / w.sum()
        cap = sizes - quota
        over = open_ & (share >= cap)
        if over.any():
            quota[over] = sizes[over]
            left -= int(cap[over].sum())
            open_ &= ~over
            continue
        base = np.floor(share).astype(np.int64)
        rem = share - base
        extra = left - int(base.sum())
        order = np.lexsort((np.arange(sizes.size), -sizes, -np.where(open_, rem, -1.0)))
        base[order[:extra]] += 1
        quota += base
        left = 0
    return quota


class VQ(Reducer):
    """Vector-quantisation coverage with dampened per-codeword quotas.

    A FAISS k-means codebook (seeded k-means++ then Lloyd) partitions the
    images; codeword ``c`` with ``N_c`` images gets a quota ``∝ N_c ** alpha``
    (largest remainder, capped at ``N_c``, exact total). With ``alpha < 1`` large
    codewords -- dense, redundant regions -- are thinned the most while every
    region keeps some images (coverage); ``alpha = 1`` is proportional
    (stratified random), ``alpha = 0`` equal quotas. This is the classic
    vector-quantisation view of sampling (Gray, 1984, "Vector quantization") with
    power-law dampening as in frequency subsampling (Mikolov et al., 2013).
    Within a codeword the images farthest from the codeword (``prefer="far"``:
    less typical) or nearest (``"near"``: typical) are kept.

    Parameters
    ----------
    n_codes : int >= 1 or None, default None
        Codebook size; ``None``: ``round(2 sqrt(n))``, capped by ``budget``.
    alpha : float in [0, 1], default 0.5
        Dampening power of the quotas.
    prefer : {"far", "near"}, default "far"
        Which images of a codeword are kept first.
    niter : int >= 1, default 20
        Lloyd iterations.

    Scores
    ------
    The distance of each pick to its codeword centre.

    Pick order
    ----------
    Codewords are interleaved by relative rank: the ``t``-th pick of a codeword
    with quota ``q`` has the key ``(t + 1/2) / q`` (ties: larger quota, lower
    codeword), so every prefix covers the codewords evenly.
    """

    name = "vq"
    description = (
        "Vector-quantisation coverage: k-means codebook, quotas ∝ size^alpha per codeword."
    )
    _constraints = {  # noqa: RUF012
        "n_codes": [Interval("int", 1, None), IsNone()],
        "alpha": Interval("real", 0, 1, "both"),
        "prefer": Options(("far", "near")),
        "niter": Interval("int", 1, 100_000),
    }
    randomized = True

    def __init__(
        self,
        *,
        n_codes: int | None = None,
        alpha: float = 0.5,
        prefer: str = "far",
        niter: int = 20,
    ) -> None:
        self.n_codes = n_codes
        self.alpha = alpha
        self.prefer = prefer
        self.niter = niter

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        if self.n_codes is None:
            k = max(1, min(budget, round(2 * math.sqrt(n))))
        else:
            k = int(self.n_codes)
        k = min(k, n)
        cent = _knn.kmeans(X, k, seed=seed, niter=int(self.niter))
        dist, lab = _knn.assign(X, cent)
        dist = dist.astype(np.float64)
        sizes = np.bincount(lab, minlength=k)
        quota = dampened_quotas(sizes, budget, float(self.alpha))
        sign = -1.0 if self.prefer == "far" else 1.0
        rows_all = np.arange(n)
        # within each codeword: by preference, ties by index
        order = np.lexsort((rows_all, sign * dist, lab))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        picks, keys, qs, labs = [], [], [], []
        for c in np.flatnonzero(quota):
            q = int(quota[c])
            chosen = order[starts[c] : starts[c] + q]
            picks.append(chosen)
            keys.append((2 * np.arange(q) + 1) / (2.0 * q))
            qs.append(np.full(q, q))
            labs.append(np.full(q, c))
        idx = np.concatenate(picks)
        glob = np.lexsort((np.concatenate(labs), -np.concatenate(qs), np.concatenate(keys)))
        idx = idx[glob].astype(np.int64)
        info = {
            "n_codes": int(k),
            "empty_codes": int((sizes == 0).sum()),
            "covered_codes": int((quota > 0).sum()),
        }
        return idx, dist[idx], info
