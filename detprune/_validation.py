"""One parameter-check and one error format for the whole package.

A public entry point declares its constraints as a table and calls
:func:`validate_params` when work starts; private helpers assume valid input.
The message is always::

    The 'keep' parameter of MMS must be a float in (0, 1]. Got 0 instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError


class Constraint:
    """A check on one parameter value, with a human description."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Interval(Constraint):
    """A real or integral number in an interval.

    Parameters
    ----------
    kind : {"int", "float", "real"}
        ``"int"`` accepts integers only, ``"float"``/``"real"`` any real number (bool excluded).
    low, high : float or None
        Bounds; ``None`` means unbounded.
    closed : {"both", "left", "right", "neither"}
        Which bounds are included.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "int":
            if not isinstance(value, numbers.Integral):
                return False
        elif not isinstance(value, numbers.Real):
            return False
        if value != value:  # NaN
            return False
        if self.kind != "int" and math.isinf(value):  # no parameter takes an infinite value
            return False
        if self.low is not None:
            if self.closed in ("both", "left"):
                if value < self.low:
                    return False
            elif value <= self.low:
                return False
        if self.high is not None:
            if self.closed in ("both", "right"):
                if value > self.high:
                    return False
            elif value >= self.high:
                return False
        return True

    def describe(self) -> str:
        name = "an int" if self.kind == "int" else "a finite float" if self.high is None else "a float"
        if self.low is None and self.high is None:
            return name
        if self.high is None:
            op = ">=" if self.closed in ("both", "left") else ">"
            return f"{name} {op} {_fmt(self.low)}"
        if self.low is None:
            op = "<=" if self.closed in ("both", "right") else "<"
            return f"{name} {op} {_fmt(self.high)}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{name} in {left}{_fmt(self.low)}, {_fmt(self.high)}{right}"


#: Seeds of the commands: torch, numpy and ultralytics take them as 32-bit numbers.
SEED = Interval("int", 0, 2**32 - 1)


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class IsNone(Constraint):
    """Exactly ``None``."""

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of a type (bool is never an int here)."""

    type_: type | tuple[type, ...]
    name: str

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.type_)

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class Predicate(Constraint):
    """Any check with its description."""

    check: Callable[[Any], bool]
    name: str

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.check(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.name


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def param_error(owner: str, name: str, expected: str, value: Any) -> ParameterError:
    """Build the one error format for a bad parameter."""
    return ParameterError(
        f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead."
    )


def validate_params(
    owner: str,
    params: Mapping[str, Any],
    constraints: Mapping[str, Constraint | Iterable[Constraint]],
) -> None:
    """Check every parameter in ``params`` against its declared constraints.

    Parameters
    ----------
    owner : str
        Who the parameter belongs to, e.g. ``"MMS"``.
    params : mapping
        Parameter name -> value.
    constraints : mapping
        Parameter name -> one constraint or a list of alternatives (any may hold).

    Raises
    ------
    ParameterError
        With the message ``The 'x' parameter of OWNER must be ... Got ... instead.``
    """
    for name, value in params.items():
        if name not in constraints:
            continue
        spec = constraints[name]
        options = [spec] if isinstance(spec, Constraint) else list(spec)
        if not any(c.is_satisfied_by(value) for c in options):
            expected = " or ".join(c.describe() for c in options)
            raise param_error(owner, name, expected, value)
