"""ε-representativeness: hand cases, brute force agreement, warnings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detprune.errors import ParameterError
from detprune.select import EpsilonReport, epsilon, represent
from detprune.select._threads import Workers
from detprune.select.represent import nearest_kept


@pytest.fixture(autouse=True)
def _cells_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The L2 search's cells, projection and routes are what these tests exercise, on
    sets small enough that it would otherwise take one plain pass (``SMALL_PAIRS``;
    tested on its own in ``test_small_sets_take_one_plain_pass``)."""
    monkeypatch.setattr(represent._L2Search, "SMALL_PAIRS", 0)


def brute(Q: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Q64 = np.asarray(Q, dtype=np.float64)
    K64 = np.asarray(K, dtype=np.float64)
    diff = Q64[:, None, :] - K64[None, :, :]
    return np.sqrt((diff**2).sum(-1)).min(1), np.abs(diff).max(-1).min(1)


def test_hand_case_with_missing_class() -> None:
    X = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [10.0, 10.0], [10.0, 12.0]])
    labels = np.array([0, 0, 0, 1, 1])
    with pytest.warns(UserWarning, match="class 1: 2 image"):
        rep = epsilon(X, [0], labels=labels)
    assert isinstance(rep, EpsilonReport)
    assert rep.classes == (0, 1)
    assert rep.n_total == (3, 2) and rep.n_kept == (1, 0)
    assert rep.eps_linf[0] == 4.0 and rep.eps_l2[0] == 5.0
    assert math.isclose(rep.mean_l2[0], (0 + 5 + 1) / 3)
    assert rep.eps_linf[1] == math.inf and rep.eps_l2[1] == math.inf
    assert rep.overall_linf == math.inf and rep.eps == math.inf
    assert len(rep.warnings) == 1 and "none kept" in rep.warnings[0]
    json.dumps(rep.to_dict())


def test_same_class_only_and_multihot() -> None:
    # image 2 holds classes 0 and 1; it is compared with kept images of each class separately
    X = np.array([[0.0], [5.0], [2.0], [9.0]])
    classes = np.array([[1, 0], [0, 1], [1, 1], [0, 1]], dtype=bool)
    rep = epsilon(X, [0, 3], labels=classes)
    # class 0: members 0, 2; kept 0 -> eps 2.  class 1: members 1, 2, 3; kept 3 -> 4, 7, 0
    assert rep.eps_linf == (2.0, 7.0)
    assert rep.overall_linf == 7.0 and rep.overall_l2 == 7.0
    assert rep.per_class()[1] == {
        "class": 1,
        "n_total": 3,
        "n_kept": 1,
        "eps_linf": 7.0,
        "eps_l2": 7.0,
        "mean_l2": pytest.approx(11 / 3),
    }


def test_no_labels_absent_class_and_all_kept() -> None:
    X = np.array([[0.0, 0.0], [1.0, 2.0]])
    rep = epsilon(X, [0])
    assert rep.classes == (0,) and rep.eps_linf == (2.0,)
    classes = np.array([[1, 0], [1, 0]], dtype=bool)  # class 1 has no image: vacuous
    rep = epsilon(X, [0, 1], labels=classes)
    assert rep.eps_linf == (0.0, 0.0) and rep.n_total == (2, 0) and rep.warnings == ()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"kept_indices": [0, 0]}, "The 'kept_indices' parameter of epsilon"),
        ({"kept_indices": [5]}, "The 'kept_indices' parameter of epsilon"),
        ({"labels": np.zeros(2)}, "The 'labels' parameter of epsilon"),
        ({"labels": np.full((3, 2), 3)}, "The 'labels' parameter of epsilon"),
        ({"device": "gpu"}, "The 'device' parameter of epsilon must be one of"),
        ({"X": np.array([[np.nan], [1.0], [2.0]])}, "The 'X' parameter of epsilon"),
    ],
)
def test_rejects(kwargs: dict, pattern: str) -> None:
    args = {"X": np.zeros((3, 1)), "kept_indices": [0]} | kwargs
    X = args.pop("X")
    kept = args.pop("kept_indices")
    with pytest.raises(ParameterError, match=pattern):
        epsilon(X, kept, **args)


@st.composite
def query_sets(draw):
    d = draw(st.integers(1, 5))
    nq = draw(st.integers(0, 30))
    nk = draw(st.integers(1, 20))
    kind = draw(st.sampled_from(["grid", "float32", "float64"]))
    if kind == "grid":
        el = st.integers(-3, 3)
        Q = draw(arrays(np.int8, (nq, d), elements=el)).astype(np.float32)
        K = draw(arrays(np.int8, (nk, d), elements=el)).astype(np.float32)
    elif kind == "float32":
        el = st.floats(-1e4, 1e4, width=32)
        Q = draw(arrays(np.float32, (nq, d), elements=el))
        K = draw(arrays(np.float32, (nk, d), elements=el))
    else:
        el = st.floats(-1.0, 1.0)
        Q = draw(arrays(np.float64, (nq, d), elements=el))
        K = draw(arrays(np.float64, (nk, d), elements=el))
    return Q, K


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query_sets())
def test_nearest_kept_is_exact(case) -> None:
    Q, K = case
    l2, linf = nearest_kept(Q, K, device="cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(linf, rinf)
    assert np.array_equal(l2, r2)


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])
def test_nearest_kept_medium(device: str) -> None:
    rng = np.random.default_rng(1)
    K = rng.standard_normal((700, 96)).astype(np.float32)
    Q = np.concatenate(
        [
            rng.standard_normal((500, 96)).astype(np.float32),  # generic
            K[:100] + np.float32(1e-3) * rng.standard_normal((100, 96)).astype(np.float32),
            K[100:150],  # exact copies: distance 0
        ]
    )
    l2, linf = nearest_kept(Q, K, device=device)
    r2, rinf = brute(Q, K)
    assert np.array_equal(linf, rinf)
    assert np.array_equal(l2, r2)


def test_torch_path_in_small_blocks_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch path split into many query blocks (the budget forced down) stays exact."""
    rng = np.random.default_rng(4)
    K = rng.standard_normal((700, 48)).astype(np.float32)
    Q = np.concatenate([rng.standard_normal((600, 48)).astype(np.float32), K[:40]])
    monkeypatch.setattr(represent, "TORCH_CPU_BLOCK_BYTES", 25 * 700 * 64)
    import torch

    assert represent._torch_block(torch, torch.device("cpu"), 700) == 64
    l2, linf = nearest_kept(Q, K, device="torch-cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(linf, rinf)
    assert np.array_equal(l2, r2)


@pytest.mark.parametrize("concurrent", [False, True])
def test_epsilon_matches_brute_force_per_class(concurrent: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _classes_concurrently(concurrent, monkeypatch)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 12)).astype(np.float32)
    classes = rng.random((400, 3)) < 0.4
    classes[classes.sum(1) == 0, 0] = True
    kept = rng.choice(400, 120, replace=False)
    rep = epsilon(X, kept, labels=classes)
    is_kept = np.zeros(400, bool)
    is_kept[kept] = True
    for c in range(3):
        M = np.flatnonzero(classes[:, c])
        K = M[is_kept[M]]
        l2, linf = brute(X[M], X[K])
        assert rep.eps_linf[c] == linf.max()
        assert rep.eps_l2[c] == l2.max()
        assert math.isclose(rep.mean_l2[c], l2.mean(), rel_tol=1e-12)


def _classes_concurrently(on: bool, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Measure classes two at a time (two workers even on one core), or one at a time;
    returns the ids of the threads that measured a class."""
    monkeypatch.setattr(represent, "CONCURRENT_BYTES", 2**40 if on else 0)
    monkeypatch.setattr(represent, "Workers", lambda workers=None: Workers(2))
    import threading

    seen: list[int] = []
    real = represent._nearest

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(represent, "_nearest", spy)
    return seen


@pytest.mark.parametrize("d", [3, 64])
def test_classes_measured_concurrently_give_the_same_report(
    d: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(d)
    centres = rng.standard_normal((8, d)) * 4
    X = (centres[rng.integers(0, 8, 3000)] + rng.standard_normal((3000, d))).astype(np.float32)
    labels = rng.integers(0, 5, 3000)
    labels[:40] = 5  # a small class beside the large ones
    kept = rng.choice(3000, 900, replace=False)
    threads = _classes_concurrently(False, monkeypatch)
    serial = epsilon(X, kept, labels=labels)
    assert len(set(threads)) == 1
    monkeypatch.setattr(represent, "CONCURRENT_BYTES", 2**40)
    threads.clear()
    both = epsilon(X, kept, labels=labels)
    assert len(set(threads)) == 2  # really two at a time
    assert both.per_class() == serial.per_class()
    assert (both.overall_linf, both.overall_l2) == (serial.overall_linf, serial.overall_l2)


def _clustered_with_ties(seed: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Tight clusters on a coarse grid: duplicate rows, equidistant kept rows (ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(-20, 21, (6, d)).astype(np.float32)
    X = centres[rng.integers(0, 6, 900)] + rng.integers(-1, 2, (900, d)).astype(np.float32)
    X[::7] = X[1::7][: X[::7].shape[0]]  # exact duplicates
    kept = rng.random(900) < 0.4
    return X[~kept], X[kept]


@pytest.mark.parametrize("engine", ["kdtree", "int8"])
@pytest.mark.parametrize("d", [1, 3, 40])
def test_cpu_engines_exact_on_clustered_ties_duplicates(
    engine: str, d: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # force one L-inf engine: cKDTree (contrast rule always true) or the int8 codes
    monkeypatch.setattr(represent, "KD_CONTRAST", 1e100 if engine == "kdtree" else -1.0)
    Q, K = _clustered_with_ties(d, d)
    for q, k in [(Q, K), (Q, K[:1]), (Q[:5], K[:2]), (K, K), (Q.astype(np.float64), K)]:
        l2, linf = nearest_kept(q, k, device="cpu")
        r2, rinf = brute(q, k)
        assert l2.dtype == np.float64 and linf.dtype == np.float64
        assert np.array_equal(linf, rinf)
        assert np.array_equal(l2, r2)
    # kept rows are at distance 0 from themselves
    assert not nearest_kept(K, K, device="cpu")[1].any()


@pytest.mark.parametrize("engine", ["kdtree", "int8"])
def test_cpu_engines_exact_on_float32_clusters(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(represent, "KD_CONTRAST", 1e100 if engine == "kdtree" else -1.0)
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((8, 64)).astype(np.float32)
    X = centres[rng.integers(0, 8, 1500)]
    X = X + np.float32(0.05) * rng.standard_normal(X.shape).astype(np.float32)
    X[:40] = X[40:80]  # duplicates
    Q, K = X[700:], X[:700]
    l2, linf = nearest_kept(Q, K, device="cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(linf, rinf)
    assert np.array_equal(l2, r2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query_sets(), st.sampled_from([1e100, -1.0]))
def test_both_cpu_linf_engines_exact(case, contrast: float) -> None:
    Q, K = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(represent, "KD_CONTRAST", contrast)  # 1e100: cKDTree, -1: int8 codes
        l2, linf = nearest_kept(Q, K, device="cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(linf, rinf)
    assert np.array_equal(l2, r2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query_sets(), st.sampled_from([1e100, -1.0]), st.sampled_from([1, 3, 64]))
def test_max_linf_is_exact(case, contrast: float, first: int) -> None:
    # epsilon only needs the largest L-inf distance: the pruned search must equal brute force
    Q, K = case
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(represent, "KD_CONTRAST", contrast)  # 1e100: cKDTree, -1: int8 codes
        mp.setattr(represent, "FIRST_BLOCK", first)
        l2, top = represent._nearest(Q, K, "cpu", per_query=False)
    r2, rinf = brute(Q, K)
    assert top == (rinf.max() if rinf.size else 0.0)
    assert np.array_equal(l2, r2)


@pytest.mark.parametrize("engine", ["kdtree", "int8"])
@pytest.mark.parametrize("first", [1, 64])
def test_max_linf_when_l2_nearest_is_a_poor_linf_bound(
    engine: str, first: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kept rows alternate between "spiky" (small L2, large L-inf) and "flat" neighbours,
    # so the L2-nearest row often overestimates the L-inf distance and the bound
    # ordering is misleading: later queries must still be checked and some re-raised
    monkeypatch.setattr(represent, "KD_CONTRAST", 1e100 if engine == "kdtree" else -1.0)
    monkeypatch.setattr(represent, "FIRST_BLOCK", first)
    rng = np.random.default_rng(11)
    d = 24
    Q = rng.standard_normal((700, d)).astype(np.float32)
    spiky = Q[:350].copy()
    spiky[np.arange(350), rng.integers(0, d, 350)] += np.float32(0.9)
    flat = Q[350:] + np.float32(0.3) * np.sign(rng.standard_normal((350, d))).astype(np.float32)
    K = np.concatenate([spiky, flat, rng.standard_normal((200, d)).astype(np.float32)])
    for q, k in [(Q, K), (Q, K[:300]), (Q[::3], K[100:])]:
        _, top = represent._nearest(q, k, "cpu", per_query=False)
        assert top == brute(q, k)[1].max()


@pytest.mark.parametrize("dense_share", [0.0, 1e9])  # always the dense pass / always the cells
@pytest.mark.parametrize("structure", ["clusters", "none"])
def test_l2_search_routes_are_exact(
    dense_share: float, structure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(represent._L2Search, "DENSE_SHARE", dense_share)
    monkeypatch.setattr(represent._L2Search, "SAMPLE", 40)
    rng = np.random.default_rng(7)
    if structure == "clusters":
        centres = rng.standard_normal((10, 48)).astype(np.float32)
        X = centres[rng.integers(0, 10, 1600)] + np.float32(0.1) * rng.standard_normal((1600, 48)).astype(
            np.float32
        )
    else:
        X = rng.standard_normal((1600, 48)).astype(np.float32)
    X[:30] = X[30:60]  # duplicates: ties
    Q, K = X[900:], X[:900]
    l2, linf = nearest_kept(Q, K, device="cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(l2, r2)
    assert np.array_equal(linf, rinf)


@pytest.mark.parametrize(
    ("seed", "offset", "dtype"),
    [(0, 0.0, np.float32), (1, 1000.0, np.float32), (2, 0.0, np.float64), (3, -50.0, np.float64)],
)
def test_projected_screening_is_exact(seed: int, offset: float, dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dense pass screened in a low-rank projection (forced), on data whose variance
    is concentrated in a few directions, with duplicates, near-ties and a common offset."""
    monkeypatch.setattr(represent._L2Search, "DENSE_SHARE", 0.0)
    monkeypatch.setattr(represent._L2Search, "PROJECT_SHARE", 1.0)
    monkeypatch.setattr(represent._L2Search, "RANK", 6)
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((8, 40))
    X = rng.standard_normal((1500, 8)) @ basis + 0.05 * rng.standard_normal((1500, 40)) + offset
    X[:40] = X[40:80]  # duplicates
    X[80:120] = X[120:160] + 1e-7  # near-ties
    X = X.astype(dtype)
    Q, K = X[800:], X[:800]
    l2, linf = nearest_kept(Q, K, device="cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(l2, r2)
    assert np.array_equal(linf, rinf)


def test_projected_screening_falls_back_when_it_prunes_little(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(represent._L2Search, "DENSE_SHARE", 0.0)
    monkeypatch.setattr(represent._L2Search, "RANK", 4)
    monkeypatch.setattr(represent._L2Search, "PROJECT_MIN_VARIANCE", 0.0)  # try it anyway
    original = represent._L2Search._task
    monkeypatch.setattr(represent._L2Search, "_task", lambda self, *a: calls.append(a) or original(self, *a))
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1500, 40)).astype(np.float32)  # isotropic: a projection prunes little
    l2, _ = nearest_kept(X[800:], X[:800], device="cpu")
    assert np.array_equal(l2, brute(X[800:], X[:800])[0])
    assert any(s1 - s0 == 800 for s0, s1, _ in calls)  # the dense pass ran


def test_linf_witness_is_an_attained_bound_that_settles_most_queries() -> None:
    """The witness values are exact L-inf distances to kept rows (so valid upper bounds
    attained by a row), and on random-like data they leave few queries to search."""
    from detprune.select._threads import single_threaded_blas

    rng = np.random.default_rng(8)
    K = rng.standard_normal((900, 48)).astype(np.float32)
    Q = np.concatenate([rng.standard_normal((700, 48)).astype(np.float32), K[:20]])
    pair_linf = np.abs(Q.astype(np.float64)[:, None, :] - K[None, :, :]).max(-1)
    searched: dict[bool, int] = {}
    with Workers() as workers, single_threaded_blas():
        search = represent._L2Search(Q, K)
        search.run(workers)
        qs = np.arange(Q.shape[0])
        w = search.linf_witness(workers, qs)
        assert (w >= pair_linf.min(1)).all()
        assert (pair_linf == w[:, None]).any(axis=1).all()  # attained by a kept row
        assert (w[700:] == 0).all()  # copies of kept rows
        for use in (False, True):
            engine = represent._LinfCodes(Q, K)
            seen = []
            original = engine.search
            engine.search = lambda wk, q, u, o=original, s=seen: s.append(q.size) or o(wk, q, u)
            top = represent._max_linf(
                Q, K, search.nearest, workers, engine, search.linf_witness if use else None
            )
            assert top == pair_linf.min(1).max()
            searched[use] = sum(seen)
    assert searched[True] < searched[False] / 2


def test_projection_not_tried_where_its_axes_hold_little_variance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screened = []
    monkeypatch.setattr(represent._L2Search, "DENSE_SHARE", 0.0)
    monkeypatch.setattr(represent._L2Search, "RANK", 4)
    original = represent._L2Search._ptask
    monkeypatch.setattr(
        represent._L2Search, "_ptask", lambda self, *a: screened.append(1) or original(self, *a)
    )
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1500, 40)).astype(np.float32)  # 4 of 40 axes: ~10 % of it
    l2, _ = nearest_kept(X[800:], X[:800], device="cpu")
    assert np.array_equal(l2, brute(X[800:], X[:800])[0])
    assert not screened
    basis = rng.standard_normal((3, 40))
    Y = (rng.standard_normal((1500, 3)) @ basis + 0.01 * rng.standard_normal((1500, 40)))
    l2, _ = nearest_kept(Y[800:].astype(np.float32), Y[:800].astype(np.float32), device="cpu")
    assert np.array_equal(l2, brute(Y[800:].astype(np.float32), Y[:800].astype(np.float32))[0])
    assert screened  # 3 directions hold nearly all of it: tried


def test_small_sets_take_one_plain_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(represent._L2Search, "SMALL_PAIRS", 2_000_000)
    rng = np.random.default_rng(9)
    centres = rng.standard_normal((6, 32)).astype(np.float32)
    X = centres[rng.integers(0, 6, 1900)] + np.float32(0.05) * rng.standard_normal(
        (1900, 32)
    ).astype(np.float32)
    X[:20] = X[20:40]
    Q, K = X[1000:], X[:1000]  # 900 x 1000 pairs: small
    assert represent._L2Search(Q, K).g == 1
    assert represent._L2Search(np.tile(Q, (3, 1)), K).g > 1  # 2.7M pairs: cells
    l2, linf = nearest_kept(Q, K, device="cpu")
    r2, rinf = brute(Q, K)
    assert np.array_equal(l2, r2)
    assert np.array_equal(linf, rinf)


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (0, 4), (3, 0), (64, 300)])
def test_nonzero2_matches_nonzero(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) < 0.3
    got = represent._nonzero2(mask)
    want = np.nonzero(mask)
    assert all(np.array_equal(g, w) and g.dtype == w.dtype for g, w in zip(got, want, strict=True))
