"""The selection engine: data-reduction methods on feature arrays.

Works on NumPy arrays only (never imports the dataset or features layers);
``import detprune.select`` loads neither torch nor faiss -- they are imported by
the functions that need them.

Main entry points
-----------------
get_reducer, available_methods, REGISTRY
    The methods: ``srs``, ``clc``, ``mms``, ``des``, ``rkmeans``, ``prd``,
    ``phl``, ``nrmd``, ``fes``, ``vq``, ``flow``, ``fl``.
stratified_select, allocate_budget, retention
    Class balancing: quotas per stratum, the class floor, the stratified driver.
build_feature_space
    Normalised embeddings (+ optional PCA) + scaled box statistics.
epsilon
    Exact per-class ε-representativeness (L-inf and L2).
near_duplicates, dedup_mask
    Near-duplicate groups.
"""

from __future__ import annotations

from .base import Reducer, Selection
from .clc import CLC
from .dedup import dedup_mask, near_duplicates
from .des import DES
from .fes import FES
from .fl import FL
from .flow import FLOW
from .mms import MMS
from .nrmd import NRMD
from .phl import PHL
from .prd import PRD
from .registry import REGISTRY, available_methods, get_reducer
from .represent import EpsilonReport, epsilon
from .rkmeans import RKMeans
from .space import build_feature_space
from .srs import SRS
from .stratified import Retention, allocate_budget, floor_size, retention, stratified_select
from .vq import VQ

__all__ = [
    "CLC",
    "DES",
    "FES",
    "FL",
    "FLOW",
    "MMS",
    "NRMD",
    "PHL",
    "PRD",
    "REGISTRY",
    "SRS",
    "VQ",
    "EpsilonReport",
    "RKMeans",
    "Reducer",
    "Retention",
    "Selection",
    "allocate_budget",
    "available_methods",
    "build_feature_space",
    "dedup_mask",
    "epsilon",
    "floor_size",
    "get_reducer",
    "near_duplicates",
    "retention",
    "stratified_select",
]
