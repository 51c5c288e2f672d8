"""Resolve the ``weights=`` argument of the embedder to a YOLO model and its provenance.

Accepted values
---------------
- a path to an ultralytics checkpoint (``yolov5nu.pt``...), or a bare asset name
  looked up in the detprune weights folder, the current directory and
  ultralytics' ``weights_dir``, downloaded if missing and downloads are allowed
  (a 15 s timeout; ``DETPRUNE_OFFLINE=1`` forbids it) — offline it fails at once
  with a :class:`~detprune.DetpruneError`;
- a checkpoint of the original ultralytics/yolov5 repository (the pickle names
  ``models.yolo``): ultralytics' ``yolov5{n,s,m,l,x}.yaml`` of the same size is
  built (size from the width of the first convolution: 16 -> n, 32 -> s, 48 -> m,
  64 -> l, 80 -> x) and the backbone ``model.0`` .. ``model.9`` copied, strictly
  key for key and shape for shape;
- a model yaml (``yolov5n.yaml`` or a file): a random initialisation after
  ``torch.manual_seed(seed)`` (the global RNG state is restored afterwards);
- ``"auto"`` (default): ``yolov5nu.pt``, else ``yolov5n.pt`` (either format) if
  found locally, else ``yolov5nu.pt`` downloaded, otherwise — loudly, with a
  warning — a random ``yolov5n.yaml`` backbone.

Checkpoints are read by :mod:`detprune.features._checkpoint`, which never
executes code from the file; every model is rebuilt by ultralytics from a yaml.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._offline import detprune_home, downloads_allowed, import_ultralytics
from ..errors import DetpruneError, ParameterError

__all__ = [
    "AUTO_CHECKPOINT",
    "EMBED_LAYERS",
    "WeightsInfo",
    "load_model",
    "resolve_weights",
    "weights_dir",
]

logger = logging.getLogger("detprune.features")

#: Backbone layers whose outputs are pooled: P3 (stride 8), P4 (16), P5 (32, after SPPF).
EMBED_LAYERS: tuple[int, ...] = (4, 6, 9)
#: Checkpoint that ``weights="auto"`` looks for.
AUTO_CHECKPOINT = "yolov5nu.pt"
#: also taken by "auto" when found locally (an ultralytics or original-yolov5 checkpoint)
_AUTO_LOCAL_ALT = "yolov5n.pt"
_AUTO_FALLBACK_YAML = "yolov5n.yaml"
_WIDTH_TO_SIZE = {16: "n", 32: "s", 48: "m", 64: "l", 80: "x"}
_DOWNLOAD_TIMEOUT = 15.0
_KINDS = ("ultralytics", "legacy", "random", "auto-random")


@dataclass(frozen=True)
class WeightsInfo:
    """Where the embedding model's weights came from.

    Attributes
    ----------
    kind : {"ultralytics", "legacy", "random", "auto-random"}
        ``"auto-random"`` means ``weights="auto"`` found no pretrained
        checkpoint and fell back to a random backbone.
    model : str
        Architecture, e.g. ``"yolov5n"``.
    path : str or None
        Checkpoint or yaml file, if any.
    sha256 : str or None
        Hex digest of the checkpoint file.
    seed : int or None
        Seed of a random initialisation.
    key : str
        Short identity of the weights for cache keys, e.g.
        ``"yolov5n:random:seed0"`` or ``"yolov5n:sha256:1a2b3c4d5e6f7a8b"``.
    """

    kind: str
    model: str
    path: str | None
    sha256: str | None
    seed: int | None
    key: str

    def __str__(self) -> str:
        if self.kind in ("random", "auto-random"):
            how = "random init" + (
                " (no pretrained weights found)" if self.kind == "auto-random" else ""
            )
            return f"{self.model}, {how}, seed {self.seed}"
        return f"{self.model}, {self.kind} checkpoint {self.path} (sha256 {self.sha256[:12] if self.sha256 else '?'})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {
            "kind": self.kind,
            "model": self.model,
            "path": self.path,
            "sha256": self.sha256,
            "seed": self.seed,
            "key": self.key,
        }


@dataclass(frozen=True)
class ResolvedWeights:
    """A :class:`WeightsInfo` plus a function that builds the model.

    ``build()`` returns an ultralytics ``DetectionModel`` in float32, eval
    mode, on the CPU, not fused. Resolving is cheap (no model is built) so
    that a run served entirely from the cache never builds one.
    """

    info: WeightsInfo
    build: Callable[[], Any]


def weights_dir() -> Path:
    """detprune's folder for downloaded checkpoints (``<detprune home>/weights``).

    Returns
    -------
    pathlib.Path
    """
    folder = detprune_home() / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _model_name_from(stem: str) -> str:
    """'yolov5nu' -> 'yolov5n', 'yolov5s6u' -> 'yolov5s6', other names unchanged."""
    m = re.fullmatch(r"(yolov[35]-?[nsmlx]?6?)u", stem)
    return m.group(1) if m else stem


_BUILT: OrderedDict[str, Any] = OrderedDict()  # small LRU of built models (sweeps, tests)
_BUILT_MAX = 2


def _memoised(key: str, build: Callable[[], Any]) -> Any:
    """``build()``, or a deep copy of the model last built under ``key``."""
    import copy

    model = _BUILT.get(key)
    if model is None:
        model = build()
        _BUILT[key] = model
        while len(_BUILT) > _BUILT_MAX:
            _BUILT.popitem(last=False)
    else:
        _BUILT.move_to_end(key)
    return copy.deepcopy(model)


def _build_from_yaml(cfg: str | dict, seed: int) -> Any:
    """A ultralytics DetectionModel from a yaml, randomly initialised after seeding."""
    import torch

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = DetectionModel(cfg, verbose=False)
        except FileNotFoundError as exc:
            raise ParameterError(
                f"The 'weights' parameter of embed_images must be a checkpoint, a model yaml or 'auto'. "
                f"Got {cfg!r} instead (yaml not found)."
            ) from exc
    return model.float().eval()


def _check_backbone(model: Any, where: str) -> None:
    layers = list(model.model)
    last = max(EMBED_LAYERS)
    if len(layers) <= last or any(getattr(layers[i], "f", -1) != -1 for i in range(last + 1)):
        raise DetpruneError(
            f"{where}: the backbone must be a plain chain of layers 0..{last} (YOLOv5/YOLOv8 layout)"
        )
    if type(layers[last]).__name__ != "SPPF":
        raise DetpruneError(
            f"{where}: layer {last} must be SPPF (YOLOv5/YOLOv8 layout), got {type(layers[last]).__name__}"
        )


def _backbone_keys(state: dict) -> dict:
    last = max(EMBED_LAYERS)
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if len(parts) > 2 and parts[0] == "model" and parts[1].isdigit() and int(parts[1]) <= last:
            out[k] = v
    return out


def _copy_backbone(model: Any, source: dict, where: str) -> None:
    """Copy layers 0..9 from ``source`` into ``model``, strictly (same keys, same shapes)."""
    import torch

    target = _backbone_keys(model.state_dict())
    given = _backbone_keys(source)
    missing = sorted(set(target) - set(given))
    extra = sorted(set(given) - set(target))
    if missing or extra:
        raise DetpruneError(
            f"{where}: backbone keys do not match the rebuilt model "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''})"
        )
    bad = [k for k in target if tuple(target[k].shape) != tuple(given[k].shape)]
    if bad:
        k = bad[0]
        raise DetpruneError(
            f"{where}: backbone shapes do not match the rebuilt model "
            f"({k}: {tuple(given[k].shape)} vs {tuple(target[k].shape)})"
        )
    with torch.no_grad():
        converted = {k: (v.float() if v.is_floating_point() else v) for k, v in given.items()}
        model.load_state_dict(converted, strict=False)


def _plan_checkpoint(path: Path, seed: int) -> ResolvedWeights:
    from ._checkpoint import read_checkpoint

    where = f"weights {path}"
    try:
        ckpt = read_checkpoint(path)
    except ValueError as exc:
        raise DetpruneError(f"{where}: {exc}") from exc
    sha = _sha256(path)
    state = ckpt.state_dict
    first = state.get("model.0.conv.weight")
    if first is None:
        raise DetpruneError(f"{where}: no YOLO backbone found (no 'model.0.conv.weight')")
    if ckpt.flavor == "legacy" or ckpt.yaml is None or "backbone" not in ckpt.yaml:
        size = _WIDTH_TO_SIZE.get(int(first.shape[0]))
        if size is None:
            raise DetpruneError(
                f"{where}: cannot infer the YOLOv5 size from a first layer of width {first.shape[0]} "
                f"(expected one of {sorted(_WIDTH_TO_SIZE)})"
            )
        cfg: str | dict = f"yolov5{size}.yaml"
        name = f"yolov5{size}"
        kind = "legacy" if ckpt.flavor == "legacy" else "ultralytics"
    else:
        cfg = dict(ckpt.yaml)
        stem = Path(str(cfg.get("yaml_file", ""))).stem
        name = _model_name_from(stem) if stem else f"yolo-{sha[:8]}"
        kind = "ultralytics"

    def make() -> Any:
        model = _build_from_yaml(cfg, seed)
        _check_backbone(model, where)
        _copy_backbone(model, state, where)
        return model.eval()

    info = WeightsInfo(kind, name, str(path), sha, None, f"{name}:sha256:{sha[:16]}")
    return ResolvedWeights(info, lambda: _memoised(f"{info.key}:{sha}", make))


def _plan_yaml(cfg: str, seed: int, kind: str = "random") -> ResolvedWeights:
    path = Path(cfg)
    local = path.is_file()
    name = path.stem

    def make() -> Any:
        model = _build_from_yaml(str(path) if local else cfg, seed)
        _check_backbone(model, f"weights {cfg}")
        return model

    key = f"{name}:random:seed{seed}"
    if local:  # a custom yaml: its content is part of the identity
        key = f"{name}:random:seed{seed}:yaml{_sha256(path)[:12]}"
    info = WeightsInfo(kind, name, str(path) if local else None, None, seed, key)
    return ResolvedWeights(info, lambda: _memoised(key, make))


def _download(name: str, dest: Path, timeout: float = _DOWNLOAD_TIMEOUT) -> None:
    """Fetch an ultralytics release asset to ``dest`` (atomic; raises OSError on failure)."""
    import inspect
    import urllib.request

    from ultralytics.utils import downloads as ul_downloads

    release = inspect.signature(ul_downloads.attempt_download_asset).parameters["release"].default
    repo = getattr(ul_downloads, "GITHUB_ASSETS_REPO", "ultralytics/assets")
    url = f"https://github.com/{repo}/releases/download/{release}/{name}"
    logger.info("downloading %s to %s", url, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        if os.path.getsize(tmp) < 100_000:
            raise OSError(f"download of {url} is too small to be a checkpoint")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _candidates(name: str) -> list[Path]:
    places = [weights_dir(), Path.cwd()]
    try:
        ultralytics = import_ultralytics()
        places.append(Path(ultralytics.settings["weights_dir"]))
    except Exception:  # settings unreadable: the other places are enough
        pass
    return [p / name for p in places]


#: checkpoint names the ultralytics assets release publishes (only those are downloaded)
_ASSET_NAME = re.compile(r"(yolo|rtdetr)[\w.-]*\.pt")


def _find_or_fetch(name: str, *, strict: bool) -> Path | None:
    """A local copy of checkpoint ``name``, downloading it when allowed.

    Returns None (``strict=False``) or raises DetpruneError (``strict=True``)
    when it can be neither found nor fetched.
    """
    for candidate in _candidates(name):
        if candidate.is_file():
            return candidate
    dest = weights_dir() / name
    if not _ASSET_NAME.fullmatch(name):
        reason = "not the name of an ultralytics release asset, so nothing to download"
    elif not downloads_allowed():
        reason = "downloads are disabled (DETPRUNE_OFFLINE is set)"
    else:
        try:
            _download(name, dest)
            return dest
        except Exception as exc:  # no network, HTTP error, timeout
            reason = f"download failed: {exc}"
    if strict:
        raise DetpruneError(
            f"weights '{name}' are not available locally and could not be fetched ({reason}). "
            f"Put the file in {weights_dir()} or pass its path."
        )
    logger.debug("auto weights: %s not available (%s)", name, reason)
    return None


def resolve_weights(weights: str | os.PathLike = "auto", *, seed: int = 0) -> ResolvedWeights:
    """Decide which model the embedder uses, without building it.

    Parameters
    ----------
    weights : str or path-like, default "auto"
        See the module docstring.
    seed : int, default 0
        Seed of a random initialisation.

    Returns
    -------
    ResolvedWeights
        ``.info`` (a :class:`WeightsInfo`) and ``.build()``.

    Raises
    ------
    ParameterError
        If ``weights`` is not a supported kind of value.
    DetpruneError
        If a named checkpoint cannot be found or fetched, or is not a YOLO model.
    """
    if not isinstance(weights, str | os.PathLike):
        raise ParameterError(
            "The 'weights' parameter of embed_images must be a checkpoint path, a model yaml or 'auto'. "
            f"Got {weights!r} instead."
        )
    text = os.fspath(weights)
    if text == "auto":
        local = [c for name in (AUTO_CHECKPOINT, _AUTO_LOCAL_ALT) for c in _candidates(name)]
        path = next((c for c in local if c.is_file()), None)
        path = path or _find_or_fetch(AUTO_CHECKPOINT, strict=False)
        if path is not None:
            return _plan_checkpoint(path, seed)
        message = (
            f"weights='auto': no pretrained {AUTO_CHECKPOINT} or {_AUTO_LOCAL_ALT} found (looked in {weights_dir()}, "
            f"the current folder and ultralytics' weights_dir) and it could not be downloaded; "
            f"embedding with a RANDOMLY INITIALISED {_AUTO_FALLBACK_YAML} backbone (seed {seed}). "
            f"Selections will be far less meaningful; pass weights=<path to yolov5nu.pt>."
        )
        warnings.warn(message, UserWarning, stacklevel=3)
        return _plan_yaml(_AUTO_FALLBACK_YAML, seed, kind="auto-random")
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _plan_yaml(str(path), seed)
    if path.is_file():
        return _plan_checkpoint(path, seed)
    if suffix in (".pt", ".pth"):
        if path.parent != Path("."):
            raise DetpruneError(f"weights file {path} does not exist")
        name = path.name
        # the ultralytics assets host the anchor-free 'u' variants of YOLOv5
        m = re.fullmatch(r"(yolov[35][nsmlx]6?)\.pt", name)
        if m and not any(c.is_file() for c in _candidates(name)):
            logger.info("weights %s: using the ultralytics variant %su.pt", name, m.group(1))
            name = f"{m.group(1)}u.pt"
            try:
                found = _find_or_fetch(name, strict=True)
            except DetpruneError as exc:
                raise DetpruneError(
                    f"{path.name} is not available locally; ultralytics publishes it as {name} "
                    f"(anchor-free), which was looked for instead: {exc}"
                ) from None
            return _plan_checkpoint(found, seed)
        found = _find_or_fetch(name, strict=True)
        assert found is not None
        return _plan_checkpoint(found, seed)
    raise ParameterError(
        "The 'weights' parameter of embed_images must be a checkpoint path (.pt), a model yaml or 'auto'. "
        f"Got {text!r} instead."
    )


def load_model(weights: str | os.PathLike = "auto", *, seed: int = 0) -> tuple[Any, WeightsInfo]:
    """Build the ultralytics model for ``weights``.

    Parameters
    ----------
    weights : str or path-like, default "auto"
        See :func:`resolve_weights`.
    seed : int, default 0
        Seed of a random initialisation.

    Returns
    -------
    model : ultralytics.nn.tasks.DetectionModel
        float32, eval mode, CPU, not fused.
    info : WeightsInfo
    """
    resolved = resolve_weights(weights, seed=seed)
    return resolved.build(), resolved.info
