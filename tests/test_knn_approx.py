"""Approximate k-NN (IVF, HNSW): recall measured against exact search, reported and logged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from detprune.errors import ParameterError
from detprune.select import _knn


def _clustered(n: int, d: int, *, clusters: int = 40, spread: float = 0.25, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    X = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))
    return X.astype(np.float32)


def _true_recall(X: np.ndarray, idx: np.ndarray, k: int) -> float:
    """Recall@k of ``idx`` over *all* queries (brute force, float64)."""
    X64 = X.astype(np.float64)
    sq = (X64**2).sum(1)
    D = sq[:, None] - 2 * X64 @ X64.T + sq[None, :]
    kth = np.sort(D, axis=1)[:, k - 1]
    got = np.take_along_axis(D, np.maximum(idx, 0), axis=1)
    ok = (got <= kth[:, None] + 1e-6) & (idx >= 0)
    return float(ok.sum() / (len(X) * k))


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_reports_high_recall_on_clustered_data(kind):
    X = _clustered(6000, 32)
    dist, idx, info = _knn.knn_search(X, X, 10, index=kind, recall_sample=500, seed=1)
    assert dist.shape == idx.shape == (6000, 10) and idx.dtype == np.int64
    assert info.index == kind and (info.n, info.m, info.k) == (6000, 6000, 10)
    assert info.recall_sample == 500 and 0.95 <= info.recall <= 1.0
    assert np.all(np.diff(dist, axis=1) >= -1e-6)  # ascending per row
    # the sampled estimate agrees with the recall over every query
    assert abs(info.recall - _true_recall(X, idx, 10)) < 0.03
    if kind == "ivf":
        assert info.params["nlist"] == round(4 * np.sqrt(6000))
    else:
        assert info.params["M"] == 32
    d = info.to_dict()
    assert d["recall_at_k"] == info.recall and d["index"] == kind


def test_low_recall_is_reported_honestly():
    """Unstructured data, one probed list of many: the index misses most neighbours, and says so."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4000, 64)).astype(np.float32)
    _, idx, info = _knn.knn_search(X, X, 10, index="ivf", nlist=200, nprobe=1, recall_sample=400)
    true = _true_recall(X, idx, 10)
    assert true < 0.6 and info.recall < 0.6
    assert abs(info.recall - true) < 0.06


def test_exact_is_the_default_and_auto_stays_exact_below_threshold():
    X = _clustered(3000, 16)
    d0, i0 = _knn.knn(X, X, 5)
    with _knn.search_settings("auto") as log:
        d1, i1 = _knn.knn(X, X, 5)
    assert log == [] and np.array_equal(i0, i1) and np.array_equal(d0, d1)
    _, _, info = _knn.knn_search(X, X, 5)  # auto: n < APPROX_MIN_ROWS -> exact
    assert info.index == "exact" and info.recall == 1.0


def test_search_settings_switch_knn_and_log_recall():
    X = _clustered(5000, 24)
    with _knn.search_settings("ivf", min_rows=1000, recall_sample=300, seed=2) as log:
        _knn.knn(X, X, 8)
        _knn.knn(X[:50], X, 3)  # base below min_rows: exact, not logged
    assert len(log) == 1
    assert log[0].index == "ivf" and log[0].k == 8 and log[0].recall_sample == 300
    assert log[0].recall > 0.9
    # outside the block the default is exact again
    assert _knn._POLICY.get().index == "exact"


def test_knn_always_returns_k_neighbours_under_an_approximate_policy():
    """Few probed lists can hold fewer than k rows; knn() answers those queries exactly."""
    X = _clustered(3000, 8, clusters=200, spread=0.01)
    _, idx_raw, _ = _knn.knn_search(X, X[:200], 64, index="ivf", nlist=500, nprobe=1,
                                    recall_sample=0)
    assert (idx_raw < 0).any()  # the raw index leaves holes
    with _knn.search_settings("ivf", min_rows=1000, recall_sample=0):
        dist, idx = _knn.knn(X, X[:200], 64)
    assert (idx >= 0).all() and np.isfinite(dist).all()


def test_memory_mapped_input(tmp_path):
    X = _clustered(4000, 16)
    path = tmp_path / "x.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    _, idx_m, info = _knn.knn_search(Xm, Xm, 5, index="ivf", recall_sample=200)
    _, idx, _ = _knn.knn_search(X, X, 5, index="ivf", recall_sample=200)
    assert np.array_equal(idx_m, idx) and info.recall > 0.9


def test_invalid_index_kind():
    X = _clustered(100, 4)
    with pytest.raises(ParameterError, match="'index' parameter of knn_search"):
        _knn.knn_search(X, X, 3, index="annoy")
    with pytest.raises(ParameterError, match="'index' parameter of search_settings"):
        with _knn.search_settings("annoy"):
            pass


@pytest.mark.gpu
def test_ivf_on_gpu():
    if not _knn.faiss_gpu_available():
        pytest.skip("FAISS without GPU support or no GPU")
    X = _clustered(20000, 64)
    _, _, info = _knn.knn_search(X, X, 10, index="ivf", recall_sample=500)
    assert info.device.startswith("gpu") and info.recall > 0.9


def test_prune_records_the_recall_of_approximate_searches(tmp_path, monkeypatch):
    """--knn-index ivf: the graph-based method's k-NN search is approximate, and the manifest
    says how good it was."""
    pytest.importorskip("ultralytics")
    import shutil

    from detprune import pipeline

    root = Path(__file__).resolve().parents[1] / "sample_data"
    ds = tmp_path / "ds"
    for sub in ("images/train", "labels/train"):
        (ds / sub).mkdir(parents=True)
    for img in sorted((root / "images" / "train").glob("*.jpg"))[:48]:
        shutil.copy(img, ds / "images/train" / img.name)
        label = root / "labels" / "train" / f"{img.stem}.txt"
        if label.exists():
            shutil.copy(label, ds / "labels/train" / label.name)
    names = (root / "data.yaml").read_text().split("names:", 1)[1]
    (ds / "data.yaml").write_text(f"train: images/train\nval: images/train\nnames:{names}")
    monkeypatch.setenv("DETPRUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DETPRUNE_OFFLINE", "1")
    monkeypatch.setattr(_knn, "FORCED_MIN_ROWS", 1)  # tiny strata: approximate anyway
    kw = {"weights": "yolov5n.yaml", "imgsz": 64, "measure_energy": False, "progress": False,
          "min_stratum_size": 100, "cache": tmp_path / "cache"}
    r = pipeline.prune(ds / "data.yaml", method="fl", keep=0.5, out=tmp_path / "o",
                       knn_index="ivf", **kw)
    settings = r.manifest["selection_settings"]
    assert settings["knn_index"] == "ivf" and settings["knn_search"]
    for s in settings["knn_search"]:
        assert s["index"] == "ivf" and s["recall_sample"] > 0 and 0 <= s["recall_at_k"] <= 1
        assert set(s["params"]) == {"nlist", "nprobe", "train_rows"}
    exact = pipeline.prune(ds / "data.yaml", method="fl", keep=0.5, out=tmp_path / "e", **kw)
    assert exact.manifest["selection_settings"]["knn_search"] == []
