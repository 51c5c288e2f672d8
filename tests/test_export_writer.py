"""Output safety: atomic folder, refusal rules, materialisation modes, data.yaml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import write_image, write_text

from detprune.errors import OutputError
from detprune.export import atomic_output_dir, check_output_dir, materialize_split, write_data_yaml
from detprune.export.writer import tree_names


def test_refuses_non_empty_without_force_and_source_overlap(tmp_path):
    src = tmp_path / "ds"
    (src / "images").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    assert check_output_dir(out, force=False, protected=[src]) == out.resolve()  # empty is fine
    (out / "x").write_text("1")
    with pytest.raises(OutputError, match="not empty"):
        check_output_dir(out, force=False, protected=[src])
    assert check_output_dir(out, force=True, protected=[src])
    with pytest.raises(OutputError, match="contain or replace the source"):
        check_output_dir(tmp_path, force=True, protected=[src])
    with pytest.raises(OutputError, match="contain or replace the source"):
        check_output_dir(src, force=True, protected=[src])
    with pytest.raises(OutputError, match="inside the source"):
        check_output_dir(src / "images" / "p", force=True, protected=[src])


def test_atomic_dir_leaves_nothing_on_interrupt(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(out) as tmp:
        (tmp / "partial.txt").write_text("half")
        raise KeyboardInterrupt
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_existing_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("boom")
    assert (out / "old.txt").exists() and not (out / "new.txt").exists()
    with atomic_output_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(os.listdir(out)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("mode", ["list", "symlink", "hardlink", "copy"])
def test_materialize_modes(tmp_path, mode):
    src = tmp_path / "ds"
    imgs = [write_image(src / "images/train/a/x.jpg"), write_image(src / "images/train/b/x.jpg", seed=1)]
    labels = [write_text(src / "labels/train/a/x.txt", "0 0.5 0.5 0.1 0.1\n"), None]
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        entry = materialize_split(tmp, out, "train", imgs, labels, mode)
    if mode == "list":
        assert entry == str(out / "train.txt")
        assert (out / "train.txt").read_text().split() == [str(p) for p in imgs]
        return
    assert entry == str(out / "images" / "train")
    a, b = out / "images/train/a/x.jpg", out / "images/train/b/x.jpg"
    assert a.read_bytes() == imgs[0].read_bytes() and b.read_bytes() == imgs[1].read_bytes()
    assert (out / "labels/train/a/x.txt").read_text() == "0 0.5 0.5 0.1 0.1\n"
    assert not (out / "labels/train/b/x.txt").exists()
    assert a.is_symlink() == (mode == "symlink")
    if mode == "hardlink":
        assert a.stat().st_ino == imgs[0].stat().st_ino


def test_tree_names_keep_subfolders_unique(tmp_path):
    paths = [tmp_path / "i/a/x.jpg", tmp_path / "i/b/x.jpg", tmp_path / "i/x.jpg"]
    assert [str(p) for p in tree_names(paths)] == ["a/x.jpg", "b/x.jpg", "x.jpg"]
    assert [str(p) for p in tree_names(paths[:1])] == ["x.jpg"]


def test_data_yaml_round_trip(tmp_path):
    write_data_yaml(tmp_path / "data.yaml", ["a", "b"], {"train": "/x/train.txt", "val": ["/v1", "/v2"]})
    d = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert d == {"train": "/x/train.txt", "val": ["/v1", "/v2"], "nc": 2, "names": {0: "a", 1: "b"}}


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    from detprune._io import atomic_write_text

    mask = os.umask(0o022)
    try:
        from detprune._io import _umask

        _umask.cache_clear()
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
        _umask.cache_clear()


def test_output_folder_gets_the_usual_permissions(tmp_path):
    from detprune._io import _umask

    mask = os.umask(0o022)
    try:
        _umask.cache_clear()
        out = tmp_path / "out"
        with atomic_output_dir(out) as tmp:
            (tmp / "x.txt").write_text("1")
        assert out.stat().st_mode & 0o777 == 0o755  # not mkdtemp's private 0700
    finally:
        os.umask(mask)
        _umask.cache_clear()


@pytest.mark.parametrize("mode", ["list", "symlink", "copy"])
def test_split_of_several_dataset_folders_keeps_labels_where_ultralytics_looks(tmp_path, mode):
    """A train split of two dataset folders (``set1/images/train``, ``set2/images/train``,
    same file names): each label goes where ultralytics' rule (the last ``/images/``
    becomes ``/labels/``) finds it for the output image path, cleaned labels included."""
    from detprune.dataset.yolo import label_path_for

    src = tmp_path / "src"
    imgs = [write_image(src / f"set{k}/images/train/x.jpg", seed=k) for k in (1, 2)]
    labels = [write_text(src / f"set{k}/labels/train/x.txt", f"{k} 0.5 0.5 0.1 0.1\n") for k in (1, 2)]
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        entry = materialize_split(tmp, out, "train", imgs, labels, mode, cleaned={1: "0 0.5 0.5 0.2 0.2\n"})
    if mode == "list":
        listed = [Path(p) for p in Path(entry).read_text().split()]
        assert listed[0] == imgs[0]  # untouched: listed from the source, its label beside it
    else:
        listed = sorted(Path(entry).rglob("*.jpg"))
    found = {p.read_bytes(): label_path_for(p).read_text() for p in listed}
    assert found == {imgs[0].read_bytes(): "1 0.5 0.5 0.1 0.1\n", imgs[1].read_bytes(): "0 0.5 0.5 0.2 0.2\n"}


def test_unwritable_output_parent_is_a_clear_error(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", denied)  # as for a folder without write access
    with pytest.raises(OutputError, match=r"cannot create the output folder .*out: Permission denied"):
        with atomic_output_dir(tmp_path / "out"):
            pass


@pytest.mark.parametrize("mode", ["list", "symlink", "hardlink", "copy"])
def test_images_of_one_stem_share_their_label_in_every_mode(tmp_path, mode):
    """``a.jpg`` and ``a.png`` pair with the one ``a.txt`` (ultralytics' rule); linking it
    twice failed with 'File exists' in symlink and hardlink modes."""
    from detprune.dataset.yolo import label_path_for

    src = tmp_path / "src"
    imgs = [write_image(src / "images/train/a.jpg", seed=1), write_image(src / "images/train/a.png", seed=2),
            write_image(src / "images/train/b.png", seed=3)]
    labels = [write_text(src / "labels/train/a.txt", "1 0.5 0.5 0.1 0.1\n")] * 2 + [
        write_text(src / "labels/train/b.txt", "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n")]
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        entry = materialize_split(tmp, out, "train", imgs, labels, mode, cleaned={2: "0 0.5 0.5 0.1 0.1\n"},
                                  copies={0} if mode == "list" else ())
    if mode == "list":
        listed = [Path(p) for p in Path(entry).read_text().split()]
    else:
        listed = sorted(Path(entry).rglob("*.*"))
    assert sorted(p.name for p in listed) == ["a.jpg", "a.png", "b.png"]
    found = {p.name: label_path_for(p).read_text() for p in listed}
    assert found == {"a.jpg": "1 0.5 0.5 0.1 0.1\n", "a.png": "1 0.5 0.5 0.1 0.1\n", "b.png": "0 0.5 0.5 0.1 0.1\n"}


def test_a_failed_write_is_one_error_naming_the_file_and_still_an_oserror(tmp_path):
    """Outputs: one line (the CLI's DetpruneError); caches, which tolerate a failed write
    by catching OSError, still catch it."""
    from detprune._io import atomic_write_text
    from detprune.errors import DetpruneError

    blocker = write_text(tmp_path / "file.txt", "x")
    with pytest.raises(DetpruneError, match=r"^cannot write .*file\.txt/sub/out\.md: ") as info:
        atomic_write_text(blocker / "sub" / "out.md", "table")
    assert isinstance(info.value, OSError)
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_writes_never_replace_a_device_or_fifo_and_cleanup_survives_a_second_signal(tmp_path):
    import signal

    from detprune._interrupt import check, install, signals_deferred
    from detprune._io import atomic_write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="is not a regular file"):
        atomic_write_text(fifo, "{}")
    assert fifo.is_fifo()
    # a dangling link that appears at --out is not replaced either
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="appeared while this run was writing"):
        with atomic_output_dir(out, force=True, marks=("manifest.json",)) as tmp:
            (tmp / "x").write_text("x")
            out.symlink_to(tmp_path / "nowhere")
    assert out.is_symlink() and not any(p.name.startswith(".out.tmp") for p in tmp_path.iterdir())
    # a signal inside cleanup is remembered, not raised
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        install()
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # let the handler run: nothing is raised here
                pass
        with pytest.raises(KeyboardInterrupt):
            check()
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
