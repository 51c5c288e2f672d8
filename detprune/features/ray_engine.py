"""Distributed embedding on a Ray cluster (``detprune embed DATA --engine ray``).

The driver (the machine running detprune) stats the images, looks them up in
the embedding cache and hands only the missing ones to Ray:

1. **Ray Data reads the image list**: a dataset of ``(pos, path, key, size,
   mtime)`` rows, one block per shard (``shard_rows`` images, a multiple of the
   forward batch).
2. **``map_batches`` with one model per actor**: an actor pool
   (:class:`_EmbedWorker`; ``num_gpus=1`` per actor when the cluster has GPUs,
   CPU actors otherwise) decodes and letterboxes with the local engine's
   :class:`~detprune.features.loader.BatchLoader` and runs the same
   :meth:`~detprune.features.embed.Embedder.embed_pixels` forward pass, in the
   same batches as the local engine, so the vectors are the same.
3. Each actor **writes its batch as a shard** (:func:`~detprune.features.shards.write_shard`:
   vectors ``.npy`` plus a header committed last, atomically) into a run folder
   under the cache folder, and returns only the shard's name.
4. The driver **merges and validates** the reported shards (count, the exact
   set of image keys -- a missing or duplicate shard is an error naming it --
   and the model identity) and stores them in the normal cache, so a later
   ``prune`` (local) finds every vector there. The run folder is then removed.

Images, weights and the cache folder must be reachable under the same paths
from every node (shared storage), and detprune must be installed on every
node. A checkpoint that is not on a shared path is shipped to the workers
through Ray's object store. Without ``address`` a private Ray instance is
started on this machine (local mode: no dashboard, no usage statistics, no
network access beyond localhost); ``address="auto"`` joins a running cluster.

``import ray`` happens only inside :func:`embed_images_ray`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from .._validation import InstanceOf, Interval, IsNone, validate_params
from ..errors import CacheError, DetpruneError, ParameterError
from .embed import _CONSTRAINTS, Embeddings, _stat_all, embedding_identity
from .weights import WeightsInfo, resolve_weights

__all__ = ["RayEngineError", "embed_images_ray", "ray_session"]

logger = logging.getLogger("detprune.features")

#: Images per shard at most (one shard = one Ray Data block = one ``map_batches`` call).
MAX_SHARD_ROWS = 1024
#: Environment that keeps Ray offline and quiet (set only where the user has not set it).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_DEDUP_LOGS": "0",
}
_FORWARDED_ENV = ("DETPRUNE_HOME", "DETPRUNE_OFFLINE", "YOLO_OFFLINE", "YOLO_AUTOINSTALL")


class RayEngineError(DetpruneError):
    """The Ray engine could not run (cluster unreachable, workers failed)."""


def _one_line(exc: BaseException) -> str:
    """The innermost cause of a (Ray-wrapped) exception, as ``Type: message`` on one line."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = [t.strip() for t in str(exc).strip().splitlines() if t.strip()]
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) < 300 else line[:300] + "..."


@contextlib.contextmanager
def ray_session(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None
) -> Iterator[Any]:
    """Connect to Ray (or start a private local instance) for the duration of the block.

    Parameters
    ----------
    address : str, optional
        ``None`` or ``"local"``: start a private Ray instance on this machine
        (no dashboard, usage statistics off); ``"auto"``: the cluster running on
        this machine (``ray start``); ``"HOST:PORT"`` or ``"ray://HOST:PORT"``.
    num_cpus, num_gpus : int, optional
        Resources of a local instance (default: what Ray detects).

    Yields
    ------
    module
        The ``ray`` module. If Ray was already initialised by the caller, that
        connection is used and left open.
    """
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    ray = require("ray", purpose="the Ray embedding engine (--engine ray)")
    require("ray.data", purpose="the Ray embedding engine (--engine ray)")
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address in (None, "local"):
        kwargs.update(address="local", num_cpus=num_cpus, num_gpus=num_gpus)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray
        raise RayEngineError(
            f"cannot start or reach Ray at {address or 'local'} ({_one_line(exc)})"
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _weights_spec(info: WeightsInfo) -> str:
    """What a worker passes to ``resolve_weights`` to rebuild exactly this model."""
    return info.path if info.path else f"{info.model}.yaml"


class _EmbedWorker:
    """Ray Data actor: one model, embeds a shard of images per call and writes it.

    Parameters
    ----------
    spec : str
        Weights as :func:`resolve_weights` takes them (checkpoint path or yaml).
    blob : bytes, optional
        The checkpoint's bytes, used when ``spec`` is not a file on this node.
    seed, imgsz, batch : int
    device : str
        ``"cuda"`` or ``"cpu"``.
    threads : int
        Decode threads and (on CPU) torch threads of this actor.
    folder : str
        The run's shard folder.
    env : dict
        Environment to apply before importing ultralytics (offline settings).
    """

    def __init__(
        self,
        *,
        spec: str,
        blob: bytes | None,
        seed: int,
        imgsz: int,
        batch: int,
        device: str,
        threads: int,
        folder: str,
        env: dict[str, str],
    ) -> None:
        os.environ.update(env)
        import torch

        from .embed import Embedder

        path = spec
        if blob is not None and not Path(spec).is_file():
            tmp = Path(tempfile.mkdtemp(prefix="detprune-weights-"))
            path = str(tmp / Path(spec).name)
            Path(path).write_bytes(blob)
        resolved = resolve_weights(path, seed=seed)
        self.embedder = Embedder(resolved, imgsz=imgsz, device=device, seed=seed).build()
        self.cuda = self.embedder.device.type == "cuda"
        self.identity = embedding_identity(resolved.info, imgsz)[1]
        self.dims = list(self.embedder.dims)
        self.batch = int(batch)
        self.threads = max(1, int(threads))
        self.folder = folder
        if not self.cuda:
            torch.set_num_threads(self.threads)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import cv2

        from .loader import BatchLoader
        from .shards import write_shard

        pos = np.asarray(rows["pos"], np.int64)
        paths = [str(p) for p in rows["path"]]
        keys = [str(k) for k in rows["key"]]
        sizes = np.asarray(rows["size"], np.int64)
        mtimes = np.asarray(rows["mtime"], np.int64)
        m = len(paths)
        vectors = np.empty((m, sum(self.dims)), np.float32)
        ok = np.zeros(m, bool)
        failed: dict[str, tuple[int, int, str]] = {}
        loader = BatchLoader(
            paths,
            imgsz=self.embedder.imgsz,
            batch=self.batch,
            workers=self.threads,
            pin_memory=self.cuda,
            prefetch=None if self.cuda else 0,
        )
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for b in loader:
                count = len(b.positions)
                # the same call on the same batches as the local engine's CPU path
                vec = self.embedder.embed_pixels(b.pixels[:count])
                b.release()
                good = b.positions[b.ok]
                vectors[good] = vec[b.ok]
                ok[good] = True
                for p, why in b.errors.items():
                    failed[keys[p]] = (int(sizes[p]), int(mtimes[p]), why)
        finally:
            cv2.setNumThreads(cv2_threads)
        name = f"shard-{int(pos.min()):09d}-{int(pos.max()):09d}"
        write_shard(
            self.folder,
            name,
            identity=self.identity,
            keys=[k for k, g in zip(keys, ok, strict=True) if g],
            sizes=sizes[ok],
            mtimes=mtimes[ok],
            vectors=vectors[ok],
            failed=failed,
            dims=self.dims,
        )
        return {
            "shard": np.array([name]),
            "rows": np.array([int(ok.sum())]),
            "failed": np.array([len(failed)]),
            "device": np.array([str(self.embedder.device)]),
            "precision": np.array([self.embedder.precision]),
        }


_RAY_CONSTRAINTS = {
    **_CONSTRAINTS,
    "cache_dir": InstanceOf((str, os.PathLike), "a path (the Ray engine merges shards there)"),
    "address": [IsNone(), InstanceOf(str, "a Ray address ('auto', 'HOST:PORT', 'local')")],
    "actors": [IsNone(), Interval("int", 1, None)],
    "cpus_per_actor": [IsNone(), Interval("int", 1, None)],
    "shard_rows": [IsNone(), Interval("int", 1, None)],
    "num_cpus": [IsNone(), Interval("int", 1, None)],
}


def _plan(n_todo: int, batch: int, actors: int, shard_rows: int | None) -> int:
    """Rows per shard: whole forward batches, enough shards to keep every actor busy."""
    if shard_rows is None:
        per = math.ceil(n_todo / max(1, 4 * actors))
        shard_rows = min(MAX_SHARD_ROWS, max(batch, per))
    return max(batch, math.ceil(shard_rows / batch) * batch)


def embed_images_ray(
    paths: Sequence[str | os.PathLike],
    *,
    weights: str | os.PathLike = "auto",
    imgsz: int = 640,
    batch: int = 16,
    device: Any = "auto",
    workers: int | None = None,
    cache_dir: str | os.PathLike,
    keys: Sequence[str] | None = None,
    progress: bool = True,
    seed: int = 0,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: int | None = None,
    shard_rows: int | None = None,
    num_cpus: int | None = None,
) -> Embeddings:
    """Embed image files on a Ray cluster; same result as :func:`~detprune.features.embed_images`.

    Parameters
    ----------
    paths : sequence of str or path-like, length n
        Image files, reachable under these paths from every Ray node.
    weights, imgsz, batch, keys, progress, seed
        As in :func:`~detprune.features.embed_images`.
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``"auto"``: GPU actors when the cluster has GPUs, else CPU actors.
    workers : int, optional
        Decode threads per actor (default ``cpus_per_actor``).
    cache_dir : str or path-like
        Embedding cache root, on storage shared by all nodes: shards are
        written to ``cache_dir/shards/<run>/`` and merged into the cache.
    address : str, optional
        Ray address (see :func:`ray_session`); default a private local instance.
    actors : int, optional
        Actor pool size (default: one per GPU, or ``CPUs // cpus_per_actor``).
    cpus_per_actor : int, optional
        CPUs reserved per actor (default ``min(4, CPUs)`` on CPU actors,
        ``min(8, CPUs // GPUs)`` on GPU actors).
    shard_rows : int, optional
        Images per shard (rounded up to whole batches; default enough shards
        for four per actor, at most 1024 images each).
    num_cpus : int, optional
        CPUs of a local instance (default: all).

    Returns
    -------
    Embeddings
        ``vectors`` of shape (n, d) float32, read back from the cache;
        ``settings["engine"] == "ray"`` and ``settings["ray"]`` describes the run.

    Raises
    ------
    ParameterError
        On an invalid argument, or ``device="cuda"`` on a cluster without GPUs.
    RayEngineError
        If Ray cannot be reached or a worker fails.
    ShardError
        If the workers' shards are incomplete, duplicated or from another model.
    MissingDependencyError
        If Ray is not installed (``pip install "detprune[ray]"``).
    """
    validate_params(
        "embed_images_ray",
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
            "address": address,
            "actors": actors,
            "cpus_per_actor": cpus_per_actor,
            "shard_rows": shard_rows,
            "num_cpus": num_cpus,
        },
        _RAY_CONSTRAINTS,
    )
    dev = str(device)
    if not (dev in ("auto", "cpu") or dev.startswith("cuda")):
        raise ParameterError(
            f"The 'device' parameter of embed_images_ray must be 'auto', 'cpu' or 'cuda'. "
            f"Got {device!r} instead."
        )
    from .cache import EmbeddingCache
    from .embed import embed_images
    from .shards import merge_shards, store_merged

    files = [os.fspath(p) for p in paths]
    n = len(files)
    key_list = files if keys is None else [str(k) for k in keys]
    if len(key_list) != n:
        raise ParameterError(
            f"The 'keys' parameter of embed_images_ray must have one key per path ({n}). "
            f"Got {len(key_list)} instead."
        )
    resolved = resolve_weights(weights, seed=seed)
    spec = _weights_spec(resolved.info)
    _, identity = embedding_identity(resolved.info, imgsz)
    try:
        store = EmbeddingCache(cache_dir, identity)
    except OSError as exc:
        raise CacheError(f"embedding cache at {cache_dir} is not usable ({exc})") from exc
    sizes, mtimes, exists = _stat_all(files)
    found = store.lookup(key_list, sizes, mtimes)
    known = found.hit.copy()
    if found.failed:
        known[list(found.failed)] = True
    todo = np.flatnonzero(~known & exists)
    run: dict[str, Any] = {"address": address or "local", "computed": 0, "vectors": 0}
    if len(todo):
        run = _run(
            files,
            key_list,
            sizes,
            mtimes,
            todo,
            store,
            identity,
            spec,
            resolved.info,
            seed=seed,
            imgsz=imgsz,
            batch=batch,
            device=dev,
            workers=workers,
            address=address,
            actors=actors,
            cpus_per_actor=cpus_per_actor,
            shard_rows=shard_rows,
            num_cpus=num_cpus,
            progress=progress,
            merge=merge_shards,
            store_merged=store_merged,
        )
    # read everything back through the local engine: all hits now (a file changed meanwhile
    # would be embedded locally, like any cache miss)
    emb = embed_images(
        files,
        weights=spec,
        imgsz=imgsz,
        batch=batch,
        device="cpu",
        workers=workers,
        cache_dir=cache_dir,
        keys=key_list,
        progress=progress,
        seed=seed,
    )
    settings = {**emb.settings, "engine": "ray", "ray": run}
    if run.get("device"):
        settings["device"] = run["device"]
        settings["precision"] = run["precision"]
    cache = {
        **emb.cache,
        "computed": int(run["computed"]) + int(emb.cache.get("computed", 0)),
        "hits": int(emb.cache.get("hits", 0)) - int(run["vectors"]),
    }
    return dataclasses.replace(emb, weights=resolved.info, settings=settings, cache=cache)


def _run(
    files: list[str],
    keys: list[str],
    sizes: np.ndarray,
    mtimes: np.ndarray,
    todo: np.ndarray,
    store: Any,
    identity: dict[str, Any],
    spec: str,
    info: WeightsInfo,
    *,
    seed: int,
    imgsz: int,
    batch: int,
    device: str,
    workers: int | None,
    address: str | None,
    actors: int | None,
    cpus_per_actor: int | None,
    shard_rows: int | None,
    num_cpus: int | None,
    progress: bool,
    merge: Any,
    store_merged: Any,
) -> dict[str, Any]:
    """Embed ``files[todo]`` on Ray, merge the shards into ``store``; returns the run summary."""
    pa = require("pyarrow", purpose="the Ray embedding engine (--engine ray)")
    folder = Path(store.root).parent.parent / "shards" / f"{store.root.name}-{uuid.uuid4().hex[:8]}"
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    blob = None
    if info.path and info.kind in ("ultralytics", "legacy"):
        blob = Path(info.path).read_bytes()
    with ray_session(address, num_cpus=num_cpus) as ray:
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        gpus = int(resources.get("GPU", 0))
        if device.startswith("cuda") and gpus == 0:
            raise ParameterError(
                f"The 'device' parameter of embed_images_ray must be 'auto' or 'cpu' on a Ray "
                f"cluster without GPUs. Got {device!r} instead."
            )
        use_gpu = gpus > 0 and device != "cpu"
        if use_gpu:
            per = cpus_per_actor or max(1, min(8, cpus // gpus))
            pool = actors or gpus
        else:
            per = cpus_per_actor or min(4, cpus)
            pool = actors or max(1, cpus // per)
        per = min(per, cpus)
        rows_per = _plan(len(todo), batch, pool, shard_rows)
        blocks = [todo[s : s + rows_per] for s in range(0, len(todo), rows_per)]
        pool = max(1, min(pool, len(blocks)))
        tables = [
            pa.table(
                {
                    "pos": pa.array(b, pa.int64()),
                    "path": pa.array([files[i] for i in b], pa.string()),
                    "key": pa.array([keys[i] for i in b], pa.string()),
                    "size": pa.array(sizes[b], pa.int64()),
                    "mtime": pa.array(mtimes[b], pa.int64()),
                }
            )
            for b in blocks
        ]
        from ray.data import ActorPoolStrategy, DataContext

        quiet = warnings.catch_warnings()
        quiet.__enter__()
        # Ray Data's own deprecation notices (about its settings, not ours) stay out of the output
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        ctx = DataContext.get_current()
        bars = ctx.enable_progress_bars
        ctx.enable_progress_bars = bool(progress)
        data_log = logging.getLogger("ray.data")
        level = data_log.level
        data_log.setLevel(logging.WARNING if progress else logging.ERROR)
        logger.info(
            "ray engine: %d images in %d shards on %d %s actor(s)",
            len(todo),
            len(blocks),
            pool,
            "GPU" if use_gpu else "CPU",
        )
        try:
            ds = ray.data.from_arrow(tables)
            out = ds.map_batches(
                _EmbedWorker,
                fn_constructor_kwargs={
                    "spec": spec,
                    "blob": blob,
                    "seed": seed,
                    "imgsz": imgsz,
                    "batch": batch,
                    "device": "cuda" if use_gpu else "cpu",
                    "threads": workers or per,
                    "folder": str(folder),
                    "env": env,
                },
                batch_size=rows_per,
                batch_format="numpy",
                compute=ActorPoolStrategy(size=pool),
                num_cpus=per,
                num_gpus=1 if use_gpu else 0,
            )
            results = out.take_all()
        except DetpruneError:
            raise
        except Exception as exc:
            raise RayEngineError(
                f"Ray embedding failed ({_one_line(exc)}); shards kept in {folder}"
            ) from exc
        finally:
            ctx.enable_progress_bars = bars
            data_log.setLevel(level)
            quiet.__exit__(None, None, None)
    shards = [str(r["shard"]) for r in results]
    merged = merge(folder, identity=identity, expected=[keys[i] for i in todo], shards=shards)
    store_merged(store, merged)
    n_vectors = len(merged.keys)
    del merged
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # only when empty
    return {
        "address": address or "local",
        "actors": pool,
        "gpus_per_actor": 1 if use_gpu else 0,
        "cpus_per_actor": per,
        "shards": len(shards),
        "shard_rows": rows_per,
        "computed": len(todo),
        "vectors": n_vectors,
        "device": str(results[0]["device"]) if results else ("cuda" if use_gpu else "cpu"),
        "precision": str(results[0]["precision"]) if results else "float32",
    }
