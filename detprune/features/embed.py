"""Embed images with the backbone of a YOLOv5 detector.

The embedding of an image is built from the outputs of backbone layers 4, 6
and 9 (P3, P4 and P5 after SPPF; 64 + 128 + 256 = 448 channels for yolov5n,
896 for yolov5s): each is global-average-pooled (``adaptive_avg_pool2d`` to
1x1, exactly what ``ultralytics``' ``predict(..., embed=[4, 6, 9])`` computes)
and then **L2-normalised per scale** before the three are concatenated. Without
the per-scale normalisation the deepest scale, whose activations are an order
of magnitude larger, dominates every distance and the shallower scales add
almost nothing; with it each scale contributes equally and the whole vector
has norm ``sqrt(3)``.

Only layers 0..9 run (the neck and head are never evaluated). The model is
fused (conv + batch-norm), in ``channels_last`` layout, under
``torch.inference_mode()``; the loader's BGR order is folded into the first
convolution's weights (an exact channel permutation) and ``uint8 / 255`` is a
single pass on the device. On CUDA it runs in float16 with pinned-memory
``uint8`` batches copied asynchronously while the next batch is decoded and
the previous result copied back. On CPU, decoding (by all cores) and the
forward pass (all cores, in micro-batches of about six 320x320 images, which
keeps activations in cache) alternate rather than overlap; on this project's
2-core reference machine that reached 0.90x (imgsz 320) and 0.93x (640) of
``min(decode-only, forward-only)`` throughput (``scripts/bench_embed.py``).
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import InstanceOf, Interval, IsNone, Predicate, validate_params
from ..errors import ParameterError
from .loader import BatchLoader
from .weights import EMBED_LAYERS, ResolvedWeights, WeightsInfo, resolve_weights

__all__ = [
    "FEATURES_VERSION",
    "NORMALISATION",
    "Embedder",
    "Embeddings",
    "default_workers",
    "embed_images",
]

logger = logging.getLogger("detprune.features")

#: How pooled vectors are normalised (recorded in settings and cache keys).
NORMALISATION = "l2-per-scale"
#: Bump when preprocessing or pooling changes in a way that changes vectors.
FEATURES_VERSION = 1
_DECODE = "cv2-jpeg-dct-reduced"
_LETTERBOX = "center-pad114-linear"
_CHECKPOINT_SECONDS = 120.0


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_workers(device: Any = "cpu") -> int:
    """Default number of decode threads.

    On CPU decoding alternates with the forward pass (see :meth:`Embedder.stream`),
    so each batch is decoded by every core (at most 16). With CUDA decoding
    overlaps the GPU; ``min(8, cores)`` threads decode several thousand
    images/s, more than a YOLOv5n backbone consumes.

    Parameters
    ----------
    device : str or torch.device

    Returns
    -------
    int
    """
    cores = _cpu_count()
    return min(8, cores) if str(device).startswith("cuda") else min(16, cores)


@dataclass(frozen=True)
class Embeddings:
    """Embedding vectors of a list of images.

    Attributes
    ----------
    vectors : numpy.ndarray of shape (n, d), float32
        Row ``i`` embeds ``paths[i]``; rows of images that failed are NaN.
        Each scale's block is L2-normalised (see ``dims``).
    ok : numpy.ndarray of shape (n,), bool
        Which rows are valid.
    failures : tuple of (str, str)
        ``(path, reason)`` for every image that could not be embedded.
    dims : tuple of int
        Width of each scale's block, e.g. ``(64, 128, 256)``; ``sum(dims) == d``.
    weights : WeightsInfo
        Provenance of the model.
    settings : dict
        ``imgsz``, ``layers``, ``pooling``, ``normalisation``, ``dtype``,
        ``decode``, ``letterbox``, ``features_version``, ``device``, ``precision``.
    cache : dict
        ``{"hits": int, "computed": int, "dir": str | None}``.
    """

    vectors: np.ndarray
    ok: np.ndarray
    failures: tuple[tuple[str, str], ...]
    dims: tuple[int, ...]
    weights: WeightsInfo
    settings: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Vector width ``d``."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def _resolve_device(device: Any, owner: str = "embed_images") -> Any:
    import torch

    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    given = device  # named in the messages as the user gave it
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    elif isinstance(device, str) and device.strip().isdigit():  # '--device 0', as ultralytics
        device = f"cuda:{device.strip()}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(
            f"The 'device' parameter of {owner} must be 'auto', 'cpu', 'cuda', 'cuda:N' or an int. "
            f"Got {given!r} instead."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            f"The 'device' parameter of {owner} must name an available device. Got {given!r} "
            "instead (CUDA is not available)."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ParameterError(
            f"The 'device' parameter of {owner} must name an available device. Got {given!r} "
            f"instead ({torch.cuda.device_count()} CUDA device(s))."
        )
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise ParameterError(
            f"The 'device' parameter of {owner} must name an available device. Got {given!r} "
            "instead (MPS is not available)."
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ParameterError(
            f"The 'device' parameter of {owner} must be 'auto', 'cpu', 'cuda', 'cuda:N' or an int. "
            f"Got {given!r} instead."
        )
    return dev


def _make_backbone(model: Any) -> Any:
    """Layers 0..max(EMBED_LAYERS) of a (fused) model, as a module returning pooled parts."""
    import torch

    last = max(EMBED_LAYERS)
    layers = list(model.model[: last + 1])

    class Backbone(torch.nn.Module):
        """Sequential backbone; forward returns the pooled (B, C_l) output of each embed layer."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            parts = []
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i in EMBED_LAYERS:
                    parts.append(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
            return parts

    return Backbone().eval()


class Embedder:
    """A ready-to-run YOLOv5 backbone embedder.

    Parameters
    ----------
    weights : str or path-like, default "auto"
        See :func:`detprune.features.weights.resolve_weights`.
    imgsz : int, default 640
        Letterbox size (multiple of 32).
    device : {"auto", "cpu", "cuda", "cuda:N"} or int, default "auto"
        ``"auto"`` picks CUDA when available.
    seed : int, default 0
        Seed of a random initialisation.
    half : bool, optional
        Compute in 16 bits: float16 on CUDA (the default there), bfloat16 on
        CPU (opt-in; about 1.5x faster forward on a CPU with AVX512-BF16,
        vectors within ~1e-2 of float32). Default float32 on CPU.

    Attributes
    ----------
    info : WeightsInfo
    device : torch.device
    dims : tuple of int
        Width of each pooled scale.

    Notes
    -----
    The model is built on first use (:meth:`build`), so an embedder whose
    work is all served from a cache never builds one.
    """

    def __init__(
        self,
        weights: str | os.PathLike | ResolvedWeights = "auto",
        *,
        imgsz: int = 640,
        device: Any = "auto",
        seed: int = 0,
        half: bool | None = None,
    ) -> None:
        self.resolved = (
            weights if isinstance(weights, ResolvedWeights) else resolve_weights(weights, seed=seed)
        )
        self.info = self.resolved.info
        self.imgsz = int(imgsz)
        self.device = _resolve_device(device)
        self.half = (self.device.type == "cuda") if half is None else bool(half)
        self._net: Any = None
        self._dims: tuple[int, ...] | None = None

    @property
    def dtype(self) -> Any:
        """Compute dtype (``torch.float16`` or ``torch.float32``)."""
        import torch

        if not self.half:
            return torch.float32
        return torch.float16 if self.device.type == "cuda" else torch.bfloat16

    @property
    def precision(self) -> str:
        """Name of the compute dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``."""
        return str(self.dtype).replace("torch.", "")

    def build(self) -> Embedder:
        """Build, fuse and place the model (idempotent).

        Returns
        -------
        Embedder
            ``self``.
        """
        if self._net is not None:
            return self
        import torch

        model = self.resolved.build()
        model.fuse(verbose=False)
        net = _make_backbone(model)
        # the loader delivers BGR; reversing the input channels of the first convolution is
        # the exact equivalent of a BGR->RGB flip of every image, at no cost per image
        first = net.layers[0].conv
        with torch.no_grad():
            first.weight.copy_(first.weight.flip(1))
        net = net.to(self.device, memory_format=torch.channels_last)
        if self.half:
            net = net.to(self.dtype)
        for p in net.parameters():
            p.requires_grad_(False)
        self._net = net
        with torch.inference_mode():
            probe = torch.zeros(1, 3, 64, 64, device=self.device, dtype=self.dtype)
            parts = net(probe.contiguous(memory_format=torch.channels_last))
        self._dims = tuple(int(p.shape[1]) for p in parts)
        return self

    @property
    def dims(self) -> tuple[int, ...]:
        """Width of each pooled scale (builds the model if needed)."""
        self.build()
        assert self._dims is not None
        return self._dims

    @property
    def dim(self) -> int:
        """Total vector width."""
        return sum(self.dims)

    def pooled(self, x: Any) -> list[Any]:
        """Un-normalised pooled outputs of the embed layers.

        Parameters
        ----------
        x : torch.Tensor of shape (B, 3, S, S)
            RGB in [0, 1] (ultralytics' model input), any dtype/device/layout.

        Returns
        -------
        list of torch.Tensor of shape (B, C_l), float32
            One per layer in ``EMBED_LAYERS``.
        """
        import torch

        self.build()
        x = x.to(self.device, self.dtype).flip(1)  # RGB -> BGR, the order the first conv expects
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return [p.float() for p in self._net(x)]

    def normalise(self, parts: Sequence[Any]) -> Any:
        """L2-normalise each scale and concatenate.

        Parameters
        ----------
        parts : sequence of torch.Tensor of shape (B, C_l)

        Returns
        -------
        torch.Tensor of shape (B, sum C_l), float32
        """
        import torch

        return torch.cat(
            [torch.nn.functional.normalize(p.float(), dim=1, eps=1e-12) for p in parts], 1
        )

    def _forward_u8(self, pixels: Any) -> Any:
        """(B, S, S, 3) uint8 BGR on any device -> (B, d) float32 normalised, on device."""
        import torch

        x = pixels.to(self.device, non_blocking=True)
        # NHWC -> NCHW as a view is exactly channels_last; uint8 / 255 in one pass, as ultralytics
        # normalises (the channel order is handled by the first convolution's weights)
        x = x.permute(0, 3, 1, 2)
        with torch.inference_mode():
            if self.device.type == "cuda":
                return self.normalise(self._net(x.to(self.dtype).div_(255.0)))
            # CPU: small micro-batches keep activations in cache (measured fastest, see module doc)
            step = self.cpu_microbatch
            parts = [
                self._net(torch.div(x[i : i + step], 255.0).to(self.dtype))
                for i in range(0, len(x), step)
            ]
            return self.normalise([torch.cat(p, 0) for p in zip(*parts, strict=True)])

    @property
    def cpu_microbatch(self) -> int:
        """Images per forward call on CPU: about six 320x320 images' worth of pixels."""
        return max(1, round(6 * (320 / self.imgsz) ** 2))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed letterboxed images.

        Parameters
        ----------
        pixels : numpy.ndarray of shape (B, S, S, 3), uint8
            BGR images, as produced by :func:`detprune.features.loader.letterbox`.

        Returns
        -------
        numpy.ndarray of shape (B, d), float32
        """
        import torch

        self.build()
        with torch.inference_mode():
            return self._forward_u8(torch.from_numpy(np.ascontiguousarray(pixels))).cpu().numpy()

    def stream(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        batch: int = 16,
        workers: int | None = None,
        reduce: bool = True,
        overlap: bool | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, dict[int, str]]]:
        """Embed image files in order, batch by batch.

        Parameters
        ----------
        paths : sequence of str or path-like, length n
        batch : int, default 16
        workers : int, optional
            Decode threads; default :func:`default_workers`.
        reduce : bool, default True
            Allow reduced-scale JPEG decoding.
        overlap : bool, optional
            Decode ahead while the model runs. Default: on CUDA (the GPU
            computes while the CPU decodes); off on CPU, where decoding and the
            forward pass would fight over the same cores — there each batch is
            decoded by all workers, then the forward pass uses all cores, and
            no OpenMP thread ever waits for a descheduled sibling (on 2 cores
            under load, overlapping was several times slower).

        Yields
        ------
        positions : numpy.ndarray of shape (b,), int64
            Positions in ``paths`` of the images embedded.
        vectors : numpy.ndarray of shape (b, d), float32
            Their vectors (only for decoded images).
        errors : dict of int to str
            Position -> reason for images of this batch that failed.
        """
        import torch

        self.build()
        cuda = self.device.type == "cuda"
        if workers is None:
            workers = default_workers(self.device)
        if overlap is None:
            overlap = cuda
        loader = BatchLoader(
            paths,
            imgsz=self.imgsz,
            batch=batch,
            workers=workers,
            pin_memory=cuda,
            reduce=reduce,
            prefetch=None if overlap else 0,
        )
        with _thread_settings(cuda, workers):
            pending: tuple[Any, Any, Any] | None = None
            for b in loader:
                count = len(b.positions)
                if cuda:
                    src = b.buffer[:count]  # pinned tensor: asynchronous copy
                    vec = self._forward_u8(src)
                    host = torch.empty(vec.shape, dtype=torch.float32, pin_memory=True)
                    host.copy_(vec, non_blocking=True)
                    done = torch.cuda.Event()
                    done.record()
                    if pending is not None:
                        yield _finish(*pending)
                    pending = (b, host, done)
                else:
                    vec = self._forward_u8(torch.from_numpy(b.pixels[:count])).numpy()
                    b.release()
                    yield b.positions[b.ok], vec[b.ok], b.errors
            if pending is not None:
                yield _finish(*pending)


def _finish(b: Any, host: Any, done: Any) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    done.synchronize()
    b.release()
    vec = host.numpy()
    return b.positions[b.ok], vec[b.ok], b.errors


@contextlib.contextmanager
def _thread_settings(cuda: bool, workers: int) -> Iterator[None]:
    """Use every core for torch on CPU; keep OpenCV single-threaded while decode threads run."""
    import cv2
    import torch

    cv2_threads = cv2.getNumThreads()
    torch_threads = torch.get_num_threads()
    cudnn_benchmark = torch.backends.cudnn.benchmark
    try:
        cv2.setNumThreads(1)
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed input shape: pick the fastest kernels
        else:
            torch.set_num_threads(_cpu_count())
        yield
    finally:
        cv2.setNumThreads(cv2_threads)
        torch.set_num_threads(torch_threads)
        torch.backends.cudnn.benchmark = cudnn_benchmark


def _stat_all(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(paths)
    sizes = np.zeros(n, np.int64)
    mtimes = np.zeros(n, np.int64)
    exists = np.zeros(n, bool)
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        sizes[i], mtimes[i], exists[i] = st.st_size, st.st_mtime_ns, True
    return sizes, mtimes, exists


def _is_path_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


_CONSTRAINTS = {
    "paths": Predicate(_is_path_sequence, "a sequence of paths"),
    "weights": InstanceOf((str, os.PathLike), "a checkpoint path, a model yaml or 'auto'"),
    "imgsz": Predicate(
        lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_) and v >= 32
        and v % 32 == 0,
        "an int >= 32 and a multiple of 32",
    ),
    "batch": Interval("int", 1, None),
    "workers": [IsNone(), Interval("int", 0, None)],
    "cache_dir": [IsNone(), InstanceOf((str, os.PathLike), "a path")],
    "keys": [IsNone(), Predicate(_is_path_sequence, "a sequence of str")],
    "progress": InstanceOf(bool, "a bool"),
    "seed": Interval("int", 0, None),
}


def embed_images(
    paths: Sequence[str | Path],
    *,
    weights: str | os.PathLike = "auto",
    imgsz: int = 640,
    batch: int = 16,
    device: Any = "auto",
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    keys: Sequence[str] | None = None,
    progress: bool = True,
    seed: int = 0,
) -> Embeddings:
    """Embed image files with a YOLOv5 backbone (see the module docstring).

    Parameters
    ----------
    paths : sequence of str or path-like, length n
        Image files. Unreadable ones become failures, not errors.
    weights : str or path-like, default "auto"
        Checkpoint (ultralytics or original yolov5 repo), model yaml (random
        init) or ``"auto"``; see :mod:`detprune.features.weights`.
    imgsz : int, default 640
        Letterbox size; a multiple of 32.
    batch : int, default 16
        Images per forward pass.
    device : {"auto", "cpu", "cuda", "cuda:N"} or int, default "auto"
    workers : int, optional
        Decode threads; default :func:`default_workers` (all cores on CPU,
        ``min(8, cores)`` with CUDA); ``0`` decodes in the
        calling thread.
    cache_dir : str or path-like, optional
        Embedding cache root (e.g. ``<dataset>/.detprune/cache``); ``None``
        disables caching. See :mod:`detprune.features.cache`.
    keys : sequence of str, optional, length n
        Cache key of each image (e.g. its path relative to the dataset root);
        default ``str(path)``.
    progress : bool, default True
        Show a progress bar (images/s and ETA).
    seed : int, default 0
        Seed of a random initialisation (yaml weights or the ``"auto"`` fallback).

    Returns
    -------
    Embeddings
        ``vectors`` of shape (n, d) float32 with NaN rows for failures.

    Raises
    ------
    ParameterError
        On an invalid argument.
    DetpruneError
        If the weights cannot be resolved.
    """
    validate_params(
        "embed_images",
        {
            "paths": paths,
            "weights": weights,
            "imgsz": imgsz,
            "batch": batch,
            "workers": workers,
            "cache_dir": cache_dir,
            "keys": keys,
            "progress": progress,
            "seed": seed,
        },
        _CONSTRAINTS,
    )
    files = [os.fspath(p) for p in paths]
    n = len(files)
    if keys is None:
        keys = files
    else:
        keys = [str(k) for k in keys]
        if len(keys) != n:
            raise ParameterError(
                f"The 'keys' parameter of embed_images must have one key per path ({n}). "
                f"Got {len(keys)} instead."
            )
    device = _resolve_device(device)  # before the weights: their fallback warns
    resolved = resolve_weights(weights, seed=seed)
    embedder = Embedder(resolved, imgsz=imgsz, device=device, seed=seed)
    settings, identity = embedding_identity(
        resolved.info, imgsz, device=str(embedder.device), precision=embedder.precision
    )

    sizes, mtimes, exists = _stat_all(files)
    failures: dict[int, str] = {int(i): "file not found" for i in np.flatnonzero(~exists)}
    store = None
    if cache_dir is not None:
        store = _open_store(cache_dir, identity)
    hit = np.zeros(n, bool)
    found = None
    if store is not None and n:
        found = store.lookup(keys, sizes, mtimes)
        hit = found.hit & exists
        for i, reason in found.failed.items():
            if exists[i]:
                failures[i] = reason
    todo = np.flatnonzero(~hit & exists & ~np.isin(np.arange(n), list(failures)))

    stored_dims = store.meta.get("dims") if store is not None else None
    if len(todo) or not stored_dims:
        dims = embedder.dims
    else:
        dims = tuple(int(c) for c in stored_dims)
    if store is not None and not stored_dims:
        store.meta["dims"] = list(dims)
    d = sum(dims)
    from .._memory import empty

    vectors = empty((n, d), np.float32)  # file-backed when large (see detprune._memory)
    ok = np.zeros(n, bool)
    if found is not None and hit.any():
        assert store is not None
        store.read_into(found, vectors)
        ok |= hit

    computed = 0
    if len(todo):
        computed = _compute(
            embedder,
            files,
            keys,
            sizes,
            mtimes,
            todo,
            vectors,
            ok,
            failures,
            store,
            batch,
            workers,
            progress,
        )
    vectors[~ok] = np.nan
    fail_list = tuple((files[i], failures[i]) for i in sorted(failures))
    if fail_list:
        logger.warning(
            "%d of %d images could not be embedded (first: %s: %s)",
            len(fail_list),
            n,
            *fail_list[0],
        )
    return Embeddings(
        vectors=vectors,
        ok=ok,
        failures=fail_list,
        dims=tuple(dims),
        weights=resolved.info,
        settings=settings,
        cache={
            "hits": int(hit.sum()),
            "computed": int(computed),
            "dir": None if store is None else str(store.root),
        },
    )


def embedding_identity(
    info: WeightsInfo, imgsz: int, *, device: str = "cpu", precision: str = "float32"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings recorded with embeddings, and the identity that keys their cache store.

    Parameters
    ----------
    info : WeightsInfo
    imgsz : int
    device, precision : str
        Recorded in the settings only (not part of the identity).

    Returns
    -------
    settings : dict
        See :attr:`Embeddings.settings`.
    identity : dict
        Weights key, model and every setting that changes vectors.
    """
    settings = {
        "imgsz": imgsz,
        "layers": list(EMBED_LAYERS),
        "pooling": "global-average",
        "normalisation": NORMALISATION,
        "dtype": "float32",
        "decode": _DECODE,
        "letterbox": _LETTERBOX,
        "features_version": FEATURES_VERSION,
        "device": device,
        "precision": precision,
    }
    identity = {
        "weights": info.key,
        "model": info.model,
        **{
            k: settings[k]
            for k in (
                "imgsz",
                "layers",
                "pooling",
                "normalisation",
                "dtype",
                "decode",
                "letterbox",
                "features_version",
            )
        },
    }
    return settings, identity


def _open_store(cache_dir: str | os.PathLike, identity: dict[str, Any]) -> Any:
    from .cache import CacheWarning, EmbeddingCache

    try:
        return EmbeddingCache(cache_dir, identity)
    except OSError as exc:
        import warnings

        message = f"embedding cache at {cache_dir} is not usable ({exc}); continuing without it"
        warnings.warn(message, CacheWarning, stacklevel=3)
        return None


def _compute(
    embedder: Embedder,
    files: list[str],
    keys: Sequence[str],
    sizes: np.ndarray,
    mtimes: np.ndarray,
    todo: np.ndarray,
    vectors: np.ndarray,
    ok: np.ndarray,
    failures: dict[int, str],
    store: Any,
    batch: int,
    workers: int | None,
    progress: bool,
) -> int:
    """Embed ``files[todo]`` into ``vectors``; checkpoint new rows into ``store``."""
    bar = _progress_bar(len(todo), progress)
    new_rows: list[np.ndarray] = []
    new_failed: dict[str, tuple[int, int, str]] = {}
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal new_rows, new_failed, last_flush
        if store is not None and (new_rows or new_failed):
            rows = np.concatenate(new_rows) if new_rows else np.zeros(0, np.int64)
            try:
                store.add(
                    [keys[i] for i in rows], sizes[rows], mtimes[rows], vectors[rows], new_failed
                )
            except OSError as exc:
                logger.warning("could not write the embedding cache (%s)", exc)
        new_rows, new_failed = [], {}
        last_flush = time.monotonic()

    done = 0
    try:
        for positions, vecs, errors in embedder.stream(
            [files[i] for i in todo], batch=batch, workers=workers
        ):
            rows = todo[positions]
            vectors[rows] = vecs
            ok[rows] = True
            new_rows.append(rows)
            for pos, reason in errors.items():
                i = int(todo[pos])
                failures[i] = reason
                new_failed[keys[i]] = (int(sizes[i]), int(mtimes[i]), reason)
            step = len(positions) + len(errors)
            done += step
            bar(step)
            if time.monotonic() - last_flush > _CHECKPOINT_SECONDS:
                flush()
    finally:
        flush()
        bar(None)
    return done


def _progress_bar(total: int, enabled: bool) -> Callable[[int | None], None]:
    if not enabled or total == 0:
        return lambda step: None
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        unit="img",
        desc="embedding",
        dynamic_ncols=True,
        smoothing=0.05,
        mininterval=0.5,
    )

    def update(step: int | None) -> None:
        if step is None:
            bar.close()
        else:
            bar.update(step)

    return update
