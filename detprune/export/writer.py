"""Write a pruned YOLO dataset: a list of kept images or a linked/copied tree.

The output is built in a hidden temporary folder beside its destination and
renamed into place at the end (:func:`atomic_output_dir`), so an interrupted
run leaves nothing behind. Source files are only ever read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import yaml

from .._io import _umask, atomic_write_text
from ..dataset.yolo import label_path_for
from ..errors import OutputError

MATERIALIZE_MODES = ("list", "symlink", "hardlink", "copy")


def check_output_dir(
    out: Path, *, force: bool, protected: Sequence[Path], marks: Sequence[str] = ()
) -> Path:
    """Refuse an output location that exists non-empty (without force) or overlaps the source.

    Parameters
    ----------
    out : Path
        Wanted output folder.
    force : bool
        Allow replacing an existing non-empty folder.
    protected : sequence of Path
        Source folders and files that the output may neither be, contain, nor lie inside
        of an image folder of.
    marks : sequence of str
        File names of which an existing non-empty ``out`` must hold one for ``force`` to
        replace it (e.g. ``manifest.json``: only an earlier output of ours is replaced,
        never a folder of the user's).
    """
    out = Path(out).expanduser().resolve()
    for p in protected:
        p = Path(p).resolve()
        if out == p or p.is_relative_to(out):
            raise OutputError(f"output folder {out} would contain or replace the source {p}; choose another --out")
        if p.is_dir() and out.is_relative_to(p):
            raise OutputError(f"output folder {out} lies inside the source folder {p}; choose another --out")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not force:
                raise OutputError(f"{out} exists and is not empty; pass --force to replace it")
            if not _holds_mark(out, marks):
                raise OutputError(
                    f"{out} is not empty and holds no detprune output (no {' or '.join(marks)}); "
                    "refusing to replace it even with --force: choose another --out or empty it"
                )
    return out


def _holds_mark(out: Path, marks: Sequence[str]) -> bool:
    """Whether the folder ``out`` may be replaced by ``--force``: it holds one of ``marks``
    (an earlier output of ours), or no marks are asked for."""
    return not marks or any((out / m).exists() for m in marks)


@contextlib.contextmanager
def atomic_output_dir(
    out: Path, *, force: bool = True, marks: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out`` when the block succeeds.

    On any exception (Ctrl-C included) the temporary folder is removed and
    ``out`` is left as it was. ``force`` and ``marks`` are checked again when the result
    is put in place (as :func:`check_output_dir` checked them at the start): a folder
    that appeared meanwhile -- the user's, or another run's output without ``force`` --
    is never replaced.
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from exc
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700): the usual mode
        yield tmp
        if out.is_symlink() and not out.exists():  # a dangling link: not ours to replace
            raise OutputError(
                f"{out} appeared while this run was writing (a link to nothing); it was left as it "
                "is and this run's output discarded: run again with another --out"
            )
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            if not force or not out.is_dir() or not _holds_mark(out, marks):
                raise OutputError(
                    f"{out} appeared while this run was writing (another run or program); it was "
                    "left as it is and this run's output discarded: run again with another --out"
                )
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        from .._interrupt import signals_deferred

        with signals_deferred():  # a second Ctrl-C must not leave it half removed
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _link(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "symlink":
            os.symlink(src, dst)
        elif mode == "hardlink":
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)
    except OSError as exc:
        hint = " (different file systems? use --materialize copy or symlink)" if mode == "hardlink" else ""
        raise OutputError(f"cannot {mode} {src} -> {dst}: {exc.strerror or exc}{hint}") from exc


def tree_names(images: Sequence[Path]) -> list[Path]:
    """Relative destination names for images: their path below the deepest common folder.

    Keeps sub-folders so that names never collide and the YOLO pairing rule
    (``images/`` -> ``labels/``) holds inside the output tree.
    """
    if not images:
        return []
    parents = [str(p.parent) for p in images]
    common = Path(os.path.commonpath(parents)) if len(set(parents)) > 1 else images[0].parent
    return [p.relative_to(common) for p in images]


def _label_dst(tmp: Path, out: Path, split: str, rel: Path) -> Path:
    """Where the label of the image ``out/images/<split>/<rel>`` goes (inside ``tmp``).

    ultralytics' rule, on the final path: the *last* ``/images/`` becomes ``/labels/``.
    That is ``out/labels/<split>/<rel>.txt`` unless ``rel`` itself holds an ``images``
    folder (a split made of several dataset folders, e.g. ``set1/images/train``), whose
    labels then go beside it (``.../set1/labels/train/``), where ultralytics looks.
    """
    return tmp / label_path_for(out / "images" / split / rel).relative_to(out)


def materialize_split(
    tmp: Path,
    out: Path,
    split: str,
    images: Sequence[Path],
    labels: Sequence[Path | None],
    mode: str,
    cleaned: Mapping[int, str] | None = None,
    copies: Collection[int] = (),
) -> str:
    """Write the kept images of one split into ``tmp`` (to become ``out``).

    Parameters
    ----------
    cleaned : mapping of int to str, optional
        Label text to write instead of the source label file, by position in
        ``images`` (the valid lines of a label file with bad lines: ultralytics would
        skip the whole image for one bad line). With ``mode="list"`` these images are
        linked under ``out/images/<split>/`` (symlink, else a copy) next to their
        cleaned labels and listed from there.
    copies : collection of int, optional
        Positions of images that are copied under ``out/images/<split>/`` whatever
        ``mode`` is (and listed from there with ``mode="list"``): files ultralytics
        would rewrite in place (a JPEG with data after its end-of-image marker),
        which through a link or a list would be the source file.

    Returns
    -------
    str
        The ``data.yaml`` entry for the split: an absolute path under ``out``.
    """
    cleaned = cleaned or {}
    local = set(cleaned) | set(copies)
    # images of one stem in two formats (a.jpg, a.png) share one label file, as in ultralytics:
    # it is written once
    written: set[Path] = set()
    names = tree_names(images) if (mode != "list" or local) else []
    if mode == "list":
        listed = [str(p) for p in images]
        for i in sorted(local):
            dst = tmp / "images" / split / names[i]
            if i in copies:
                _link(images[i], dst, "copy")
            else:
                try:
                    _link(images[i], dst, "symlink")
                except OutputError:
                    _link(images[i], dst, "copy")
            lb_dst = _label_dst(tmp, out, split, names[i])
            if lb_dst in written:
                pass
            elif i in cleaned:
                atomic_write_text(lb_dst, cleaned[i])
            elif labels[i] is not None:
                _link(labels[i], lb_dst, "copy")  # type: ignore[arg-type]
            written.add(lb_dst)
            listed[i] = str(out / "images" / split / names[i])
        atomic_write_text(tmp / f"{split}.txt", "".join(f"{p}\n" for p in listed))
        return str(out / f"{split}.txt")
    for i, (rel, img, lb) in enumerate(zip(names, images, labels, strict=True)):
        _link(img, tmp / "images" / split / rel, "copy" if i in copies else mode)
        lb_dst = _label_dst(tmp, out, split, rel)
        if lb_dst in written:
            continue
        if i in cleaned:
            atomic_write_text(lb_dst, cleaned[i])
        elif lb is not None:
            _link(lb, lb_dst, mode)
        written.add(lb_dst)
    return str(out / "images" / split)


def write_data_yaml(
    path: Path, names: Sequence[str], entries: dict[str, str | list[str]],
    extra: Sequence[tuple[str, object]] = (),
) -> None:
    """Write a ``data.yaml`` that ultralytics loads as it is (absolute paths).

    ``extra``: further ``(key, value)`` pairs of the source's ``data.yaml`` to keep
    (``kpt_shape``: without it ultralytics reads a pose row as a polygon).
    """
    data: dict = {}
    data.update(entries)
    data["nc"] = len(names)
    data["names"] = dict(enumerate(names))
    for key, value in extra:
        data.setdefault(key, value)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
