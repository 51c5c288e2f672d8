"""Checks on image files: readable, not truncated, not tiny, byte-identical copies.

Everything here only reads.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._pool import chunked_map
from .records import Problem

_EXIF_ORIENTATION = 0x0112
#: ultralytics treats an image under this many pixels a side as corrupt and skips it
MIN_SIDE = 10
#: PIL format names (lower case) ultralytics accepts (its IMG_FORMATS and "jpeg2000")
_TRAINABLE_FORMATS = frozenset(
    {"bmp", "dng", "jpeg", "jpeg2000", "mpo", "png", "tiff", "webp", "heic", "heif", "avif"}
)


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
            fmt, mode = im.format, im.mode
            if fmt in ("JPEG", "MPO"):  # EXIF read from the header: no decoding
                orientation = _orientation(im)
            im.verify()
        if fmt not in ("JPEG", "MPO"):
            with Image.open(path) as im:  # verify() leaves the file unusable; reopen for EXIF
                orientation = _orientation(im)
        if orientation in (5, 6, 7, 8):
            w, h = h, w
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return ImageProbe(path, 0, 0, size, _unreadable(path, str(exc) or type(exc).__name__))
    except Exception as exc:  # PIL raises assorted errors on hostile files
        return ImageProbe(path, 0, 0, size, _unreadable(path, f"{type(exc).__name__}: {exc}"))
    if w < 1 or h < 1:
        return ImageProbe(path, 0, 0, size, _unreadable(path, f"image size {w}x{h}"))
    if w < MIN_SIDE or h < MIN_SIDE:
        problem = Problem(
            "tiny-image", str(path), None,
            f"image is {w}x{h} pixels; ultralytics skips images under {MIN_SIDE} pixels a side;"
            " left out", "error",
        )
        return ImageProbe(path, w, h, size, problem)
    if fmt and fmt.lower() not in _TRAINABLE_FORMATS:
        problem = Problem(
            "image-format", str(path), None,
            f"file is a {fmt} image (by its content); ultralytics does not train on {fmt}; left out",
            "error",
        )
        return ImageProbe(path, w, h, size, problem)
    if fmt == "TIFF" and mode in ("I", "F"):
        problem = Problem(
            "image-format", str(path), None,
            f"TIFF with 32-bit {'integer' if mode == 'I' else 'float'} samples: OpenCV, which"
            " ultralytics reads images with, cannot decode it; left out", "error",
        )
        return ImageProbe(path, w, h, size, problem)
    if fmt in ("JPEG", "MPO"):  # by content: a PNG named .jpg is a PNG
        trailing = _jpeg_trailing_bytes(path)
        if trailing is None:
            problem = Problem(
                "truncated-image", str(path), None,
                "JPEG is truncated (no end-of-image marker); left out", "error",
            )
            return ImageProbe(path, w, h, size, problem)
        if trailing and fmt == "JPEG":
            problem = Problem(
                "jpeg-trailing-data", str(path), None,
                f"JPEG has {trailing} bytes after its end-of-image marker (e.g. an embedded"
                " motion-photo video); ultralytics rewrites such a file in place, without them,"
                " when it trains on it: detprune train and pruned datasets use a copy",
                "warning",
            )
            return ImageProbe(path, w, h, size, problem)
    return ImageProbe(path, w, h, size, None)


def _orientation(im) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        return 1


def _unreadable(path: Path, why: str) -> Problem:
    return Problem("unreadable-image", str(path), None, f"cannot read image: {why}; left out")


def _jpeg_trailing_bytes(path: Path) -> int | None:
    """Bytes after the JPEG's end-of-image marker, or ``None`` when it has none (truncated).

    Most files end with the marker: only the last bytes are read. Otherwise the
    whole file is parsed (its first scan located by the header's length fields, so
    an EXIF thumbnail's marker is not taken for the image's own).
    """
    from .._jpeg import ends_with_eoi, jpeg_info

    with open(path, "rb") as f:
        if ends_with_eoi(f):
            return 0
        f.seek(0)
        data = f.read()
    info = jpeg_info(data)
    if info is None:  # PIL read it, our header walk did not: fall back to the last marker
        pos = data.rfind(b"\xff\xd9")
        return None if pos == -1 else len(data) - pos - 2
    return len(data) - info.end if info.complete else None


def _file_digest(path: Path) -> str:
    """Content digest (hex); a file that cannot be read gets one no other file has."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:  # removed or unreadable since it was probed: not a duplicate of anything
        return f"unreadable:{path}"
    return h.hexdigest()


def find_identical_files(
    files: Sequence[tuple[Path, int]],
    workers: int | None = None,
    *,
    known: Mapping[Path, str] | None = None,
    computed: dict[Path, str] | None = None,
) -> list[list[Path]]:
    """Group byte-identical files.

    Parameters
    ----------
    files : sequence of (path, size in bytes)
        Only files of equal size are hashed.
    known : mapping of Path to str, optional
        Digests (as :func:`_file_digest` gives them) known to be current; not recomputed.
    computed : dict, optional
        Filled with the digests computed here.

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
    known = known or {}
    todo = [p for p in candidates if p not in known]
    # hashing is C code that releases the GIL: threads suit it
    threads = workers or min(8, 2 * (os.cpu_count() or 1))
    fresh = dict(zip(todo, chunked_map(_file_digest, todo, threads), strict=True))
    if computed is not None:
        computed.update(fresh)
    digests = [known[p] if p in known else fresh[p] for p in candidates]
    groups: dict[tuple[int, str], list[Path]] = defaultdict(list)
    sizes = dict(files)
    for p, d in zip(candidates, digests, strict=True):
        groups[(sizes[p], d)].append(p)
    order = {p: i for i, (p, _) in enumerate(files)}
    out = [sorted(g, key=order.__getitem__) for g in groups.values() if len(g) > 1]
    return sorted(out, key=lambda g: order[g[0]])
