#!/usr/bin/env python
"""Benchmark detprune's embedder against the paper recipe and ultralytics' ``embed()``.

Measures images/s end to end from image files, side by side in one run:

- ``ours``           ``detprune.features.Embedder.stream`` (threaded reduced-scale decode,
                     fused channels-last backbone, per-scale pooled vectors);
- ``paper``          full-resolution ``cv2.imread`` per image, letterbox, batch 1,
                     unfused model, backbone forward, average pool;
- ``ultralytics``    ``YOLO(model).embed(paths, embed=[4, 6, 9], imgsz=...)`` with the same
                     weights and its defaults (batch 1, ``cpu_count - 1`` torch threads). With a
                     list of paths ultralytics reads every image into memory first, so the list
                     is capped at ~600 entries; ``ultralytics-folder`` passes the folder instead
                     (streamed); ``ultralytics-b16-tN`` uses batch 16 and all N cores;
- ``ours-overlapped`` (CPU only) ours with decoding overlapping the forward pass, the mode
                     the embedder uses on CUDA and rejects on CPU;
- ``decode-only``    our loader alone (decode + letterbox into batches, no model);
- ``forward-only``   our fused channels-last backbone on a ready ``uint8`` batch.

``bound`` is ``min(decode-only, forward-only)``: what a perfectly overlapped
pipeline could reach. Example::

    python scripts/bench_embed.py --model yolov5n --imgsz 320,640
    python scripts/bench_embed.py /data/images --weights yolov5nu.pt --limit 500

It is a script, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

DEFAULT_FOLDER = "/work/shared/data/bccd/images/train"
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _images(folder: str, limit: int | None, min_images: int) -> list[str]:
    files = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        sys.exit(f"no images under {folder}")
    if limit:
        files = files[:limit]
    reps = max(1, -(-min_images // len(files)))
    return files * reps  # repeat small folders so every timing runs for a while


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


BUDGET = 6.0  # seconds per timed run (set by --seconds)


def _cpu_count() -> int:
    from detprune.features.embed import _cpu_count as count

    return count()


def _timed(counts, budget: float | None = None) -> float:
    """Images/s of an iterator of per-step image counts, stopped after ``budget`` seconds."""
    budget = BUDGET if budget is None else budget
    t = time.perf_counter()
    n = 0
    for step in counts:
        n += step
        if time.perf_counter() - t > budget:
            break
    seconds = time.perf_counter() - t
    close = getattr(counts, "close", None)
    if close is not None:
        close()
    return _rate(n, seconds)


def bench_ours(embedder, paths, batch, workers, overlap=None) -> float:
    list(embedder.stream(paths[: 2 * batch], batch=batch, workers=workers))  # warm-up
    stream = embedder.stream(paths, batch=batch, workers=workers, overlap=overlap)
    return _timed(len(pos) + len(err) for pos, _, err in stream)


def bench_decode(paths, imgsz, batch, workers) -> float:
    import cv2

    from detprune.features.loader import BatchLoader

    def counts():
        for b in BatchLoader(paths, imgsz=imgsz, batch=batch, workers=workers):
            b.release()
            yield len(b.positions)

    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return _timed(counts())
    finally:
        cv2.setNumThreads(cv2_threads)


def bench_forward(embedder, imgsz, batch) -> float:
    import torch

    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, (batch, imgsz, imgsz, 3), dtype=np.uint8))
    cuda = embedder.device.type == "cuda"

    def counts():
        while True:
            embedder._forward_u8(pixels)
            if cuda:
                torch.cuda.synchronize()
            yield batch

    threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(_cpu_count())
    try:
        embedder._forward_u8(pixels)  # warm-up
        return _timed(counts())
    finally:
        torch.set_num_threads(threads)


def bench_paper(model, paths, imgsz, device) -> float:
    """Full-resolution imread, batch 1, unfused model, backbone forward, average pool."""
    import cv2
    import torch

    from detprune.features.loader import letterbox

    layers = list(model.model[:10])
    model = model.to(device).eval()

    def one(path: str) -> torch.Tensor:
        img = cv2.imread(path)
        img = letterbox(img, imgsz)[:, :, ::-1].transpose(2, 0, 1)
        x = torch.from_numpy(np.ascontiguousarray(img)).to(device).float().div(255)[None]
        parts = []
        with torch.no_grad():
            for i, layer in enumerate(layers):
                x = layer(x)
                if i in (4, 6, 9):
                    parts.append(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
        return torch.cat(parts, 1).cpu()

    def counts():
        for p in paths:
            one(p)
            yield 1

    for p in paths[:3]:
        one(p)
    return _timed(counts())


def make_ultralytics(model, source, imgsz, device, batch: int | None, threads: int | None):
    """A runner for ``YOLO(...).embed(source)`` with the same weights (set up and warmed up here).

    ``source`` is a list of paths (ultralytics then reads every image into memory before the
    first forward pass, so the list is kept short) or a folder (read as a stream with
    ``cv2.imread``; repeated until the time budget is spent).
    """
    import torch

    from detprune._offline import import_ultralytics

    ultralytics = import_ultralytics()
    yolo = ultralytics.YOLO("yolov5n.yaml", verbose=False)
    yolo.model = model  # the same weights as ours, unfused (ultralytics fuses it itself)
    kwargs = {"embed": [4, 6, 9], "imgsz": imgsz, "device": str(device), "verbose": False}
    if batch:
        kwargs["batch"] = batch
    warm = source[:4] if isinstance(source, list) else source
    for _ in zip(range(4), yolo.embed(warm, stream=True, **kwargs), strict=False):
        pass  # predictor set-up (it sets torch threads to cpu_count - 1 on CPU)

    def counts():
        while True:
            for _ in yolo.embed(source, stream=True, **kwargs):
                yield 1
            if isinstance(source, list):
                return

    def run() -> float:
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            # a list is read whole before the first result: time the complete pass
            return _timed(counts(), float("inf") if isinstance(source, list) else None)
        finally:
            torch.set_num_threads(before)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", default=DEFAULT_FOLDER, help="folder of images")
    parser.add_argument("--model", default="yolov5n", help="architecture for random weights")
    parser.add_argument("--weights", default=None, help="checkpoint or yaml (default <model>.yaml)")
    parser.add_argument("--imgsz", default="320,640", help="comma-separated sizes")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="decode threads (default auto)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=None, help="use at most N images")
    parser.add_argument("--seconds", type=float, default=6.0, help="time budget of each run")
    parser.add_argument("--skip", default="", help="methods to skip: paper,ultralytics")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best is kept")
    args = parser.parse_args(argv)

    import torch

    from detprune.features.embed import Embedder, default_workers

    weights = args.weights or f"{args.model}.yaml"
    global BUDGET
    BUDGET = args.seconds
    files = _images(args.folder, args.limit, 1)
    paths = _images(args.folder, args.limit, 20000)  # long enough for any budget
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    workers = (
        args.workers
        if args.workers is not None
        else default_workers(
            args.device
            if args.device != "auto"
            else ("cuda" if torch.cuda.is_available() else "cpu")
        )
    )
    print(
        f"# best of {args.rounds} interleaved runs of {args.seconds:g} s each; "
        f"{len(files)} images from {args.folder}; weights {weights}; batch {args.batch}; "
        f"decode workers {workers}; torch {torch.__version__}; {platform.processor() or platform.machine()}; "
        f"{_cpu_count()} CPUs; cuda {torch.cuda.is_available()}; load average {_load()}"
    )
    rows = []
    for imgsz in [int(s) for s in args.imgsz.split(",")]:
        embedder = Embedder(weights, imgsz=imgsz, device=args.device).build()
        device = embedder.device
        ncpu = _cpu_count()
        runners = {
            "decode-only": partial(bench_decode, paths, imgsz, args.batch, workers),
            "forward-only": partial(bench_forward, embedder, imgsz, args.batch),
            "ours": partial(bench_ours, embedder, paths, args.batch, workers),
        }
        if device.type == "cpu":  # the alternative the default rejects on CPU
            runners["ours-overlapped"] = partial(
                bench_ours, embedder, paths, args.batch, workers, True
            )
        if "paper" not in skip:
            paper_model = embedder.resolved.build()
            runners["paper"] = partial(bench_paper, paper_model, paths, imgsz, device)
        if "ultralytics" not in skip:
            listed = files * max(1, 600 // len(files))  # a list is loaded into memory up front
            runners["ultralytics"] = make_ultralytics(
                embedder.resolved.build(), listed, imgsz, device, None, None
            )
            runners["ultralytics-folder"] = make_ultralytics(
                embedder.resolved.build(), args.folder, imgsz, device, None, None
            )
            if device.type == "cpu" and ncpu > 1:
                runners[f"ultralytics-b{args.batch}-t{ncpu}"] = make_ultralytics(
                    embedder.resolved.build(), listed, imgsz, device, args.batch, ncpu
                )
        rates: dict[str, float] = {}
        for _ in range(args.rounds):  # interleaved rounds, best of each: robust to a busy machine
            for name, run in runners.items():
                rates[name] = max(rates.get(name, 0.0), run())
        bound = min(rates["decode-only"], rates["forward-only"])
        ul = rates.get("ultralytics", float("nan"))
        for name, rate in rates.items():
            rows.append((imgsz, name, rate, rate / ul, rate / bound))
    print(f"# load average at the end {_load()} (other processes make timings noisy)")
    print("\n| imgsz | method | images/s | x ultralytics | x min(decode, forward) |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for imgsz, name, rate, vs_ul, vs_bound in rows:
        print(f"| {imgsz} | {name} | {rate:.1f} | {vs_ul:.2f} | {vs_bound:.2f} |")


if __name__ == "__main__":
    main()
