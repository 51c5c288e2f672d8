"""The dataset layer: YOLO read/write, validation, box statistics and strata."""

from .load import load_dataset, source_paths
from .records import IMAGE_SUFFIXES, Dataset, ImageRecord, Problem, Split
from .stats import BoxStats, Strata, assign_strata, box_statistics
from .yolo import format_labels, label_path_for, parse_label_text, write_labels

__all__ = [
    "IMAGE_SUFFIXES",
    "BoxStats",
    "Dataset",
    "ImageRecord",
    "Problem",
    "Split",
    "Strata",
    "assign_strata",
    "box_statistics",
    "format_labels",
    "label_path_for",
    "load_dataset",
    "parse_label_text",
    "source_paths",
    "write_labels",
]
