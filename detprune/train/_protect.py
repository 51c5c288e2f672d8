"""Keep ultralytics from rewriting source images while detprune trains.

When ultralytics scans a dataset it "restores" every JPEG whose last two bytes
are not the end-of-image marker by re-encoding it *in place* (quality 100,
without the trailing data): a motion photo loses its video, and a file under a
source dataset is modified. During :func:`detprune.train.train` the scan
function is wrapped so that such a file is scanned through a temporary copy;
the source file is left as it is (OpenCV decodes it fine: the bytes after the
marker are ignored).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["no_image_rewrites", "would_be_rewritten"]


def would_be_rewritten(path: str | os.PathLike) -> bool:
    """Whether ultralytics' scan would rewrite ``path``: a JPEG not ending with ``FF D9``.

    Parameters
    ----------
    path : str or path-like
        An image file.

    Returns
    -------
    bool
        ``False`` for unreadable files (ultralytics reports those itself).
    """
    from .._jpeg import ends_with_eoi

    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\xff\xd8" and not ends_with_eoi(f)
    except OSError:
        return False


_lock = threading.Lock()
_active = 0  # nested or concurrent guarded runs (the wrapper stays until the last ends)
_protected: list[str] = []


def _guarded(original: Any) -> Any:
    def guarded(args: Any) -> Any:
        im_file = args[0]
        if not would_be_rewritten(im_file):
            return original(args)
        with tempfile.TemporaryDirectory(prefix="detprune-scan-") as d:
            tmp = os.path.join(d, os.path.basename(im_file))
            shutil.copyfile(im_file, tmp)
            result = original((tmp, *args[1:]))
        _protected.append(str(im_file))
        out = list(result)
        if out[0] is not None:
            out[0] = im_file
        if isinstance(out[-1], str):
            out[-1] = out[-1].replace(tmp, str(im_file)).replace(
                "restored and saved", "(data after its end marker) left unmodified by detprune")
        return type(result)(out)

    guarded._detprune_original = original  # type: ignore[attr-defined]
    return guarded


@contextlib.contextmanager
def no_image_rewrites() -> Iterator[list[str]]:
    """Wrap ultralytics' ``verify_image_label`` for the duration of the block.

    Yields
    ------
    list of str
        Filled with the images scanned through a copy while the block ran.
    """
    global _active
    import ultralytics.data.dataset as uds

    seen: list[str] = []
    if getattr(uds, "verify_image_label", None) is None:  # an ultralytics without it
        yield seen
        return
    with _lock:
        if _active == 0:
            uds.verify_image_label = _guarded(uds.verify_image_label)
        _active += 1
        start = len(_protected)
    try:
        yield seen
    finally:
        with _lock:
            seen.extend(_protected[start:])
            _active -= 1
            if _active == 0:
                uds.verify_image_label = uds.verify_image_label._detprune_original
                _protected.clear()
