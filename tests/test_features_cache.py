"""The embedding cache: hits, incremental runs, damage detection, compaction, concurrency."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from detprune.features import cache as cache_mod
from detprune.features.cache import CacheWarning, EmbeddingCache

IMGSZ = 64
IDENTITY = {"weights": "test", "imgsz": 64}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DETPRUNE_HOME", str(tmp_path_factory.getbasetemp() / "detprune-home"))
    monkeypatch.setenv("DETPRUNE_OFFLINE", "1")


# --------------------------------------------------------------------------- store unit tests


def _vectors(n: int, d: int = 7, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _stamp(n: int, start: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = [f"img/{i:04d}.jpg" for i in range(start, start + n)]
    return keys, np.arange(start, start + n, dtype=np.int64) + 100, np.full(n, 5, np.int64)


def _read(store: EmbeddingCache, keys, sizes, mtimes) -> tuple[np.ndarray, np.ndarray]:
    found = store.lookup(keys, sizes, mtimes)
    out = np.full((len(keys), store.dim or 0), np.nan, np.float32)
    store.read_into(found, out)
    return found.hit, out


def test_store_round_trip_and_reopen(tmp_path):
    keys, sizes, mtimes = _stamp(10)
    v = _vectors(10)
    store = EmbeddingCache(tmp_path, IDENTITY)
    store.add(keys, sizes, mtimes, v, {"bad.jpg": (3, 4, "truncated JPEG")})
    again = EmbeddingCache(tmp_path, IDENTITY)
    hit, out = _read(again, keys, sizes, mtimes)
    assert hit.all() and np.array_equal(out, v)
    found = again.lookup(["bad.jpg", "bad.jpg"], np.array([3, 3]), np.array([4, 5]))
    assert found.failed == {0: "truncated JPEG"} and found.miss.tolist() == [1]
    # another identity is another store
    assert len(EmbeddingCache(tmp_path, {**IDENTITY, "imgsz": 96})) == 0
    # segments get the usual file mode (not mkstemp's 0600): a team shares a dataset's cache
    import os

    from detprune._io import _umask

    segs = list(tmp_path.rglob("seg-*.npy"))
    assert segs and all(os.stat(f).st_mode & 0o777 == 0o666 & ~_umask() for f in segs)


def test_changed_file_is_a_miss_and_is_replaced(tmp_path):
    keys, sizes, mtimes = _stamp(4)
    store = EmbeddingCache(tmp_path, IDENTITY)
    store.add(keys, sizes, mtimes, _vectors(4))
    mtimes2 = mtimes.copy()
    mtimes2[2] += 1
    assert store.lookup(keys, sizes, mtimes2).hit.tolist() == [True, True, False, True]
    new = _vectors(1, seed=9)
    store.add([keys[2]], sizes[2:3], mtimes2[2:3], new)
    hit, out = _read(EmbeddingCache(tmp_path, IDENTITY), keys, sizes, mtimes2)
    assert hit.all() and np.array_equal(out[2], new[0])
    assert len(store) == 4


def test_concurrent_writers_merge(tmp_path):
    a = EmbeddingCache(tmp_path, IDENTITY)
    b = EmbeddingCache(tmp_path, IDENTITY)
    ka, sa, ma = _stamp(3)
    kb, sb, mb = _stamp(3, start=3)
    a.add(ka, sa, ma, _vectors(3, seed=1))
    b.add(kb, sb, mb, _vectors(3, seed=2))  # b re-reads the index a wrote before merging
    store = EmbeddingCache(tmp_path, IDENTITY)
    hit, out = _read(store, ka + kb, np.concatenate([sa, sb]), np.concatenate([ma, mb]))
    assert hit.all()
    assert np.array_equal(out, np.concatenate([_vectors(3, seed=1), _vectors(3, seed=2)]))


def test_compaction_keeps_vectors_and_drops_segments(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "MAX_SEGMENTS", 2)
    store = EmbeddingCache(tmp_path, IDENTITY)
    all_keys, all_sizes, all_mtimes, all_v = [], [], [], []
    for part in range(4):
        k, s, m = _stamp(5, start=5 * part)
        v = _vectors(5, seed=part)
        store.add(k, s, m, v)
        all_keys += k
        all_sizes.append(s)
        all_mtimes.append(m)
        all_v.append(v)
    assert len(list(store.root.glob("seg-*.npy"))) <= 2
    hit, out = _read(
        EmbeddingCache(tmp_path, IDENTITY),
        all_keys,
        np.concatenate(all_sizes),
        np.concatenate(all_mtimes),
    )
    assert hit.all() and np.array_equal(out, np.concatenate(all_v))


def _segment(store: EmbeddingCache) -> Path:
    (seg,) = store.root.glob("seg-*.npy")
    return seg


@pytest.mark.parametrize(
    "damage", ["truncate", "flip", "rows", "json", "table", "missing", "range"]
)
def test_damage_is_detected_and_never_used(tmp_path, damage):
    keys, sizes, mtimes = _stamp(6)
    store = EmbeddingCache(tmp_path, IDENTITY)
    store.add(keys, sizes, mtimes, _vectors(6))
    seg, index_path = _segment(store), store.index_path
    index = json.loads(index_path.read_text())
    if damage == "truncate":
        data = seg.read_bytes()
        seg.write_bytes(data[: len(data) - 20])
    elif damage == "flip":  # same size, one value changed: only the checksum can tell
        data = bytearray(seg.read_bytes())
        data[-3] ^= 0xFF
        seg.write_bytes(bytes(data))
    elif damage == "rows":
        index["segments"][0]["rows"] = 9
        index_path.write_text(json.dumps(index))
    elif damage == "json":
        index_path.write_text(index_path.read_text()[:-10])
    elif damage == "table":  # a plausible edit of the table without updating its checksum
        index["table"]["row"][0] = 1
        index_path.write_text(json.dumps(index))
    elif damage == "missing":
        seg.unlink()
    elif damage == "range":  # consistent checksum, impossible row
        index["table"]["row"][0] = 99
        index["table_crc32"] = cache_mod._crc32_json(index["table"])
        index_path.write_text(json.dumps(index))
    with pytest.warns(CacheWarning, match="damaged"):
        reopened = EmbeddingCache(tmp_path, IDENTITY)
    found = reopened.lookup(keys, sizes, mtimes)
    assert not found.hit.any()
    # the store is usable again afterwards, and clean
    reopened.add(keys, sizes, mtimes, _vectors(6, seed=3))
    hit, out = _read(EmbeddingCache(tmp_path, IDENTITY), keys, sizes, mtimes)
    assert hit.all() and np.array_equal(out, _vectors(6, seed=3))


def test_leftover_temp_and_orphan_files_are_swept(tmp_path):
    store = EmbeddingCache(tmp_path, IDENTITY)
    keys, sizes, mtimes = _stamp(2)
    store.add(keys, sizes, mtimes, _vectors(2))
    (store.root / "seg-orphan.npy").write_bytes(b"x")
    (store.root / ".seg-x.npy.abc.tmp").write_bytes(b"x")
    EmbeddingCache(tmp_path, IDENTITY)
    names = sorted(p.name for p in store.root.iterdir())
    assert "seg-orphan.npy" not in names and not any(n.endswith(".tmp") for n in names)


# --------------------------------------------------------------------------- through embed_images


cv2 = pytest.importorskip("cv2")


def _write_images(folder: Path, start: int, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        img = cv2.resize(rng.integers(0, 256, (5, 5, 3), dtype=np.uint8), (128, 96))
        p = folder / f"im{i:02d}.jpg"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


@pytest.fixture
def dataset(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    root = tmp_path / "data"
    paths = _write_images(root / "images", 0, 10)
    bad = root / "images" / "broken.jpg"
    bad.write_bytes(Path(paths[0]).read_bytes()[:500])
    return root, [*paths, str(bad)]


def _embed(paths, root, **kwargs):
    from detprune.features import embed_images

    keys = [os.path.relpath(p, root) for p in paths]
    return embed_images(
        paths,
        weights="yolov5n.yaml",
        imgsz=IMGSZ,
        progress=False,
        cache_dir=root / ".detprune" / "cache",
        keys=keys,
        **kwargs,
    )


def test_second_run_embeds_nothing(dataset):
    root, paths = dataset
    first = _embed(paths, root)
    assert first.cache["hits"] == 0 and first.cache["computed"] == 11
    second = _embed(paths, root)
    assert second.cache["hits"] == 10 and second.cache["computed"] == 0
    assert np.array_equal(second.vectors[second.ok], first.vectors[first.ok])
    assert np.array_equal(second.ok, first.ok) and second.failures == first.failures
    assert second.dims == (64, 128, 256)
    # a different order and a subset are served from the cache too
    third = _embed(paths[::-1][:5], root)
    assert third.cache["computed"] == 0
    assert np.array_equal(third.vectors[third.ok], first.vectors[::-1][:5][first.ok[::-1][:5]])


def test_adding_images_embeds_only_those(dataset):
    root, paths = dataset
    _embed(paths, root)
    more = _write_images(root / "images", 10, 2)
    run = _embed(paths + more, root)
    assert run.cache["computed"] == 2 and run.cache["hits"] == 10
    from detprune.features import embed_images

    direct = embed_images(more, weights="yolov5n.yaml", imgsz=IMGSZ, progress=False)
    np.testing.assert_allclose(run.vectors[-2:], direct.vectors, atol=1e-6)


def test_modified_image_is_recomputed(dataset):
    root, paths = dataset
    first = _embed(paths, root)
    img = cv2.imread(paths[3])
    cv2.imwrite(paths[3], 255 - img)
    st = os.stat(paths[3])
    os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    run = _embed(paths, root)
    assert run.cache["computed"] == 1
    assert not np.allclose(run.vectors[3], first.vectors[3])


def test_damaged_cache_is_rebuilt_through_embed(dataset):
    root, paths = dataset
    first = _embed(paths, root)
    (seg,) = Path(first.cache["dir"]).glob("seg-*.npy")
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) // 2])
    with pytest.warns(CacheWarning, match="damaged"):
        second = _embed(paths, root)
    assert second.cache["computed"] == 10  # the remembered failure lives in the intact index
    np.testing.assert_allclose(second.vectors[second.ok], first.vectors[first.ok], atol=1e-6)
    assert _embed(paths, root).cache["computed"] == 0


def test_cache_keyed_by_settings(dataset):
    root, paths = dataset
    _embed(paths[:3], root)
    from detprune.features import embed_images

    other = embed_images(
        paths[:3],
        weights="yolov5n.yaml",
        imgsz=96,
        progress=False,
        cache_dir=root / ".detprune" / "cache",
    )
    assert other.cache["computed"] == 3
    seeded = embed_images(
        paths[:3],
        weights="yolov5n.yaml",
        imgsz=IMGSZ,
        seed=5,
        progress=False,
        cache_dir=root / ".detprune" / "cache",
    )
    assert seeded.cache["computed"] == 3


def test_unwritable_cache_dir_is_not_fatal(dataset, tmp_path):
    _, paths = dataset
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(CacheWarning, match="not usable"):
        from detprune.features import embed_images

        e = embed_images(
            paths[:2], weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, cache_dir=blocker
        )
    assert e.ok.all() and e.cache["dir"] is None


def test_read_only_store_is_read_not_bypassed(tmp_path, monkeypatch):
    """A cache that cannot be written (shared, archived, immutable): its lock file cannot
    be opened for writing, yet its vectors are read (under a shared lock)."""
    import builtins

    keys, sizes, mtimes = _stamp(6)
    v = _vectors(6)
    EmbeddingCache(tmp_path, IDENTITY).add(keys, sizes, mtimes, v)
    real_open = builtins.open

    def read_only(file, mode="r", *a, **k):
        if str(file).endswith(".lock") and any(c in mode for c in "aw+"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", read_only)
    hit, out = _read(EmbeddingCache(tmp_path, IDENTITY), keys, sizes, mtimes)
    assert hit.all() and np.array_equal(out, v)
