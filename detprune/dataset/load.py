"""Load a YOLO dataset into :class:`~detprune.dataset.records.Dataset`."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from ..errors import DatasetError
from . import _checkcache
from ._pool import chunked_map
from .checks import ImageProbe, find_identical_files, probe_image
from .records import Dataset, ImageRecord, Problem, Split
from .yolo import (
    SPLIT_NAMES,
    label_path_for,
    list_images,
    read_data_yaml,
    read_label_file,
    resolve_source,
    unlistable_name,
)

_YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
#: splits whose missing source is an error (ultralytics needs them to train and validate)
_NEEDED_SPLITS = ("train", "val")
_UNLIMITED_CLASSES = 1 << 30


def load_dataset(
    path: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    check_images: bool = True,
    workers: int | None = None,
    cache: bool | None = None,
) -> Dataset:
    """Read and validate a YOLO detection dataset without modifying anything.

    Parameters
    ----------
    path : path-like
        A ``data.yaml``, a folder holding one, or a bare folder with ``images/``
        and ``labels/`` (split sub-folders ``train``/``val``/``test`` optional).
    splits : sequence of str, optional
        Only read these splits (default: all present).
    check_images : bool
        Open every image to read its size and detect unreadable or truncated
        files, and hash same-size files to find byte-identical copies.
    workers : int, optional
        Threads for the per-file checks (default ``$DETPRUNE_IO_WORKERS`` or 1:
        serial is fastest on local disks; threads help on network file systems).
    cache : bool, optional
        Reuse the check results of files unchanged since an earlier run (size,
        ``mtime_ns`` and ``ctime_ns`` of image and label; see ``_checkcache.py``),
        kept in detprune's own cache folder, never in the dataset. Default: on,
        unless ``$DETPRUNE_CHECK_CACHE=0``; splits under 512 images are always
        checked afresh.

    Returns
    -------
    Dataset
        Problems (file and line) are collected in the splits, never raised;
        only an unusable dataset description raises :class:`DatasetError`.
    """
    with _gc_paused():
        return _load(Path(path).expanduser(), splits, check_images, workers, cache)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector off while the records are built.

    A load creates several objects per image and none of them in cycles; with
    the collector on, its passes over the ever larger heap make a load of 100 000
    images about 30 % slower (and the slowdown grows with the dataset).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load(
    p: Path,
    splits: Sequence[str] | None,
    check_images: bool,
    workers: int | None,
    cache: bool | None,
) -> Dataset:
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    yaml_path = _find_yaml(p)
    if yaml_path is not None:
        spec = read_data_yaml(yaml_path)
        root, names, sources = spec["root"], spec["names"], spec["splits"]
        kpt, extra = spec["kpt"], spec["extra"]
    else:
        root, names, sources = _bare_folder(p)
        kpt, extra = 0, ()
    if splits is not None:
        unknown = [s for s in splits if s not in sources]
        if unknown:
            have = ", ".join(sources) or "none"
            raise DatasetError(f"{p}: no split named {', '.join(unknown)} (splits present: {have})")
        unloaded = tuple((s, tuple(v)) for s, v in sources.items() if s not in splits)
        sources = {s: sources[s] for s in splits}
    else:
        unloaded = ()

    infer_names = names is None
    nc = _UNLIMITED_CLASSES if infer_names else len(names)
    use_cache = _checkcache.enabled() if cache is None else bool(cache)
    built: dict[str, Split] = {}
    stores: list[_checkcache.CheckStore] = []
    sizes: dict[Path, int] = {}  # file sizes the image probes read
    memo: dict[Path, tuple] = {}  # check results by image, shared by splits listing it
    for split, entries in sources.items():
        built[split], store = _load_split(
            split, root, entries, nc, check_images, workers, use_cache, sizes, memo, kpt
        )
        if store is not None:
            stores.append(store)

    if infer_names:
        top = max((int(r.classes.max()) for s in built.values() for r in s.records if r.n_boxes), default=0)
        names = tuple(str(i) for i in range(top + 1))
    built = _report_overlap(built)
    if check_images:
        built = _report_identical(built, workers, stores, sizes)
    for store in stores:
        store.save()
    where = str(yaml_path or root)
    notes = []
    source_names = tuple(names)
    names, renamed = unique_names(source_names)
    notes += [
        Problem("duplicate-class-name", where, None,
                f"class {i} has the name of an earlier class; reported as '{new}' (outputs keep the "
                "dataset's name)", "warning")
        for i, new in renamed
    ]
    if splits is None and "train" not in built:
        notes.append(Problem("no-train-split", where, None,
                             "no 'train' split: ultralytics cannot train on this dataset", "warning"))
    notes += [
        Problem("empty-split", where, None, f"split '{name}' has no images", "warning")
        for name, sp in built.items()
        if not sp.records and not sp.excluded
        and not any(p.kind == "missing-split-source" for p in sp.problems)
    ]
    return Dataset(root=root, yaml=yaml_path, names=tuple(names), splits=built, problems=tuple(notes),
                   source_names=source_names if renamed else None, yaml_extra=extra,
                   unloaded=unloaded)


def unique_names(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[tuple[int, str]]]:
    """Class names made unique (per-class reports are keyed by name): a repeated name
    gets its class id appended, ``'a'`` -> ``'a (3)'``; returns the names and the renamed."""
    seen: set[str] = set()
    out, renamed = [], []
    for i, n in enumerate(names):
        if n in seen:
            n = f"{n} ({i})"
            while n in seen or n in names:
                n += "'"
            renamed.append((i, n))
        seen.add(n)
        out.append(n)
    return tuple(out), renamed


def _find_yaml(p: Path) -> Path | None:
    if p.is_file():
        if p.suffix.lower() not in (".yaml", ".yml"):
            raise DatasetError(f"{p}: expected a data.yaml or a dataset folder")
        return p
    for name in _YAML_NAMES:
        if (p / name).is_file():
            return p / name
    return None


def _bare_folder(p: Path) -> tuple[Path, tuple[str, ...] | None, dict[str, list[str]]]:
    images = p / "images"
    if not images.is_dir():
        raise DatasetError(
            f"{p}: no data.yaml and no images/ folder; pass a data.yaml or a folder with images/ and labels/"
        )
    subdirs = [s for s in SPLIT_NAMES if (images / s).is_dir()]
    sources = {s: [f"images/{s}"] for s in subdirs} if subdirs else {"train": ["images"]}
    names = None
    for candidate in (p / "classes.txt", p / "labels" / "classes.txt"):
        if candidate.is_file():
            try:  # a byte-order mark is not part of the first name
                text = candidate.read_text(encoding="utf-8-sig")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{candidate}: class names are not UTF-8 text (byte {exc.start}: "
                                   f"{exc.reason}); save it as UTF-8") from None
            except OSError as exc:
                raise DatasetError(f"{candidate}: cannot read the class names ({exc.strerror or exc})") from None
            lines = [x.strip() for x in text.splitlines()]
            names = tuple(x for x in lines if x) or None
            break
    return p.resolve(), names, sources


def _load_split(
    split: str,
    root: Path,
    entries: list[str],
    nc: int,
    check_images: bool,
    workers: int | None,
    use_cache: bool,
    sizes: dict[Path, int],
    memo: dict[Path, tuple],
    kpt: int = 0,
) -> tuple[Split, _checkcache.CheckStore | None]:
    """One split's records and problems (and its check store); ``sizes`` gets the file
    size of every probed image, ``memo`` the check results of its images (an image an
    earlier split listed, e.g. with ``val: images/train``, is not checked again)."""
    problems: list[Problem] = []
    images: list[Path] = []
    label_dirs: list[Path] = []
    for entry in entries:
        source = resolve_source(root, entry)
        if split not in _NEEDED_SPLITS and not source.exists():
            # ultralytics checks only val (and train, to train); a missing test split is
            # reported, not fatal
            problems.append(Problem(
                "missing-split-source", str(source), None,
                f"split '{split}' source does not exist; it adds no images to the split", "warning",
            ))
            continue
        images.extend(list_images(source, problems))
        if source.is_dir():
            label_dirs.append(label_path_for(source / "x.jpg").parent)
    seen: set[Path] = set()
    unique: list[Path] = []
    for img in images:
        if img in seen:
            problems.append(Problem("listed-twice", str(img), None, f"image listed more than once in split '{split}'", "warning"))
            continue
        seen.add(img)
        unique.append(img)
    images = unique

    labels = [label_path_for(img) for img in images]
    pairs = list(zip(images, labels, strict=True))
    check = partial(_check_pair, nc=nc, check_image=check_images, kpt=kpt)
    checked = [memo.get(img) for img in images]
    todo = [i for i, c in enumerate(checked) if c is None]
    rest = [pairs[i] for i in todo]
    store = None
    if use_cache and len(rest) >= _checkcache.MIN_IMAGES:
        store = _checkcache.CheckStore(root, split, nc, check_images, kpt=kpt)
        fresh = _cached_checks(store, rest, check, workers)
    else:
        fresh = chunked_map(check, rest, workers)
    for i, result in zip(todo, fresh, strict=True):
        checked[i] = memo[images[i]] = result

    records: list[ImageRecord] = []
    # images left out already when listed (names no list can hold), as printed
    excluded: list[str] = [p.file for p in problems if p.kind == "file-name"]
    for img, lb, ((exists, classes, boxes, label_problems), probe) in zip(
        images, labels, checked, strict=True
    ):
        problems.extend(label_problems)
        if any(p.kind == "unreadable-label" for p in label_problems):
            # nothing is known of its objects: as background it would teach false negatives
            excluded.append(str(img))
            continue
        if probe is not None and probe.problem is not None:
            problems.append(probe.problem)
            if probe.problem.severity == "error":
                excluded.append(str(img))
                continue
        w, h = (0, 0) if probe is None else (probe.width, probe.height)
        if probe is not None:
            sizes[img] = probe.size
        records.append(ImageRecord(img, lb if exists else None, w, h, classes, boxes))

    paired = {str(lb) for lb in labels}
    for d in label_dirs:
        problems.extend(_orphan_labels(d, paired))
    if records and not any(r.label is not None for r in records):
        problems.append(_no_labels_problem(split, root, records[0].image))
    return Split(split, tuple(entries), tuple(records), tuple(problems), tuple(excluded)), store


def _cached_checks(
    store: _checkcache.CheckStore, pairs: list[tuple[Path, Path]], check, workers: int | None
) -> list[tuple]:
    """:func:`_check_pair` of every pair, reusing the store's results for unchanged files."""
    stats = [_checkcache.file_stat(img, lb) for img, lb in pairs]  # before anything is read
    out: list[tuple | None] = [None] * len(pairs)
    todo: list[int] = []
    for i, ((img, _), st) in enumerate(zip(pairs, stats, strict=True)):
        hit = store.lookup(img, st)
        if hit is None:
            todo.append(i)
            continue
        label, probe = hit
        out[i] = (label, None if probe is None else ImageProbe(img, probe[0], probe[1], st[0], probe[2]))
    if todo:
        started = _checkcache.now_ns()
        fresh = chunked_map(check, [pairs[i] for i in todo], workers)
        for i, (label, probe) in zip(todo, fresh, strict=True):
            out[i] = (label, probe)
            kept = None if probe is None else (probe.width, probe.height, probe.problem)
            store.record(pairs[i][0], stats[i], started, label, kept)
    store.keep_only([img for img, _ in pairs])
    return out  # type: ignore[return-value]


def _no_labels_problem(split: str, root: Path, image: Path, max_entries: int = 200_000) -> Problem:
    """A split without a single label file: say how labels are paired, and where one was seen."""
    label = label_path_for(image)
    msg = (
        f"none of the images of split '{split}' has a label file, so every image is background. "
        "Labels pair with images as in ultralytics: the last '/images/' in the image path becomes "
        f"'/labels/' and the suffix '.txt' (here {image} -> {label})"
    )
    want = image.stem + ".txt"
    others = set(SPLIT_NAMES) - {split}
    seen = 0
    found = None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(x for x in dirnames if not x.startswith("."))
        if want in filenames:
            parts = set(Path(dirpath).relative_to(root).parts)
            if split in parts or not parts & others:  # not another split's file of that name
                found = Path(dirpath) / want
                break
        seen += len(filenames) + len(dirnames)
        if seen > max_entries:
            break
    if found is not None:
        msg += f"; a file {found} exists: put images under an 'images' folder and labels under 'labels'"
    return Problem("no-labels", str(root), None, msg, "warning")


def _check_pair(pair: tuple[Path, Path], nc: int, check_image: bool, kpt: int = 0) -> tuple:
    """Parse an image's label file and probe the image (one task of the parallel map)."""
    img, lb = pair
    return _read_optional_label(lb, nc, kpt), (probe_image(img) if check_image else None)


def _read_optional_label(path: Path, nc: int, kpt: int = 0):
    import numpy as np

    if not path.is_file():
        problems = []
        if path.is_dir():  # ultralytics sees no label file: background
            problems.append(Problem("label-is-folder", str(path), None,
                                    "the label path is a folder, not a file; the image counts as background",
                                    "warning"))
        return False, np.zeros(0, np.int32), np.zeros((0, 4), np.float32), problems
    classes, boxes, problems = read_label_file(path, nc, kpt)
    return True, classes, boxes, problems


def _orphan_labels(label_dir: Path, paired: set[str]) -> list[Problem]:
    """Label files under ``label_dir`` whose path is not in ``paired`` (strings)."""
    if not label_dir.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(label_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # as list_images
        for f in sorted(filenames):
            if not f.endswith(".txt") or f == "classes.txt" or f.startswith("."):
                continue
            lb = os.path.join(dirpath, f)
            # an unlistable name: its image, if any, is reported as such (file-name)
            if lb not in paired and unlistable_name(lb) is None:
                out.append(Problem("orphan-label", lb, None, "label file has no image", "warning"))
    return out


def _with_problems(built: dict[str, Split], extra: dict[str, list[Problem]]) -> dict[str, Split]:
    """The splits with ``extra[name]`` appended to their problems."""
    return {
        name: Split(s.name, s.sources, s.records, s.problems + tuple(extra[name]), s.excluded)
        if extra[name] else s
        for name, s in built.items()
    }


def _report_overlap(built: dict[str, Split]) -> dict[str, Split]:
    """Warn in both splits, once per pair, when two splits list the same image files."""
    extra: dict[str, list[Problem]] = {name: [] for name in built}
    names = list(built)
    for i, a in enumerate(names):
        mine = {r.image for r in built[a].records}
        for b in names[i + 1 :]:
            shared = [r.image for r in built[b].records if r.image in mine]
            if not shared:
                continue
            why = ("metrics measured on one include images the model trained on" if "train" in (a, b)
                   else "the two splits do not measure independently")
            msg = (
                f"{len(shared)} images are in both split '{a}' and split '{b}' (the same files, "
                f"e.g. {shared[0].name}): {why}"
            )
            for name in (a, b):
                extra[name].append(Problem("split-overlap", str(shared[0]), None, msg, "warning"))
    return _with_problems(built, extra)


def _report_identical(
    built: dict[str, Split],
    workers: int | None,
    stores: Sequence[_checkcache.CheckStore] = (),
    sizes: dict[Path, int] | None = None,
) -> dict[str, Split]:
    """Warn of byte-identical images (``sizes``: known file sizes, else ``stat``)."""
    sizes = sizes or {}
    owner: dict[Path, str] = {}
    files: list[tuple[Path, int]] = []
    for name, split in built.items():
        for r in split.records:
            if r.image not in owner:
                owner[r.image] = name
                size = sizes.get(r.image)
                if size is None:
                    try:
                        size = r.image.stat().st_size
                    except OSError:
                        continue
                files.append((r.image, size))
    extra: dict[str, list[Problem]] = {name: [] for name in built}
    known: dict[Path, str] = {}
    for store in stores:
        for p, _ in files:
            d = store.digest(p)
            if d is not None:
                known[p] = d.hex()
    computed: dict[Path, str] = {}
    groups = find_identical_files(files, workers, known=known, computed=computed)
    for store in stores:
        for p, d in computed.items():
            if not d.startswith("unreadable:"):  # nothing to remember of a file not read
                store.record_digest(p, bytes.fromhex(d))
    for group in groups:
        first = group[0]
        for other in group[1:]:
            where = owner[other]
            across = owner[first] != where
            msg = f"byte-identical to {first}" + (
                f" (in split '{owner[first]}': the same image is in two splits)" if across else ""
            )
            extra[where].append(Problem("duplicate-image", str(other), None, msg, "warning"))
    return _with_problems(built, extra)


def source_paths(ds: Dataset) -> list[Path]:
    """Every source location that an output folder must neither be, contain nor replace.

    The root, the ``data.yaml``, each split's folders and list files (val and test
    too: an output that replaces them would delete them), and the folders that hold
    the images (readable or left out) and label files of every split.
    """
    return _source_paths(ds, _unloaded_images(ds))


def _source_paths(ds: Dataset, unloaded: list[Path]) -> list[Path]:
    """:func:`source_paths`, given the images of the unread splits (listed once)."""
    paths = {ds.root}
    if ds.yaml is not None:
        paths.add(ds.yaml)
    for sp in ds.splits.values():
        paths.update(resolve_source(ds.root, s) for s in sp.sources)
        paths.update(Path(e).parent for e in sp.excluded)
        for r in sp.records:
            paths.add(r.image.parent)
            if r.label is not None:
                paths.add(r.label.parent)
    for _, sources in ds.unloaded:
        paths.update(resolve_source(ds.root, s) for s in sources)
    for img in unloaded:
        paths.update((img.parent, label_path_for(img).parent))
    return sorted(paths)


def _unloaded_images(ds: Dataset) -> list[Path]:
    """The images of the splits that were declared but not read, listed (not checked)."""
    out: list[Path] = []
    for _, sources in ds.unloaded:
        for s in sources:
            try:
                out += list_images(resolve_source(ds.root, s), [])
            except DatasetError:  # a source that does not exist holds nothing to protect
                continue
    return out


def source_files(ds: Dataset) -> set[Path]:
    """The dataset's own files, resolved: data.yaml, list files, images (readable or left
    out) and labels (the files of the places :func:`source_paths` lists)."""
    unloaded = _unloaded_images(ds)
    files = {p.resolve() for p in _source_paths(ds, unloaded) if p.is_file()}
    for sp in ds.splits.values():
        files.update(Path(e).resolve() for e in sp.excluded)
        for r in sp.records:
            files.add(r.image.resolve())
            if r.label is not None:
                files.add(r.label.resolve())
    for img in unloaded:
        files.update((img.resolve(), label_path_for(img).resolve()))
    return files
