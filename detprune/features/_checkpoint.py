"""Read YOLO ``.pt`` checkpoints without importing or running their code.

A YOLO checkpoint is a pickled ``nn.Module`` tree. Loading it the usual way
imports the classes it names — ``models.yolo.Model`` for checkpoints of the
original ultralytics/yolov5 repository, which is not installed, or
``ultralytics.nn.*`` for current ones — and lets the pickle call whatever it
names. Here every class outside a small allow-list of torch internals is
replaced by an inert stub: a plain ``nn.Module`` that keeps the pickled
attributes (``_parameters``, ``_buffers``, ``_modules``, ``yaml``...), so
``state_dict()`` and the model's ``yaml`` dict can be read, and nothing from the
file is executed. The caller rebuilds a real ultralytics model from a yaml and
copies the weights in.
"""

from __future__ import annotations

import os
import pickle
import types
from dataclasses import dataclass
from typing import Any

__all__ = ["Checkpoint", "read_checkpoint"]

# Globals the pickle may resolve to the real object. Everything else becomes a stub.
_ALLOWED_PREFIXES = ("torch.nn.modules.",)
_ALLOWED = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "complex"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch.nn.parameter", "Parameter"),
}
_DTYPES = {
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
    "long",
    "int",
}


class _Stub:
    """Base of the inert stand-ins for classes a checkpoint names."""


def _make_stub(module: str, name: str) -> type:
    import torch

    def __new__(cls, *args: Any, **kwargs: Any):
        return torch.nn.Module.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        torch.nn.Module.__init__(self)
        object.__setattr__(self, "_stub_args", args)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = {**state[0], **(state[1] or {})}  # (dict, slots) form
        if isinstance(state, dict) and "_modules" in state:
            torch.nn.Module.__setstate__(self, state)
        else:
            if "_modules" not in self.__dict__:
                torch.nn.Module.__init__(self)
            object.__setattr__(self, "_stub_state", state)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{module}.{name} is a stand-in read from a checkpoint; it cannot run")

    return type(
        name,
        (torch.nn.Module, _Stub),
        {
            "__new__": __new__,
            "__init__": __init__,
            "__setstate__": __setstate__,
            "forward": forward,
            "__module__": f"detprune.stub.{module}",
            "__qualname__": name,
        },
    )


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolve allow-listed torch globals; every other global becomes a stub class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules_seen: set[str] = set()
        self._stubs: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":
            module = "builtins"
        self.modules_seen.add(module)
        if (module, name) in _ALLOWED or module.startswith(_ALLOWED_PREFIXES):
            return super().find_class(module, name)
        if module == "torch" and (name in _DTYPES or name.endswith("Storage")):
            return super().find_class(module, name)
        key = (module, name)
        if key not in self._stubs:
            self._stubs[key] = _make_stub(module, name)
        return self._stubs[key]


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint holds, read safely.

    Attributes
    ----------
    flavor : {"legacy", "ultralytics", "unknown"}
        ``"legacy"``: pickled by the original ultralytics/yolov5 repo (names
        ``models.yolo``); ``"ultralytics"``: by the ultralytics package.
    state_dict : dict of str to torch.Tensor
        Weights of the stored model (``ema`` if present, else ``model``), as
        stored (often float16).
    yaml : dict or None
        The model's architecture dict, if stored.
    """

    flavor: str
    state_dict: dict
    yaml: dict | None


def _pickle_module() -> tuple[types.ModuleType, list[_RestrictedUnpickler]]:
    made: list[_RestrictedUnpickler] = []

    class Unpickler(_RestrictedUnpickler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    module = types.ModuleType("detprune_restricted_pickle")
    module.Unpickler = Unpickler  # type: ignore[attr-defined]
    module.load = pickle.load  # type: ignore[attr-defined]
    module.loads = pickle.loads  # type: ignore[attr-defined]
    module.__name__ = "detprune_restricted_pickle"
    return module, made


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read the weights and architecture of a YOLO checkpoint without running it.

    Parameters
    ----------
    path : str or path-like
        A ``.pt`` file written by ultralytics or by the ultralytics/yolov5 repo.

    Returns
    -------
    Checkpoint

    Raises
    ------
    ValueError
        If the file is not a torch checkpoint or holds no model.
    """
    import torch

    module, made = _pickle_module()
    try:
        ckpt = torch.load(
            os.fspath(path), map_location="cpu", weights_only=False, pickle_module=module
        )
    except Exception as exc:  # truncated zip, not a pickle, ...
        raise ValueError(f"not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    seen: set[str] = set().union(*(u.modules_seen for u in made)) if made else set()
    if any(m == "models" or m.startswith("models.") for m in seen):
        flavor = "legacy"
    elif any(m.startswith("ultralytics.") for m in seen):
        flavor = "ultralytics"
    else:
        flavor = "unknown"
    model = None
    if isinstance(ckpt, dict):
        model = ckpt.get("ema") or ckpt.get("model")
    elif isinstance(ckpt, torch.nn.Module):
        model = ckpt
    if model is None or not isinstance(model, torch.nn.Module):
        raise ValueError("the checkpoint holds no model")
    state = model.state_dict()
    yaml = getattr(model, "yaml", None)
    return Checkpoint(flavor, dict(state), yaml if isinstance(yaml, dict) else None)
