"""Frozen, self-checking records of a YOLO detection dataset."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""Image file types read as dataset images (lower-case suffixes)."""

SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset, with where it is.

    Attributes
    ----------
    kind : str
        Machine-readable category, e.g. ``"field-count"``, ``"class-id"``.
    file : str
        The file the problem is in.
    line : int or None
        1-based line number in ``file`` where it applies.
    message : str
        Human explanation.
    severity : {"error", "warning"}
        ``"error"``: the line or image is left out; ``"warning"``: kept, but suspicious.
    """

    kind: str
    file: str
    line: int | None
    message: str
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        if self.line is not None and self.line < 1:
            raise ValueError(f"line numbers are 1-based, got {self.line}")

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.severity}: {self.message} [{self.kind}]"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One image and its valid boxes.

    Attributes
    ----------
    image : Path
        Absolute path of the image file.
    label : Path or None
        Absolute path of its label file, or None when there is none (background image).
    width, height : int
        Image size in pixels (0 when unknown).
    classes : ndarray of int32, shape (k,)
        Class id of each valid box.
    boxes : ndarray of float32, shape (k, 4)
        Normalised ``xc, yc, w, h`` of each valid box, in [0, 1].
    """

    image: Path
    label: Path | None
    width: int
    height: int
    classes: np.ndarray = field(repr=False)
    boxes: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        classes = np.asarray(self.classes, dtype=np.int32).reshape(-1)
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        if len(classes) != len(boxes):
            raise ValueError(f"{self.image}: {len(classes)} classes for {len(boxes)} boxes")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"{self.image}: negative image size")
        classes.flags.writeable = False
        boxes.flags.writeable = False
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "boxes", boxes)

    @property
    def n_boxes(self) -> int:
        return len(self.classes)

    @property
    def is_background(self) -> bool:
        return len(self.classes) == 0


@dataclass(frozen=True)
class Split:
    """The images of one split (train, val, test) and the problems found in it."""

    name: str
    sources: tuple[str, ...]
    records: tuple[ImageRecord, ...]
    problems: tuple[Problem, ...] = ()
    excluded: tuple[str, ...] = ()
    """Image paths left out of ``records`` because they are unreadable."""

    def __len__(self) -> int:
        return len(self.records)

    @property
    def n_boxes(self) -> int:
        return sum(r.n_boxes for r in self.records)


@dataclass(frozen=True)
class Dataset:
    """A YOLO detection dataset: class names and splits.

    Attributes
    ----------
    root : Path
        Folder that relative paths resolve against.
    yaml : Path or None
        The data.yaml it was read from, if any.
    names : tuple of str
        Class names; class id ``i`` is ``names[i]``.
    splits : mapping of str to Split
        The splits present, in the order train, val, test.
    problems : tuple of Problem
        Problems that belong to no split (e.g. in data.yaml).
    source_names : tuple of str or None
        The class names as the source gives them where ``names`` had to differ (a
        repeated name is made unique there, for per-class reports); written to the
        ``data.yaml`` of outputs, so a model trained on them reports the source's names.
    yaml_extra : tuple of (str, object)
        Keys of the source ``data.yaml`` that outputs keep (``kpt_shape``,
        ``flip_idx``, ``channels``; see :data:`~detprune.dataset.yolo.CARRIED_KEYS`).
    unloaded : tuple of (str, tuple of str)
        The splits the data.yaml declares that were not read (``load_dataset(...,
        splits=...)``) and their sources: outputs must not overwrite them either.
    """

    root: Path
    yaml: Path | None
    names: tuple[str, ...]
    splits: Mapping[str, Split]
    problems: tuple[Problem, ...] = ()
    source_names: tuple[str, ...] | None = None
    yaml_extra: tuple[tuple[str, Any], ...] = ()
    unloaded: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a dataset needs at least one class name")
        if self.source_names is not None and len(self.source_names) != len(self.names):
            raise ValueError("source_names must give one name per class")

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def yaml_names(self) -> tuple[str, ...]:
        """The class names to write to an output ``data.yaml``: the source's own."""
        return self.source_names if self.source_names is not None else self.names

    def split(self, name: str) -> Split:
        """Return split ``name`` or raise :class:`~detprune.errors.DatasetError`."""
        from ..errors import DatasetError

        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DatasetError(f"split '{name}' is not in the dataset (splits present: {have})")
        return self.splits[name]

    def all_problems(self) -> list[Problem]:
        """Every problem once (a file in two splits reports its problems in both)."""
        out = list(self.problems)
        for s in self.splits.values():
            out.extend(s.problems)
        return list(dict.fromkeys(out))
