"""Feature space, near-duplicates and the FAISS wrapper."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detprune.errors import ParameterError
from detprune.select import _knn, build_feature_space, dedup_mask, near_duplicates


def test_feature_space_normalises_and_scales_boxes() -> None:
    rng = np.random.default_rng(0)
    E = rng.standard_normal((200, 32)) * 5
    E[3] = 0.0  # a zero row stays zero
    out = build_feature_space(E)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (200, 32)
    norms = np.linalg.norm(out, axis=1)
    assert np.allclose(np.delete(norms, 3), 1.0, atol=1e-6) and norms[3] == 0
    B = np.column_stack([rng.random(200), rng.integers(0, 5, 200), np.ones(200)])
    for w in (0.1, 0.3, 0.6):
        Z = build_feature_space(E, B, box_weight=w).astype(np.float64)
        va = Z[:, :32].var(axis=0).sum()
        vb = Z[:, 32:].var(axis=0).sum()
        assert np.isclose(vb / (va + vb), w, rtol=1e-4)
        assert np.all(Z[:, -1] == 0)  # constant column
    assert build_feature_space(E, B, box_weight=0.0).shape == (200, 32)


def test_feature_space_pca_seeded() -> None:
    rng = np.random.default_rng(1)
    E = rng.standard_normal((100, 20))
    a = build_feature_space(E, pca_dim=5, seed=3)
    b = build_feature_space(E, pca_dim=5, seed=3)
    assert a.shape == (100, 5) and np.array_equal(a, b)
    w = build_feature_space(E, pca_dim=5, whiten=True).astype(np.float64)
    assert np.allclose(w.var(axis=0, ddof=1), 1.0, rtol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"box_weight": 1.0}, "box_weight"),
        ({"box_weight": -0.1}, "box_weight"),
        ({"pca_dim": 0}, "pca_dim"),
        ({"pca_dim": 11}, "pca_dim"),
        ({"whiten": True}, "whiten"),
        ({"whiten": 1}, "whiten"),
        ({"seed": -2}, "seed"),
        ({"box_stats": np.ones((3, 2))}, "box_stats"),
    ],
)
def test_feature_space_rejects(kwargs: dict, name: str) -> None:
    E = np.ones((10, 10))
    with pytest.raises(ParameterError, match=rf"^The '{name}' parameter of build_feature_space"):
        build_feature_space(E, **kwargs)


def test_near_duplicates_groups() -> None:
    X = np.array([[0.0], [0.05], [0.1], [5.0], [5.0], [9.0], [20.0]], dtype=np.float32)
    groups = near_duplicates(X, 0.06)
    assert [g.tolist() for g in groups] == [[0, 1, 2], [3, 4]]  # transitive chain 0-1-2
    assert near_duplicates(X, 0.0)[0].tolist() == [3, 4]  # exact copies at threshold 0
    # the cover is not transitive: 0 covers 1 (0.05 away), not 2 (0.1 away), which stays
    keep, groups = dedup_mask(X, 0.06)
    assert keep.tolist() == [True, False, True, True, False, True, True]
    assert [g.tolist() for g in groups] == [[0, 1], [3, 4]]
    keep, _ = dedup_mask(X, 0.06, prefer=np.array([0, 0, 1, 0, 2, 0, 0.0]))
    assert keep.tolist() == [True, False, True, False, True, True, True]  # 2 first: covers 1
    # rows with other labels are never duplicates of each other
    keep, groups = dedup_mask(X, 0.06, labels=np.array([0, 1, 1, 0, 2, 0, 0]))
    assert keep.tolist() == [True, True, False, True, True, True, True]
    assert [g.tolist() for g in groups] == [[1, 2]]
    with pytest.raises(ParameterError, match="The 'threshold' parameter of near_duplicates"):
        near_duplicates(X, -1)
    with pytest.raises(ParameterError, match="The 'prefer' parameter of dedup_mask"):
        dedup_mask(X, 0.1, prefer=np.ones(3))
    with pytest.raises(ParameterError, match="The 'labels' parameter of dedup_mask"):
        dedup_mask(X, 0.1, labels=np.zeros(7) + 0.5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 3.0), st.booleans())
def test_dedup_cover_against_its_definition(seed: int, threshold: float, labelled: bool) -> None:
    """Every dropped row lies within the threshold of a kept row of its label, and kept
    rows of one label are more than the threshold apart (brute force)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 3)).astype(np.float32)
    X[10:20] = X[0] + 0.01 * rng.standard_normal((10, 3))  # a tight cluster
    lab = rng.integers(0, 3, 60) if labelled else np.zeros(60, dtype=np.int64)
    keep, groups = dedup_mask(X, threshold, labels=lab)
    D = np.sqrt(((X[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1))
    same = lab[:, None] == lab[None, :]
    tol = 1e-5 * (1 + threshold)
    for i in np.flatnonzero(~keep):
        assert (D[i, keep & same[i]] <= threshold + tol).any()
    for u in np.unique(lab):
        kept = np.flatnonzero(keep & (lab == u))
        sub = D[np.ix_(kept, kept)] + np.eye(kept.size) * 1e9
        assert (sub > threshold - tol).all()
    assert sorted(int(i) for g in groups for i in g if not keep[i]) == np.flatnonzero(~keep).tolist()


def test_knn_wrapper() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50, 4))
    q = rng.standard_normal((7, 4))
    dist, idx = _knn.knn(base, q, 3)
    ref = np.sqrt(((q[:, None] - base[None]) ** 2).sum(-1))
    assert idx.dtype == np.int64 and idx.shape == (7, 3)
    assert np.array_equal(idx[:, 0], ref.argmin(1))
    assert np.allclose(dist, np.sort(ref, axis=1)[:, :3], atol=1e-4)
    assert _knn.knn(base, q, 100)[1].shape == (7, 50)
    lims, d, i = _knn.range_search(base, 1.0)
    assert lims.shape == (51,) and all(k in i[lims[k] : lims[k + 1]] for k in range(50))
    assert (d <= 1.0 + 1e-5).all()


def test_kmeans_seeded_and_kmeanspp() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5)).astype(np.float32)
    a = _knn.kmeans(X, 7, seed=1)
    assert a.shape == (7, 5) and np.array_equal(a, _knn.kmeans(X, 7, seed=1))
    assert not np.array_equal(a, _knn.kmeans(X, 7, seed=2))
    idx = _knn.kmeanspp_init(X, 50, seed=0)
    assert np.unique(idx).size == 50
    dup = np.repeat(X[:5], 4, axis=0)  # 5 distinct points: then uniform over the rest
    assert np.unique(_knn.kmeanspp_init(dup, 8, seed=0)).size == 8


def test_box_statistics_still_count_when_every_image_looks_the_same() -> None:
    """Embeddings equal up to float32 rounding (byte-identical images) have no real
    spread: the box block keeps its weight instead of being scaled to that noise."""
    rng = np.random.default_rng(1)
    row = rng.standard_normal(448).astype(np.float32)
    E = np.repeat(row[None], 40, axis=0) * (1 + 1e-7 * rng.standard_normal((40, 1))).astype(np.float32)
    E += 1e-8 * rng.standard_normal(E.shape).astype(np.float32)
    B = rng.random((40, 6))
    F = build_feature_space(E, B, box_weight=0.3)
    box = F[:, 448:].astype(np.float64)
    assert box.var(axis=0).sum() == pytest.approx(0.3, rel=1e-4)
    assert F[:, :448].astype(np.float64).var(axis=0).sum() < 1e-10
