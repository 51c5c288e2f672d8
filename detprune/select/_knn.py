"""A small FAISS wrapper: exact k-NN, range search and seeded k-means.

FAISS is imported inside each function (``import detprune.select`` stays light).
Searches use an exact ``IndexFlatL2``; on a host where FAISS was built with GPU
support and a CUDA device is visible, k-NN and k-means run on the GPU (range
search always runs on the CPU: FAISS GPU flat indexes do not implement it).
Inputs are converted to C-contiguous float32 here; distances returned are
Euclidean (not squared).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import numpy as np

from .._optional import require

__all__ = ["assign", "faiss_gpu_available", "kmeans", "kmeanspp_init", "knn", "range_search"]


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


def _flat_index(d: int, gpu: bool):
    faiss = _faiss()
    index = faiss.IndexFlatL2(d)
    if gpu:  # pragma: no cover - needs a GPU
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
    return index


def knn(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``base`` for each row of ``queries`` (L2).

    Parameters
    ----------
    base : ndarray, shape (n, d)
    queries : ndarray, shape (m, d)
    k : int
        Number of neighbours; capped at ``n``.

    Returns
    -------
    dist : ndarray of float32, shape (m, min(k, n))
        Euclidean distances, ascending per row.
    idx : ndarray of int64, shape (m, min(k, n))
        Row indices into ``base``.
    """
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
