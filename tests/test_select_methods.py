"""Hand-computed cases for each selection method."""

from __future__ import annotations

import numpy as np
import pytest

from detprune.select import CLC, DES, MMS, SRS, RKMeans, Selection, get_reducer
from detprune.select.des import distance_entropy
from detprune.select.rkmeans import equal_shares


def test_selection_validates() -> None:
    with pytest.raises(ValueError, match="unique"):
        Selection(np.array([1, 1]), np.zeros(2), "x")
    with pytest.raises(ValueError, match="shape"):
        Selection(np.array([1, 2]), np.zeros(3), "x")
    with pytest.raises(ValueError, match="finite"):
        Selection(np.array([1]), np.array([np.nan]), "x")
    with pytest.raises(ValueError, match="non-negative"):
        Selection(np.array([-1]), np.zeros(1), "x")
    with pytest.raises(TypeError, match="integer"):
        Selection(np.array([0.5]), np.zeros(1), "x")
    with pytest.raises(TypeError, match="JSON"):
        Selection(np.array([0]), np.zeros(1), "x", params={"a": object()})
    idx = np.array([3, 1])
    sel = Selection(idx, [0.5, 0.25], "x")
    idx[0] = 7  # the selection owns a copy
    assert sel.indices.tolist() == [3, 1] and len(sel) == 2
    with pytest.raises(ValueError):
        sel.indices[0] = 5


def test_mms_1d_known_order() -> None:
    # mean = 4.4; nearest is 4; then the farthest from 4 is 10, then 0, then 7 (or 2 -> 7 wins:
    # d(7,{4,10}) = 3 > d(2,{0,4}) = 2), then 2 ...
    X = np.array([[0.0], [2.0], [4.0], [7.0], [10.0]])
    sel = MMS().select(X, 5)
    assert sel.indices.tolist() == [2, 4, 0, 3, 1]
    # covering radius after each pick
    assert np.allclose(sel.scores, [6.0, 4.0, 3.0, 2.0, 0.0])


def test_mms_ties_lowest_index() -> None:
    X = np.array([[-1.0], [1.0], [0.0], [-1.0], [1.0]])
    sel = MMS().select(X, 4)
    # start: 0 is nearest the mean (row 2); -1 and 1 tie at distance 1 -> lowest index 0;
    # then row 1 (distance 2); then duplicates at distance 0 -> lowest index 3.
    assert sel.indices.tolist() == [2, 0, 1, 3]


def test_mms_square_corners() -> None:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [0.5, 0.5]], dtype=np.float32)
    sel = MMS().select(X, 3)
    assert sel.indices[0] == 4 and set(sel.indices[1:].tolist()) <= {0, 1, 2, 3}
    assert sel.indices[1] == 0  # all corners tie: lowest index
    # every remaining corner is sqrt(0.5) from the centre (nearer than to row 0): tie -> row 1
    assert sel.indices[2] == 1
    assert np.allclose(sel.scores[1:], np.sqrt(0.5))


def _three_blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    sizes = [50, 30, 20]
    X = np.concatenate(
        [c + rng.standard_normal((s, 2)) for c, s in zip(centres, sizes, strict=True)]
    )
    y = np.repeat([0, 1, 2], sizes)
    return X.astype(np.float32), y


def test_clc_one_per_cluster_in_size_order() -> None:
    X, y = _three_blobs()
    sel = CLC().select(X, 3, seed=0)
    assert sorted(y[sel.indices].tolist()) == [0, 1, 2]
    assert y[sel.indices].tolist() == [0, 1, 2]  # by cluster size, largest first
    # the kept image is the one nearest its cluster's mean (k-means converges to the means)
    for i in sel.indices:
        members = X[y == y[i]]
        mean = members.mean(axis=0)
        nearest = np.argmin(((members - mean) ** 2).sum(axis=1))
        assert np.allclose(members[nearest], X[i])
    assert (sel.scores < 1.0).all()


def test_clc_full_budget_and_collisions() -> None:
    X = np.repeat(np.eye(2, dtype=np.float32), 3, axis=0)  # 2 points x 3 copies
    sel = CLC().select(X, 6)
    assert sel.indices.tolist() == list(range(6))
    sel = CLC().select(X, 4, seed=1)  # centroids collide on duplicates: next-nearest unused
    assert np.unique(sel.indices).size == 4


def test_srs_uniform_and_prefix() -> None:
    n, k = 50, 10
    counts = np.zeros(n)
    for seed in range(400):
        sel = SRS().select(np.zeros((n, 1)), k, seed=seed)
        counts[sel.indices] += 1
        assert np.all(np.diff(sel.scores) >= 0)  # draws increase along the order
    expected = 400 * k / n  # 80 per row
    assert counts.min() > expected * 0.55 and counts.max() < expected * 1.45
    # chi-square-ish sanity on the spread
    assert ((counts - expected) ** 2 / expected).sum() < 2.0 * n


def test_rkmeans_equal_shares() -> None:
    assert equal_shares(10, np.array([100, 100, 100])).tolist() == [4, 3, 3]
    assert equal_shares(10, np.array([2, 100, 100])).tolist() == [2, 4, 4]
    assert equal_shares(5, np.array([1, 1, 1, 50])).tolist() == [1, 1, 1, 2]
    assert equal_shares(0, np.array([3])).tolist() == [0]
    assert equal_shares(6, np.array([1, 2, 3])).tolist() == [1, 2, 3]


def test_rkmeans_round_robin_over_clusters() -> None:
    X, y = _three_blobs()
    sel = RKMeans(n_clusters=3).select(X, 9, seed=0)
    assert np.bincount(y[sel.indices]).tolist() == [3, 3, 3]
    assert y[sel.indices[:3]].tolist() == [0, 1, 2]  # first of every cluster, largest first
    assert sel.info["n_clusters"] == 3
    # within a cluster: nearest the centre first
    for c in range(3):
        s = sel.scores[y[sel.indices] == c]
        assert np.all(np.diff(s) >= 0)
    capped = RKMeans(n_clusters=3).select(X, 60, seed=0)  # cluster 2 has 20 images only
    assert np.bincount(y[capped.indices]).tolist() == [20, 20, 20]


def test_des_prefers_boundary() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal([-5, 0], 0.5, (100, 2))
    b = rng.normal([5, 0], 0.5, (100, 2))
    mid = rng.normal([0, 0], 0.3, (10, 2))
    X = np.concatenate([a, b, mid]).astype(np.float32)
    sel = DES(base_fraction=1.0, n_prototypes=2).select(X, 10, seed=0)
    assert (sel.indices >= 200).sum() >= 8
    assert np.all(np.diff(sel.scores) <= 0)
    assert (sel.scores <= np.log(2) + 1e-12).all()


def test_distance_entropy_hand_case() -> None:
    P = np.array([[0.0], [2.0]])
    X = np.array([[1.0], [0.0]])
    h = distance_entropy(X, P, temperature=1.0)
    assert np.isclose(h[0], np.log(2))  # equidistant: uniform softmax
    # row 1: distances (0, 2); scale = median nearest distance = median(1, 0) = 0.5
    w = np.exp(np.array([0.0, -4.0]))
    w /= w.sum()
    assert np.isclose(h[1], -(w * np.log(w)).sum())


@pytest.mark.parametrize("name", ["mms", "clc"])
def test_planted_near_duplicates_kept_less_than_random(name: str) -> None:
    """Groups of tight jittered copies: MMS and CLC keep fewer copies than SRS."""
    rng = np.random.default_rng(7)
    d = 16
    spread = rng.standard_normal((300, d))
    groups = rng.standard_normal((20, d)) * 1.5
    dups = np.repeat(groups, 15, axis=0) + 1e-3 * rng.standard_normal((300, d))
    X = np.concatenate([spread, dups]).astype(np.float32)
    is_dup = np.arange(600) >= 300
    budget = 100

    def redundant(idx: np.ndarray) -> int:
        grp = (idx[is_dup[idx]] - 300) // 15
        return int(grp.size - np.unique(grp).size)  # copies beyond the first of each group

    srs = np.mean([redundant(SRS().select(X, budget, seed=s).indices) for s in range(5)])
    got = redundant(get_reducer(name).select(X, budget, seed=0).indices)
    assert got < srs / 2, (got, srs)
