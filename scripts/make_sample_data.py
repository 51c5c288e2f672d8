#!/usr/bin/env python3
"""Generate the synthetic YOLO detection set committed under ``sample_data/``.

The set is drawn, not photographed: five classes of shapes (circle, square,
triangle, star, ring), each with its own colour family and surface texture, on
varied textured backgrounds. It is built to exercise dataset pruning:

* strong class imbalance, with one rare class (``ring``, under 3 % of boxes);
* small (< 32x32 px), medium (< 96x96 px) and large boxes;
* about 10 % background-only images, some with an empty label file and some
  with no label file at all (both are legal in YOLO layouts);
* planted near-duplicate groups in ``train`` (one scene re-rendered with a few
  pixels of object jitter, gaussian noise or a brightness change), listed in
  ``planted_groups.json`` so tests can check that selection drops redundancy.

Output is deterministic for a given ``--seed``: all randomness comes from
``numpy.random.default_rng``, nothing reads the clock, and the tree is written
into a temporary directory next to ``--out`` that then replaces it.

Usage::

    python scripts/make_sample_data.py --seed 0 --out sample_data
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMG_SIZE = 320
JPEG_QUALITY = 85
LICENCE = "AGPL-3.0-or-later"

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
RARE_CLASS = 4
# Sampling weights of the common classes (the rare class is planted separately).
COMMON_WEIGHTS = np.array([40.0, 25.0, 20.0, 12.0]) / 97.0
# Colour family per class: (OpenCV hue 0-179, hue jitter); textures are fixed per class.
HUES: tuple[tuple[int, int], ...] = ((0, 6), (112, 8), (60, 10), (26, 4), (150, 8))
TEXTURES: tuple[str, ...] = ("solid", "stripes", "dots", "checker", "hatch")

N_TRAIN = 300
N_VAL = 60
BACKGROUND_SHARE = 0.10
N_GROUPS = 25
GROUP_SIZES = (3, 6)  # inclusive range of images per planted group
DUPLICATE_IMAGES = N_TRAIN // 3  # train images that belong to a planted group
RARE_SCENES_TRAIN = 14  # unique train scenes that get one rare object
RARE_GROUPS_TRAIN = 1  # planted groups whose scene has one rare object
RARE_SCENES_VAL = 4

# Characteristic object size (px) per size band and the band probabilities.
SIZE_BANDS: tuple[tuple[int, int], ...] = ((10, 28), (36, 88), (104, 180))
SIZE_BAND_P = np.array([0.35, 0.45, 0.20])
MAX_LARGE_PER_IMAGE = 2
OBJECTS_PER_IMAGE = np.arange(1, 9)
OBJECTS_PER_IMAGE_P = np.array([0.08, 0.14, 0.17, 0.17, 0.15, 0.12, 0.10, 0.07])
MAX_OVERLAP = 0.25  # intersection / smaller box area allowed between two objects
MASK_THRESHOLD = 64  # anti-aliased mask value (0-255) that counts as "object"
MIN_VISIBLE = 0.6  # share of an object that must lie inside the image

SMALL_AREA = 32 * 32
MEDIUM_AREA = 96 * 96


@dataclass(frozen=True)
class Obj:
    """One drawn object of a scene, in pixel coordinates.

    Attributes
    ----------
    cls : int
        Class index into ``CLASS_NAMES``.
    cx, cy : float
        Centre of the shape.
    size : float
        Characteristic diameter of the shape.
    angle : float
        Rotation in radians (shape and texture rotate together).
    color, color2 : tuple of int
        Primary and secondary BGR colours of the texture.
    period : float
        Spatial period of the texture pattern in pixels.
    """

    cls: int
    cx: float
    cy: float
    size: float
    angle: float
    color: tuple[int, int, int]
    color2: tuple[int, int, int]
    period: float


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one image again.

    Attributes
    ----------
    bg_seed : int
        Seed of the background generator (same seed, same background).
    objects : tuple of Obj
        Objects in drawing order; later objects are drawn on top.
    """

    bg_seed: int
    objects: tuple[Obj, ...]


@dataclass(frozen=True)
class Perturbation:
    """How a planted near-duplicate differs from its group's base render.

    Attributes
    ----------
    jitter : numpy.ndarray or None
        Per-object (dx, dy) shift in pixels, shape ``(n_objects, 2)``.
    noise_sigma : float
        Standard deviation of additive gaussian pixel noise (0 for none).
    noise_seed : int
        Seed of the noise generator.
    gain, bias : float
        Brightness change ``pixel * gain + bias``.
    """

    jitter: np.ndarray | None = None
    noise_sigma: float = 0.0
    noise_seed: int = 0
    gain: float = 1.0
    bias: float = 0.0


@dataclass
class Item:
    """One image to write.

    Attributes
    ----------
    split : str
        ``"train"`` or ``"val"``.
    scene : Scene
        Scene to render.
    perturbation : Perturbation
        Changes applied on top of the scene.
    group : int or None
        Planted group index, or None for a unique image.
    label_file : bool
        Whether to write a label file when the image has no objects.
    """

    split: str
    scene: Scene
    perturbation: Perturbation
    group: int | None = None
    label_file: bool = True


# --------------------------------------------------------------------------- backgrounds


def _random_muted_bgr(rng: np.random.Generator) -> np.ndarray:
    """Draw a low-saturation BGR colour so that objects stand out against it."""
    hsv = np.array(
        [[[rng.integers(0, 180), rng.integers(0, 90), rng.integers(50, 230)]]], dtype=np.uint8
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _coords() -> tuple[np.ndarray, np.ndarray]:
    """Return float32 pixel-centre coordinate grids ``(x, y)`` of the image."""
    r = np.arange(IMG_SIZE, dtype=np.float32)
    return np.meshgrid(r, r)


def _bg_gradient(rng: np.random.Generator) -> np.ndarray:
    """Linear or radial blend between two muted colours."""
    c1, c2 = _random_muted_bgr(rng), _random_muted_bgr(rng)
    x, y = _coords()
    if rng.random() < 0.6:
        a = rng.uniform(0, 2 * np.pi)
        t = (x - IMG_SIZE / 2) * np.cos(a) + (y - IMG_SIZE / 2) * np.sin(a)
        t = (t - t.min()) / (t.max() - t.min())
    else:
        ox, oy = rng.uniform(0, IMG_SIZE, 2)
        t = np.hypot(x - ox, y - oy)
        t = t / t.max()
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def _bg_noise(rng: np.random.Generator) -> np.ndarray:
    """Smooth value noise: a coarse random colour grid upsampled bicubically."""
    cells = int(rng.integers(3, 12))
    grid = np.stack([_random_muted_bgr(rng) for _ in range(cells * cells)]).reshape(cells, cells, 3)
    return cv2.resize(grid, (IMG_SIZE, IMG_SIZE), interpolation=cv2.INTER_CUBIC)


def _bg_stripes(rng: np.random.Generator) -> np.ndarray:
    """Soft sinusoidal stripes at a random angle and period."""
    c1, c2 = _random_muted_bgr(rng), _random_muted_bgr(rng)
    x, y = _coords()
    a = rng.uniform(0, np.pi)
    period = rng.uniform(14, 48)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / period)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def _bg_blotches(rng: np.random.Generator) -> np.ndarray:
    """A base colour with blurred ellipses of other colours."""
    img = np.empty((IMG_SIZE, IMG_SIZE, 3), np.float32)
    img[:] = _random_muted_bgr(rng)
    for _ in range(int(rng.integers(5, 16))):
        center = (int(rng.integers(0, IMG_SIZE)), int(rng.integers(0, IMG_SIZE)))
        axes = (int(rng.integers(15, 90)), int(rng.integers(15, 90)))
        color = tuple(float(v) for v in _random_muted_bgr(rng))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    k = 2 * int(rng.integers(6, 16)) + 1
    return cv2.GaussianBlur(img, (k, k), 0)


_BACKGROUNDS = (_bg_gradient, _bg_noise, _bg_stripes, _bg_blotches)


def render_background(seed: int) -> np.ndarray:
    """Render the background of a scene.

    Parameters
    ----------
    seed : int
        Background seed; equal seeds give equal backgrounds.

    Returns
    -------
    numpy.ndarray
        float32 BGR image of shape ``(IMG_SIZE, IMG_SIZE, 3)`` in [0, 255].
    """
    rng = np.random.default_rng(seed)
    kind = int(rng.integers(len(_BACKGROUNDS)))
    img = _BACKGROUNDS[kind](rng)
    if rng.random() < 0.35:  # blend in a second kind for more spread
        other = _BACKGROUNDS[(kind + 1 + int(rng.integers(len(_BACKGROUNDS) - 1))) % 4](rng)
        alpha = rng.uniform(0.25, 0.5)
        img = img * (1 - alpha) + other * alpha
    grain = rng.uniform(0.0, 4.0)
    if grain > 0.5:
        img = img + rng.normal(0.0, grain, img.shape).astype(np.float32)
    return img.astype(np.float32)


# --------------------------------------------------------------------------- objects


def _polygon(obj: Obj, dx: float, dy: float) -> np.ndarray | None:
    """Vertices of a polygonal class (square, triangle, star), or None for round ones."""
    r = obj.size / 2
    if obj.cls == 1:  # square
        ang = np.pi / 4 + np.arange(4) * np.pi / 2
        rad = np.full(4, r * np.sqrt(2) * 0.8)
    elif obj.cls == 2:  # triangle
        ang = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        rad = np.full(3, r)
    elif obj.cls == 3:  # star
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    else:
        return None
    ang = ang + obj.angle
    pts = np.stack([obj.cx + dx + rad * np.cos(ang), obj.cy + dy + rad * np.sin(ang)], axis=1)
    return np.round(pts * 16).astype(np.int32)  # 4 fractional bits for cv2 shift=4


def draw_mask(obj: Obj, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Draw the anti-aliased shape mask of an object.

    Parameters
    ----------
    obj : Obj
        Object to draw.
    dx, dy : float
        Extra shift in pixels (near-duplicate jitter).

    Returns
    -------
    numpy.ndarray
        uint8 mask of shape ``(IMG_SIZE, IMG_SIZE)``, 255 inside the shape.
    """
    mask = np.zeros((IMG_SIZE, IMG_SIZE), np.uint8)
    pts = _polygon(obj, dx, dy)
    if pts is not None:
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA, shift=4)
        return mask
    center = (round((obj.cx + dx) * 16), round((obj.cy + dy) * 16))
    r = obj.size / 2
    cv2.circle(mask, center, round(r * 16), 255, -1, cv2.LINE_AA, shift=4)
    if obj.cls == RARE_CLASS:  # ring: punch the hole
        cv2.circle(mask, center, round(r * 0.55 * 16), 0, -1, cv2.LINE_AA, shift=4)
    return mask


def draw_texture(obj: Obj, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Render the class texture of an object over the whole image frame.

    The pattern is expressed in the object's own rotated frame, so it moves and
    turns with the object.

    Parameters
    ----------
    obj : Obj
        Object whose texture to draw.
    dx, dy : float
        Extra shift in pixels (near-duplicate jitter).

    Returns
    -------
    numpy.ndarray
        float32 BGR image of shape ``(IMG_SIZE, IMG_SIZE, 3)``.
    """
    x, y = _coords()
    x = x - (obj.cx + dx)
    y = y - (obj.cy + dy)
    c, s = np.cos(obj.angle), np.sin(obj.angle)
    u, v = x * c + y * s, -x * s + y * c
    p = obj.period
    kind = TEXTURES[obj.cls]
    if kind == "solid":  # soft directional shading
        t = np.clip(0.5 + 0.5 * (u + v) / max(obj.size, 1.0), 0.0, 1.0) * 0.6
    elif kind == "stripes":
        t = (np.mod(u, p) < p / 2).astype(np.float32)
    elif kind == "dots":
        du, dv = np.mod(u, p) - p / 2, np.mod(v, p) - p / 2
        t = (du * du + dv * dv < (0.3 * p) ** 2).astype(np.float32)
    elif kind == "checker":
        t = ((np.floor(u / p) + np.floor(v / p)) % 2).astype(np.float32)
    else:  # hatch: two crossing stripe sets
        t = ((np.mod(u + v, p) < p / 3) | (np.mod(u - v, p) < p / 3)).astype(np.float32)
    c1 = np.array(obj.color, np.float32)
    c2 = np.array(obj.color2, np.float32)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight pixel box ``(x0, y0, x1, y1)`` (exclusive ends) of a mask, or None if empty."""
    ys, xs = np.nonzero(mask >= MASK_THRESHOLD)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _random_colors(
    rng: np.random.Generator, cls: int
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Primary and secondary BGR colours within the class colour family."""
    hue0, dh = HUES[cls]
    hue = int((hue0 + rng.integers(-dh, dh + 1)) % 180)
    sat = int(rng.integers(170, 256))
    val = int(rng.integers(170, 256))
    if TEXTURES[cls] == "solid":
        sat2, val2 = sat, int(val * rng.uniform(0.55, 0.75))
    elif rng.random() < 0.5:  # darker pattern
        sat2, val2 = sat, int(val * rng.uniform(0.3, 0.5))
    else:  # paler pattern
        sat2, val2 = int(sat * rng.uniform(0.2, 0.45)), min(255, val + 30)
    hsv = np.array([[[hue, sat, val], [hue, sat2, val2]]], np.uint8)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    return (
        (int(bgr[0, 0]), int(bgr[0, 1]), int(bgr[0, 2])),
        (int(bgr[1, 0]), int(bgr[1, 1]), int(bgr[1, 2])),
    )


def _overlap_ok(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]]) -> bool:
    """True when ``box`` covers at most ``MAX_OVERLAP`` of the smaller of it and each other box."""
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    for a0, b0, a1, b1 in boxes:
        iw = min(x1, a1) - max(x0, a0)
        ih = min(y1, b1) - max(y0, b0)
        if iw > 0 and ih > 0:
            if iw * ih > MAX_OVERLAP * min(area, (a1 - a0) * (b1 - b0)):
                return False
    return True


def make_scene(rng: np.random.Generator, n_objects: int, rare: bool) -> Scene:
    """Draw a random scene.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n_objects : int
        Number of objects to try to place (0 for a background-only image). At
        least one is always placed when ``n_objects > 0``.
    rare : bool
        Place exactly one object of the rare class (first, so it always fits).

    Returns
    -------
    Scene
        The scene; it may hold fewer objects than asked when space ran out.
    """
    bg_seed = int(rng.integers(2**62))
    objects: list[Obj] = []
    boxes: list[tuple[int, int, int, int]] = []
    n_large = 0
    for i in range(n_objects):
        if rare and i == 0:
            cls = RARE_CLASS
        else:
            cls = int(rng.choice(len(COMMON_WEIGHTS), p=COMMON_WEIGHTS))
        for _attempt in range(60):
            band = int(rng.choice(len(SIZE_BANDS), p=SIZE_BAND_P))
            if band == 2 and n_large >= MAX_LARGE_PER_IMAGE:
                band = 1
            size = float(rng.uniform(*SIZE_BANDS[band]))
            r = size / 2
            # Mostly fully inside; occasionally cut by the border (the box is clipped).
            slack = r * 0.5 if rng.random() < 0.12 else -1.0
            lo, hi = r - slack - 1, IMG_SIZE - r + slack + 1
            cx, cy = (float(v) for v in rng.uniform(lo, hi, 2))
            color, color2 = _random_colors(rng, cls)
            period = max(3.0, size / float(rng.uniform(3.0, 6.0)))
            obj = Obj(cls, cx, cy, size, float(rng.uniform(0, 2 * np.pi)), color, color2, period)
            mask = draw_mask(obj)
            box = tight_box(mask)
            if box is None:
                continue
            full_area = np.pi * r * r  # ample approximation for the visibility check
            if float(mask.sum()) / 255.0 < MIN_VISIBLE * full_area * _fill_ratio(cls):
                continue
            if not _overlap_ok(box, boxes):
                continue
            objects.append(obj)
            boxes.append(box)
            n_large += band == 2
            break
    return Scene(bg_seed, tuple(objects))


def _fill_ratio(cls: int) -> float:
    """Approximate shape area divided by the area of the circumscribed circle."""
    return (1.0, 0.815, 0.413, 0.421, 0.698)[cls]


def render(scene: Scene, pert: Perturbation) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Render a scene with a perturbation.

    Parameters
    ----------
    scene : Scene
        Scene to render.
    pert : Perturbation
        Jitter, noise and brightness change to apply.

    Returns
    -------
    image : numpy.ndarray
        uint8 BGR image.
    labels : list of (int, numpy.ndarray)
        Class and normalised ``(xc, yc, w, h)`` for each visible object.
    """
    img = render_background(scene.bg_seed)
    labels: list[tuple[int, np.ndarray]] = []
    masks: list[tuple[int, np.ndarray]] = []
    for k, obj in enumerate(scene.objects):
        dx, dy = (0.0, 0.0) if pert.jitter is None else (float(v) for v in pert.jitter[k])
        mask = draw_mask(obj, dx, dy)
        alpha = (mask.astype(np.float32) / 255.0)[..., None]
        img = img * (1 - alpha) + draw_texture(obj, dx, dy) * alpha
        masks.append((obj.cls, mask))
    if pert.gain != 1.0 or pert.bias != 0.0:
        img = img * pert.gain + pert.bias
    if pert.noise_sigma > 0:
        noise_rng = np.random.default_rng(pert.noise_seed)
        img = img + noise_rng.normal(0.0, pert.noise_sigma, img.shape)
    for cls, mask in masks:
        box = tight_box(mask)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        xywh = np.array(
            [
                (x0 + x1) / 2 / IMG_SIZE,
                (y0 + y1) / 2 / IMG_SIZE,
                (x1 - x0) / IMG_SIZE,
                (y1 - y0) / IMG_SIZE,
            ]
        )
        labels.append((cls, np.clip(xywh, 0.0, 1.0)))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), labels


# --------------------------------------------------------------------------- plan


def _n_objects(rng: np.random.Generator) -> int:
    return int(rng.choice(OBJECTS_PER_IMAGE, p=OBJECTS_PER_IMAGE_P))


def _variant(rng: np.random.Generator, n_objects: int) -> Perturbation:
    """A non-trivial near-duplicate perturbation: one or two of jitter, noise, brightness."""
    kinds = rng.permutation(3)[: int(rng.integers(1, 3))]
    jitter, sigma, gain, bias = None, 0.0, 1.0, 0.0
    if 0 in kinds and n_objects > 0:
        jitter = rng.integers(-4, 5, (n_objects, 2)).astype(np.float64)
        jitter[np.all(jitter == 0, axis=1)] = (2.0, -1.0)  # every object moves
    if 1 in kinds or (jitter is None and 2 not in kinds):
        sigma = float(rng.uniform(3.0, 8.0))
    if 2 in kinds:
        gain = float(rng.choice([-1, 1]) * rng.uniform(0.06, 0.18) + 1.0)
        bias = float(rng.uniform(-8.0, 8.0))
    return Perturbation(jitter, sigma, int(rng.integers(2**62)), gain, bias)


def plan(seed: int) -> list[Item]:
    """Decide every image of the data set (scenes, perturbations, groups).

    Parameters
    ----------
    seed : int
        Master seed.

    Returns
    -------
    list of Item
        Train items followed by val items, in final file-name order per split.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(GROUP_SIZES[0], GROUP_SIZES[1] + 1, N_GROUPS)
    while sizes.sum() != DUPLICATE_IMAGES:  # nudge random groups until the total is exact
        step = 1 if sizes.sum() < DUPLICATE_IMAGES else -1
        can = np.flatnonzero((sizes + step >= GROUP_SIZES[0]) & (sizes + step <= GROUP_SIZES[1]))
        sizes[rng.choice(can)] += step
    rare_groups = set(rng.choice(N_GROUPS, RARE_GROUPS_TRAIN, replace=False).tolist())

    train: list[Item] = []
    for g, n in enumerate(sizes):
        scene = make_scene(rng, max(2, _n_objects(rng)), rare=g in rare_groups)
        train.append(Item("train", scene, Perturbation(), group=g))
        for _ in range(int(n) - 1):
            train.append(Item("train", scene, _variant(rng, len(scene.objects)), group=g))

    items = {"train": train, "val": []}
    for split, total, n_rare in (
        ("train", N_TRAIN, RARE_SCENES_TRAIN),
        ("val", N_VAL, RARE_SCENES_VAL),
    ):
        n_unique = total - len(items[split])
        n_bg = round(total * BACKGROUND_SHARE)
        for i in range(n_unique):
            if i < n_bg:  # background-only: half with an empty label file, half with none
                item = Item(split, make_scene(rng, 0, False), Perturbation(), label_file=i % 2 == 0)
            else:
                rare = i - n_bg < n_rare
                item = Item(split, make_scene(rng, _n_objects(rng), rare), Perturbation())
            items[split].append(item)

    return _shuffle(rng, items["train"]) + _shuffle(rng, items["val"])


def _shuffle(rng: np.random.Generator, items: list[Item]) -> list[Item]:
    """Shuffle so that no two members of a planted group are neighbours in name order."""
    for _ in range(10_000):
        order = [items[i] for i in rng.permutation(len(items))]
        if all(a.group is None or a.group != b.group for a, b in itertools.pairwise(order)):
            return order
    raise RuntimeError("could not separate planted groups in name order")


# --------------------------------------------------------------------------- write


def _label_text(labels: list[tuple[int, np.ndarray]]) -> str:
    return "".join(
        f"{cls} {xywh[0]:.6f} {xywh[1]:.6f} {xywh[2]:.6f} {xywh[3]:.6f}\n" for cls, xywh in labels
    )


def _groups_json(seed: int, groups: list[list[str]]) -> str:
    """JSON text of the planted groups, one group per line for readable diffs."""
    body = ",\n".join("  " + json.dumps(g) for g in groups)
    return f'{{\n "seed": {seed},\n "groups": [\n{body}\n ]\n}}\n'


def _size_bucket(w: float, h: float) -> str:
    area = w * IMG_SIZE * h * IMG_SIZE
    return "small" if area < SMALL_AREA else "medium" if area < MEDIUM_AREA else "large"


def _data_yaml(seed: int) -> str:
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    return (
        f"# Synthetic sample set: python scripts/make_sample_data.py --seed {seed}\n"
        "train: images/train\nval: images/val\n"
        f"names:\n{names}"
    )


def _readme(seed: int, out_name: str, stats: dict) -> str:
    head = "| split | " + " | ".join(CLASS_NAMES) + " | images | background |"
    rows = [
        f"| {s} | "
        + " | ".join(str(c) for c in stats["class_counts"][s])
        + f" | {stats['images'][s]} | {stats['background'][s]} |"
        for s in ("train", "val")
    ]
    return "\n".join(
        [
            "# detprune sample data",
            "Synthetic YOLO detection set (320x320 JPEG, five drawn shape classes on textured"
            " backgrounds) for tests and demos; no real imagery.",
            f"Generated deterministically by `python scripts/make_sample_data.py --seed {seed}"
            f" --out {out_name}`; {stats['n_groups']} planted near-duplicate groups"
            " (train only) are listed in `planted_groups.json`.",
            "",
            head,
            "|---" * (len(CLASS_NAMES) + 3) + "|",
            *rows,
            "",
            f"Licence: {LICENCE}, the same as the detprune project (generated by its own script).",
            "",
        ]
    )


def write_dataset(items: list[Item], dest: Path, seed: int, out_name: str) -> dict:
    """Render and write every item, the sidecar files and the README into ``dest``.

    Parameters
    ----------
    items : list of Item
        Output of :func:`plan`.
    dest : pathlib.Path
        Empty directory to write into.
    seed : int
        Master seed (recorded in ``data.yaml``, README and ``planted_groups.json``).
    out_name : str
        Name of the final output directory, for the README command line.

    Returns
    -------
    dict
        Summary statistics.
    """
    splits = ("train", "val")
    for s in splits:
        (dest / "images" / s).mkdir(parents=True)
        (dest / "labels" / s).mkdir(parents=True)
    stats: dict = {
        "images": dict.fromkeys(splits, 0),
        "class_counts": {s: [0] * len(CLASS_NAMES) for s in splits},
        "rare_images": dict.fromkeys(splits, 0),
        "sizes": {"small": 0, "medium": 0, "large": 0},
        "background": dict.fromkeys(splits, 0),
        "background_empty_file": 0,
        "background_no_file": 0,
    }
    groups: dict[int, list[str]] = {}
    for idx, item in enumerate(items, start=1):
        stem = f"img_{idx:04d}"
        rel_img = f"images/{item.split}/{stem}.jpg"
        img, labels = render(item.scene, item.perturbation)
        ok = cv2.imwrite(str(dest / rel_img), img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise OSError(f"cv2.imwrite failed for {rel_img}")
        stats["images"][item.split] += 1
        if labels or item.label_file:
            (dest / "labels" / item.split / f"{stem}.txt").write_text(
                _label_text(labels), encoding="utf-8", newline="\n"
            )
        if not labels:
            stats["background"][item.split] += 1
            stats["background_empty_file" if item.label_file else "background_no_file"] += 1
        for cls, xywh in labels:
            stats["class_counts"][item.split][cls] += 1
            stats["sizes"][_size_bucket(xywh[2], xywh[3])] += 1
        stats["rare_images"][item.split] += any(cls == RARE_CLASS for cls, _ in labels)
        if item.group is not None:
            groups.setdefault(item.group, []).append(rel_img)

    group_list = sorted(sorted(g) for g in groups.values())
    stats["n_groups"] = len(group_list)
    stats["group_sizes"] = [len(g) for g in group_list]
    (dest / "planted_groups.json").write_text(
        _groups_json(seed, group_list), encoding="utf-8", newline="\n"
    )
    (dest / "data.yaml").write_text(_data_yaml(seed), encoding="utf-8", newline="\n")
    (dest / "README.md").write_text(_readme(seed, out_name, stats), encoding="utf-8", newline="\n")
    return stats


def print_summary(stats: dict) -> None:
    """Print a short human-readable summary of the generated set."""
    total = [sum(c) for c in zip(*stats["class_counts"].values(), strict=True)]
    n_boxes = sum(total)
    print(f"images: train {stats['images']['train']}, val {stats['images']['val']}")
    print("boxes per class (train+val):")
    for i, name in enumerate(CLASS_NAMES):
        tr, va = stats["class_counts"]["train"][i], stats["class_counts"]["val"][i]
        share = 100 * total[i] / n_boxes
        print(f"  {i} {name:<9}{total[i]:5d} ({share:4.1f}%)  train {tr}, val {va}")
    rare = CLASS_NAMES[RARE_CLASS]
    print(
        f"rare class '{rare}': {100 * total[RARE_CLASS] / n_boxes:.2f}% of {n_boxes} boxes, in "
        f"{stats['rare_images']['train']} train / {stats['rare_images']['val']} val images"
    )
    sz = stats["sizes"]
    print(f"box sizes: small {sz['small']}, medium {sz['medium']}, large {sz['large']}")
    print(
        f"background images: train {stats['background']['train']}, val "
        f"{stats['background']['val']} ({stats['background_empty_file']} empty label file, "
        f"{stats['background_no_file']} no label file)"
    )
    n_dup = sum(stats["group_sizes"])
    print(
        f"planted duplicate groups: {stats['n_groups']} (sizes {min(stats['group_sizes'])}-"
        f"{max(stats['group_sizes'])}), {n_dup} train images "
        f"({100 * n_dup / stats['images']['train']:.0f}% of train)"
    )


def generate(out: Path, seed: int) -> dict:
    """Generate the data set into ``out`` atomically, replacing what was there.

    Parameters
    ----------
    out : pathlib.Path
        Output directory.
    seed : int
        Master seed.

    Returns
    -------
    dict
        Summary statistics.
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        stats = write_dataset(plan(seed), tmp, seed, out.name)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument(
        "--out", type=Path, default=Path("sample_data"), help="output directory (replaced)"
    )
    args = parser.parse_args(argv)
    stats = generate(args.out, args.seed)
    print(f"wrote {args.out}")
    print_summary(stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
