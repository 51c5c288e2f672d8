"""Fast image decoding, letterboxing and batch prefetching for the embedder.

Decoding is the other half of embedding throughput, so this module avoids
work wherever it can:

- JPEGs are decoded at reduced scale by libjpeg's DCT scaling
  (``cv2.IMREAD_REDUCED_COLOR_2/4/8``) when the target size allows it: the
  largest factor that keeps the long side ``>= imgsz`` is used, which halves
  the decode time of a 640x480 JPEG at ``imgsz=320``. The choice depends only
  on the long side, which EXIF orientation does not change.
- Images are letterboxed straight into a slot of a reusable ``uint8`` batch
  buffer (``cv2.resize(..., dst=view)``), so a batch costs no allocation and no
  extra copy. The buffer is pinned memory when the model runs on CUDA.
- BGR->RGB, HWC->CHW and ``/255`` happen on the model's device, after the
  ``uint8`` batch was transferred (a quarter of the bytes of ``float32``).
- Decoding runs in a thread pool: OpenCV releases the GIL in ``imdecode`` and
  ``resize``, so threads scale without the pickling and shared-memory traffic
  of process workers, and nothing needs to be importable in a child process.

The letterbox is ultralytics' ``LetterBox(new_shape=imgsz, auto=False)``:
scale by ``r = min(S/h, S/w)`` (up or down), ``cv2.INTER_LINEAR``, pad with 114,
centred, split ``round(d - 0.1)`` / ``round(d + 0.1)``.

Every image becomes a 3-channel ``uint8`` BGR array: grayscale is expanded,
alpha is dropped and 16-bit data is scaled to 8 bits (``cv2.IMREAD_COLOR``).
An image that cannot be read is reported as a failure with a reason; it never
stops the run.
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .._jpeg import jpeg_info

__all__ = [
    "PAD_VALUE",
    "Batch",
    "BatchLoader",
    "ImageReadError",
    "jpeg_info",
    "letterbox",
    "letterbox_into",
    "read_image",
    "reduction_factor",
]

#: Letterbox padding value (ultralytics' default).
PAD_VALUE = 114

class ImageReadError(Exception):
    """An image file cannot be decoded; ``str(exc)`` is the reason recorded for it."""


def reduction_factor(long_side: int, imgsz: int) -> int:
    """The largest JPEG DCT scale factor that keeps the long side ``>= imgsz``.

    Parameters
    ----------
    long_side : int
        Long side of the stored image in pixels.
    imgsz : int
        Target (letterbox) size.

    Returns
    -------
    int
        One of 1, 2, 4, 8. libjpeg rounds scaled sizes up, hence ``ceil``.
    """
    for factor in (8, 4, 2):
        if -(-long_side // factor) >= imgsz:
            return factor
    return 1


def _imread_flags() -> dict[int, int]:
    import cv2

    return {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }


def read_image(
    path: str | os.PathLike, imgsz: int | None = None, *, reduce: bool = True
) -> np.ndarray:
    """Decode an image file as 3-channel ``uint8`` BGR.

    Parameters
    ----------
    path : str or path-like
        Any format OpenCV reads (JPEG, PNG, BMP, WEBP, TIFF, ...).
    imgsz : int, optional
        Target letterbox size. With ``reduce=True`` a JPEG is decoded at the
        smallest DCT scale whose long side is still ``>= imgsz``.
    reduce : bool, default True
        Allow reduced-scale JPEG decoding.

    Returns
    -------
    numpy.ndarray of shape (h, w, 3), uint8
        BGR pixels, EXIF orientation applied.

    Raises
    ------
    ImageReadError
        If the file is missing, empty, truncated or not a decodable image.
    """
    import cv2

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageReadError("empty file")
    flags = cv2.IMREAD_COLOR
    info = jpeg_info(data)
    if info is not None:
        if not info.complete:
            raise ImageReadError("truncated JPEG (no end-of-image marker)")
        if reduce and imgsz:
            flags = _imread_flags()[reduction_factor(max(info.height, info.width), imgsz)]
    elif data[:2] == b"\xff\xd8":
        raise ImageReadError("corrupt JPEG header")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None or img.size == 0:
        raise ImageReadError("not a decodable image")
    if img.ndim == 2:  # defensive: IMREAD_COLOR already returns 3 channels
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0 if img.dtype == np.uint16 else 1.0)
    return img


def _letterbox_geometry(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    """(new_w, new_h, top, left) exactly as ultralytics LetterBox(auto=False, center=True)."""
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    return new_w, new_h, top, left


def letterbox_into(img: np.ndarray, dst: np.ndarray) -> None:
    """Letterbox ``img`` into the square ``dst`` in place.

    Parameters
    ----------
    img : numpy.ndarray of shape (h, w, 3), uint8
        Source image.
    dst : numpy.ndarray of shape (S, S, 3), uint8
        Destination (a slot of a batch buffer); fully overwritten.
    """
    import cv2

    size = dst.shape[0]
    h, w = img.shape[:2]
    new_w, new_h, top, left = _letterbox_geometry(h, w, size)
    bottom, right = top + new_h, left + new_w
    if top:
        dst[:top] = PAD_VALUE
    if bottom < size:
        dst[bottom:] = PAD_VALUE
    if left:
        dst[top:bottom, :left] = PAD_VALUE
    if right < size:
        dst[top:bottom, right:] = PAD_VALUE
    view = dst[top:bottom, left:right]
    if (h, w) == (new_h, new_w):
        view[...] = img
    else:
        out = cv2.resize(img, (new_w, new_h), dst=view, interpolation=cv2.INTER_LINEAR)
        if out is not view and not np.shares_memory(out, view):  # OpenCV reallocated
            view[...] = out


def letterbox(img: np.ndarray, imgsz: int) -> np.ndarray:
    """Return ``img`` letterboxed to ``(imgsz, imgsz, 3)``.

    Parameters
    ----------
    img : numpy.ndarray of shape (h, w, 3), uint8
    imgsz : int

    Returns
    -------
    numpy.ndarray of shape (imgsz, imgsz, 3), uint8
    """
    dst = np.empty((imgsz, imgsz, 3), np.uint8)
    letterbox_into(img, dst)
    return dst


@dataclass
class Batch:
    """One batch of letterboxed images.

    Attributes
    ----------
    positions : numpy.ndarray of shape (b,), int64
        Positions of these images in the loader's item list.
    pixels : numpy.ndarray of shape (B, S, S, 3), uint8
        BGR pixels; only the first ``b`` slots are meaningful and of those only
        the ``ok`` ones. A view of a reusable buffer: call ``release()`` once
        its content has been consumed (copied to the device, or used by a
        synchronous CPU forward).
    ok : numpy.ndarray of shape (b,), bool
        Which slots hold a decoded image.
    errors : dict
        Position -> failure reason for the others.
    buffer : object
        The buffer owner (a pinned ``torch.Tensor`` on CUDA, else the array).
    """

    positions: np.ndarray
    pixels: np.ndarray
    ok: np.ndarray
    errors: dict[int, str]
    buffer: object = None
    _release: Callable[[], None] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the buffer back to the loader (idempotent)."""
        if self._release is not None:
            release, self._release = self._release, None
            release()


def _decode_into(path: str, imgsz: int, reduce: bool, dst: np.ndarray) -> str | None:
    """Decode + letterbox one image into ``dst``; return a failure reason or None."""
    try:
        img = read_image(path, imgsz, reduce=reduce)
        letterbox_into(img, dst)
    except ImageReadError as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on one odd file must not stop a long run
        return f"{type(exc).__name__}: {exc}"
    return None


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


class BatchLoader:
    """Decode and letterbox images into ``uint8`` batches, ahead of the consumer.

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files, in the order batches are produced.
    imgsz : int
        Letterbox size ``S``.
    batch : int
        Images per batch ``B``.
    workers : int
        Decode threads (``0``: decode in the calling thread, no prefetch).
    pin_memory : bool, default False
        Allocate buffers in page-locked memory (for fast CUDA transfers;
        needs torch).
    reduce : bool, default True
        Allow reduced-scale JPEG decoding.
    prefetch : int, optional
        Batches decoded ahead of the consumer; default enough to keep every
        worker busy, at least 2. ``0`` decodes each batch, with all workers,
        only when it is asked for: decoding and the consumer's work then
        alternate instead of overlapping, which is faster on a CPU-only run
        where both compete for the same cores (see :class:`~detprune.features.Embedder`).

    Notes
    -----
    Iterating yields :class:`Batch` objects in order. Each holds one of
    ``prefetch + 3`` reusable buffers until :meth:`Batch.release` is called;
    the consumer may hold at most two unreleased batches when it asks for the
    next one. Peak memory is therefore ``(prefetch + 3) * B * S * S * 3``
    bytes, independent of the number of images.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        imgsz: int,
        batch: int,
        workers: int,
        pin_memory: bool = False,
        reduce: bool = True,
        prefetch: int | None = None,
    ) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.imgsz = int(imgsz)
        self.batch = int(batch)
        self.workers = max(0, int(workers))
        self.pin_memory = bool(pin_memory)
        self.reduce = bool(reduce)
        if prefetch is None:
            prefetch = max(2, -(-2 * self.workers // self.batch))
        self.prefetch = max(0, int(prefetch)) if self.workers else 0
        self._free: queue.Queue = queue.Queue()
        # prefetch + 1 batches in flight here, up to 2 held by the consumer
        self._n_buffers = self.prefetch + 3

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch)

    def _new_buffer(self) -> tuple[object, np.ndarray]:
        shape = (self.batch, self.imgsz, self.imgsz, 3)
        if self.pin_memory:
            import torch

            tensor = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            return tensor, tensor.numpy()
        array = np.empty(shape, np.uint8)
        return array, array

    def _take_buffer(self) -> tuple[object, np.ndarray]:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._n_buffers > 0:
            self._n_buffers -= 1
            return self._new_buffer()
        return self._free.get()  # all out: wait for the consumer to release one

    def _fill(
        self,
        pool: ThreadPoolExecutor | None,
        start: int,
        owner: object,
        pixels: np.ndarray,
    ) -> Callable[[], Batch]:
        stop = min(start + self.batch, len(self.paths))
        positions = np.arange(start, stop, dtype=np.int64)

        def give_back() -> None:
            self._free.put((owner, pixels))

        if pool is None:
            reasons = [
                _decode_into(self.paths[p], self.imgsz, self.reduce, pixels[j])
                for j, p in enumerate(positions)
            ]
            futures: list[Future] | None = None
        else:
            futures = [
                pool.submit(_decode_into, self.paths[p], self.imgsz, self.reduce, pixels[j])
                for j, p in enumerate(positions)
            ]

        def collect() -> Batch:
            got = reasons if futures is None else [f.result() for f in futures]
            ok = np.array([r is None for r in got], dtype=bool)
            errors = {int(positions[j]): r for j, r in enumerate(got) if r is not None}
            return Batch(positions, pixels, ok, errors, owner, give_back)

        return collect

    def __iter__(self) -> Iterator[Batch]:
        starts = range(0, len(self.paths), self.batch)
        if self.workers == 0:
            for start in starts:
                owner, pixels = self._take_buffer()
                yield self._fill(None, start, owner, pixels)()
            return
        pool = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="detprune-decode", initializer=_worker_init
        )
        pending: deque[Callable[[], Batch]] = deque()
        it = iter(starts)
        try:
            for start in it:
                pending.append(self._fill(pool, start, *self._take_buffer()))
                if len(pending) > self.prefetch:  # prefetch 0: decode on demand, all workers
                    yield pending.popleft()()
            while pending:
                yield pending.popleft()()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
