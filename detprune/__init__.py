"""detprune: prune object-detection training sets in YOLOv5 embedding space.

``import detprune`` is light: torch, ultralytics and faiss are imported only by
the functions that need them.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
    CacheError,
    DatasetError,
    DetpruneError,
    MissingDependencyError,
    OutputError,
    ParameterError,
    WriteError,
)

__all__ = [
    "CacheError",
    "DatasetError",
    "DetpruneError",
    "MissingDependencyError",
    "OutputError",
    "ParameterError",
    "WriteError",
    "__version__",
    "load_dataset",
]


def __getattr__(name: str):
    if name == "load_dataset":
        from .dataset import load_dataset

        return load_dataset
    raise AttributeError(f"module 'detprune' has no attribute {name!r}")
