"""Import optional or heavy dependencies on demand, with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

_HINTS = {
    "faiss": 'pip install "detprune[cpu]"  (or "detprune[gpu]" on a CUDA host)',
    "ripser": 'pip install "detprune[topology]"',
    "ray": 'pip install "detprune[ray]"',
    "pyarrow": 'pip install "detprune[ray]"',
    "matplotlib": "pip install matplotlib",
    "codecarbon": "pip install codecarbon",
    "ultralytics": "pip install ultralytics",
    "torch": "pip install torch",
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` with an install hint.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"faiss"``.
    purpose : str, optional
        What it is needed for, shown in the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        hint = _HINTS.get(top, f"pip install {top}")
        why = f" (needed for {purpose})" if purpose else ""
        raise MissingDependencyError(
            f"Python package '{top}' is not installed{why}; install it with: {hint}"
        ) from exc
