"""The contract every registered selection method must meet."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from detprune.errors import ParameterError
from detprune.select import (
    REGISTRY,
    Reducer,
    Selection,
    available_methods,
    get_reducer,
    stratified_select,
)

METHODS = sorted(REGISTRY)
FORMAT = re.compile(r"^The '[A-Za-z_]+' parameter of [A-Za-z_]+ must be .+\. Got .+ instead\.$")

# One invalid value per declared parameter, per method.
BAD_PARAMS = {
    "clc": [("niter", 0), ("niter", 10**10)],  # FAISS takes a 32-bit count
    "mms": [("batch_size", 0), ("device", "tpu")],
    "des": [("base_fraction", 0.0), ("n_prototypes", 1), ("temperature", -1.0), ("niter", 0)],
    "rkmeans": [("n_clusters", 0), ("niter", 1.5)],
    "srs": [],
    "prd": [("sigma", 0.0), ("k", 0), ("dense_max", 0)],
    "phl": [("k", 1), ("mode", "typical"), ("maxdim", 2)],
    "nrmd": [("n_components", 0), ("variance", 0.0), ("max_components", 0)],
    "fes": [("epochs", 1), ("hidden", 0), ("batch_size", 0), ("lr", 0.0), ("device", "tpu")],
    "vq": [("n_codes", 0), ("alpha", 1.5), ("prefer", "middle"), ("niter", 0)],
    "flow": [("density", "kde"), ("dims", 0), ("beta", -1.0), ("epochs", 0), ("layers", 0)],
    "fl": [("k", 0), ("sigma", -1.0)],
}


def _targets(n: int) -> np.ndarray:
    """Synthetic multi-hot targets (3 classes) for reducers that need them."""
    t = np.zeros((n, 3), dtype=bool)
    t[np.arange(n) % 3 == 0, 0] = True
    t[np.arange(n) % 2 == 0, 1] = True
    t[np.arange(n) % 5 == 0, 2] = True
    return t


def _select(reducer: Reducer, X: object, budget: object, **kw: object) -> Selection:
    """``reducer.select``, with synthetic targets when the reducer needs them."""
    if reducer.needs_targets and "targets" not in kw:
        arr = np.asarray(X)
        n = arr.shape[0] if arr.ndim >= 1 else 0
        kw["targets"] = _targets(n)
    return reducer.select(X, budget, **kw)  # type: ignore[arg-type]


def _data(n: int = 120, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    classes = np.zeros((n, 3), dtype=bool)
    classes[: n // 2, 0] = True
    classes[n // 2 : n - 5, 1] = True
    classes[n - 5 :, 2] = True
    classes[::9, 1] = True  # some multi-class images
    strata = np.where(classes[:, 2], 2, np.where(classes[:, 0] & classes[:, 1], 3, 0))
    strata[classes[:, 1] & ~classes[:, 0]] = 1
    return X, strata, classes


def test_registry_is_complete() -> None:
    assert set(REGISTRY) >= {"srs", "clc", "mms", "des", "rkmeans"}
    assert set(BAD_PARAMS) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        assert issubclass(cls, Reducer)
        assert cls.name == name and name == name.lower()
        assert cls.description and "\n" not in cls.description
    assert available_methods() == {k: v.description for k, v in REGISTRY.items()}


def test_unknown_method_message() -> None:
    with pytest.raises(ParameterError) as exc:
        get_reducer("foo")
    msg = str(exc.value)
    assert FORMAT.match(msg), msg
    assert msg.startswith("The 'method' parameter of detprune must be one of 'srs', 'clc', ")
    assert msg.endswith("Got 'foo' instead.")


@pytest.mark.parametrize("name", METHODS)
def test_unknown_parameter_rejected(name: str) -> None:
    with pytest.raises(ParameterError, match=r"^The 'bogus' parameter of \w+ must be .+ Got 3"):
        get_reducer(name, bogus=3)


@pytest.mark.parametrize("name", METHODS)
def test_basic_contract(name: str) -> None:
    X, _, _ = _data()
    reducer = get_reducer(name)
    assert repr(reducer).startswith(type(reducer).__name__ + "(")
    for budget in (1, 17, X.shape[0]):
        sel = _select(reducer, X, budget, seed=3)
        assert isinstance(sel, Selection)
        assert sel.indices.dtype == np.int64 and sel.indices.shape == (budget,)
        assert np.unique(sel.indices).size == budget
        assert sel.indices.min() >= 0 and sel.indices.max() < X.shape[0]
        assert sel.scores.dtype == np.float64 and sel.scores.shape == (budget,)
        assert np.isfinite(sel.scores).all()
        assert sel.method == name
        assert sel.params["budget"] == budget and sel.params["seed"] == 3
        json.dumps(sel.to_dict())
        assert not sel.indices.flags.writeable and not sel.scores.flags.writeable


@pytest.mark.parametrize("name", METHODS)
def test_deterministic(name: str) -> None:
    X, strata, classes = _data()
    a = _select(get_reducer(name), X, 30, seed=11)
    b = _select(get_reducer(name), X, 30, seed=11)
    assert a == b
    sa = stratified_select(get_reducer(name), X, 30, strata=strata, classes=classes, seed=5)
    sb = stratified_select(get_reducer(name), X, 30, strata=strata, classes=classes, seed=5)
    assert sa == sb
    if REGISTRY[name].randomized:
        other = [_select(get_reducer(name), X, 30, seed=s).indices for s in range(1, 6)]
        assert any(not np.array_equal(o, a.indices) for o in other)
    else:
        c = _select(get_reducer(name), X, 30, seed=99)
        assert np.array_equal(c.indices, a.indices)


@pytest.mark.parametrize("name", METHODS)
def test_stratified_quotas_and_floor(name: str) -> None:
    X, strata, classes = _data()
    for budget, m in ((12, 1), (40, 2), (120, 1)):
        sel = stratified_select(
            get_reducer(name), X, budget, strata=strata, classes=classes, min_per_class=m, seed=2
        )
        assert len(sel) == budget and np.unique(sel.indices).size == budget
        got = {
            int(s): int(c)
            for s, c in zip(*np.unique(strata[sel.indices], return_counts=True), strict=True)
        }
        quotas = {int(k): v for k, v in sel.info["quotas"].items() if v}
        assert got == quotas
        assert sum(sel.info["quotas"].values()) == budget
        kept = classes[sel.indices].sum(axis=0)
        need = np.minimum(classes.sum(axis=0), m)
        assert (kept >= need).all()
        ret = {r["class"]: (r["images_kept"], r["images_total"]) for r in sel.info["retention"]}
        assert [ret[c][0] for c in range(3)] == kept.tolist()
        json.dumps(sel.to_dict())


@pytest.mark.parametrize("name", METHODS)
def test_floor_without_strata(name: str) -> None:
    """One stratum: the class floor is met by the repair step."""
    X, _, classes = _data()
    sel = stratified_select(get_reducer(name), X, 6, classes=classes, min_per_class=2, seed=0)
    assert (classes[sel.indices].sum(axis=0) >= 2).all()


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("budget", [0, -1, 121, 2.5, True, None])
def test_bad_budget(name: str, budget: object) -> None:
    X, strata, _ = _data()
    with pytest.raises(
        ParameterError,
        match=r"^The 'budget' parameter of \w+ must be an int in \[1, 120\]\. Got .+ instead\.$",
    ):
        _select(get_reducer(name), X, budget)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"^The 'budget' parameter of stratified_select"):
        stratified_select(get_reducer(name), X, budget, strata=strata)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", METHODS)
def test_numpy_numbers_as_parameters_and_infinite_floats(name: str) -> None:
    """np.int64(5) passes the int checks: the selection records it as a plain number (it
    failed to serialise after all the work); an infinite float parameter is refused."""
    X, strata, classes = _data()
    reducer = get_reducer(name)
    params = reducer.get_params()
    numeric = {k: v for k, v in params.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    as_numpy = {k: (np.int64(v) if isinstance(v, int) else np.float32(v)) for k, v in numeric.items()}
    sel = stratified_select(get_reducer(name, **as_numpy), X, 10, strata=strata, classes=classes, seed=1)
    json.dumps(sel.params)
    assert sel.params["budget"] == 10
    for k, v in numeric.items():
        if isinstance(v, float):
            with pytest.raises(ParameterError, match=rf"^The '{k}' parameter of .+ Got inf instead\.$"):
                _select(get_reducer(name, **{k: float("inf")}), X, 5)


@pytest.mark.parametrize("name", METHODS)
def test_bad_parameters(name: str) -> None:
    X, _, _ = _data()
    for pname, value in BAD_PARAMS[name]:
        reducer = get_reducer(name, **{pname: value})
        with pytest.raises(ParameterError) as exc:
            _select(reducer, X, 5)
        msg = str(exc.value)
        assert FORMAT.match(msg), msg
        assert msg.startswith(f"The '{pname}' parameter of {type(reducer).__name__} must be ")
        assert msg.endswith(f"Got {value!r} instead.")


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    "X",
    [
        np.zeros((0, 3)),
        np.zeros(5),
        np.array([[1.0, np.nan]]),
        np.array([[1.0, np.inf]]),
        np.array([["a", "b"]]),
    ],
)
def test_bad_X(name: str, X: np.ndarray) -> None:
    with pytest.raises(ParameterError, match=r"^The 'X' parameter of \w+ must be a 2-D array"):
        _select(get_reducer(name), X, 1)


@pytest.mark.parametrize("name", METHODS)
def test_bad_seed(name: str) -> None:
    X, _, _ = _data()
    with pytest.raises(
        ParameterError,
        match=r"^The 'seed' parameter of \w+ must be an int >= 0\. Got -1 instead\.$",
    ):
        _select(get_reducer(name), X, 3, seed=-1)


@pytest.mark.parametrize("name", METHODS)
def test_integer_and_float64_input(name: str) -> None:
    rng = np.random.default_rng(1)
    Xi = rng.integers(-5, 5, (40, 3))
    sel = _select(get_reducer(name), Xi, 10)
    assert np.unique(sel.indices).size == 10
    sel64 = _select(get_reducer(name), Xi.astype(np.float64), 10)
    assert np.unique(sel64.indices).size == 10


@pytest.mark.parametrize("name", METHODS)
def test_single_row_and_duplicates(name: str) -> None:
    assert _select(get_reducer(name), np.ones((1, 4)), 1).indices.tolist() == [0]
    X = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # 3 distinct points, 10 copies each
    sel = _select(get_reducer(name), X, 7, seed=0)
    assert np.unique(sel.indices).size == 7
