"""Fine-tune a YOLO detector on a (pruned) dataset with ultralytics and record what it cost.

:func:`train` wraps ultralytics' :class:`~ultralytics.models.yolo.detect.DetectionTrainer`
through its extension points only (a subclass overriding ``get_model``,
``get_dataloader``, ``preprocess_batch``, ``optimizer_step``, ``validate`` and
``final_eval``, plus trainer callbacks). One ultralytics function is wrapped
while it runs, its dataset scan, so that a JPEG it would "restore" in place is
scanned through a copy (see :mod:`detprune.train._protect`): a source file is
never rewritten. It runs offline: :func:`detprune._offline.import_ultralytics` is called
before ultralytics is imported (no analytics, no auto-install, local fonts), the
dataset paths are checked before ultralytics sees them (so it never reaches
for a ``download:`` script), and the model is always built from a yaml, so no
checkpoint is ever fetched.

The model
---------
``model`` is one of

- a model yaml (``"yolov5n.yaml"`` from ultralytics, or a file): random
  initialisation (ultralytics seeds torch with ``seed + 1`` first);
- an ultralytics checkpoint (``yolov5nu.pt``...): its architecture is rebuilt
  from the yaml stored in it, for the dataset's classes, and every tensor whose
  name and shape match is copied (the class-specific head convolutions are
  fresh when the number of classes differs) — the same transfer ultralytics
  does, but the file is read by :mod:`detprune.features._checkpoint`, which never
  executes code from it;
- a checkpoint of the original ultralytics/yolov5 repository (anchor-based
  ``Detect`` head, pickled ``models.yolo`` classes): ultralytics'
  ``yolov5{n,s,m,l,x}.yaml`` of the same width is built, the backbone (layers
  0-9) is copied strictly and the neck (layers 10-23) tensor by tensor where
  names and shapes match; the head (layer 24) is left **freshly initialised**,
  because the legacy anchor-based head has nothing in common with the
  anchor-free YOLOv5u head ultralytics trains. What was transferred is
  recorded in ``results.json`` under ``model.transfer``.

Bare ``*.pt`` names that are not files are looked up by
:func:`detprune.features.weights.resolve_weights` (detprune's weights folder, the
current folder, ultralytics' weights folder; a download only where allowed).

Counting
--------
``images_seen`` is counted, not computed: the trainer adds ``batch["img"].shape[0]``
of every batch it preprocesses for a training step (the "evaluations
performed" of the Data Step paper: one forward and backward pass of one
training sample). ``optimizer_steps`` counts the optimizer steps taken. Both are
recorded per epoch too.

With mosaic augmentation each sample is a composite of four images whose three
partners ultralytics draws from its recent-image buffer; under a dynamic
schedule those partners can come from outside the epoch's subset. Mosaic is
closed for the last ``close_mosaic`` epochs (ultralytics' default 10, so runs of
up to 10 epochs use no mosaic at all).

Dynamic schedules
-----------------
With ``schedule`` (see :mod:`detprune.train.schedules`) the training loader is an
ultralytics ``InfiniteDataLoader`` over a detprune sampler whose index set is
replaced at ``on_train_epoch_start`` (and the loader's persistent iterator
reset, exactly as ultralytics does when it closes mosaic, so no prefetched
batch of the previous epoch's plan leaks in). Consequences, by design:

- the learning-rate schedule is per epoch (ultralytics' ``LambdaLR`` over
  epochs), so it is the same as in full-data training;
- ultralytics computes the number of batches ``nb`` once, before the first
  epoch; it is the *full* set's count. Warm-up runs on the iteration index
  ``ni = epoch * nb + i`` and ends after the same ``warmup_epochs`` epochs as in
  full training (an epoch with fraction ``f`` covers the first ``f`` of its
  warm-up span, the next one resumes where a full epoch would); gradient
  accumulation (``nbs / batch`` batches per step) uses the same index, so the
  first step of an epoch after a short epoch can come early (at most one early
  step per epoch);
- per-epoch shuffling within the subset is seeded with ``seed`` and the epoch;
- ``rect`` training and multi-GPU (DDP) training are not supported with a
  schedule (not offered here at all).

Energy
------
One :class:`~detprune.energy.EnergyLog` with phases ``"train"`` (set-up, every
epoch and the per-epoch validations that choose ``best.pt``) and ``"val"`` (the
final validation whose metrics are reported). If the data is a pruned dataset
with a ``manifest.json``, its energy totals are added to give one combined
"reduction + training" figure.

results.json
------------
Written last, atomically, into ``out`` (a run is finished iff it exists); the
ultralytics run (``weights/best.pt``, ``last.pt``, ``results.csv``,
``args.yaml``, plots) is in ``out/ultralytics``. Top-level figures:
``mAP50``, ``mAP50-95`` (final validation of **best.pt** — the epoch with the
highest val mAP50-95, ultralytics' fitness — on the data.yaml's untouched
``val`` split; with ``val=False`` only the last epoch is validated, so best is
last), ``metrics.per_class`` (AP50, AP50-95, instances, images per class;
None for a class without val labels), ``epochs``, ``epochs_completed``,
``images_seen``, ``full_epoch_equivalents``, ``optimizer_steps``,
``wall_seconds`` (= ``train_seconds + val_seconds``), ``energy_kwh``, ``co2_kg``
(None when not measured), ``pruning`` (the manifest's id — fingerprint, method,
seed, kept — and its energy totals, or None), ``combined`` (reduction +
training: ``seconds``, ``energy_kwh``, ``co2_kg``, ``includes_pruning``),
``per_epoch`` (fraction, planned and counted images, batches, steps, val mAP)
and the settings, schedule, model provenance and weight transfer.

ultralytics caches scanned labels in ``labels/<split>.cache`` beside the
dataset's label folders; unless ``keep_label_cache`` is set, a cache written
during the run is deleted again so the dataset folder is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._interrupt import check as check_interrupt
from .._io import atomic_write_text
from .._validation import SEED, InstanceOf, Interval, IsNone, Options, Predicate, validate_params
from .._version import __version__
from ..errors import DatasetError, DetpruneError, OutputError, ParameterError
from .schedules import fractions, images_for_epoch, parse_schedule

__all__ = ["RESULTS_VERSION", "TrainResult", "default_out", "train"]

logger = logging.getLogger("detprune.train")

#: Version of the ``results.json`` layout.
RESULTS_VERSION = 1
#: Folder under ``out`` where ultralytics writes its run (weights, results.csv, args.yaml).
ULTRALYTICS_DIR = "ultralytics"
#: file that marks a folder as a training run of detprune (written when the run starts)
TRAIN_MARK = ".detprune-train"
_BACKBONE_LAST = 9
_LEGACY_NECK_LAST = 23
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda|cuda:\d+|\d+)$")


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    out : pathlib.Path
        The run folder: ``results.json`` (written last, atomically) and
        ``ultralytics/`` (weights, ``results.csv``, ``args.yaml``, plots).
    results : dict
        The content of ``results.json``.
    """

    out: Path
    results: dict

    @property
    def results_json(self) -> Path:
        """Path of ``results.json``."""
        return self.out / "results.json"

    @property
    def weights(self) -> Path | None:
        """The weights the reported metrics belong to (``best.pt``), if written."""
        path = self.results.get("metrics", {}).get("weights_path")
        return Path(path) if path else None


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class _DataPlan:
    yaml: Path
    names: tuple[str, ...]
    entries: dict[str, list[Path]]
    manifest: dict | None
    manifest_path: Path | None
    #: the user's data.yaml where ``yaml`` is the resolved copy ultralytics trains on
    origin: Path | None = None


def _resolved_source(plan: _DataPlan, out: Path) -> _DataPlan:
    """A source dataset (not a pruned output) as ultralytics should see it.

    ultralytics reads a relative ``path:`` against the working folder (detprune, like
    the dataset's author, against the yaml's folder) and stops on an image OpenCV cannot
    decode. So the splits are listed as detprune loads them -- the usable images only,
    absolute paths -- in ``out/source/`` (``data.yaml`` and one ``.txt`` per split), and
    ultralytics trains on that.
    """
    from .._io import atomic_write_text
    from ..dataset import load_dataset
    from ..dataset.yolo import SPLIT_NAMES
    from ..export import write_data_yaml

    ds = load_dataset(plan.yaml, splits=[s for s in SPLIT_NAMES if s in plan.entries])
    folder = out / "source"
    entries: dict[str, str | list[str]] = {}
    for name, split in ds.splits.items():
        if not split.records:
            if name not in ("train", "val"):  # e.g. a test split never downloaded: not needed
                continue
            raise DatasetError(f"{plan.yaml}: split '{name}' has no usable images (see `detprune inspect`)")
        lst = folder / f"{name}.txt"
        atomic_write_text(lst, "".join(f"{r.image}\n" for r in split.records))
        entries[name] = str(lst)
    write_data_yaml(folder / "data.yaml", plan.names, entries, ds.yaml_extra)
    return _DataPlan(folder / "data.yaml", plan.names, {k: [Path(v)] for k, v in entries.items()},
                     None, None, origin=plan.yaml)


def _resolve_data(data: str | os.PathLike) -> _DataPlan:
    """Find data.yaml (and a manifest.json beside it); check that train and val exist."""
    from ..dataset.yolo import read_data_yaml, resolve_source
    from ..export import read_manifest

    p = Path(data).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "data.yaml").is_file():
            p = p / "data.yaml"
        elif (p / "data.yml").is_file():
            p = p / "data.yml"
        else:
            raise DatasetError(
                f"{p}: no data.yaml in this folder (train needs a data.yaml or a pruned dataset folder)"
            )
    elif p.name == "manifest.json":
        p = p.parent / "data.yaml"
        if not p.is_file():
            raise DatasetError(f"{p}: no data.yaml beside the manifest")
    p = p.resolve()
    cfg = read_data_yaml(p)
    entries: dict[str, list[Path]] = {}
    for split in ("train", "val"):
        if split not in cfg["splits"]:
            raise DatasetError(f"{p}: no '{split}' entry (train needs both 'train' and 'val')")
    for split, sources in cfg["splits"].items():
        entries[split] = [resolve_source(cfg["root"], s) for s in sources]
    manifest = manifest_path = None
    candidate = p.parent / "manifest.json"
    if candidate.is_file():
        manifest = read_manifest(candidate)
        manifest_path = candidate
        outside = [x for x in entries["train"] if not x.resolve().is_relative_to(p.parent)]
        if outside:  # its data.yaml names where it was written: the folder was moved
            raise DatasetError(
                f"{p}: this pruned dataset's train entry is {outside[0]}, outside its folder: it was "
                f"moved after it was written. Rebuild it here with `detprune export {candidate} --out DIR`"
            )
    for split in ("train", "val"):
        missing = [str(x) for x in entries[split] if not x.exists()]
        if missing:
            raise DatasetError(f"{p}: the '{split}' entry {missing[0]} does not exist")
        for lst in (x for x in entries["train"] if x.suffix == ".txt"):
            listed = [ln.strip() for ln in lst.read_text(encoding="utf-8").splitlines() if ln.strip()]
            gone = [x for x in listed if os.path.isabs(x) and not os.path.exists(x)]
            if gone:  # ultralytics would train on the others without a word
                raise DatasetError(
                    f"{lst}: {len(gone)} of the {len(listed)} kept images no longer exist (first: "
                    f"{gone[0]}); the source changed since the prune: restore them or prune again"
                )
    return _DataPlan(p, tuple(cfg["names"]), entries, manifest, manifest_path)


@dataclass(frozen=True)
class _ModelPlan:
    cfg: str | dict
    state: dict | None
    legacy: bool
    info: dict


def auto_model(manifest: Mapping[str, Any] | None = None) -> str:
    """What ``model="auto"`` trains: a pretrained checkpoint when one is at hand.

    In order: the checkpoint ``weights="auto"`` of the embedder finds (a local
    ``yolov5nu.pt`` or ``yolov5n.pt``, else a download where allowed); the
    checkpoint a pruned dataset's embeddings were computed with (from its
    manifest); otherwise, with a warning, ``yolov5n.yaml`` from scratch.
    """
    import warnings

    from ..features.weights import resolve_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        info = resolve_weights("auto").info
    if info.kind != "auto-random" and info.path:
        return info.path
    w = ((manifest or {}).get("embedding") or {}).get("weights") or {}
    if w.get("kind") in ("ultralytics", "legacy") and w.get("path") and Path(w["path"]).is_file():
        return str(w["path"])
    warnings.warn(
        "model='auto': no pretrained yolov5nu.pt or yolov5n.pt found (nor in the pruned "
        "dataset's manifest); training yolov5n.yaml from scratch, which needs far more epochs "
        "than fine-tuning. Pass --model <checkpoint> to fine-tune.",
        UserWarning,
        stacklevel=3,
    )
    return "yolov5n.yaml"


def _plan_model(model: str | os.PathLike, seed: int) -> _ModelPlan:
    """Decide how the detection model is built; reads a checkpoint, builds nothing."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        cfg = str(path.resolve()) if path.is_file() else text
        if not path.is_file():
            from .._offline import import_ultralytics

            import_ultralytics()
            from ultralytics.nn.tasks import yaml_model_load

            try:
                yaml_model_load(text)
            except (FileNotFoundError, OSError) as exc:
                raise ParameterError(
                    "The 'model' parameter of train must be a model yaml, an ultralytics checkpoint or a "
                    f"legacy yolov5 checkpoint. Got {text!r} instead (no such yaml)."
                ) from exc
        info = {"source": text, "kind": "random", "arch": path.stem,
                "path": cfg if path.is_file() else None, "sha256": None, "seed": seed}
        return _ModelPlan(cfg, None, False, info)
    if suffix not in (".pt", ".pth"):
        raise ParameterError(
            "The 'model' parameter of train must be a model yaml (.yaml), an ultralytics checkpoint or a "
            f"legacy yolov5 checkpoint (.pt). Got {text!r} instead."
        )
    from ..features._checkpoint import read_checkpoint
    from ..features.weights import resolve_weights

    resolved = resolve_weights(text, seed=seed).info
    ckpt_path = Path(resolved.path or text)
    try:
        ckpt = read_checkpoint(ckpt_path)
    except ValueError as exc:
        raise DetpruneError(f"model {ckpt_path}: {exc}") from exc
    legacy = ckpt.flavor == "legacy"
    if not legacy and ckpt.yaml is not None and "backbone" in ckpt.yaml:
        cfg: str | dict = copy.deepcopy(dict(ckpt.yaml))
    else:
        cfg = f"{resolved.model}.yaml"
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt.state_dict.items()}
    info = {"source": text, "kind": "legacy" if legacy else "ultralytics", "arch": resolved.model,
            "path": str(ckpt_path.resolve()), "sha256": resolved.sha256, "seed": seed}
    return _ModelPlan(cfg, state, legacy, info)


def _layer_of(key: str) -> int | None:
    parts = key.split(".")
    if len(parts) > 2 and parts[0] == "model" and parts[1].isdigit():
        return int(parts[1])
    return None


def _transfer(model: Any, state: Mapping[str, Any], *, legacy: bool, where: str) -> dict:
    """Copy matching tensors of ``state`` into ``model``; return what was transferred.

    Every tensor whose name and shape match is copied (for a legacy checkpoint only
    layers 0-23: its anchor-based head never matches). The backbone (layers 0-9)
    must transfer completely.
    """
    import torch

    target = model.state_dict()
    copied: dict[str, Any] = {}
    mismatched: list[str] = []
    for k, v in state.items():
        layer = _layer_of(k)
        if legacy and (layer is None or layer > _LEGACY_NECK_LAST):
            continue
        if k in target:
            if tuple(target[k].shape) == tuple(v.shape):
                copied[k] = v
            else:
                mismatched.append(k)
    by_layer: dict[int, list[bool]] = {}
    for k in target:
        layer = _layer_of(k)
        if layer is not None:
            by_layer.setdefault(layer, []).append(k in copied)
    missing_backbone = sorted(
        k for k in target if (_layer_of(k) or 0) <= _BACKBONE_LAST and _layer_of(k) is not None
        and k not in copied
    )
    if missing_backbone:
        raise DetpruneError(
            f"{where}: the backbone does not match the model built for this dataset "
            f"({len(missing_backbone)} tensors missing or of another shape, e.g. {missing_backbone[0]})"
        )
    with torch.no_grad():
        model.load_state_dict(copied, strict=False)
    full = sorted(i for i, flags in by_layer.items() if all(flags))
    partial = sorted(i for i, flags in by_layer.items() if any(flags) and not all(flags))
    fresh = sorted(i for i, flags in by_layer.items() if not any(flags))
    note = (
        "legacy yolov5 checkpoint: backbone (0-9) copied strictly, neck (10-23) where names and shapes "
        "match; the anchor-based legacy head cannot be mapped onto the anchor-free YOLOv5u head, which "
        "is freshly initialised"
        if legacy
        else "every tensor whose name and shape match was copied (class-dependent head layers are fresh "
        "when the number of classes differs)"
    )
    return {
        "tensors_transferred": len(copied),
        "tensors_total": len(target),
        "tensors_shape_mismatch": len(mismatched),
        "layers_transferred": full,
        "layers_partial": partial,
        "layers_fresh": fresh,
        "note": note,
    }


def _cpu_threads() -> int:
    """Cores this process may run on (CPU affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _resolve_device(device: str) -> str:
    d = str(device).strip().lower()
    if d == "auto":
        import torch

        return "0" if torch.cuda.is_available() else "cpu"
    if d == "cuda":
        d = "0"
    elif d.startswith("cuda:"):
        d = d.split(":", 1)[1]
    if d.isdigit():
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(d) >= count:
            seen = f"{count} CUDA device(s) visible" if count else "no CUDA GPU visible to torch"
            raise ParameterError(
                f"The 'device' parameter of train asks for CUDA device {d}, but there is {seen}; "
                "use 'cpu' or 'auto'."
            )
    return d


def _amp_setting(amp: bool, device: str) -> bool | str:
    """ultralytics' ``amp`` value: bf16 autocast on GPUs that support it, else fp32.

    ultralytics' fp16 AMP self-check (``amp=True``) loads ``yolo26n.pt`` and
    downloads it when missing; bf16 needs no check and no GradScaler.
    """
    if not amp or device in ("cpu", "mps"):
        return False
    import torch
    import ultralytics

    major_minor = tuple(int(x) for x in re.findall(r"\d+", ultralytics.__version__)[:2])
    if major_minor < (8, 4):  # 'bf16' is an accepted amp value from ultralytics 8.4 on
        return False

    try:
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else False
    except Exception:  # pragma: no cover - exotic backends
        return False


def default_out(data_yaml: Path, model: str, epochs: int, schedule: str | None) -> Path:
    """``./runs/detprune/<data>-<model>-e<epochs>[-<schedule>]``, numbered if it exists.

    Parameters
    ----------
    data_yaml : Path
        The dataset's ``data.yaml`` (its folder names the run).
    model : str
        Model argument (its stem names the run).
    epochs : int
    schedule : str or None

    Returns
    -------
    pathlib.Path
        A folder that does not exist yet (or is empty).
    """
    tag = f"{data_yaml.parent.name}-{Path(model).stem}-e{epochs}"
    if schedule:
        tag += "-" + re.sub(r"[^A-Za-z0-9.]+", "_", str(schedule))
    base = Path("runs") / "detprune" / tag
    out, i = base, 2
    while out.exists() and any(out.iterdir()):
        out = base.with_name(f"{tag}-{i}")
        i += 1
    return out.resolve()


def _prepare_out(out: Path, plan: _DataPlan, force: bool) -> Path:
    from ..export import check_output_dir

    protected = [plan.yaml]
    for paths in plan.entries.values():
        protected += [p for p in paths if p.exists()]
    out = check_output_dir(out, force=force, protected=protected)
    if out.exists() and any(out.iterdir()):  # force: remove what a previous run of ours wrote
        if not _is_train_run(out):
            raise OutputError(
                f"{out} is not empty and holds no detprune training run; refusing to replace it"
            )
        for name in (ULTRALYTICS_DIR, "source", "results.json", TRAIN_MARK):
            q = out / name
            if q.is_symlink() or (q.exists() and not q.is_dir()):
                q.unlink()  # a link itself, never what it points to (the run writes here next)
            elif q.is_dir() and name in (ULTRALYTICS_DIR, "source"):
                shutil.rmtree(q)
    out.mkdir(parents=True, exist_ok=True)
    # marks the folder as a run from the start, so that --force may replace an interrupted one
    atomic_write_text(out / TRAIN_MARK, json.dumps({"detprune_version": __version__}) + "\n")
    return out


def _is_train_run(out: Path) -> bool:
    """Whether ``out`` holds a run of :func:`train`: its mark (written when a run starts),
    or a ``results.json`` that detprune wrote (runs from before the mark)."""
    from .compare import load_run

    if (out / TRAIN_MARK).is_file():
        return True
    try:
        load_run(out)  # refuses all but a readable results.json with a results_version
    except DetpruneError:
        return False
    return True


# ----------------------------------------------------------------------------- pick orders


def _norm(p: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(p))


def _order_indices(
    im_files: Sequence[str], ranked: Sequence[Path], *, aliases: Mapping[str, str]
) -> tuple[list[int], int]:
    """Dataset indices in the given pick order; unranked dataset images follow in dataset order.

    Returns the order and how many dataset images had no rank.
    """
    pos = {}
    for i, f in enumerate(im_files):
        key = _norm(f)
        pos.setdefault(aliases.get(key, key), i)
    order: list[int] = []
    used: set[int] = set()
    for p in ranked:
        i = pos.get(_norm(p))
        if i is not None and i not in used:
            order.append(i)
            used.add(i)
    unranked = [i for i in range(len(im_files)) if i not in used]
    return order + unranked, len(unranked)


def _manifest_ranking(manifest: dict) -> list[Path]:
    root = Path(manifest["source"]["root"])
    items = sorted(manifest["selected"], key=lambda s: s["rank"])
    return [root / s["path"] for s in items]


def _manifest_aliases(manifest: dict, pruned_dir: Path, im_files: Sequence[str]) -> dict[str, str]:
    """Map copied/hard-linked images of a pruned tree back to their source paths."""
    from ..export.writer import tree_names

    split = manifest["source"].get("split", "train")
    sources = _manifest_ranking(manifest)
    names = tree_names(sources)
    base = pruned_dir / "images" / split
    return {_norm(base / rel): _norm(src) for rel, src in zip(names, sources, strict=True)}


# ----------------------------------------------------------------------------- trainer


_TRAINER_CLASS: type | None = None


def _trainer_class() -> type:
    """Build the DetectionTrainer subclass (imports torch and ultralytics on first use)."""
    global _TRAINER_CLASS
    if _TRAINER_CLASS is not None:
        return _TRAINER_CLASS
    import numpy as np
    import torch
    from ultralytics.data.build import InfiniteDataLoader, seed_worker
    from ultralytics.models.yolo.detect import DetectionTrainer

    class EpochSubsetSampler(torch.utils.data.Sampler):
        """Yields the current epoch's image indices, shuffled with (seed, epoch)."""

        def __init__(self, n: int, seed: int) -> None:
            self.n = n
            self.seed = seed
            self.epoch = 0
            self.indices = np.arange(n, dtype=np.int64)

        def set_epoch(self, epoch: int, indices: np.ndarray) -> None:
            self.epoch = int(epoch)
            self.indices = np.asarray(indices, dtype=np.int64)

        def __len__(self) -> int:
            return int(self.indices.size)

        def __iter__(self) -> Iterator[int]:
            g = torch.Generator()
            g.manual_seed(int(self.seed) * 1_000_003 + self.epoch)
            perm = torch.randperm(self.indices.size, generator=g).numpy()
            return iter(self.indices[perm].tolist())

    class DetpruneTrainer(DetectionTrainer):
        """DetectionTrainer that counts what it trains on and follows a data schedule."""

        def setup_detprune(
            self,
            *,
            model_plan: _ModelPlan,
            fractions_: list[float] | None,
            order: str | Sequence[Path] | None,
            manifest: dict | None,
            pruned_dir: Path | None,
            end_train_phase: Callable[[], None],
            phase: Callable[[str], Any],
            keep_label_cache: bool = False,
        ) -> None:
            self._dp_model = model_plan
            self._dp_fractions = fractions_
            self._dp_order_spec = order
            self._dp_manifest = manifest
            self._dp_pruned_dir = pruned_dir
            self._dp_end_train = end_train_phase
            self._dp_phase = phase
            self._dp_keep_label_cache = keep_label_cache
            self.dp_label_caches_removed: list[str] = []
            self.dp_transfer: dict | None = None
            self.dp_epochs: dict[int, dict] = {}
            self.dp_order: np.ndarray | None = None
            self.dp_unranked = 0
            self.dp_n_train = 0
            self.dp_final_metrics = None
            self.dp_final_weights: Path | None = None
            self._dp_in_final = False
            self._dp_validated = False
            self.add_callback("on_train_epoch_start", DetpruneTrainer._dp_epoch_start)
            self.add_callback("on_fit_epoch_end", DetpruneTrainer._dp_fit_epoch_end)

        # --- model
        def get_model(self, cfg=None, weights=None, verbose=True):
            plan = self._dp_model
            model = super().get_model(cfg=copy.deepcopy(plan.cfg), weights=None, verbose=verbose)
            if plan.state is not None:
                self.dp_transfer = _transfer(model, plan.state, legacy=plan.legacy,
                                             where=f"model {plan.info['source']}")
            return model

        # --- data
        def build_dataset(self, img_path, mode="train", batch=None):
            t0 = time.time()
            dataset = super().build_dataset(img_path, mode, batch)
            if not self._dp_keep_label_cache:
                removed = _drop_new_label_cache(dataset, t0)
                if removed:
                    self.dp_label_caches_removed.append(removed)
            return dataset

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            if mode != "train" or self._dp_fractions is None:
                loader = super().get_dataloader(
                    dataset_path, batch_size=batch_size, rank=rank, mode=mode
                )
                if mode == "train":
                    self.dp_n_train = len(loader.dataset)
                return loader
            dataset = self.build_dataset(dataset_path, mode, batch_size)
            n = len(dataset)
            self.dp_n_train = n
            self._dp_make_order(dataset.im_files)
            batch = max(1, min(batch_size, n))
            workers = int(self.args.workers or 0)
            batches = math.ceil(n / batch)
            nw = min(os.cpu_count() or 1, workers, 0 if batches <= 1 else batches)
            generator = torch.Generator()
            generator.manual_seed(int(self.args.seed))
            return InfiniteDataLoader(
                dataset=dataset,
                batch_size=batch,
                shuffle=False,
                sampler=EpochSubsetSampler(n, int(self.args.seed)),
                num_workers=nw,
                prefetch_factor=4 if nw > 0 else None,
                pin_memory=self.device.type == "cuda",
                collate_fn=getattr(dataset, "collate_fn", None),
                worker_init_fn=seed_worker,
                generator=generator,
                drop_last=False,
            )

        def _dp_make_order(self, im_files: Sequence[str]) -> None:
            spec = self._dp_order_spec
            if spec is None:
                self.dp_order = None
                return
            aliases: dict[str, str] = {}
            if spec == "manifest":
                ranked = _manifest_ranking(self._dp_manifest)
                if self._dp_pruned_dir is not None:
                    aliases = _manifest_aliases(self._dp_manifest, self._dp_pruned_dir, im_files)
            else:
                ranked = list(spec)
            order, unranked = _order_indices(im_files, ranked, aliases=aliases)
            if unranked == len(im_files):
                raise DatasetError(
                    "order_by: none of the training images is in the given pick order "
                    "(does the manifest belong to this dataset?)"
                )
            if unranked:
                logger.warning("order_by: %d training images have no rank; they come last", unranked)
            self.dp_order = np.asarray(order, dtype=np.int64)
            self.dp_unranked = unranked

        def _dp_record(self) -> dict:
            return self.dp_epochs.setdefault(
                int(self.epoch),
                {"epoch": int(self.epoch) + 1, "fraction": 1.0, "planned_images": self.dp_n_train,
                 "images": 0, "batches": 0, "optimizer_steps": 0, "mAP50": None, "mAP50-95": None},
            )

        @staticmethod
        def _dp_epoch_start(trainer: DetpruneTrainer) -> None:
            rec = trainer._dp_record()
            if trainer._dp_fractions is None:
                return
            epoch = int(trainer.epoch)
            frac = trainer._dp_fractions[epoch] if epoch < len(trainer._dp_fractions) else 1.0
            n = trainer.dp_n_train
            idx = images_for_epoch(
                n, frac, epoch, order=trainer.dp_order, seed=int(trainer.args.seed)
            )
            loader = trainer.train_loader
            bs = loader.batch_size
            gs = int(getattr(trainer, "stride", 32))
            if len(idx) % bs == 1 and len(idx) > 1 and int(trainer.args.imgsz) < 2 * gs:
                raise ParameterError(
                    f"epoch {epoch + 1} would end with a batch of one image at imgsz {trainer.args.imgsz} "
                    f"(BatchNorm needs two values per channel); change batch or use imgsz >= {2 * gs}"
                )
            loader.sampler.set_epoch(epoch, idx)
            loader.reset()  # drop the persistent iterator and anything it prefetched
            rec["fraction"] = float(frac)
            rec["planned_images"] = len(idx)

        # --- counting
        def preprocess_batch(self, batch):
            rec = self._dp_record()
            rec["images"] += int(batch["img"].shape[0])
            rec["batches"] += 1
            return super().preprocess_batch(batch)

        def optimizer_step(self):
            check_interrupt()  # a Ctrl-C swallowed in garbage collection stops the run here
            self._dp_record()["optimizer_steps"] += 1
            return super().optimizer_step()

        def validate(self):
            self._dp_validated = True
            return super().validate()

        @staticmethod
        def _dp_fit_epoch_end(trainer: DetpruneTrainer) -> None:
            if trainer._dp_in_final:
                return
            rec = trainer._dp_record()
            if trainer._dp_validated and trainer.metrics:
                rec["mAP50"] = _finite(trainer.metrics.get("metrics/mAP50(B)"))
                rec["mAP50-95"] = _finite(trainer.metrics.get("metrics/mAP50-95(B)"))
            trainer._dp_validated = False

        # --- final validation, measured as its own phase
        def final_eval(self):
            self._dp_end_train()
            self._dp_in_final = True
            try:
                with self._dp_phase("val"):
                    super().final_eval()
            finally:
                self._dp_in_final = False
            if self.best.exists():
                self.dp_final_weights = self.best
                self.dp_final_metrics = self.validator.metrics

    _TRAINER_CLASS = DetpruneTrainer
    return DetpruneTrainer


def _drop_new_label_cache(dataset: Any, since: float) -> str | None:
    """Remove the ``labels/<split>.cache`` ultralytics just wrote beside the dataset's labels.

    ultralytics caches the scanned labels next to the label folder
    (``Path(label_files[0]).parent.with_suffix(".cache")``), i.e. inside the
    source dataset. A cache file written during this build (mtime not older
    than ``since``, one second of tolerance) is removed, so the dataset folder is
    left as it was; an older, still valid cache is left alone.
    """
    files = getattr(dataset, "label_files", None)
    if not files:
        return None
    path = Path(files[0]).parent.with_suffix(".cache")
    try:
        if path.stat().st_mtime < since - 1.0:
            return None
        path.unlink()
    except OSError:
        return None
    return str(path)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------- results


def _metrics_dict(trainer: Any, names: Sequence[str]) -> dict:
    m = trainer.dp_final_metrics
    weights = trainer.dp_final_weights
    if m is None:  # no best.pt (should not happen): the last per-epoch validation
        last = trainer.metrics or {}
        return {
            "split": "val", "weights": "last-epoch EMA", "weights_path": None,
            "mAP50": _finite(last.get("metrics/mAP50(B)")) or 0.0,
            "mAP50-95": _finite(last.get("metrics/mAP50-95(B)")) or 0.0,
            "precision": _finite(last.get("metrics/precision(B)")) or 0.0,
            "recall": _finite(last.get("metrics/recall(B)")) or 0.0,
            "per_class": {},
        }
    box = m.box
    nt_cls = getattr(m, "nt_per_class", None)
    nt_img = getattr(m, "nt_per_image", None)
    per_class: dict[str, dict] = {}
    index = {int(c): i for i, c in enumerate(box.ap_class_index)}
    from ..dataset.load import unique_names

    # keyed as detprune's reports key classes: a repeated name gets its id ('car (1)')
    for c, name in enumerate(unique_names(tuple(names))[0]):
        i = index.get(c)
        inst = int(nt_cls[c]) if nt_cls is not None and c < len(nt_cls) else None
        imgs = int(nt_img[c]) if nt_img is not None and c < len(nt_img) else None
        per_class[name] = {
            "AP50": float(box.all_ap[i, 0]) if i is not None else None,
            "AP50-95": float(box.all_ap[i].mean()) if i is not None else None,
            "instances": inst,
            "images": imgs,
        }
    return {
        "split": "val",
        "weights": "best",
        "weights_path": str(weights) if weights else None,
        "mAP50": float(box.map50),
        "mAP50-95": float(box.map),
        "precision": float(box.mp),
        "recall": float(box.mr),
        "per_class": per_class,
    }


def _pruning_dict(plan: _DataPlan) -> dict | None:
    m = plan.manifest
    if m is None:
        return None
    src = m.get("source", {})
    fp = str(src.get("fingerprint", ""))
    short = fp.split(":", 1)[-1][:12]
    total = (m.get("energy") or {}).get("total") or {}
    return {
        "id": f"{short}-{m.get('method')}-seed{m.get('seed')}-kept{m.get('kept')}",
        "manifest": str(plan.manifest_path),
        "fingerprint": fp,
        "method": m.get("method"),
        "seed": m.get("seed"),
        "kept": m.get("kept"),
        "kept_fraction": m.get("kept_fraction"),
        "source_images": src.get("images"),
        "split": src.get("split"),
        "energy": {k: total.get(k) for k in ("seconds", "energy_kwh", "co2_kg", "method", "country")},
    }


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(a) + float(b)


def _write_results(out: Path, results: dict) -> None:
    from .._io import atomic_write_text

    atomic_write_text(out / "results.json", json.dumps(results, indent=2, allow_nan=False) + "\n")


@contextlib.contextmanager
def _ultralytics_logging(verbose: bool) -> Iterator[None]:
    log = logging.getLogger("ultralytics")
    saved = log.level
    if not verbose:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(saved)


# ----------------------------------------------------------------------------- train


def _is_path_sequence(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, str | bytes)
            and all(isinstance(v, str | os.PathLike) for v in value))


def train(
    data: str | os.PathLike,
    *,
    model: str | os.PathLike = "auto",
    epochs: int,
    imgsz: int = 640,
    batch: int = 16,
    device: str = "auto",
    workers: int | None = None,
    country: str | None = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    schedule: str | None = None,
    order_by: str | Sequence[str | os.PathLike] | None = None,
    order_name: str | None = None,
    patience: int = 100,
    val: bool = True,
    plots: bool = False,
    amp: bool = True,
    measure_energy: bool = True,
    force: bool = False,
    keep_label_cache: bool = False,
    close_mosaic: int | None = None,
    verbose: bool = False,
    callbacks: Mapping[str, Callable | Sequence[Callable]] | None = None,
) -> TrainResult:
    """Fine-tune a YOLO detector on ``data`` and write ``OUT/results.json``.

    Parameters
    ----------
    data : path-like
        A ``data.yaml``, a folder holding one (a dataset or a pruned dataset with
        ``manifest.json``), or a pruned dataset's ``manifest.json``.
    model : str or path-like, default "auto"
        Model yaml (random init), ultralytics checkpoint, or legacy yolov5
        checkpoint (backbone and neck transferred, head fresh); see the module
        docstring. ``"auto"``: see :func:`auto_model` (a pretrained checkpoint when
        one is found, else ``yolov5n.yaml`` with a warning).
    epochs : int
        Number of epochs, >= 1.
    imgsz : int, default 640
        Training and validation image size, at least 32 (ultralytics rounds it
        up to a multiple of the model's largest stride, 32).
    batch : int, default 16
        Images per batch.
    device : str, default "auto"
        ``"auto"`` (first GPU if any, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
        ``"N"`` or ``"mps"``. One device only.
    workers : int, optional
        Data-loading workers (ultralytics uses none on CPU; default 8 on GPU).
    country : str, optional
        ISO alpha-3 code for the CO2 estimate (default ``$DETPRUNE_COUNTRY`` or
        the world average).
    out : path-like, optional
        Run folder (default :func:`default_out`); must be absent or empty unless
        ``force``.
    seed : int, default 0
        Seed of the model initialisation, augmentation, shuffling and subsets.
    schedule : str, optional
        Dynamic data reduction ``step:F@P``, ``increment:F`` or ``cut:K[:F]``
        (:mod:`detprune.train.schedules`); None trains on every image each epoch.
    order_by : {"random", "manifest"} or sequence of paths, optional
        Which images a reduced epoch uses: a fresh random subset per epoch
        (default), the first images of the pruning manifest's pick order
        (``"manifest"``; ``data`` must be a pruned dataset), or the first images
        of an explicit pick order (image paths, best first). Needs ``schedule``.
    order_name : str, optional
        What made an explicit pick order (e.g. ``"mms"`` for ``--order-by mms``),
        recorded as the schedule's ``order_by`` instead of ``"paths"``.
    patience : int, default 100
        Early stopping after this many epochs without improvement.
    val : bool, default True
        Validate after every epoch (to choose ``best.pt``); False validates only
        after the last epoch, so best is last.
    plots : bool, default False
        Let ultralytics draw its plots (offline: detprune supplies the font).
    amp : bool, default True
        Mixed precision on GPUs that support bf16 (never fp16: ultralytics'
        fp16 self-check downloads a model); always off on CPU.
    measure_energy : bool, default True
        Track energy with codecarbon's offline tracker (else time only).
    force : bool, default False
        Replace a previous run in ``out``.
    keep_label_cache : bool, default False
        Keep the ``labels/<split>.cache`` files ultralytics writes beside the
        dataset's label folders (faster restarts on large datasets, but the
        dataset folder is modified). By default a cache written during the run
        is removed again, leaving the dataset as it was.
    close_mosaic : int, optional
        Train the last ``close_mosaic`` epochs without mosaic augmentation
        (default: ultralytics' 10, so runs of up to 10 epochs use no mosaic).
        :func:`detprune.sweep.sweep` sets it so that runs with different epoch
        counts spend the same share of their steps with mosaic.
    verbose : bool, default False
        Show ultralytics' log and progress bars (and codecarbon's log).
    callbacks : mapping, optional
        Extra ultralytics trainer callbacks, event name -> callable(trainer) or
        a list of them (e.g. ``{"on_train_batch_end": f}``).

    Returns
    -------
    TrainResult

    Raises
    ------
    ParameterError
        On a bad parameter or schedule.
    DatasetError
        If the dataset cannot be used (no ``val``, missing folders...).
    OutputError
        If ``out`` cannot be used.
    DetpruneError
        If the model cannot be built from ``model``.
    """
    validate_params(
        "train",
        {"model": model, "epochs": epochs, "imgsz": imgsz, "batch": batch, "device": device,
         "workers": workers, "seed": seed, "schedule": schedule, "patience": patience, "val": val,
         "plots": plots, "amp": amp, "measure_energy": measure_energy, "force": force,
         "keep_label_cache": keep_label_cache, "verbose": verbose, "order_by": order_by,
         "close_mosaic": close_mosaic, "order_name": order_name},
        {"model": InstanceOf((str, os.PathLike), "a model yaml or checkpoint path"),
         "epochs": Interval("int", 1),
         "imgsz": Interval("int", 32),
         "batch": Interval("int", 1),
         "device": Predicate(lambda d: isinstance(d, str) and _DEVICE_RE.match(d.strip().lower()),
                             "one of 'auto', 'cpu', 'cuda', 'cuda:N', 'N', 'mps' (one device)"),
         "workers": [Interval("int", 0), IsNone()],
         "seed": SEED,
         "schedule": [InstanceOf(str, "a schedule string"), IsNone()],
         "patience": Interval("int", 1),
         "val": InstanceOf(bool, "a bool"), "plots": InstanceOf(bool, "a bool"),
         "amp": InstanceOf(bool, "a bool"), "measure_energy": InstanceOf(bool, "a bool"),
         "force": InstanceOf(bool, "a bool"), "verbose": InstanceOf(bool, "a bool"),
         "keep_label_cache": InstanceOf(bool, "a bool"),
         "close_mosaic": [Interval("int", 0), IsNone()],
         "order_name": [InstanceOf(str, "a str"), IsNone()],
         "order_by": [Options(("random", "manifest")), IsNone(),
                      Predicate(_is_path_sequence, "a sequence of image paths")]},
    )
    plan_fracs = fractions(schedule, epochs) if schedule is not None else None
    sched_text = str(parse_schedule(schedule)) if schedule is not None else None
    order: str | list[Path] | None = None
    if order_by is not None and order_by != "random":
        if schedule is None:
            raise ParameterError(
                "The 'order_by' parameter of train needs a schedule (without one every epoch uses "
                f"every image). Got {order_by if isinstance(order_by, str) else '<paths>'!r} instead."
            )
        order = "manifest" if order_by == "manifest" else [Path(p).expanduser() for p in order_by]
    from ..energy import EnergyLog, check_country

    if country is not None:
        country = check_country(country)
    plan = _resolve_data(data)
    if order == "manifest" and plan.manifest is None:
        raise ParameterError(
            "The 'order_by' parameter of train can be 'manifest' only for a pruned dataset "
            f"(a manifest.json beside {plan.yaml.name}). Got 'manifest' instead."
        )
    dev = _resolve_device(device)
    requested = os.fspath(model)
    if requested == "auto":
        model = auto_model(plan.manifest)
    model_plan = _plan_model(model, seed)
    model_plan.info["requested"] = requested
    out_path = Path(out).expanduser() if out is not None else default_out(
        plan.yaml, os.fspath(model), epochs, sched_text)
    out_path = _prepare_out(out_path, plan, force)
    if plan.manifest is None:
        plan = _resolved_source(plan, out_path)

    from .._offline import import_ultralytics

    ultralytics = import_ultralytics()
    import torch

    from ._protect import no_image_rewrites

    Trainer = _trainer_class()
    log = EnergyLog(country=country, enabled=measure_energy, verbose=verbose)
    arch_yaml = f"{model_plan.info['arch']}.yaml"
    cfg_name = model_plan.cfg if isinstance(model_plan.cfg, str) else arch_yaml
    overrides = {
        "model": cfg_name, "data": str(plan.yaml), "epochs": epochs, "imgsz": imgsz, "batch": batch,
        "device": dev, "workers": 8 if workers is None else workers, "seed": seed,
        "deterministic": True,
        "project": str(out_path), "name": ULTRALYTICS_DIR, "exist_ok": True, "plots": plots,
        "patience": patience, "val": val, "amp": _amp_setting(amp, dev), "verbose": verbose,
        "pretrained": False, "cache": False, "rect": False, "fraction": 1.0, "save": True,
    }
    if close_mosaic is not None:
        overrides["close_mosaic"] = close_mosaic
    started = time.time()
    stack = contextlib.ExitStack()
    threads_before = torch.get_num_threads()
    cpu_threads = _cpu_threads() if dev == "cpu" else None
    try:
        with _ultralytics_logging(verbose), no_image_rewrites() as protected:
            stack.enter_context(log.phase("train"))
            try:
                trainer = Trainer(overrides=overrides)
            except RuntimeError as exc:
                if "Dataset" in str(exc):
                    raise DatasetError(
                        f"{plan.yaml}: ultralytics cannot use this dataset: {exc}"
                    ) from exc
                raise
            trainer.setup_detprune(
                model_plan=model_plan, fractions_=plan_fracs, order=order, manifest=plan.manifest,
                pruned_dir=plan.yaml.parent if plan.manifest is not None else None,
                end_train_phase=stack.close, phase=log.phase, keep_label_cache=keep_label_cache,
            )
            if cpu_threads is not None:
                # ultralytics trains on one core fewer than the machine has (its loader runs in the
                # main process on CPU anyway): on a 2-core host that halves the speed
                def _threads(_trainer: Any, n: int = cpu_threads) -> None:
                    torch.set_num_threads(n)

                for event in ("on_pretrain_routine_start", "on_train_epoch_start", "on_val_start"):
                    trainer.add_callback(event, _threads)
            for event, funcs in (callbacks or {}).items():
                for f in funcs if isinstance(funcs, Sequence) else [funcs]:
                    trainer.add_callback(event, f)
            try:
                trainer.train()
            except (RuntimeError, FileNotFoundError) as exc:
                text = str(exc)
                if any(k in text for k in ("No valid images", "No images found", "Error loading data")):
                    first = re.sub(r"\x1b\[[0-9;]*m", "", text.splitlines()[0])
                    raise DatasetError(f"{plan.yaml}: {first}") from exc
                raise
    finally:
        stack.close()
        torch.set_num_threads(threads_before)

    results = _results(
        trainer=trainer, plan=plan, model_plan=model_plan, log=log, out=out_path, started=started,
        settings={"epochs": epochs, "imgsz": imgsz, "batch": batch, "device": dev,
                  "workers": int(trainer.args.workers), "seed": seed, "patience": patience,
                  "val": val, "plots": plots, "amp": trainer.args.amp,
                  "optimizer": str(trainer.args.optimizer),
                  "close_mosaic": int(trainer.args.close_mosaic),
                  "keep_label_cache": keep_label_cache,
                  "label_caches_removed": list(trainer.dp_label_caches_removed),
                  "jpegs_scanned_through_a_copy": len(protected),
                  "warmup_epochs": float(trainer.args.warmup_epochs),
                  "cpu_threads": cpu_threads},
        schedule=sched_text, fracs=plan_fracs, order=order_by if isinstance(order_by, str) else
        ((order_name or "paths") if order_by is not None else None),
        versions={"ultralytics": getattr(ultralytics, "__version__", None),
                  "torch": torch.__version__},
    )
    _write_results(out_path, results)
    return TrainResult(out_path, results)


def _results(*, trainer, plan: _DataPlan, model_plan: _ModelPlan, log, out: Path, started: float,
             settings: dict, schedule: str | None, fracs: list[float] | None, order: str | None,
             versions: dict) -> dict:
    per_epoch = [trainer.dp_epochs[e] for e in sorted(trainer.dp_epochs)]
    images_seen = int(sum(r["images"] for r in per_epoch))
    steps = int(sum(r["optimizer_steps"] for r in per_epoch))
    n = int(trainer.dp_n_train)
    energy = log.to_dict()
    tot = energy["total"]
    pruning = _pruning_dict(plan)
    if pruning is not None:
        pe = pruning["energy"]
        combined = {
            "seconds": _add(pe.get("seconds"), tot["seconds"]),
            "energy_kwh": _add(pe.get("energy_kwh"), tot["energy_kwh"]),
            "co2_kg": _add(pe.get("co2_kg"), tot["co2_kg"]),
            "includes_pruning": True,
        }
    else:
        combined = {"seconds": tot["seconds"], "energy_kwh": tot["energy_kwh"],
                    "co2_kg": tot["co2_kg"], "includes_pruning": False}
    metrics = _metrics_dict(trainer, plan.names)
    try:
        val_images = len(trainer.test_loader.dataset)
    except Exception:  # pragma: no cover
        val_images = None
    phases = energy["phases"]
    return {
        "results_version": RESULTS_VERSION,
        "detprune_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "out": str(out),
        "ultralytics_dir": str(trainer.save_dir),
        "data": {"yaml": str(plan.origin or plan.yaml), "names": list(plan.names), "train_images": n,
                 "val_images": val_images},
        "model": {**model_plan.info, "transfer": trainer.dp_transfer},
        "settings": settings,
        "schedule": {"spec": schedule, "order_by": order or ("random" if schedule else None),
                     "fractions": fracs if fracs is not None else [1.0] * int(settings["epochs"]),
                     "unranked_images": int(trainer.dp_unranked)},
        "mAP50": metrics["mAP50"],
        "mAP50-95": metrics["mAP50-95"],
        "metrics": metrics,
        "epochs": int(settings["epochs"]),
        "epochs_completed": len(per_epoch),
        "images_seen": images_seen,
        "full_epoch_equivalents": images_seen / n if n else None,
        "optimizer_steps": steps,
        "wall_seconds": float(tot["seconds"]),
        "train_seconds": float(phases.get("train", {}).get("seconds", 0.0)),
        "val_seconds": float(phases.get("val", {}).get("seconds", 0.0)),
        "energy_kwh": tot["energy_kwh"],
        "co2_kg": tot["co2_kg"],
        "energy": energy,
        "pruning": pruning,
        "combined": combined,
        "per_epoch": per_epoch,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "device": str(trainer.device), **versions},
    }

