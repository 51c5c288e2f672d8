"""Near-duplicates by FAISS range search: transitive groups (union-find) and a greedy cover."""

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
    X: Any, threshold: float, *, prefer: Any = None, labels: Any = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Drop near-duplicates: every dropped row is within ``threshold`` of a kept row.

    Rows are visited in order of preference (``prefer`` high first, then the lowest
    index); a row not yet covered is kept and covers every uncovered row within
    ``threshold`` of it (with the same label), which is dropped. Unlike the transitive
    groups of :func:`near_duplicates`, a chain of near-duplicates never reaches far from
    the row that stands for it, and the kept rows of a label are more than
    ``threshold`` apart (a greedy ``threshold``-net).

    Parameters
    ----------
    X : array-like of shape (n, d)
    threshold : float >= 0
        Euclidean distance at or below which a row covers another.
    prefer : array-like of float, shape (n,), optional
        Visiting order: the highest value first (ties: lowest index); default: by index.
    labels : array-like of int, shape (n,), optional
        Only rows with the same label are duplicates of each other (the pipeline passes
        each image's set of classes, so no class or class mixture loses its last image).

    Returns
    -------
    keep : ndarray of bool, shape (n,)
    groups : list of ndarray of int64
        One per kept row that covered others: that row and the rows it covered, sorted;
        ordered by their smallest index.
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
    if labels is None:
        lab = np.zeros(n, dtype=np.int64)
    else:
        lab = np.asarray(labels) if np.ndim(labels) == 1 else None
        if lab is None or lab.shape != (n,) or lab.dtype.kind not in "iub":
            raise fail(owner, "labels", f"None or {n} integer labels", describe(labels))
    keep = np.ones(n, dtype=bool)
    groups: list[np.ndarray] = []
    for u in np.unique(lab):
        rows = np.flatnonzero(lab == u)
        if rows.size > 1:
            groups += _cover(X[rows] if rows.size < n else X, rows, float(threshold),
                             None if pref is None else pref[rows], keep)
    groups.sort(key=lambda g: int(g[0]))
    return keep, groups


def _cover(Xg: np.ndarray, rows: np.ndarray, threshold: float, pref: np.ndarray | None,
           keep: np.ndarray) -> list[np.ndarray]:
    """The greedy cover of one label's rows (``Xg = X[rows]``); clears ``keep`` of the
    covered rows and returns the groups (original row indices)."""
    lims, _, idx = _knn.range_search(Xg, threshold)
    linked = np.flatnonzero(np.diff(lims) > 1)  # rows with a neighbour besides themselves
    if linked.size == 0:
        return []
    if pref is not None:
        linked = linked[np.lexsort((linked, -pref[linked]))]
    covered = np.zeros(rows.size, dtype=bool)
    out = []
    for i in linked.tolist():
        if covered[i]:
            continue
        covered[i] = True  # kept: it stands for the rows it covers
        nb = idx[lims[i] : lims[i + 1]]
        nb = nb[~covered[nb]]
        if nb.size:
            covered[nb] = True
            keep[rows[nb]] = False
            out.append(np.sort(rows[np.concatenate([[i], nb])]).astype(np.int64))
    return out
