"""Behaviour of PRD, PHL, NRMD, FES, VQ, FLOW and FL on planted synthetic data."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from detprune.errors import MissingDependencyError, ParameterError
from detprune.select import get_reducer, stratified_select
from detprune.select.vq import dampened_quotas


def _blobs(sizes: list[int], d: int, sep: float, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), d))
    centres *= sep / np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.concatenate(
        [c + spread * rng.standard_normal((s, d)) for c, s in zip(centres, sizes, strict=True)]
    )
    y = np.repeat(np.arange(len(sizes)), sizes)
    return X.astype(np.float32), y


def _dense_plus_spread(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """600 images in a tight cluster (redundant) + 400 spread over a wide region."""
    rng = np.random.default_rng(seed)
    dense = 0.02 * rng.standard_normal((600, 4))
    spread = rng.uniform(-2.0, 2.0, (400, 4))
    X = np.concatenate([dense, spread]).astype(np.float32)
    return X, np.r_[np.ones(600, bool), np.zeros(400, bool)]


def _srs_dense_fraction(X: np.ndarray, is_dense: np.ndarray, budget: int) -> float:
    fr = [is_dense[get_reducer("srs").select(X, budget, seed=s).indices].mean() for s in range(5)]
    return float(np.mean(fr))


@pytest.mark.parametrize("maxdim", [0, 1])
def test_phl_vital_picks_outliers_representative_avoids_them(maxdim: int) -> None:
    rng = np.random.default_rng(0)
    inliers = rng.standard_normal((300, 5))
    outliers = rng.standard_normal((6, 5))
    outliers = 12.0 * outliers / np.linalg.norm(outliers, axis=1, keepdims=True)
    X = np.concatenate([inliers, outliers]).astype(np.float32)
    planted = set(range(300, 306))
    vital = get_reducer("phl", mode="vital", maxdim=maxdim).select(X, 6)
    assert set(vital.indices.tolist()) == planted
    rep = get_reducer("phl", mode="representative", maxdim=maxdim).select(X, 250)
    assert planted.isdisjoint(rep.indices.tolist())
    assert np.all(np.diff(rep.scores) >= 0) and np.all(np.diff(vital.scores) <= 0)


def test_phl_too_few_neighbours_go_last() -> None:
    X = np.concatenate([np.zeros((5, 3)), np.eye(3) * 4.0]).astype(np.float32)  # 5 duplicates
    for mode in ("representative", "vital"):
        sel = get_reducer("phl", mode=mode, k=3).select(X, 8)
        assert sel.info["undefined"] >= 1


def test_phl_missing_ripser_has_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ripser", None)
    X = np.random.default_rng(0).standard_normal((30, 3))
    with pytest.raises(MissingDependencyError, match=r"detprune\[topology\]"):
        get_reducer("phl").select(X, 5)
    assert len(get_reducer("phl", maxdim=0).select(X, 5)) == 5  # the MST fast path needs none


def test_vq_thins_the_dense_cluster_most() -> None:
    X, is_dense = _dense_plus_spread()
    budget = 200
    sel = get_reducer("vq").select(X, budget, seed=0)
    assert is_dense[sel.indices].mean() < 0.5 * _srs_dense_fraction(X, is_dense, budget)


def test_vq_quotas() -> None:
    q = dampened_quotas(np.array([100, 25, 4, 0, 1]), 20, 0.5)
    assert q.sum() == 20 and (q <= [100, 25, 4, 0, 1]).all() and q[3] == 0
    assert q[0] > q[1] > q[2]
    assert q[0] / 100 < q[2] / 4  # the big codeword is thinned most
    assert dampened_quotas(np.array([3, 3, 3]), 9, 0.5).tolist() == [3, 3, 3]
    assert dampened_quotas(np.array([10, 30]), 8, 1.0).tolist() == [2, 6]


def test_fl_covers_every_planted_cluster() -> None:
    sizes = [120, 80, 60, 40, 30, 25, 20, 15]
    X, y = _blobs(sizes, d=8, sep=20.0, spread=0.5)
    sel = get_reducer("fl").select(X, 24)
    assert set(y[sel.indices].tolist()) == set(range(len(sizes)))
    assert np.all(np.diff(sel.scores) <= 1e-9)  # submodular: gains never increase


def test_prd_picks_one_per_tight_cluster_first() -> None:
    X, y = _blobs([40, 60, 30, 50, 45], d=6, sep=10.0, spread=0.2)
    sel = get_reducer("prd").select(X, 12)
    assert sorted(y[sel.indices[:5]].tolist()) == [0, 1, 2, 3, 4]
    sparse = get_reducer("prd", dense_max=10, k=64).select(X, 12)  # k-NN kernel path
    assert sorted(y[sparse.indices[:5]].tolist()) == [0, 1, 2, 3, 4]
    assert sparse.info["dense"] is False


def test_nrmd_picks_large_leverage_points() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 10))
    direction = rng.standard_normal(10)
    direction /= np.linalg.norm(direction)
    X[:5] = np.outer(np.array([9.0, -10.0, 11.0, -12.0, 13.0]), direction)
    sel = get_reducer("nrmd").select(X.astype(np.float32), 5)
    assert set(sel.indices.tolist()) == set(range(5))
    assert np.all(np.diff(sel.scores) <= 0)
    fixed = get_reducer("nrmd", n_components=1).select(X, 5)
    assert fixed.info["n_components"] == 1 and set(fixed.indices.tolist()) == set(range(5))


def test_fes_ranks_noisy_labels_as_most_forgotten() -> None:
    X, y = _blobs([200, 200, 200], d=16, sep=4.0, spread=1.0, seed=1)
    Y = np.eye(3, dtype=bool)[y]
    rng = np.random.default_rng(0)
    noisy = rng.choice(600, 30, replace=False)
    Y[noisy] = np.eye(3, dtype=bool)[(y[noisy] + 1) % 3]  # flipped targets
    sel = get_reducer("fes", epochs=12).select(X, 60, seed=0, targets=Y)
    hit = np.isin(sel.indices, noisy).sum()
    assert hit >= 20, hit  # 5 % base rate -> at most ~3 by chance
    assert 0.0 <= sel.info["accuracy"] <= 1.0 and sel.info["accuracy"] > 0.8


def test_fes_needs_targets() -> None:
    X = np.random.default_rng(0).standard_normal((40, 4))
    with pytest.raises(
        ParameterError, match=r"^The 'targets' parameter of FES must be a 2-D boolean"
    ):
        get_reducer("fes").select(X, 5)
    with pytest.raises(ParameterError, match=r"^The 'targets' parameter of FES must be"):
        get_reducer("fes").select(X, 5, targets=np.ones((39, 2), bool))
    with pytest.raises(ParameterError, match=r"^The 'classes' parameter of stratified_select"):
        stratified_select(get_reducer("fes"), X, 5)
    # reducers without targets ignore them
    a = get_reducer("srs").select(X, 5, targets=np.ones((40, 2), bool))
    assert a == get_reducer("srs").select(X, 5)


def test_stratified_passes_stratum_targets() -> None:
    X, y = _blobs([60, 60], d=5, sep=5.0, spread=1.0)
    classes = np.eye(2, dtype=bool)[y]
    sel = stratified_select(get_reducer("fes", epochs=3), X, 20, strata=y, classes=classes)
    assert len(sel) == 20 and set(sel.info["strata_info"]) == {"0", "1"}


@pytest.mark.parametrize("density", ["flow", "gmm"])
def test_flow_keeps_fewer_from_dense_cluster_than_srs(density: str) -> None:
    X, is_dense = _dense_plus_spread()
    budget = 200
    sel = get_reducer("flow", density=density, epochs=10).select(X, budget, seed=0)
    assert is_dense[sel.indices].mean() < 0.6 * _srs_dense_fraction(X, is_dense, budget)
