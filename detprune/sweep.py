"""``detprune sweep``: prune + train over methods x kept fractions x seeds.

The paper's experiment in one call. Every *cell* (method, keep, seed) prunes the
training split with that method and fine-tunes a detector on the result; a
full-data baseline is trained once per seed. The embeddings are computed once,
before the first cell, into the sweep's own cache (``OUT/cache``) and shared by
every cell, and the embedding backbone's seed is fixed (``embed_seed``) so all
seeds select from the same vectors.

Layout of ``OUT``::

    sweep.json            fixed settings (a resumed sweep must match them)
    embed.json            the one-time embedding: counts, time, energy
    cache/                shared embedding cache
    cells/<cell>/data/    the pruned dataset (manifest.json, train.txt, data.yaml)
    cells/<cell>/train/   the training run (results.json last, atomically)
    cells/<cell>/cell.json  the fingerprint of the val split the cell was scored on
    results.csv           one row per finished cell (columns: ``RESULT_COLUMNS``)
    report.md, report.html, plots/*.png

Resumption: a cell is finished when its ``train/results.json`` and
``data/manifest.json`` exist and record the settings this sweep asks for
(method, seed, kept fraction, epochs) and the split's current fingerprint, and its
``cell.json`` the current fingerprint of the val split it was scored on. Finished cells are read back,
not rerun; an interrupted cell is redone from scratch. A cell that fails with a
:class:`~detprune.errors.DetpruneError` is reported and skipped, and is retried
by the next run of the same command.

Matching (``match``):

* ``"epochs"`` (the paper's protocol): every cell trains ``epochs`` epochs, so a
  run on 30 % of the images costs about 30 % and also takes about 30 % of the
  optimizer steps.
* ``"steps"``: a cell keeping ``n_k`` of ``N`` images trains
  ``round(epochs * ceil(N / batch) / ceil(n_k / batch))`` epochs, so it takes
  (about) as many optimizer steps as the full run; this isolates how much
  information the subset keeps. Mosaic augmentation is closed for the same
  share of the steps in every cell (``close_mosaic`` scaled with the epochs).

Energy: ``prune_*`` of a cell is the one-time embedding (measured once, see
``embed.json``) plus that cell's own selection and export: what a user running
only that method would pay. ``energy_kwh``/``co2_kg`` add the training.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._io import atomic_write_json, atomic_write_text
from .errors import DatasetError, DetpruneError, OutputError, ParameterError

__all__ = ["FULL", "Cell", "SweepResult", "plan_epochs", "sweep"]

#: Method name of the full-data baseline cells.
FULL = "full"
#: Version of ``sweep.json``.
SWEEP_VERSION = 1
#: File of a finished cell recording what it was scored on (the val split's fingerprint).
CELL_FILE = "cell.json"
#: Settings that must be equal for a sweep folder to be resumed.
_FIXED = ("data", "split", "epochs", "match", "model", "imgsz", "batch", "weights", "embed_seed",
          "box_weight", "min_per_class", "materialize", "val_each_epoch", "measure_energy")
#: The value of a fixed setting that a sweep.json of an older version does not record.
_UNRECORDED = {"measure_energy": True}


@dataclass(frozen=True)
class Cell:
    """One (method, keep, seed) run of a sweep; ``method == "full"`` is the baseline."""

    method: str
    keep: float
    seed: int

    @property
    def id(self) -> str:
        """Folder name under ``OUT/cells``, e.g. ``mms-k0.3-s1`` or ``full-s0``."""
        if self.method == FULL:
            return f"{FULL}-s{self.seed}"
        return f"{self.method}-k{self.keep:g}-s{self.seed}"


@dataclass(frozen=True)
class SweepResult:
    """What :func:`sweep` produced.

    Attributes
    ----------
    out : Path
        The sweep folder.
    rows : list of dict
        One row per finished cell, in grid order (keys: ``RESULT_COLUMNS``).
    skipped : list of str
        Cells found finished and not rerun.
    failed : dict
        Cell id -> one-line error, for cells that failed in this run.
    report : Path or None
        ``report.md`` (None when no cell finished).
    """

    out: Path
    rows: list[dict]
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    report: Path | None = None


def plan_epochs(epochs: int, n_full: int, n_kept: int, batch: int, match: str) -> int:
    """Epochs for a cell keeping ``n_kept`` of ``n_full`` images.

    Parameters
    ----------
    epochs : int
        Epochs of the full-data run.
    n_full, n_kept : int
        Images in the full and in the pruned training set.
    batch : int
        Batch size (an epoch is ``ceil(n / batch)`` steps).
    match : {"epochs", "steps"}

    Returns
    -------
    int
        ``epochs`` for ``"epochs"``; for ``"steps"`` the epoch count (at least 1)
        whose steps come nearest to the full run's ``epochs * ceil(n_full / batch)``.
    """
    if match == "epochs" or n_kept >= n_full:
        return epochs
    full_steps = epochs * math.ceil(n_full / batch)
    return max(1, round(full_steps / math.ceil(max(n_kept, 1) / batch)))


def _close_mosaic(epochs_full: int, epochs_cell: int, default: int = 10) -> int:
    """``close_mosaic`` giving a cell the full run's share of mosaic epochs."""
    share = max(0, epochs_full - default) / epochs_full
    return epochs_cell - round(share * epochs_cell)


def _grid(methods: Sequence[str], keeps: Sequence[float], seeds: Sequence[int],
          baseline: bool) -> list[Cell]:
    cells: list[Cell] = []
    for s in seeds:
        if baseline:
            cells.append(Cell(FULL, 1.0, s))
        cells += [Cell(m, k, s) for k in keeps for m in methods]
    return cells


def _parse_list(value, kind: type, name: str) -> list:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, int | float):
        items = [value]
    else:
        items = list(value)
    out = []
    for v in items:
        try:
            x = kind(v)
        except (TypeError, ValueError):
            raise ParameterError(
                f"The '{name}' parameter of sweep must be a list of {kind.__name__}s. Got {v!r} instead."
            ) from None
        if kind is int and isinstance(v, float) and not float(v).is_integer():
            raise ParameterError(
                f"The '{name}' parameter of sweep must be a list of ints. Got {v!r} instead.")
        if x not in out:
            out.append(x)
    if not out:
        raise ParameterError(f"The '{name}' parameter of sweep must not be empty. Got {value!r} instead.")
    return out


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _prepare_out(out: Path, settings: dict, *, force: bool, protected: Sequence[Path]) -> None:
    """Create ``out`` or check that it holds a sweep with the same settings."""
    from .export import check_output_dir

    check_output_dir(out, force=True, protected=protected)
    state = out / "sweep.json"
    if out.exists() and any(out.iterdir()):
        old = _read_json(state)
        if old is None or old.get("sweep_version") is None:  # not ours: never removed
            raise OutputError(f"{out} exists, is not empty and holds no detprune sweep (no sweep.json); "
                              "choose another --out or empty it")
        else:
            recorded = old.get("settings") if isinstance(old.get("settings"), dict) else {}
            there = {k: recorded.get(k, _UNRECORDED.get(k)) for k in _FIXED}
            diff = [k for k in _FIXED if there[k] != settings[k]]
            if diff and not force:
                k = diff[0]
                raise OutputError(
                    f"{out} holds a sweep with other settings ({k}: {there[k]!r} there, "
                    f"{settings[k]!r} now); use another --out, or --force to start over"
                )
            if diff:
                shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not state.exists():
        atomic_write_json(state, {"sweep_version": SWEEP_VERSION, "settings": settings,
                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _num(x) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _add(*xs) -> float | None:
    vals = [_num(x) for x in xs]
    return None if any(v is None for v in vals) else float(sum(vals))


def _finished(cell: Cell, cdir: Path, epochs_for: Callable[[int], int],
              source_fp: str, val_fp: str | None = None) -> tuple[dict, dict] | None:
    """(manifest, results) of a finished cell, or None.

    Finished means: ``train/results.json`` and ``data/manifest.json`` readable and
    recording this cell's method, keep, seed, the epochs ``epochs_for(n_kept)``
    this sweep plans for it, and the current fingerprint of the split (images
    added, removed or relabelled since make every cell run again); and ``cell.json``
    recording the current fingerprint of the val split the cell was scored on (a
    relabelled val split makes every cell run again: one table, one val set).
    """
    results = _read_json(cdir / "train" / "results.json")
    if results is None or results.get("results_version") is None:
        return None
    settings = results.get("settings")
    if not isinstance(settings, dict) or settings.get("seed") != cell.seed:
        return None
    if val_fp is not None and (_read_json(cdir / CELL_FILE) or {}).get("val_fingerprint") != val_fp:
        return None
    manifest = _read_json(cdir / "data" / "manifest.json") or {}
    source = manifest.get("source")
    method = "srs" if cell.method == FULL else cell.method
    if (not isinstance(source, dict) or source.get("fingerprint") != source_fp
            or manifest.get("method") != method or manifest.get("seed") != cell.seed
            or manifest.get("keep") != cell.keep or not isinstance(manifest.get("kept"), int)):
        return None
    if results.get("epochs") != epochs_for(-1 if cell.method == FULL else manifest["kept"]):
        return None
    return manifest, results


def _earlier_rows(out: Path, current: set[str], epochs_for: Callable[[int], int], source_fp: str,
                  val_fp: str, n_full: int, match: str, embed_energy: dict) -> list[dict]:
    """Rows of the finished cells in ``out/cells`` that the current grid does not name.

    A sweep folder is resumed only with the same fixed settings, so a cell that an
    earlier run finished (with a larger grid: more methods, ratios or seeds) is as
    valid as one of this run while :func:`_finished` accepts it (same split
    fingerprint, planned epochs); it keeps its row in ``results.csv``. Order: seed,
    then the baseline, then kept fraction and method.
    """
    found: list[tuple[tuple, dict]] = []
    try:
        folders = sorted(p for p in (out / "cells").iterdir() if p.is_dir())
    except OSError:
        return []
    for cdir in folders:
        if cdir.name in current:
            continue
        manifest = _read_json(cdir / "data" / "manifest.json") or {}
        seed, keep, method = manifest.get("seed"), manifest.get("keep"), manifest.get("method")
        if not isinstance(seed, int) or not isinstance(keep, int | float) or not isinstance(method, str):
            continue
        cell = Cell(FULL, 1.0, seed) if cdir.name == f"{FULL}-s{seed}" else Cell(method, keep, seed)
        if cell.id != cdir.name:  # not a cell folder of ours
            continue
        done = _finished(cell, cdir, epochs_for, source_fp, val_fp)
        if done is not None:
            key = (seed, cell.method != FULL, keep, method)
            found.append((key, _row(cell, cdir, out, *done, n_full, match, embed_energy)))
    return [row for _, row in sorted(found, key=lambda kr: kr[0])]


def _row(cell: Cell, cdir: Path, out: Path, manifest: dict, results: dict, n_full: int,
         match: str, embed_energy: dict) -> dict:
    """One ``results.csv`` row from a cell's manifest and training results."""
    metrics = results.get("metrics") or {}
    tr = (results.get("energy") or {}).get("total") or {}
    n_kept = int(manifest["kept"])
    if cell.method == FULL:
        prune = {"seconds": 0.0, "energy_kwh": 0.0, "co2_kg": 0.0}
        eps_linf = eps_l2 = None
    else:
        # the cell's own phases (cached embeddings, selection, export), without the ε
        # measurement: that is not a cost of reducing the data
        phases = [v for k, v in ((manifest.get("energy") or {}).get("phases") or {}).items()
                  if k != "epsilon"]
        prune = {k: _add(embed_energy.get(k), *(ph.get(k) for ph in phases))
                 for k in ("seconds", "energy_kwh", "co2_kg")}
        eps = manifest.get("epsilon") or {}
        eps_linf, eps_l2 = _num(eps.get("eps_linf")), _num(eps.get("eps_l2"))
    return {
        "method": cell.method,
        "keep": cell.keep,
        "seed": cell.seed,
        "match": match,
        "n_full": n_full,
        "n_kept": n_kept,
        "kept_fraction": n_kept / n_full if n_full else None,
        "epochs": results.get("epochs"),
        "optimizer_steps": results.get("optimizer_steps"),
        "images_seen": results.get("images_seen"),
        "map50": _num(results.get("mAP50")),
        "map50_95": _num(results.get("mAP50-95")),
        "precision": _num(metrics.get("precision")),
        "recall": _num(metrics.get("recall")),
        "eps_linf": eps_linf,
        "eps_l2": eps_l2,
        "prune_seconds": prune["seconds"],
        "prune_energy_kwh": prune["energy_kwh"],
        "prune_co2_kg": prune["co2_kg"],
        "train_seconds": _num(tr.get("seconds")),
        "train_energy_kwh": _num(tr.get("energy_kwh")),
        "train_co2_kg": _num(tr.get("co2_kg")),
        "energy_kwh": _add(prune["energy_kwh"], tr.get("energy_kwh")),
        "co2_kg": _add(prune["co2_kg"], tr.get("co2_kg")),
        "run_dir": cdir.relative_to(out).as_posix(),
    }


def _write_csv(path: Path, rows: Sequence[dict]) -> None:
    from .report.summary import RESULT_COLUMNS

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(RESULT_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]))
                    for k in RESULT_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _embedding_weights(weights: str, model: str | os.PathLike) -> str:
    """``weights="auto"`` with no pretrained YOLOv5 found: the sweep's own ``model``
    checkpoint (when its backbone loads) rather than a random backbone."""
    if weights != "auto":
        return weights
    import warnings

    from .features.weights import resolve_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if resolve_weights("auto").info.kind != "auto-random":
            return weights
    path = Path(os.fspath(model)).expanduser()
    if path.suffix.lower() not in (".pt", ".pth") or not path.is_file():
        return weights
    try:
        resolve_weights(path)
    except DetpruneError:
        return weights
    warnings.warn(
        f"weights='auto': no pretrained yolov5nu.pt or yolov5n.pt found; embedding with the "
        f"backbone of --model {path} instead of a random one",
        UserWarning,
        stacklevel=3,
    )
    return str(path.resolve())


def _embed_once(out: Path, data, *, split: str, weights: str, imgsz: int, batch: int, device: str,
                workers: int | None, embed_seed: int, country: str | None, measure_energy: bool,
                progress: bool, verbose: bool) -> dict:
    """Embed the split into ``OUT/cache`` once; its figures are kept in ``embed.json``."""
    path = out / "embed.json"
    done = _read_json(path)
    if done is not None and "images" in done:
        return done
    from . import pipeline
    from .energy import EnergyLog

    log = EnergyLog(country=country, enabled=measure_energy, verbose=verbose)
    with log.phase("embed"):
        r = pipeline.embed(data, split=split, weights=weights, imgsz=imgsz, batch=batch,
                           device=device, workers=workers, cache=out / "cache",
                           progress=progress, seed=embed_seed)
    energy = log.to_dict()
    info = {
        "images": r["images"], "failed": r["failed"], "usable": r["images"] - r["failed"],
        "dims": r["dims"], "weights": r["weights"], "computed": r["computed"],
        **{k: energy["total"].get(k) for k in ("seconds", "energy_kwh", "co2_kg")},
        "energy": energy,
    }
    atomic_write_json(path, info)
    return info


def sweep(
    data: str | os.PathLike,
    *,
    methods: Sequence[str] | str = ("srs", "mms"),
    keeps: Sequence[float] | str = (0.1, 0.3, 0.5),
    seeds: Sequence[int] | str = (0,),
    epochs: int,
    match: str = "epochs",
    model: str | os.PathLike = "auto",
    weights: str = "auto",
    imgsz: int = 640,
    batch: int = 16,
    device: str = "auto",
    workers: int | None = None,
    split: str = "train",
    out: str | os.PathLike | None = None,
    baseline: bool = True,
    val_each_epoch: bool = False,
    embed_seed: int = 0,
    box_weight: float = 0.3,
    min_per_class: int = 1,
    materialize: str = "list",
    country: str | None = None,
    measure_energy: bool = True,
    report: bool = True,
    force: bool = False,
    progress: bool = True,
    verbose: bool = False,
    command: str | None = None,
    on_event: Callable[[str, Cell, dict], None] | None = None,
) -> SweepResult:
    """Prune and train every (method, keep, seed) cell plus a full baseline per seed.

    Parameters
    ----------
    data : path-like
        ``data.yaml`` or dataset folder (must have a ``val`` split for training).
    methods : sequence of str or str
        Registered method names (``"srs,mms"`` is accepted).
    keeps : sequence of float or str
        Kept fractions in (0, 1).
    seeds : sequence of int or str
        Seeds; each seed is one repetition of the whole grid (selection,
        training initialisation, augmentation).
    epochs : int
        Epochs of the full-data run (and of every cell with ``match="epochs"``).
    match : {"epochs", "steps"}
        Equal epochs or (about) equal optimizer steps; see the module docstring.
    model : str or path-like
        Model to fine-tune (see :func:`detprune.train.train`); ``"auto"`` is resolved
        once, before the first cell, and recorded in ``sweep.json``.
    weights : str
        Embedding weights (see :func:`detprune.pipeline.prune`). ``"auto"`` with no
        pretrained YOLOv5 checkpoint found uses the backbone of ``model`` when it is a
        checkpoint that loads, rather than a random backbone.
    imgsz, batch, device, workers
        Used for embedding and training.
    split : str
        The split to reduce.
    out : path-like, optional
        Sweep folder (default ``./runs/detprune/sweep-<dataset name>``).
    baseline : bool
        Train the full-data baseline once per seed.
    val_each_epoch : bool
        Validate after every epoch and report the best epoch's weights. Default
        False: every cell is validated once, with its last weights, so cells with
        more epochs (``match="steps"``) do not get more chances to pick a lucky
        epoch on the validation split, and validation does not dominate the cost
        of long short-epoch runs.
    embed_seed : int
        Seed of a randomly initialised embedding backbone (shared by all seeds).
    box_weight, min_per_class, materialize
        Passed to :func:`detprune.pipeline.prune`.
    country : str, optional
        ISO alpha-3 code for CO2.
    measure_energy : bool
        Track energy with codecarbon's offline tracker.
    report : bool
        Write the summary, plots and ``report.md``/``report.html`` at the end.
    force : bool
        Start over in an ``out`` that holds other content or a sweep with other
        settings (it is deleted). Without it such an ``out`` is refused; a sweep
        with the same settings is always resumed.
    progress, verbose : bool
        Progress bars; ultralytics' and codecarbon's logs.
    command : str, optional
        The command line, recorded in the report.
    on_event : callable, optional
        ``on_event(kind, cell, info)`` with kind ``"start"``, ``"skip"``,
        ``"done"`` (info = the row) or ``"fail"`` (info = {"error": text}).

    Returns
    -------
    SweepResult

    Raises
    ------
    ParameterError
        On a bad parameter (before anything runs).
    OutputError
        If ``out`` cannot be used.
    """
    from . import pipeline
    from ._validation import SEED, Interval, Options, Predicate, validate_params
    from .dataset import load_dataset, source_paths
    from .select import get_reducer
    from .train import train

    methods = _parse_list(methods, str, "methods")
    keeps = _parse_list(keeps, float, "keeps")
    seeds = _parse_list(seeds, int, "seeds")
    validate_params(
        "sweep",
        {"epochs": epochs, "match": match, "imgsz": imgsz, "batch": batch, "embed_seed": embed_seed,
         "keeps": keeps, "seeds": seeds, "box_weight": box_weight, "min_per_class": min_per_class},
        {"epochs": Interval("int", 1), "match": Options(("epochs", "steps")),
         "box_weight": Interval("float", 0, 1, "left"), "min_per_class": Interval("int", 0),
         "imgsz": Interval("int", 32), "batch": Interval("int", 1),
         "embed_seed": SEED,
         "keeps": Predicate(lambda v: all(0 < k < 1 for k in v), "a list of floats in (0, 1)"),
         "seeds": Predicate(lambda v: all(SEED.is_satisfied_by(k) for k in v),
                             "a list of ints in [0, 4294967295]")},
    )
    for m in methods:
        if m == FULL:
            raise ParameterError("'full' is the baseline, not a method; it runs unless --no-baseline")
        get_reducer(m)  # unknown names fail here, before anything runs
    if country is not None:
        from .energy import check_country

        country = check_country(country)

    try:
        ds = load_dataset(data, splits=[split, "val"])
    except DatasetError as exc:
        if "no split named" not in str(exc):
            raise
        raise DatasetError(f"sweep needs a '{split}' and a 'val' split (accuracy is measured on "
                           f"val): {exc}") from None
    if not ds.split(split).records:
        raise ParameterError(f"split '{split}' of {data} has no readable images")
    if os.fspath(model) == "auto":
        from .train.finetune import auto_model

        model = auto_model(None)
    weights = _embedding_weights(weights, model)
    name = (ds.yaml.stem if ds.yaml is not None and ds.yaml.stem != "data" else ds.root.name)
    out_path = Path(out).expanduser() if out is not None else Path("runs/detprune") / f"sweep-{name}"
    out_path = out_path.resolve()
    settings = {
        "data": str(Path(data).expanduser().resolve()), "split": split, "epochs": epochs,
        "match": match, "model": os.fspath(model), "imgsz": imgsz, "batch": batch,
        "weights": weights, "embed_seed": embed_seed, "box_weight": box_weight,
        "min_per_class": min_per_class, "materialize": materialize,
        "val_each_epoch": val_each_epoch, "measure_energy": measure_energy,
    }
    _prepare_out(out_path, settings, force=force, protected=source_paths(ds))
    from .export import fingerprint

    records = ds.split(split).records
    source_fp = fingerprint(ds.names, [r.image for r in records], [r.label for r in records], ds.root)
    val_records = ds.split("val").records
    val_fp = fingerprint(ds.names, [r.image for r in val_records], [r.label for r in val_records],
                         ds.root)

    emb = _embed_once(out_path, data, split=split, weights=weights, imgsz=imgsz, batch=batch,
                      device=device, workers=workers, embed_seed=embed_seed, country=country,
                      measure_energy=measure_energy, progress=progress, verbose=verbose)
    n_full = int(emb["usable"])
    embed_energy = {k: emb.get(k) for k in ("seconds", "energy_kwh", "co2_kg")}

    def epochs_for(n_kept: int) -> int:
        """Planned epochs of a cell keeping ``n_kept`` images (-1: the full baseline)."""
        return epochs if n_kept < 0 else plan_epochs(epochs, n_full, n_kept, batch, match)

    cells = _grid(methods, keeps, seeds, baseline)
    rows: dict[str, dict] = {}
    skipped: list[str] = []
    failed: dict[str, str] = {}
    csv_path = out_path / "results.csv"

    def emit(kind: str, cell: Cell, info: dict) -> None:
        if on_event is not None:
            on_event(kind, cell, info)

    from ._interrupt import check as check_interrupt

    # finished cells of earlier runs over a larger grid stay in results.csv and the report
    # (this run writes only the cells of its own grid: they are found once)
    grid = {c.id for c in cells}
    earlier = _earlier_rows(out_path, grid, epochs_for, source_fp, val_fp, n_full, match, embed_energy)
    for cell in cells:
        check_interrupt()  # a Ctrl-C that landed in garbage collection was swallowed there
        cdir = out_path / "cells" / cell.id
        done = _finished(cell, cdir, epochs_for, source_fp, val_fp)
        if done is not None:
            rows[cell.id] = _row(cell, cdir, out_path, *done, n_full, match, embed_energy)
            skipped.append(cell.id)
            emit("skip", cell, rows[cell.id])
            continue
        emit("start", cell, {})
        if cdir.exists():
            shutil.rmtree(cdir)
        try:
            # the baseline is "every usable image" written the same way as a pruned set, so
            # both train on exactly the images the dataset layer accepted
            pr = pipeline.prune(
                data, method="srs" if cell.method == FULL else cell.method, keep=cell.keep,
                split=split, out=cdir / "data", materialize=materialize, seed=cell.seed,
                weights=weights, imgsz=imgsz, batch=batch, device=device, workers=workers,
                cache=out_path / "cache", embed_seed=embed_seed, min_per_class=min_per_class,
                box_weight=box_weight, country=country, measure_energy=measure_energy,
                force=True, progress=False, verbose=verbose,
            )
            manifest = pr.manifest
            cell_epochs = epochs_for(-1 if cell.method == FULL else int(manifest["kept"]))
            tr = train(
                pr.out, model=model, epochs=cell_epochs, imgsz=imgsz, batch=batch, device=device,
                workers=workers, country=country, out=cdir / "train", seed=cell.seed,
                measure_energy=measure_energy, force=True, verbose=verbose, val=val_each_epoch,
                close_mosaic=_close_mosaic(epochs, cell_epochs) if match == "steps" else None,
            )
        except DetpruneError as exc:
            failed[cell.id] = str(exc)
            emit("fail", cell, {"error": str(exc)})
            continue
        atomic_write_json(cdir / CELL_FILE, {"val_fingerprint": val_fp})
        rows[cell.id] = _row(cell, cdir, out_path, manifest, tr.results, n_full, match, embed_energy)
        emit("done", cell, rows[cell.id])
        _write_csv(csv_path, [rows[c.id] for c in cells if c.id in rows] + earlier)

    state = _read_json(out_path / "sweep.json") or {}
    before = state.get("failed_last_run") if isinstance(state.get("failed_last_run"), dict) else {}
    # named in the report until a run retries them (cells outside this grid keep their entry)
    state["failed_last_run"] = {**{k: v for k, v in before.items() if k not in grid}, **failed}
    atomic_write_json(out_path / "sweep.json", state)
    ordered = [rows[c.id] for c in cells if c.id in rows]
    _write_csv(csv_path, ordered + earlier)
    report_path = None
    if report and (ordered or earlier):
        report_path = write_sweep_report(out_path, command=command)
    elif command is not None:
        _record_command(out_path, command)
    return SweepResult(out_path, ordered, skipped, failed, report_path)


def write_sweep_report(out: str | os.PathLike, *, command: str | None = None) -> Path:
    """(Re)write the summary, plots and report of a sweep folder from its ``results.csv``.

    Parameters
    ----------
    out : path-like
        A sweep folder.
    command : str, optional
        The command line to show (default: the one recorded in ``sweep.json``).

    Returns
    -------
    Path
        ``report.md``.
    """
    from .report import read_results, write_report

    out = Path(out).expanduser().resolve()
    state = _read_json(out / "sweep.json")
    if state is None:
        raise OutputError(f"{out} is not a detprune sweep folder (no readable sweep.json)")
    rows = read_results(out / "results.csv")
    if command is not None:
        state = _record_command(out, command)
    emb = _read_json(out / "embed.json") or {}
    s = state.get("settings", {})
    energy = (emb.get("energy") or {})
    meta = {
        "command": state.get("command") or "",
        "dataset": s.get("data"), "split": s.get("split"), "model": s.get("model"),
        "weights": s.get("weights"), "embedding_weights": emb.get("weights"),
        "imgsz": s.get("imgsz"), "batch": s.get("batch"), "epochs": s.get("epochs"),
        "match": s.get("match"),
        "methods": sorted({r["method"] for r in rows if r.get("method") != FULL}),
        "keeps": sorted({r["keep"] for r in rows if r.get("method") != FULL}),
        "seeds": sorted({r["seed"] for r in rows}),
        "embedding": {k: emb.get(k) for k in ("images", "usable", "dims", "seconds", "energy_kwh",
                                               "co2_kg")},
        "energy_method": "; ".join(str(x) for x in (
            energy.get("estimated_with"), (energy.get("total") or {}).get("method")) if x),
        "val_each_epoch": s.get("val_each_epoch"),
        "country": ((energy.get("total") or {}).get("country")),
    }
    failed = state.get("failed_last_run")
    if isinstance(failed, dict) and failed:
        meta["notes"] = (
            f"{len(failed)} cell(s) failed in the last run and are not in the tables (run the same "
            "command again to retry them): " + "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
        )
    md, _html = write_report(out, rows, meta=meta)
    return md


def _record_command(out: Path, command: str) -> dict:
    state = _read_json(out / "sweep.json") or {}
    state["command"] = command
    atomic_write_json(out / "sweep.json", state)
    return state
