"""Budgets per stratum, the class floor, the stratified driver and retention."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from detprune.errors import ParameterError
from detprune.select import (
    MMS,
    SRS,
    Reducer,
    allocate_budget,
    get_reducer,
    retention,
    stratified_select,
)
from detprune.select.stratified import _witness, stratum_seed


def test_proportional_largest_remainder() -> None:
    strata = np.array([0] * 5 + [1] * 3 + [2] * 2)
    # exact shares 2.5, 1.5, 1.0 -> floors 2, 1, 1; one unit left; remainders tie between
    # strata 0 and 1 -> the larger stratum wins
    assert allocate_budget(strata, None, 5) == {0: 3, 1: 1, 2: 1}
    # shares 3.5, 2.1, 1.4 -> 3, 2, 1 + one unit to the largest remainder (0.5, stratum 0)
    assert allocate_budget(strata, None, 7) == {0: 4, 1: 2, 2: 1}
    assert allocate_budget(strata, None, 10) == {0: 5, 1: 3, 2: 2}
    assert allocate_budget(strata, None, 1) == {0: 1, 1: 0, 2: 0}


def test_labels_can_be_any_ints() -> None:
    strata = np.array([-3, -3, 7, 7, 7, 7])
    assert allocate_budget(strata, None, 3) == {-3: 1, 7: 2}


def test_floor_moves_quota_to_rare_strata() -> None:
    strata = np.array([0] * 90 + [1] * 8 + [2] * 2)
    classes = np.zeros((100, 3), dtype=bool)
    classes[:90, 0] = True
    classes[90:98, 1] = True
    classes[98:, 2] = True
    # proportional: 9, 0.8, 0.2 -> 9, 1, 0; the floor needs 1 from stratum 2 -> taken from 0
    assert allocate_budget(strata, classes, 10) == {0: 8, 1: 1, 2: 1}
    # min_per_class=2 needs 2 per class: 6 images
    q = allocate_budget(strata, classes, 10, min_per_class=2)
    assert q == {0: 6, 1: 2, 2: 2}
    # min(its images, m): class 2 has only 2 images
    q = allocate_budget(strata, classes, 12, min_per_class=5)
    assert q == {0: 5, 1: 5, 2: 2}


def test_floor_shares_multilabel_images() -> None:
    # one image holds classes 1 and 2: the floor needs 2 images, not 3
    classes = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 1, 0], [1, 0, 0]], dtype=bool)
    assert _witness(classes, 1).tolist() == [0, 2]
    strata = np.array([0, 0, 1, 2, 0])
    assert allocate_budget(strata, classes, 2) == {0: 1, 1: 1, 2: 0}


def test_floor_too_small_budget_message() -> None:
    strata = np.zeros(10, dtype=int)
    classes = np.eye(10, 4, dtype=bool) | np.eye(10, 4, k=-4, dtype=bool)
    with pytest.raises(ParameterError) as exc:
        allocate_budget(strata, classes, 3)
    msg = str(exc.value)
    assert re.match(r"^The 'budget' parameter of allocate_budget must be an int >= 4: ", msg)
    assert "needs 4 images" in msg and msg.endswith("Got 3 instead.")


def test_floor_absent_classes_and_zero_floor() -> None:
    classes = np.zeros((6, 3), dtype=bool)
    classes[:, 0] = True  # classes 1 and 2 have no image: nothing to keep
    assert allocate_budget(np.zeros(6, int), classes, 1) == {0: 1}
    assert allocate_budget(np.arange(6) % 2, classes, 1, min_per_class=0) == {0: 1, 1: 0}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"strata": np.zeros((3, 2))}, r"The 'strata' parameter of allocate_budget"),
        ({"strata": np.array([0.5, 1.5])}, r"The 'strata' parameter of allocate_budget"),
        ({"classes": np.ones((4, 2))}, r"The 'classes' parameter of allocate_budget"),
        ({"classes": np.full((3, 2), 2)}, r"The 'classes' parameter of allocate_budget"),
        ({"budget": 4}, r"The 'budget' parameter of allocate_budget must be an int in \[1, 3\]"),
        (
            {"min_per_class": -1},
            r"The 'min_per_class' parameter of allocate_budget must be an int >= 0",
        ),
    ],
)
def test_allocate_budget_rejects(kwargs: dict, pattern: str) -> None:
    args = {"strata": np.zeros(3, int), "classes": None, "budget": 2} | kwargs
    mc = args.pop("min_per_class", 1)
    with pytest.raises(ParameterError, match=pattern):
        allocate_budget(args["strata"], args["classes"], args["budget"], min_per_class=mc)


def test_stratum_seed_depends_on_seed_and_label_only() -> None:
    assert stratum_seed(0, 3) == stratum_seed(0, 3)
    assert stratum_seed(0, 3) != stratum_seed(1, 3)
    assert stratum_seed(0, 3) != stratum_seed(0, -3)
    assert len({stratum_seed(5, s) for s in range(-50, 50)}) == 100


def _toy(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    strata = rng.choice(4, n, p=[0.55, 0.25, 0.15, 0.05])
    classes = np.zeros((n, 4), dtype=bool)
    classes[np.arange(n), strata] = True
    return X, strata, classes


def test_interleaved_order_prefix_is_balanced() -> None:
    X, strata, classes = _toy()
    sel = stratified_select(SRS(), X, 100, strata=strata, classes=classes, seed=1)
    quotas = {int(k): v for k, v in sel.info["quotas"].items()}
    for prefix in (10, 25, 50, 100):
        counts = np.bincount(strata[sel.indices[:prefix]], minlength=4)
        for s, q in quotas.items():
            assert abs(counts[s] - prefix * q / 100) <= 1.0


def test_strata_seeds_are_independent() -> None:
    """Adding a stratum does not change the picks inside the others."""
    X, strata, _ = _toy()
    a = stratified_select(SRS(), X, 100, strata=strata, seed=4)
    mask = strata != 3
    sub = np.flatnonzero(mask)
    b = stratified_select(SRS(), X[mask], int(np.sum(mask)) // 2, strata=strata[mask], seed=4)
    for s in range(3):
        pa = [i for i in a.indices if strata[i] == s]
        pb = [int(sub[i]) for i in b.indices if strata[sub[i]] == s]
        k = min(len(pa), len(pb))
        assert pa[:k] == pb[:k]


def test_progress_and_info() -> None:
    X, strata, classes = _toy()
    calls = []
    sel = stratified_select(
        MMS(), X, 20, strata=strata, classes=classes, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    info = json.loads(json.dumps(sel.info))
    assert set(info) >= {"quotas", "sizes", "class_floor", "retention"}
    assert sum(info["quotas"].values()) == 20
    assert info["class_floor"]["needed"] == 4
    assert sel.params["min_per_class"] == 1 and sel.params["n_strata"] == 4


def test_take_all_stratum_and_zero_quota() -> None:
    X, strata, classes = _toy()
    sel = stratified_select(MMS(), X, 200, strata=strata, classes=classes)
    assert sorted(sel.indices.tolist()) == list(range(200))
    sel = stratified_select(SRS(), X, 2, strata=strata, min_per_class=0)
    assert len(sel) == 2


class _PickFirst(Reducer):
    """A deliberately bad reducer: always the first rows (to exercise the floor repair)."""

    name = "first"
    description = "first rows"
    randomized = False

    def __init__(self) -> None:
        pass

    def _select(self, X, budget, seed):
        return np.arange(budget), np.zeros(budget), {}


def test_floor_repair_on_mixed_stratum() -> None:
    n = 30
    classes = np.zeros((n, 3), dtype=bool)
    classes[:, 0] = True
    classes[25:, 1] = True  # only the last rows contain classes 1 and 2
    classes[29, 2] = True
    X = np.arange(n, dtype=np.float32)[:, None]
    sel = stratified_select(_PickFirst(), X, 5, classes=classes, min_per_class=2)
    kept = classes[sel.indices].sum(axis=0)
    assert kept.tolist()[1:] == [2, 1]  # class 2 has one image only
    repairs = sel.info["class_floor"]["repairs"]
    assert len(repairs) == 2
    assert all(r[0] >= 25 and r[1] < 25 for r in repairs)
    assert len(sel) == 5 and np.unique(sel.indices).size == 5


def test_stratified_rejects() -> None:
    X, strata, classes = _toy()
    with pytest.raises(ParameterError, match="The 'reducer' parameter of stratified_select"):
        stratified_select("mms", X, 5)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="The 'strata' parameter of stratified_select"):
        stratified_select(MMS(), X, 5, strata=strata[:-1])
    with pytest.raises(ParameterError, match="The 'classes' parameter of stratified_select"):
        stratified_select(MMS(), X, 5, classes=classes[:-1])
    with pytest.raises(ParameterError, match="The 'progress' parameter of stratified_select"):
        stratified_select(MMS(), X, 5, progress=3)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="The 'batch_size' parameter of MMS"):
        stratified_select(get_reducer("mms", batch_size=0), X, 5)
    with pytest.raises(ParameterError, match="needs 4 images"):
        stratified_select(MMS(), X, 3, strata=strata, classes=classes)


def test_retention() -> None:
    classes = np.array([[1, 0], [1, 1], [0, 1], [0, 1]], dtype=bool)
    boxes = np.array([[2, 0], [1, 3], [0, 1], [0, 5]])
    r = retention(classes, [1, 2], boxes)
    assert r.images_total.tolist() == [2, 3] and r.images_kept.tolist() == [1, 2]
    assert r.boxes_total.tolist() == [3, 9] and r.boxes_kept.tolist() == [1, 4]
    assert r.to_list()[1] == {
        "class": 1,
        "images_total": 3,
        "images_kept": 2,
        "boxes_total": 9,
        "boxes_kept": 4,
    }
    assert retention(classes, []).images_kept.tolist() == [0, 0]
    with pytest.raises(ParameterError, match="The 'indices' parameter of retention"):
        retention(classes, [1, 1])
    with pytest.raises(ParameterError, match="The 'box_counts' parameter of retention"):
        retention(classes, [0], boxes[:2])
