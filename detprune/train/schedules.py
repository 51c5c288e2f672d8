"""Dynamic data reduction: which share of the training images each epoch uses.

Three schedules after Sanderson & Kalganova, *Maintaining Performance with
Less Data* (Data Step, Data Increment, Data Cut), written as text for the
``--schedule`` option:

``step:F@P``
    **Data Step.** The first ``P`` share of the epochs use a fraction ``F`` of the
    images, the rest use all of them. ``P`` is a *fraction of the epochs* in
    (0, 1]: the number of reduced epochs is ``round_half_up(P * epochs)`` (at
    least one), so ``step:0.5@0.5`` over 10 epochs trains epochs 1-5 on half the
    images and epochs 6-10 on all; ``P = 1`` reduces every epoch.
``increment:F``
    **Data Increment.** The fraction grows linearly from ``F`` in the first epoch
    to 1 in the last: ``f_e = F + (1 - F) * e / (E - 1)`` for epoch
    ``e = 0 .. E-1`` (a single epoch uses ``F``).
``cut:K`` or ``cut:K:F``
    **Data Cut.** The epochs are cut into ``K`` consecutive segments as equal as
    possible (the first ``epochs % K`` segments are one epoch longer); each
    segment repeats the increment from ``F`` to 1. ``F`` defaults to
    :data:`DEFAULT_CUT_START` (0.1). ``cut:1:F`` equals ``increment:F``; ``K``
    may not exceed the number of epochs.

All numbers are validated; a bad schedule raises
:class:`~detprune.errors.ParameterError` in the package's one error format.

An epoch with fraction ``f`` over ``n`` images uses
``k = clip(round_half_up(f * n), 1, n)`` images (:func:`epoch_size`). Which
images: :func:`images_for_epoch` draws a fresh uniform random subset per epoch
from a generator seeded with ``seed + epoch`` (as in the paper), or, given a
pick order (e.g. a pruning manifest's ranks), takes the first ``k`` of it, so
that a growing fraction adds the next-ranked images.

This module is pure: numpy only, no I/O, no global state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import param_error
from ..errors import ParameterError

__all__ = [
    "DEFAULT_CUT_START",
    "SCHEDULE_KINDS",
    "Schedule",
    "epoch_size",
    "fractions",
    "images_for_epoch",
    "parse_schedule",
]

#: Start fraction of each Data Cut segment when ``cut:K`` gives none.
DEFAULT_CUT_START = 0.1
#: The schedule kinds :func:`parse_schedule` accepts.
SCHEDULE_KINDS = ("step", "increment", "cut")

_OWNER = "train"
_EXPECT = {
    "step": "'step:F@P' with F a float in (0, 1] (fraction of images) and P a float in (0, 1] "
    "(fraction of epochs)",
    "increment": "'increment:F' with F a float in (0, 1] (start fraction)",
    "cut": "'cut:K' or 'cut:K:F' with K an int >= 1 (segments) and F a float in (0, 1] "
    "(start fraction)",
}
_ANY = "one of " + ", ".join(_EXPECT.values())
_FLOAT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERNS = {
    "step": re.compile(rf"step:(?P<f>{_FLOAT})@(?P<p>{_FLOAT})"),
    "increment": re.compile(rf"increment:(?P<f>{_FLOAT})"),
    "cut": re.compile(rf"cut:(?P<k>\d+)(?::(?P<f>{_FLOAT}))?"),
}


@dataclass(frozen=True)
class Schedule:
    """A parsed data-reduction schedule.

    Attributes
    ----------
    kind : {"step", "increment", "cut"}
    fraction : float
        ``F``: the reduced fraction (step) or the start fraction (increment, cut).
    portion : float or None
        ``P`` of a step schedule: the share of the epochs that is reduced.
    cuts : int or None
        ``K`` of a cut schedule.
    """

    kind: str
    fraction: float
    portion: float | None = None
    cuts: int | None = None

    def __str__(self) -> str:
        if self.kind == "step":
            return f"step:{_num(self.fraction)}@{_num(self.portion)}"
        if self.kind == "increment":
            return f"increment:{_num(self.fraction)}"
        return f"cut:{self.cuts}:{_num(self.fraction)}"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _in_unit(x: float) -> bool:
    return 0.0 < x <= 1.0 and math.isfinite(x)


def parse_schedule(text: str | Schedule) -> Schedule:
    """Parse ``step:F@P``, ``increment:F`` or ``cut:K[:F]``.

    Parameters
    ----------
    text : str or Schedule
        The schedule as written on the command line (case and surrounding
        blanks are ignored); a :class:`Schedule` is returned unchanged.

    Returns
    -------
    Schedule

    Raises
    ------
    ParameterError
        ``The 'schedule' parameter of train must be ... Got ... instead.``
    """
    if isinstance(text, Schedule):
        return text
    if not isinstance(text, str):
        raise param_error(_OWNER, "schedule", _ANY, text)
    s = text.strip().lower().replace(" ", "")
    kind = s.split(":", 1)[0]
    if kind not in _PATTERNS:
        raise param_error(_OWNER, "schedule", _ANY, text)
    m = _PATTERNS[kind].fullmatch(s)
    if m is None:
        raise param_error(_OWNER, "schedule", _EXPECT[kind], text)
    groups = m.groupdict()
    f = float(groups["f"]) if groups.get("f") is not None else DEFAULT_CUT_START
    if not _in_unit(f):
        raise param_error(_OWNER, "schedule", _EXPECT[kind], text)
    if kind == "step":
        p = float(groups["p"])
        if not _in_unit(p):
            raise param_error(_OWNER, "schedule", _EXPECT[kind], text)
        return Schedule("step", f, portion=p)
    if kind == "increment":
        return Schedule("increment", f)
    k = int(groups["k"])
    if k < 1:
        raise param_error(_OWNER, "schedule", _EXPECT[kind], text)
    return Schedule("cut", f, cuts=k)


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


def _ramp(start: float, length: int) -> list[float]:
    if length == 1:
        return [start]
    return [start + (1.0 - start) * j / (length - 1) for j in range(length)]


def fractions(schedule: str | Schedule | None, epochs: int) -> list[float]:
    """The fraction of the training images used in each epoch.

    Parameters
    ----------
    schedule : str, Schedule or None
        See the module docstring; None means all images in every epoch.
    epochs : int
        Number of epochs, >= 1.

    Returns
    -------
    list of float
        ``epochs`` values in (0, 1].

    Raises
    ------
    ParameterError
        On a malformed schedule, ``epochs < 1``, or ``cut:K`` with ``K > epochs``.

    Examples
    --------
    >>> fractions("step:0.5@0.5", 4)
    [0.5, 0.5, 1.0, 1.0]
    >>> fractions("increment:0.25", 4)
    [0.25, 0.5, 0.75, 1.0]
    >>> fractions("cut:2:0.5", 4)
    [0.5, 1.0, 0.5, 1.0]
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int | np.integer) or epochs < 1:
        raise param_error(_OWNER, "epochs", "an int >= 1", epochs)
    epochs = int(epochs)
    if schedule is None:
        return [1.0] * epochs
    s = parse_schedule(schedule)
    if s.kind == "step":
        reduced = min(epochs, max(1, _round_half_up(s.portion * epochs)))
        return [s.fraction] * reduced + [1.0] * (epochs - reduced)
    if s.kind == "increment":
        return _ramp(s.fraction, epochs)
    if s.cuts > epochs:
        raise ParameterError(
            f"The 'schedule' parameter of train must be 'cut:K[:F]' with K <= epochs ({epochs}). "
            f"Got {str(s)!r} instead."
        )
    base, extra = divmod(epochs, s.cuts)
    out: list[float] = []
    for j in range(s.cuts):
        out += _ramp(s.fraction, base + (1 if j < extra else 0))
    return out


def epoch_size(n: int, fraction: float) -> int:
    """Number of images an epoch with ``fraction`` uses out of ``n``.

    ``clip(round_half_up(fraction * n), 1, n)``; 0 when ``n == 0``.

    Parameters
    ----------
    n : int
        Images in the training set.
    fraction : float
        In (0, 1].

    Returns
    -------
    int
    """
    if n <= 0:
        return 0
    return min(n, max(1, _round_half_up(fraction * n)))


def images_for_epoch(
    n: int,
    fraction: float,
    epoch: int,
    *,
    order: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the training images that epoch ``epoch`` uses.

    Parameters
    ----------
    n : int
        Images in the training set (indices ``0 .. n-1``).
    fraction : float
        Fraction of the images for this epoch, in (0, 1].
    epoch : int
        0-based epoch number.
    order : sequence of int, optional
        A pick order: a permutation of ``0 .. n-1``, best first. The epoch uses
        its first :func:`epoch_size` entries. Without it, a uniform random
        subset drawn with ``numpy.random.default_rng(seed + epoch)``.
    seed : int, default 0
        Seed of the random subsets.

    Returns
    -------
    numpy.ndarray of int64
        Unique indices: ascending for a random subset, in pick order otherwise.
        All of ``0 .. n-1`` (ascending) when ``fraction == 1`` and no order is given.

    Raises
    ------
    ParameterError
        If ``fraction`` is outside (0, 1], ``n`` or ``epoch`` negative, or
        ``order`` is not a permutation of ``0 .. n-1``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise param_error("images_for_epoch", "n", "an int >= 0", n)
    if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
        raise param_error("images_for_epoch", "epoch", "an int >= 0", epoch)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float | np.floating):
        raise param_error("images_for_epoch", "fraction", "a float in (0, 1]", fraction)
    if not _in_unit(float(fraction)):
        raise param_error("images_for_epoch", "fraction", "a float in (0, 1]", fraction)
    k = epoch_size(int(n), float(fraction))
    if order is not None:
        arr = np.asarray(order, dtype=np.int64).reshape(-1)
        if arr.size != n or (n and (arr.min() < 0 or arr.max() >= n)) or np.unique(arr).size != n:
            raise param_error(
                "images_for_epoch", "order", f"a permutation of 0..{n - 1}", f"<{arr.size} indices>"
            )
        return arr[:k].copy()
    if k == n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(int(seed) + int(epoch))
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
