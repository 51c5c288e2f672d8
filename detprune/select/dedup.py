"""Near-duplicate groups by FAISS range search (union-find)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import Interval, validate_params
from . import _knn
from ._checks import check_matrix, describe, fail

__all__ = ["dedup_mask", "near_duplicates"]


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def near_duplicates(X: Any, threshold: float) -> list[np.ndarray]:
    """Groups of rows connected by Euclidean distance ``<= threshold`` (transitively).

    Parameters
    ----------
    X : array-like of shape (n, d)
    threshold : float >= 0
        Euclidean distance (not squared); pairs at or below it are linked.

    Returns
    -------
    list of ndarray of int64
        The groups with at least two rows, each sorted ascending; groups ordered by
        their smallest index.
    """
    owner = "near_duplicates"
    X = check_matrix(X, owner)
    validate_params(owner, {"threshold": threshold}, {"threshold": Interval("real", 0, None)})
    return _groups(X, float(threshold))


def _groups(X: np.ndarray, threshold: float) -> list[np.ndarray]:
    n = X.shape[0]
    lims, _, idx = _knn.range_search(X, threshold)
    parent = np.arange(n)
    src = np.repeat(np.arange(n), np.diff(lims))
    for a, b in zip(src.tolist(), idx.tolist(), strict=True):
        if a < b:
            ra, rb = _find(parent, a), _find(parent, b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([_find(parent, i) for i in range(n)])
    out = []
    order = np.argsort(roots, kind="stable")
    bounds = np.flatnonzero(np.diff(roots[order])) + 1
    for grp in np.split(order, bounds):
        if grp.size > 1:
            out.append(np.sort(grp).astype(np.int64))
    out.sort(key=lambda g: int(g[0]))
    return out


def dedup_mask(
    X: Any, threshold: float, *, prefer: Any = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Keep one row per near-duplicate group.

    Parameters
    ----------
    X : array-like of shape (n, d)
    threshold : float >= 0
        Euclidean linking distance (see :func:`near_duplicates`).
    prefer : array-like of float, shape (n,), optional
        Within a group keep the row with the highest value (ties: lowest index);
        default: the lowest index.

    Returns
    -------
    keep : ndarray of bool, shape (n,)
    groups : list of ndarray of int64
        The near-duplicate groups (size >= 2).
    """
    owner = "dedup_mask"
    X = check_matrix(X, owner)
    validate_params(owner, {"threshold": threshold}, {"threshold": Interval("real", 0, None)})
    n = X.shape[0]
    pref = None
    if prefer is not None:
        pref = np.asarray(prefer, dtype=np.float64) if np.ndim(prefer) == 1 else None
        if pref is None or pref.shape != (n,) or not np.isfinite(pref).all():
            raise fail(owner, "prefer", f"None or {n} finite scores", describe(prefer))
    groups = _groups(X, float(threshold))
    keep = np.ones(n, dtype=bool)
    for g in groups:
        if pref is None:
            winner = g[0]
        else:
            winner = g[np.lexsort((g, -pref[g]))[0]]
        keep[g] = False
        keep[winner] = True
    return keep, groups
