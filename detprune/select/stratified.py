"""Class balancing: budgets per stratum, the class floor, and the stratified driver.

This is the only place where classes and strata matter; every reducer is
class-agnostic and sees only the rows of one stratum.

Strata come from the dataset layer (each image's stratum is the set of classes
it contains, tiny strata merged, background its own stratum), encoded as ints.
``classes`` is the per-image multi-hot class presence ``(n, C)``.

The class floor
---------------
Every class present in the full set must be present in at least
``min(N_c, min_per_class)`` kept images (``N_c`` = its images). It is
guaranteed in two steps:

1. :func:`allocate_budget` builds a *witness*: a small set of images that meets
   the floor by itself (greedy set multicover: repeatedly the image covering the
   most still-deficient classes, lowest index on ties; then redundant images are
   dropped in reverse order). Its size is the number of images the floor needs;
   a smaller budget is rejected. Each stratum's quota is at least the number of
   witness images it holds, so the witness always fits in the quotas.
2. :func:`stratified_select` runs the reducer per stratum, then *repairs*: while a
   class is below its floor, a witness image of that class that was not picked
   replaces the last-picked non-witness image of the same stratum (preferring
   one whose removal keeps every class at its floor). A witness image is never
   removed and one exists for every deficient class, so this ends after at most
   (witness size) swaps with every floor met. When strata are homogeneous (all
   images of a stratum share its class set) every pick of a stratum already
   covers its classes and no repair is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import Interval, validate_params
from ._checks import (
    check_budget,
    check_indices,
    check_labels,
    check_matrix,
    check_multihot,
    check_seed,
    describe,
    fail,
)
from ._threads import single_threaded_blas
from .base import Reducer, Selection

__all__ = ["Retention", "allocate_budget", "floor_size", "retention", "stratified_select", "stratum_seed"]


# --------------------------------------------------------------------------- budgets


def _proportional(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Largest-remainder apportionment of ``budget`` over ``sizes`` (exact total).

    Ties of the remainder go to the larger stratum, then to the earlier one.
    Each share is at most its size because ``budget <= sizes.sum()``.
    """
    n = int(sizes.sum())
    prod = sizes.astype(object) * budget  # exact integers
    base = np.array([int(p // n) for p in prod], dtype=np.int64)
    rem = np.array([int(p % n) for p in prod], dtype=np.int64)
    left = budget - int(base.sum())
    order = np.lexsort((np.arange(sizes.size), -sizes, -rem))
    base[order[:left]] += 1
    return base


def _floor_need(classes: np.ndarray, m: int) -> np.ndarray:
    """Per class: how many kept images must contain it (``min(N_c, m)``)."""
    return np.minimum(classes.sum(axis=0), m).astype(np.int64)


def floor_size(classes: np.ndarray, min_per_class: int) -> int:
    """How many images the class floor needs at least (the smallest budget it allows).

    Parameters
    ----------
    classes : ndarray of bool, shape (n, C)
        Which classes each image contains.
    min_per_class : int
        The floor: every class keeps ``min(its images, min_per_class)`` images.

    Returns
    -------
    int
        The size of the floor's witness set (a greedy set multicover; the budget check
        of :func:`stratified_select` uses the same set).
    """
    return int(_witness(np.asarray(classes, dtype=bool), int(min_per_class)).size)


def _witness(classes: np.ndarray | None, m: int) -> np.ndarray:
    """A small set of image indices meeting the class floor on its own (greedy multicover)."""
    if classes is None or m <= 0 or classes.shape[1] == 0:
        return np.empty(0, dtype=np.int64)
    need = _floor_need(classes, m)
    deficit = need.copy()
    C = classes.astype(np.float32)
    used = np.zeros(classes.shape[0], dtype=bool)
    chosen: list[int] = []
    while deficit.any():
        gain = C @ (deficit > 0).astype(np.float32)
        gain[used] = -1.0
        i = int(np.argmax(gain))  # lowest index among the best
        chosen.append(i)
        used[i] = True
        deficit = np.maximum(deficit - classes[i], 0)
    # drop redundant picks, latest first
    have = classes[chosen].sum(axis=0).astype(np.int64)
    keep = list(chosen)
    for i in reversed(chosen):
        after = have - classes[i]
        if (after >= need).all():
            keep.remove(i)
            have = after
    return np.array(sorted(keep), dtype=np.int64)


def _plan(
    strata: np.ndarray,
    classes: np.ndarray | None,
    budget: int,
    min_per_class: int,
    owner: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quotas per stratum and the floor witness.

    Returns ``(labels, inverse, sizes, quotas, witness)``.
    """
    labels, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    witness = _witness(classes, min_per_class)
    if budget < witness.size:
        raise fail(
            owner,
            "budget",
            f"an int >= {witness.size}: the class floor (min_per_class={min_per_class}) "
            f"needs {witness.size} images to keep every class",
            repr(budget),
        )
    floor = np.bincount(inverse[witness], minlength=labels.size).astype(np.int64)
    quota = np.maximum(_proportional(sizes, budget), floor)
    excess = int(quota.sum()) - budget
    # Give the units back from the largest quotas that are above their floor share.
    idx = np.arange(labels.size)
    while excess > 0:
        can = quota > floor
        order = np.lexsort((idx, -sizes, -quota))
        j = next(int(k) for k in order if can[k])
        quota[j] -= 1
        excess -= 1
    return labels, inverse, sizes, quota, witness


def allocate_budget(
    strata: Any,
    classes: Any,
    budget: int,
    *,
    min_per_class: int = 1,
) -> dict[int, int]:
    """Quota per stratum: proportional (largest remainder), exact total, with the class floor.

    Parameters
    ----------
    strata : array-like of int, shape (n,)
        Stratum label of each image.
    classes : array-like of bool, shape (n, C), or None
        Multi-hot class presence per image; ``None`` disables the class floor.
    budget : int
        Total number of images to keep, in ``[1, n]``.
    min_per_class : int, default 1
        Every class present in the full set must be in at least
        ``min(its images, min_per_class)`` kept images (0 disables the floor).

    Returns
    -------
    dict of int to int
        Stratum label -> quota; quotas sum to ``budget`` and each is at most the
        stratum's size.

    Raises
    ------
    ParameterError
        Bad inputs, or a budget smaller than the number of images the floor needs
        (the message says how many).

    Notes
    -----
    Proportional shares are ``budget * size / n`` rounded by largest remainder
    (ties: larger stratum, then lower label). Each stratum then gets at least as
    many units as it holds images of the floor *witness* (see the module notes);
    the units this adds are taken back one at a time from the largest quotas that
    are above their witness share (ties: larger stratum, then lower label).
    Deterministic.
    """
    owner = "allocate_budget"
    strata_arr = np.asarray(strata)
    n = strata_arr.shape[0] if strata_arr.ndim == 1 else -1
    if n < 1:
        raise fail(owner, "strata", "a non-empty 1-D array of integers", describe(strata_arr))
    strata_arr = check_labels(strata_arr, n, owner, "strata")
    classes_arr = check_multihot(classes, n, owner)
    budget = check_budget(budget, n, owner)
    validate_params(owner, {"min_per_class": min_per_class}, {"min_per_class": Interval("int", 0)})
    labels, _, _, quota, _ = _plan(strata_arr, classes_arr, budget, int(min_per_class), owner)
    return {int(lab): int(q) for lab, q in zip(labels, quota, strict=True)}


def stratum_seed(seed: int, label: int) -> int:
    """The seed of one stratum: derived from ``(seed, label)`` only (not from other strata)."""
    zig = 2 * label if label >= 0 else -2 * label - 1
    state = np.random.SeedSequence([int(seed), int(zig)]).generate_state(1, dtype=np.uint32)
    return int(state[0])


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True, eq=False)
class Retention:
    """Per-class image (and box) counts before and after a selection.

    Attributes
    ----------
    images_total, images_kept : ndarray of int64, shape (C,)
    boxes_total, boxes_kept : ndarray of int64, shape (C,), or None
    """

    images_total: np.ndarray
    images_kept: np.ndarray
    boxes_total: np.ndarray | None = None
    boxes_kept: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("images_total", "images_kept", "boxes_total", "boxes_kept"):
            value = getattr(self, name)
            if value is not None:
                arr = np.array(value, dtype=np.int64, copy=True)
                arr.flags.writeable = False
                object.__setattr__(self, name, arr)

    def to_list(self) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per class."""
        out = []
        for c in range(self.images_total.size):
            row: dict[str, Any] = {
                "class": c,
                "images_total": int(self.images_total[c]),
                "images_kept": int(self.images_kept[c]),
            }
            if self.boxes_total is not None and self.boxes_kept is not None:
                row["boxes_total"] = int(self.boxes_total[c])
                row["boxes_kept"] = int(self.boxes_kept[c])
            out.append(row)
        return out


def retention(classes: Any, indices: Any, box_counts: Any = None) -> Retention:
    """Per-class images (and boxes) in the full set and among the kept images.

    Parameters
    ----------
    classes : array-like of bool, shape (n, C)
        Multi-hot class presence per image.
    indices : array-like of int, shape (k,)
        Kept image indices (unique).
    box_counts : array-like of int, shape (n, C), optional
        Boxes of each class per image.

    Returns
    -------
    Retention
    """
    owner = "retention"
    arr = np.asarray(classes)
    if arr.ndim != 2:
        raise fail(owner, "classes", "a 2-D multi-hot array (n, C)", describe(arr))
    n = arr.shape[0]
    cls = check_multihot(arr, n, owner)
    assert cls is not None
    idx = check_indices(indices, n, owner, "indices")
    boxes_total = boxes_kept = None
    if box_counts is not None:
        b = np.asarray(box_counts)
        if b.shape != cls.shape or (b.size and (b.dtype.kind not in "iu" or b.min() < 0)):
            raise fail(
                owner,
                "box_counts",
                f"None or a non-negative int array of shape {cls.shape}",
                describe(b),
            )
        b = b.astype(np.int64)
        boxes_total = b.sum(axis=0)
        boxes_kept = b[idx].sum(axis=0)
    return Retention(
        images_total=cls.sum(axis=0),
        images_kept=cls[idx].sum(axis=0),
        boxes_total=boxes_total,
        boxes_kept=boxes_kept,
    )


# --------------------------------------------------------------------------- driver


def _repair(
    picks: dict[int, list[int]],
    stratum_of: np.ndarray,
    classes: np.ndarray,
    witness: np.ndarray,
    m: int,
) -> list[list[int]]:
    """Swap witness images in until every class meets its floor (see module notes)."""
    need = _floor_need(classes, m)
    kept = np.fromiter((i for p in picks.values() for i in p), dtype=np.int64)
    have = classes[kept].sum(axis=0).astype(np.int64)
    is_w = np.zeros(classes.shape[0], dtype=bool)
    is_w[witness] = True
    is_kept = np.zeros(classes.shape[0], dtype=bool)
    is_kept[kept] = True
    swaps: list[list[int]] = []
    while (have < need).any():
        c = int(np.flatnonzero(have < need)[0])
        cand = witness[classes[witness, c] & ~is_kept[witness]]
        w = int(cand[0])  # exists: the witness alone meets the floor
        lst = picks[int(stratum_of[w])]
        after_add = have + classes[w]
        pos = None
        for p in range(len(lst) - 1, -1, -1):
            r = lst[p]
            if is_w[r]:
                continue
            if pos is None:
                pos = p  # fallback: the last non-witness pick
            if (after_add - classes[r] >= np.minimum(need, after_add)).all():
                pos = p
                break
        assert pos is not None  # quota >= witness share guarantees a non-witness pick
        r = lst[pos]
        lst[pos] = w
        have = after_add - classes[r]
        is_kept[w], is_kept[r] = True, False
        swaps.append([w, int(r)])
    return swaps


def stratified_select(
    reducer: Reducer,
    X: Any,
    budget: int,
    *,
    strata: Any = None,
    classes: Any = None,
    min_per_class: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Selection:
    """Run a reducer per stratum with class-balanced quotas and the class floor.

    Parameters
    ----------
    reducer : Reducer
        The method (see :func:`~detprune.select.registry.get_reducer`).
    X : array-like of shape (n, d)
        Feature matrix.
    budget : int
        Total images to keep, in ``[1, n]``.
    strata : array-like of int, shape (n,), optional
        Stratum label per image; ``None`` means one stratum.
    classes : array-like of bool, shape (n, C), optional
        Multi-hot class presence per image; needed for the class floor and the
        retention report, and required by reducers with ``needs_targets`` (each
        gets its stratum's rows as targets).
    min_per_class : int, default 1
        Class floor (see :func:`allocate_budget`); 0 disables it.
    seed : int, default 0
        Master seed. Stratum ``s`` runs with :func:`stratum_seed` ``(seed, s)``.
    progress : callable, optional
        Called as ``progress(done, total)`` after each stratum.

    Returns
    -------
    Selection
        ``indices`` into the rows of ``X``. The global pick order interleaves the
        strata by relative rank: the ``t``-th pick (0-based) of a stratum with
        quota ``q`` gets the key ``(t + 1/2) / q``, sorted ascending (ties: larger
        quota, then lower label), so every prefix of the order is itself close to
        proportional across strata. ``scores`` are the reducer's per-stratum scores
        (a pick swapped in by the floor repair keeps the score of the slot it took).
        ``info``: ``quotas`` and ``sizes`` per stratum (string keys), ``retention``
        per class (when ``classes`` is given), ``class_floor`` (``min_per_class``,
        ``needed`` images, ``repairs`` as ``[added, removed]`` pairs), ``strata_info``
        (per-stratum extras from the reducer, when any).
    """
    owner = "stratified_select"
    if not isinstance(reducer, Reducer):
        raise fail(owner, "reducer", "a Reducer instance (see get_reducer)", describe(reducer))
    reducer._check_params()
    X = check_matrix(X, owner)
    n = X.shape[0]
    budget = check_budget(budget, n, owner)
    seed = check_seed(seed, owner)
    validate_params(owner, {"min_per_class": min_per_class}, {"min_per_class": Interval("int", 0)})
    strata_arr = check_labels(strata, n, owner, "strata")
    if strata_arr is None:
        strata_arr = np.zeros(n, dtype=np.int64)
    cls = check_multihot(classes, n, owner)
    if reducer.needs_targets and cls is None:
        raise fail(
            owner,
            "classes",
            f"a 2-D boolean (multi-hot) array with {n} rows ({reducer.name.upper()} "
            "trains on the per-image class presence)",
            "None",
        )
    if progress is not None and not callable(progress):
        raise fail(owner, "progress", "None or a callable", describe(progress))
    m = int(min_per_class)

    labels, inverse, sizes, quota, witness = _plan(strata_arr, cls, budget, m, owner)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(sizes)[:-1])
    picks: dict[int, list[int]] = {}
    scores: dict[int, np.ndarray] = {}
    extras: dict[str, Any] = {}
    for j, label in enumerate(labels):
        rows = members[j]
        q = int(quota[j])
        if q > 0:
            Xs = X if rows.size == n else X[rows]  # rows are sorted: all rows = X itself
            with single_threaded_blas():  # see _threads: BLAS threads spin on a busy host
                tgt = None if cls is None else (cls if rows.size == n else cls[rows])
                local, sc, info = reducer._run(Xs, q, stratum_seed(seed, int(label)), tgt)
            picks[j] = [int(i) for i in rows[np.asarray(local, dtype=np.int64)]]
            scores[j] = np.asarray(sc, dtype=np.float64)
            if info:
                extras[str(int(label))] = info
        if progress is not None:
            progress(j + 1, int(labels.size))

    swaps: list[list[int]] = []
    if cls is not None and m > 0 and witness.size:
        swaps = _repair(picks, inverse, cls, witness, m)

    # Global order: interleave strata by relative rank.
    keys, qs, labs, idx_all, sc_all = [], [], [], [], []
    for j, lst in picks.items():
        q = len(lst)
        t = np.arange(q)
        keys.append((2 * t + 1) / (2.0 * q))
        qs.append(np.full(q, q))
        labs.append(np.full(q, j))
        idx_all.append(np.asarray(lst, dtype=np.int64))
        sc_all.append(scores[j])
    key = np.concatenate(keys)
    order = np.lexsort((np.concatenate(labs), -np.concatenate(qs), key))
    indices = np.concatenate(idx_all)[order]
    final_scores = np.concatenate(sc_all)[order]

    info: dict[str, Any] = {
        "quotas": {str(int(lab)): int(q) for lab, q in zip(labels, quota, strict=True)},
        "sizes": {str(int(lab)): int(s) for lab, s in zip(labels, sizes, strict=True)},
        "class_floor": {"min_per_class": m, "needed": int(witness.size), "repairs": swaps},
    }
    if cls is not None:
        info["retention"] = retention(cls, indices).to_list()
    if extras:
        info["strata_info"] = extras
    params = {
        **reducer.get_params(),
        "budget": budget,
        "seed": seed,
        "min_per_class": m,
        "n_strata": int(labels.size),
    }
    return Selection(indices, final_scores, reducer.name, params, info)
