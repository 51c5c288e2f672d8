"""The Ray embedding engine (local mode) and the validated merge of embedding shards."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from detprune.errors import DetpruneError, MissingDependencyError
from detprune.features.shards import ShardError, list_shards, merge_shards, write_shard

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"

IMGSZ = 64
N_IMAGES = 24
IDENTITY = {"weights": "yolov5n:random:seed0", "model": "yolov5n", "imgsz": IMGSZ}


# ----------------------------------------------------------------------------- shards (no Ray)


def _shards(folder: Path, n: int = 10, per: int = 4, d: int = 6) -> tuple[list[str], np.ndarray]:
    """Write ceil(n / per) shards of keys k00..; the last image of the first shard failed."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    keys = [f"k{i:02d}" for i in range(n)]
    for s in range(0, n, per):
        block = list(range(s, min(n, s + per)))
        failed = {}
        if s == 0:
            failed = {keys[block[-1]]: (10, 20, "truncated JPEG")}
            block = block[:-1]
        write_shard(
            folder, f"shard-{s:03d}", identity=IDENTITY, keys=[keys[i] for i in block],
            sizes=[100 + i for i in block], mtimes=[1000 + i for i in block], vectors=X[block],
            failed=failed, dims=[2, 4],
        )
    return keys, X


def test_merge_validates_and_assembles_in_key_order(tmp_path):
    keys, X = _shards(tmp_path)
    assert list_shards(tmp_path) == ["shard-000", "shard-004", "shard-008"]
    m = merge_shards(tmp_path, identity=IDENTITY, expected=keys[::-1])
    # vectors in the order of the expected keys (reversed here), failures separate
    want = [k for k in keys[::-1] if k != "k03"]
    assert m.keys == want and m.failed == {"k03": (10, 20, "truncated JPEG")}
    rows = [int(k[1:]) for k in want]
    assert isinstance(m.vectors, np.memmap) and np.array_equal(m.vectors, X[rows])
    assert m.sizes.tolist() == [100 + i for i in rows] and m.dims == (2, 4) and m.dim == 6


def test_missing_shard_is_named(tmp_path):
    keys, _ = _shards(tmp_path)
    (tmp_path / "shard-004.npy").unlink()
    with pytest.raises(ShardError, match=r"shard shard-004 is missing"):
        merge_shards(tmp_path, identity=IDENTITY, expected=keys,
                     shards=["shard-000", "shard-004", "shard-008"])
    # without the workers' list, the lost images are found missing
    (tmp_path / "shard-004.json").unlink()
    with pytest.raises(ShardError, match=r"4 of 10 images are in no shard \(first: 'k04'\)"):
        merge_shards(tmp_path, identity=IDENTITY, expected=keys)


def test_duplicate_shard_is_named(tmp_path):
    keys, _ = _shards(tmp_path)
    for ext in (".npy", ".json"):
        shutil.copy(tmp_path / f"shard-008{ext}", tmp_path / f"shard-retry{ext}")
    with pytest.raises(ShardError, match=r"in shard shard-008 and in shard shard-retry \(duplicate"):
        merge_shards(tmp_path, identity=IDENTITY, expected=keys)
    with pytest.raises(ShardError, match="reported twice"):
        merge_shards(tmp_path, identity=IDENTITY, expected=keys,
                     shards=["shard-000", "shard-004", "shard-004"])


def test_other_model_damage_and_strays_are_refused(tmp_path):
    keys, X = _shards(tmp_path)
    other = {**IDENTITY, "weights": "yolov5n:sha256:0123456789abcdef"}
    write_shard(tmp_path / "b", "shard-x", identity=other, keys=keys, sizes=[1] * 10,
                mtimes=[1] * 10, vectors=X)
    with pytest.raises(ShardError, match=r"shard shard-x was computed with model 'yolov5n:sha256"):
        merge_shards(tmp_path / "b", identity=IDENTITY, expected=keys)
    # damaged vector bytes
    arr = np.load(tmp_path / "shard-000.npy")
    arr[0, 0] += 1
    np.save(tmp_path / "shard-000.npy", arr)
    with pytest.raises(ShardError, match=r"shard shard-000 is damaged \(vector checksum"):
        merge_shards(tmp_path, identity=IDENTITY, expected=keys)
    # an image nobody asked for
    with pytest.raises(ShardError, match="which was not asked for"):
        merge_shards(tmp_path, identity=IDENTITY, expected=keys[:8], shards=["shard-004", "shard-008"])
    assert issubclass(ShardError, DetpruneError)


# ----------------------------------------------------------------------------- Ray, local mode

try:  # the shard tests above run without Ray; everything below needs it
    import ray
    import ray.data
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(
    ray is None or importlib.util.find_spec("ultralytics") is None,
    reason='needs ray[data] and ultralytics: pip install "detprune[ray]"',
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Offline, isolated detprune home, set before Ray starts (its workers inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DETPRUNE_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("DETPRUNE_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def ray_local(env):
    """One private local Ray instance for the module (2 CPUs, no dashboard, no usage stats)."""
    from detprune.features.ray_engine import ray_session

    with ray_session(num_cpus=2) as r:
        yield r


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """24 images of sample_data (with labels) as a YOLO dataset; a truncated JPEG beside it."""
    root = tmp_path_factory.mktemp("tiny")
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    for img in sorted((SAMPLE_DATA / "images" / "train").glob("*.jpg"))[:N_IMAGES]:
        shutil.copy(img, root / "images/train" / img.name)
        label = SAMPLE_DATA / "labels" / "train" / f"{img.stem}.txt"
        if label.exists():
            shutil.copy(label, root / "labels/train" / label.name)
    data = (root / "images/train" / "img_0001.jpg").read_bytes()
    (root / "zz_broken.jpg").write_bytes(data[: len(data) // 2])
    names = (SAMPLE_DATA / "data.yaml").read_text().split("names:", 1)[1]
    (root / "data.yaml").write_text(f"train: images/train\nval: images/train\nnames:{names}")
    return root


@pytest.fixture(scope="module")
def ray_cli(ray_local, tiny, tmp_path_factory):
    """``detprune embed --engine ray`` once; its stdout, saved matrix and cache folder."""
    from detprune.cli import main

    out = tmp_path_factory.mktemp("ray-out")
    cache = out / "cache"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([
            "embed", str(tiny / "data.yaml"), "--engine", "ray", "--weights", "yolov5n.yaml",
            "--imgsz", str(IMGSZ), "--batch", "8", "--quiet", "--cache", str(cache),
            "--save", str(out / "ray.npy"),
        ])
    return code, buf.getvalue(), np.load(out / "ray.npy"), cache


@needs_ray
def test_ray_cli_embeds_like_the_local_engine(ray_cli, tiny):
    from detprune.features import embed_images

    code, text, vectors, cache = ray_cli
    assert code == 0
    assert f"embedded {N_IMAGES} images" in text and f"({N_IMAGES} computed, 0 from cache" in text
    assert "ray: 3 shards merged from 1 actor(s) (CPU) at local" in text
    paths = sorted((tiny / "images" / "train").glob("*.jpg"))
    local = embed_images(paths, weights="yolov5n.yaml", imgsz=IMGSZ, batch=8, progress=False)
    assert vectors.shape == local.vectors.shape == (N_IMAGES, 448)
    # same preprocessing, same forward batches: the same vectors
    np.testing.assert_allclose(vectors, local.vectors, rtol=0, atol=1e-6)
    # the run's shard folder is gone once merged
    assert not (cache / "shards").exists() or not any((cache / "shards").iterdir())


@needs_ray
def test_ray_run_fills_the_cache_the_local_engine_reads(ray_cli, tiny):
    from detprune import pipeline

    *_, cache = ray_cli
    r = pipeline.embed(tiny / "data.yaml", weights="yolov5n.yaml", imgsz=IMGSZ, batch=8,
                       cache=cache, progress=False)
    assert (r["computed"], r["cached"], r["failed"]) == (0, N_IMAGES, 0)
    index = json.loads(next((cache / "embeddings").glob("*/index.json")).read_text())
    assert index["meta"]["dims"] == [64, 128, 256] and index["dim"] == 448


@needs_ray
def test_ray_engine_api_reports_the_run_and_serves_hits(ray_cli, tiny):
    from detprune.features.ray_engine import embed_images_ray

    *_, vectors, cache = ray_cli
    paths = [*sorted((tiny / "images" / "train").glob("*.jpg")), tiny / "zz_broken.jpg"]
    keys = [str(p.relative_to(tiny)) for p in paths]
    e = embed_images_ray(paths, keys=keys, weights="yolov5n.yaml", imgsz=IMGSZ, batch=8,
                         cache_dir=cache, progress=False)
    # the 24 are cache hits; only the broken file went to Ray, and failed there
    assert e.cache["hits"] == N_IMAGES and e.cache["computed"] == 1
    assert e.settings["engine"] == "ray" and e.settings["ray"]["computed"] == 1
    assert e.settings["ray"]["vectors"] == 0 and e.settings["ray"]["shards"] == 1
    assert e.failures == ((str(paths[-1]), "truncated JPEG (no end-of-image marker)"),)
    assert e.ok.tolist() == [True] * N_IMAGES + [False] and np.isnan(e.vectors[-1]).all()
    np.testing.assert_array_equal(e.vectors[:-1], vectors)
    # the failure is remembered in the cache: a second run sends nothing to Ray
    again = embed_images_ray(paths, keys=keys, weights="yolov5n.yaml", imgsz=IMGSZ, batch=8,
                             cache_dir=cache, progress=False)
    assert again.settings["ray"]["computed"] == 0 and len(again.failures) == 1


@needs_ray
def test_ray_cuda_on_a_cpu_cluster_is_a_one_line_error(ray_local, tiny, tmp_path, capsys):
    from detprune.cli import main

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("the cluster has a GPU")
    code = main(["embed", str(tiny / "data.yaml"), "--engine", "ray", "--device", "cuda",
                 "--weights", "yolov5n.yaml", "--imgsz", str(IMGSZ), "--quiet",
                 "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "'device' parameter of embed_images_ray" in err and "without GPUs" in err


@needs_ray
def test_ray_local_mode_is_private_and_quiet(ray_local):
    # usage statistics off before Ray started; a private instance of the asked size
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == "0"
    assert ray.cluster_resources().get("CPU") == 2 and len(ray.nodes()) == 1


def test_missing_ray_has_an_install_hint(monkeypatch):
    import sys

    from detprune.features import ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "detprune\[ray\]"'):
        with ray_engine.ray_session():
            pass


@needs_ray
@pytest.mark.gpu
def test_ray_gpu_actors(ray_local, tiny, tmp_path):  # pragma: no cover - needs a GPU
    from detprune.features.ray_engine import embed_images_ray

    if not ray.cluster_resources().get("GPU", 0):
        pytest.skip("no GPU in the Ray cluster")
    paths = sorted((tiny / "images" / "train").glob("*.jpg"))
    e = embed_images_ray(paths, weights="yolov5n.yaml", imgsz=IMGSZ, cache_dir=tmp_path,
                         progress=False)
    assert e.settings["ray"]["gpus_per_actor"] == 1 and e.settings["device"].startswith("cuda")
