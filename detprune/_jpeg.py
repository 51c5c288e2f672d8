"""JPEG header walking shared by the dataset checks and the image loader (no dependencies)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["JpegInfo", "ends_with_eoi", "jpeg_info"]

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_NO_LENGTH = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM: no length field


@dataclass(frozen=True)
class JpegInfo:
    """What :func:`jpeg_info` reads from a JPEG header.

    Attributes
    ----------
    height, width : int
        Stored size in pixels (before any EXIF rotation).
    complete : bool
        ``True`` if the end-of-image marker follows the first scan. A file
        without it was cut short (an interrupted copy or download).
    end : int
        Offset just past that end-of-image marker (``-1`` if incomplete). Bytes
        from there on are trailing data (an appended motion-photo video, ...).
    """

    height: int
    width: int
    complete: bool
    end: int = -1


def jpeg_info(data: bytes | memoryview) -> JpegInfo | None:
    """Read the size of a baseline or progressive JPEG and check it is complete.

    The markers before the first scan are walked by their length fields (so an
    EXIF thumbnail, itself a JPEG, is skipped), then the end-of-image marker is
    searched after the scan start: in entropy-coded data ``0xFF`` is always
    followed by ``0x00`` or a restart marker, so ``FF D9`` can only be the end.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    JpegInfo or None
        ``None`` if ``data`` is not a JPEG or its header is unreadable.
    """
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos = 2
    height = width = -1
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _NO_LENGTH:
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            return None
        if marker in _JPEG_SOF and pos + 9 <= n:
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
        if marker == 0xDA:  # start of scan
            if height <= 0 or width <= 0:
                return None
            if isinstance(data, memoryview):
                data = data.tobytes()
            eoi = data.find(b"\xff\xd9", pos + 2 + length)
            return JpegInfo(height, width, eoi != -1, eoi + 2 if eoi != -1 else -1)
        pos += 2 + length
    return None


def ends_with_eoi(f: BinaryIO) -> bool:
    """Whether the open file's last two bytes are the end-of-image marker ``FF D9``.

    This is ultralytics' own test: a JPEG failing it is re-encoded in place when
    ultralytics scans it.
    """
    if f.seek(0, os.SEEK_END) < 2:
        return False
    f.seek(-2, os.SEEK_END)
    return f.read(2) == b"\xff\xd9"
