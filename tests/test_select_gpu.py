"""GPU code paths (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from detprune.select import _device

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _device.cuda_available(), reason="needs a CUDA GPU"),
]


def test_mms_cuda_matches_cpu() -> None:
    from detprune.select.mms import farthest_points

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 64)).astype(np.float32)
    a, ra = farthest_points(X, 800, device="cpu")
    b, rb = farthest_points(X, 800, device="cuda")
    assert np.array_equal(a, b)
    assert np.allclose(ra, rb, rtol=1e-9)


def test_epsilon_cuda_matches_cpu() -> None:
    from detprune.select.represent import nearest_kept

    rng = np.random.default_rng(1)
    K = rng.standard_normal((800, 64)).astype(np.float32)
    Q = rng.standard_normal((1000, 64)).astype(np.float32)
    a = nearest_kept(Q, K, device="cpu")
    b = nearest_kept(Q, K, device="cuda")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_faiss_gpu_knn_if_available() -> None:
    pytest.importorskip("faiss")  # the GPU paths of MMS and ε need no FAISS
    from detprune.select import _knn

    if not _knn.faiss_gpu_available():
        pytest.skip("FAISS without GPU support")
    rng = np.random.default_rng(2)
    base = rng.standard_normal((500, 16)).astype(np.float32)
    _, idx = _knn.knn(base, base[:10], 1)
    assert idx[:, 0].tolist() == list(range(10))
