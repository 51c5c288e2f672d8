#!/usr/bin/env python
"""Benchmark the selection engine on synthetic clustered embeddings.

Every method runs through ``stratified_select`` (strata = classes, class floor on)
and the exact ε report runs on the kept sets, side by side in the same process
with reference implementations:

* MMS  vs ``gudhi.subsampling.choose_n_farthest_points`` per class, started at the
  same point (needs ``pip install gudhi``; the column is skipped otherwise). Picks
  are compared in order.
* CLC  vs ``scipy.cluster.vq.kmeans2`` per class (same k and iterations, random
  rows as initial centroids). Different algorithms: timing only.
* ε    vs ``scipy.spatial.cKDTree(kept).query(x, p=inf)`` per class. Per-class
  maxima and per-image distances (``nearest_kept``) are compared for exact
  equality. Our time is the whole report -- L-inf ε, L2 ε and the mean L2
  distance, for which every image's exact L2-nearest kept image is needed -- while
  the reference computes the L-inf distances only.

PRD, PHL, NRMD, FES, VQ, FLOW and FL have no reference column; each row shows
whether the method met its time target at n = 20k, d = 768 (``limit``: 60 s for
PRD, NRMD, VQ, FL; 180 s for PHL, FES, FLOW). FES gets the one-hot class labels
as targets (``stratified_select`` passes ``classes``).

Data: ``n`` L2-normalised embeddings in 5 imbalanced classes (40/25/17/11/7 %),
each class a mixture of ``--modes`` Gaussian clusters whose within-cluster
pairwise distance is ``--spread`` times the distance between cluster centres
(so ``--spread 1`` or more means no visible cluster structure).

Usage::

    python scripts/bench_select.py                    # n = 1k, 5k, 20k; d = 448, 768
    python scripts/bench_select.py --n 20000 --d 768
    python scripts/bench_select.py --quick            # n = 1k, 5k; d = 448
    python scripts/bench_select.py --n 20000 --d 768 --methods mms          # MMS and eps[mms]
    python scripts/bench_select.py --n 20000 --d 768 --methods mms --no-eps # MMS only
    python scripts/bench_select.py --embeddings E.npy --labels y.npy --methods mms  # real data
    python scripts/bench_select.py --n 20000 --d 768 --methods mms --repeat 3       # best of 3

On a shared or noisy host use ``--repeat``: every timing, ours and the references', is
then the best of that many runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detprune.select import REGISTRY, epsilon, get_reducer, stratified_select
from detprune.select.represent import nearest_kept
from detprune.select.space import build_feature_space

PROPS = np.array([0.40, 0.25, 0.17, 0.11, 0.07])

#: Time target in seconds at n = 20k, d = 768 (2 CPU cores).
LIMITS = {
    "prd": 60.0,
    "nrmd": 60.0,
    "vq": 60.0,
    "fl": 60.0,
    "phl": 180.0,
    "fes": 180.0,
    "flow": 180.0,
}


def make_embeddings(
    n: int, d: int, *, modes: int = 20, spread: float = 0.35, rank: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered, L2-normalised float32 embeddings and their class labels (5 classes).

    Within a cluster, 60 % of the variance lies along ``rank`` random directions and
    the rest is isotropic (``rank=0``: all isotropic).
    """
    rng = np.random.default_rng(seed)
    sizes = np.floor(PROPS * n).astype(int)
    sizes[0] += n - sizes.sum()
    X, y = [], []
    within = spread**2 * d  # per-point within-cluster variance; centres ~ N(0, I)
    share = 0.6 if rank > 0 else 0.0  # 60 % along a few directions, the rest isotropic
    a = np.sqrt(share * within / max(rank, 1))
    b = np.sqrt((1.0 - share) * within / d)
    for c, s in enumerate(sizes):
        centres = rng.standard_normal((modes, d))
        lab = rng.choice(modes, s, p=rng.dirichlet(np.full(modes, 2.0)))
        pts = centres[lab] + b * rng.standard_normal((s, d))
        if rank > 0:
            basis = rng.standard_normal((modes, rank, d)) / np.sqrt(d)
            coef = a * rng.standard_normal((s, rank))
            pts += np.einsum("sr,srd->sd", coef, basis[lab])
        X.append(pts)
        y.append(np.full(s, c))
    Xa = np.concatenate(X)
    Xa /= np.linalg.norm(Xa, axis=1, keepdims=True)
    return Xa.astype(np.float32), np.concatenate(y)


def _trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class PeakRSS:
    """Peak resident memory above the baseline while the block runs (sampled /proc)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux: fall back to the process-wide maximum
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        _trim()  # hand freed heap pages back, so the baseline is not inflated
        self.base = self.rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


#: runs per timing (``--repeat``); the best is reported, for ours and the references alike
REPEAT = 1


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s result, its best time of ``REPEAT`` runs and the largest peak memory."""
    best, mib = float("inf"), 0.0
    for _ in range(REPEAT):
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            out = fn()
            sec = time.perf_counter() - t0
        best, mib = min(best, sec), max(mib, mem.mib)
    return out, best, mib


def best_of(ref: Callable[[], Any]) -> Any:
    """A reference's ``(seconds, ...)`` with the best seconds of ``REPEAT`` runs."""
    runs = [ref() for _ in range(REPEAT)]
    if runs[0] is None:
        return None
    return (min(r[0] for r in runs), *runs[0][1:])


def per_class_picks(sel_indices: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
    idx = np.asarray(sel_indices)
    return idx[y[idx] == c]


def ref_gudhi(X: np.ndarray, y: np.ndarray, sel_indices: np.ndarray) -> tuple[float, bool] | None:
    try:
        from gudhi.subsampling import choose_n_farthest_points
    except ImportError:
        return None
    total = 0.0
    same = True
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        ours = per_class_picks(sel_indices, y, c)
        local = np.searchsorted(members, ours)
        pts = X[members].astype(np.float64)
        t0 = time.perf_counter()
        got = choose_n_farthest_points(
            points=pts, nb_points=int(local.size), starting_point=int(local[0])
        )
        total += time.perf_counter() - t0
        lookup = {row.tobytes(): i for i, row in enumerate(pts)}
        theirs = np.array([lookup[np.asarray(p, dtype=np.float64).tobytes()] for p in got])
        same &= bool(np.array_equal(theirs, local))
    return total, same


def ref_scipy_kmeans(
    X: np.ndarray, y: np.ndarray, quotas: dict[str, int], niter: int
) -> tuple[float, bool | None]:
    from scipy.cluster.vq import kmeans2

    total = 0.0
    for c in np.unique(y):
        k = quotas[str(int(c))]
        Xc = X[y == c]
        t0 = time.perf_counter()
        if k < Xc.shape[0]:
            kmeans2(Xc, k, iter=niter, minit="points", seed=0)
        total += time.perf_counter() - t0
    return total, None


def ref_ckdtree(X: np.ndarray, y: np.ndarray, kept: np.ndarray) -> tuple[float, dict]:
    from scipy.spatial import cKDTree

    is_kept = np.zeros(X.shape[0], dtype=bool)
    is_kept[kept] = True
    total = 0.0
    dists = {}
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        K = members[is_kept[members]]
        t0 = time.perf_counter()
        dd, _ = cKDTree(X[K]).query(X[members], p=np.inf)
        total += time.perf_counter() - t0
        dists[int(c)] = dd
    return total, dists


def check_eps(X: np.ndarray, y: np.ndarray, kept: np.ndarray, rep: Any, dists: dict) -> bool:
    """Per-class maxima and per-image distances identical to cKDTree's."""
    is_kept = np.zeros(X.shape[0], dtype=bool)
    is_kept[kept] = True
    ok = True
    for i, c in enumerate(rep.classes):
        ref = dists[int(c)]
        ok &= rep.eps_linf[i] == float(ref.max())
        members = np.flatnonzero(y == c)
        q = ~is_kept[members]
        _, linf = nearest_kept(X[members[q]], X[members[~q]])
        ok &= bool(np.array_equal(linf, ref[q])) and bool((ref[~q] == 0).all())
    return ok


def load_embeddings(path: str, labels: str, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Saved embeddings (``detprune embed --save``) and an integer class per row.

    The rows go through ``build_feature_space`` without box statistics (L2
    normalisation), as prune does with ``--box-weight 0``. With ``n`` below the
    row count, a seeded random subset of ``n`` rows is used.
    """
    X = np.load(path, mmap_mode="r")
    y = np.load(labels)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        sys.exit(f"--embeddings must be (n, d) and --labels (n,); got {X.shape} and {y.shape}")
    rows = np.arange(X.shape[0])
    if n is not None and n < X.shape[0]:
        rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], n, replace=False))
    _, y = np.unique(y[rows], return_inverse=True)
    return build_feature_space(np.asarray(X[rows], dtype=np.float32)), y.astype(np.int64)


def datasets(args: argparse.Namespace) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    if args.embeddings:
        for n in args.n if args.n_given else [None]:
            yield load_embeddings(args.embeddings, args.labels, n, args.seed)
        return
    for n in args.n:
        for d in args.d:
            yield make_embeddings(
                n, d, modes=args.modes, spread=args.spread, rank=args.rank, seed=args.seed
            )


def _row(what: str, n: int, d: int, sec: float, mib: float, limit: float | None = None) -> dict:
    return {"what": what, "n": n, "d": d, "sec": sec, "mib": mib, "ref": "", "ref_sec": None,
            "same": None, "limit": limit}


def run(keep: float, methods: list[str], args: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    for X, y in datasets(args):
        n, d = X.shape
        classes = np.eye(int(y.max()) + 1, dtype=bool)[y]
        budget = max(1, round(keep * n))
        kept_sets = {}
        for name in methods:
            reducer = get_reducer(name)
            sel, sec, mib = timed(
                partial(
                    stratified_select,
                    reducer,
                    X,
                    budget,
                    strata=y,
                    classes=classes,
                    seed=args.seed,
                )
            )
            kept_sets[name] = sel.indices
            row = _row(name, n, d, sec, mib, LIMITS.get(name))
            if not args.no_ref and name == "mms":
                res = best_of(partial(ref_gudhi, X, y, sel.indices))
                if res is None:
                    row["ref"] = "gudhi (not installed)"
                else:
                    row["ref"], row["ref_sec"], row["same"] = "gudhi", res[0], res[1]
            if not args.no_ref and name == "clc":
                niter = reducer.get_params()["niter"]
                ref_sec, _ = best_of(partial(ref_scipy_kmeans, X, y, sel.info["quotas"], niter))
                row["ref"], row["ref_sec"] = "scipy kmeans2", ref_sec
            rows.append(row)
            print(fmt_row(row), flush=True)
        for name in [m for m in ("mms", "srs") if m in kept_sets and not args.no_eps]:
            kept = kept_sets[name]
            rep, sec, mib = timed(partial(epsilon, X, kept, labels=y))
            row = _row(f"eps[{name}]", n, d, sec, mib)
            if not args.no_ref:
                ref_sec, dists = best_of(partial(ref_ckdtree, X, y, kept))
                row["ref"], row["ref_sec"] = "cKDTree p=inf", ref_sec
                row["same"] = check_eps(X, y, kept, rep, dists)
            rows.append(row)
            print(fmt_row(row), flush=True)
    return rows


HEADER = (
    f"{'method':<10} {'n':>6} {'d':>4} {'seconds':>8} {'peak MiB':>9} "
    f"{'reference':<22} {'ref s':>8} {'ratio':>7} {'identical':>9} {'target':>10}"
)


def fmt_row(r: dict) -> str:
    ref_sec = f"{r['ref_sec']:.2f}" if r["ref_sec"] is not None else "-"
    ratio = f"{r['ref_sec'] / r['sec']:.1f}x" if r["ref_sec"] is not None and r["sec"] > 0 else "-"
    same = {None: "n/a", True: "yes", False: "NO"}[r["same"]]
    limit = r.get("limit")
    target = "-" if limit is None else f"<{limit:.0f}s " + ("ok" if r["sec"] < limit else "OVER")
    return (
        f"{r['what']:<10} {r['n']:>6} {r['d']:>4} {r['sec']:>8.2f} {r['mib']:>9.0f} "
        f"{r['ref'] or '-':<22} {ref_sec:>8} {ratio:>7} {same:>9} {target:>10}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=None)
    p.add_argument("--d", type=int, nargs="+", default=[448, 768])
    p.add_argument("--keep", type=float, default=0.5)
    p.add_argument("--methods", nargs="+", default=list(REGISTRY), choices=list(REGISTRY))
    p.add_argument("--modes", type=int, default=20, help="Gaussian clusters per class")
    p.add_argument(
        "--spread",
        type=float,
        default=0.35,
        help="within-cluster / between-centre distance (>= 1: no clusters)",
    )
    p.add_argument("--rank", type=int, default=8, help="low-rank directions per cluster (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="n = 1k, 5k and d = 448 only")
    p.add_argument("--no-ref", action="store_true", help="skip the reference implementations")
    p.add_argument("--no-eps", action="store_true", help="skip the ε rows")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs per timing, ours and references (best reported)"
    )
    p.add_argument(
        "--embeddings",
        metavar="FILE.npy",
        help="real embeddings (n, d) instead of synthetic ones, e.g. from `detprune embed --save`"
        " (--n: random subsets of that size; --d, --modes, --spread, --rank are ignored)",
    )
    p.add_argument("--labels", metavar="FILE.npy", help="with --embeddings: an integer class per row")
    args = p.parse_args(argv)
    if bool(args.embeddings) != bool(args.labels):
        p.error("--embeddings and --labels go together")
    global REPEAT
    REPEAT = max(1, args.repeat)
    args.n_given = args.n is not None
    if args.n is None:
        args.n = [1000, 5000, 20000]
    if args.quick:
        args.n = [n for n in args.n if n <= 5000] or [1000]
        args.d = [min(args.d)]
    if args.embeddings:
        print(
            f"keep={args.keep} embeddings={args.embeddings} labels={args.labels} "
            f"cores={os.cpu_count()} repeat={REPEAT}"
        )
    else:
        print(
            f"keep={args.keep} spread={args.spread} modes={args.modes} rank={args.rank} "
            f"cores={os.cpu_count()} repeat={REPEAT}"
        )
    # one-time imports (scipy.spatial alone takes ~0.4 s) are paid before any timing,
    # for our code and the references alike
    import scipy.cluster.vq
    import scipy.spatial  # noqa: F401

    print(HEADER)
    print("-" * len(HEADER))
    run(args.keep, args.methods, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
