"""The reducer interface and the frozen result of a selection.

A :class:`Reducer` selects ``budget`` rows of a feature matrix ``X``. It is
class-agnostic: class balancing happens once, for every method, in
:mod:`detprune.select.stratified`. Reducers follow the scikit-learn pattern:
``__init__`` only stores keyword-only parameters, :meth:`Reducer.select`
validates them (against the declared ``_constraints`` table) and the input, then
calls the private :meth:`Reducer._select`, which assumes valid input.
"""

from __future__ import annotations

import abc
import inspect
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._validation import Constraint, validate_params
from ._checks import check_budget, check_matrix, check_multihot, check_seed, fail
from ._threads import single_threaded_blas

__all__ = ["Reducer", "Selection"]


def _check_json(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{owner}.{name} must be a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{owner}.{name} must be JSON-serialisable: {exc}") from None


def check_targets(reducer: Reducer, targets: Any, n: int, owner: str) -> np.ndarray | None:
    """Validate the optional per-row targets for ``reducer`` (required when it needs them)."""
    if not reducer.needs_targets:
        return None
    if targets is None:
        raise fail(
            owner,
            "targets",
            f"a 2-D boolean (multi-hot) array with {n} rows ({reducer.name.upper()} "
            "needs per-image targets; stratified_select passes 'classes')",
            "None",
        )
    return check_multihot(targets, n, owner, "targets")


@dataclass(frozen=True, eq=False)
class Selection:
    """The result of a selection: picked row indices in pick order, with a score per pick.

    Parameters
    ----------
    indices : ndarray of int64, shape (k,)
        Unique, non-negative row indices of the selected images, in pick order
        (the first ``m`` entries are the method's choice for a budget of about ``m``
        where the method is greedy or ranked; see each method).
    scores : ndarray of float64, shape (k,)
        A finite score per pick; its meaning depends on the method (documented on
        each reducer), e.g. the covering radius for MMS or the distance to the
        cluster centre for CLC.
    method : str
        Registry name of the method that produced it (``"mms"``, ...).
    params : dict
        The parameters used (JSON-serialisable), including ``budget`` and ``seed``.
    info : dict
        JSON-serialisable extras (per-stratum quotas, class retention, warnings, ...).

    Notes
    -----
    The arrays are copied and made read-only; the instance is immutable.
    """

    indices: np.ndarray
    scores: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        idx = np.array(self.indices, copy=True)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(
                f"Selection.indices must be a 1-D integer array, got shape {idx.shape} "
                f"and dtype {idx.dtype}"
            )
        idx = idx.astype(np.int64)
        if idx.size and idx.min() < 0:
            raise ValueError("Selection.indices must be non-negative")
        if np.unique(idx).size != idx.size:
            raise ValueError("Selection.indices must be unique")
        scores = np.array(self.scores, dtype=np.float64, copy=True)
        if scores.shape != idx.shape:
            raise ValueError(
                f"Selection.scores must have shape {idx.shape} like indices, got {scores.shape}"
            )
        if not np.isfinite(scores).all():
            raise ValueError("Selection.scores must be finite")
        if not isinstance(self.method, str) or not self.method:
            raise TypeError("Selection.method must be a non-empty string")
        if isinstance(self.params, dict):  # numpy numbers (np.int64(5) passes the int checks)
            object.__setattr__(self, "params", {
                k: v.item() if isinstance(v, np.generic) else v for k, v in self.params.items()})
        _check_json("Selection", "params", self.params)
        _check_json("Selection", "info", self.info)
        idx.flags.writeable = False
        scores.flags.writeable = False
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return (
            np.array_equal(self.indices, other.indices)
            and np.array_equal(self.scores, other.scores)
            and self.method == other.method
            and self.params == other.params
            and self.info == other.info
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict:
        """A JSON-serialisable dictionary of the whole selection."""
        return {
            "method": self.method,
            "indices": self.indices.tolist(),
            "scores": self.scores.tolist(),
            "params": self.params,
            "info": self.info,
        }


class Reducer(abc.ABC):
    """Select ``budget`` rows of a feature matrix (abstract base of every method).

    Subclasses declare

    * ``name`` -- registry key, lowercase (``"mms"``);
    * ``description`` -- one line for ``detprune methods``;
    * ``_constraints`` -- parameter name -> constraint(s), checked by :meth:`select`;
    * ``randomized`` -- whether the result depends on ``seed``;
    * ``needs_targets`` -- whether the method needs per-row targets (default
      ``False``); such a reducer implements ``_select(X, budget, seed, targets)``
      and :func:`~detprune.select.stratified.stratified_select` passes it the
      stratum's rows of ``classes``;
    * an ``__init__`` with keyword-only parameters that only stores them;
    * ``_select(X, budget, seed) -> (indices, scores, info)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    _constraints: ClassVar[dict[str, Constraint | list[Constraint]]] = {}
    randomized: ClassVar[bool] = True
    needs_targets: ClassVar[bool] = False

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters as a dict (name -> value)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def _owner(self) -> str:
        return type(self).__name__

    def _check_params(self) -> None:
        """Validate the stored parameters against ``_constraints`` (one error format)."""
        validate_params(self._owner, self.get_params(), self._constraints)
        self._check_extra()

    def _check_extra(self) -> None:  # noqa: B027 - optional hook
        """Cross-parameter or environment checks beyond ``_constraints`` (override)."""

    def select(self, X: Any, budget: int, *, seed: int = 0, targets: Any = None) -> Selection:
        """Select ``budget`` rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n, d)
            Feature matrix (float32 or float64; integers are converted to float64).
            Must be finite with ``n >= 1``.
        budget : int
            Number of rows to select, in ``[1, n]``.
        seed : int, default 0
            Seed of every random step; the same seed gives the same result.
        targets : array-like of bool, shape (n, C), optional
            Per-row multi-hot targets (class presence). Required by reducers with
            ``needs_targets = True`` (e.g. FES), ignored by the others.

        Returns
        -------
        Selection
            ``indices`` (k = budget, unique, in pick order) into the rows of ``X``.

        Raises
        ------
        ParameterError
            A parameter, ``X``, ``budget`` or ``seed`` is invalid.
        """
        self._check_params()
        X = check_matrix(X, self._owner)
        budget = check_budget(budget, X.shape[0], self._owner)
        seed = check_seed(seed, self._owner)
        tgt = check_targets(self, targets, X.shape[0], self._owner)
        with single_threaded_blas():  # see _threads: BLAS threads spin on a busy host
            indices, scores, info = self._run(X, budget, seed, tgt)
        params = {**self.get_params(), "budget": budget, "seed": seed}
        return Selection(indices, scores, self.name, params, info)

    def _run(
        self, X: np.ndarray, budget: int, seed: int, targets: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """Call :meth:`_select`, with ``targets`` only for reducers that need them."""
        if self.needs_targets:
            return self._select(X, budget, seed, targets)  # type: ignore[call-arg]
        return self._select(X, budget, seed)

    @abc.abstractmethod
    def _select(self, X: np.ndarray, budget: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """Select ``budget`` rows of valid ``X`` (n, d); returns (indices (k,), scores (k,), info)."""
