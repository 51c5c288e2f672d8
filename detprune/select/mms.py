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

1. ``S`` = the ``B`` unpicked images with the largest current min-distance ``m``
   (``B`` adapts to the picks the previous batch made, at most ``batch_size``);
   ``tau`` = the largest ``m`` outside ``S``.
2. The ``S x S`` squared distances are computed with small matrix products.
3. The greedy is simulated inside ``S`` (updating ``m`` on ``S`` only) for as long
   as the best value in ``S`` provably exceeds ``tau`` -- no image outside ``S``
   can then be the next pick, because ``m`` only decreases.
4. ``m`` is updated for all ``n`` images with the distance rows of the batch's
   picks, as one matrix product (BLAS-3, compute bound; float64).

With at least 2048 rows, the rows are first grouped into cells (nearest of up to
128 centres from a few Lloyd steps on a sample; stored contiguously). A pick ``c``
can lower ``m`` in the cell of centre ``z`` and radius ``rho`` only if
``d(c, z) - rho`` is below the cell's largest ``m``; step 4 skips all other
(pick, cell) pairs (step 2 computes the whole ``S x S`` block: skipping there left
many tiny products that cost more than it saved). The cells only save work: the picks
do not depend on them.

Real backbone embeddings have little cluster structure: the cells then prune almost
nothing (99 % of the pairs computed on YOLOv5n features), but most of the rows'
variance lies in a few directions (64 axes hold 94-99 %). Where the cells compute
over 30 % of the pairs, step 4 switches, once a probe on a sample of rows shows that
it pays, to a screen in a float32 projection on the rows' top 64 principal axes: a
pair is evaluated (float64, gathered) only if its projected distance, with rigorous
rounding bounds, cannot rule out that it lowers the row's min-distance -- about
0.5 % of the pairs on real features. Like the cells, the screen only saves work.

Distances use ``||x||^2 - 2 x.c + ||c||^2`` on mean-centred float64 data, whose
rounding error is bounded by ``eps = 8 (2d + 7) u max||x||^2`` (``u`` = 2^-53).
Whenever the decision between the leader and another image is within ``2 eps``,
the contenders' min-distances are recomputed exactly as ``sum((x - c)**2)`` in
float64, over the picked centres within ``2 eps`` of the nearest one by the norm
trick (a BLAS pass; cached incrementally), so
the picks are *identical* to the naive float64 reference, ties included.
On a CUDA host (``device="auto"``/``"cuda"``) the matrix products run in torch on
the GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import Interval, Options, param_error
from . import _device
from ._project import Projection, principal_axes
from ._threads import Workers, single_threaded_blas
from .base import Reducer

__all__ = ["MMS", "farthest_points"]

_U64 = 2.0**-53
#: cells hold at least this many rows on average (no cells below 8 of them)
_ROWS_PER_CELL = 256
#: at most this many cells
_MAX_CELLS = 128
#: rows per chunk of the set-up passes
_CHUNK = 1024
#: Screening the distance updates in a principal-axes projection (where the cells do not
#: prune: real backbone embeddings): its rank (tried from ``d >= 4 * _RANK``), the share of
#: the variance its axes must hold, the share of (pick, row) pairs computed by the cells
#: above which it is tried (from ``_SCREEN_AFTER`` picks on), the share of surviving pairs
#: above which a block is computed densely (gathering a pair costs ~30 dense ones), the
#: share above which screening stops (it then costs more than it saves; the share only
#: falls as picks are added), and the most surviving pairs gathered at once
_RANK = 64
_SCREEN_MIN_VARIANCE = 0.5
_SCREEN_TRY = 0.3
_SCREEN_AFTER = 64
_SCREEN_DENSE = 0.02
_SCREEN_STOP = 0.1
_GATHER = 2048


class _NumpyBackend:
    """Squared distances by the norm trick with NumPy float64 BLAS.

    With ``groups`` set (rows stored contiguously per cell; a cell = the rows nearest
    one centre, a centroid of a few Lloyd steps seeded by early picks), :meth:`update`
    skips every (pick, cell) pair that cannot change anything: for a
    row ``x`` in the cell of centre ``z`` with radius ``rho``, ``d(x, c) >= d(c, z) - rho``,
    so the pair is skipped when that bound exceeds the largest current min-distance
    in the cell (with a rounding margin). This only saves work; values are unchanged.

    Where the cells compute most pairs anyway (real embeddings have little cluster
    structure) and the rows' variance lies mostly in a few directions, :meth:`update`
    switches to a screen in the rows' top :data:`_RANK` principal axes instead
    (:meth:`_screen_rows`): a pair is evaluated only if its projected distance does not
    rule out that it lowers the row's min-distance (rounding included).
    """

    def __init__(
        self, Xc: np.ndarray, sq: np.ndarray, eps: float, workers: Workers, block: int = 4096
    ) -> None:
        self.workers = workers
        self.Xc = Xc
        self.sq = sq
        self.eps = eps
        self.block = block
        self.margin = 4.0 * np.sqrt(eps) + 1e-9 * np.sqrt(float(sq.max()) + 1e-300)
        #: (starts (g + 1,), centres (g, d), squared norms of the centres (g,), radii (g,))
        self.groups: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        #: the projection screen: None (not tried yet), False (off), or its arrays
        self.screen: _Screen | bool | None = None
        self.seen = 0  # picks whose updates have been made

    def dist(self, a: np.ndarray, b: np.ndarray | slice) -> np.ndarray:
        """Squared distances between rows ``a`` and rows ``b`` (clamped at 0)."""
        G = (self.Xc[a] * -2.0) @ self.Xc[b].T
        G += self.sq[a][:, None]
        G += self.sq[b][None, :]
        np.maximum(G, 0.0, out=G)
        return G

    def _reach(self, idx: np.ndarray, top: np.ndarray) -> np.ndarray:
        """``need[i, g]``: pick ``idx[i]`` may come nearer than ``sqrt(top[g])`` to a row of cell g."""
        _, C, csq, rho = self.groups  # type: ignore[misc]
        D = (self.Xc[idx] * -2.0) @ C.T
        D += self.sq[idx][:, None]
        D += csq[None, :]
        reach = np.sqrt(np.maximum(D, 0.0)) - rho[None, :]
        return reach < (np.sqrt(np.maximum(top, 0.0)) + self.margin)[None, :]

    def _gram_rows(self, G: np.ndarray, S: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """``G[a][:, b] = d2(S[a], S[b])`` (one task; ``b`` a contiguous range)."""
        G[np.ix_(a, b)] = self.dist(S[a], S[b])

    def gram(self, S: np.ndarray) -> np.ndarray:
        """Squared distances within the (sorted) candidate set ``S``, threaded.

        Always the full ``B x B`` block, in two or so large matrix products: skipping
        the (pick, cell) pairs that the cell bound rules out (as :meth:`update` does)
        left hundreds of tiny products per batch that ran at ~1 GFLOP/s, slower than
        computing every entry (10-13 % of MMS on clustered and real data). The extra
        entries cannot lower the simulated min-distances beyond rounding, so the picks are
        unchanged.
        """
        B = S.size
        rows = np.arange(B)
        G = np.empty((B, B))
        step = max(32, -(-B // self.workers.workers))
        tasks = [(G, S, rows[s : s + step], rows) for s in range(0, B, step)]
        self.workers.run(self._gram_rows, tasks)
        return G

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
        self.seen += idx.size
        sc = self.screen
        if isinstance(sc, _Screen) and sc.P is not None and idx.size > 1:
            step = max(256, min(2048, -(-n // self.workers.workers)))
            tasks = [(m, idx, b, min(n, b + step)) for b in range(0, n, step)]
            survivors = sum(self.workers.run(self._screen_rows, tasks))
            if survivors > _SCREEN_STOP * idx.size * n:  # does not screen: stop
                self.screen = False
            return
        if self.groups is None:
            spans = [(0, n)]
            subsets = [idx]
        else:
            starts = self.groups[0]
            need = self._reach(idx, np.maximum.reduceat(m, starts[:-1]))
            cols = np.flatnonzero(need.any(axis=0))
            spans = [(int(starts[g]), int(starts[g + 1])) for g in cols]
            subsets = [idx[need[:, g]] for g in cols]
        tasks = []
        for (s, e), sub in zip(spans, subsets, strict=True):
            step = max(256, min(self.block, -(-(e - s) // self.workers.workers)))
            tasks.extend((m, sub, b, min(e, b + step)) for b in range(s, e, step))
        self.workers.run(self._rows, tasks)
        if sc is False or self.groups is None or self.seen < _SCREEN_AFTER or idx.size < 2:
            return
        if sc is None:  # the cells compute most pairs: try the projection
            computed = sum(sub.size * (e - s) for (s, e), sub in zip(spans, subsets, strict=True))
            if computed > _SCREEN_TRY * idx.size * n:
                sc = self.screen = _Screen.make(self.Xc, self.sq) or False
        if isinstance(sc, _Screen) and self.seen >= sc.next_probe:
            # the share that passes only falls as picks are added: probe again at twice the picks
            sc.next_probe = 2 * self.seen
            share = sc.probe(self.Xc, m, idx, self.eps)
            if share <= _SCREEN_DENSE:
                sc.build(self.Xc, self.workers)  # it screens on a sample of rows: from now on
            elif share > _SCREEN_STOP:
                self.screen = False  # far from screening: not worth more probes

    def _screen_rows(self, m: np.ndarray, idx: np.ndarray, s: int, e: int) -> int:
        """:meth:`_rows` for rows ``s:e``, screened in the projection (:meth:`_Screen.mask`);
        returns the number of (pick, row) pairs the screen could not rule out.

        The pairs that pass are evaluated by the float64 norm trick (as :meth:`_rows`
        does); with more than ``_SCREEN_DENSE`` of them the block is computed densely.
        """
        sc = self.screen
        assert isinstance(sc, _Screen) and sc.P is not None
        mask = sc.mask(sc.P[s:e], sc.pa[s:e], m[s:e], sc.P[idx], float(sc.pa[idx].max()), self.eps)
        flat = np.flatnonzero(mask)
        del mask
        if flat.size > _SCREEN_DENSE * idx.size * (e - s):
            self._rows(m, idx, s, e)
            return int(flat.size)
        for c in range(0, flat.size, _GATHER):
            pi, ri = np.divmod(flat[c : c + _GATHER], e - s)
            a, b = idx[pi], ri + s
            v = np.einsum("ij,ij->i", self.Xc[a], self.Xc[b]) * -2.0
            v += self.sq[a]
            v += self.sq[b]
            np.maximum(v, 0.0, out=v)
            np.minimum.at(m, b, v)  # rows of this task only
        return int(flat.size)


class _Screen:
    """Screening of distance updates in a float32 projection on the rows' top principal axes.

    A pick ``c`` can lower the min-distance ``m[x]`` of row ``x`` (by more than
    rounding) only if ``||x - c||^2 < m[x] + eps``; by the projection bounds
    (:mod:`._project`) that needs ``||P_c - P_x|| <= vnorm sqrt(m[x] + eps) + a_c + a_x``,
    tested on the float32 norm trick within its error bound (:meth:`mask`). The axes
    come from a strided sample of rows, on which :meth:`probe` measures the share of
    pairs that pass before :meth:`build` projects every row.
    """

    def __init__(self, Xc: np.ndarray, sq: np.ndarray, V: np.ndarray, sample: np.ndarray) -> None:
        proj = Projection(V)
        self.V = V
        self.vnorm = proj.vnorm
        self.pa = proj.per_norm * np.sqrt(sq) * (1.0 + 1e-6)  # per-row projection error
        # projected norms are at most vnorm |x| + a_x: the norm-trick error's scale
        self.pmax = float(self.vnorm * np.sqrt(sq.max()) * (1.0 + 1e-6) + self.pa.max())
        self.sample = sample
        self.Ps = np.ascontiguousarray(Xc[sample].astype(np.float32) @ V)
        #: every row's projection, (n, r) float32 (made by :meth:`build`)
        self.P: np.ndarray | None = None
        #: picks from which :meth:`probe` is tried next
        self.next_probe = 0

    @classmethod
    def make(cls, Xc: np.ndarray, sq: np.ndarray) -> _Screen | None:
        """The screen of the (centred, float64) rows, or None where it cannot screen
        (``d < 4 * _RANK``, or the axes hold too little of the variance)."""
        n, d = Xc.shape
        if d < 4 * _RANK:
            return None
        sample = np.arange(0, n, max(1, n // 1024))
        V = principal_axes(Xc[sample].astype(np.float32), _RANK, _SCREEN_MIN_VARIANCE)
        return None if V is None else cls(Xc, sq, V, sample)

    def mask(
        self, Pr: np.ndarray, pa_r: np.ndarray, m_r: np.ndarray, Pc: np.ndarray, pa_c: float,
        eps: float,
    ) -> np.ndarray:
        """``(picks, rows)`` bool: the pairs that the screen cannot rule out.

        Parameters
        ----------
        Pr : ndarray of float32, shape (nr, r)
            Projected rows.
        pa_r : ndarray of float64, shape (nr,)
            Their projection error bounds.
        m_r : ndarray of float64, shape (nr,)
            Their current min-distances.
        Pc : ndarray of float32, shape (np, r)
            Projected picks.
        pa_c : float
            The largest projection error bound of the picks.
        eps : float
            The float64 norm trick's error bound.
        """
        pn2 = np.einsum("ij,ij->i", Pr, Pr, dtype=np.float64)
        t = self.vnorm * np.sqrt(np.maximum(m_r, 0.0) + eps)
        t += pa_r
        t += pa_c
        lim = t * t
        lim += Projection.sq_error(Pr.shape[1], np.sqrt(pn2), self.pmax)
        lim -= pn2  # the rows' own squared norms move to the limit
        lim32 = np.nextafter(lim.astype(np.float32), np.float32(np.inf))
        G = (Pc * np.float32(-2.0)) @ Pr.T
        G += np.einsum("ij,ij->i", Pc, Pc, dtype=np.float64).astype(np.float32)[:, None]
        return G <= lim32[None, :]

    def probe(self, Xc: np.ndarray, m: np.ndarray, idx: np.ndarray, eps: float) -> float:
        """The share of (pick ``idx``, unpicked sample row) pairs that :meth:`mask` passes."""
        live = m[self.sample] >= 0.0
        if not live.any():
            return 1.0
        rows = self.sample[live]
        Pc = Xc[idx].astype(np.float32) @ self.V
        M = self.mask(self.Ps[live], self.pa[rows], m[rows], Pc, float(self.pa[idx].max()), eps)
        return float(M.mean())

    def build(self, Xc: np.ndarray, workers: Workers) -> None:
        """Project every row (threaded)."""
        n = Xc.shape[0]
        P = np.empty((n, self.V.shape[1]), dtype=np.float32)
        step = 2048
        workers.run(_project_chunk, [(Xc, P, a, min(n, a + step), self.V) for a in range(0, n, step)])
        self.P = P


def _project_chunk(X: np.ndarray, out: np.ndarray, a: int, b: int, V: np.ndarray) -> None:
    """``out[a:b] = fl32(X[a:b]) @ V`` (one task)."""
    out[a:b] = X[a:b].astype(np.float32) @ V


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

    def dist(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Squared distances between rows ``a`` and rows ``b`` (clamped at 0), as NumPy."""
        A, B = self.Xc[self._idx(a)], self.Xc[self._idx(b)]
        sa, sb = self.sq[self._idx(a)], self.sq[self._idx(b)]
        G = self.torch.addmm(sa[:, None] + sb[None, :], A, B.T, alpha=-2.0)
        return G.clamp_min_(0.0).cpu().numpy()

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


def _cells(
    X: np.ndarray, mu: np.ndarray, sq: np.ndarray, g: int, iters: int = 2, sample: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group the rows around ``g`` centres (speed only: any grouping gives the same picks).

    The centres come from a few Lloyd steps on a strided sample of about ``sample``
    rows, seeded by a farthest-point pass on that sample; every row is then assigned
    to its nearest centre in float64 (in chunks: no full-size temporaries).

    Parameters
    ----------
    X : ndarray of float32 or float64, shape (n, d)
        Raw rows.
    mu : ndarray of float64, shape (d,)
        The mean row (distances are computed on ``X - mu``).
    sq : ndarray of float64, shape (n,)
        Squared norms of ``X - mu``.
    g : int
        Number of centres, ``1 <= g <= n``.

    Returns
    -------
    lab : ndarray of int64, shape (n,)
        Index of the nearest centre of each row.
    centres : ndarray of float64, shape (g, d)
        Centred coordinates of the centres.
    dmin : ndarray of float64, shape (n,)
        Squared distance (norm trick, clamped at 0) of each row to its centre.
    """
    n = X.shape[0]
    Xs = np.subtract(X[:: max(1, n // sample)], mu, dtype=np.float64)
    ssq = (Xs**2).sum(axis=1)
    seeds = [int(np.argmin(ssq))]
    ms = np.full(Xs.shape[0], np.inf)
    for _ in range(min(g, Xs.shape[0]) - 1):
        c = seeds[-1]
        np.minimum(ms, ssq + ssq[c] - 2.0 * (Xs @ Xs[c]), out=ms)
        ms[seeds] = -np.inf
        seeds.append(int(np.argmax(ms)))
    C = Xs[seeds].copy()
    g = C.shape[0]
    for _ in range(iters):
        D = ssq[:, None] + (C**2).sum(axis=1)[None, :] - 2.0 * (Xs @ C.T)
        lab = D.argmin(axis=1)
        counts = np.bincount(lab, minlength=g)
        onehot = np.zeros((g, Xs.shape[0]))
        onehot[lab, np.arange(Xs.shape[0])] = 1.0
        live = counts > 0
        C[live] = (onehot @ Xs)[live] / counts[live][:, None]
    csq = (C**2).sum(axis=1)
    lab = np.empty(n, dtype=np.int64)
    dmin = np.empty(n)
    for s in range(0, n, _CHUNK):
        e = min(n, s + _CHUNK)
        D = (np.subtract(X[s:e], mu, dtype=np.float64) @ C.T) * -2.0
        D += csq[None, :]
        D += sq[s:e, None]
        lab[s:e] = D.argmin(axis=1)
        dmin[s:e] = np.maximum(D[np.arange(e - s), lab[s:e]], 0.0)
    return lab, C, dmin


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
    # No full-size temporaries: fresh memory is slow to fault in on some hosts.
    mu = X.mean(axis=0, dtype=np.float64)  # = X.astype(float64).mean(axis=0)
    sq = np.empty(n)
    for s in range(0, n, _CHUNK):  # row by row as ((X - mu)**2).sum(axis=1): the naive
        sq[s : s + _CHUNK] = (np.subtract(X[s : s + _CHUNK], mu, dtype=np.float64) ** 2).sum(
            axis=1
        )  # reference's distance to the mean
    first = int(np.argmin(sq))
    eps = 8.0 * (2 * d + 7) * _U64 * float(sq.max()) + 1e-300
    margin = 4.0 * np.sqrt(eps) + 1e-9 * np.sqrt(float(sq.max()) + 1e-300)

    # Per-row state lives in an internal row order (grouped by cell); ``orig`` maps
    # internal -> original row index. Picks are recorded as original rows.
    orig = np.arange(n)
    groups = None
    if dev == "cpu" and n >= _ROWS_PER_CELL * 8:
        g = int(min(_MAX_CELLS, n // _ROWS_PER_CELL))
        lab, centres, dmin = _cells(X, mu, sq, g)
        g = centres.shape[0]
        orig = np.argsort(lab, kind="stable")
        counts = np.bincount(lab, minlength=g)
        keep = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts[keep])])
        rho = np.zeros(g)
        np.maximum.at(rho, lab, dmin)
        rho = np.sqrt(rho[keep]) + margin
        centres = np.ascontiguousarray(centres[keep])
        groups = (starts, centres, (centres**2).sum(axis=1), rho)
        sq = sq[orig]
        first = int(np.flatnonzero(orig == first)[0])
    Xc = np.empty((n, d))
    for s in range(0, n, _CHUNK):
        np.subtract(X[orig[s : s + _CHUNK]], mu, out=Xc[s : s + _CHUNK])

    backend: Any
    if dev == "cpu":
        backend = _NumpyBackend(Xc, sq, eps, workers)
        backend.groups = groups
    else:  # "cuda", or "torch-cpu" (the torch code path on the CPU, for tests)
        backend = _TorchBackend(Xc, sq, "cpu" if dev == "torch-cpu" else dev)
    picks = np.empty(k, dtype=np.int64)
    internal = np.empty(k, dtype=np.int64)
    before = np.empty(k, dtype=np.float64)  # squared min-distance of each pick when picked
    picked = np.zeros(n, dtype=bool)
    exact_m = np.full(n, np.inf)
    exact_cnt = np.zeros(n, dtype=np.int64)
    m = np.full(n, np.inf)
    npk = 0

    def exact(idx: np.ndarray) -> np.ndarray:
        """Exact float64 min squared distance of (internal) rows ``idx`` to the current picks.

        The approximate distances (norm trick, error <= ``eps``) to the picks not yet
        folded into ``exact_m`` are computed with BLAS; only the picks within ``2 eps`` of
        the approximate minimum can be the exact minimiser, and only those are evaluated
        as ``sum((x - c)**2)`` on the raw rows.
        """
        todo = idx[(exact_cnt[idx] < npk) & (exact_m[idx] > 0.0)]
        for a in range(0, todo.size, 64):
            rows = todo[a : a + 64]
            lo = int(exact_cnt[rows].min())
            A = np.full((rows.size, npk - lo), np.inf)
            for b in range(lo, npk, 4096):
                e = min(npk, b + 4096)
                A[:, b - lo : e - lo] = backend.dist(rows, internal[b:e])
            A[np.arange(npk - lo)[None, :] < (exact_cnt[rows] - lo)[:, None]] = np.inf
            ri, ci = np.nonzero(A <= A.min(axis=1, keepdims=True) + 2.0 * eps)
            best = np.full(rows.size, np.inf)
            for b in range(0, ri.size, 2048):
                r, c = ri[b : b + 2048], ci[b : b + 2048]
                x = np.asarray(X[orig[rows[r]]], dtype=np.float64)
                D = ((x - np.asarray(X[picks[c + lo]], dtype=np.float64)) ** 2).sum(axis=1)
                np.minimum.at(best, r, D)
            exact_m[rows] = np.minimum(exact_m[rows], best)
        exact_cnt[idx] = npk
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

    add(first, np.inf)
    backend.update(m, np.array([first]))
    m[picked] = -np.inf

    cap = min(batch_size, 16)  # candidate-set size, adapted to the picks per batch
    while npk < k:
        remaining = n - npk
        B = min(cap, remaining)
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
        mS = m[S].copy()
        G = backend.gram(S)
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
        cap = int(min(batch_size, max(16, 2 * len(new) + 16)))

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
