#!/usr/bin/env python
"""Benchmark the dataset checks: the check cache and the vectorised label parse.

Two tables, each with its reference measured in the same run:

* ``load``: :func:`detprune.dataset.load_dataset` of one split with the check cache
  off (the reference: every label parsed, every image probed), then with the cache
  on, first run (results recorded) and second run (results reused). The cache lives
  in a temporary ``$DETPRUNE_HOME``; the dataset is generated (small JPEGs with 1-7
  boxes each) unless ``--data`` names one.
* ``parse``: :func:`detprune.dataset.parse_label_text` on clean label files of
  several sizes, vectorised path against the line-by-line parse it falls back to.

Usage::

    python scripts/bench_checks.py                       # 20 000 generated images
    python scripts/bench_checks.py --n 100000
    python scripts/bench_checks.py --data path/to/data.yaml --split train

It is a script, not a test: numbers depend on the machine and its file cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_dataset(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` random 32x32 JPEGs with 1-7 boxes each in 5 classes (a ``data.yaml``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images/train").mkdir(parents=True, exist_ok=True)
    (root / "labels/train").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            root / f"images/train/i{i:07d}.jpg", quality=70
        )
        k = int(rng.integers(1, 8))
        b = rng.random((k, 4)) * 0.4 + 0.3
        b[:, 2:] *= 0.3
        lines = "".join(
            f"{int(rng.integers(0, 5))} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for x, y, w, h in b
        )
        (root / f"labels/train/i{i:07d}.txt").write_text(lines)
    yml = root / "data.yaml"
    yml.write_text("train: images/train\nnames: [a, b, c, d, e]\n")
    return yml


def bench_load(data: Path, split: str) -> list[tuple[str, float]]:
    from detprune.dataset import _checkcache, load_dataset

    def timed(**kw) -> float:
        t0 = time.perf_counter()
        load_dataset(data, splits=[split], **kw)
        return time.perf_counter() - t0

    # files written moments ago are "racy" (checked again next time); a real dataset
    # is older than that: wait the racy window out before recording
    newest = max(p.stat().st_ctime_ns for p in data.parent.rglob("*") if p.is_file())
    wait = (newest + _checkcache.RACY_NS - time.time_ns()) / 1e9
    if wait > 0:
        time.sleep(wait + 0.1)
    timed(cache=False)  # warm the OS file cache for every row alike
    rows = [("cache off (reference)", timed(cache=False))]
    rows.append(("cache on, first run", timed(cache=True)))
    rows.append(("cache on, second run", timed(cache=True)))
    return rows


def bench_parse(sizes: list[int], reps: int) -> list[tuple[int, float, float]]:
    from detprune.dataset import yolo

    rng = np.random.default_rng(0)
    out = []
    for k in sizes:
        texts = []
        for _ in range(reps):
            b = rng.random((k, 4)) * 0.5 + 0.25
            b[:, 2:] *= 0.1
            texts.append("".join(
                f"{int(rng.integers(0, 10))} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for x, y, w, h in b
            ))
        times = []
        real, rows = yolo._parse_clean, yolo._FAST_ROWS
        for fast in (True, False):
            # forced either way: the vectorised path at every size, or never
            yolo._parse_clean = real if fast else (lambda *a: None)
            yolo._FAST_ROWS = 0
            try:
                t0 = time.perf_counter()
                for t in texts:
                    yolo.parse_label_text(t, 10, "x.txt")
                times.append((time.perf_counter() - t0) / reps)
            finally:
                yolo._parse_clean, yolo._FAST_ROWS = real, rows
        out.append((k, times[0], times[1]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000, help="generated images (without --data)")
    p.add_argument("--data", type=Path, help="an existing data.yaml or dataset folder")
    p.add_argument("--split", default="train")
    p.add_argument("--reps", type=int, default=300, help="label files per size in the parse table")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp:
        os.environ["DETPRUNE_HOME"] = str(Path(tmp) / "home")
        os.environ.pop("DETPRUNE_CHECK_CACHE", None)
        data = args.data
        if data is None:
            t0 = time.perf_counter()
            data = make_dataset(Path(tmp) / "ds", args.n)
            print(f"generated {args.n} images in {time.perf_counter() - t0:.1f} s")
        rows = bench_load(data, args.split)
        ref = rows[0][1]
        print(f"\nload_dataset of split '{args.split}' of {data}")
        print(f"{'run':<24} {'seconds':>8} {'vs reference':>13}")
        for name, sec in rows:
            print(f"{name:<24} {sec:>8.2f} {ref / sec:>12.1f}x")

    print("\nparse_label_text on clean label files (per file)")
    print(f"{'boxes':>6} {'vectorised us':>14} {'line by line us':>16} {'ratio':>7}")
    for k, fast, slow in bench_parse([1, 7, 16, 50, 300], args.reps):
        print(f"{k:>6} {fast * 1e6:>14.0f} {slow * 1e6:>16.0f} {slow / fast:>6.1f}x")
    print("(files under 16 lines take the line-by-line parse; the vectorised column shows"
          " what the other path would cost for them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
