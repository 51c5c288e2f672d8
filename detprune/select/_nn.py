"""Tiny seeded torch building blocks for the learned reducers (private; FES, FLOW).

torch is imported inside the functions. Weights are initialised from a NumPy
generator (not torch's global RNG), so results depend only on the seed.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._optional import require

__all__ = ["mlp", "one_torch_thread", "torch_module"]


def torch_module() -> Any:
    """The torch module (with an install hint when missing)."""
    return require("torch", purpose="the learned selection methods (FES, FLOW)")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch's CPU ops on one thread inside the block (restored afterwards).

    The proxy networks are small: torch's intra-op thread team spin-waits between
    the many tiny ops and, next to FAISS' OpenMP threads on a busy host, turns a
    sub-second training into minutes.
    """
    torch = torch_module()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def mlp(
    sizes: list[int], rng: np.random.Generator, *, act: str = "relu", zero_last: bool = False
) -> Any:
    """A float32 MLP ``Linear -> act -> ... -> Linear`` with seeded uniform (Kaiming-style) init.

    Parameters
    ----------
    sizes : list of int
        Layer widths, input first.
    rng : numpy Generator
    act : {"relu", "tanh"}
    zero_last : bool
        Initialise the last layer to zero (an identity start for flows).
    """
    torch = torch_module()
    nn = torch.nn
    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        lin = nn.Linear(a, b)
        bound = 1.0 / np.sqrt(a)
        last = i == len(sizes) - 2
        with torch.no_grad():
            if last and zero_last:
                lin.weight.zero_()
                lin.bias.zero_()
            else:
                lin.weight.copy_(
                    torch.from_numpy(rng.uniform(-bound, bound, (b, a)).astype(np.float32))
                )
                lin.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, b).astype(np.float32)))
        layers.append(lin)
        if not last:
            layers.append(nn.ReLU() if act == "relu" else nn.Tanh())
    return nn.Sequential(*layers)
