"""The YOLOv5 backbone embedder: dims, reference equality, determinism, weights, offline."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")
pytest.importorskip("ultralytics")

from detprune.errors import DetpruneError, ParameterError  # noqa: E402
from detprune.features import Embedder, embed_images, load_model, resolve_weights  # noqa: E402
from detprune.features.loader import letterbox, read_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT.parent / "shared" / "weights" / "yolov5n.pt"
IMGSZ = 64


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """detprune's cache folder in a temp dir; no downloads unless a test allows them."""
    home = tmp_path_factory.getbasetemp() / "detprune-home"
    monkeypatch.setenv("DETPRUNE_HOME", str(home))
    monkeypatch.setenv("DETPRUNE_OFFLINE", "1")


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """12 images of 96x128: 9 JPEGs, a grayscale PNG, an RGBA PNG and a truncated JPEG (last)."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(9):
        p = folder / f"im{i:02d}.jpg"
        cv2.imwrite(str(p), _smooth(96, 128, i))
        paths.append(p)
    gray = folder / "gray.png"
    cv2.imwrite(str(gray), cv2.cvtColor(_smooth(96, 128, 20), cv2.COLOR_BGR2GRAY))
    rgba = folder / "rgba.png"
    cv2.imwrite(str(rgba), cv2.cvtColor(_smooth(96, 128, 21), cv2.COLOR_BGR2BGRA))
    good = cv2.imencode(".jpg", _smooth(96, 128, 22))[1].tobytes()
    broken = folder / "broken.jpg"
    broken.write_bytes(good[: len(good) * 2 // 3])
    return [str(p) for p in [*paths, gray, rgba, broken]]


@pytest.fixture(scope="module")
def random_n(images):
    """One embedding run with random yolov5n weights, shared by several tests."""
    return embed_images(images, weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, workers=2)


def test_shapes_dims_and_failures(random_n, images):
    e = random_n
    assert e.vectors.shape == (12, 448) and e.vectors.dtype == np.float32
    assert e.dims == (64, 128, 256) and e.dim == 448 and len(e) == 12
    assert e.ok.tolist() == [True] * 11 + [False]
    assert np.isnan(e.vectors[11]).all() and np.isfinite(e.vectors[:11]).all()
    assert e.failures == ((images[11], "truncated JPEG (no end-of-image marker)"),)
    assert e.weights.kind == "random" and e.weights.model == "yolov5n" and e.weights.seed == 0
    assert e.weights.key == "yolov5n:random:seed0"
    assert e.settings["layers"] == [4, 6, 9] and e.settings["normalisation"] == "l2-per-scale"
    assert e.settings["imgsz"] == IMGSZ and e.settings["dtype"] == "float32"
    assert e.cache == {"hits": 0, "computed": 12, "dir": None}


def test_each_scale_is_unit_norm(random_n):
    v = random_n.vectors[random_n.ok]
    start = 0
    for c in random_n.dims:
        norms = np.linalg.norm(v[:, start : start + c], axis=1)
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
        start += c


def test_yolov5s_has_896_dims(images):
    e = embed_images(images[:2], weights="yolov5s.yaml", imgsz=IMGSZ, progress=False)
    assert e.dims == (128, 256, 512) and e.vectors.shape == (2, 896)


def _preprocessed(paths: list[str], size: int) -> tuple[np.ndarray, torch.Tensor]:
    """Letterboxed BGR uint8 batch and the RGB float tensor ultralytics expects."""
    pixels = np.stack([letterbox(read_image(p, size), size) for p in paths])
    x = (
        torch.from_numpy(np.ascontiguousarray(pixels[..., ::-1].transpose(0, 3, 1, 2))).float()
        / 255
    )
    return pixels, x


def test_equals_ultralytics_embed_for_the_same_input(images):
    """Un-normalised pooled parts == ultralytics' predict(embed=[4, 6, 9]); then per-scale L2."""
    pixels, x = _preprocessed(images[:6], IMGSZ)
    model, _ = load_model("yolov5n.yaml", seed=0)  # unfused, as ultralytics ships it
    with torch.inference_mode():
        reference = torch.stack(model.predict(x, embed=[4, 6, 9])).numpy()
    embedder = Embedder("yolov5n.yaml", imgsz=IMGSZ, device="cpu", seed=0)
    parts = [p.numpy() for p in embedder.pooled(x)]
    ours = np.concatenate(parts, 1)
    assert ours.shape == reference.shape == (6, 448)
    np.testing.assert_allclose(
        ours, reference, rtol=1e-4, atol=1e-5
    )  # fused conv+bn: fp rounding only
    expected = np.concatenate([p / np.linalg.norm(p, axis=1, keepdims=True) for p in parts], 1)
    np.testing.assert_allclose(embedder.embed_pixels(pixels), expected, rtol=1e-4, atol=1e-6)
    # the file pipeline produces exactly those vectors
    e = embed_images(images[:6], weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, device="cpu")
    np.testing.assert_allclose(e.vectors, embedder.embed_pixels(pixels), rtol=0, atol=1e-6)


def test_deterministic_across_runs_workers_and_batches(random_n, images):
    again = embed_images(
        images, weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, workers=0, batch=5
    )
    assert np.array_equal(again.ok, random_n.ok)
    np.testing.assert_allclose(again.vectors[again.ok], random_n.vectors[random_n.ok], atol=1e-6)
    same = embed_images(images, weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, workers=2)
    assert np.array_equal(same.vectors[same.ok], random_n.vectors[random_n.ok])
    other_seed = embed_images(
        images[:2], weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, seed=1
    )
    assert other_seed.weights.key == "yolov5n:random:seed1"
    assert not np.allclose(other_seed.vectors, random_n.vectors[:2], atol=1e-3)


def test_cpu_bfloat16_opt_in_is_close_to_float32(images):
    pixels, _ = _preprocessed(images[:4], IMGSZ)
    full = Embedder("yolov5n.yaml", imgsz=IMGSZ, device="cpu")
    low = Embedder("yolov5n.yaml", imgsz=IMGSZ, device="cpu", half=True)
    assert (full.precision, low.precision) == ("float32", "bfloat16")
    a, b = full.embed_pixels(pixels), low.embed_pixels(pixels)
    assert b.dtype == np.float32
    assert ((a * b).sum(1) / 3).min() > 0.99


def test_seeding_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model("yolov5n.yaml", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_paths_may_be_pathlib_and_keys_must_match(images):
    e = embed_images([Path(images[0])], weights="yolov5n.yaml", imgsz=IMGSZ, progress=False)
    assert e.ok.all()
    with pytest.raises(ParameterError, match="'keys' parameter of embed_images"):
        embed_images(images[:2], weights="yolov5n.yaml", imgsz=IMGSZ, keys=["a"], progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"imgsz": 0},
            "The 'imgsz' parameter of embed_images must be an int >= 32 and a multiple of 32. Got 0 instead.",
        ),
        ({"imgsz": 100}, "'imgsz' parameter"),
        ({"batch": 0}, "The 'batch' parameter of embed_images must be an int >= 1. Got 0 instead."),
        ({"workers": -1}, "'workers' parameter"),
        ({"seed": -1}, "'seed' parameter"),
        ({"progress": "yes"}, "'progress' parameter"),
        ({"weights": 3}, "'weights' parameter"),
        ({"weights": "model.onnx"}, "'weights' parameter"),
        ({"device": "tpu"}, "'device' parameter"),
    ],
)
def test_bad_parameters_are_rejected(images, kwargs, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        embed_images(images[:1], **{"weights": "yolov5n.yaml", "progress": False, **kwargs})


def test_paths_must_be_a_sequence():
    with pytest.raises(ParameterError, match="'paths' parameter"):
        embed_images("some/folder", weights="yolov5n.yaml")


def test_empty_input():
    e = embed_images([], weights="yolov5n.yaml", imgsz=IMGSZ, progress=False)
    assert e.vectors.shape == (0, 448) and e.failures == ()


def test_progress_bar_runs(images, capsys):
    e = embed_images(images[:3], weights="yolov5n.yaml", imgsz=IMGSZ, progress=True)
    assert e.ok.all()
    assert "img/s" in capsys.readouterr().err


# --------------------------------------------------------------------------- weights


def _raw_state_dict(path: Path) -> dict:
    """Independent reader for the test: stub every non-torch class, keep tensors."""
    import pickle
    import types

    class Any_(torch.nn.Module):
        def __new__(cls, *a, **k):
            return torch.nn.Module.__new__(cls)

        def __init__(self, *a, **k):
            torch.nn.Module.__init__(self)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module.startswith(("models", "utils")):
                return Any_
            return super().find_class(module, name)

    mod = types.ModuleType("p")
    mod.Unpickler = Unpickler
    mod.load = pickle.load
    ckpt = torch.load(path, map_location="cpu", weights_only=False, pickle_module=mod)
    return ckpt["model"].state_dict()


@pytest.mark.skipif(not LEGACY.is_file(), reason="legacy yolov5n.pt not available")
def test_legacy_checkpoint_backbone_is_copied(images, random_n):
    model, info = load_model(LEGACY)
    assert info.kind == "legacy" and info.model == "yolov5n"
    assert (
        info.sha256 and len(info.sha256) == 64 and info.key == f"yolov5n:sha256:{info.sha256[:16]}"
    )
    raw = _raw_state_dict(LEGACY)
    ours = model.state_dict()
    backbone = [k for k in raw if int(k.split(".")[1]) <= 9]
    assert len(backbone) == 198
    for k in backbone:
        assert torch.equal(ours[k], raw[k].float()), k
    e = embed_images(images, weights=LEGACY, imgsz=IMGSZ, progress=False)
    assert e.weights == info and e.ok.sum() == 11
    assert not np.allclose(e.vectors[e.ok], random_n.vectors[random_n.ok], atol=0.05)


def test_ultralytics_checkpoint_round_trip(tmp_path, images):
    from ultralytics import YOLO

    yolo = YOLO("yolov5n.yaml")
    with torch.no_grad():
        for p in yolo.model.parameters():
            p.add_(0.01)  # differ from a fresh seeded init
    ckpt = tmp_path / "mine.pt"
    yolo.save(ckpt)
    model, info = load_model(ckpt)
    assert info.kind == "ultralytics" and info.model == "yolov5n" and info.path == str(ckpt)
    expected = yolo.model.state_dict()
    for k, v in model.state_dict().items():
        if int(k.split(".")[1]) <= 9:  # ultralytics stores checkpoints in float16
            want = expected[k].half().float() if expected[k].is_floating_point() else expected[k]
            assert torch.equal(v, want), k
    e = embed_images(images[:3], weights=ckpt, imgsz=IMGSZ, progress=False)
    assert e.weights.kind == "ultralytics" and e.ok.all()


def test_checkpoint_pickle_code_is_never_run(tmp_path):
    """A checkpoint that would run os.system when unpickled normally is read inertly."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(DetpruneError):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()


def test_broken_and_foreign_checkpoints_fail_clearly(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DetpruneError, match="not a readable torch checkpoint"):
        load_model(tmp_path / "junk.pt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "linear.pt")
    with pytest.raises(DetpruneError, match="no YOLO backbone"):
        load_model(tmp_path / "linear.pt")
    with pytest.raises(DetpruneError, match="does not exist"):
        resolve_weights(tmp_path / "nope" / "x.pt")


def test_auto_without_pretrained_weights_warns_and_uses_seeded_random(images):
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
        e = embed_images(images[:2], imgsz=IMGSZ, progress=False)
    assert e.weights.kind == "auto-random" and e.weights.seed == 0
    ref = embed_images(images[:2], weights="yolov5n.yaml", imgsz=IMGSZ, progress=False)
    assert np.array_equal(e.vectors, ref.vectors)


def test_auto_uses_a_local_pretrained_checkpoint(tmp_path, monkeypatch):
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)
    YOLO("yolov5n.yaml").save(tmp_path / "yolov5nu.pt")
    resolved = resolve_weights("auto")
    assert resolved.info.kind == "ultralytics" and Path(resolved.info.path).name == "yolov5nu.pt"


@pytest.mark.skipif(not LEGACY.is_file(), reason="legacy yolov5n.pt not available")
def test_auto_takes_a_local_legacy_yolov5n(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "yolov5n.pt").symlink_to(LEGACY)
    resolved = resolve_weights("auto")
    assert resolved.info.kind != "auto-random" and Path(resolved.info.path).name == "yolov5n.pt"


def test_named_checkpoint_offline_fails_fast(monkeypatch):
    t = time.monotonic()
    with pytest.raises(DetpruneError, match="DETPRUNE_OFFLINE"):
        resolve_weights("yolov5su.pt")
    monkeypatch.delenv("DETPRUNE_OFFLINE")
    with _no_network() as calls:  # downloads allowed, but the network is down
        with pytest.raises(DetpruneError, match="could not be fetched"):
            resolve_weights("yolov5su.pt")
        with pytest.warns(UserWarning, match="RANDOMLY INITIALISED"):
            assert resolve_weights("auto").info.kind == "auto-random"
    assert calls  # it did try, and failed at once
    assert time.monotonic() - t < 10


class _no_network:
    """Make every socket connection / DNS lookup fail and record the attempts."""

    def __enter__(self) -> list:
        self.calls: list = []
        self.saved = (socket.socket.connect, socket.create_connection, socket.getaddrinfo)

        def refuse(*args, **kwargs):
            self.calls.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
            raise OSError("network disabled by test")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        return self.calls

    def __exit__(self, *exc) -> None:
        socket.socket.connect, socket.create_connection, socket.getaddrinfo = self.saved


def test_no_socket_is_opened_by_an_embed_run(images, tmp_path):
    """In a fresh interpreter: import, configure, build, embed (yaml and auto) with sockets trapped."""
    script = textwrap.dedent(
        f"""
        import json, socket, sys, warnings
        calls = []
        def refuse(*args, **kwargs):
            calls.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args))
            raise OSError("network disabled by test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        import detprune
        from detprune.features import embed_images
        paths = {json.dumps(images)}
        e = embed_images(paths, weights="yolov5n.yaml", imgsz=64, progress=False, cache_dir={json.dumps(str(tmp_path / "c"))})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = embed_images(paths[:2], imgsz=64, progress=False)
        import ultralytics
        print(json.dumps({{"calls": calls, "ok": int(e.ok.sum()), "auto": a.weights.kind,
                          "offline": __import__("os").environ.get("YOLO_OFFLINE"),
                          "sync": ultralytics.settings["sync"]}}))
        """
    )
    env = {**os.environ, "DETPRUNE_HOME": str(tmp_path / "home"), "DETPRUNE_OFFLINE": "1"}
    env.pop("YOLO_OFFLINE", None)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"calls": [], "ok": 11, "auto": "auto-random", "offline": "1", "sync": False}


def test_importing_features_is_light():
    code = (
        "import sys, detprune, detprune.features as f; f.embed_images; f.WeightsInfo; f.EmbeddingCache;"
        "import detprune.features.loader, detprune.features.cache, detprune._offline;"
        "heavy = [m for m in ('torch', 'ultralytics', 'faiss', 'torchvision') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_matches_cpu(images):
    cpu = embed_images(images, weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, device="cpu")
    gpu = embed_images(images, weights="yolov5n.yaml", imgsz=IMGSZ, progress=False, device="cuda")
    assert gpu.settings["precision"] == "float16"
    assert np.array_equal(gpu.ok, cpu.ok)
    np.testing.assert_allclose(gpu.vectors[gpu.ok], cpu.vectors[cpu.ok], atol=2e-2)
    cos = (gpu.vectors[gpu.ok] * cpu.vectors[cpu.ok]).sum(1) / 3
    assert cos.min() > 0.999
