"""MMS (exact farthest-point) against a naive float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detprune.select import MMS
from detprune.select.mms import farthest_points


def naive_mms(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """O(n k d) reference: float64 distances sum((x - c)**2), ties -> lowest index."""
    X64 = np.asarray(X, dtype=np.float64)
    n = X64.shape[0]
    mu = X64.mean(axis=0)
    first = int(np.argmin(((X64 - mu) ** 2).sum(axis=1)))
    picks = [first]
    m = ((X64 - X64[first]) ** 2).sum(axis=1)
    m[first] = -np.inf
    radius = []
    for _ in range(k - 1):
        p = int(np.argmax(m))
        radius.append(m[p])
        picks.append(p)
        m = np.minimum(m, ((X64 - X64[p]) ** 2).sum(axis=1))
        m[picks] = -np.inf
    radius.append(max(m.max(), 0.0) if len(picks) < n else 0.0)
    return np.array(picks), np.sqrt(np.array(radius))


@st.composite
def point_sets(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["grid", "float32", "float64"]))
    if kind == "grid":  # many exact ties and duplicates
        X = draw(arrays(np.int8, (n, d), elements=st.integers(-2, 2))).astype(np.float32)
    elif kind == "float32":
        X = draw(arrays(np.float32, (n, d), elements=st.floats(-1e3, 1e3, width=32), unique=False))
    else:
        X = draw(arrays(np.float64, (n, d), elements=st.floats(-10, 10)))
    k = draw(st.integers(1, n))
    batch = draw(st.sampled_from([1, 2, 5, 256]))
    return X, k, batch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point_sets())
def test_matches_naive(case) -> None:
    X, k, batch = case
    picks, radius = farthest_points(X, k, batch_size=batch, device="cpu")
    ref, ref_radius = naive_mms(X, k)
    assert picks.tolist() == ref.tolist()
    # radii come from |x|^2 - 2 x.c + |c|^2 in float64: the error of a distance is
    # bounded by sqrt(eps64) times the data's scale, not by an absolute 1e-9
    scale = max(1.0, float(np.abs(X).max()))
    assert np.allclose(radius, ref_radius, rtol=1e-9, atol=1e-7 * scale)


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_matches_naive_medium(device: str) -> None:
    """Large enough to use cell pruning (numpy) and many batches; duplicates included."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((12, 24)) * 4
    X = (centres[rng.integers(0, 12, 2600)] + rng.standard_normal((2600, 24))).astype(np.float32)
    X[rng.integers(0, 2600, 200)] = X[5]  # exact duplicates
    k = 900
    picks, radius = farthest_points(X, k, batch_size=64, device=device)
    ref, ref_radius = naive_mms(X, k)
    assert picks.tolist() == ref.tolist()
    assert np.allclose(radius, ref_radius, rtol=1e-9)
    assert np.all(np.diff(radius) <= 1e-12)


def test_batch_size_does_not_change_result() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 8))
    a = MMS(batch_size=1).select(X, 200)
    b = MMS(batch_size=1000).select(X, 200)
    c = MMS().select(X, 200)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.indices, c.indices)
    assert np.allclose(a.scores, b.scores, rtol=1e-12) and np.allclose(a.scores, c.scores)


def test_all_duplicates() -> None:
    X = np.ones((20, 3), dtype=np.float32)
    sel = MMS().select(X, 20)
    assert sel.indices.tolist() == list(range(20))
    assert np.all(sel.scores == 0)


def test_mms_cuda_requested_without_gpu() -> None:
    from detprune.errors import ParameterError
    from detprune.select import _device

    if _device.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ParameterError, match="The 'device' parameter of MMS"):
        MMS(device="cuda").select(np.zeros((3, 2)), 1)
