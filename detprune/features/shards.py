"""Embedding shards: what distributed workers write, and the validated merge into the cache.

A distributed embedding run (:mod:`detprune.features.ray_engine`) has every
worker write its share of the images as a *shard* in one run folder (on storage
every node and the driver can reach):

- ``<name>.npy`` -- ``float32`` vectors of shape ``(rows, d)``;
- ``<name>.json`` -- written last, atomically, so its presence commits the
  shard: format and version, the embedding identity (weights key, model,
  preprocessing; see :func:`detprune.features.embed.embedding_identity`), the
  cache keys, file sizes and ``mtime_ns`` of the ``rows`` images, the images
  that failed to decode (key -> size, mtime, reason), the vector width and the
  CRC-32 of the vector bytes.

:func:`merge_shards` validates the set of shards against what was asked for
before anything reaches the cache, and raises :class:`ShardError` (one line,
naming the shard) on:

- a shard that was reported but is missing or has no committed header;
- a shard computed with another model or preprocessing (identity mismatch);
- a damaged shard (vector file shape, dtype or CRC-32 wrong);
- an image present in two shards (a duplicate shard);
- an image in a shard that was not asked for, or an asked-for image in no
  shard (a missing shard);
- a count mismatch between vectors plus failures and the images asked for.

The merged vectors are assembled in a memory-mapped file (chunked; resident
memory stays bounded) and :func:`store_merged` adds them to the normal
:class:`~detprune.features.cache.EmbeddingCache` in one segment.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes
from ..errors import CacheError
from .cache import _crc32_array, store_id

__all__ = [
    "SHARD_FORMAT",
    "MergedShards",
    "ShardError",
    "list_shards",
    "merge_shards",
    "store_merged",
    "write_shard",
]

SHARD_FORMAT = "detprune-embedding-shard"
SHARD_VERSION = 1


class ShardError(CacheError):
    """A set of embedding shards is incomplete, inconsistent or damaged."""


def _crc(array: np.ndarray) -> str:
    """CRC-32 of the array bytes (also for an empty array)."""
    return _crc32_array(array) if len(array) else f"{0:08x}"


def _check_name(name: str) -> str:
    if not name or Path(name).name != name or name.startswith("."):
        raise ShardError(f"bad shard name {name!r}")
    return name


def write_shard(
    folder: str | os.PathLike,
    name: str,
    *,
    identity: Mapping[str, Any],
    keys: Sequence[str],
    sizes: Sequence[int] | np.ndarray,
    mtimes: Sequence[int] | np.ndarray,
    vectors: np.ndarray,
    failed: Mapping[str, tuple[int, int, str]] | None = None,
    dims: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Write one shard atomically (vectors first, then the header that commits them).

    Parameters
    ----------
    folder : str or path-like
        The run's shard folder (created if missing).
    name : str
        Shard name (a plain file stem), e.g. ``"shard-000000000-000001023"``.
    identity : mapping
        Embedding identity of the worker's model.
    keys : sequence of str, length m
        Cache keys of the embedded images.
    sizes, mtimes : array-like of int, shape (m,)
        File size and ``st_mtime_ns`` of each image (as the cache keys them).
    vectors : numpy.ndarray of shape (m, d), float32
    failed : mapping of str to (int, int, str), optional
        Images that could not be decoded: key -> (size, mtime_ns, reason).
    dims : sequence of int, optional
        Width of each scale's block (``sum(dims) == d``).

    Returns
    -------
    dict
        The header as written.
    """
    _check_name(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    m = len(keys)
    if vectors.ndim != 2 or vectors.shape[0] != m:
        raise ValueError(f"vectors must have shape ({m}, d), got {vectors.shape}")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, vectors, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / f"{name}.npy")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    header = {
        "format": SHARD_FORMAT,
        "version": SHARD_VERSION,
        "identity": dict(identity),
        "store": store_id(identity),
        "rows": m,
        "dim": int(vectors.shape[1]),
        "dims": [int(c) for c in dims] if dims is not None else None,
        "crc32": _crc(vectors),
        "keys": [str(k) for k in keys],
        "sizes": [int(s) for s in sizes],
        "mtimes": [int(t) for t in mtimes],
        "failed": {str(k): [int(v[0]), int(v[1]), str(v[2])] for k, v in (failed or {}).items()},
    }
    atomic_write_bytes(folder / f"{name}.json", json.dumps(header, separators=(",", ":")).encode())
    return header


def list_shards(folder: str | os.PathLike) -> list[str]:
    """Names of the committed shards (those with a header) in ``folder``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.json") if not p.name.startswith("."))


@dataclass
class MergedShards:
    """The validated content of a set of shards.

    Attributes
    ----------
    keys : list of str, length m
        Embedded images, in the order of the ``expected`` keys.
    sizes, mtimes : numpy.ndarray of shape (m,), int64
    vectors : numpy.ndarray of shape (m, d), float32
        Memory-mapped (``merged.npy`` in the shard folder) unless ``m == 0``.
    failed : dict of str to (int, int, str)
        Images that could not be decoded.
    shards : list of str
        The shards merged.
    dim : int
    dims : tuple of int or None
        Per-scale widths, as the shards recorded them.
    """

    keys: list[str]
    sizes: np.ndarray
    mtimes: np.ndarray
    vectors: np.ndarray
    failed: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    dim: int = 0
    dims: tuple[int, ...] | None = None


def _read_header(folder: Path, name: str) -> dict[str, Any]:
    path = folder / f"{name}.json"
    if not path.is_file() or not (folder / f"{name}.npy").is_file():
        raise ShardError(
            f"shard {name} is missing from {folder} (a worker's output was lost); embed again"
        )
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ShardError(f"shard {name} has an unreadable header ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != SHARD_FORMAT:
        raise ShardError(f"shard {name} is not a detprune embedding shard")
    if header.get("version") != SHARD_VERSION:
        raise ShardError(f"shard {name} has unsupported version {header.get('version')!r}")
    m = header.get("rows")
    if not all(len(header.get(c, ())) == m for c in ("keys", "sizes", "mtimes")):
        raise ShardError(f"shard {name} is damaged (its header columns disagree with rows={m})")
    return header


def _open_vectors(folder: Path, name: str, header: dict[str, Any]) -> np.ndarray:
    try:
        array = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ShardError(f"shard {name} is damaged ({exc})") from exc
    shape = (int(header["rows"]), int(header["dim"]))
    if array.dtype != np.float32 or array.shape != shape:
        raise ShardError(
            f"shard {name} is damaged (vectors {array.shape} {array.dtype}, header says "
            f"{shape} float32)"
        )
    if _crc(array) != header.get("crc32"):
        raise ShardError(f"shard {name} is damaged (vector checksum mismatch)")
    return array


def merge_shards(
    folder: str | os.PathLike,
    *,
    identity: Mapping[str, Any],
    expected: Sequence[str],
    shards: Sequence[str] | None = None,
) -> MergedShards:
    """Validate a run's shards against the images asked for and assemble their vectors.

    Parameters
    ----------
    folder : str or path-like
        The run's shard folder.
    identity : mapping
        The embedding identity every shard must carry.
    expected : sequence of str, length n
        Cache keys of every image the run was asked to embed; each must be in
        exactly one shard (as a vector or a failure).
    shards : sequence of str, optional
        The shards the workers reported; default every committed shard in
        ``folder``. With the list, a reported shard that is missing is named.

    Returns
    -------
    MergedShards

    Raises
    ------
    ShardError
        See the module docstring.
    """
    folder = Path(folder)
    names = list_shards(folder) if shards is None else [_check_name(str(s)) for s in shards]
    dup_names = {s for s, c in Counter(names).items() if c > 1}
    if dup_names:
        raise ShardError(f"shard {sorted(dup_names)[0]} was reported twice (duplicate shard)")
    want_store = store_id(identity)
    want_identity = json.loads(json.dumps(dict(identity)))
    position = {str(k): i for i, k in enumerate(expected)}
    if len(position) != len(expected):
        raise ShardError("the expected image keys are not unique")
    owner: dict[str, str] = {}
    headers: list[tuple[str, dict[str, Any], np.ndarray]] = []
    failed: dict[str, tuple[int, int, str]] = {}
    dim: int | None = None
    dims: tuple[int, ...] | None = None
    for name in names:
        header = _read_header(folder, name)
        if header.get("identity") != want_identity:
            got = header.get("identity", {})
            raise ShardError(
                f"shard {name} was computed with model {got.get('weights')!r} "
                f"(store {header.get('store')}), not {want_identity.get('weights')!r} "
                f"(store {want_store}); embed again with the same weights on every node"
            )
        if dims is None and header.get("dims"):
            dims = tuple(int(c) for c in header["dims"])
        if dim is None:
            dim = int(header["dim"])
        elif int(header["dim"]) != dim and int(header["rows"]):
            raise ShardError(f"shard {name} has vector width {header['dim']}, others {dim}")
        for key in [*header["keys"], *header["failed"]]:
            if key in owner:
                raise ShardError(
                    f"image {key!r} is in shard {owner[key]} and in shard {name} (duplicate shard)"
                )
            if key not in position:
                raise ShardError(f"shard {name} holds image {key!r}, which was not asked for")
            owner[key] = name
        for key, (size, mtime, reason) in header["failed"].items():
            failed[key] = (int(size), int(mtime), str(reason))
        headers.append((name, header, _open_vectors(folder, name, header)))
    missing = [k for k in position if k not in owner]
    if missing:
        raise ShardError(
            f"{len(missing)} of {len(position)} images are in no shard (first: {missing[0]!r}); "
            f"a shard is missing from {folder}"
        )
    n_rows = sum(int(h["rows"]) for _, h, _ in headers)
    if n_rows + len(failed) != len(position):  # pragma: no cover - implied by the checks above
        raise ShardError(
            f"shards hold {n_rows} vectors and {len(failed)} failures for {len(position)} images"
        )
    d = dim or 0
    rank = np.full(len(position), -1, np.int64)
    vec_pos = sorted(position[k] for _, h, _ in headers for k in h["keys"])
    rank[vec_pos] = np.arange(len(vec_pos))
    keys = [str(expected[i]) for i in vec_pos]
    sizes = np.zeros(n_rows, np.int64)
    mtimes = np.zeros(n_rows, np.int64)
    if n_rows:
        out = np.lib.format.open_memmap(
            folder / "merged.npy", mode="w+", dtype=np.float32, shape=(n_rows, d)
        )
    else:
        out = np.zeros((0, d), np.float32)
    for _, header, array in headers:
        if not header["rows"]:
            continue
        rows = rank[[position[k] for k in header["keys"]]]
        sizes[rows] = header["sizes"]
        mtimes[rows] = header["mtimes"]
        order = np.argsort(rows, kind="stable")
        out[rows[order]] = array[order]
    if isinstance(out, np.memmap):
        out.flush()
    return MergedShards(keys, sizes, mtimes, out, failed, names, d, dims)


def store_merged(store: Any, merged: MergedShards) -> None:
    """Add merged shards to an embedding cache store (one new segment, atomically).

    Parameters
    ----------
    store : EmbeddingCache
        Opened with the same identity the shards were validated against.
    merged : MergedShards
    """
    if merged.dims and not store.meta.get("dims"):
        store.meta["dims"] = list(merged.dims)
    store.add(merged.keys, merged.sizes, merged.mtimes, merged.vectors, merged.failed)
