"""Per-image box statistics and strata (the paper's per-image category, generalised)."""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .records import ImageRecord

SMALL_AREA = 32**2
MEDIUM_AREA = 96**2
SIZE_BUCKETS = ("small", "medium", "large")
BACKGROUND = "background"


@dataclass(frozen=True, eq=False)
class BoxStats:
    """Box statistics of ``n`` images over ``C`` classes.

    Attributes
    ----------
    class_counts : ndarray of int64, shape (n, C)
        Boxes of each class per image.
    size_counts : ndarray of int64, shape (n, 3)
        Boxes per COCO size bucket (small < 32², medium < 96², large), by area in
        pixels of the original image. Images of unknown size count none.
    log_aspect_mean : ndarray of float64, shape (n,)
        Mean of ``log(w / h)`` (pixels) over the image's boxes; 0 without boxes.
    """

    class_counts: np.ndarray
    size_counts: np.ndarray
    log_aspect_mean: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.class_counts)
        if self.class_counts.ndim != 2 or self.size_counts.shape != (n, 3):
            raise ValueError("class_counts must be (n, C) and size_counts (n, 3)")
        if self.log_aspect_mean.shape != (n,):
            raise ValueError("log_aspect_mean must be (n,)")

    @property
    def box_counts(self) -> np.ndarray:
        """Boxes per image, shape (n,)."""
        return self.class_counts.sum(axis=1)

    @property
    def presence(self) -> np.ndarray:
        """Multi-hot class presence, bool of shape (n, C)."""
        return self.class_counts > 0

    def features(self) -> np.ndarray:
        """Per-image box-statistics vector for class-aware selection.

        Returns
        -------
        ndarray of float32, shape (n, C + 5)
            Normalised class histogram (C), size-bucket shares (3), ``log1p``
            box count (1) and mean log aspect ratio (1).
        """
        counts = self.class_counts.astype(np.float64)
        total = counts.sum(axis=1, keepdims=True)
        hist = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
        sizes = self.size_counts.astype(np.float64)
        stotal = sizes.sum(axis=1, keepdims=True)
        shares = np.divide(sizes, stotal, out=np.zeros_like(sizes), where=stotal > 0)
        return np.hstack(
            [hist, shares, np.log1p(total), self.log_aspect_mean[:, None]]
        ).astype(np.float32)


def box_statistics(records: Sequence[ImageRecord], nc: int) -> BoxStats:
    """Compute :class:`BoxStats` for a list of images."""
    n = len(records)
    class_counts = np.zeros((n, nc), dtype=np.int64)
    size_counts = np.zeros((n, 3), dtype=np.int64)
    log_aspect = np.zeros(n, dtype=np.float64)
    for i, r in enumerate(records):
        if not r.n_boxes:
            continue
        np.add.at(class_counts[i], r.classes, 1)
        if r.width and r.height:
            w = r.boxes[:, 2].astype(np.float64) * r.width
            h = r.boxes[:, 3].astype(np.float64) * r.height
            area = w * h
            size_counts[i] = (
                int((area < SMALL_AREA).sum()),
                int(((area >= SMALL_AREA) & (area < MEDIUM_AREA)).sum()),
                int((area >= MEDIUM_AREA).sum()),
            )
        else:
            w = r.boxes[:, 2].astype(np.float64)
            h = r.boxes[:, 3].astype(np.float64)
        log_aspect[i] = float(np.mean(np.log(w / h)))
    return BoxStats(class_counts, size_counts, log_aspect)


@dataclass(frozen=True, eq=False)
class Strata:
    """One stratum per image.

    Attributes
    ----------
    labels : ndarray of int64, shape (n,)
        Stratum id of each image, in ``[0, len(names))``.
    names : tuple of str
        Stratum names: class names joined with ``+``, or ``"background"``.
    keys : tuple of tuple of int
        The class set of each stratum (empty for background).
    """

    labels: np.ndarray
    names: tuple[str, ...]
    keys: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.keys):
            raise ValueError("names and keys must have the same length")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.names)):
            raise ValueError("stratum labels out of range")

    def sizes(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.names))
        return {name: int(c) for name, c in zip(self.names, counts, strict=True)}


def assign_strata(
    presence: np.ndarray, class_names: Sequence[str], *, min_size: int = 10
) -> Strata:
    """Group images by the set of classes they contain, merging tiny groups.

    An image's stratum is the set of classes present in it (the paper's
    per-image "category", for any number of classes); background images form
    their own stratum. A multi-class stratum with fewer than ``min_size`` images
    is merged into the stratum of its class set without its most common class
    (dataset-wide), repeatedly, so that rare classes keep their identity: the
    image with {car, person, bicycle} joins {bicycle, person}, then {bicycle}.
    A single-class stratum still too small joins the largest stratum containing
    its class, when there is one. Background images always keep their own
    stratum. Whatever the merging, the class floor of the selection keeps every
    class represented.

    Parameters
    ----------
    presence : ndarray of bool, shape (n, C)
        Multi-hot class presence per image.
    class_names : sequence of str
        Names of the C classes.
    min_size : int
        Smallest size a stratum is merged up to (where merging is possible).

    Returns
    -------
    Strata
        Strata ordered by their class sets (background last), deterministic.
    """
    presence = np.asarray(presence, dtype=bool)
    n, c = presence.shape
    frequency = presence.sum(axis=0)
    # most common first; ties broken by class id
    commonness = {k: (-int(frequency[k]), k) for k in range(c)}
    keys = [tuple(np.flatnonzero(row).tolist()) for row in presence]
    counts = Counter(keys)
    mapping = {k: k for k in counts}
    size = dict(counts)  # root -> images
    roots_with: dict[int, set] = defaultdict(set)  # class -> roots containing it
    for k in counts:
        for c_ in k:
            roots_with[c_].add(k)

    def resolve(k: tuple[int, ...]) -> tuple[int, ...]:
        root = k
        while mapping[root] != root:
            root = mapping[root]
        while mapping[k] != root:  # path compression
            mapping[k], k = root, mapping[k]
        return root

    # smallest, most specific strata first; a merged-into stratum that is still
    # too small comes back with its new size. Each merge shortens the total length
    # of the roots' class sets, so this ends.
    heap = [(n_, -len(k), k) for k, n_ in size.items() if k and n_ < min_size]
    heapq.heapify(heap)
    while heap:
        n_, _, k = heapq.heappop(heap)
        if mapping[k] != k or size[k] != n_:
            continue
        if len(k) == 1:
            # a rare single class joins the largest stratum that contains it
            supersets = [r for r in roots_with[k[0]] if r != k]
            if not supersets:
                continue
            target = max(supersets, key=lambda r: (size[r], tuple(-x for x in r)))
        else:
            drop = min(k, key=commonness.__getitem__)
            sub = tuple(x for x in k if x != drop)
            if sub not in mapping:
                mapping[sub], size[sub] = sub, 0
                for c_ in sub:
                    roots_with[c_].add(sub)
            target = resolve(sub)
            if target == k:  # its subset was already merged into it: stays as it is
                continue
        mapping[k] = target
        size[target] += size.pop(k)
        for c_ in k:
            roots_with[c_].discard(k)
        if size[target] < min_size:
            heapq.heappush(heap, (size[target], -len(target), target))

    final = sorted({resolve(k) for k in keys if k}, key=lambda k: (len(k), k))
    if any(not k for k in keys):
        final.append(())
    index = {k: i for i, k in enumerate(final)}
    labels = np.fromiter((index[resolve(k)] for k in keys), dtype=np.int64, count=n)
    names = tuple(
        "+".join(class_names[i] for i in k) if k else BACKGROUND for k in final
    )
    return Strata(labels, names, tuple(final))
