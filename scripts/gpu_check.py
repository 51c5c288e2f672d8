#!/usr/bin/env python
"""One prepared, time-boxed check of the GPU paths of MMS and ε (the GPU target of issue #4).

Meant to run as a single call on a CUDA host, where only NumPy, SciPy and torch are
needed (no ultralytics, FAISS or codecarbon)::

    PYTHONUNBUFFERED=1 python3 scripts/gpu_check.py --budget 420 --json $OUT/gpu_check.json

Three phases, on clustered L2-normalised float32 embeddings (those of
``scripts/bench_scale.py``, d = 448), each printed as soon as it is done:

1. **agreement** (n = 20k, 2k picks): MMS picks and radii, and the ε report of the
   picks, on the GPU against the CPU engines (NumPy): identical picks and ε values.
2. **reference** (n = 100k, 10k picks): the CPU engines and the GPU on the same data,
   in the same run; the table shows the ratio.
3. **target** (n = 1M, MMS to 100k picks, then ε of the picks; target under 300 s):
   first 10k picks are timed and the full run is extrapolated from them (the cost is
   linear in the picks); it is skipped, with the estimate printed, when it would not
   fit in what is left of ``--budget`` seconds.

``--device torch-cpu --scale 50`` runs the same code path on the CPU with every size
divided by 50, to check the script itself on a host without a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_scale import machine, write_embeddings  # noqa: E402

from detprune.select.mms import farthest_points  # noqa: E402
from detprune.select.represent import _epsilon  # noqa: E402

TARGET_S = 300.0


def _data(n: int, d: int, folder: Path) -> np.ndarray:
    path = folder / f"emb_{n}_{d}.npy"
    if not path.exists():
        write_embeddings(path, n, d)
    return np.load(path)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _mms(X: np.ndarray, k: int, device: str):
    # the results come back as NumPy arrays: the GPU work is finished when this returns
    return _timed(lambda: farthest_points(X, k, device=device))


def _eps(X: np.ndarray, kept: np.ndarray, device: str):
    return _timed(lambda: _epsilon(X, kept, None, device))


def _same_eps(a, b) -> bool:
    return (a.eps_linf, a.eps_l2, a.mean_l2) == (b.eps_linf, b.eps_l2, b.mean_l2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "torch-cpu"))
    p.add_argument("--scale", type=int, default=1, help="divide every size by this (tests)")
    p.add_argument("--d", type=int, default=448)
    p.add_argument("--budget", type=float, default=420.0, help="seconds for the whole check")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gpu_check: torch sees no CUDA device (use --device torch-cpu to test)")
            return 2
        torch.zeros(1, device="cuda")  # CUDA context outside the timings
    div = max(1, args.scale)
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, GPU: {info['gpu']}; "
          f"numpy {info['numpy']}, torch {info['torch']}; device {args.device}; d={args.d}")
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        ref, ours = row.get("cpu_s"), row.get("gpu_s")
        ratio = f"{ref / ours:.1f}x" if ref and ours else "-"
        print(f"{row['phase']:<10} {row['what']:<24} {row['n']:>9,} {row['k']:>8,} "
              f"{'-' if ref is None else f'{ref:.2f}':>9} {'-' if ours is None else f'{ours:.2f}':>9} "
              f"{ratio:>7}  {row.get('note', '')}", flush=True)

    # "cpu s": the NumPy engines (the reference); then the torch path on args.device
    print(f"{'phase':<10} {'what':<24} {'n':>9} {'picks':>8} {'cpu s':>9} "
          f"{args.device + ' s':>9} {'ratio':>7}  note")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        folder = Path(tmp)
        # 1. agreement
        n, k = 20_000 // div, 2_000 // div
        X = _data(n, args.d, folder)
        (pc, rc), tc = _mms(X, k, "cpu")
        (pg, rg), tg = _mms(X, k, args.device)
        same = bool(np.array_equal(pc, pg)) and bool(np.allclose(rc, rg, rtol=1e-9, atol=0))
        emit({"phase": "agreement", "what": "mms picks", "n": n, "k": k, "cpu_s": tc,
              "gpu_s": tg, "identical": same, "note": "identical" if same else "DIFFER"})
        ec, tc = _eps(X, pc, "cpu")
        eg, tg = _eps(X, pc, args.device)
        same = _same_eps(ec, eg)
        emit({"phase": "agreement", "what": "eps of the picks", "n": n, "k": k, "cpu_s": tc,
              "gpu_s": tg, "identical": same, "note": "identical" if same else "DIFFER"})
        # 2. reference: CPU engines against the GPU, same data, same run
        n, k = 100_000 // div, 10_000 // div
        X = _data(n, args.d, folder)
        (pc, _), tc = _mms(X, k, "cpu")
        (pg, _), tg = _mms(X, k, args.device)
        same = bool(np.array_equal(pc, pg))
        emit({"phase": "reference", "what": "mms", "n": n, "k": k, "cpu_s": tc, "gpu_s": tg,
              "identical": same, "note": "identical" if same else "DIFFER"})
        ec, tc = _eps(X, pc, "cpu")
        eg, tg = _eps(X, pc, args.device)
        same = _same_eps(ec, eg)
        emit({"phase": "reference", "what": "eps of the picks", "n": n, "k": k, "cpu_s": tc,
              "gpu_s": tg, "identical": same, "note": "identical" if same else "DIFFER"})
        del X
        # 3. the target: 1M rows, MMS to 100k picks and ε, on the GPU
        n, k = 1_000_000 // div, 100_000 // div
        X, t_data = _timed(lambda: _data(n, args.d, folder))
        probe = k // 10
        (pp, _), t_probe = _mms(X, probe, args.device)
        emit({"phase": "target", "what": "mms (probe)", "n": n, "k": probe, "gpu_s": t_probe,
              "note": f"data written in {t_data:.0f} s"})
        # the torch ε is a brute force: its time grows with the kept rows, so 10x the probe's
        _, t_eprobe = _eps(X, pp, args.device)
        emit({"phase": "target", "what": "eps (probe picks)", "n": n, "k": probe,
              "gpu_s": t_eprobe})
        left = args.budget - (time.perf_counter() - start)
        estimate = 10 * t_probe + 10 * t_eprobe
        if estimate > left:
            emit({"phase": "target", "what": "mms + eps", "n": n, "k": k, "skipped": True,
                  "estimate_s": estimate,
                  "note": f"skipped: estimated {estimate:.0f} s, {left:.0f} s left of the budget"})
        else:
            (pk, _), t_mms = _mms(X, k, args.device)
            emit({"phase": "target", "what": "mms", "n": n, "k": k, "gpu_s": t_mms})
            rep, t_eps = _eps(X, pk, args.device)
            total = t_mms + t_eps
            verdict = "met" if total < TARGET_S else "MISSED"
            emit({"phase": "target", "what": "mms + eps", "n": n, "k": k, "gpu_s": total,
                  "eps_linf": rep.overall_linf,
                  "note": f"target {TARGET_S:.0f} s: {verdict}"})
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "device": args.device,
                                         "scale": div, "rows": rows}, indent=1))
    return 0 if all(r.get("identical", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
