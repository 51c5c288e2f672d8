"""Large working arrays backed by a temporary file instead of anonymous memory.

The embeddings of a split and the selection feature space are ``n x d`` float32
matrices: 1.8 GB per million images at d = 448. Above :func:`spill_threshold`
bytes they are allocated as a memory map of a temporary file that is unlinked at
once: the pages are file-backed, so the kernel can write them out and drop them
under memory pressure instead of the process growing until it is killed, and the
file disappears when the array is freed, whatever happens to the process.

The threshold is ``$DETPRUNE_SPILL_BYTES`` (bytes; ``0`` spills every array,
``-1`` never spills), by default 1 GiB. The folder is ``$DETPRUNE_SPILL_DIR``,
else the system temporary folder.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

__all__ = ["SPILL_BYTES_ENV", "SPILL_DIR_ENV", "empty", "spill_threshold"]

SPILL_BYTES_ENV = "DETPRUNE_SPILL_BYTES"
SPILL_DIR_ENV = "DETPRUNE_SPILL_DIR"
_DEFAULT = 1 << 30


def spill_threshold() -> int:
    """Arrays of more bytes than this are file-backed (-1: never)."""
    text = os.environ.get(SPILL_BYTES_ENV, "").strip()
    try:
        return int(text) if text else _DEFAULT
    except ValueError:
        return _DEFAULT


def empty(shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """An uninitialised array, file-backed when larger than :func:`spill_threshold`.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    numpy.ndarray or numpy.memmap
        C-contiguous; a ``numpy.memmap`` (of an already unlinked file) when spilled.
    """
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    limit = spill_threshold()
    if limit < 0 or nbytes <= limit or nbytes == 0:
        return np.empty(shape, dt)
    folder = os.environ.get(SPILL_DIR_ENV) or None
    fd, path = tempfile.mkstemp(prefix="detprune-", suffix=".f32", dir=folder)
    try:
        os.ftruncate(fd, nbytes)
        return np.memmap(path, dtype=dt, mode="r+", shape=shape)
    finally:
        os.close(fd)
        os.unlink(path)  # the mapping keeps the pages; the name is gone now
