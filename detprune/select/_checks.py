"""Array and scalar checks shared by the selection engine (private).

Public entry points call these once, at the start of work; private helpers
assume valid input. Every failure uses the one error format of
:mod:`detprune._validation`.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import Interval, validate_params
from ..errors import ParameterError


def describe(value: Any) -> str:
    """A short description of a value for an error message (never a huge repr)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"a {type(value).__name__} of length {len(value)}"
    return repr(value)


def fail(owner: str, name: str, expected: str, got: str) -> ParameterError:
    """Build the one error format with a pre-formatted ``got`` part."""
    return ParameterError(
        f"The '{name}' parameter of {owner} must be {expected}. Got {got} instead."
    )


def check_matrix(X: Any, owner: str, name: str = "X") -> np.ndarray:
    """Return ``X`` as a 2-D float32/float64 array with n >= 1 rows, d >= 1 columns, all finite.

    Integer and boolean input is converted to float64; float16 to float32;
    float32 and float64 are kept as they are (no copy when already an array).
    """
    expected = "a 2-D array of finite real numbers with at least one row and one column"
    try:
        arr = np.asarray(X)
    except Exception:  # pragma: no cover - exotic objects
        raise fail(owner, name, expected, describe(X)) from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise fail(owner, name, expected, describe(arr))
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        raise fail(owner, name, expected, describe(arr))
    if not np.isfinite(arr).all():
        raise fail(owner, name, expected, "an array containing NaN or infinity")
    return arr


def check_budget(budget: Any, n: int, owner: str) -> int:
    """Validate ``budget`` as an int in ``[1, n]`` and return it as a Python int."""
    validate_params(owner, {"budget": budget}, {"budget": Interval("int", 1, n, "both")})
    return int(budget)


def check_seed(seed: Any, owner: str) -> int:
    """Validate ``seed`` as a non-negative int and return it as a Python int."""
    validate_params(owner, {"seed": seed}, {"seed": Interval("int", 0, None)})
    return int(seed)


def check_labels(labels: Any, n: int, owner: str, name: str) -> np.ndarray | None:
    """Validate an optional per-row label vector ``(n,)`` of integers; returns int64 or None."""
    if labels is None:
        return None
    arr = np.asarray(labels)
    expected = f"None or a 1-D array of {n} integers"
    if arr.ndim != 1 or arr.shape[0] != n or (arr.size and arr.dtype.kind not in "iub"):
        raise fail(
            owner, name, expected, describe(labels if isinstance(labels, np.ndarray) else arr)
        )
    return arr.astype(np.int64, copy=False)


def check_multihot(classes: Any, n: int, owner: str, name: str = "classes") -> np.ndarray | None:
    """Validate an optional multi-hot matrix ``(n, C)`` of 0/1 values; returns bool or None."""
    if classes is None:
        return None
    arr = np.asarray(classes)
    expected = f"None or a 2-D boolean (multi-hot) array with {n} rows"
    if arr.ndim != 2 or arr.shape[0] != n:
        raise fail(owner, name, expected, describe(arr))
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
            raise fail(owner, name, expected, describe(arr))
        arr = arr.astype(bool)
    return arr


def check_indices(indices: Any, n: int, owner: str, name: str = "kept_indices") -> np.ndarray:
    """Validate unique integer row indices in ``[0, n)``; returns int64 (original order)."""
    arr = np.asarray(indices)
    expected = f"a 1-D array of unique integers in [0, {n})"
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise fail(owner, name, expected, describe(arr))
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n or np.unique(arr).size != arr.size):
        raise fail(owner, name, expected, "indices out of range or repeated")
    return arr


def is_int(value: Any) -> bool:
    """True for integers (bool excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
