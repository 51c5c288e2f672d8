"""Image embeddings from a YOLOv5 backbone, with a persistent cache.

``import detprune.features`` is light: torch and ultralytics are imported by
the functions that need them.

Public API
----------
embed_images(paths, *, weights="auto", imgsz=640, batch=16, device="auto",
             workers=None, cache_dir=None, keys=None, progress=True, seed=0) -> Embeddings
Embeddings      frozen result: vectors (n, d) float32, ok, failures, dims, weights, settings, cache
Embedder        a built backbone for repeated use (``stream``, ``embed_pixels``, ``pooled``)
WeightsInfo     provenance of the weights (kind, model, path, sha256, seed, key)
resolve_weights / load_model
EmbeddingCache, CacheWarning
embed_images_ray(paths, *, ..., cache_dir, address=None, actors=None) -> Embeddings
                the same on a Ray cluster (``pip install "detprune[ray]"``; docs/scaling.md)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EMBED_LAYERS",
    "CacheWarning",
    "Embedder",
    "EmbeddingCache",
    "Embeddings",
    "WeightsInfo",
    "embed_images",
    "embed_images_ray",
    "load_model",
    "resolve_weights",
]

_WHERE = {
    "EMBED_LAYERS": "weights",
    "WeightsInfo": "weights",
    "load_model": "weights",
    "resolve_weights": "weights",
    "Embedder": "embed",
    "Embeddings": "embed",
    "embed_images": "embed",
    "embed_images_ray": "ray_engine",
    "CacheWarning": "cache",
    "EmbeddingCache": "cache",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'detprune.features' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
