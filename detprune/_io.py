"""Small file helpers: every output file is written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any


def printable(text: str) -> str:
    """``text`` safe to print and to write as UTF-8.

    Undecodable bytes of a file name (Python's surrogate escapes) become ``\\xNN`` and
    control characters (a NUL, a line break in a name) their escapes.
    """
    if text.isprintable():
        return text
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask (read once: reading it means setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_file_target(path: Path, hint: str = "") -> None:
    """Refuse an output file path that is a folder, a device, a FIFO or a socket (an atomic
    write would fail on the first and replace the others); ``hint`` ends the message."""
    from .errors import OutputError

    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name{hint}")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path} is not a regular file; give a file name{hint}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file gets the permissions a plain ``open(path, "w")`` would give it
    (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    """
    from .errors import WriteError

    path = Path(path)
    check_file_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a read-only or virtual folder (/proc), a file in the way, ...
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # disk full, quota, permissions: one line naming the file
            raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: object) -> object:
    """``json.dumps(default=...)`` for numpy numbers a library caller passed
    (``keep=np.float32(0.3)``)."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=True, default=json_default) + "\n"
    )
