"""The one module that wires the stages: dataset -> features -> selection -> export."""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._io import check_file_target
from ._validation import SEED, IsNone
from ._version import __version__
from .dataset import load_dataset, source_paths
from .dataset.load import source_files
from .dataset.summary import summarize
from .errors import ParameterError


def inspect(
    data: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    check_images: bool = True,
    min_stratum_size: int = 10,
    json_out: str | os.PathLike | None = None,
) -> dict:
    """Load and validate a dataset and summarise it (see :func:`detprune.dataset.summary.summarize`).

    With ``json_out`` the summary is also written there as JSON (atomically); a path that
    is one of the dataset's own files (its data.yaml, a list, an image or a label) is
    refused before anything is written.
    """
    from ._validation import Interval, validate_params

    validate_params("inspect", {"min_stratum_size": min_stratum_size}, {"min_stratum_size": Interval("int", 1)})
    ds = load_dataset(data, splits=splits, check_images=check_images)
    if json_out is not None:
        _refuse_inside_source(ds, json_out, "the summary")
    strata_split = "train" if "train" in ds.splits else next(iter(ds.splits))
    summary = summarize(ds, strata_split=strata_split, min_stratum_size=min_stratum_size)
    if json_out is not None:
        from ._io import atomic_write_json

        atomic_write_json(json_out, summary)
    return summary


def _method_params(method_params, owner: str) -> dict:
    """``method_params`` as keyword arguments (a mapping of names), or a ParameterError."""
    if method_params is None:
        return {}
    if not isinstance(method_params, Mapping) or not all(isinstance(k, str) for k in method_params):
        raise ParameterError(
            f"The 'method_params' parameter of {owner} must be None or a mapping of parameter "
            f"names to values. Got {type(method_params).__name__} instead."
        )
    return dict(method_params)


def _data_path(data, owner: str) -> str | os.PathLike:
    """``data`` if it is a path, else a ParameterError (not pathlib's TypeError)."""
    if not isinstance(data, str | os.PathLike):
        raise ParameterError(
            f"The 'data' parameter of {owner} must be a path to a data.yaml or a dataset folder. "
            f"Got {type(data).__name__} instead."
        )
    return data


def _check_embedding_params(owner: str, imgsz, batch, workers, device) -> None:
    """The embedding's own parameters, checked before the dataset is read (and before the
    weights, whose fallback warns) and named after the command; the embedder checks them
    again, as ``embed_images``."""
    from ._validation import validate_params
    from .features.embed import _CONSTRAINTS, _resolve_device

    params = {"imgsz": imgsz, "batch": batch, "workers": workers}
    validate_params(owner, params, {k: _CONSTRAINTS[k] for k in params})
    _resolve_device(device, owner)


def _refuse_inside_source(ds, path: str | os.PathLike, what: str) -> None:
    """Refuse an output file that is one of the dataset's files or lies in one of its
    image or label folders (where it would replace a file or become part of the data)."""
    from .errors import OutputError

    target = Path(path).expanduser().resolve()
    # only an existing path can be a file of the dataset (resolving every image is slow)
    if target.exists() and target in source_files(ds):
        raise OutputError(f"{path} is one of the dataset's own files; write {what} elsewhere")
    folders = {p.resolve() for p in source_paths(ds) if p.is_dir()} - {ds.root.resolve()}
    if target.parent in folders:
        raise OutputError(f"{path} lies in an image or label folder of the dataset; write {what} elsewhere")


# ----------------------------------------------------------------------------- prune

@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` produced.

    Attributes
    ----------
    out : Path
        The pruned dataset folder (holds ``data.yaml``, ``manifest.json``, ``manifest.csv``).
    manifest : dict
        The manifest as written.
    """

    out: Path
    manifest: dict

    @property
    def data_yaml(self) -> Path:
        return self.out / "data.yaml"


def default_cache_dir(root: Path) -> Path:
    """``<dataset>/.detprune/cache``, or a per-dataset folder under ``~/.cache/detprune``
    when the dataset folder is read-only."""
    import hashlib

    if os.access(root, os.W_OK):
        return root / ".detprune" / "cache"
    from ._offline import detprune_home

    digest = hashlib.blake2b(str(root.resolve()).encode(), digest_size=8).hexdigest()
    return detprune_home() / "datasets" / f"{root.name}-{digest}"


def default_out(root: Path, method: str, keep: float | None, budget: int | None, split: str) -> Path:
    tag = f"keep{round(keep * 100):d}" if keep is not None else f"n{budget}"
    suffix = "" if split == "train" else f"-{split}"
    return root.parent / f"{root.name}-{method}-{tag}{suffix}"


def prune(
    data: str | os.PathLike,
    *,
    method: str = "mms",
    keep: float | None = None,
    budget: int | None = None,
    split: str = "train",
    out: str | os.PathLike | None = None,
    materialize: str = "list",
    seed: int = 0,
    weights: str = "auto",
    imgsz: int = 640,
    batch: int = 16,
    device: str = "auto",
    workers: int | None = None,
    cache: str | os.PathLike | None = None,
    embed_seed: int | None = None,
    min_per_class: int = 1,
    min_stratum_size: int = 10,
    box_weight: float = 0.3,
    pca_dim: int | None = None,
    dedup_threshold: float | None = None,
    knn_index: str = "exact",
    report_epsilon: bool = True,
    method_params: dict | None = None,
    country: str | None = None,
    measure_energy: bool = True,
    force: bool = False,
    progress: bool = True,
    verbose: bool = False,
) -> PruneResult:
    """Prune one split of a YOLO dataset: load -> embed -> select -> export.

    Parameters
    ----------
    data : path-like
        ``data.yaml`` or dataset folder.
    method : str
        Registered reducer name (``detprune methods`` lists them).
    keep, budget : float or int
        Kept fraction in (0, 1], or number of images; exactly one.
    split : str
        The split to reduce; the others are referenced unchanged.
    out : path-like, optional
        Output folder (default: beside the dataset, named after method and keep).
    materialize : {"list", "symlink", "hardlink", "copy"}
        ``list`` writes a ``train.txt`` of kept paths (no copies).
    seed : int
        Seed of every random step.
    weights, imgsz, batch, device, workers, cache
        Embedding settings (see :func:`detprune.features.embed_images`); the cache
        defaults to ``<dataset>/.detprune/cache``.
    embed_seed : int, optional
        Seed of a randomly initialised embedding backbone (default: ``seed``); a
        sweep fixes it so that every seed shares one set of embeddings.
    min_per_class : int
        Every class keeps at least ``min(its images, min_per_class)`` images.
    min_stratum_size : int
        Class-set strata smaller than this are merged.
    box_weight : float
        Share of the box-statistics block in the selection feature space (0 disables).
    pca_dim : int, optional
        PCA-reduce the embeddings before selection.
    dedup_threshold : float, optional
        Drop near-duplicates closer than this (L2, selection space) before selecting.
    knn_index : {"exact", "auto", "ivf", "hnsw"}
        k-NN search structure of the graph-based methods: ``"exact"`` (default);
        ``"auto"`` switches to IVF from 200 000 images; approximate searches record
        their recall@k (measured against exact search on 1000 sampled queries) in
        the manifest's ``selection_settings.knn_search``.
    report_epsilon : bool
        Compute the ε-representativeness of the selection (default True; its own
        energy phase ``epsilon``). False skips it (``"epsilon": null`` in the manifest):
        at a million images it costs about as much as the selection.
    method_params : dict, optional
        Extra parameters of the method.
    country : str, optional
        ISO alpha-3 code for the CO2 estimate.
    measure_energy : bool
        Track energy with codecarbon's offline tracker.
    force : bool
        Replace an existing non-empty ``out``.

    Returns
    -------
    PruneResult
    """
    import numpy as np

    from ._validation import Interval, Options, validate_params
    from .dataset import assign_strata, box_statistics
    from .energy import EnergyLog
    from .errors import ParameterError
    from .export import MATERIALIZE_MODES, atomic_output_dir, check_output_dir

    validate_params(
        "prune",
        {"keep": keep, "budget": budget, "materialize": materialize, "seed": seed,
         "min_per_class": min_per_class, "min_stratum_size": min_stratum_size,
         "box_weight": box_weight, "dedup_threshold": dedup_threshold, "pca_dim": pca_dim,
         "embed_seed": embed_seed, "knn_index": knn_index},
        {"keep": [Interval("float", 0, 1, "right"), IsNone()],
         "budget": [Interval("int", 1), IsNone()],
         "materialize": Options(MATERIALIZE_MODES),
         "seed": SEED,
         "min_per_class": Interval("int", 0),
         "min_stratum_size": Interval("int", 1),
         "box_weight": Interval("float", 0, 1, "left"),
         "dedup_threshold": [Interval("float", 0, None, "neither"), IsNone()],
         "pca_dim": [Interval("int", 1), IsNone()],
         "knn_index": Options(("exact", "auto", "ivf", "hnsw")),
         "embed_seed": [SEED, IsNone()]},
    )
    _check_embedding_params("prune", imgsz, batch, workers, device)
    if (keep is None) == (budget is None):
        raise ParameterError("give exactly one of --keep (a fraction) or --budget (a number of images)")
    from .select import get_reducer

    reducer = get_reducer(method, **_method_params(method_params, "prune"))

    energy = EnergyLog(country=country, enabled=measure_energy, verbose=verbose)
    t_start = time.time()
    ds = load_dataset(_data_path(data, "prune"))
    sp = ds.split(split)
    records = list(sp.records)
    if not records:
        raise ParameterError(f"split '{split}' has no readable images to prune")
    out_path = Path(out) if out is not None else default_out(ds.root, reducer.name, keep, budget, split)
    out_path = check_output_dir(out_path, force=force, protected=source_paths(ds), marks=("manifest.json",))
    # the class floor, before the embedding (its cost) rather than after
    _check_floor(box_statistics(records, ds.nc).presence, keep, budget, min_per_class, split)
    cache_dir = Path(cache) if cache is not None else default_cache_dir(ds.root)

    # ---- embed
    with energy.phase("embed"):
        emb, vectors, usable, failed = _embed_records(
            ds, records, split, weights=weights, imgsz=imgsz, batch=batch, device=device,
            workers=workers, cache_dir=cache_dir, progress=progress,
            seed=seed if embed_seed is None else embed_seed,
        )
    n = len(usable)
    want = budget if budget is not None else max(1, round(keep * n))
    if want > n:
        raise ParameterError(
            f"The 'budget' parameter of prune must be an int in [1, {n}] (the usable images of "
            f"split '{split}'). Got {want} instead."
        )

    # ---- select
    from .select import build_feature_space, epsilon, stratified_select

    stats = box_statistics(usable, ds.nc)
    strata = assign_strata(stats.presence, ds.names, min_size=min_stratum_size)
    dedup_info = None
    from .select._knn import search_settings

    with energy.phase("select"), search_settings(knn_index, seed=seed) as knn_log:
        if pca_dim is not None and pca_dim > min(vectors.shape):
            raise ParameterError(
                f"--pca {pca_dim} is more than the {vectors.shape[1]} dims of the embeddings or the "
                f"{vectors.shape[0]} images; use at most {min(vectors.shape)}"
            )
        X = build_feature_space(
            vectors, stats.features() if box_weight > 0 else None,
            box_weight=box_weight, pca_dim=pca_dim, seed=seed,
        )
        candidates = np.arange(n)
        if dedup_threshold is not None:
            from .select import dedup_mask

            # only images with the same set of classes are duplicates of each other: no
            # class (or class mixture) loses its last image to an image of other classes
            _, class_sets = np.unique(stats.presence, axis=0, return_inverse=True)
            keep_mask, groups = dedup_mask(X, dedup_threshold, labels=class_sets.reshape(-1))
            candidates = np.flatnonzero(keep_mask)
            dedup_info = {
                "threshold": dedup_threshold,
                "groups": len(groups),
                "dropped": int(n - len(candidates)),
                "dropped_images": [
                    _relkey(usable[i].image, ds.root) for i in np.flatnonzero(~keep_mask)
                ],
            }
            if want > len(candidates):
                raise ParameterError(
                    f"only {len(candidates)} image{'s' if len(candidates) != 1 else ''} remain"
                    f"{'s' if len(candidates) == 1 else ''} after removing near-duplicates "
                    f"(--dedup-threshold {dedup_threshold:g}); the budget of {want} is larger"
                )
        _check_floor(stats.presence[candidates], keep, budget, min_per_class, split, want=want,
                     after="embedding" if dedup_info is None else "near-duplicate removal")
        sel = stratified_select(
            reducer, X if dedup_info is None else X[candidates], want,  # no copy of X
            strata=strata.labels[candidates],
            classes=stats.presence[candidates], min_per_class=min_per_class, seed=seed,
        )
        picked = candidates[np.asarray(sel.indices)]
    eps = None
    if report_epsilon:  # a measurement, not part of the selection: a phase of its own
        with energy.phase("epsilon"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # recorded in the manifest instead
            eps = _epsilon_dict(epsilon(X, picked, labels=stats.presence), ds.names)

    # ---- export
    from .export import fingerprint, write_manifest

    kept = [usable[i] for i in picked]
    with energy.phase("export"), atomic_output_dir(out_path, force=force, marks=("manifest.json",)) as tmp:
        written = _write_tree(tmp, out_path, ds, split, kept, materialize)
        manifest = _manifest(
            ds=ds, split=split, data=data, reducer=reducer, sel=sel, picked=picked, usable=usable,
            records=records, stats=stats, strata=strata, eps=eps, emb=emb, failed=failed,
            excluded=list(sp.excluded), problems=list(sp.problems), keep=keep, budget=want, seed=seed, materialize=materialize,
            settings={"min_per_class": min_per_class, "min_stratum_size": min_stratum_size,
                      "box_weight": box_weight, "pca_dim": pca_dim, "dedup": dedup_info,
                      "knn_index": knn_index, "knn_search": [k.to_dict() for k in knn_log]},
            fingerprint=fingerprint(ds.names, [r.image for r in records], [r.label for r in records], ds.root),
            energy=energy, started=t_start,
        )
        manifest.update(written)
        write_manifest(tmp, manifest, _csv_rows(ds, records, usable, picked, sel, strata, stats))
    # the export phase closed after the manifest was written; record its final figures
    manifest["energy"] = energy.to_dict()
    from ._io import atomic_write_json

    atomic_write_json(out_path / "manifest.json", manifest)
    return PruneResult(out_path, manifest)


def _check_floor(presence, keep, budget, min_per_class: int, split: str, *, want: int | None = None,
                 after: str | None = None) -> None:
    """Refuse a budget below what the class floor needs, in terms of the options."""
    from .errors import ParameterError
    from .select import floor_size

    n = presence.shape[0]
    if want is None:
        want = budget if budget is not None else max(1, round(keep * n))
    need = floor_size(presence, min_per_class)
    if want >= need:
        return
    asked = f"--budget {budget}" if budget is not None else f"--keep {keep:g} keeps {want} of {n} images and"
    where = f" (after {after}: {n} images)" if after and budget is not None else ""
    raise ParameterError(
        f"{asked}{where} is below the {need} images that the class floor needs (every class of split "
        f"'{split}' keeps at least min(its images, --min-per-class {min_per_class})); raise --keep or "
        "--budget, or lower --min-per-class (0 turns the floor off)"
    )


def _embed_records(ds, records, split: str, *, cache_dir: Path, **kw):
    """Embed records; returns (embeddings, vectors of the usable records, usable records,
    failures). The vectors are ``emb.vectors`` itself (no copy) when every record embedded."""
    import numpy as np

    from .errors import ParameterError
    from .features import embed_images

    emb = embed_images(
        [r.image for r in records], cache_dir=cache_dir,
        keys=[_relkey(r.image, ds.root) for r in records], **kw,
    )
    ok = np.asarray(emb.ok, dtype=bool)
    usable = [r for r, good in zip(records, ok, strict=True) if good]
    if not usable:
        raise ParameterError(f"no image of split '{split}' could be embedded")
    vectors = emb.vectors if ok.all() else emb.vectors[ok]
    return emb, vectors, usable, [(str(p), why) for p, why in emb.failures]


def rank(
    data: str | os.PathLike,
    *,
    method: str,
    split: str = "train",
    weights: str = "auto",
    imgsz: int = 640,
    batch: int = 16,
    device: str = "auto",
    workers: int | None = None,
    cache: str | os.PathLike | None = None,
    min_per_class: int = 1,
    min_stratum_size: int = 10,
    box_weight: float = 0.3,
    method_params: dict | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Order every usable image of a split by ``method``'s pick order (budget = all).

    The stratified wrapper interleaves strata, so every prefix of the order is
    itself class-balanced: the order a data-reduction schedule takes its
    per-epoch subsets from (``detprune train --order-by METHOD``).

    Returns
    -------
    list of Path
        Image paths, most preferred first; images that could not be embedded are left out.
    """
    from ._validation import Interval, validate_params
    from .dataset import assign_strata, box_statistics
    from .select import build_feature_space, get_reducer, stratified_select

    validate_params(  # before the embedding, in rank's own terms
        "rank",
        {"seed": seed, "min_per_class": min_per_class, "min_stratum_size": min_stratum_size,
         "box_weight": box_weight},
        {"seed": SEED, "min_per_class": Interval("int", 0),
         "min_stratum_size": Interval("int", 1), "box_weight": Interval("float", 0, 1, "left")},
    )
    _check_embedding_params("rank", imgsz, batch, workers, device)
    reducer = get_reducer(method, **_method_params(method_params, "rank"))
    ds = load_dataset(_data_path(data, "rank"), splits=[split])
    records = list(ds.split(split).records)
    cache_dir = Path(cache) if cache is not None else default_cache_dir(ds.root)
    _, vectors, usable, _ = _embed_records(
        ds, records, split, weights=weights, imgsz=imgsz, batch=batch, device=device,
        workers=workers, cache_dir=cache_dir, progress=progress, seed=seed,
    )
    stats = box_statistics(usable, ds.nc)
    strata = assign_strata(stats.presence, ds.names, min_size=min_stratum_size)
    X = build_feature_space(
        vectors, stats.features() if box_weight > 0 else None,
        box_weight=box_weight, seed=seed,
    )
    sel = stratified_select(
        reducer, X, len(usable), strata=strata.labels, classes=stats.presence,
        min_per_class=min_per_class, seed=seed,
    )
    return [usable[i].image for i in sel.indices]


def _relkey(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def _write_tree(tmp: Path, out: Path, ds, split: str, kept, materialize: str) -> dict[str, list[str]]:
    """Materialise the kept images of ``split`` and a data.yaml whose other splits are the originals.

    Returns the kept images (relative to the dataset root) written with cleaned
    labels (``labels_cleaned``) and those copied whatever the mode
    (``images_copied``: JPEGs with trailing data, which ultralytics rewrites in place).
    """
    from .export import materialize_split, write_data_yaml

    entries: dict[str, str | list[str]] = {}
    cleaned = _cleaned_labels(ds.split(split), kept)
    rewritten = {p.file for p in ds.split(split).problems if p.kind == "jpeg-trailing-data"}
    copies = {i for i, r in enumerate(kept) if str(r.image) in rewritten}
    for name in ds.splits:
        entries[name] = (
            materialize_split(
                tmp, out, name, [r.image for r in kept], [r.label for r in kept], materialize,
                cleaned, copies,
            )
            if name == split else _original_entry(ds, name, tmp, out)
        )
    write_data_yaml(tmp / "data.yaml", ds.yaml_names, entries, ds.yaml_extra)
    return {
        "labels_cleaned": [_relkey(kept[i].image, ds.root) for i in sorted(cleaned)],
        "images_copied": [_relkey(kept[i].image, ds.root) for i in sorted(copies)],
    }


def _cleaned_labels(split, kept) -> dict[int, str]:
    """Label text of the valid lines, by position in ``kept``, for label files with a bad line.

    ultralytics skips an image whose label file has a single bad line (too few
    fields, a class id out of range, coordinates outside [0, 1], box and polygon rows
    mixed, ...); detprune drops only that line, so such images get a cleaned copy of
    their labels.
    """
    from .dataset.yolo import format_labels

    bad = {p.file for p in split.problems if p.severity == "error" or p.kind == "mixed-rows"}
    return {
        i: format_labels(r.classes, r.boxes)
        for i, r in enumerate(kept)
        if r.label is not None and str(r.label) in bad
    }


def _original_entry(ds, name: str, tmp: Path, out: Path) -> str | list[str]:
    """The ``data.yaml`` entry of a split that is not reduced: its own sources, unless a
    ``.txt`` list of it has entries that ultralytics reads otherwise than detprune.

    ultralytics reads a list entry that is neither absolute nor ``./``-prefixed against
    the *working* folder and keeps padding spaces; detprune reads it against the list's
    folder, as the dataset's author most likely meant. Such a split is written as
    ``OUT/<split>.txt``, the absolute paths of the images detprune found, so the output
    trains the same from any folder.
    """
    from ._io import atomic_write_text
    from .dataset.yolo import resolve_source

    srcs = [resolve_source(ds.root, s) for s in ds.splits[name].sources]
    if any(_list_read_otherwise(src) for src in srcs):
        sp = ds.splits[name]
        atomic_write_text(tmp / f"{name}.txt", "".join(f"{r.image}\n" for r in sp.records))
        return str(out / f"{name}.txt")
    return str(srcs[0]) if len(srcs) == 1 else [str(x) for x in srcs]


def _list_read_otherwise(src: Path) -> bool:
    """Whether ultralytics would read an entry of the image list ``src`` otherwise than
    detprune (a relative entry without ``./``, ``~``, or padding spaces)."""
    if not (src.is_file() and src.suffix.lower() == ".txt"):
        return False
    try:
        lines = src.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    for raw in lines:
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        if raw != entry or not (os.path.isabs(entry) or entry.startswith("./")):
            return True
    return False


def _class_table(ds, stats, kept_idx) -> dict:
    before_img = stats.presence.sum(axis=0)
    before_box = stats.class_counts.sum(axis=0)
    after_img = stats.presence[kept_idx].sum(axis=0)
    after_box = stats.class_counts[kept_idx].sum(axis=0)
    out = {}
    for i, name in enumerate(ds.names):
        out[name] = {
            "images_before": int(before_img[i]), "images_after": int(after_img[i]),
            "boxes_before": int(before_box[i]), "boxes_after": int(after_box[i]),
        }
    bg = stats.box_counts == 0
    out["(background)"] = {
        "images_before": int(bg.sum()), "images_after": int(bg[kept_idx].sum()),
        "boxes_before": 0, "boxes_after": 0,
    }
    return out


def _manifest(*, ds, split, data, reducer, sel, picked, usable, records, stats, strata, eps, emb,
              failed, excluded, problems, keep, budget, seed, materialize, settings, fingerprint, energy,
              started) -> dict:
    import numpy as np

    kept_strata = np.bincount(strata.labels[picked], minlength=len(strata.names))
    all_strata = np.bincount(strata.labels, minlength=len(strata.names))
    return {
        "manifest_version": 1,
        "detprune_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "source": {
            "data": str(Path(data).expanduser().resolve()),
            "yaml": str(ds.yaml.resolve()) if ds.yaml else None,
            "root": str(ds.root),
            "split": split,
            "fingerprint": fingerprint,
            "images": len(records),
            "images_excluded_unreadable": excluded,
            "images_failed_embedding": [{"path": p, "reason": r} for p, r in failed],
            "problem_count": len(problems),
            "problem_errors": sum(p.severity == "error" for p in problems),
            "problems": [p.to_dict() for p in problems[:1000]],
        },
        "names": list(ds.names),
        "method": reducer.name,
        "params": sel.params,
        "seed": seed,
        "keep": keep,
        "budget": int(budget),
        "kept": len(picked),
        "kept_fraction": len(picked) / len(usable),
        "materialize": materialize,
        "selection_settings": settings,
        "selection_info": sel.info,
        "embedding": {
            "weights": {**emb.weights.to_dict(), "description": str(emb.weights)},
            "settings": emb.settings,
            "dims": list(emb.dims) if emb.dims is not None else None,
            "cache": emb.cache,
        },
        "strata": {
            name: {"images": int(a), "kept": int(k)}
            for name, a, k in zip(strata.names, all_strata, kept_strata, strict=True)
        },
        "classes": _class_table(ds, stats, picked),
        "epsilon": eps,
        "energy": energy.to_dict(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "selected": [
            {"path": _relkey(usable[i].image, ds.root), "rank": r, "score": float(sc)}
            for r, (i, sc) in enumerate(zip(picked, sel.scores, strict=True))
        ],
    }


def _epsilon_dict(rep, names) -> dict:
    """The ε report keyed by class name (computed in the selection feature space)."""
    classes = {}
    for c in rep.per_class():
        name = names[c["class"]] if 0 <= c["class"] < len(names) else str(c["class"])
        classes[name] = {k: v for k, v in c.items() if k != "class"}
    total = sum(rep.n_total)
    if not total:  # no image of the split has a box: no class to be representative of
        return {"eps_linf": None, "eps_l2": None, "mean_l2": None, "space": _EPS_SPACE,
                "classes": classes, "warnings": ["no image of the split has a box: ε is undefined"]}
    return {
        "eps_linf": rep.overall_linf,
        "eps_l2": rep.overall_l2,
        # the mean over every (image, class) of the distance to the nearest kept image of the class:
        # unlike the maxima, not decided by the rarest class alone
        "mean_l2": sum(m * n for m, n in zip(rep.mean_l2, rep.n_total, strict=True) if n) / total,
        "space": _EPS_SPACE,
        "classes": classes,
        "warnings": list(rep.warnings),
    }


#: Where ε is measured (recorded in the manifest).
_EPS_SPACE = "selection feature space (normalised embedding + weighted box statistics)"


def _csv_rows(ds, records, usable, picked, sel, strata, stats) -> list[dict]:
    rank = {int(i): r for r, i in enumerate(picked)}
    score = {int(i): float(s) for i, s in zip(picked, sel.scores, strict=True)}
    pos = {id(r): i for i, r in enumerate(usable)}
    rows = []
    for r in records:
        i = pos.get(id(r))
        classes = sorted({ds.names[c] for c in r.classes.tolist()})
        rows.append({
            "path": _relkey(r.image, ds.root),
            "kept": int(i is not None and i in rank),
            "rank": rank.get(i, "") if i is not None else "",
            "score": score.get(i, "") if i is not None else "",
            "stratum": strata.names[strata.labels[i]] if i is not None else "(not embedded)",
            "classes": "|".join(classes),
            "boxes": r.n_boxes,
        })
    return rows


def export(
    manifest: str | os.PathLike,
    *,
    out: str | os.PathLike,
    materialize: str = "copy",
    force: bool = False,
) -> PruneResult:
    """Rebuild a pruned dataset from a manifest alone.

    The source split is re-read and its fingerprint compared with the one in the
    manifest; any change (files added, removed, resized, labels edited) is an error.
    """
    import json

    from ._validation import Options, validate_params
    from .errors import DatasetError
    from .export import (
        MATERIALIZE_MODES,
        atomic_output_dir,
        check_output_dir,
        fingerprint,
        read_manifest,
    )

    validate_params("export", {"materialize": materialize}, {"materialize": Options(MATERIALIZE_MODES)})
    m = read_manifest(Path(manifest))
    src = m["source"]
    where = src["yaml"] or src["root"]
    if not Path(where).is_absolute():  # older manifests kept the yaml path as typed
        where = src.get("data") or where
    ds = load_dataset(where, splits=None)
    split = src["split"]
    records = list(ds.split(split).records)
    fp = fingerprint(ds.names, [r.image for r in records], [r.label for r in records], ds.root)
    if fp != src["fingerprint"]:
        raise DatasetError(
            f"split '{split}' of {src['yaml'] or src['root']} changed since the manifest was written "
            f"(fingerprint {fp} != {src['fingerprint']}); prune again"
        )
    by_key = {_relkey(r.image, ds.root): r for r in records}
    try:
        kept = [by_key[s["path"]] for s in m["selected"]]
    except KeyError as exc:
        raise DatasetError(f"manifest names an image that is not in the source: {exc.args[0]}") from exc
    out_path = check_output_dir(
        Path(out), force=force, protected=[*source_paths(ds), Path(manifest)], marks=("manifest.json",)
    )
    m = dict(m, materialize=materialize)
    with atomic_output_dir(out_path, force=force, marks=("manifest.json",)) as tmp:
        m.update(_write_tree(tmp, out_path, ds, split, kept, materialize))
        (tmp / "manifest.json").write_text(json.dumps(m, indent=2, allow_nan=True) + "\n")
        src_csv = Path(manifest)
        src_csv = (src_csv if src_csv.is_dir() else src_csv.parent) / "manifest.csv"
        if src_csv.is_file():
            (tmp / "manifest.csv").write_bytes(src_csv.read_bytes())
    return PruneResult(out_path, m)


def saved_order_path(save: str | os.PathLike) -> Path:
    """The image list written beside ``embed --save FILE.npy``: ``FILE.images.txt``.

    Parameters
    ----------
    save : path-like
        The matrix file.

    Returns
    -------
    Path
    """
    save = Path(save).expanduser()
    stem = save.name[:-4] if save.name.lower().endswith(".npy") else save.name
    return save.with_name(f"{stem}.images.txt")


def embed(
    data: str | os.PathLike,
    *,
    split: str = "train",
    weights: str = "auto",
    imgsz: int = 640,
    batch: int = 16,
    device: str = "auto",
    workers: int | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    save: str | os.PathLike | None = None,
    seed: int = 0,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int | None = None,
) -> dict:
    """Embed (and cache) every readable image of a split; returns a summary dict.

    ``engine="ray"`` embeds on a Ray cluster (``ray_address``: ``None`` starts a
    private local instance, ``"auto"`` joins the running cluster; ``ray_actors``
    sets the actor pool size) and merges the workers' shards into the same cache;
    see :mod:`detprune.features.ray_engine` and ``docs/scaling.md``.

    ``save`` writes the ``(n, d)`` float32 matrix as ``.npy`` (row ``i`` embeds the
    split's ``i``-th usable image; rows of images that could not be embedded are NaN)
    and, beside it, the images in row order, one absolute path per line
    (:func:`saved_order_path`: ``FILE.images.txt``).
    """
    from ._validation import InstanceOf, Interval, Options, validate_params
    from .features import embed_images

    validate_params(
        "embed",
        {"engine": engine, "ray_address": ray_address, "ray_actors": ray_actors},
        {"engine": Options(("local", "ray")),
         "ray_address": [IsNone(), InstanceOf(str, "a Ray address ('auto' or 'HOST:PORT')")],
         "ray_actors": [IsNone(), Interval("int", 1)]},
    )
    # a Ray cluster's devices are checked by its engine (this machine may have no GPU)
    _check_embedding_params("embed", imgsz, batch, workers, device if engine == "local" else "cpu")
    t0 = time.perf_counter()
    ds = load_dataset(data, splits=[split])
    records = ds.split(split).records
    order = None
    if save is not None:
        _refuse_inside_source(ds, save, "the matrix")
        order = saved_order_path(save)
        _refuse_inside_source(ds, order, "the image list")
        for target in (Path(save), order):  # before anything is written
            check_file_target(target, " for --save")
    cache_dir = Path(cache) if cache is not None else default_cache_dir(ds.root)
    embed_fn = embed_images
    extra: dict = {}
    if engine == "ray":
        from .features.ray_engine import embed_images_ray

        embed_fn = embed_images_ray
        extra = {"address": ray_address, "actors": ray_actors}
    emb = embed_fn(
        [r.image for r in records], weights=weights, imgsz=imgsz, batch=batch, device=device,
        workers=workers, cache_dir=cache_dir, keys=[_relkey(r.image, ds.root) for r in records],
        progress=progress, seed=seed, **extra,
    )
    if save is not None:
        import io

        import numpy as np

        from ._io import atomic_write_bytes

        buf = io.BytesIO()
        np.save(buf, emb.vectors)
        # both files written whole before either is renamed into place (a full disk leaves
        # the old pair, never a matrix beside another run's list)
        staged = order.with_name(f".{order.name}.{os.getpid()}-{time.monotonic_ns()}.staged")
        try:
            atomic_write_bytes(staged, "".join(f"{r.image}\n" for r in records).encode("utf-8"))
            atomic_write_bytes(Path(save), buf.getvalue())
            os.replace(staged, order)
        finally:
            staged.unlink(missing_ok=True)
    w = emb.weights
    return {
        "images": len(records),
        "dims": int(emb.vectors.shape[1]),
        "computed": int(emb.cache.get("computed", len(records))),
        "cached": int(emb.cache.get("hits", 0)),
        "failed": len(emb.failures),
        "failures": [(str(p), r) for p, r in emb.failures],
        "seconds": time.perf_counter() - t0,
        "weights": str(w),
        "saved": None if save is None else (str(save), str(order)),
        "engine": engine,
        "ray": emb.settings.get("ray"),
    }
