"""MMS: exact greedy max-min (farthest-point, k-center) selection.

The greedy: start at the image nearest the mean of ``X``; then repeatedly pick
the unpicked image whose distance to its nearest picked image is largest. Ties
are broken by the lowest row index. The result is the 2-approximation of the
k-center problem of Gonzalez (1985).

How it is fast *and* exact
--------------------------
A naive implementation computes one distance row (an ``n x d`` matrix-vector
product) per pick: memory bound, about 2-3 ms per pick for n=20k, d=768.
Here picks are made in *batches* from a speculative candidate set:

1. ``S`` = the ``batch_size`` unpicked images with the largest current
   min-distance ``m``; ``tau`` = the largest ``m`` outside ``S``.
2. The ``S x S`` squared distances are computed with one small matrix product.
3. The greedy is simulated inside ``S`` (updating ``m`` on ``S`` only) for as long
   as the best value in ``S`` provably exceeds ``tau`` -- no image outside ``S``
   can then be the next pick, because ``m`` only decreases.
4. ``m`` is updated for all ``n`` images with the distance rows of the batch's
   picks, as one matrix product (BLAS-3, compute bound; float64).

Distances use ``||x||^2 - 2 x.c + ||c||^2`` on mean-centred float64 data, whose
rounding error is bounded by ``eps = 8 (2d + 7) u max||x||^2`` (``u`` = 2^-53).
Whenever the decision between the leader and another image is within ``2 eps``,
the contenders' min-distances are recomputed exactly as
``sum((x - c)**2)`` in float64 over all picked centres (cached incrementally), so
the picks are *identical* to the naive float64 reference, ties included.
On a CUDA host (``device="auto"``/``"cuda"``) the matrix products run in torch on
the GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import Interval, Options, param_error
from . import _device
from ._threads import Workers, single_threaded_blas
from .base import Reducer

__all__ = ["MMS", "farthest_points"]

_U64 = 2.0**-53
#: cells are formed only while they hold at least this many rows on average
_ROWS_PER_CELL = 64


class _NumpyBackend:
    """Squared distances by the norm trick with NumPy float64 BLAS.

    With ``groups`` set (rows stored contiguously per Voronoi cell of some pivot
    picks), :meth:`update` skips every cell that no new pick can reach: for a row
    ``x`` in the cell of pivot ``p`` with radius ``rho``, ``d(x, c) >= d(c, p) - rho``,
    so the cell is skipped when that bound exceeds the largest current min-distance
    in the cell (with a rounding margin). This only saves work; values are unchanged.
    """

    def __init__(
        self, Xc: np.ndarray, sq: np.ndarray, eps: float, workers: Workers, block: int = 4096
    ) -> None:
        self.workers = workers
        self.Xc = Xc
        self.sq = sq
        self.block = block
        self.margin = 4.0 * np.sqrt(eps) + 1e-9 * np.sqrt(float(sq.max()) + 1e-300)
        self.groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def dist(self, a: np.ndarray, b: np.ndarray | slice) -> np.ndarray:
        """Squared distances between rows ``a`` and rows ``b`` (clamped at 0)."""
        G = (self.Xc[a] * -2.0) @ self.Xc[b].T
        G += self.sq[a][:, None]
        G += self.sq[b][None, :]
        np.maximum(G, 0.0, out=G)
        return G

    def gram(self, S: np.ndarray) -> np.ndarray:
        return self.dist(S, S)

    def _rows(self, m: np.ndarray, idx: np.ndarray, s: int, e: int) -> None:
        """``m[s:e] = min(m[s:e], min over picks idx of d2)`` (one task)."""
        R = (self.Xc[idx] * -2.0) @ self.Xc[s:e].T
        R += self.sq[idx][:, None]
        mm = R.min(axis=0)
        mm += self.sq[s:e]
        np.maximum(mm, 0.0, out=mm)
        np.minimum(m[s:e], mm, out=m[s:e])

    def update(self, m: np.ndarray, idx: np.ndarray) -> None:
        """Lower ``m`` with the squared distances to the new picks ``idx`` (all rows)."""
        n = self.Xc.shape[0]
        if self.groups is None:
            spans = [(0, n)]
            subsets = [idx]
        else:
            starts, pivots, rho = self.groups
            top = np.maximum.reduceat(m, starts[:-1])
            reach = np.sqrt(self.dist(idx, pivots)) - rho[None, :]
            need = reach < (np.sqrt(np.maximum(top, 0.0)) + self.margin)[None, :]
            cols = np.flatnonzero(need.any(axis=0))
            spans = [(int(starts[g]), int(starts[g + 1])) for g in cols]
            subsets = [idx[need[:, g]] for g in cols]
        tasks = []
        for (s, e), sub in zip(spans, subsets, strict=True):
            step = max(256, min(self.block, -(-(e - s) // self.workers.workers)))
            tasks.extend((m, sub, b, min(e, b + step)) for b in range(s, e, step))
        self.workers.run(self._rows, tasks)


class _TorchBackend:
    """The same computations in torch float64 (used on CUDA; testable on CPU); no cell pruning."""

    groups = None

    def __init__(self, Xc: np.ndarray, sq: np.ndarray, device: str, block: int = 16384) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.Xc = torch.from_numpy(Xc).to(self.device)
        self.sq = torch.from_numpy(sq).to(self.device)
        self.block = block

    def _idx(self, idx: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(self.device)

    def gram(self, S: np.ndarray) -> np.ndarray:
        t = self._idx(S)
        XS = self.Xc[t]
        sqS = self.sq[t]
        G = self.torch.addmm(sqS[:, None] + sqS[None, :], XS, XS.T, alpha=-2.0)
        return G.clamp_min_(0.0).cpu().numpy()

    def update(self, m: np.ndarray, idx: np.ndarray) -> None:
        t = self._idx(idx)
        A = self.Xc[t]
        a = self.sq[t][:, None]
        n = self.Xc.shape[0]
        out = []
        for s in range(0, n, self.block):
            e = min(n, s + self.block)
            R = self.torch.addmm(a, A, self.Xc[s:e].T, alpha=-2.0)
            out.append(R.amin(dim=0) + self.sq[s:e])
        mm = self.torch.cat(out).clamp_min_(0.0).cpu().numpy()
        np.minimum(m, mm, out=m)


def farthest_points(
    X: np.ndarray, k: int, *, batch_size: int = 256, device: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact greedy farthest-point sampling (private twin of :class:`MMS`; input assumed valid).

    Parameters
    ----------
    X : ndarray of float32 or float64, shape (n, d)
        Finite features.
    k : int
        Number of picks, ``1 <= k <= n``.
    batch_size : int
        Size of the speculative candidate set (speed only; the result does not depend on it).
    device : {"auto", "cpu", "cuda", "torch-cpu"}
        Where the matrix products run (``"cpu"`` uses NumPy; ``"torch-cpu"`` runs the
        torch code path on the CPU, for testing).

    Returns
    -------
    picks : ndarray of int64, shape (k,)
        Row indices in pick order.
    radius : ndarray of float64, shape (k,)
        ``radius[i]`` is the covering radius after pick ``i``: the largest distance
        from any row of ``X`` to its nearest pick among ``picks[:i + 1]``
        (non-increasing; the last entry is the covering radius of the selection).
    """
    dev = _device.resolve(device)
    if dev != "cpu":
        return _farthest(X, k, batch_size, dev, Workers(1))
    with single_threaded_blas(), Workers() as workers:
        return _farthest(X, k, batch_size, dev, workers)


def _farthest(
    X: np.ndarray, k: int, batch_size: int, dev: str, workers: Workers
) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    n, d = X.shape
    X64 = np.asarray(X, dtype=np.float64)
    mu = X64.mean(axis=0)
    Xc = X64 - mu
    sq = (Xc**2).sum(axis=1)  # equals the naive reference's distance to the mean
    del X64
    first = int(np.argmin(sq))
    eps = 8.0 * (2 * d + 7) * _U64 * float(sq.max()) + 1e-300

    backend: Any
    if dev == "cpu":
        backend = _NumpyBackend(Xc, sq, eps, workers)
    else:  # "cuda", or "torch-cpu" (the torch code path on the CPU, for tests)
        backend = _TorchBackend(Xc, sq, "cpu" if dev == "torch-cpu" else dev)

    # Per-row state lives in an internal row order (permuted when cells are formed);
    # ``orig`` maps internal -> original row index. Picks are recorded as original rows.
    orig = np.arange(n)
    picks = np.empty(k, dtype=np.int64)
    internal = np.empty(k, dtype=np.int64)
    before = np.empty(k, dtype=np.float64)  # squared min-distance of each pick when picked
    picked = np.zeros(n, dtype=bool)
    exact_m = np.full(n, np.inf)
    exact_cnt = np.zeros(n, dtype=np.int64)
    m = np.full(n, np.inf)
    npk = 0

    def exact(idx: np.ndarray) -> np.ndarray:
        """Exact float64 min squared distance of (internal) rows ``idx`` to the current picks."""
        for i in idx:
            c0 = exact_cnt[i]
            if c0 < npk and exact_m[i] > 0.0:
                x = np.asarray(X[orig[i]], dtype=np.float64)
                C = np.asarray(X[picks[c0:npk]], dtype=np.float64)  # raw rows of the picks
                D = ((C - x) ** 2).sum(axis=1)
                exact_m[i] = min(exact_m[i], float(D.min()))
            exact_cnt[i] = npk
        return exact_m[idx]

    def resolve(cands: np.ndarray) -> tuple[int, float]:
        """The exact argmax among candidate (internal) rows; ties -> lowest original index."""
        ex = exact(cands)
        best = ex.max()
        tied = cands[ex == best]
        return int(tied[np.argmin(orig[tied])]), float(best)

    def add(g: int, val: float) -> None:
        nonlocal npk
        if val <= 2.0 * eps:  # tiny radii: report the exact value, not rounding noise
            val = float(exact(np.array([g]))[0])
        picks[npk] = orig[g]
        internal[npk] = g
        before[npk] = val
        picked[g] = True
        npk += 1

    cells = 32 if isinstance(backend, _NumpyBackend) else 0

    add(first, np.inf)
    backend.update(m, np.array([first]))
    m[picked] = -np.inf

    while npk < k:
        if cells and npk >= cells and n >= _ROWS_PER_CELL * cells:
            # Group rows into the Voronoi cells of the first ``cells`` picks (speed only).
            piv = internal[:cells].copy()
            lab = np.empty(n, dtype=np.int64)
            dmin = np.empty(n)
            for s in range(0, n, 8192):
                D = backend.dist(piv, slice(s, min(n, s + 8192)))
                lab[s : s + D.shape[1]] = D.argmin(axis=0)
                dmin[s : s + D.shape[1]] = D.min(axis=0)
            perm = np.argsort(lab, kind="stable")
            inv = np.empty(n, dtype=np.int64)
            inv[perm] = np.arange(n)
            counts = np.bincount(lab, minlength=cells)
            keep = counts > 0
            starts = np.concatenate([[0], np.cumsum(counts[keep])])
            rho = np.zeros(cells)
            np.maximum.at(rho, lab, dmin)
            rho = np.sqrt(rho[keep]) + backend.margin
            Xc = Xc[perm]
            sq = sq[perm]
            backend.Xc, backend.sq = Xc, sq
            backend.groups = (starts, inv[piv][keep], rho)
            m, picked, exact_m, exact_cnt, orig = (
                m[perm],
                picked[perm],
                exact_m[perm],
                exact_cnt[perm],
                orig[perm],
            )
            internal[:npk] = inv[internal[:npk]]
            cells = cells * 4 if n >= _ROWS_PER_CELL * cells * 4 else 0
        remaining = n - npk
        B = min(batch_size, remaining)
        if B < remaining:
            part = np.argpartition(m, n - B - 1)
            S = np.sort(part[n - B :])
            tau = float(m[part[n - B - 1]])
        else:
            S = np.flatnonzero(~picked)
            tau = -np.inf
        top = float(m[S].max())
        if top - 2.0 * eps <= tau:
            # The leader is not certified against rows outside S: decide globally.
            g, val = resolve(np.flatnonzero(m >= top - 2.0 * eps))
            add(g, val)
            backend.update(m, np.array([g]))
            m[picked] = -np.inf
            continue
        G = backend.gram(S)
        mS = m[S].copy()
        new: list[int] = []
        while npk < k:
            j = int(np.argmax(mS))
            top = float(mS[j])
            if top - 2.0 * eps <= tau:
                break
            cont = np.flatnonzero(mS >= top - 2.0 * eps)
            if cont.size > 1:
                g, top = resolve(S[cont])
                j = int(np.searchsorted(S, g))
            add(int(S[j]), top)
            new.append(j)
            np.minimum(mS, G[j], out=mS)
            mS[j] = -np.inf
        if new:
            backend.update(m, S[np.array(new)])
        m[picked] = -np.inf

    final = 0.0
    if npk < n:
        top = float(m.max())
        final = resolve(np.flatnonzero(m >= top - 2.0 * eps))[1]
    after = np.empty(k, dtype=np.float64)
    after[:-1] = before[1:]
    after[-1] = max(final, 0.0)
    return picks, np.sqrt(np.maximum(after, 0.0))


class MMS(Reducer):
    """Max-min selection: exact greedy farthest-point (k-center) sampling.

    Deterministic (``seed`` is accepted and ignored): the first pick is the image
    nearest the mean of the rows it sees, then each pick is the image farthest
    from all earlier picks (Euclidean; ties -> lowest index). The picks equal
    those of the naive O(n k d) float64 algorithm exactly; see the module notes
    for the batched, certified implementation.

    Parameters
    ----------
    batch_size : int, default 256
        Size of the speculative candidate set per batch (affects speed only).
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``"auto"`` uses CUDA (torch) when available, else NumPy BLAS on the CPU.

    Scores
    ------
    ``scores[i]`` is the covering radius after pick ``i``: the largest Euclidean
    distance from any row to its nearest pick among the first ``i + 1``
    (non-increasing; equals the distance of pick ``i + 1`` to the earlier picks;
    the last score is the final covering radius, 0 when every row is picked).
    """

    name = "mms"
    description = "Max-min (farthest-point / k-center) greedy: covers the embedding space."
    _constraints = {  # noqa: RUF012
        "batch_size": Interval("int", 1, None),
        "device": Options(("auto", "cpu", "cuda")),
    }
    randomized = False

    def __init__(self, *, batch_size: int = 256, device: str = "auto") -> None:
        self.batch_size = batch_size
        self.device = device

    def _check_extra(self) -> None:
        if self.device == "cuda" and not _device.cuda_available():
            raise param_error(
                self._owner, "device", "'auto' or 'cpu' on a host without CUDA", "cuda"
            )

    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        picks, radius = farthest_points(X, budget, batch_size=self.batch_size, device=self.device)
        return picks, radius, {}
