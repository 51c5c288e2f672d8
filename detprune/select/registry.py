"""The one registry of selection methods: name -> Reducer class."""

from __future__ import annotations

from typing import Any

from .._validation import param_error
from .base import Reducer
from .clc import CLC
from .des import DES
from .fes import FES
from .fl import FL
from .flow import FLOW
from .mms import MMS
from .nrmd import NRMD
from .phl import PHL
from .prd import PRD
from .rkmeans import RKMeans
from .srs import SRS
from .vq import VQ

__all__ = ["REGISTRY", "available_methods", "get_reducer"]

#: Registry key -> reducer class. Adding a method is one line here.
REGISTRY: dict[str, type[Reducer]] = {
    "srs": SRS,
    "clc": CLC,
    "mms": MMS,
    "des": DES,
    "rkmeans": RKMeans,
    "prd": PRD,
    "phl": PHL,
    "nrmd": NRMD,
    "fes": FES,
    "vq": VQ,
    "flow": FLOW,
    "fl": FL,
}


def get_reducer(name: str, **params: Any) -> Reducer:
    """Instantiate the method registered as ``name`` with keyword parameters.

    Parameters
    ----------
    name : str
        Registry key (case-insensitive), e.g. ``"mms"``.
    **params
        The method's keyword parameters (validated when it runs).

    Raises
    ------
    ParameterError
        Unknown method name or unknown parameter name.
    """
    key = name.lower() if isinstance(name, str) else None  # a list is no name (nor hashable)
    if key not in REGISTRY:
        known = ", ".join(repr(k) for k in REGISTRY)
        raise param_error("detprune", "method", f"one of {known}", name)
    cls = REGISTRY[key]
    allowed = cls._param_names()
    for pname, value in params.items():
        if pname not in allowed:
            expected = (
                "a known parameter name (one of " + ", ".join(repr(a) for a in allowed) + ")"
                if allowed
                else "absent (the method takes no parameters)"
            )
            raise param_error(cls.__name__, pname, expected, value)
    return cls(**params)


def available_methods() -> dict[str, str]:
    """Registry key -> one-line description, in registry order."""
    return {name: cls.description for name, cls in REGISTRY.items()}
