"""Checks on image files: readable, not truncated, size, byte-identical copies.

Everything here only reads.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .records import Problem

_JPEG_SUFFIXES = (".jpg", ".jpeg")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageProbe:
    """What a cheap look at an image file found."""

    path: Path
    width: int
    height: int
    size: int
    problem: Problem | None


def probe_image(path: Path) -> ImageProbe:
    """Read an image's header, verify it and check a JPEG is not truncated.

    The size is the displayed size (EXIF rotation applied), as ultralytics uses
    it for normalised labels.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
    except OSError as exc:
        return ImageProbe(path, 0, 0, 0, _unreadable(path, exc.strerror or str(exc)))
    if size == 0:
        return ImageProbe(path, 0, 0, 0, _unreadable(path, "empty file"))
    try:
        with Image.open(path) as im:
            w, h = im.size
            im.verify()
        with Image.open(path) as im:  # verify() leaves the file unusable; reopen for EXIF
            try:
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:
                orientation = 1
        if orientation in (5, 6, 7, 8):
            w, h = h, w
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return ImageProbe(path, 0, 0, size, _unreadable(path, str(exc) or type(exc).__name__))
    except Exception as exc:  # PIL raises assorted errors on hostile files
        return ImageProbe(path, 0, 0, size, _unreadable(path, f"{type(exc).__name__}: {exc}"))
    if w < 1 or h < 1:
        return ImageProbe(path, 0, 0, size, _unreadable(path, f"image size {w}x{h}"))
    if path.suffix.lower() in _JPEG_SUFFIXES and not _jpeg_has_end(path, size):
        problem = Problem(
            "truncated-image", str(path), None,
            "JPEG is truncated (no end-of-image marker); left out", "error",
        )
        return ImageProbe(path, w, h, size, problem)
    return ImageProbe(path, w, h, size, None)


def _unreadable(path: Path, why: str) -> Problem:
    return Problem("unreadable-image", str(path), None, f"cannot read image: {why}; left out")


def _jpeg_has_end(path: Path, size: int) -> bool:
    """True when the end-of-image marker is at (or near: trailing bytes are common) the end."""
    tail = min(size, 4096)
    with open(path, "rb") as f:
        f.seek(size - tail)
        data = f.read(tail)
    return data.endswith(b"\xff\xd9") or b"\xff\xd9" in data


def probe_images(paths: Sequence[Path], workers: int | None = None) -> list[ImageProbe]:
    """Probe many images in a thread pool (file I/O releases the GIL)."""
    if not paths:
        return []
    workers = workers or min(16, 4 * (os.cpu_count() or 1))
    if workers <= 1 or len(paths) < 64:
        return [probe_image(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(probe_image, paths, chunksize=64))


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_identical_files(
    files: Sequence[tuple[Path, int]], workers: int | None = None
) -> list[list[Path]]:
    """Group byte-identical files.

    Parameters
    ----------
    files : sequence of (path, size in bytes)
        Only files of equal size are hashed.

    Returns
    -------
    list of list of Path
        Groups of two or more identical files, each in input order.
    """
    by_size: dict[int, list[Path]] = defaultdict(list)
    for p, s in files:
        by_size[s].append(p)
    candidates = [p for group in by_size.values() if len(group) > 1 for p in group]
    if not candidates:
        return []
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(_file_digest, candidates))
    groups: dict[tuple[int, str], list[Path]] = defaultdict(list)
    sizes = dict(files)
    for p, d in zip(candidates, digests, strict=True):
        groups[(sizes[p], d)].append(p)
    order = {p: i for i, (p, _) in enumerate(files)}
    out = [sorted(g, key=order.__getitem__) for g in groups.values() if len(g) > 1]
    return sorted(out, key=lambda g: order[g[0]])
