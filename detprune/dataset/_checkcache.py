"""A persistent cache of the per-file dataset checks (label parse, image probe, digest).

Every command reads the whole dataset first: each label file is parsed and each
image's header is read (0.1-0.3 ms per image: about 5 s per 20 000 images, minutes
per million). The results only depend on the files' bytes, so they are kept per
split in ``<detprune home>/checks/<key>.npz`` and reused for every file whose
``stat`` (size, ``mtime_ns`` and ``ctime_ns`` of the image and of its label file,
or the label's absence) is unchanged. Like git's index, an entry is trusted only
when both files were last changed at least :data:`RACY_NS` before the entry was
made: a file rewritten within the file system's timestamp granularity of a check,
keeping its size, would otherwise go unnoticed.

The store's key holds the dataset root, the split, the number of classes, whether
images were probed, and a digest of the checking code itself, so an upgrade or a
changed parser never reads an old result. Nothing here touches the dataset: the
store lives in detprune's own cache folder (``$DETPRUNE_HOME``), is written
atomically, and a damaged or unreadable store is ignored (and rewritten).
``DETPRUNE_CHECK_CACHE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat as stat_mod
import time
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .records import Problem

FORMAT = "detprune-check-cache"
VERSION = 2
#: splits with fewer images are checked afresh (fast anyway; keeps the folder small)
MIN_IMAGES = 512
#: an entry is trusted only for files last modified this long before it was made
RACY_NS = 2_000_000_000
#: store files kept (least recently used beyond this are deleted)
MAX_STORES = 64
#: the modules whose code decides a check's result
_CODE = ("yolo.py", "checks.py", "load.py", "records.py", "../_jpeg.py", "_checkcache.py")

#: the stat fields recorded per image: size, mtime and ctime (ns) of the image, then of
#: its label file (-1, 0, 0 without one). ctime changes with any write, rename or chmod
#: and cannot be set back, so a tool that restores an old mtime is noticed too.
Stat = tuple[int, int, int, int, int, int]
_FIELDS = 6


def enabled() -> bool:
    """False when ``$DETPRUNE_CHECK_CACHE`` is ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get("DETPRUNE_CHECK_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


@lru_cache(maxsize=1)
def _code_digest() -> str:
    h = hashlib.sha256(f"{FORMAT}/{VERSION}".encode())
    here = Path(__file__).resolve().parent
    for name in _CODE:
        try:
            h.update((here / name).read_bytes())
        except OSError:  # an installation without sources: never reuse across versions
            from .._version import __version__

            h.update(f"missing {name} {__version__}".encode())
    return h.hexdigest()


def file_stat(image: Path, label: Path) -> Stat | None:
    """The recorded stat of an image and its label file, or None when uncacheable."""
    try:
        si = os.stat(image)
    except OSError:
        return None
    if not stat_mod.S_ISREG(si.st_mode):
        return None
    try:
        sl = os.stat(label)
    except FileNotFoundError:
        return (si.st_size, si.st_mtime_ns, si.st_ctime_ns, -1, 0, 0)
    except OSError:  # unreadable label: checked afresh every time
        return None
    if not stat_mod.S_ISREG(sl.st_mode):  # a folder named like a label: no label
        return (si.st_size, si.st_mtime_ns, si.st_ctime_ns, -1, 0, 0)
    return (si.st_size, si.st_mtime_ns, si.st_ctime_ns, sl.st_size, sl.st_mtime_ns, sl.st_ctime_ns)


class CheckStore:
    """The cached check results of one split.

    Parameters
    ----------
    root : Path
        Dataset root.
    split : str
        Split name.
    nc : int
        Number of classes the labels were checked against.
    check_images : bool
        Whether images were probed.
    folder : Path, optional
        Where store files live (default ``detprune_home() / "checks"``).
    kpt : int
        Keypoint fields of a pose row the labels were read with (0: none).
    """

    def __init__(
        self, root: Path, split: str, nc: int, check_images: bool, folder: Path | None = None,
        kpt: int = 0,
    ) -> None:
        if folder is None:
            from .._offline import detprune_home

            folder = detprune_home() / "checks"
        key = {
            "root": str(Path(root).resolve()),
            "split": split,
            "nc": int(nc),
            "kpt": int(kpt),
            "check_images": bool(check_images),
            "code": _code_digest(),
        }
        ident = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        self.key = key
        self.folder = Path(folder)
        self.path = self.folder / f"{ident}.npz"
        self.check_images = check_images
        #: the store as read: arrays, looked up lazily by row (no per-image objects)
        self._old: dict[str, Any] | None = None
        self._index: dict[str, int] = {}
        #: results recorded in this run, by image path
        self._new: dict[str, tuple[Stat, int, Any, Any]] = {}
        self._new_digests: dict[str, bytes] = {}
        #: images whose entry was found valid, or recorded, in this run
        self._verified: set[str] = set()
        #: the images of the split, in order (``keep_only``); None: all entries
        self._live: list[str] | None = None
        self._changed = False
        self._load()

    # ------------------------------------------------------------------ reading
    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != FORMAT or meta.get("key") != self.key:
                    return
                blob = z["paths"].tobytes().decode("utf-8", "surrogateescape")
                old = {k: z[k] for k in ("stat", "dims", "offsets", "classes", "boxes", "digest", "has_digest")}
                problems = json.loads(z["problems"].tobytes().decode("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, EOFError):
            self._changed = True  # damaged: rewritten on save
            return
        paths = blob.split("\0") if blob else []
        n = len(paths)
        if not (old["stat"].shape == (n, _FIELDS + 1) and old["dims"].shape == (n, 2)
                and old["offsets"].shape == (n + 1,) and old["digest"].shape == (n, 16)
                and old["has_digest"].shape == (n,)
                and old["boxes"].shape == (old["classes"].shape[0], 4)
                and int(old["offsets"][-1]) == old["classes"].shape[0]):
            self._changed = True
            return
        label_p: dict[int, list[Problem]] = {}
        probe_p: dict[int, Problem] = {}
        try:
            for i, where, kind, file, line, message, severity in problems:
                p = Problem(kind, file, line, message, severity)
                if where == "probe":
                    probe_p[int(i)] = p
                else:
                    label_p.setdefault(int(i), []).append(p)
        except (TypeError, ValueError):
            self._changed = True
            return
        old["paths"] = paths
        old["label_problems"] = label_p
        old["probe_problems"] = probe_p
        self._old = old
        self._index = {p: i for i, p in enumerate(paths)}

    def _old_entry(self, i: int) -> tuple[Stat, int, Any, Any]:
        """Row ``i`` of the store as read, as :meth:`record` takes it."""
        old = self._old
        assert old is not None
        s = old["stat"][i].tolist()
        a, b = old["offsets"][i : i + 2].tolist()
        label = (s[3] >= 0, old["classes"][a:b], old["boxes"][a:b], old["label_problems"].get(i, []))
        probe = None
        if self.check_images:
            w, h = old["dims"][i].tolist()
            probe = (w, h, old["probe_problems"].get(i))
        return tuple(s[:_FIELDS]), s[_FIELDS], label, probe  # type: ignore[return-value]

    def lookup(self, image: Path, stat: Stat | None) -> tuple[Any, Any] | None:
        """The cached ``(label result, probe)`` of an image whose stat is ``stat``, or None.

        The label result is ``(exists, classes, boxes, problems)`` as the loader's
        label check returns it; the probe is ``(width, height, problem)`` or None when
        images are not probed.
        """
        if stat is None:
            return None
        key = str(image)
        entry = self._new.get(key)
        if entry is None:
            i = self._index.get(key)
            if i is None:
                return None
            entry = self._old_entry(i)
        s, checked, label, probe = entry
        if s != stat or _racy(s, checked):
            return None
        self._verified.add(key)
        exists, classes, boxes, problems = label
        return (exists, classes, boxes, list(problems)), probe

    def digest(self, image: Path) -> bytes | None:
        """The cached content digest of an image whose entry was found valid or recorded
        in this run."""
        key = str(image)
        return self._stored_digest(key) if key in self._verified else None

    def _stored_digest(self, key: str) -> bytes | None:
        """The digest this store holds for ``key``: recorded in this run, else as read
        (none for an entry recorded afresh in this run without one)."""
        if key in self._new_digests or key in self._new:
            return self._new_digests.get(key)
        i = self._index.get(key)
        if i is None or self._old is None or not self._old["has_digest"][i]:
            return None
        return self._old["digest"][i].tobytes()

    # ------------------------------------------------------------------ writing
    def record(
        self, image: Path, stat: Stat | None, checked_ns: int, label: Any, probe: Any
    ) -> None:
        """Remember a fresh result (``stat`` taken before the files were read)."""
        if stat is None:
            return
        key = str(image)
        self._new[key] = (stat, checked_ns, label, probe)
        self._new_digests.pop(key, None)
        self._verified.add(key)
        self._changed = True

    def record_digest(self, image: Path, digest: bytes) -> None:
        key = str(image)
        if key in self._verified and self.digest(image) != digest:
            self._new_digests[key] = digest
            self._changed = True

    def keep_only(self, images: list[Path]) -> None:
        """Keep only the entries of these images (the split's), in this order, when saved."""
        self._live = [str(p) for p in images]
        wanted = set(self._live)
        if any(k not in wanted for k in self._index):  # new entries set _changed already
            self._changed = True

    def save(self) -> None:
        """Write the store atomically when it changed (errors are ignored: a cache only)."""
        if not self._changed:
            try:
                os.utime(self.path)  # recently used
            except OSError:
                pass
            return
        try:
            self._write()
        except (OSError, ValueError):  # read-only or full disk, an unwritable name: no cache
            return
        self._changed = False
        _evict(self.folder, self.path)

    def _write(self) -> None:
        from .._io import atomic_write_bytes

        if self._live is not None:
            paths = [k for k in self._live if k in self._new or k in self._index]
        else:
            paths = list(self._index) + [k for k in self._new if k not in self._index]
        n = len(paths)
        st = np.zeros((n, _FIELDS + 1), dtype=np.int64)
        dims = np.zeros((n, 2), dtype=np.int32)
        off = np.zeros(n + 1, dtype=np.int64)
        dig = np.zeros((n, 16), dtype=np.uint8)
        has_dig = np.zeros(n, dtype=bool)
        cls_parts, box_parts, problems = [], [], []
        for i, path in enumerate(paths):
            entry = self._new.get(path)
            if entry is None:
                entry = self._old_entry(self._index[path])
            s, checked, (_, classes, boxes, lprobs), probe = entry
            st[i, :_FIELDS] = s
            st[i, _FIELDS] = checked
            cls_parts.append(np.asarray(classes, dtype=np.int32).reshape(-1))
            box_parts.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
            off[i + 1] = off[i] + cls_parts[-1].size
            tagged = [("label", p) for p in lprobs]
            if probe is not None:
                dims[i] = probe[:2]
                if probe[2] is not None:
                    tagged.append(("probe", probe[2]))
            problems.extend([i, where, p.kind, p.file, p.line, p.message, p.severity]
                            for where, p in tagged)
            d = self._stored_digest(path)
            if d is not None and len(d) == 16:
                dig[i] = np.frombuffer(d, dtype=np.uint8)
                has_dig[i] = True
        meta = {"format": FORMAT, "version": VERSION, "key": self.key}
        buf = io.BytesIO()
        np.savez(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            paths=np.frombuffer("\0".join(paths).encode("utf-8", "surrogateescape"), dtype=np.uint8),
            stat=st,
            dims=dims,
            offsets=off,
            classes=np.concatenate(cls_parts) if cls_parts else np.zeros(0, np.int32),
            boxes=np.concatenate(box_parts) if box_parts else np.zeros((0, 4), np.float32),
            digest=dig,
            has_digest=has_dig,
            problems=np.frombuffer(json.dumps(problems).encode("utf-8"), dtype=np.uint8),
        )
        atomic_write_bytes(self.path, buf.getvalue())


def _racy(s: Stat, checked_ns: int) -> bool:
    """A file changed so shortly before its check that a rewrite in the same timestamp
    tick would not show in its stat."""
    return max(s[1], s[2], s[4], s[5]) >= checked_ns - RACY_NS


def _evict(folder: Path, keep: Path) -> None:
    """Delete the least recently used store files beyond :data:`MAX_STORES`."""
    try:
        files = [(p.stat().st_mtime_ns, p) for p in folder.glob("*.npz") if p != keep]
    except OSError:
        return
    files.sort(reverse=True)
    for _, p in files[MAX_STORES - 1 :]:
        try:
            p.unlink()
        except OSError:
            pass


def now_ns() -> int:
    """The wall-clock time a check starts at (compared with files' mtimes and ctimes)."""
    return time.time_ns()
