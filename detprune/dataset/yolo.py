"""Read YOLO detection datasets the way ultralytics reads them.

Plain functions: resolve a ``data.yaml`` (or a bare folder with ``images/`` and
``labels/``) into image lists per split, pair each image with its label file
(``/images/`` -> ``/labels/``, same stem, ``.txt``), and parse label files into
arrays while recording every problem with its file and line. Nothing is ever
written to the dataset.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import yaml

from .._io import printable
from ..errors import DatasetError
from .records import IMAGE_SUFFIXES, Problem

SPLIT_NAMES = ("train", "val", "test")
COORD_TOLERANCE = 1e-3
"""Box corners within this distance outside [0, 1] are clipped silently (farther: a warning)."""
ULTRALYTICS_TOLERANCE = 0.01
"""ultralytics accepts ``xc, yc, w, h`` in ``[-0.01, 1.01]`` (and clips the box); so does detprune."""


# ----------------------------------------------------------------------------- data.yaml


def read_data_yaml(path: Path) -> dict:
    """Load and check the top level of a ``data.yaml``.

    Returns
    -------
    dict
        With keys ``root`` (Path), ``names`` (tuple of str), ``splits``
        (dict split -> list of source strings as written), ``kpt`` (the keypoint
        fields of a pose row, ``nkpt * ndim`` of ``kpt_shape``; 0 without) and
        ``extra`` (the keys of :data:`CARRIED_KEYS` present, to write to outputs).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not data
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DatasetError(f"{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a mapping with 'names' and 'train', got {type(data).__name__}")

    names = _parse_names(data.get("names"), data.get("nc"), path)
    roots = _root_candidates(data.get("path"), path)
    splits: dict[str, list[str]] = {}
    for split in SPLIT_NAMES:
        value = data.get(split)
        if value in (None, "", []):
            continue
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) and v.strip() for v in items):
            raise DatasetError(f"{path}: '{split}' must be a path or a list of paths, got {value!r}")
        splits[split] = [v.strip() for v in items]
    if not splits:
        raise DatasetError(f"{path}: no 'train', 'val' or 'test' entry")
    # the first candidate root under which the split sources exist (else the first that exists)
    entries = [e for items in splits.values() for e in items]
    root = next((r for r in roots if all(resolve_source(r, e).exists() for e in entries)), None)
    if root is None:
        root = next((r for r in roots if r.exists()), roots[-1])
    kpt = _parse_kpt_shape(data.get("kpt_shape"), path)
    extra = tuple((k, data[k]) for k in CARRIED_KEYS if data.get(k) is not None)
    return {"root": root.resolve(), "names": names, "splits": splits, "kpt": kpt, "extra": extra}


#: data.yaml keys, besides the splits and names, that outputs keep: ``kpt_shape`` makes
#: ultralytics read the box of a pose row (it drops the keypoints for a box task),
#: ``flip_idx`` belongs with it, ``channels`` sets the image channels it trains on
CARRIED_KEYS = ("kpt_shape", "flip_idx", "channels")


def _parse_kpt_shape(value: object, path: Path) -> int:
    """The keypoint fields of a pose label row (``nkpt * ndim``), 0 without ``kpt_shape``."""
    if value is None:
        return 0
    ok = (
        isinstance(value, list | tuple) and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer()
                for v in value)  # 17.0 as ultralytics takes it
        and value[0] >= 1 and value[1] in (2, 3)
    )
    if not ok:
        raise DatasetError(f"{path}: 'kpt_shape' must be [keypoints, 2 or 3], got {value!r}")
    return int(value[0]) * int(value[1])


def _parse_names(names: object, nc: object, path: Path) -> tuple[str, ...]:
    if names is None:
        if isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
            return tuple(f"class_{i}" for i in range(nc))  # ultralytics' names
        raise DatasetError(f"{path}: missing 'names'")
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: 'names' keys must be class ids 0..N-1") from exc
        if ids != list(range(len(ids))):
            raise DatasetError(f"{path}: 'names' keys must be the class ids 0..{len(ids) - 1}, got {ids}")
        out = tuple(str(names[k]) for k in sorted(names, key=int))
    elif isinstance(names, list):
        out = tuple(str(n) for n in names)
    else:
        raise DatasetError(f"{path}: 'names' must be a list or a mapping, got {type(names).__name__}")
    if not out:
        raise DatasetError(f"{path}: 'names' is empty")
    if isinstance(nc, int | float) and not isinstance(nc, bool) and nc != len(out):
        # ultralytics refuses the mismatch too (3.0 included)
        raise DatasetError(f"{path}: 'nc' is {nc} but 'names' has {len(out)} entries")
    return out


def _root_candidates(value: object, yaml_path: Path) -> list[Path]:
    """Possible dataset roots for the yaml's ``path``, in order of preference.

    A relative ``path`` is read against the yaml's own folder first (what ``path: .``
    means to the dataset's author), then against the working directory, where
    ultralytics reads it: so ``path: .`` works from anywhere, and a working directory
    that holds another dataset of the same layout is not picked instead.
    """
    base = yaml_path.resolve().parent
    if value in (None, ""):
        return [base]
    if not isinstance(value, str):
        raise DatasetError(f"{yaml_path}: 'path' must be a string, got {value!r}")
    p = Path(os.path.expanduser(value))
    if p.is_absolute():
        return [p]
    return [base / p, Path.cwd() / p]


def resolve_source(root: Path, source: str) -> Path:
    """Resolve one split entry (folder or .txt file) against the dataset root."""
    p = Path(os.path.expanduser(source))
    if p.is_absolute():
        return p
    x = (root / p).resolve()
    if not x.exists() and source.startswith("../"):
        x = (root / source[3:]).resolve()  # as ultralytics does
    return x


# ----------------------------------------------------------------------------- image lists


def is_image(path: str | os.PathLike) -> bool:
    """Whether a file name has an image suffix (a str is not turned into a Path: fast)."""
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


def unlistable_name(path: str) -> str | None:
    """Why a file cannot be listed (train.txt, manifests), or None.

    A line break would split its line in a list; bytes that are not UTF-8 (Python's
    surrogate escapes) cannot be written to the UTF-8 lists and manifests.
    """
    if path.isprintable():
        return None
    if "\n" in path or "\r" in path:
        return "file name holds a line break (rename it: it cannot be listed in train.txt)"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (rename it: it cannot be written to train.txt or the manifest)"
    return None


def list_images(source: Path, problems: list[Problem]) -> list[Path]:
    """List the images of one split source: a folder (recursive) or a .txt list.

    Missing entries of a .txt list are recorded in ``problems`` with their line.
    In a folder, hidden files and folders (``.name``: e.g. macOS' ``._photo.jpg``
    resource forks) are skipped, as ultralytics' glob skips them.
    """
    if source.is_dir():
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in filenames:
                if f.startswith(".") or not is_image(f):
                    continue
                path = os.path.join(dirpath, f)
                why = unlistable_name(path)
                if why is None:
                    found.append(path)
                else:
                    problems.append(Problem("file-name", printable(path), None, f"{why}; left out"))
        # the order of sorted Paths (component-wise), without comparing Path objects
        found.sort(key=lambda s: s.split(os.sep))
        return [Path(s) for s in found]
    if source.is_file() and source.suffix.lower() == ".txt":
        return _list_from_txt(source, problems)
    if source.is_file() and is_image(source):
        return [source]
    raise DatasetError(f"{source}: split source does not exist (expected a folder or a .txt list)")


def _list_from_txt(source: Path, problems: list[Problem]) -> list[Path]:
    out = []
    parent = source.resolve().parent
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{source}: cannot read image list ({exc})") from exc
    for lineno, raw in enumerate(lines, 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(os.path.expanduser(entry))
        if not p.is_absolute():
            # ultralytics: './x' is relative to the list's folder; other relative
            # entries are tried against the list's folder, then the working dir.
            first = parent / (entry[2:] if entry.startswith("./") else entry)
            p = first if first.exists() or entry.startswith("./") else Path.cwd() / p
            if not p.exists():
                p = first
        if not is_image(p):
            problems.append(Problem("not-an-image", str(source), lineno, f"'{entry}' is not an image file type"))
            continue
        if not p.exists():
            problems.append(Problem("missing-image", str(source), lineno, f"image '{entry}' does not exist"))
            continue
        out.append(p.resolve() if not p.is_absolute() else p)
    return out


def label_path_for(image: Path) -> Path:
    """The label file of an image, exactly as ultralytics pairs them.

    The last ``/images/`` in the path becomes ``/labels/`` and the suffix ``.txt``.
    """
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s.rsplit(".", 1)[0] + ".txt")


# ----------------------------------------------------------------------------- label files


#: label files of at least this many lines are tried vectorised first (below it the
#: line-by-line parse is faster: 5 us a box against a fixed ~40 us)
_FAST_ROWS = 16


def _box_key(c: int, box: Sequence[float]) -> tuple[int, ...]:
    """Duplicate-box key: the class and each value rounded to 1e-6 (half to even)."""
    return (c, *(round(v * 1e6) for v in box))


def _parse_clean(text: str, nc: int, kpt: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The boxes of label text in which every line is a valid, in-bounds, unique box row.

    Returns None when any line would be reported (a bad line, a polygon row, a box
    to clip with a warning, a duplicate): :func:`parse_label_text` then reads the text
    line by line. Where it returns boxes they are identical to that function's: the
    fields are parsed by ``float`` and every value is computed by the same float64
    operations, vectorised.
    """
    rows = [f for f in (line.split() for line in text.splitlines()) if f]
    if kpt:  # pose rows: the box is their first five fields
        rows = [f[:5] if len(f) == 5 + kpt else f for f in rows]
    if not rows:
        return np.zeros(0, np.int32), np.zeros((0, 4), np.float32)
    if any(len(f) != 5 for f in rows):
        return None
    try:
        a = np.array([[float(v) for v in f] for f in rows], dtype=np.float64)
    except ValueError:
        return None
    if not np.isfinite(a).all():
        return None
    c, xc, yc, w, h = a.T
    utol = ULTRALYTICS_TOLERANCE
    if not (
        (c == np.trunc(c)).all() and (c >= 0).all() and (c < nc).all()
        and (w > 0).all() and (h > 0).all()
        and max(xc.max(), yc.max(), w.max(), h.max()) <= 1 + utol
        and min(xc.min(), yc.min()) >= -utol
    ):
        return None
    corners = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
    tol = COORD_TOLERANCE
    if corners.min() < -tol or corners.max() > 1 + tol:
        return None  # a clipped-box warning is due
    x0, y0, x1, y1 = np.minimum(np.maximum(corners, 0.0), 1.0).T
    if (x1 <= x0).any() or (y1 <= y0).any():
        return None
    box = np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=1)
    keys = np.concatenate([c[:, None], np.rint(box * 1e6)], axis=1)
    keys = keys[np.lexsort(keys.T)]
    if (keys[1:] == keys[:-1]).all(axis=1).any():
        return None  # duplicates are reported line by line
    return c.astype(np.int32), box.astype(np.float32)


def parse_label_text(
    text: str, nc: int, file: str, kpt: int = 0
) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Parse YOLO label text into valid boxes, reporting every bad line.

    Lines are ``class xc yc w h`` (normalised); segment lines (``class x1 y1 x2 y2
    x3 y3 ...``) are converted to their bounding box, as ultralytics does. With
    ``kpt`` (the dataset has a ``kpt_shape``), a pose row of ``5 + kpt`` fields is
    read as its box, its first five fields, as ultralytics reads it for a box task.

    Parameters
    ----------
    text : str
        The file's content.
    nc : int
        Number of classes; ids must be in ``[0, nc)``.
    file : str
        Name used in problem reports.
    kpt : int
        Keypoint fields of a pose row (``nkpt * ndim`` of ``kpt_shape``; 0: no keypoints).

    Returns
    -------
    classes : ndarray of int32, shape (k,)
    boxes : ndarray of float32, shape (k, 4)
        Normalised ``xc, yc, w, h``.
    problems : list of Problem
    """
    clean = _parse_clean(text, nc, kpt) if text.count("\n") >= _FAST_ROWS - 1 else None
    if clean is not None:
        return clean[0], clean[1], []
    classes: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    problems: list[Problem] = []
    seen: dict[tuple, int] = {}
    rows: set[str] = set()
    tol = COORD_TOLERANCE
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split()
        n = len(fields)
        if kpt and n == 5 + kpt:  # a pose row: its box
            fields, n = fields[:5], 5
        if n != 5 and (n < 7 or n % 2 == 0 or kpt):  # in a pose dataset, a row of another length
            # is a broken pose row rather than a polygon
            pose = f" or a pose row of {5 + kpt}" if kpt else ""
            problems.append(Problem(
                "field-count", file, lineno,
                f"expected 5 fields 'class xc yc w h' (or a polygon{pose}), got {n}",
            ))
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad = next(v for v in fields if not _is_float(v))
            problems.append(Problem("non-numeric", file, lineno, f"non-numeric field '{bad}'"))
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(Problem("non-numeric", file, lineno, "non-finite value (nan or inf)"))
            continue
        c = values[0]
        if c != int(c) or not 0 <= int(c) < nc:
            problems.append(Problem(
                "class-id", file, lineno, f"class id {fields[0]} is outside 0..{nc - 1}"
            ))
            continue
        coords = values[1:]
        if n == 5:
            xc, yc, w, h = coords
            x0, y0, x1, y1 = xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2
        else:
            xs, ys = coords[0::2], coords[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
            w, h = x1 - x0, y1 - y0
        if w <= 0 or h <= 0:
            problems.append(Problem(
                "box-size", file, lineno, f"box width and height must be > 0, got w={w:g} h={h:g}"
            ))
            continue
        if n == 5:
            xcyc = (xc, yc)
        else:
            xcyc = ((x0 + x1) / 2, (y0 + y1) / 2)
        utol = ULTRALYTICS_TOLERANCE
        if max(*xcyc, w, h) > 1 + utol or min(xcyc) < -utol:
            problems.append(Problem(
                "out-of-bounds", file, lineno,
                f"box centre or size outside [0, 1] (xc={xcyc[0]:.4f} yc={xcyc[1]:.4f} w={w:.4f} "
                f"h={h:.4f}); coordinates must be normalised",
            ))
            continue
        corners = (x0, y0, x1, y1)
        x0, y0, x1, y1 = (min(max(v, 0.0), 1.0) for v in corners)
        if x1 <= x0 or y1 <= y0:
            problems.append(Problem(
                "out-of-bounds", file, lineno, "box lies outside the image (nothing left after clipping)"
            ))
            continue
        if min(corners) < -tol or max(corners) > 1 + tol:
            problems.append(Problem(
                "clipped-box", file, lineno,
                "box extends outside the image ({:.4f},{:.4f})-({:.4f},{:.4f}); clipped to it, as "
                "ultralytics does".format(*corners),
                "warning",
            ))
        rows.add("box" if n == 5 else "polygon")
        box = ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)
        key = _box_key(int(c), box)
        if key in seen:
            problems.append(Problem(
                "duplicate-box", file, lineno, f"same box as line {seen[key]}", "warning"
            ))
            continue
        seen[key] = lineno
        classes.append(int(c))
        boxes.append(box)
    if len(rows) > 1:
        problems.append(Problem(
            "mixed-rows", file, None,
            "label file mixes box rows and polygon rows (ultralytics skips such an image); "
            "each row is read as a box",
            "warning",
        ))
    return (
        np.asarray(classes, dtype=np.int32),
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        problems,
    )


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def read_label_file(path: Path, nc: int, kpt: int = 0) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Read and parse one label file; see :func:`parse_label_text`."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not data
    except UnicodeDecodeError:
        empty = (np.zeros(0, np.int32), np.zeros((0, 4), np.float32))
        return (*empty, [Problem("unreadable-label", str(path), None, "label file is not UTF-8 text; its image is left out")])
    except OSError as exc:
        empty = (np.zeros(0, np.int32), np.zeros((0, 4), np.float32))
        return (*empty, [Problem("unreadable-label", str(path), None, f"cannot read: {exc.strerror or exc}; its image is left out")])
    return parse_label_text(text, nc, str(path), kpt)


def format_labels(classes: Sequence[int] | np.ndarray, boxes: Iterable[Sequence[float]]) -> str:
    """Format boxes as YOLO label text (``class xc yc w h`` with 6 decimals)."""
    lines = [
        f"{int(c)} " + " ".join(f"{float(v):.6f}" for v in b)
        for c, b in zip(classes, boxes, strict=True)
    ]
    return "".join(line + "\n" for line in lines)


def write_labels(path: Path, classes: Sequence[int] | np.ndarray, boxes: Iterable[Sequence[float]]) -> None:
    """Write a YOLO label file atomically."""
    from .._io import atomic_write_text

    atomic_write_text(path, format_labels(classes, boxes))
