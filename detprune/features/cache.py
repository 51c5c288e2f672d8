"""On-disk embedding cache: keyed, memory-mapped, checksummed, written atomically.

Layout
------
``<cache_dir>/embeddings/<store id>/`` holds one store per embedding identity
(weights key, model, imgsz, layers, normalisation, preprocessing version; the
store id is a hash of it):

- ``index.json`` — the identity, the vector width, the list of segments (file,
  row count, CRC-32 of the array bytes) and a columnar table of images:
  cache key (relative path), segment, row, file size and ``mtime_ns``; images
  that failed to decode are remembered with their reason, so they are not
  retried while the file is unchanged. The table carries its own CRC-32.
- ``seg-<id>.npy`` — immutable ``float32`` arrays of shape ``(rows, d)``, opened
  with ``numpy.load(mmap_mode="r")``. float32 keeps exactly what was computed
  (1.8 KB per image at d = 448); halving that with float16 was not worth a
  precision loss every later distance would carry.

An image is a hit when its key is in the table with the same size and
``mtime_ns``. New vectors go to a new segment; the segment is written to a
temporary file and ``os.replace``\\ d into place *before* the index that refers to
it is replaced the same way, so a crash leaves either the old or the new
store, never a mix. Writers hold an advisory lock (``fcntl.flock``) while
they merge their rows into the index found on disk, so concurrent runs add up
instead of overwriting each other. When segments pile up (more than
:data:`MAX_SEGMENTS`) or more than half of the rows are superseded, the store
is compacted into one segment (streamed, chunk by chunk).

Damage — unparsable or inconsistent ``index.json``, a table CRC mismatch, a
missing or truncated segment, a segment CRC mismatch, rows out of range — is
detected when the store is opened, reported with a :class:`CacheWarning` and a
logging warning, and the damaged part is dropped (its images are embedded
again). Damaged data is never returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import uuid
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import _umask
from .._io import atomic_write_bytes as _atomic_write_bytes

__all__ = ["MAX_SEGMENTS", "CacheWarning", "EmbeddingCache", "Lookup"]

logger = logging.getLogger("detprune.features")

FORMAT = "detprune-embedding-cache"
FORMAT_VERSION = 1
#: Compact the store when it has more segments than this.
MAX_SEGMENTS = 16
_CHUNK_ROWS = 65536


class CacheWarning(UserWarning):
    """A cache was found damaged or unusable; it is being rebuilt or bypassed."""


def _warn(message: str) -> None:
    # a warning only: with no logging handler configured, a logger.warning as well would be
    # printed a second time (logging's last-resort handler)
    warnings.warn(message, CacheWarning, stacklevel=3)


def _crc32_array(array: np.ndarray) -> str:
    crc = 0
    flat = array.reshape(len(array), -1) if array.ndim > 1 else array
    for start in range(0, len(flat), _CHUNK_ROWS):
        block = np.ascontiguousarray(flat[start : start + _CHUNK_ROWS])
        crc = zlib.crc32(memoryview(block).cast("B"), crc)
    return f"{crc:08x}"


def _crc32_json(obj: Any) -> str:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return f"{zlib.crc32(data):08x}"


def store_id(identity: Mapping[str, Any]) -> str:
    """Short hash naming the store of an embedding identity."""
    data = json.dumps(dict(identity), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:16]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``folder/.lock`` (no-op where flock is unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: single-writer assumption
        yield
        return
    try:
        fh, mode = open(folder / ".lock", "a+b"), fcntl.LOCK_EX
    except OSError:  # a read-only store (a shared or archived cache): read it under a shared lock
        try:
            fh, mode = open(folder / ".lock", "rb"), fcntl.LOCK_SH
        except OSError:
            yield
            return
    with fh:
        fcntl.flock(fh.fileno(), mode)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass
class _Segment:
    file: str
    rows: int
    checksum: str
    array: np.ndarray | None = None  # memory map, opened on verification


@dataclass(frozen=True)
class Lookup:
    """Result of :meth:`EmbeddingCache.lookup` for a list of images.

    Attributes
    ----------
    hit : numpy.ndarray of shape (n,), bool
        Vector available in the cache.
    failed : dict of int to str
        Position -> reason, for images remembered as undecodable (unchanged since).
    """

    hit: np.ndarray
    failed: dict[int, str]
    _segment: np.ndarray
    _row: np.ndarray

    @property
    def miss(self) -> np.ndarray:
        """Positions to compute: neither a hit nor a remembered failure."""
        known = self.hit.copy()
        if self.failed:
            known[list(self.failed)] = True
        return np.flatnonzero(~known)


class EmbeddingCache:
    """One embedding store (see the module docstring).

    Parameters
    ----------
    cache_dir : str or path-like
        Root cache folder (e.g. ``<dataset>/.detprune/cache``); the store lives
        in ``cache_dir/embeddings/<store id>``.
    identity : mapping
        JSON-serialisable description of how vectors are computed; any change
        selects another store.
    dim : int, optional
        Vector width, when known (checked against the stored one).

    Notes
    -----
    Opening verifies the whole store (index consistency and every segment's
    CRC-32), so damaged data is found before it is used. Every method that
    writes is atomic and takes the store's lock.
    """

    def __init__(
        self, cache_dir: str | os.PathLike, identity: Mapping[str, Any], dim: int | None = None
    ) -> None:
        self.identity = dict(identity)
        self.root = Path(cache_dir) / "embeddings" / store_id(self.identity)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dim: int | None = dim
        self._segments: list[_Segment] = []
        self._keys: list[str] = []
        self._pos: dict[str, int] = {}
        self._seg = np.zeros(0, np.int32)
        self._row = np.zeros(0, np.int64)
        self._size = np.zeros(0, np.int64)
        self._mtime = np.zeros(0, np.int64)
        self._failed: dict[str, tuple[int, int, str]] = {}
        self._disk_crc: str | None = None
        #: free-form JSON metadata kept in the index (e.g. per-scale widths)
        self.meta: dict[str, Any] = {}
        with _locked(self.root):
            self._load()

    # ------------------------------------------------------------------ reading
    @property
    def index_path(self) -> Path:
        """The store's ``index.json``."""
        return self.root / "index.json"

    def __len__(self) -> int:
        return len(self._keys)

    def _reset(self) -> None:
        self._segments = []
        self._keys = []
        self._pos = {}
        self._seg = np.zeros(0, np.int32)
        self._row = np.zeros(0, np.int64)
        self._size = np.zeros(0, np.int64)
        self._mtime = np.zeros(0, np.int64)
        self._failed = {}
        self._disk_crc = None

    def _load(self) -> None:
        """Read and verify the store; drop what is damaged (with a warning)."""
        self._reset()
        if not self.index_path.exists():
            self._sweep(set())
            return
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
            self._parse(index)
        except Exception as exc:
            _warn(f"embedding cache {self.root} is damaged ({_reason(exc)}); rebuilding it")
            self._reset()
            self._discard_all()
            return
        self._verify_segments()
        self._sweep({s.file for s in self._segments})

    def _parse(self, index: Any) -> None:
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise ValueError("not a detprune embedding cache index")
        if index.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported cache version {index.get('version')!r}")
        if index.get("identity") != json.loads(json.dumps(self.identity)):
            raise ValueError("index identity does not match its folder")
        table = index["table"]
        if _crc32_json(table) != index.get("table_crc32"):
            raise ValueError("index table checksum mismatch")
        dim = int(index["dim"])
        if self.dim is not None and dim != self.dim:
            raise ValueError(f"vector width {dim} != expected {self.dim}")
        self.dim = dim
        segments = [
            _Segment(str(s["file"]), int(s["rows"]), str(s["checksum"])) for s in index["segments"]
        ]
        for s in segments:
            if Path(s.file).name != s.file or not s.file.endswith(".npy"):
                raise ValueError(f"bad segment name {s.file!r}")
        keys = [str(k) for k in table["keys"]]
        seg = np.asarray(table["segment"], dtype=np.int32)
        row = np.asarray(table["row"], dtype=np.int64)
        size = np.asarray(table["size"], dtype=np.int64)
        mtime = np.asarray(table["mtime_ns"], dtype=np.int64)
        n = len(keys)
        if not (len(seg) == len(row) == len(size) == len(mtime) == n):
            raise ValueError("index columns have different lengths")
        if len(set(keys)) != n:
            raise ValueError("duplicate keys in index")
        if n:
            if seg.min() < 0 or seg.max() >= len(segments):
                raise ValueError("index refers to a missing segment")
            limits = np.array([s.rows for s in segments], dtype=np.int64)
            if row.min() < 0 or np.any(row >= limits[seg]):
                raise ValueError("index rows out of range")
        failed = {}
        for key, value in dict(table.get("failed", {})).items():
            size_f, mtime_f, reason = value
            failed[str(key)] = (int(size_f), int(mtime_f), str(reason))
        self._segments, self._keys = segments, keys
        self._pos = {k: i for i, k in enumerate(keys)}
        self._seg, self._row, self._size, self._mtime = seg, row, size, mtime
        self._failed = failed
        self._disk_crc = index.get("table_crc32")
        meta = index.get("meta", {})
        self.meta = dict(meta) if isinstance(meta, dict) else {}

    def _verify_segments(self) -> None:
        bad: list[int] = []
        for i, s in enumerate(self._segments):
            try:
                array = np.load(self.root / s.file, mmap_mode="r", allow_pickle=False)
                if array.dtype != np.float32 or array.shape != (s.rows, self.dim):
                    raise ValueError(
                        f"shape {array.shape} {array.dtype} != ({s.rows}, {self.dim}) float32"
                    )
                if _crc32_array(array) != s.checksum:
                    raise ValueError("checksum mismatch")
                s.array = array
            except Exception as exc:
                why = "cannot be read" if isinstance(exc, PermissionError) else "is damaged"
                _warn(
                    f"embedding cache segment {self.root / s.file} {why} ({_reason(exc)}); "
                    "its images will be embedded again"
                )
                bad.append(i)
        if bad:
            self._drop_segments(bad)

    def _drop_segments(self, bad: Sequence[int]) -> None:
        """Forget segments (and their rows); renumber the rest; persist."""
        keep_seg = [i for i in range(len(self._segments)) if i not in set(bad)]
        remap = np.full(len(self._segments), -1, np.int32)
        remap[keep_seg] = np.arange(len(keep_seg), dtype=np.int32)
        keep = remap[self._seg] >= 0 if len(self._seg) else np.zeros(0, bool)
        for i in bad:
            with contextlib.suppress(OSError):
                (self.root / self._segments[i].file).unlink()
        self._segments = [self._segments[i] for i in keep_seg]
        self._keys = [k for k, ok in zip(self._keys, keep, strict=True) if ok]
        self._pos = {k: i for i, k in enumerate(self._keys)}
        self._seg = remap[self._seg[keep]]
        self._row, self._size, self._mtime = self._row[keep], self._size[keep], self._mtime[keep]
        self._write_index()

    def _discard_all(self) -> None:
        for p in self.root.iterdir():
            if p.name != ".lock":
                with contextlib.suppress(OSError):
                    p.unlink()

    def _sweep(self, referenced: set[str]) -> None:
        """Remove segment files no index refers to (left by a crash)."""
        for p in self.root.glob("seg-*.npy"):
            if p.name not in referenced:
                with contextlib.suppress(OSError):
                    p.unlink()
        for p in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()

    def lookup(self, keys: Sequence[str], sizes: np.ndarray, mtimes: np.ndarray) -> Lookup:
        """Find cached vectors for images.

        Parameters
        ----------
        keys : sequence of str, length n
            Cache keys (relative paths).
        sizes, mtimes : numpy.ndarray of shape (n,), int64
            Current file size and ``st_mtime_ns``.

        Returns
        -------
        Lookup
        """
        n = len(keys)
        hit = np.zeros(n, bool)
        seg = np.full(n, -1, np.int32)
        row = np.full(n, -1, np.int64)
        failed: dict[int, str] = {}
        for i, key in enumerate(keys):
            j = self._pos.get(key)
            if j is not None:
                if self._size[j] == sizes[i] and self._mtime[j] == mtimes[i]:
                    hit[i], seg[i], row[i] = True, self._seg[j], self._row[j]
                continue
            f = self._failed.get(key)
            if f is not None and f[0] == sizes[i] and f[1] == mtimes[i]:
                failed[i] = f[2]
        return Lookup(hit, failed, seg, row)

    def read_into(self, found: Lookup, out: np.ndarray) -> None:
        """Copy the hit vectors of ``found`` into ``out[positions]``.

        Parameters
        ----------
        found : Lookup
            From :meth:`lookup` on this store.
        out : numpy.ndarray of shape (n, d), float32
            Output array; only hit rows are written.
        """
        positions = np.flatnonzero(found.hit)
        for s_idx in np.unique(found._segment[positions]):
            array = self._segments[int(s_idx)].array
            assert array is not None
            these = positions[found._segment[positions] == s_idx]
            for start in range(0, len(these), _CHUNK_ROWS):
                chunk = these[start : start + _CHUNK_ROWS]
                rows = found._row[chunk]
                order = np.argsort(rows, kind="stable")  # sequential reads from the map
                out[chunk[order]] = array[rows[order]]

    # ------------------------------------------------------------------ writing
    def add(
        self,
        keys: Sequence[str],
        sizes: np.ndarray,
        mtimes: np.ndarray,
        vectors: np.ndarray,
        failures: Mapping[str, tuple[int, int, str]] | None = None,
    ) -> None:
        """Store new vectors (and failures), atomically.

        Parameters
        ----------
        keys : sequence of str, length m
        sizes, mtimes : numpy.ndarray of shape (m,), int64
        vectors : numpy.ndarray of shape (m, d), float32
            May be any array-like indexable by row ranges (e.g. a view).
        failures : mapping of str to (size, mtime_ns, reason), optional
            Images that could not be decoded.
        """
        failures = dict(failures or {})
        m = len(keys)
        if not m and not failures:
            return
        if m:
            vectors = np.asarray(vectors)
            if vectors.ndim != 2 or len(vectors) != m:
                raise ValueError(f"vectors must have shape ({m}, d), got {vectors.shape}")
            if self.dim is None:
                self.dim = int(vectors.shape[1])
            elif vectors.shape[1] != self.dim:
                raise ValueError(f"vectors have width {vectors.shape[1]}, the store {self.dim}")
        with _locked(self.root):
            meta = dict(self.meta)
            self._refresh()
            self.meta = {**self.meta, **meta}
            if m:
                segment = self._write_segment(vectors)
                self._segments.append(segment)
                s_idx = len(self._segments) - 1
                self._merge(
                    list(keys),
                    np.full(m, s_idx, np.int32),
                    np.arange(m, dtype=np.int64),
                    np.asarray(sizes, np.int64),
                    np.asarray(mtimes, np.int64),
                )
            for key, value in failures.items():
                self._failed[key] = value
                self._remove_keys({key})
            self._write_index()
            if self._needs_compaction():
                self._compact()

    def _refresh(self) -> None:
        """Re-read the index from disk (another process may have written) keeping verified maps."""
        if not self.index_path.exists():
            if self._segments:
                self._reset()
            return
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
        except Exception:
            index = None
        if (
            isinstance(index, dict)
            and index.get("table_crc32") == self._disk_crc
            and [s.get("file") for s in index.get("segments", [])]
            == [s.file for s in self._segments]
        ):
            return
        self._load()

    def _write_segment(self, vectors: np.ndarray) -> _Segment:
        name = f"seg-{uuid.uuid4().hex[:16]}.npy"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from a team's other users
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=vectors.shape)
            for start in range(0, len(vectors), _CHUNK_ROWS):
                out[start : start + _CHUNK_ROWS] = vectors[start : start + _CHUNK_ROWS]
            out.flush()
            checksum = _crc32_array(out)
            del out
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.root / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        array = np.load(self.root / name, mmap_mode="r", allow_pickle=False)
        return _Segment(name, len(vectors), checksum, array)

    def _remove_keys(self, keys: set[str]) -> None:
        idx = [self._pos[k] for k in keys if k in self._pos]
        if not idx:
            return
        keep = np.ones(len(self._keys), bool)
        keep[idx] = False
        self._keys = [k for k, ok in zip(self._keys, keep, strict=True) if ok]
        self._pos = {k: i for i, k in enumerate(self._keys)}
        self._seg, self._row = self._seg[keep], self._row[keep]
        self._size, self._mtime = self._size[keep], self._mtime[keep]

    def _merge(
        self, keys: list[str], seg: np.ndarray, row: np.ndarray, size: np.ndarray, mtime: np.ndarray
    ) -> None:
        # the last occurrence of a key wins (later rows of one batch, or a newer run)
        last = {k: i for i, k in enumerate(keys)}
        take = np.fromiter(sorted(last.values()), dtype=np.int64, count=len(last))
        keys = [keys[i] for i in take]
        seg, row, size, mtime = seg[take], row[take], size[take], mtime[take]
        self._remove_keys(set(keys))
        for k in keys:
            self._failed.pop(k, None)
        start = len(self._keys)
        self._keys.extend(keys)
        self._pos.update({k: start + i for i, k in enumerate(keys)})
        self._seg = np.concatenate([self._seg, seg])
        self._row = np.concatenate([self._row, row])
        self._size = np.concatenate([self._size, size])
        self._mtime = np.concatenate([self._mtime, mtime])

    def _write_index(self) -> None:
        table = {
            "keys": self._keys,
            "segment": self._seg.tolist(),
            "row": self._row.tolist(),
            "size": self._size.tolist(),
            "mtime_ns": self._mtime.tolist(),
            "failed": {k: list(v) for k, v in self._failed.items()},
        }
        crc = _crc32_json(table)
        index = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "identity": self.identity,
            "dim": self.dim if self.dim is not None else 0,
            "dtype": "float32",
            "meta": self.meta,
            "segments": [
                {"file": s.file, "rows": s.rows, "checksum": s.checksum} for s in self._segments
            ],
            "table_crc32": crc,
            "table": table,
        }
        _atomic_write_bytes(self.index_path, json.dumps(index, separators=(",", ":")).encode())
        self._disk_crc = crc

    def _needs_compaction(self) -> bool:
        if len(self._segments) > MAX_SEGMENTS:
            return True
        total = sum(s.rows for s in self._segments)
        return total > 1024 and len(self._keys) < total // 2

    def _compact(self) -> None:
        """Rewrite all live rows into one segment (streamed), then drop the old segments."""
        n = len(self._keys)
        order = np.lexsort((self._row, self._seg))
        name = f"seg-{uuid.uuid4().hex[:16]}.npy"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.root)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from a team's other users
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(n, self.dim or 0)
            )
            for start in range(0, n, _CHUNK_ROWS):
                chunk = order[start : start + _CHUNK_ROWS]
                seg_of = self._seg[chunk]
                for s_idx in np.unique(seg_of):
                    mask = seg_of == s_idx
                    array = self._segments[int(s_idx)].array
                    assert array is not None
                    out[start + np.flatnonzero(mask)] = array[self._row[chunk[mask]]]
            out.flush()
            checksum = _crc32_array(out)
            del out
            os.replace(tmp, self.root / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        old = [s.file for s in self._segments]
        new_row = np.empty(n, np.int64)
        new_row[order] = np.arange(n, dtype=np.int64)
        array = np.load(self.root / name, mmap_mode="r", allow_pickle=False)
        self._segments = [_Segment(name, n, checksum, array)]
        self._seg = np.zeros(n, np.int32)
        self._row = new_row
        self._write_index()
        for f in old:
            with contextlib.suppress(OSError):
                (self.root / f).unlink()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."
