"""Fine-tuning on (pruned) datasets, dynamic data-reduction schedules, run comparison.

``import detprune.train`` is light: torch and ultralytics are imported by
:func:`train` when it runs.

Public API
----------
train(data, *, model="auto", epochs, ...) -> TrainResult
TrainResult            frozen: out, results (the content of results.json)
fractions(schedule, epochs) -> list[float]
images_for_epoch(n, fraction, epoch, *, order=None, seed=0) -> ndarray
parse_schedule(text) -> Schedule
compare_runs(runs, *, baseline=None) -> Comparison
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Comparison",
    "Schedule",
    "TrainResult",
    "compare_runs",
    "epoch_size",
    "fractions",
    "images_for_epoch",
    "parse_schedule",
    "train",
]

_WHERE = {
    "TrainResult": "finetune",
    "train": "finetune",
    "Schedule": "schedules",
    "epoch_size": "schedules",
    "fractions": "schedules",
    "images_for_epoch": "schedules",
    "parse_schedule": "schedules",
    "Comparison": "compare",
    "compare_runs": "compare",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'detprune.train' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
