"""Device resolution for the torch-accelerated paths (private)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from functools import lru_cache


def _nvidia_driver_present() -> bool:
    """Cheap signal that a CUDA device may exist (avoids importing torch on CPU hosts)."""
    return (
        os.path.exists("/proc/driver/nvidia/version")
        or os.path.exists("/dev/nvidia0")
        or shutil.which("nvidia-smi") is not None
    )


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device.

    torch is imported only when it is already loaded or an NVIDIA driver is present.
    """
    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None or not _nvidia_driver_present():
            return False
    import torch

    try:
        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - broken CUDA runtime
        return False


def resolve(device: str) -> str:
    """Map ``"auto"`` to ``"cuda"`` when available, else ``"cpu"``; pass others through."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device
