"""ε-representativeness of a kept subset, per class (exact).

For a class ``c`` with full-set members ``M_c`` and kept members ``K_c``
(kept images that contain ``c``):

* ``eps_linf[c] = max_{x in M_c} min_{k in K_c} ||x - k||_inf``
* ``eps_l2[c]   = max_{x in M_c} min_{k in K_c} ||x - k||_2``
* ``mean_l2[c]  = mean_{x in M_c} min_{k in K_c} ||x - k||_2``

Kept members are at distance 0 from themselves. The overall values are the
maxima over classes. A class with members but no kept image gets ``inf`` and a
warning (in the report and through :func:`warnings.warn`) -- never silently
skipped. Values are exact: identical to a float64 brute force (and to
``scipy.spatial.cKDTree(kept).query(x, p=inf)``).

How the search is fast and exact (CPU)
--------------------------------------
L2 (per class): the kept rows are grouped into cells around farthest-point pivots;
candidates come from a float32 matrix product (BLAS) and every pair within its
rigorous rounding bound of the smallest value is re-evaluated exactly in float64.
A further cell is searched only where the triangle inequality (with rounding
margins) says it may hold a nearer row. Where a sample of queries shows that the
cells would not prune (real backbone embeddings have little cluster structure
at this scale), one pass over all kept rows replaces them, screened in a 64-d
projection on the kept rows' principal axes: a projected distance bounds the
true one from below (rounding included), so only the pairs it cannot rule out
-- about 0.1 % on YOLOv5 features -- are evaluated. The projection is skipped where
its axes hold under half of the variance (random-like data).

L-infinity (per class) has no BLAS trick; one of two exact engines answers it:

* with cluster structure -- the median L2 distance to the nearest kept row is at
  most ``KD_CONTRAST`` (0.36) times the median distance to an arbitrary kept row --
  the reference engine itself, ``scipy.spatial.cKDTree(kept).query(x, p=inf)`` on
  the rows converted to float64, multi-threaded (``workers`` = usable cores);
* otherwise (random-like data, where the tree degenerates to a slow brute force) a
  dense int8 search: coordinates are rounded to int8 codes with one step ``s``, so
  ``s (D8 - 1) <= ||x - k||_inf <= s (D8 + 1)`` for the int8 Chebyshev distance
  ``D8`` (vectorised, threaded over query blocks); starting from the exact distance
  to the L2-nearest row as upper bound, only pairs whose lower bound does not exceed
  it are evaluated exactly in float64.

Both compute ``max |x_i - k_i|`` in float64, so the values are identical whichever
runs. :func:`epsilon` needs only the largest L-inf distance of each class, so it does
not search every row: the exact L-inf distance to its L2-nearest kept row bounds each
row's distance from above; rows are visited in decreasing bound, the first block
exactly and the rest only up to the largest distance found so far (a search that
stops there), and the visit ends at the first bound that cannot exceed it. On random-
or cluster-like data about a tenth of the rows are visited. With the int8 engine each
block is first checked against the query's 16 approximate L2-nearest kept rows (one
float32 matrix product): on random-like data one of them is within the bound for 99 %
of the queries, which then need no search at all. Small sets (all classes'
rows within ``CONCURRENT_BYTES``) measure two classes at a time, sharing one worker
pool, so that one class's serial steps overlap the other's threaded ones. On CUDA
(``device="auto"``/``"cuda"``) both norms run as float64 torch brute force, in query
blocks sized to the free GPU memory (:func:`_torch_block`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import Options, validate_params
from . import _device
from ._checks import check_indices, check_matrix, fail
from ._project import Projection, principal_axes, project_rows
from ._threads import Workers, single_threaded_blas

__all__ = ["EpsilonReport", "epsilon", "nearest_kept"]

_U32 = 2.0**-24
_U64 = 2.0**-53
_OWNER = "epsilon"


@dataclass(frozen=True, eq=False)
class EpsilonReport:
    """Per-class ε-representativeness of a kept subset.

    Attributes
    ----------
    classes : tuple of int, length C
        Class ids (column index of a multi-hot matrix, label value, or ``0`` when
        no labels were given).
    n_total, n_kept : tuple of int, length C
        Images of the class in the full set / among the kept images.
    eps_linf, eps_l2 : tuple of float, length C
        Max over the class's images of the L-inf / L2 distance to the nearest kept
        image of the same class (``inf`` when none is kept; ``0.0`` for a class
        with no image at all).
    mean_l2 : tuple of float, length C
        Mean over the class's images of the L2 distance to the nearest kept image
        of the same class.
    overall_linf, overall_l2 : float
        Maxima over classes.
    warnings : tuple of str
        One entry per class with images but no kept image.
    """

    classes: tuple[int, ...]
    n_total: tuple[int, ...]
    n_kept: tuple[int, ...]
    eps_linf: tuple[float, ...]
    eps_l2: tuple[float, ...]
    mean_l2: tuple[float, ...]
    overall_linf: float
    overall_l2: float
    warnings: tuple[str, ...]

    @property
    def eps(self) -> float:
        """The overall L-infinity ε (max over classes)."""
        return self.overall_linf

    def per_class(self) -> list[dict[str, Any]]:
        """One dict per class: class, n_total, n_kept, eps_linf, eps_l2, mean_l2."""
        return [
            {
                "class": c,
                "n_total": t,
                "n_kept": k,
                "eps_linf": a,
                "eps_l2": b,
                "mean_l2": m,
            }
            for c, t, k, a, b, m in zip(
                self.classes,
                self.n_total,
                self.n_kept,
                self.eps_linf,
                self.eps_l2,
                self.mean_l2,
                strict=True,
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (``inf`` stays a float: ``json.dumps`` writes ``Infinity``)."""
        return {
            "overall_linf": self.overall_linf,
            "overall_l2": self.overall_l2,
            "classes": self.per_class(),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- kernels


#: float64 values per chunk of the pairwise kernels: the temporaries stay in cache (a
#: chunk of 2M values, 16 MB, ran at half the speed)
_PAIR_CHUNK = 262_144


def _exact_linf(Q: np.ndarray, K: np.ndarray, qi: np.ndarray, ki: np.ndarray) -> np.ndarray:
    """Exact float64 L-inf distances of the pairs (Q[qi], K[ki]) (rows converted to float64)."""
    out = np.empty(qi.size)
    step = max(1, _PAIR_CHUNK // max(1, Q.shape[1]))
    for s in range(0, qi.size, step):
        e = min(qi.size, s + step)
        a = Q[qi[s:e]].astype(np.float64, copy=False)
        out[s:e] = np.abs(a - K[ki[s:e]]).max(axis=1)
    return out


def _exact_sq(Q: np.ndarray, K: np.ndarray, qi: np.ndarray, ki: np.ndarray) -> np.ndarray:
    """Exact float64 squared L2 distances ``sum((q - k)**2)`` of the pairs (float64 rows)."""
    out = np.empty(qi.size)
    step = max(1, _PAIR_CHUNK // max(1, Q.shape[1]))
    for s in range(0, qi.size, step):
        e = min(qi.size, s + step)
        a = Q[qi[s:e]].astype(np.float64, copy=False)
        out[s:e] = ((a - K[ki[s:e]]) ** 2).sum(axis=1)
    return out


def _nonzero2(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask (same indices, same order), 10-15x faster on sparse
    masks: ``flatnonzero`` and a division instead of a per-element multi-index."""
    if mask.shape[1] == 0:
        return np.nonzero(mask)
    rows, cols = np.divmod(np.flatnonzero(mask), mask.shape[1])
    return rows, cols


def _group_min(nq: int, qi: np.ndarray, vals: np.ndarray) -> np.ndarray:
    out = np.full(nq, np.inf)
    np.minimum.at(out, qi, vals)
    return out


def _pivots(Kf: np.ndarray, ksq: np.ndarray, g: int, sample: int = 2048) -> np.ndarray:
    """``g`` distinct rows spread over ``Kf`` (greedy farthest points on a strided sample).

    Speed only: any pivots give exact results (cell radii are measured afterwards).
    """
    n = Kf.shape[0]
    rows = np.arange(0, n, max(1, n // sample))
    S = Kf[rows]
    ssq = ksq[rows].astype(np.float32)
    picks = [int(np.argmin(ssq))]
    m = np.full(rows.size, np.inf, dtype=np.float32)
    for _ in range(g - 1):
        c = picks[-1]
        np.minimum(m, ssq + ssq[c] - 2.0 * (S @ S[c]), out=m)
        m[picks] = -np.inf
        picks.append(int(np.argmax(m)))
    return rows[np.array(picks)]


class _L2Search:
    """Exact nearest kept row in L2 of each query row, for one class (CPU).

    The kept rows are grouped into cells around ``g`` pivots (greedy farthest points
    of a strided sample of the kept rows; each cell's radius is measured).
    Each query is first searched in its own cell (nearest pivot), which gives an exact
    upper bound ``U``; a further cell is searched only for the queries whose lower
    bound for it, ``d(q, pivot) - radius`` (with rounding margins), does not exceed
    ``U``. Without cluster structure (estimated on a sample of queries) one dense
    pass replaces the cells; where the kept rows' variance is concentrated in a
    few directions (real embeddings), that pass is screened in the span of their
    top ``RANK`` principal axes (:meth:`_projection`), which bounds every distance
    from below, and only the pairs the bound cannot rule out are evaluated.

    Inside a search, candidates come from a float32 matrix product (within its
    rigorous rounding bound of the smallest value) and are evaluated exactly in
    float64.
    """

    #: query x kept entries per task (at most; 4 MB of float32), and the most queries per task
    BLOCK = 1_048_576
    CHUNK = 256
    #: at most this many (query, kept row) pairs: one plain pass, no cells (their set-up
    #: and the thread hand-offs cost more than the whole pass: 700 x 700, d = 768,
    #: 27 -> 8 ms)
    SMALL_PAIRS = 2_000_000
    #: number of cells: CELLS * sqrt(kept rows), at most MAX_CELLS
    CELLS = 0.5
    MAX_CELLS = 128
    #: queries whose cell search estimates its cost, and the share of the kept rows
    #: searched per query above which one dense pass replaces the cell search
    SAMPLE = 256
    DENSE_SHARE = 0.6
    #: rank of the PCA projection that screens pairs where a dense pass is due, and the
    #: share of surviving pairs (measured on the sample) up to which it is used
    RANK = 64
    PROJECT_SHARE = 0.04
    #: the projection is not tried when its axes hold less than this share of the kept
    #: rows' variance (on a sample): it cannot screen then (random-like data: ~0.4; real
    #: backbone embeddings: 0.94-0.99)
    PROJECT_MIN_VARIANCE = 0.5

    def __init__(self, Q: np.ndarray, K: np.ndarray) -> None:
        native = np.float32 if Q.dtype == np.float32 and K.dtype == np.float32 else np.float64
        Qn = np.ascontiguousarray(Q, dtype=native)
        Kn = np.ascontiguousarray(K, dtype=native)
        nq, d = Qn.shape
        nk = Kn.shape[0]
        self.nq, self.nk = nq, nk
        # ---- float32 centred copies (a common shift leaves distances unchanged; only the
        # rounding matters, bounded below)
        mu = Kn.mean(axis=0, dtype=np.float64).astype(native)
        Qf = np.ascontiguousarray(Qn - mu, dtype=np.float32)
        Kf = np.ascontiguousarray(Kn - mu, dtype=np.float32)
        qsq = np.einsum("ij,ij->i", Qf, Qf, dtype=np.float64)
        ksq = np.einsum("ij,ij->i", Kf, Kf, dtype=np.float64)
        kmax = math.sqrt(float(ksq.max()))
        # |float32 norm-trick d2 - float64 direct d2| <= err (rounding of the copies, the
        # products, the sums): 4 (2d + 7) u32 (|q| + |k|)^2, doubled for safety.
        coef = 8.0 * (2 * d + 7) * _U32
        self.err32 = coef * (np.sqrt(qsq) + kmax) ** 2 + 1e-30
        scale = max(kmax, math.sqrt(float(qsq.max(initial=0.0))), 1e-30)
        self.margin = 1e-6 * scale
        # ---- cells
        g = (
            1
            if nk < 512 or nq < 64 or nq * nk <= self.SMALL_PAIRS
            else int(min(self.MAX_CELLS, max(8, round(math.sqrt(nk) * self.CELLS))))
        )
        if g > 1:
            piv = _pivots(Kf, ksq, g)
            lab = np.empty(nk, dtype=np.int64)
            kp = Kf[piv]
            for s in range(0, nk, 4096):  # nearest pivot (float32 is fine: speed only)
                D = ksq[s : s + 4096, None] + ksq[piv][None, :] - 2.0 * (Kf[s : s + 4096] @ kp.T)
                lab[s : s + 4096] = D.argmin(axis=1)
            lab[piv] = np.arange(g)
        else:
            piv = np.zeros(1, dtype=np.int64)
            lab = np.zeros(nk, dtype=np.int64)
        order = np.argsort(lab, kind="stable")
        counts = np.bincount(lab, minlength=g)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        inv = np.empty(nk, dtype=np.int64)
        inv[order] = np.arange(nk)
        self.piv = inv[piv]
        self.g = g
        self.order = order
        self.Qx = Qn  # exact evaluation: rows converted to float64 (exact from float32)
        self.Kx = np.ascontiguousarray(Kn[order])
        self.Qf, self.qsq = Qf, qsq
        self.Kf, self.ksq = np.ascontiguousarray(Kf[order]), ksq[order]
        self.qsq32 = qsq.astype(np.float32)
        self.ksq32 = self.ksq.astype(np.float32)
        # ---- cell radii (upper bounds, rounding included)
        cell = np.repeat(np.arange(g), counts)
        pv = self.piv[cell]
        d2 = self.ksq + self.ksq[pv] - 2.0 * np.einsum("ij,ij->i", self.Kf, self.Kf[pv])
        self.rad2 = np.zeros(g)
        np.maximum.at(self.rad2, cell, np.sqrt(np.maximum(d2, 0.0) + coef * (2 * kmax) ** 2))
        self.rad2 += self.margin
        #: the principal-axes projections (set by :meth:`_projection` where it is made)
        self.Qp: np.ndarray | None = None
        self.Kp: np.ndarray | None = None

    def _task(self, s0: int, s1: int, qs: np.ndarray) -> tuple:
        """Exact min squared L2 from queries ``qs`` to kept rows ``s0:s1``, and its row."""
        G = (self.Qf[qs] * np.float32(-2.0)) @ self.Kf[s0:s1].T
        G += self.qsq32[qs][:, None]
        G += self.ksq32[s0:s1][None, :]
        lim = G.min(axis=1).astype(np.float64) + 2.0 * self.err32[qs]
        qi, ki = _nonzero2(G <= lim[:, None])
        vals = _exact_sq(self.Qx, self.Kx, qs[qi], ki + s0)
        best = _group_min(qs.size, qi, vals)
        arg = np.empty(qs.size, dtype=np.int64)
        hit = vals == best[qi]
        arg[qi[hit]] = ki[hit] + s0
        return qs, best, arg

    def _projection(self, workers: Workers) -> bool:
        """Project on the top principal axes of the kept rows, with rigorous bounds.

        Returns False (and projects nothing) when the axes hold less than
        :attr:`PROJECT_MIN_VARIANCE` of the sample's variance.

        ``V`` (d x r, float32) holds the axes. For exact rows ``q``, ``k`` (centred by
        the common shift), ``||q - k|| >= ||V^T (q - k)|| / ||V||_2``, and the float32
        projections ``P = fl(F V)`` of the float32 copies ``F`` differ from ``V^T (q - mu)``
        by at most ``a = (gamma_d || |V| ||_2 + 2.01 u32 ||V||_2) ||F||`` (the matrix
        product's rounding, and that of the copies). With ``Dp`` the float32 norm-trick
        squared distance of the projections (error ``perr``), a pair can come within
        ``u`` of a query only if ``Dp <= (||V||_2 u + a_q + a_k)^2 + perr``.
        """
        d = self.Kf.shape[1]
        r = min(self.RANK, d)
        # the axes of a strided sample of kept rows: any basis gives exact results, a good
        # one screens more pairs
        V = principal_axes(self.Kf[:: max(1, self.nk // 1024)], r, self.PROJECT_MIN_VARIANCE)
        if V is None:
            return False
        proj = Projection(V)
        per_norm, vnorm = proj.per_norm, proj.vnorm
        self.Qp = np.empty((self.nq, r), dtype=np.float32)
        self.Kp = np.empty((self.nk, r), dtype=np.float32)
        step = 2048
        tasks = [(self.Qf, self.Qp, a, a + step, V) for a in range(0, self.nq, step)]
        tasks += [(self.Kf, self.Kp, a, a + step, V) for a in range(0, self.nk, step)]
        list(workers.run(project_rows, tasks))
        qpsq = np.einsum("ij,ij->i", self.Qp, self.Qp, dtype=np.float64)
        kpsq = np.einsum("ij,ij->i", self.Kp, self.Kp, dtype=np.float64)
        self.qpsq, self.kpsq32 = qpsq, kpsq.astype(np.float32)
        kpmax = math.sqrt(float(kpsq.max()))
        self.perr = Projection.sq_error(r, np.sqrt(qpsq), kpmax)
        self.pa = per_norm * np.sqrt(self.qsq)
        self.pb = per_norm * math.sqrt(float(self.ksq.max()))
        self.vnorm = vnorm
        return True

    def _ptask(self, qs: np.ndarray, limit: float = math.inf) -> tuple:
        """:meth:`_task` over all kept rows, screened in the projection (see :meth:`_projection`).

        With more than ``limit`` surviving pairs nothing is evaluated (``None`` values).
        """
        # Dp without the query's own squared norm (a per-row constant, in the threshold)
        G = (self.Qp[qs] * np.float32(-2.0)) @ self.Kp.T
        G += self.kpsq32[None, :]
        j = G.argmin(axis=1)
        u2 = _exact_sq(self.Qx, self.Kx, qs, j)  # exact: an upper bound of the nearest
        t = self.vnorm * np.sqrt(u2) + self.pa[qs] + self.pb + self.margin
        lim = (t * t + self.perr[qs] - self.qpsq[qs]).astype(np.float32)
        qi, ki = _nonzero2(G <= np.nextafter(lim, np.float32(np.inf))[:, None])
        if qi.size > limit:
            return qs, None, None
        vals = _exact_sq(self.Qx, self.Kx, qs[qi], ki)
        best = np.minimum(_group_min(qs.size, qi, vals), u2)
        arg = j.copy()
        hit = vals == best[qi]
        arg[qi[hit]] = ki[hit]
        return qs, best, arg

    def run(self, workers: Workers) -> np.ndarray:
        """Exact nearest-kept squared L2 distance of every query."""
        nq, g = self.nq, self.g
        best2 = np.full(nq, np.inf)
        allq = np.arange(nq)
        self.nearest = np.zeros(nq, dtype=np.int64)  # a nearest kept row (index into K)

        def merge(results: Any) -> None:
            for qs, v2, arg in results:
                better = v2 < best2[qs]  # a query occurs once per task
                best2[qs[better]] = v2[better]
                self.nearest[qs[better]] = self.order[arg[better]]

        def submit(pairs: list[tuple[int, int, np.ndarray]]) -> None:
            tasks = []
            for s0, s1, qs in pairs:
                chunk = int(max(16, min(self.CHUNK, self.BLOCK // max(1, s1 - s0))))
                tasks += [(s0, s1, qs[a : a + chunk]) for a in range(0, qs.size, chunk)]
            merge(workers.run(self._task, tasks))

        def screened(qs: np.ndarray, share: float = math.inf) -> bool:
            chunk = int(max(16, min(self.CHUNK, self.BLOCK // max(1, self.nk))))
            tasks = [(qs[a : a + chunk], share * self.nk * min(chunk, qs.size - a))
                     for a in range(0, qs.size, chunk)]
            results = list(workers.run(self._ptask, tasks))
            if any(r[1] is None for r in results):
                return False
            merge(results)
            return True

        def dense(qs: np.ndarray, probe: np.ndarray) -> None:
            """One pass over all kept rows for ``qs``; screened in the projection where
            that leaves few pairs on ``probe`` (a subset of ``qs``, searched first)."""
            if self.Kf.shape[1] >= 4 * self.RANK and probe.size and self._projection(workers):
                if screened(probe, self.PROJECT_SHARE):
                    screened(np.setdiff1d(qs, probe, assume_unique=True))
                    return
            submit([(0, self.nk, qs)])

        if g == 1:
            submit([(0, self.nk, allq)])
            return best2
        P = self.piv
        Dqp = self.qsq[:, None] + self.ksq[P][None, :] - 2.0 * (self.Qf @ self.Kf[P].T)
        own = Dqp.argmin(axis=1)
        st = self.starts
        sizes = np.diff(st)
        lb = np.sqrt(np.maximum(Dqp - self.err32[:, None], 0.0)) - self.rad2[None, :] - self.margin

        def need_of(q: np.ndarray) -> np.ndarray:
            need = lb[q] <= np.sqrt(best2[q])[:, None] + self.margin
            need[np.arange(q.size), own[q]] = False
            return need

        # Is the cell search worth it? Phase A (own cells) and phase B (the cells the bound
        # cannot rule out) are estimated on a sample of queries; with weak cluster structure
        # (farthest-point pivots then leave one giant cell) one dense pass is cheaper.
        sample = allq[:: max(1, nq // self.SAMPLE)]
        submit([(int(st[c]), int(st[c + 1]), sample[own[sample] == c]) for c in range(g)])
        per_query = (sizes[own[sample]] + (need_of(sample) * sizes[None, :]).sum(axis=1)).mean()
        if per_query > self.DENSE_SHARE * self.nk:
            dense(allq, sample)
            return best2
        rest = np.setdiff1d(allq, sample, assume_unique=True)
        # phase A: every query in its own cell
        submit([(int(st[c]), int(st[c + 1]), rest[own[rest] == c]) for c in range(g)])
        # phase B: the other cells whose lower bound does not exceed the exact upper bound
        need = need_of(allq)
        if float((need * sizes[None, :]).sum()) > 0.3 * nq * self.nk:
            # little cluster structure: one dense pass over all kept rows is cheaper
            qs = np.flatnonzero(need.any(axis=1))
            dense(qs, qs[:: max(1, qs.size // self.SAMPLE)])
        else:
            submit([(int(st[c]), int(st[c + 1]), np.flatnonzero(need[:, c])) for c in range(g)])
        return best2

    #: approximate L2 neighbours whose exact L-inf distance :meth:`linf_witness` takes
    WITNESSES = 16

    def _witness_task(self, qs: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact L-inf distance from each query to the nearest of its ``m`` approximate
        (float32 norm trick) L2-nearest kept rows: in the principal-axes projection where
        the search made one (it holds most of the variance), else in all coordinates."""
        if self.Kp is not None:
            G = (self.Qp[qs] * np.float32(-2.0)) @ self.Kp.T
            G += self.kpsq32[None, :]
        else:
            G = (self.Qf[qs] * np.float32(-2.0)) @ self.Kf.T
            G += self.ksq32[None, :]
        if m < self.nk:
            cand = np.argpartition(G, m - 1, axis=1)[:, :m]
        else:
            cand = np.broadcast_to(np.arange(self.nk), (qs.size, self.nk))
        del G
        vals = _exact_linf(self.Qx, self.Kx, np.repeat(qs, cand.shape[1]), cand.ravel())
        return qs, vals.reshape(qs.size, -1).min(axis=1)

    def linf_witness(self, workers: Workers, qs: np.ndarray) -> np.ndarray:
        """An exact L-inf distance from each query ``qs`` to some kept row (upper bounds).

        The kept row is the L-inf-nearest of the query's :attr:`WITNESSES` approximate
        L2-nearest ones: on random-like data one of them is nearly always within the
        largest nearest-kept L-inf distance (16 of them: 99 % of the queries that the L2-
        nearest row alone leaves open), which settles such a query in :func:`_max_linf`
        without a search over all kept rows.
        """
        m = int(min(self.WITNESSES, self.nk))
        chunk = int(max(16, min(self.CHUNK, self.BLOCK // max(1, self.nk))))
        tasks = [(qs[a : a + chunk], m) for a in range(0, qs.size, chunk)]
        parts = [w for _, w in workers.run(self._witness_task, tasks)]  # in task order
        return np.concatenate(parts) if parts else np.empty(0)


class _LinfCodes:
    """Exact nearest kept row in L-inf of each query row, for one class (CPU, dense).

    Coordinates are shifted and scaled by one common step ``s`` and rounded to int8
    in ``[-63, 63]``, so ``s (D8 - 1) <= ||q - k||_inf <= s (D8 + 1)`` for every pair
    (``D8``: int8 Chebyshev distance). ``D8`` is computed densely over the
    coordinates (largest spread first) until few pairs can still beat the upper
    bound ``U`` (exact distance to the pair with the smallest partial ``D8``), then on
    the surviving pairs only; the final survivors are evaluated exactly in float64.
    """

    #: dense int8 passes run over this many coordinates before pair pruning is considered
    PREFIX = 32
    #: switch from dense to pair-list evaluation below this share of surviving pairs
    DENSE_SHARE = 0.08
    #: queries per task (at most)
    CHUNK = 256
    #: slack (in code units) for the float arithmetic of the int8 codes
    SLACK = 1e-3

    def __init__(self, Q: np.ndarray, K: np.ndarray) -> None:
        native = np.float32 if Q.dtype == np.float32 and K.dtype == np.float32 else np.float64
        Qn = np.ascontiguousarray(Q, dtype=native)
        Kn = np.ascontiguousarray(K, dtype=native)
        self.nq, self.d = Qn.shape
        self.nk = Kn.shape[0]
        self.Qx, self.Kx = Qn, Kn  # exact evaluation: rows converted to float64
        lo = np.minimum(Qn.min(axis=0), Kn.min(axis=0)).astype(np.float64)
        hi = np.maximum(Qn.max(axis=0), Kn.max(axis=0)).astype(np.float64)
        cols = np.argsort(-(hi - lo), kind="stable")
        half = float(np.max(hi - lo)) / 2.0
        self.step = half / 63.0 if half > 0 else 1.0
        off = ((lo + hi) / 2.0)[cols].astype(native)
        inv_step = native(1.0 / self.step)
        self.cols, self.off, self.inv_step = cols, off, inv_step
        self.K8 = self._codes(Kn[:, cols], off, inv_step)
        self.K8T = np.ascontiguousarray(self.K8.T)
        # query codes are made per task (:meth:`_qcodes`): epsilon's maximum searches few
        # of the queries (at 100k images, coding them all took 2.5 of its 9 s)

    @staticmethod
    def _codes(A: np.ndarray, off: np.ndarray, inv_step: Any) -> np.ndarray:
        codes = np.rint((A - off) * inv_step)
        np.clip(codes, -63, 63, out=codes)
        return np.ascontiguousarray(codes.astype(np.int8))

    def _qcodes(self, qs: np.ndarray) -> np.ndarray:
        """int8 codes of the query rows ``qs`` (coordinates in :attr:`cols` order)."""
        return self._codes(self.Qx[np.ix_(qs, self.cols)], self.off, self.inv_step)

    def _limit(self, U: np.ndarray) -> np.ndarray:
        """Keep pairs with ``D8 <= U / s + 1 (+ slack)``: the others cannot beat ``U``."""
        t = np.floor(U / self.step * (1.0 + 1e-9) + 1.0 + self.SLACK)
        return np.minimum(t, 127).astype(np.int8)

    def _upper(self, D8: np.ndarray) -> np.ndarray:
        """Upper bound of the L-inf distance of a pair from its full int8 distance."""
        return self.step * (D8.astype(np.float64) + 1.0 + self.SLACK) * (1.0 + 1e-9)

    def _dense8(self, QT: np.ndarray, D: np.ndarray, c0: int, c1: int) -> None:
        """``D = max(D, max_{c0 <= i < c1} |q_i - k_i|)`` over all kept rows."""
        b, m = D.shape
        cc = int(max(1, min(32, 4_000_000 // max(1, b * m))))
        for c in range(c0, c1, cc):
            e = min(c1, c + cc)
            T = np.subtract(QT[c:e, :, None], self.K8T[c:e, None, :])
            np.abs(T, out=T)
            np.maximum(D, T.max(axis=0), out=D)

    def _full8(self, Q8: np.ndarray, ki: np.ndarray) -> np.ndarray:
        """Full int8 L-inf distance of the pairs (row i of ``Q8``, K8[ki[i]])."""
        return np.abs(Q8 - self.K8[ki]).max(axis=1)

    def _task(self, qs: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact min L-inf from queries ``qs`` to all kept rows (``U``: exact upper bounds,
        each attained by a kept row)."""
        b, d = qs.size, self.d
        Q8 = self._qcodes(qs)
        QT = np.ascontiguousarray(Q8.T)
        D = np.zeros((b, self.nk), dtype=np.int8)
        c = min(d, self.PREFIX)
        self._dense8(QT, D, 0, c)
        U = np.minimum(U, self._upper(self._full8(Q8, D.argmin(axis=1))))
        thr = self._limit(U)
        keep = D <= thr[:, None]
        while c < d and keep.mean() > self.DENSE_SHARE:
            e = min(d, c + 32)
            self._dense8(QT, D, c, e)
            c = e
            if c % 128 == 0:  # the smallest partial distance is a good candidate
                U = np.minimum(U, self._upper(self._full8(Q8, D.argmin(axis=1))))
                thr = self._limit(U)
            keep = D <= thr[:, None]
        qi, ki = _nonzero2(keep)
        dp = D[qi, ki]
        del D, keep
        while c < d and qi.size:
            e = min(d, c + 64)
            v = np.abs(Q8[qi, c:e] - self.K8[ki, c:e]).max(axis=1)
            np.maximum(dp, v, out=dp)
            ok = dp <= thr[qi]
            qi, ki, dp = qi[ok], ki[ok], dp[ok]
            c = e
        # dp is now the full int8 distance (U is attained by a pair, so some survive):
        # tighten U with each query's best, filter, and evaluate the rest exactly.
        best = np.full(b, 127, dtype=np.int8)
        np.minimum.at(best, qi, dp)
        U = np.minimum(U, self._upper(best))
        ok = dp <= self._limit(U)[qi]
        qi, ki = qi[ok], ki[ok]
        return qs, _group_min(b, qi, _exact_linf(self.Qx, self.Kx, qs[qi], ki))

    def search(self, workers: Workers, qs: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Nearest-kept L-inf distance of the queries ``qs``, given upper bounds ``U``.

        Where ``U`` is attained by a kept row the result is exact. Otherwise it is exact
        where the distance is at most ``U`` and exceeds ``U`` (possibly ``inf``) elsewhere.
        """
        chunk = int(max(16, min(self.CHUNK, 262_144 // self.nk)))
        tasks = [(qs[a : a + chunk], U[a : a + chunk]) for a in range(0, qs.size, chunk)]
        parts = [v for _, v in workers.run(self._task, tasks)]  # in task order
        return np.concatenate(parts) if parts else np.empty(0)

    def run(self, workers: Workers, seed: np.ndarray) -> np.ndarray:
        """Exact nearest-kept L-inf distance of every query (``seed``: a kept row per query)."""
        chunk = int(max(16, min(self.CHUNK, 262_144 // self.nk)))
        U = _exact_linf(self.Qx, self.Kx, np.arange(self.nq), seed)
        tasks = [
            (np.arange(a, min(self.nq, a + chunk)), U[a : a + chunk])
            for a in range(0, self.nq, chunk)
        ]
        out = np.empty(self.nq)
        for q, v in workers.run(self._task, tasks):
            out[q] = v
        return out


class _LinfTree:
    """Nearest-kept L-inf distances by ``scipy.spatial.cKDTree`` on float64 rows.

    The tree computes ``max |q_i - k_i|`` in float64 on the rows converted to float64
    (exact from float32) and prunes with exact box bounds, so its values equal a
    float64 brute force.
    """

    def __init__(self, Q: np.ndarray, K: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        self.Q = Q
        self.tree = cKDTree(np.ascontiguousarray(K, dtype=np.float64))

    def search(self, workers: Workers, qs: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Same contract as :meth:`_LinfCodes.search` (``inf`` where nothing is within ``U``)."""
        out = np.empty(qs.size)
        step = max(1, 8_000_000 // max(1, self.Q.shape[1]))  # float64 copies of <= 64 MB
        bound = np.nextafter(U, np.inf)  # the tree's bound is strict
        for s in range(0, qs.size, step):
            Q64 = np.ascontiguousarray(self.Q[qs[s : s + step]], dtype=np.float64)
            # one bound per call: the largest of the block (values within it are exact)
            ub = float(bound[s : s + step].max())
            out[s : s + step] = self.tree.query(
                Q64, k=1, p=np.inf, distance_upper_bound=ub, workers=workers.workers
            )[0]
        return out


#: queries evaluated exactly before the others are only checked against the bound
FIRST_BLOCK = 64


def _max_linf(
    Q: np.ndarray,
    K: np.ndarray,
    nearest: np.ndarray,
    workers: Workers,
    engine: Any,
    witness: Any = None,
) -> float:
    """``max_q min_k ||q - k||_inf`` (exact) without the exact distance of every query.

    ``U_q``, the exact distance to the L2-nearest kept row, bounds each query's
    distance from above, and the maximum is at least any exact distance found. The
    queries are visited in decreasing ``U``: the first block exactly, then each block
    only to the bound ``lo`` found so far (cheap: a search that stops at ``lo``); a
    query whose distance exceeds ``lo`` is evaluated exactly and raises ``lo``. The
    visit stops at the first ``U <= lo``: no later query can exceed it. With ``witness``
    (``witness(workers, qs)``: exact L-inf distances of the queries to some kept rows),
    each block after the first is first checked against those kept rows: a query with
    one within ``lo`` is settled without a search, and the others keep the smaller bound.
    """
    nq = Q.shape[0]
    U = _exact_linf(Q, K, np.arange(nq), nearest)
    order = np.argsort(-U, kind="stable")
    lo = -math.inf
    pos, block = 0, FIRST_BLOCK
    while pos < nq and U[order[pos]] > lo:
        qs = order[pos : pos + block]
        pos += block
        block = min(4 * block, 4096)
        qs = qs[U[qs] > lo]
        if lo < 0:
            vals = engine.search(workers, qs, U[qs])
        else:
            if witness is not None:
                U[qs] = np.minimum(U[qs], witness(workers, qs))
                qs = qs[U[qs] > lo]
                if not qs.size:
                    continue
            vals = engine.search(workers, qs, np.full(qs.size, lo))
            over = vals > lo
            if over.any():
                vals[over] = engine.search(workers, qs[over], U[qs[over]])
        lo = max(lo, float(vals.max()))
    return max(lo, 0.0)


def _linf_cpu(Q: np.ndarray, K: np.ndarray, workers: int) -> np.ndarray:
    """Exact nearest-kept L-inf distance: ``scipy.spatial.cKDTree`` on float64 rows.

    The tree computes ``max |q_i - k_i|`` in float64 on the rows converted to float64
    (exact from float32) and prunes with exact box bounds, so the values equal a
    float64 brute force.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(np.ascontiguousarray(K, dtype=np.float64))
    out = np.empty(Q.shape[0])
    step = max(1, 8_000_000 // max(1, Q.shape[1]))  # float64 query copies of <= 64 MB
    for s in range(0, Q.shape[0], step):
        Q64 = np.ascontiguousarray(Q[s : s + step], dtype=np.float64)
        out[s : s + step] = tree.query(Q64, k=1, p=np.inf, workers=workers)[0]
    return out


#: cKDTree answers L-inf when the nearest kept row is much closer than a typical one
#: (median ratio; its box pruning works then), the dense int8 search otherwise
KD_CONTRAST = 0.36


def _class_cpu(
    Q: np.ndarray, K: np.ndarray, workers: Workers, *, per_query: bool = True
) -> tuple[np.ndarray, np.ndarray | float]:
    """Exact squared L2 to the nearest kept row of every query, and the L-inf distances
    (``per_query``) or only their maximum (BLAS limited to one thread by the caller)."""
    search = _L2Search(Q, K)
    sq = search.run(workers)
    nq, nk = Q.shape[0], K.shape[0]
    probe = np.arange(0, nq, max(1, nq // 2048))  # a fixed spread of (query, kept row)
    typical = _exact_sq(search.Qx, K, probe, probe * 7919 % nk)  # pairs
    kd = bool(np.median(sq) <= KD_CONTRAST**2 * np.median(typical))
    if not per_query:
        if kd:
            return sq, _max_linf(Q, K, search.nearest, workers, _LinfTree(Q, K))
        # random-like data: settle most queries by a few L2 neighbours before the int8 search
        witness = search.linf_witness
        return sq, _max_linf(Q, K, search.nearest, workers, _LinfCodes(Q, K), witness)
    if kd:
        linf = _linf_cpu(Q, K, workers.workers)
    else:
        linf = _LinfCodes(Q, K).run(workers, search.nearest)
    return sq, linf


#: device memory one query block of the torch path may take (on CUDA also at most a
#: quarter of the free memory); about 3 float64 values per (query, kept row) pair
TORCH_BLOCK_BYTES = 2 * 2**30
#: the same on the CPU ("torch-cpu", a test path)
TORCH_CPU_BLOCK_BYTES = 256 * 2**20


def _torch_block(torch: Any, dev: Any, nk: int) -> int:
    """Queries per block of :func:`_class_torch`: its ``(block, nk)`` float64 temporaries
    (the L-inf distances, the L2 norm trick, a comparison) within the memory budget."""
    budget = TORCH_CPU_BLOCK_BYTES
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        budget = min(TORCH_BLOCK_BYTES, free // 4)
    return int(max(1, min(65_536, budget // (25 * max(1, nk)))))


def _class_torch(Q: np.ndarray, K: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    """Float64 brute force in torch (CUDA, or CPU for tests); exact values.

    L-inf is ``torch.cdist(p=inf)`` on the rows converted to float64 (exact from float32:
    the same ``max |q_i - k_i|`` as the CPU engines). L2: the float64 norm trick on
    rows centred on the kept rows' mean, error at most ``err_q = 8 (2d + 7) u
    (|q| + max |k|)^2`` per query; every pair within ``2 err_q`` of the query's smallest
    value is evaluated exactly as ``sum((q - k)**2)`` on the CPU.
    """
    import torch

    dev = torch.device(device)
    Q64 = np.asarray(Q, dtype=np.float64)
    K64 = np.asarray(K, dtype=np.float64)
    mu = K64.mean(axis=0)
    Qt = torch.from_numpy(Q64 - mu).to(dev)
    Kt = torch.from_numpy(K64 - mu).to(dev)
    Qo = torch.from_numpy(Q64).to(dev)
    Ko = torch.from_numpy(K64).to(dev)
    qsq = (Qt * Qt).sum(dim=1)
    ksq = (Kt * Kt).sum(dim=1)
    d = Q64.shape[1]
    coef = 8.0 * (2 * d + 7) * _U64
    nq, nk = Q64.shape[0], K64.shape[0]
    bq = _torch_block(torch, dev, nk)
    sq_out = np.empty(nq)
    linf_out = np.empty(nq)
    err = coef * (qsq.sqrt() + ksq.max().sqrt()) ** 2 + 1e-300  # per query, rigorous
    for s in range(0, nq, bq):
        e = min(nq, s + bq)
        linf_out[s:e] = torch.cdist(Qo[s:e], Ko, p=float("inf")).amin(dim=1).cpu().numpy()
        G = torch.addmm(ksq[None, :], Qt[s:e], Kt.T, alpha=-2.0)  # d2 less |q|^2
        lim = G.amin(dim=1) + 2.0 * err[s:e]
        qi, ki = torch.nonzero(G <= lim[:, None], as_tuple=True)
        del G
        qi_n, ki_n = qi.cpu().numpy(), ki.cpu().numpy()
        sq_out[s:e] = _group_min(e - s, qi_n, _exact_sq(Q64, K64, qi_n + s, ki_n))
    return sq_out, linf_out


def nearest_kept(
    Q: np.ndarray, K: np.ndarray, *, device: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact L2 and L-inf distance from each row of ``Q`` to its nearest row of ``K``.

    Parameters
    ----------
    Q : ndarray, shape (m, d)
    K : ndarray, shape (k, d), ``k >= 1``
    device : {"auto", "cpu", "cuda", "torch-cpu"}

    Returns
    -------
    l2 : ndarray of float64, shape (m,)
    linf : ndarray of float64, shape (m,)
        Identical to a float64 brute force.
    """
    l2, linf = _nearest(Q, K, device, per_query=True)
    return l2, np.asarray(linf)


def _nearest(
    Q: np.ndarray,
    K: np.ndarray,
    device: str,
    *,
    per_query: bool,
    workers: Workers | None = None,
) -> tuple[np.ndarray, np.ndarray | float]:
    """:func:`nearest_kept`, with only the maximum L-inf distance unless ``per_query``.

    ``workers``: a pool (inside :func:`single_threaded_blas`) to run the CPU tasks in;
    by default one is made for this call.
    """
    if Q.shape[0] == 0:
        return np.empty(0), (np.empty(0) if per_query else 0.0)
    dev = _device.resolve(device)
    if dev == "cpu":
        if workers is None:
            with Workers() as own, single_threaded_blas():
                sq, linf = _class_cpu(Q, K, own, per_query=per_query)
        else:
            sq, linf = _class_cpu(Q, K, workers, per_query=per_query)
    else:
        sq, linf = _class_torch(Q, K, "cpu" if dev == "torch-cpu" else dev)
        if not per_query:
            linf = float(linf.max())
    return np.sqrt(sq), linf


# --------------------------------------------------------------------------- public


def _memberships(labels: Any, n: int) -> tuple[list[int], list[np.ndarray]]:
    if labels is None:
        return [0], [np.arange(n)]
    arr = np.asarray(labels)
    expected = f"None, a 1-D array of {n} integer labels or an ({n}, C) multi-hot array"
    if arr.ndim == 1 and arr.shape[0] == n and (arr.size == 0 or arr.dtype.kind in "iu"):
        values = np.unique(arr)
        return [int(v) for v in values], [np.flatnonzero(arr == v) for v in values]
    if arr.ndim == 2 and arr.shape[0] == n:
        if arr.dtype != np.bool_:
            if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
                raise fail(_OWNER, "labels", expected, f"an array of shape {arr.shape}")
            arr = arr.astype(bool)
        return list(range(arr.shape[1])), [np.flatnonzero(arr[:, c]) for c in range(arr.shape[1])]
    raise fail(_OWNER, "labels", expected, f"an array of shape {arr.shape} and dtype {arr.dtype}")


def epsilon(
    X: Any, kept_indices: Any, *, labels: Any = None, device: str = "auto"
) -> EpsilonReport:
    """Per-class ε-representativeness of the kept rows of ``X`` (exact).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Feature matrix of the full set.
    kept_indices : array-like of int, shape (k,)
        Unique row indices of the kept images.
    labels : None, array-like of int (n,), or multi-hot array-like (n, C)
        Class (or stratum) of each image. With a multi-hot matrix an image belongs
        to every class it contains, and is compared with the kept images of that
        class only. ``None`` treats all images as one class (id 0).
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` uses CUDA when torch sees a GPU.

    Returns
    -------
    EpsilonReport

    Warns
    -----
    UserWarning
        For each class with images but no kept image (its ε is ``inf``).
    """
    validate_params(_OWNER, {"device": device}, {"device": Options(("auto", "cpu", "cuda"))})
    if device == "cuda" and not _device.cuda_available():
        raise fail(_OWNER, "device", "'auto' or 'cpu' on a host without CUDA", "'cuda'")
    return _epsilon(X, kept_indices, labels, device)


#: on the CPU, classes are measured two at a time (each hides the other's serial steps)
#: while the rows of all of them take at most this many bytes; larger sets are measured
#: one class at a time, so that peak memory stays that of the largest class
CONCURRENT_BYTES = 256 * 2**20


def _measure(
    X: np.ndarray, jobs: dict[int, tuple[np.ndarray, np.ndarray]], device: str
) -> dict[int, tuple[np.ndarray, float]]:
    """For each job ``i: (query rows, kept rows)``: the nearest-kept L2 distances of the
    queries and their largest nearest-kept L-inf distance."""

    def one(job: tuple[np.ndarray, np.ndarray], workers: Workers | None = None) -> tuple:
        Qi, K = job
        return _nearest(X[Qi], X[K], device, per_query=False, workers=workers)

    if _device.resolve(device) != "cpu":
        return {i: one(job) for i, job in jobs.items()}
    rows = sum(Qi.size + K.size for Qi, K in jobs.values())
    with Workers() as workers, single_threaded_blas():
        if len(jobs) < 2 or workers.workers < 2 or rows * X.shape[1] * X.itemsize > CONCURRENT_BYTES:
            return {i: one(job, workers) for i, job in jobs.items()}
        from concurrent.futures import ThreadPoolExecutor

        # largest first, so that the small ones fill in beside it
        order = sorted(jobs, key=lambda i: -jobs[i][0].size * jobs[i][1].size)
        with ThreadPoolExecutor(2) as outer:  # tasks of both share the one worker pool
            futures = {i: outer.submit(one, jobs[i], workers) for i in order}
            return {i: futures[i].result() for i in jobs}


def _epsilon(X: Any, kept_indices: Any, labels: Any, device: str) -> EpsilonReport:
    X = check_matrix(X, _OWNER)
    n = X.shape[0]
    kept = check_indices(kept_indices, n, _OWNER)
    classes, members = _memberships(labels, n)
    is_kept = np.zeros(n, dtype=bool)
    is_kept[kept] = True
    n_total, n_kept, e_inf, e_l2, m_l2, notes = [], [], [], [], [], []
    jobs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for i, (c, M) in enumerate(zip(classes, members, strict=True)):
        K = M[is_kept[M]]
        n_total.append(int(M.size))
        n_kept.append(int(K.size))
        value = 0.0 if M.size == 0 else math.inf
        e_inf.append(value)
        e_l2.append(value)
        m_l2.append(value)
        if M.size and not K.size:
            msg = f"class {c}: {M.size} image(s) in the full set but none kept; its epsilon is inf"
            notes.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=3)
        elif M.size:
            jobs[i] = (M[~is_kept[M]], K)
    for i, (l2, linf_max) in _measure(X, jobs, device).items():
        e_inf[i] = float(linf_max)
        e_l2[i] = float(l2.max()) if l2.size else 0.0
        m_l2[i] = float(l2.sum() / n_total[i])
    present = [i for i, t in enumerate(n_total) if t > 0]
    return EpsilonReport(
        classes=tuple(classes),
        n_total=tuple(n_total),
        n_kept=tuple(n_kept),
        eps_linf=tuple(e_inf),
        eps_l2=tuple(e_l2),
        mean_l2=tuple(m_l2),
        overall_linf=max((e_inf[i] for i in present), default=0.0),
        overall_l2=max((e_l2[i] for i in present), default=0.0),
        warnings=tuple(notes),
    )
