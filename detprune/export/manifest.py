"""The pruning manifest (JSON + CSV) and the dataset fingerprint."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

from .._io import atomic_write_text, json_default
from ..errors import DetpruneError

MANIFEST_VERSION = 1
CSV_FIELDS = ("path", "kept", "rank", "score", "stratum", "classes", "boxes")


def fingerprint(names: Sequence[str], images: Sequence[Path], labels: Sequence[Path | None], root: Path) -> str:
    """Hash of a split: class names, image list (relative to root) with sizes, label contents.

    Timestamps are left out on purpose: a copied dataset keeps its fingerprint.

    Returns
    -------
    str
        ``"blake2b:"`` followed by 32 hex digits.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(list(names)).encode())
    for img, lb in zip(images, labels, strict=True):
        h.update(_rel(img, root).encode() + b"\0")
        try:
            h.update(str(img.stat().st_size).encode() + b"\0")
        except OSError:
            h.update(b"missing\0")
        if lb is not None:
            try:
                h.update(hashlib.blake2b(lb.read_bytes(), digest_size=16).digest())
            except OSError:
                h.update(b"label-missing")
        h.update(b"\n")
    return "blake2b:" + h.hexdigest()


def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def write_manifest(out: Path, manifest: dict, rows: Sequence[dict]) -> None:
    """Write ``manifest.json`` and ``manifest.csv`` (one row per image of the split) atomically."""
    atomic_write_text(out / "manifest.json",
                      json.dumps(manifest, indent=2, allow_nan=True, default=json_default) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
    atomic_write_text(out / "manifest.csv", buf.getvalue())


def read_manifest(path: Path) -> dict:
    """Read a ``manifest.json`` (or the folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DetpruneError(f"{p}: no such manifest") from exc
    except (OSError, ValueError) as exc:
        raise DetpruneError(f"{p}: not a readable detprune manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION or "selected" not in data:
        raise DetpruneError(f"{p}: not a detprune manifest (version {MANIFEST_VERSION})")
    _check_manifest(data, p)
    return data


def _check_manifest(data: dict, p: Path) -> None:
    """The fields export relies on, with their types (a hand-edited manifest gets one line)."""
    src = data.get("source")
    if not isinstance(src, dict) or not all(
        isinstance(src.get(k), str) for k in ("root", "split", "fingerprint")
    ) or not isinstance(src.get("yaml"), str | None):
        raise DetpruneError(f"{p}: 'source' must record the dataset's root, yaml, split and fingerprint")
    sel = data["selected"]
    if not isinstance(sel, list) or not sel:
        raise DetpruneError(f"{p}: 'selected' must be a non-empty list of the kept images")
    seen: set[str] = set()
    for i, entry in enumerate(sel):
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not path:
            raise DetpruneError(f"{p}: entry {i} of 'selected' has no image 'path'")
        if path in seen:
            raise DetpruneError(f"{p}: 'selected' lists {path} twice")
        seen.add(path)
    kept = data.get("kept")
    if isinstance(kept, int) and not isinstance(kept, bool) and kept != len(sel):
        raise DetpruneError(f"{p}: 'kept' is {kept} but 'selected' lists {len(sel)} images")
