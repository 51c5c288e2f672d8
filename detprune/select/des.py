"""DES: distance-entropy selection (after Perera-Lago et al., 2024)."""

from __future__ import annotations

import math

import numpy as np

from .._validation import Interval
from . import _knn
from .base import Reducer

__all__ = ["DES", "distance_entropy"]


def distance_entropy(X: np.ndarray, prototypes: np.ndarray, temperature: float) -> np.ndarray:
    """Entropy of the softmax over negative distances to the prototypes.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    prototypes : ndarray, shape (p, d)
    temperature : float
        Softmax temperature in units of the median nearest-prototype distance
        (so the entropy does not depend on the scale of ``X``).

    Returns
    -------
    ndarray of float64, shape (n,)
        Entropy in nats, in ``[0, log p]``.
    """
    P = np.asarray(prototypes, dtype=np.float64)
    p = P.shape[0]
    out = np.empty(X.shape[0])
    Xd = np.asarray(X, dtype=np.float64)
    psq = (P**2).sum(axis=1)
    # scale: median over rows of the distance to the nearest prototype
    dists = []
    for s in range(0, Xd.shape[0], 8192):
        xb = Xd[s : s + 8192]
        d2 = (xb**2).sum(axis=1)[:, None] - 2.0 * xb @ P.T + psq[None, :]
        dists.append(np.sqrt(np.maximum(d2, 0.0)))
    D = np.concatenate(dists) if dists else np.empty((0, p))
    scale = float(np.median(D.min(axis=1))) if D.size else 1.0
    if not scale > 0:
        scale = float(np.mean(D)) if D.size and np.mean(D) > 0 else 1.0
    logits = -D / (temperature * scale)
    logits -= logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(w > 0, w * np.log(w), 0.0).sum(axis=1)
    out[:] = np.clip(ent, 0.0, math.log(p) if p > 1 else 0.0)
    return out


class DES(Reducer):
    """Distance-entropy selection: keep the images most ambiguous between prototypes.

    1. A random base subset (``base_fraction`` of the rows, at least one) is drawn
       with ``np.random.default_rng(seed)``.
    2. Prototypes: FAISS k-means centres of the base subset (``n_prototypes``
       clusters, seeded), or the base points themselves when the base is not
       larger than ``n_prototypes``.
    3. For every image: softmax over ``-distance / (temperature * scale)`` to the
       prototypes (``scale`` = median nearest-prototype distance), and its entropy.
    4. Keep the ``budget`` images of highest entropy (boundary / informative
       images), ties by lowest index.

    Parameters
    ----------
    base_fraction : float in (0, 1], default 0.1
    n_prototypes : int >= 2, default 16
    temperature : float > 0, default 1.0
        In units of the median nearest-prototype distance.
    niter : int >= 1, default 20
        k-means iterations for the prototypes.

    Scores
    ------
    The entropy in nats (non-increasing along the pick order).
    """

    name = "des"
    description = "Distance-entropy selection: keep images most ambiguous between prototypes."
    _constraints = {  # noqa: RUF012
        "base_fraction": Interval("real", 0, 1, "right"),
        "n_prototypes": Interval("int", 2, None),
        "temperature": Interval("real", 0, None, "neither"),
        "niter": Interval("int", 1, 100_000),
    }
    randomized = True

    def __init__(
        self,
        *,
        base_fraction: float = 0.1,
        n_prototypes: int = 16,
        temperature: float = 1.0,
        niter: int = 20,
    ) -> None:
        self.base_fraction = base_fraction
        self.n_prototypes = n_prototypes
        self.temperature = temperature
        self.niter = niter

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        n = X.shape[0]
        rng = np.random.default_rng(seed)
        nb = max(1, math.ceil(self.base_fraction * n))
        base = np.sort(rng.choice(n, size=nb, replace=False))
        if nb > self.n_prototypes:
            protos = _knn.kmeans(X[base], self.n_prototypes, seed=seed, niter=self.niter)
        else:
            protos = np.asarray(X[base], dtype=np.float32)
        ent = distance_entropy(X, protos, float(self.temperature))
        order = np.lexsort((np.arange(n), -ent))[:budget]
        return order.astype(np.int64), ent[order], {"n_prototypes": int(protos.shape[0])}
