"""The persistent check cache: same results as a fresh check, reused only for unchanged files."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from conftest import tree_digest, write_text

from detprune.dataset import _checkcache, checks, load, load_dataset

HOUR_NS = 3600 * 10**9


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """detprune's home in tmp_path, caching every split whatever its size, with checks
    made "an hour later" than the files were written (so that they are not racy)."""
    home = tmp_path / "home"
    monkeypatch.setenv("DETPRUNE_HOME", str(home))
    monkeypatch.delenv("DETPRUNE_CHECK_CACHE", raising=False)
    monkeypatch.setattr(_checkcache, "MIN_IMAGES", 0)
    monkeypatch.setattr(_checkcache, "now_ns", lambda: time.time_ns() + HOUR_NS)
    return home / "checks"


@pytest.fixture
def counted(monkeypatch):
    """Count label parses, image probes and file digests actually performed."""
    calls = {"label": 0, "probe": 0, "digest": 0}

    def wrap(module, name, key):
        real = getattr(module, name)

        def counting(*args, **kwargs):
            calls[key] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)

    wrap(load, "read_label_file", "label")
    wrap(load, "probe_image", "probe")
    wrap(checks, "_file_digest", "digest")
    return calls


def age(root, ns=HOUR_NS):
    """Move the mtime of a file, or of every file under a folder, ``ns`` into the past."""
    paths = [str(root)] if os.path.isfile(root) else [
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files
    ]
    for p in paths:
        st = os.stat(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - ns))


def signature(ds):
    return {
        name: (
            [(str(r.image), str(r.label), r.width, r.height, r.classes.tolist(), r.boxes.tolist())
             for r in s.records],
            [str(p) for p in s.problems],
            list(s.excluded),
        )
        for name, s in ds.splits.items()
    }


@pytest.fixture
def messy(make_dataset):
    """A dataset with bad lines, an orphan label, unreadable images, duplicates, two splits."""
    y = make_dataset(
        {
            "train": {
                "ok": "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n",
                "bad": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\nx y\n",
                "clip": "2 0.95 0.5 0.2 0.2\n",
                "bg": None,
            },
            "val": {"v": "1 0.5 0.5 0.4 0.4\n"},
        }
    )
    root = y.parent
    write_text(root / "labels/train/orphan.txt", "0 0.5 0.5 0.2 0.2\n")
    (root / "images/train/trunc.jpg").write_bytes((root / "images/train/ok.jpg").read_bytes()[:300])
    (root / "images/train/junk.png").write_bytes(b"this is not a png")
    shutil.copy(root / "images/train/ok.jpg", root / "images/train/copy.jpg")
    shutil.copy(root / "images/train/ok.jpg", root / "images/val/same.jpg")
    age(root)
    return y


def test_cached_results_equal_a_fresh_check(messy, cache_home, counted):
    fresh = signature(load_dataset(messy, cache=False))
    assert not cache_home.exists() or not list(cache_home.iterdir())
    first = signature(load_dataset(messy))
    assert len(list(cache_home.glob("*.npz"))) == 2  # one store per split
    done = dict(counted)
    second = load_dataset(messy)
    assert signature(second) == first == fresh
    # nothing was parsed, probed or hashed again
    assert counted == done
    kinds = {p.kind for p in second.all_problems()}
    assert {"class-id", "field-count", "clipped-box", "orphan-label", "unreadable-image",
            "duplicate-image"} <= kinds


def test_dataset_is_never_written(messy, cache_home):
    before = tree_digest(messy.parent)
    load_dataset(messy)
    load_dataset(messy)
    assert tree_digest(messy.parent) == before
    assert not any(".detprune" in p.parts for p in messy.parent.rglob("*"))


def test_changed_label_is_read_again(messy, cache_home, counted):
    load_dataset(messy)
    lb = messy.parent / "labels/train/ok.txt"
    lb.write_text("2 0.5 0.5 0.3 0.3\n")
    age(lb)  # an old mtime, but not the recorded one
    parses = counted["label"]
    rec = {r.image.name: r for r in load_dataset(messy).split("train").records}
    assert rec["ok.jpg"].classes.tolist() == [2]
    assert counted["label"] == parses + 1


def test_label_appearing_or_disappearing(messy, cache_home):
    load_dataset(messy)
    root = messy.parent
    (root / "labels/train/ok.txt").unlink()
    write_text(root / "labels/train/bg.txt", "1 0.5 0.5 0.2 0.2\n")
    rec = {r.image.name: r for r in load_dataset(messy).split("train").records}
    assert rec["ok.jpg"].label is None and rec["ok.jpg"].is_background
    assert rec["bg.jpg"].classes.tolist() == [1]


def test_racy_entry_is_not_trusted(make_dataset, cache_home, counted, monkeypatch):
    """On a file system whose timestamps did not move (a rewrite in the same tick), a file
    changed within RACY_NS of its check is read again rather than trusted."""
    monkeypatch.setattr(_checkcache, "now_ns", time.time_ns)  # checks at the real time
    tick = time.time_ns()
    real = _checkcache.file_stat

    def frozen(image, label):  # what a coarse-timestamp file system would report
        s = real(image, label)
        return None if s is None else (s[0], tick, tick, s[3], tick if s[3] >= 0 else 0,
                                       tick if s[3] >= 0 else 0)

    monkeypatch.setattr(_checkcache, "file_stat", frozen)
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    lb = y.parent / "labels/train/a.txt"
    load_dataset(y)
    lb.write_text("1 0.5 0.5 0.2 0.2\n")  # same size, same (frozen) times
    parses = counted["label"]
    rec = load_dataset(y).split("train").records[0]
    assert rec.classes.tolist() == [1]
    assert counted["label"] == parses + 1


def test_restored_mtime_is_noticed(make_dataset, cache_home, counted):
    """A rewrite that keeps the size and sets the old mtime back still changes ctime."""
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    lb = y.parent / "labels/train/a.txt"
    load_dataset(y)
    st = os.stat(lb)
    time.sleep(0.05)  # past the file system's timestamp tick
    lb.write_text("1 0.5 0.5 0.2 0.2\n")
    os.utime(lb, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(lb).st_size, os.stat(lb).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    parses = counted["label"]
    assert load_dataset(y).split("train").records[0].classes.tolist() == [1]
    assert counted["label"] == parses + 1


def test_other_class_count_is_another_store(make_dataset, cache_home):
    y = make_dataset({"train": {"a": "2 0.5 0.5 0.2 0.2\n"}}, names=("a", "b", "c"))
    age(y.parent)
    assert load_dataset(y).split("train").records[0].classes.tolist() == [2]
    y.write_text("train: images/train\nnames:\n  0: a\n  1: b\n")
    split = load_dataset(y).split("train")
    assert split.records[0].classes.tolist() == []
    assert [p.kind for p in split.problems] == ["class-id"]


def test_damaged_store_is_ignored_and_rewritten(messy, cache_home, counted):
    want = signature(load_dataset(messy))
    for p in cache_home.glob("*.npz"):
        p.write_bytes(p.read_bytes()[:100])
    parses = counted["label"]
    assert signature(load_dataset(messy)) == want
    assert counted["label"] > parses
    parses = counted["label"]
    assert signature(load_dataset(messy)) == want
    assert counted["label"] == parses  # rewritten whole


def test_switched_off(messy, cache_home, monkeypatch):
    monkeypatch.setenv("DETPRUNE_CHECK_CACHE", "0")
    load_dataset(messy)
    assert not cache_home.exists() or not list(cache_home.glob("*.npz"))


def test_small_splits_are_not_cached(messy, cache_home, monkeypatch):
    monkeypatch.setattr(_checkcache, "MIN_IMAGES", 512)
    load_dataset(messy)
    assert not cache_home.exists() or not list(cache_home.glob("*.npz"))


def test_unwritable_cache_folder_is_harmless(messy, tmp_path, monkeypatch):
    monkeypatch.setattr(_checkcache, "MIN_IMAGES", 0)
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    real = _checkcache.CheckStore.__init__

    def init(self, *args, **kwargs):
        real(self, *args, folder=blocker / "checks")

    monkeypatch.setattr(_checkcache.CheckStore, "__init__", init)
    assert signature(load_dataset(messy)) == signature(load_dataset(messy, cache=False))


def test_least_recently_used_stores_are_evicted(make_dataset, cache_home, tmp_path, monkeypatch):
    monkeypatch.setattr(_checkcache, "MAX_STORES", 3)
    for i in range(5):
        y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}}, root=tmp_path / f"ds{i}")
        load_dataset(y)
    assert len(list(cache_home.glob("*.npz"))) == 3


def test_store_follows_images_added_and_removed(messy, cache_home, counted):
    from conftest import write_image

    root = messy.parent
    load_dataset(messy)
    write_image(root / "images/train/new.jpg", seed=9)
    write_text(root / "labels/train/new.txt", "1 0.5 0.5 0.2 0.2\n")
    age(root / "images/train/new.jpg")
    age(root / "labels/train/new.txt")
    (root / "images/train/bg.jpg").unlink()
    parses = counted["label"]
    second = load_dataset(messy)
    assert counted["label"] == parses + 1  # only the new image's label is read
    names = {r.image.name for r in second.split("train").records}
    assert "new.jpg" in names and "bg.jpg" not in names
    done = dict(counted)
    third = load_dataset(messy)
    assert counted == done  # old and new entries were both written back
    assert signature(third) == signature(second) == signature(load_dataset(messy, cache=False))
