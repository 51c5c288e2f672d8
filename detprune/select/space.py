"""The feature space the reducers work in: normalised appearance plus scaled box statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._memory import empty
from .._validation import Constraint, Interval, IsNone, validate_params
from ._checks import check_matrix, describe, fail

__all__ = ["DEFAULT_BOX_WEIGHT", "build_feature_space"]

#: Share of the feature space's total variance given to the box-statistics block.
DEFAULT_BOX_WEIGHT = 0.3


def build_feature_space(
    embeddings: Any,
    box_stats: Any = None,
    *,
    box_weight: float = DEFAULT_BOX_WEIGHT,
    pca_dim: int | None = None,
    whiten: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Build the matrix the reducers select in.

    1. Each embedding row is L2-normalised (a zero row stays zero), so appearance
       is compared by direction, not by activation magnitude.
    2. Optionally PCA to ``pca_dim`` components (scikit-learn, ``random_state=seed``),
       optionally whitened.
    3. Box statistics (given per image by the caller: normalised class histogram,
       size-bucket shares, log box count, ...) are standardised per column
       (constant columns become 0) and scaled so that their block carries a
       fraction ``box_weight`` of the total variance (the mean squared pairwise
       distance) of the result; the appearance block carries ``1 - box_weight``.

    Why a default of 0.3: standardised box statistics have one unit of variance
    per column, typically tens of columns, while normalised embeddings have a total
    variance below 1 -- unscaled, the box block would swamp appearance. At 0.3 two
    images with different class/size mixtures are separated by a distance
    comparable to a typical appearance difference, so geometry methods (MMS, CLC,
    ...) become class- and size-aware, while appearance still decides among images
    with similar box content.

    Parameters
    ----------
    embeddings : array-like of shape (n, d)
    box_stats : array-like of shape (n, s), optional
    box_weight : float in [0, 1), default 0.3
        0 ignores ``box_stats``.
    pca_dim : int or None
        Number of PCA components, in ``[1, min(n, d)]``.
    whiten : bool, default False
        Whiten the PCA components (only with ``pca_dim``).
    seed : int, default 0
        ``random_state`` of the PCA.

    Returns
    -------
    ndarray of float32, shape (n, d' + s')
        C-contiguous; ``d' = pca_dim or d``; ``s' = s`` when box statistics are used
        (``box_weight > 0``), else 0.
    """
    owner = "build_feature_space"
    E = check_matrix(embeddings, owner, "embeddings")
    n, d = E.shape
    validate_params(
        owner,
        {"box_weight": box_weight, "pca_dim": pca_dim, "whiten": whiten, "seed": seed},
        {
            "box_weight": Interval("real", 0, 1, "left"),
            "pca_dim": [Interval("int", 1, min(n, d)), IsNone()],
            "whiten": _Bool(),
            "seed": Interval("int", 0, None),
        },
    )
    if whiten and pca_dim is None:
        raise fail(owner, "whiten", "False when pca_dim is None", "True")
    B = None
    if box_stats is not None:
        B = check_matrix(box_stats, owner, "box_stats")
        if B.shape[0] != n:
            raise fail(owner, "box_stats", f"an array with {n} rows like embeddings", describe(B))

    use_box = B is not None and box_weight > 0
    if pca_dim is not None:
        A = _normalised_rows(E)
        from sklearn.decomposition import PCA

        A = PCA(
            n_components=int(pca_dim), whiten=bool(whiten), random_state=int(seed) % 2**32
        ).fit_transform(A)
        if not use_box:
            return np.ascontiguousarray(A, dtype=np.float32)
        var_a = float(A.var(axis=0).sum())
        F = empty((n, A.shape[1] + B.shape[1]), np.float32)
        F[:, : A.shape[1]] = A
        del A
    else:
        # row blocks in float64, written straight into the float32 result: peak memory is
        # the result plus one block (a memory-mapped input is read once, never copied whole)
        F = empty((n, d + (B.shape[1] if use_box else 0)), np.float32)
        s1 = np.zeros(d)
        s2 = np.zeros(d)
        for a in range(0, n, _BLOCK_ROWS):
            blk = _normalised_rows(E[a : a + _BLOCK_ROWS])
            F[a : a + blk.shape[0], :d] = blk
            if use_box:
                s1 += blk.sum(axis=0)
                s2 += np.einsum("ij,ij->j", blk, blk)
        if not use_box:
            return F
        mean = s1 / n
        var_a = float(np.maximum(s2 / n - mean * mean, 0.0).sum())
    B = np.asarray(B, dtype=np.float64)
    sd = B.std(axis=0)
    Z = np.divide(B - B.mean(axis=0), sd, out=np.zeros_like(B), where=sd > 0)
    var_b = float(Z.var(axis=0).sum())
    if var_b > 0:
        w = float(box_weight)
        # appearance with no spread beyond float32 rounding (all images alike: normalised
        # rows differ by ~1e-7) carries no information: the box block then keeps weight w
        # instead of being scaled down to that noise
        target = w / (1.0 - w) * var_a if var_a > _NO_SPREAD else w
        Z *= np.sqrt(target / var_b)
    F[:, F.shape[1] - Z.shape[1] :] = Z
    return F


#: Total variance of the normalised appearance rows below which they count as all alike
#: (float32 rounding of unit rows gives ~1e-14 a column; real embeddings 0.05-0.5 in all).
_NO_SPREAD = 1e-8

#: Rows per block when normalising (8192 x 448 float64 = 29 MB).
_BLOCK_ROWS = 8192


def _normalised_rows(E: Any) -> np.ndarray:
    """Rows of ``E`` as float64, each divided by its L2 norm (a zero row stays zero)."""
    A = np.asarray(E, dtype=np.float64)
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    return np.divide(A, norms, out=np.zeros_like(A), where=norms > 0)


class _Bool(Constraint):
    """A plain bool (numpy bools accepted)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "a bool"
