"""The one module that wires the stages: dataset -> features -> selection -> export."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .dataset import load_dataset
from .dataset.summary import summarize


def inspect(
    data: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    check_images: bool = True,
    min_stratum_size: int = 10,
) -> dict:
    """Load and validate a dataset and summarise it (see :func:`detprune.dataset.summary.summarize`)."""
    from ._validation import Interval, validate_params

    validate_params("inspect", {"min_stratum_size": min_stratum_size}, {"min_stratum_size": Interval("int", 1)})
    ds = load_dataset(data, splits=splits, check_images=check_images)
    strata_split = "train" if "train" in ds.splits else next(iter(ds.splits))
    return summarize(ds, strata_split=strata_split, min_stratum_size=min_stratum_size)
