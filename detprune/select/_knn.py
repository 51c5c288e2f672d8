"""A small FAISS wrapper: exact k-NN, range search and seeded k-means.

FAISS is imported inside each function (``import detprune.select`` stays light).
Searches use an exact ``IndexFlatL2``; on a host where FAISS was built with GPU
support and a CUDA device is visible, k-NN and k-means run on the GPU (on all
visible GPUs, the base sharded across them, when there are several; range
search always runs on the CPU: FAISS GPU flat indexes do not implement it).
Inputs are converted to C-contiguous float32 here; distances returned are
Euclidean (not squared).

Approximate search at scale
---------------------------
An exact k-NN graph of ``n`` rows costs ``O(n^2 d)``: minutes at n = 100k on two
cores, hours at a million. :func:`knn` therefore also takes ``index="ivf"``
(``IndexIVFFlat``, ``nlist ~ 4 sqrt(n)`` lists trained on a seeded sample,
``nprobe`` lists searched; GPU when available) or ``index="hnsw"``
(``IndexHNSWFlat``, CPU), and ``index="auto"`` (exact up to
:data:`APPROX_MIN_ROWS` base rows, IVF beyond). Exact stays the default. Every
approximate search measures its recall@k against exact search on a seeded
random sample of its queries (:func:`measure_recall`) and returns it in a
:class:`SearchInfo`; inside :func:`search_settings` (what ``prune`` uses) the
default index can be switched and every approximate search is logged, so the
manifest records the recall of each one.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .._optional import require
from .._validation import Interval, IsNone, Options, validate_params

__all__ = [
    "APPROX_MIN_ROWS",
    "FORCED_MIN_ROWS",
    "INDEX_KINDS",
    "SearchInfo",
    "assign",
    "build_index",
    "faiss_gpu_available",
    "kmeans",
    "kmeanspp_init",
    "knn",
    "knn_search",
    "measure_recall",
    "range_search",
    "search_settings",
]


def _faiss() -> ModuleType:
    return require("faiss", purpose="nearest-neighbour search and k-means")


def faiss_gpu_available() -> bool:
    """True when FAISS has GPU support and sees at least one GPU."""
    faiss = _faiss()
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover - broken GPU runtime
        return False


#: Below this many multiply-adds a FAISS call runs on one OpenMP thread: waking (and
#: spin-waiting) a thread team costs more than the work, badly so on a busy host.
_SMALL_WORK = 20_000_000


@contextlib.contextmanager
def _threads_for(work: float) -> Iterator[None]:
    """Run FAISS single-threaded for small jobs; restore the thread count afterwards."""
    faiss = _faiss()
    if work >= _SMALL_WORK:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _f32(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=np.float32)


def _to_gpus(index: Any) -> Any:  # pragma: no cover - needs a GPU
    """Move a CPU index to the GPU, or shard it over all visible GPUs when there are several."""
    faiss = _faiss()
    if faiss.get_num_gpus() > 1:
        co = faiss.GpuMultipleClonerOptions()
        co.shard = True
        return faiss.index_cpu_to_all_gpus(index, co=co)
    res = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(res, 0, index)


def _flat_index(d: int, gpu: bool):
    faiss = _faiss()
    index = faiss.IndexFlatL2(d)
    if gpu:  # pragma: no cover - needs a GPU
        index = _to_gpus(index)
    return index


def knn(
    base: np.ndarray, queries: np.ndarray, k: int, *, index: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows of ``base`` for each row of ``queries`` (L2); exact by default.

    Parameters
    ----------
    base : ndarray, shape (n, d)
    queries : ndarray, shape (m, d)
    k : int
        Number of neighbours; capped at ``n``.
    index : {"exact", "auto", "ivf", "hnsw"}, optional
        Search structure. ``None`` (default): the one set by an enclosing
        :func:`search_settings` (``"exact"`` outside one, and for bases smaller
        than its ``min_rows``). Approximate searches are logged there with their
        measured recall; use :func:`knn_search` to get the :class:`SearchInfo`
        directly. Queries for which an approximate index finds fewer than ``k``
        rows are answered exactly, so every row has ``k`` neighbours.

    Returns
    -------
    dist : ndarray of float32, shape (m, min(k, n))
        Euclidean distances, ascending per row.
    idx : ndarray of int64, shape (m, min(k, n))
        Row indices into ``base``.
    """
    policy = _POLICY.get()
    if index is None:
        n_base = int(np.shape(base)[0])
        index = policy.index if n_base >= policy.min_rows else "exact"
    if index != "exact":
        dist, idx, _ = knn_search(
            base, queries, k, index=index, recall_sample=policy.recall_sample, seed=policy.seed
        )
        short = np.flatnonzero((idx < 0).any(axis=1))
        if short.size:  # fewer than k found (IVF lists too small): those rows exactly
            dist[short], idx[short] = _exact_knn(base, np.asarray(queries)[short], k)
        return dist, idx
    return _exact_knn(base, queries, k)


def _exact_knn(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    base = _f32(base)
    queries = _f32(queries)
    k = int(min(k, base.shape[0]))
    gpu = faiss_gpu_available() and k <= 2048
    index = _flat_index(base.shape[1], gpu)
    index.add(base)
    with _threads_for(float(base.shape[0]) * queries.shape[0] * base.shape[1]):
        sq, idx = index.search(queries, k)
    return np.sqrt(np.maximum(sq, 0)), idx.astype(np.int64)


def range_search(X: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of rows of ``X`` within Euclidean distance ``radius`` (self-pairs included).

    Parameters
    ----------
    X : ndarray, shape (n, d)
    radius : float
        Inclusive Euclidean radius.

    Returns
    -------
    lims : ndarray of int64, shape (n + 1,)
        Row ``i``'s neighbours are ``idx[lims[i]:lims[i + 1]]``.
    dist : ndarray of float32
        Euclidean distances of those neighbours.
    idx : ndarray of int64
        Row indices of those neighbours.
    """
    faiss = _faiss()
    X = _f32(X)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    # FAISS keeps pairs with squared distance < r2; nudge up so the radius is inclusive.
    r2 = float(np.nextafter(np.float32(radius) ** 2, np.float32(np.inf)))
    with _threads_for(float(X.shape[0]) ** 2 * X.shape[1]):
        lims, sq, idx = index.range_search(X, r2)
    return lims.astype(np.int64), np.sqrt(np.maximum(sq, 0)), idx.astype(np.int64)


def kmeanspp_init(X: np.ndarray, k: int, *, seed: int = 0, rounds: int = 32) -> np.ndarray:
    """Seeded, batched k-means++ seeding; returns ``k`` distinct row indices of ``X``.

    The first centre is uniform; then, in at most ``rounds`` rounds, a batch of
    centres is drawn without replacement with probability proportional to the
    squared distance to the nearest centre so far (Efraimidis-Spirakis keys), and
    the distances are updated with one matrix product per round. Compared with a
    random initialisation this keeps k-means from parking several centroids on
    groups of (near-)duplicates.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    k : int, ``1 <= k <= n``
    seed : int
    rounds : int

    Returns
    -------
    ndarray of int64, shape (k,)
    """
    rng = np.random.default_rng(seed)
    Xf = np.asarray(X, dtype=np.float32)
    n = Xf.shape[0]
    sq = np.einsum("ij,ij->i", Xf, Xf, dtype=np.float64).astype(np.float32)
    chosen = np.zeros(n, dtype=bool)
    first = int(rng.integers(n))
    centres = [first]
    chosen[first] = True
    d2 = np.maximum(sq - 2.0 * (Xf @ Xf[first]) + sq[first], 0.0)
    d2[chosen] = 0.0
    batch = max(1, -(-k // max(1, rounds)))
    while len(centres) < k:
        b = min(batch, k - len(centres))
        w = d2.astype(np.float64)
        w[chosen] = 0.0
        u = rng.random(n)
        with np.errstate(divide="ignore"):
            keys = np.where(w > 0, np.log(u) / np.where(w > 0, w, 1.0), -np.inf)
        pos = int((w > 0).sum())
        if pos >= b:
            new = np.argpartition(-keys, b - 1)[:b]
        else:  # fewer rows with positive weight than needed: take them, then uniform
            rest = np.flatnonzero(~chosen & (w <= 0))
            new = np.concatenate(
                [np.flatnonzero(w > 0), rng.choice(rest, size=b - pos, replace=False)]
            )
        new = np.sort(new)
        chosen[new] = True
        centres.extend(int(i) for i in new)
        D = sq[new][:, None] - 2.0 * (Xf[new] @ Xf.T) + sq[None, :]
        np.minimum(d2, np.maximum(D.min(axis=0), 0.0), out=d2)
    return np.asarray(centres, dtype=np.int64)


def kmeans(
    X: np.ndarray, k: int, *, seed: int = 0, niter: int = 20, init: str = "k-means++"
) -> np.ndarray:
    """Seeded Lloyd k-means (FAISS); returns the centroids.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    k : int
        Number of clusters, ``1 <= k <= n``.
    seed : int
        Seed of the initialisation (and of FAISS).
    niter : int
        Lloyd iterations.
    init : {"k-means++", "random"}
        ``"k-means++"``: :func:`kmeanspp_init`; ``"random"``: FAISS' own random rows.

    Returns
    -------
    ndarray of float32, shape (k, d)
    """
    faiss = _faiss()
    X = _f32(X)
    n, d = X.shape
    k = int(k)
    km = faiss.Kmeans(
        d,
        k,
        niter=int(niter),
        seed=int(seed) & 0x7FFFFFFF,
        verbose=False,
        min_points_per_centroid=1,
        max_points_per_centroid=max(256, -(-n // k)),
        gpu=bool(faiss_gpu_available()),
    )
    with _threads_for(float(n) * k * d * niter):
        if init == "k-means++":
            km.train(X, init_centroids=np.ascontiguousarray(X[kmeanspp_init(X, k, seed=seed)]))
        else:
            km.train(X)
    return np.ascontiguousarray(km.centroids, dtype=np.float32).reshape(k, d)


def assign(X: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: (distance (n,) float32, label (n,) int64)."""
    dist, idx = knn(centroids, X, 1)
    return dist[:, 0], idx[:, 0]


# ----------------------------------------------------------------------------- approximate

#: Kinds of search structure :func:`knn` and :func:`knn_search` accept.
INDEX_KINDS = ("exact", "auto", "ivf", "hnsw")
#: With ``index="auto"``, bases of at least this many rows use IVF (below: exact).
APPROX_MIN_ROWS = 200_000
#: With ``index="ivf"``/``"hnsw"`` in :func:`search_settings`, smaller bases stay exact.
FORCED_MIN_ROWS = 10_000
#: IVF lists are trained on at most this many rows per list (a seeded sample; FAISS asks
#: for at least 39), with this many Lloyd iterations.
_TRAIN_PER_LIST = 40
_TRAIN_ITERATIONS = 10
#: Queries searched per FAISS call (bounds the temporary distance buffers).
_QUERY_CHUNK = 65_536


@dataclass(frozen=True)
class SearchInfo:
    """How a k-NN search was done and how good it was.

    Attributes
    ----------
    index : {"exact", "ivf", "hnsw"}
    n, m, k : int
        Base rows, query rows, neighbours per query.
    params : dict
        ``nlist``/``nprobe`` (IVF) or ``M``/``ef_search``/``ef_construction`` (HNSW).
    recall : float or None
        Mean recall@k against exact search on ``recall_sample`` random queries
        (1.0 for exact search; ``None`` when not measured).
    recall_sample : int
        Queries the recall was measured on.
    build_seconds, search_seconds : float
        Index construction (training included) and search wall time.
    device : str
        ``"cpu"``, ``"gpu"`` or ``"gpu x N"``.
    """

    index: str
    n: int
    m: int
    k: int
    params: dict = field(default_factory=dict)
    recall: float | None = None
    recall_sample: int = 0
    build_seconds: float = 0.0
    search_seconds: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "index": self.index,
            "n": self.n,
            "m": self.m,
            "k": self.k,
            "params": dict(self.params),
            "recall_at_k": self.recall,
            "recall_sample": self.recall_sample,
            "build_seconds": round(self.build_seconds, 3),
            "search_seconds": round(self.search_seconds, 3),
            "device": self.device,
        }


@dataclass(frozen=True)
class _Policy:
    index: str = "exact"
    min_rows: int = APPROX_MIN_ROWS
    recall_sample: int = 1000
    seed: int = 0
    log: list | None = None


_DEFAULT_POLICY = _Policy()
_POLICY: contextvars.ContextVar[_Policy] = contextvars.ContextVar(
    "detprune_knn", default=_DEFAULT_POLICY
)


@contextlib.contextmanager
def search_settings(
    index: str = "exact",
    *,
    min_rows: int | None = None,
    recall_sample: int = 1000,
    seed: int = 0,
) -> Iterator[list[SearchInfo]]:
    """Choose the default search structure of :func:`knn` inside a block, and log searches.

    Parameters
    ----------
    index : {"exact", "auto", "ivf", "hnsw"}, default "exact"
        Used for bases of at least ``min_rows`` rows (smaller ones stay exact).
    min_rows : int, optional
        Default :data:`APPROX_MIN_ROWS` for ``"auto"``, :data:`FORCED_MIN_ROWS` for
        ``"ivf"``/``"hnsw"``.
    recall_sample : int, default 1000
        Queries on which each approximate search's recall is measured.
    seed : int, default 0
        Seed of the IVF training sample and of the recall sample.

    Yields
    ------
    list of SearchInfo
        Filled with one entry per approximate search made inside the block.
    """
    validate_params(
        "search_settings",
        {"index": index, "min_rows": min_rows, "recall_sample": recall_sample, "seed": seed},
        {
            "index": Options(INDEX_KINDS),
            "min_rows": [Interval("int", 1, None), IsNone()],
            "recall_sample": Interval("int", 0, None),
            "seed": Interval("int", 0, None),
        },
    )
    if min_rows is None:
        min_rows = APPROX_MIN_ROWS if index in ("auto", "exact") else FORCED_MIN_ROWS
    log: list[SearchInfo] = []
    token = _POLICY.set(_Policy(index, int(min_rows), int(recall_sample), int(seed), log))
    try:
        yield log
    finally:
        _POLICY.reset(token)


def _ivf_params(n: int, nlist: int | None, nprobe: int | None) -> tuple[int, int]:
    if nlist is None:
        nlist = round(4 * math.sqrt(n))
    nlist = max(1, min(int(nlist), n))
    if nprobe is None:
        nprobe = max(8, round(math.sqrt(nlist) / 2))
    return nlist, max(1, min(int(nprobe), nlist))


def build_index(
    base: np.ndarray,
    kind: str,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 40,
    ef_search: int = 64,
    seed: int = 0,
    gpu: bool | None = None,
) -> tuple[Any, dict, str]:
    """Build a FAISS index over ``base``.

    Parameters
    ----------
    base : ndarray, shape (n, d)
        May be a ``numpy.memmap``; it is added in chunks.
    kind : {"exact", "ivf", "hnsw"}
    nlist, nprobe : int, optional
        IVF lists (default ``round(4 sqrt(n))``) and lists searched per query
        (default ``max(8, sqrt(nlist) / 2)``: about ``n^(3/4) / 4`` rows scanned per query).
    hnsw_m, ef_construction, ef_search : int
        HNSW graph degree and beam widths.
    seed : int
        Seed of the IVF training sample (at most 40 rows per list, 10 k-means iterations).
    gpu : bool, optional
        Put a flat or IVF index on the GPU(s); default when FAISS sees one.

    Returns
    -------
    index : faiss.Index
    params : dict
    device : str
    """
    faiss = _faiss()
    n, d = int(base.shape[0]), int(base.shape[1])
    if gpu is None:
        gpu = faiss_gpu_available() and kind != "hnsw"
    device = "cpu"
    if kind == "exact":
        index = faiss.IndexFlatL2(d)
        params: dict = {}
    elif kind == "ivf":
        nlist, nprobe = _ivf_params(n, nlist, nprobe)
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
        index.cp.seed = int(seed) & 0x7FFFFFFF
        index.cp.min_points_per_centroid = 1
        index.cp.niter = _TRAIN_ITERATIONS
        train_n = min(n, _TRAIN_PER_LIST * nlist)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=train_n, replace=False)) if train_n < n else slice(None)
        sample = _f32(base[rows])
        with _threads_for(float(train_n) * nlist * d * 10):
            index.train(sample)
        del sample
        params = {"nlist": nlist, "nprobe": nprobe, "train_rows": int(train_n)}
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(hnsw_m))
        index.hnsw.efConstruction = int(ef_construction)
        params = {
            "M": int(hnsw_m),
            "ef_construction": int(ef_construction),
            "ef_search": int(ef_search),
        }
        gpu = False
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    if gpu:  # pragma: no cover - needs a GPU
        index = _to_gpus(index)
        ngpu = faiss.get_num_gpus()
        device = "gpu" if ngpu == 1 else f"gpu x {ngpu}"
    for start in range(0, n, _QUERY_CHUNK):
        index.add(_f32(base[start : start + _QUERY_CHUNK]))
    _set_search_params(index, kind, params)
    return index, params, device


def _set_search_params(index: Any, kind: str, params: dict) -> None:
    faiss = _faiss()
    if kind == "ivf":
        try:
            faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
        except Exception:  # pragma: no cover - sharded GPU index
            faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", int(params["nprobe"]))
    elif kind == "hnsw":
        index.hnsw.efSearch = int(params["ef_search"])


def _search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    m = int(queries.shape[0])
    dist = np.empty((m, k), np.float32)
    idx = np.empty((m, k), np.int64)
    for start in range(0, m, _QUERY_CHUNK):
        sq, ii = index.search(_f32(queries[start : start + _QUERY_CHUNK]), k)
        dist[start : start + len(sq)] = np.sqrt(np.maximum(sq, 0))
        idx[start : start + len(sq)] = ii
    return dist, idx


def measure_recall(
    base: np.ndarray,
    queries: np.ndarray,
    found: np.ndarray,
    k: int,
    *,
    sample: int = 1000,
    seed: int = 0,
) -> tuple[float, int]:
    """Recall@k of an approximate search, against exact search on a random sample of queries.

    A returned neighbour counts as correct when its distance is at most the
    exact k-th nearest distance (so ties among equidistant rows are not
    counted as misses).

    Parameters
    ----------
    base : ndarray, shape (n, d)
    queries : ndarray, shape (m, d)
    found : ndarray of int64, shape (m, k)
        The approximate neighbours (``-1`` where none was found).
    k : int
    sample : int, default 1000
        Queries checked (all of them when ``m <= sample``).
    seed : int, default 0

    Returns
    -------
    recall : float
        Mean over the sampled queries of (correct neighbours) / k.
    checked : int
        Number of sampled queries.
    """
    m = int(queries.shape[0])
    if m == 0 or k == 0 or sample == 0:
        return float("nan"), 0
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(m, size=min(sample, m), replace=False))
    Q = _f32(queries[rows])
    exact_d, _ = _exact_knn(base, Q, k)
    kth = exact_d[:, -1].astype(np.float64)
    got = found[rows]
    hits = np.zeros(len(rows))
    for j, (q, ids) in enumerate(zip(Q, got, strict=True)):
        ids = ids[ids >= 0]
        if ids.size == 0:
            continue
        dd = np.sqrt(((_f32(base[np.sort(ids)]).astype(np.float64) - q) ** 2).sum(axis=1))
        tol = 1e-5 * max(1.0, kth[j])
        hits[j] = float((dd <= kth[j] + tol).sum())
    return float(hits.mean() / k), len(rows)


def knn_search(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    index: str = "auto",
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int = 64,
    recall_sample: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, SearchInfo]:
    """k nearest rows of ``base`` per query, exact or approximate, with its recall.

    Parameters
    ----------
    base : ndarray, shape (n, d)
        May be a ``numpy.memmap`` (read in chunks).
    queries : ndarray, shape (m, d)
        May be a ``numpy.memmap`` (searched in chunks).
    k : int
        Capped at ``n``.
    index : {"exact", "auto", "ivf", "hnsw"}, default "auto"
        ``"auto"``: exact below :data:`APPROX_MIN_ROWS` base rows, IVF above.
    nlist, nprobe, hnsw_m, ef_search
        See :func:`build_index`.
    recall_sample : int, default 1000
        Queries on which recall@k is measured against exact search (approximate
        indexes only; 0 skips the measurement).
    seed : int, default 0

    Returns
    -------
    dist : ndarray of float32, shape (m, k)
        Euclidean distances, ascending per row (``inf`` where fewer than k were found).
    idx : ndarray of int64, shape (m, k)
        Row indices into ``base`` (``-1`` where fewer than k were found).
    info : SearchInfo
    """
    validate_params(
        "knn_search",
        {"index": index, "k": k, "recall_sample": recall_sample, "seed": seed},
        {
            "index": Options(INDEX_KINDS),
            "k": Interval("int", 1, None),
            "recall_sample": Interval("int", 0, None),
            "seed": Interval("int", 0, None),
        },
    )
    n, m = int(base.shape[0]), int(queries.shape[0])
    k = int(min(k, n))
    kind = index
    if kind == "auto":
        kind = "ivf" if n >= APPROX_MIN_ROWS else "exact"
    t0 = time.perf_counter()
    if kind == "exact":
        dist, idx = _exact_knn(base, queries, k)
        info = SearchInfo(
            "exact",
            n,
            m,
            k,
            {},
            1.0,
            0,
            0.0,
            time.perf_counter() - t0,
            "gpu" if faiss_gpu_available() and k <= 2048 else "cpu",
        )
        return dist, idx, info
    faiss_index, params, device = build_index(
        base,
        kind,
        nlist=nlist,
        nprobe=nprobe,
        hnsw_m=hnsw_m,
        ef_search=ef_search,
        seed=seed,
        gpu=None if k <= 2048 else False,
    )
    t1 = time.perf_counter()
    with _threads_for(float(m) * _work_per_query(params, n, int(base.shape[1]))):
        dist, idx = _search(faiss_index, queries, k)
    t2 = time.perf_counter()
    del faiss_index
    dist[idx < 0] = np.inf
    recall, checked = measure_recall(base, queries, idx, k, sample=recall_sample, seed=seed)
    info = SearchInfo(
        kind, n, m, k, params, None if checked == 0 else recall, checked, t1 - t0, t2 - t1, device
    )
    log = _POLICY.get().log
    if log is not None:
        log.append(info)
    return dist, idx, info


def _work_per_query(params: dict, n: int, d: int) -> float:
    """Rough multiply-adds per query of an approximate index (for the thread heuristic)."""
    if "nlist" in params:
        return float(params["nprobe"]) / params["nlist"] * n * d + params["nlist"] * d
    return float(params.get("ef_search", 64)) * 32 * d
