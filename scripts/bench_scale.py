#!/usr/bin/env python
"""Selection at scale: time and peak memory per method as n grows, with the growth exponent.

Synthetic clustered embeddings (L2-normalised, float32, d = 448 by default) are
written to memory-mapped ``.npy`` files (n = 10k, 100k, 1M by default) and every
(method, n) cell runs in a fresh subprocess that opens the file with
``numpy.load(mmap_mode="r")``, so each cell's memory is its own. Per cell:

* wall time of the call;
* peak RSS (``VmHWM``: includes the pages of the memory-mapped input that were
  read, which the kernel may drop again) and peak *anonymous* RSS (sampled
  ``RssAnon``: the process's own allocations -- copies, indexes, buffers).

Methods (``budget = keep * n``, ``--keep`` default 0.01):

* ``srs``, ``mms`` (exact greedy k-center, NumPy float64), ``clc`` (k-means
  k = budget), ``vq`` (k-means codebook of ``2 sqrt(n)`` codes) through
  :meth:`Reducer.select`;
* ``eps``: exact ε-representativeness of an SRS subset of size ``budget``;
* ``knn-exact``, ``knn-ivf``, ``knn-hnsw``: the k = 10 nearest-neighbour graph of
  all ``n`` rows (what the graph-based methods build) with
  :func:`detprune.select._knn.knn_search`; approximate ones report recall@10
  against exact search on 1000 random queries.

The growth exponent ``a`` of ``time ~ n^a`` is a least-squares fit in log-log
over the measured sizes. A cell is *skipped* (and its time extrapolated with
the exponent measured so far) when the extrapolation exceeds ``--cap`` seconds.

Usage::

    python scripts/bench_scale.py                      # CPU, n = 10k, 100k, 1M
    python scripts/bench_scale.py --n 10000 100000     # quicker
    python scripts/bench_scale.py --device cuda --methods mms clc vq eps   # on a GPU host
    python scripts/bench_scale.py --md docs/bench_scale.md --png docs/bench_scale.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CPU_METHODS = ("srs", "mms", "clc", "vq", "eps", "knn-exact", "knn-ivf", "knn-hnsw")
GPU_METHODS = ("mms", "clc", "vq", "eps")
_CHUNK = 65_536


# ----------------------------------------------------------------------------- data


def write_embeddings(path: Path, n: int, d: int, *, clusters: int = 200, seed: int = 0) -> None:
    """Clustered, L2-normalised float32 rows into a ``.npy`` file, chunk by chunk.

    Cluster sizes follow a Dirichlet draw (imbalanced); within-cluster spread is
    0.35 of the distance scale between centres.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    weights = rng.dirichlet(np.full(clusters, 1.0))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        r = np.random.default_rng([seed, start])
        lab = r.choice(clusters, stop - start, p=weights)
        pts = centres[lab] + 0.35 * r.standard_normal((stop - start, d), dtype=np.float32)
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        out[start:stop] = pts
    out.flush()
    del out


# ----------------------------------------------------------------------------- one cell


class _AnonPeak:
    """Sample ``RssAnon`` of this process every few milliseconds."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def anon() -> int:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.anon())
            time.sleep(self.interval)

    def __enter__(self) -> _AnonPeak:
        self.base = self.anon()
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.anon())


def _vm_hwm() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_cell(method: str, path: str, keep: float, device: str, seed: int) -> dict:
    """Run one method on the memory-mapped file; returns timing, memory and extras."""
    from detprune.select import CLC, MMS, SRS, VQ, _knn, epsilon

    X = np.load(path, mmap_mode="r")
    n = X.shape[0]
    budget = max(1, round(keep * n))
    extra: dict = {"budget": budget}
    _knn._faiss()  # import FAISS before the baseline
    if device == "cuda":
        import torch  # noqa: F401  (so the baseline includes the CUDA runtime)
    with _AnonPeak() as mem:
        t0 = time.perf_counter()
        if method == "srs":
            SRS().select(X, budget, seed=seed)
        elif method == "mms":
            MMS(device="cuda" if device == "cuda" else "cpu").select(X, budget, seed=seed)
        elif method == "clc":
            CLC().select(X, budget, seed=seed)
        elif method == "vq":
            sel = VQ().select(X, budget, seed=seed)
            extra["n_codes"] = sel.info.get("n_codes")
        elif method == "eps":
            kept = SRS().select(X, budget, seed=seed).indices
            t0 = time.perf_counter()  # ε alone
            rep = epsilon(X, kept, device="cuda" if device == "cuda" else "cpu")
            extra["eps_l2"] = rep.overall_l2
        elif method.startswith("knn-"):
            kind = method.split("-", 1)[1]
            _, _, info = _knn.knn_search(X, X, 10, index=kind, recall_sample=1000, seed=seed)
            extra["budget"] = "k=10"
            extra["recall_at_10"] = info.recall
            extra["params"] = info.params
            extra["build_s"] = round(info.build_seconds, 2)
            # the time is build + search; measuring the recall (exact search of 1000
            # queries) is reported separately
            extra["recall_s"] = round(time.perf_counter() - t0 - info.build_seconds
                                      - info.search_seconds, 2)
            t0 = time.perf_counter() - info.build_seconds - info.search_seconds
        else:
            raise SystemExit(f"unknown method {method}")
        seconds = time.perf_counter() - t0
    return {
        "method": method,
        "n": n,
        "seconds": seconds,
        "peak_rss_mb": _vm_hwm() / 2**20,
        "peak_anon_mb": mem.peak / 2**20,
        "base_anon_mb": mem.base / 2**20,
        **extra,
    }


# ----------------------------------------------------------------------------- driver


def fit_exponent(ns: list[int], ts: list[float]) -> float | None:
    """Least-squares slope of log(t) against log(n); None with fewer than two points."""
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, ts, strict=True) if t > 0]
    if len(pts) < 2:
        return None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = int(fh.readline().split()[1]) / 2**20
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("faiss", "torch"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "n/a"
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = ", ".join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            )
    except Exception:
        pass
    return {
        "cpu": cpu,
        "cores": cores,
        "ram_gb": round(mem_gb, 1) if mem_gb else None,
        "gpu": gpu,
        "platform": platform.platform(),
        **versions,
    }


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def to_markdown(rows: list[dict], exps: dict, info: dict, args: argparse.Namespace) -> str:
    lines = [
        "# Selection at scale (`scripts/bench_scale.py`)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores available to the process, "
        f"{info['ram_gb']} GiB RAM, GPU: {info['gpu']}; {info['platform']}.",
        f"Versions: Python {info['python']}, NumPy {info['numpy']}, FAISS {info['faiss']}, "
        f"torch {info['torch']}. Device: {args.device}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"Data: clustered L2-normalised float32 embeddings, d = {args.d}, memory-mapped "
        f"`.npy` ({args.d * 4 / 1024:.2f} KiB per row: "
        f"{args.d * 4 * 1e6 / 2**30:.2f} GiB per million). Budget = {args.keep:g} x n for "
        "every method (ε: of an SRS subset of that size); kNN: the k = 10 graph of all n rows. "
        "Each cell runs in a fresh process. `peak RSS` includes mapped input pages that were "
        "read (the kernel can drop them); `peak anon` is the process's own memory (copies, "
        f"indexes). Cells whose extrapolated time exceeded {args.cap:.0f} s are skipped and "
        "show the estimate.",
        *(["", args.note] if args.note else []),
        "",
        "| method | n | budget | time (s) | peak RSS (MiB) | peak anon (MiB) | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        if r.get("skipped"):
            lines.append(
                f"| {r['method']} | {r['n']:,} | {r.get('budget', '')} | skipped "
                f"(est. {_fmt_s(r['estimate'])}) | | | {r.get('why', '')} |"
            )
            continue
        notes = []
        if r.get("recall_at_10") is not None and r["method"] != "knn-exact":
            notes.append(f"recall@10 {r['recall_at_10']:.3f}")
        if r.get("params"):
            notes.append(", ".join(f"{k}={v}" for k, v in r["params"].items()))
        if "build_s" in r and r["method"] != "knn-exact":
            notes.append(f"build {r['build_s']} s (recall check {r.get('recall_s')} s, not counted)")
        if r.get("n_codes"):
            notes.append(f"{r['n_codes']} codes")
        if "error" in r:
            notes.append(r["error"])
        lines.append(
            f"| {r['method']} | {r['n']:,} | {r.get('budget', '')} | {_fmt_s(r.get('seconds'))} | "
            f"{r.get('peak_rss_mb', 0):.0f} | {r.get('peak_anon_mb', 0):.0f} | {'; '.join(notes)} |"
        )
    lines += ["", "Growth exponent a (time ~ n^a, least squares over the measured sizes):", ""]
    lines += ["| method | a |", "| --- | ---: |"]
    for m, a in exps.items():
        lines.append(f"| {m} | {'n/a' if a is None else f'{a:.2f}'} |")
    lines.append("")
    return "\n".join(lines)


def plot(rows: list[dict], exps: dict, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for m in dict.fromkeys(r["method"] for r in rows):
        done = [r for r in rows if r["method"] == m and not r.get("skipped") and "seconds" in r]
        est = [r for r in rows if r["method"] == m and r.get("skipped")]
        a = exps.get(m)
        label = m if a is None else f"{m} (a={a:.2f})"
        (line,) = ax.plot(
            [r["n"] for r in done], [r["seconds"] for r in done], "o-", label=label
        )
        if est and done:
            ax.plot(
                [done[-1]["n"], *[r["n"] for r in est]],
                [done[-1]["seconds"], *[r["estimate"] for r in est]],
                "o--",
                color=line.get_color(),
                markerfacecolor="none",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (images)")
    ax.set_ylabel("time (s)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--d", type=int, default=448)
    ap.add_argument("--keep", type=float, default=0.01, help="budget fraction (default 0.01)")
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cap", type=float, default=240.0,
                    help="skip a cell whose extrapolated time exceeds this (s; default 240)")
    ap.add_argument("--timeout", type=float, default=1200.0, help="hard limit per cell (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="folder for the data files (default a temp dir)")
    ap.add_argument("--md", default=None, help="write the table to this Markdown file")
    ap.add_argument("--png", default=None, help="write the plot to this PNG file")
    ap.add_argument("--json", default=None, help="write the raw rows to this JSON file")
    ap.add_argument("--merge", default=None, metavar="JSON",
                    help="start from the rows of an earlier --json run; the methods run now "
                         "replace theirs")
    ap.add_argument("--note", default="", help="a paragraph added under the description")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="only write --md/--png from the rows of an earlier --json run")
    ap.add_argument("--cell", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.cell:
        print("RESULT " + json.dumps(run_cell(args.cell[0], args.cell[1], args.keep, args.device,
                                              args.seed)))
        return

    if args.render:
        saved = json.loads(Path(args.render).read_text())
        _write(saved["rows"], saved["exponents"], saved["machine"], args)
        return
    methods = args.methods or list(GPU_METHODS if args.device == "cuda" else CPU_METHODS)
    info = machine()
    print(f"machine: {info}", flush=True)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench_scale-", dir=args.tmp)
    rows: list[dict] = []
    earlier: list[dict] = []
    if args.merge:
        earlier = [r for r in json.loads(Path(args.merge).read_text())["rows"]
                   if r["method"] not in methods]
    with tmp_ctx as tmp:
        files = {}
        for n in sorted(args.n):
            path = Path(tmp) / f"emb-{n}-{args.d}.npy"
            t0 = time.perf_counter()
            write_embeddings(path, n, args.d, seed=args.seed)
            files[n] = path
            print(f"data n={n:,}: {path.stat().st_size / 2**20:.0f} MiB written in "
                  f"{time.perf_counter() - t0:.1f}s", flush=True)
        for m in methods:
            ns, ts = [], []
            for n in sorted(args.n):
                budget = "k=10" if m.startswith("knn-") else max(1, round(args.keep * n))
                a = fit_exponent(ns, ts)
                if ns:
                    # before two points exist assume quadratic growth (the worst the methods have)
                    est = ts[-1] * (n / ns[-1]) ** (a if a is not None else 2.0)
                    if est > args.cap:
                        rows.append({"method": m, "n": n, "budget": budget, "skipped": True,
                                     "estimate": est,
                                     "why": f"extrapolated from n={ns[-1]:,} with a="
                                            f"{a if a is not None else 2.0:.2f}"})
                        print(f"{m:10s} n={n:>9,}  skipped (est. {est:.0f} s)", flush=True)
                        continue
                cmd = [sys.executable, __file__, "--cell", m, str(files[n]), "--keep",
                       str(args.keep), "--device", args.device, "--seed", str(args.seed)]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                    out = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                    if proc.returncode != 0 or not out:
                        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
                        rows.append({"method": m, "n": n, "budget": budget, "error": err})
                        print(f"{m:10s} n={n:>9,}  FAILED: {err}", flush=True)
                        continue
                    r = json.loads(out[-1][len("RESULT "):])
                except subprocess.TimeoutExpired:
                    rows.append({"method": m, "n": n, "budget": budget, "skipped": True,
                                 "estimate": args.timeout, "why": "timed out"})
                    print(f"{m:10s} n={n:>9,}  timed out", flush=True)
                    continue
                rows.append(r)
                ns.append(n)
                ts.append(r["seconds"])
                extra = f" recall@10 {r['recall_at_10']:.3f}" if r.get("recall_at_10") else ""
                print(f"{m:10s} n={n:>9,}  {r['seconds']:9.2f} s  peak RSS {r['peak_rss_mb']:7.0f} "
                      f"MiB  anon {r['peak_anon_mb']:7.0f} MiB{extra}", flush=True)
    order = list(dict.fromkeys([*(r["method"] for r in earlier), *methods]))
    order = [m for m in CPU_METHODS if m in order] + [m for m in order if m not in CPU_METHODS]
    rows = sorted(earlier + rows, key=lambda r: (order.index(r["method"]), r["n"]))
    methods = order
    exps = {}
    for m in methods:
        done = [r for r in rows if r["method"] == m and "seconds" in r]
        exps[m] = fit_exponent([r["n"] for r in done], [r["seconds"] for r in done])
    if args.json:
        from detprune._io import atomic_write_json

        atomic_write_json(Path(args.json), {"machine": info, "rows": rows, "exponents": exps})
    _write(rows, exps, info, args)


def _write(rows: list[dict], exps: dict, info: dict, args: argparse.Namespace) -> None:
    for r in rows:  # rows of runs before k=10 was labelled
        if r["method"].startswith("knn-"):
            r["budget"] = "k=10"
    md = to_markdown(rows, exps, info, args)
    print()
    print(md)
    if args.md:
        from detprune._io import atomic_write_text

        atomic_write_text(Path(args.md), md)
    if args.png:
        plot(rows, exps, Path(args.png),
             f"selection time vs n ({args.device}, d={args.d}, budget {args.keep:g} n)")


if __name__ == "__main__":
    main()
