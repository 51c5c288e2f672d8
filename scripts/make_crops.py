#!/usr/bin/env python3
"""Grow a small real YOLO dataset into many augmented crops, for benchmarks at scale.

The selection benchmark's synthetic embeddings are a model; this script gives a
real one: ``--n`` random crops (30-100 % of a side, aspect jitter, flips,
brightness / colour / contrast jitter, long side ``--size``) of the images of a
YOLO dataset, with their boxes carried over (a box is kept when at least 40 % of
its area is inside the crop). Embed them with the real backbone and benchmark on
the result::

    python scripts/make_crops.py ../shared/data/bccd --n 20000 --out /tmp/crops
    detprune embed /tmp/crops --weights ../shared/weights/yolov5n.pt --imgsz 320 \\
        --save /tmp/crops/embeddings.npy
    python scripts/bench_select.py --embeddings /tmp/crops/embeddings.npy \\
        --labels /tmp/crops/classsets.npy --methods mms srs

``classsets.npy`` holds one integer per image, in file-name order (the order of
``detprune embed``): the id of the set of classes of its boxes (the paper's
per-image category); ``classsets.json`` names them. Deterministic for a ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageEnhance

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _labels(img: Path) -> np.ndarray:
    parts = list(img.parts)
    i = len(parts) - 1 - parts[::-1].index("images")
    lb = Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
    if not lb.is_file():
        return np.zeros((0, 5))
    rows = [line.split() for line in lb.read_text().splitlines() if line.strip()]
    return np.array([[float(v) for v in r[:5]] for r in rows if len(r) >= 5]).reshape(-1, 5)


def _crop_boxes(b: np.ndarray, W: int, H: int, x0: int, y0: int, cw: int, ch: int) -> np.ndarray:
    out = []
    for c, xc, yc, w, h in b:
        bx0, by0, bx1, by1 = (xc - w / 2) * W, (yc - h / 2) * H, (xc + w / 2) * W, (yc + h / 2) * H
        ix0, iy0 = max(bx0, x0), max(by0, y0)
        ix1, iy1 = min(bx1, x0 + cw), min(by1, y0 + ch)
        if ix1 <= ix0 or iy1 <= iy0 or (ix1 - ix0) * (iy1 - iy0) < 0.4 * (bx1 - bx0) * (by1 - by0):
            continue
        out.append([c, ((ix0 + ix1) / 2 - x0) / cw, ((iy0 + iy1) / 2 - y0) / ch,
                    (ix1 - ix0) / cw, (iy1 - iy0) / ch])
    return np.array(out).reshape(-1, 5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a YOLO dataset folder (every image under an images/ folder is used)")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=320, help="long side of the crops")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    srcs = sorted(q for q in Path(args.src).rglob("*")
                  if q.suffix.lower() in SUFFIXES and "images" in q.parts)
    if not srcs:
        sys.exit(f"no images under an images/ folder in {args.src}")
    out = Path(args.out)
    (out / "images" / "train").mkdir(parents=True, exist_ok=True)
    (out / "labels" / "train").mkdir(parents=True, exist_ok=True)
    images = [Image.open(q).convert("RGB") for q in srcs]
    boxes = [_labels(q) for q in srcs]
    rng = np.random.default_rng(args.seed)
    sets: dict[tuple[int, ...], int] = {}
    ids = []
    width = len(str(args.n - 1))
    for i in range(args.n):
        j = int(rng.integers(len(images)))
        im, (W, H) = images[j], images[j].size
        s = rng.uniform(0.3, 1.0)
        cw = min(W, max(10, int(W * s * rng.uniform(0.8, 1.2))))
        ch = min(H, max(10, int(H * s * rng.uniform(0.8, 1.2))))
        x0, y0 = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
        crop = im.crop((x0, y0, x0 + cw, y0 + ch))
        b = _crop_boxes(boxes[j], W, H, x0, y0, cw, ch)
        if rng.random() < 0.5:
            crop, b[:, 1] = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 1 - b[:, 1]
        if rng.random() < 0.5:
            crop, b[:, 2] = crop.transpose(Image.Transpose.FLIP_TOP_BOTTOM), 1 - b[:, 2]
        crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.7, 1.3))
        crop = ImageEnhance.Color(crop).enhance(rng.uniform(0.6, 1.4))
        crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.7, 1.3))
        r = args.size / max(crop.size)
        crop = crop.resize((max(10, round(crop.size[0] * r)), max(10, round(crop.size[1] * r))))
        stem = f"crop{i:0{width}d}"
        crop.save(out / "images" / "train" / f"{stem}.jpg", quality=90)
        (out / "labels" / "train" / f"{stem}.txt").write_text(
            "".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in b))
        key = tuple(sorted({int(c) for c in b[:, 0]}))
        ids.append(sets.setdefault(key, len(sets)))
    np.save(out / "classsets.npy", np.array(ids))
    (out / "classsets.json").write_text(json.dumps(
        {str(v): {"classes": list(k), "images": ids.count(v)} for k, v in sets.items()}, indent=1))
    src_yaml = Path(args.src) / "data.yaml"
    names = yaml.safe_load(src_yaml.read_text()).get("names") if src_yaml.is_file() else None
    if not names:
        names = [f"class{c}" for c in range(int(max((b[:, 0].max() for b in boxes if b.size), default=0)) + 1)]
    (out / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/train", "names": names}))
    print(f"{args.n} crops of {len(srcs)} images in {len(sets)} class sets -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
