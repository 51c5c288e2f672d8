"""NRMD: rank images by their leverage on the leading singular directions."""

from __future__ import annotations

import numpy as np

from .._validation import Interval, IsNone
from .base import Reducer

__all__ = ["NRMD", "leverage_scores"]

#: Above this many rows *and* columns the top components come from randomized SVD.
_EXACT_MAX = 4096


def leverage_scores(
    X: np.ndarray,
    *,
    n_components: int | None = None,
    variance: float = 0.9,
    max_components: int = 256,
    seed: int = 0,
) -> tuple[np.ndarray, int, float]:
    """Rank-``r`` leverage scores of the centred matrix: ``l_i = sum_{j<r} U_ij^2``.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    n_components : int or None
        ``r``; ``None``: the fewest components explaining ``variance`` of the total.
    variance : float in (0, 1]
    max_components : int
        Cap on ``r`` (and the rank computed by randomized SVD).
    seed : int
        Seed of the randomized SVD (large inputs only).

    Returns
    -------
    scores : ndarray of float64, shape (n,)
    r : int
        Components used.
    explained : float
        Fraction of the total variance they explain.

    Notes
    -----
    When ``min(n, d) <= 4096`` the singular vectors are exact: from the
    eigendecomposition of the ``d x d`` covariance (``n >= d``) or the ``n x n``
    Gram matrix, in float64. Otherwise :func:`sklearn.utils.extmath.randomized_svd`
    computes the top ``max_components``. Components with singular value below
    ``1e-10`` of the largest are dropped.
    """
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0, keepdims=True)
    n, d = Xc.shape
    total = float((Xc**2).sum())
    if total <= 0:
        return np.zeros(n), 0, 0.0
    cap = max(1, min(max_components, n, d))
    if min(n, d) <= _EXACT_MAX:
        if n >= d:
            evals, V = np.linalg.eigh(Xc.T @ Xc)
            evals, V = evals[::-1], V[:, ::-1]
            keep = evals > 1e-20 * evals[0]
            evals, V = evals[keep], V[:, keep]
            U = None
        else:
            evals, U = np.linalg.eigh(Xc @ Xc.T)
            evals, U = evals[::-1], U[:, ::-1]
            keep = evals > 1e-20 * evals[0]
            evals, U = evals[keep], U[:, keep]
            V = None
    else:
        from sklearn.utils.extmath import randomized_svd

        U, s, _ = randomized_svd(Xc, n_components=cap, n_iter=4, random_state=seed % 2**32)
        evals = s**2
        V = None
    cum = np.cumsum(evals) / total
    if n_components is None:
        r = int(np.searchsorted(cum, variance - 1e-12) + 1)
    else:
        r = int(n_components)
    r = max(1, min(r, cap, evals.size))
    if U is None:
        Ur = (Xc @ V[:, :r]) / np.sqrt(evals[:r])[None, :]
    else:
        Ur = U[:, :r]
    return (Ur**2).sum(axis=1), r, float(cum[r - 1])


class NRMD(Reducer):
    """Rank images by their contribution to the leading singular vectors of the stratum.

    The stratum matrix is centred and decomposed (SVD); an image's score is its
    rank-``r`` statistical leverage ``sum_{j<r} U_ij^2`` (Mahoney and Drineas,
    "CUR matrix decompositions for improved data analysis", PNAS 2009;
    leverage-score / column-subset selection): the images that carry the most
    weight in the dominant directions of variation -- the extremes spanning the
    principal subspace -- are kept first.

    Parameters
    ----------
    n_components : int >= 1 or None, default None
        ``r``; ``None``: the fewest components explaining ``variance``.
    variance : float in (0, 1], default 0.9
        Explained-variance target for the automatic ``r``.
    max_components : int >= 1, default 256
        Cap on ``r``.

    Scores
    ------
    The leverage score (in ``[0, 1]``; non-increasing along the pick order), ties
    by lowest index. Deterministic up to ``4096`` rows or columns; beyond that the
    randomized SVD is seeded.
    """

    name = "nrmd"
    description = "Leverage ranking: keep images that dominate the leading singular directions."
    _constraints = {  # noqa: RUF012
        "n_components": [Interval("int", 1, None), IsNone()],
        "variance": Interval("real", 0, 1, "right"),
        "max_components": Interval("int", 1, None),
    }
    randomized = False

    def __init__(
        self,
        *,
        n_components: int | None = None,
        variance: float = 0.9,
        max_components: int = 256,
    ) -> None:
        self.n_components = n_components
        self.variance = variance
        self.max_components = max_components

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        lev, r, expl = leverage_scores(
            X,
            n_components=self.n_components,
            variance=float(self.variance),
            max_components=int(self.max_components),
            seed=seed,
        )
        order = np.lexsort((np.arange(n), -lev))[:budget]
        return order.astype(np.int64), lev[order], {"n_components": r, "explained": expl}
