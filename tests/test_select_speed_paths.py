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
