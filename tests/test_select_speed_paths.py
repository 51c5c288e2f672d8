"""The pruned fast paths of MMS against the naive reference, on data that triggers them.

Cells (rows grouped around centres; pick/cell pairs skipped by the triangle
inequality) normally form only for thousands of rows; here the thresholds are
lowered so that small clustered sets, with ties and duplicates, go through them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_select_mms import naive_mms

from detprune.select import mms
from detprune.select.mms import farthest_points


@pytest.fixture
def small_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Form cells from 32 rows on (4 rows per cell) instead of thousands."""
    monkeypatch.setattr(mms, "_ROWS_PER_CELL", 4)


@st.composite
def clustered(draw):
    d = draw(st.integers(1, 6))
    modes = draw(st.integers(1, 6))
    n = draw(st.integers(32, 160))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["tight", "grid", "duplicates", "float64"]))
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((modes, d)) * 20
    lab = rng.integers(0, modes, n)
    if kind == "grid":  # clusters of integer points: many exact ties
        X = (np.round(centres)[lab] + rng.integers(-1, 2, (n, d))).astype(np.float32)
    elif kind == "duplicates":
        X = (centres[lab] + rng.standard_normal((n, d))).astype(np.float32)
        X[rng.integers(0, n, n // 3)] = X[rng.integers(0, n)]
    elif kind == "tight":
        X = (centres[lab] + 1e-3 * rng.standard_normal((n, d))).astype(np.float32)
    else:
        X = centres[lab] + rng.standard_normal((n, d))
    k = draw(st.integers(1, n))
    batch = draw(st.sampled_from([1, 3, 16, 256]))
    return X, k, batch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clustered())
def test_cells_match_naive(case) -> None:
    X, k, batch = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mms, "_ROWS_PER_CELL", 4)  # cells from 32 rows on
        picks, radius = farthest_points(X, k, batch_size=batch, device="cpu")
    ref, ref_radius = naive_mms(X, k)
    assert picks.tolist() == ref.tolist()
    scale = max(1.0, float(np.abs(X).max()))
    assert np.allclose(radius, ref_radius, rtol=1e-9, atol=1e-7 * scale)


def test_cells_large_clustered_matches_naive() -> None:
    """Default thresholds: 5 000 clustered rows in 64-d (cells on), k = half."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((15, 64))
    lab = rng.integers(0, 15, 5000)
    X = (centres[lab] + 0.3 * rng.standard_normal((5000, 64))).astype(np.float32)
    X[rng.integers(0, 5000, 50)] = X[11]  # exact duplicates
    picks, radius = farthest_points(X, 2500, device="cpu")
    ref, ref_radius = naive_mms(X, 2500)
    assert picks.tolist() == ref.tolist()
    assert np.allclose(radius, ref_radius, rtol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 33])
def test_degenerate_sizes(small_cells, n: int) -> None:
    X = np.zeros((n, 1), dtype=np.float32)
    X[-1] = 1.0
    for k in {1, n}:
        picks, radius = farthest_points(X, k, device="cpu")
        ref, ref_radius = naive_mms(X, k)
        assert picks.tolist() == ref.tolist()
        assert np.allclose(radius, ref_radius)


# --------------------------------------------------------------------------- projection screen


@pytest.fixture
def spy_screen(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Count the screened updates and the pairs they let through."""
    seen = {"calls": 0, "passed": 0, "pairs": 0}
    inner = mms._NumpyBackend._screen_rows

    def spy(self, m, idx, s, e):
        passed = inner(self, m, idx, s, e)
        seen["calls"] += 1
        seen["passed"] += passed
        seen["pairs"] += idx.size * (e - s)
        return passed

    monkeypatch.setattr(mms._NumpyBackend, "_screen_rows", spy)
    return seen


@st.composite
def low_rank(draw):
    """Rows near a few directions (what the screen is for), with ties and duplicates."""
    n = draw(st.integers(32, 140))
    d = draw(st.integers(8, 20))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["low-rank", "offset", "grid", "duplicates"]))
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2)) @ rng.standard_normal((2, d)) * 5
    X += 0.05 * rng.standard_normal((n, d))
    if kind == "offset":  # a large common offset: float32 rounding of the projection matters
        X = X * 1e-3 + 1e3
    elif kind == "grid":
        X = np.round(X)
    elif kind == "duplicates":
        X[rng.integers(0, n, n // 3)] = X[rng.integers(0, n)]
    k = draw(st.integers(1, n))
    batch = draw(st.sampled_from([2, 16, 256]))
    return X.astype(np.float32), k, batch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(low_rank())
def test_screen_matches_naive(case) -> None:
    """The screen on from the first batch, every passing pair gathered (no dense blocks)."""
    X, k, batch = case
    with pytest.MonkeyPatch.context() as mp:
        for name, value in [("_ROWS_PER_CELL", 4), ("_RANK", 2), ("_SCREEN_AFTER", 1),
                            ("_SCREEN_TRY", 0.0), ("_SCREEN_MIN_VARIANCE", 0.0),
                            ("_SCREEN_DENSE", 1.0), ("_SCREEN_STOP", 2.0), ("_GATHER", 7)]:
            mp.setattr(mms, name, value)
        picks, radius = farthest_points(X, k, batch_size=batch, device="cpu")
    ref, ref_radius = naive_mms(X, k)
    assert picks.tolist() == ref.tolist()
    scale = max(1.0, float(np.abs(X).max()))
    assert np.allclose(radius, ref_radius, rtol=1e-9, atol=1e-7 * scale)


def test_screen_on_low_rank_rows(spy_screen: dict) -> None:
    """Default thresholds: 4 000 unclustered rows of most variance in a few directions (as
    real backbone embeddings): the cells cannot prune, the screen takes over and lets
    through a small share of the pairs; the picks stay those of the naive reference."""
    rng = np.random.default_rng(5)
    n, d = 4000, 4 * mms._RANK
    X = rng.standard_normal((n, 24)) @ rng.standard_normal((24, d))
    X += 0.3 * rng.standard_normal((n, d))
    X = X.astype(np.float32)
    picks, radius = farthest_points(X, 1500, device="cpu")
    ref, ref_radius = naive_mms(X, 1500)
    assert picks.tolist() == ref.tolist()
    assert np.allclose(radius, ref_radius, rtol=1e-9)
    assert spy_screen["calls"] > 0
    assert spy_screen["passed"] < 0.05 * spy_screen["pairs"]


def test_screen_stays_off_without_low_rank_structure(spy_screen: dict) -> None:
    """Isotropic rows: the axes hold too little of the variance; no screened update."""
    X = np.random.default_rng(6).standard_normal((3000, 4 * mms._RANK)).astype(np.float32)
    picks, _ = farthest_points(X, 800, device="cpu")
    assert picks.tolist() == naive_mms(X, 800)[0].tolist()
    assert spy_screen["calls"] == 0


def test_screen_mask_never_drops_a_pair_that_lowers_m() -> None:
    """The bound with float32 rounding: rows exactly in the span of the axes, so that
    projected and true distances agree up to rounding; every pair whose squared distance
    is at most the row's ``m`` (each row's pair with its nearest pick is exactly at it)
    passes, and most others are ruled out. Without the rounding terms tight pairs fail."""
    rng = np.random.default_rng(8)
    n, d = 600, 64
    X = 1e-3 * (rng.standard_normal((n, 3)) @ rng.standard_normal((3, d)))
    X -= X.mean(axis=0)
    sq = (X**2).sum(axis=1)
    V = mms.principal_axes(X[::3].astype(np.float32), 4, 0.0)
    sc = mms._Screen(X, sq, V, np.arange(0, n, 3))
    P = X.astype(np.float32) @ V
    idx = rng.choice(n, 40, replace=False)
    D = ((X[idx][:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    m = D.min(axis=0)
    M = sc.mask(P, sc.pa, m, P[idx], float(sc.pa[idx].max()), 0.0)
    assert M[D <= m[None, :]].all()
    assert M.mean() < 0.2
