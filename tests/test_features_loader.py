"""Image decoding, letterboxing and batch loading for the embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from detprune.features.loader import (  # noqa: E402
    PAD_VALUE,
    BatchLoader,
    ImageReadError,
    jpeg_info,
    letterbox,
    read_image,
    reduction_factor,
)

BCCD_TRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd" / "images" / "train"


def _noise(h: int, w: int, seed: int = 0, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    high = 65536 if dtype == np.uint16 else 256
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, high, shape, dtype=dtype)


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (JPEG-friendly, so decoded pixels stay close to the source)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_jpeg_info_reads_size_and_detects_truncation(tmp_path):
    ok, data = cv2.imencode(".jpg", _smooth(120, 200))
    assert ok
    info = jpeg_info(data.tobytes())
    assert (info.height, info.width, info.complete) == (120, 200, True)
    cut = jpeg_info(data.tobytes()[: len(data) // 2])
    assert cut is not None and not cut.complete
    assert jpeg_info(b"\x89PNG\r\n\x1a\n....") is None
    assert jpeg_info(b"") is None


def test_jpeg_info_skips_embedded_thumbnail():
    """An APP1 segment holding a whole JPEG (EXIF thumbnail) must not fool the scan."""
    _, thumb = cv2.imencode(".jpg", _smooth(8, 8))
    _, main = cv2.imencode(".jpg", _smooth(64, 96))
    payload = b"Exif\x00\x00" + thumb.tobytes()
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    data = main.tobytes()
    full = data[:2] + app1 + data[2:]
    info = jpeg_info(full)
    assert (info.height, info.width, info.complete) == (64, 96, True)
    sos = full.find(b"\xff\xda", len(app1) + 2)
    truncated = full[: sos + 40]  # the thumbnail's end marker is present, the main scan is cut
    assert jpeg_info(truncated).complete is False
    assert jpeg_info(full[: len(app1) + 40]) is None  # cut inside the header


@pytest.mark.parametrize(
    ("long_side", "imgsz", "factor"),
    [
        (640, 320, 2),
        (640, 640, 1),
        (640, 160, 4),
        (640, 80, 8),
        (641, 320, 2),
        (639, 320, 2),
        (637, 320, 1),
        (4000, 640, 4),
    ],
)
def test_reduction_factor_keeps_long_side(long_side, imgsz, factor):
    assert reduction_factor(long_side, imgsz) == factor
    assert -(-long_side // factor) >= imgsz


def test_read_image_reduced_jpeg_matches_full_decode_size(tmp_path):
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), _smooth(480, 640))
    full = read_image(path, 640)
    half = read_image(path, 320)
    quarter = read_image(path, 160)
    assert full.shape == (480, 640, 3)
    assert half.shape == (240, 320, 3)
    assert quarter.shape == (120, 160, 3)
    assert read_image(path, 320, reduce=False).shape == (480, 640, 3)
    odd = tmp_path / "odd.jpg"
    cv2.imwrite(str(odd), _smooth(101, 639))
    assert read_image(odd, 320).shape == (51, 320, 3)  # libjpeg rounds scaled sizes up
    # DCT-scaled decoding is close to decode + area resize
    ref = cv2.resize(full, (320, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(int) - ref.astype(int)).mean() < 3


def test_read_image_formats_become_bgr_uint8(tmp_path):
    gray = _noise(30, 40, channels=1)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)

    rgba = _noise(30, 40, channels=4)
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    out = read_image(tmp_path / "a.png")
    assert out.shape == (30, 40, 3) and np.array_equal(out, rgba[..., :3])

    deep = _noise(30, 40, dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (30, 40, 3)
    assert np.abs(out.astype(int) - (deep >> 8).astype(int)).max() <= 1

    for suffix in (".bmp", ".webp", ".tif"):
        img = _noise(20, 24, seed=3)
        cv2.imwrite(
            str(tmp_path / f"x{suffix}"),
            img,
            [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else [],
        )
        assert read_image(tmp_path / f"x{suffix}").shape == (20, 24, 3)


def test_read_image_failures_have_reasons(tmp_path):
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), _smooth(64, 64))
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(cv2.imencode(".png", _noise(64, 64))[1].tobytes()[:300])
    expected = {
        "cut.jpg": "truncated",
        "empty.jpg": "empty",
        "text.png": "not a decodable image",
        "cut.png": "not a decodable image",
        "missing.jpg": "not found",
    }
    for name, reason in expected.items():
        with pytest.raises(ImageReadError, match=reason):
            read_image(tmp_path / name, 64)
    with pytest.raises(ImageReadError):
        read_image(tmp_path, 64)  # a folder


@pytest.mark.parametrize(("h", "w"), [(48, 64), (64, 48), (97, 31), (1, 300), (64, 64), (300, 200)])
@pytest.mark.parametrize("size", [64, 96])
def test_letterbox_equals_ultralytics(h, w, size):
    augment = pytest.importorskip("ultralytics.data.augment")
    img = _noise(h, w, seed=h * w)
    ref = augment.LetterBox(new_shape=(size, size), auto=False)(image=img)
    out = letterbox(img, size)
    assert out.shape == ref.shape == (size, size, 3)
    assert np.array_equal(out, ref)


def test_letterbox_pads_with_114():
    out = letterbox(np.zeros((32, 64, 3), np.uint8), 64)
    assert (out[:16] == PAD_VALUE).all() and (out[48:] == PAD_VALUE).all()
    assert (out[16:48] == 0).all()


def _write_set(folder: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        p = folder / f"img{i:02d}.jpg"
        cv2.imwrite(str(p), _smooth(48 + i, 64, seed=i))
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_batch_loader_order_failures_and_content(tmp_path, workers):
    paths = _write_set(tmp_path, 11)
    paths.insert(4, str(tmp_path / "missing.jpg"))
    loader = BatchLoader(paths, imgsz=64, batch=4, workers=workers)
    assert len(loader) == 3
    seen, failed = [], {}
    for b in loader:
        assert b.pixels.shape == (4, 64, 64, 3)
        for j, pos in enumerate(b.positions):
            if b.ok[j]:
                expected = letterbox(read_image(paths[pos], 64), 64)
                assert np.array_equal(b.pixels[j], expected)
        seen.extend(b.positions.tolist())
        failed.update(b.errors)
        b.release()
    assert seen == list(range(12))
    assert failed == {4: "file not found"}


def test_batch_loader_reuses_a_bounded_number_of_buffers(tmp_path):
    paths = _write_set(tmp_path, 5) * 8  # 40 images, 20 batches
    loader = BatchLoader(paths, imgsz=64, batch=2, workers=2, prefetch=2)
    buffers = set()
    for b in loader:
        buffers.add(id(b.buffer))
        b.release()
    assert len(buffers) <= 2 + 3


@pytest.mark.skipif(not BCCD_TRAIN.is_dir(), reason="BCCD sample data not available")
def test_real_jpegs_decode_reduced():
    paths = sorted(BCCD_TRAIN.glob("*.jpg"))[:3]
    for p in paths:
        info = jpeg_info(p.read_bytes())
        assert info.complete
        img = read_image(p, 320)
        assert max(img.shape[:2]) >= 320
        assert max(img.shape[:2]) == -(
            -max(info.height, info.width) // reduction_factor(max(info.height, info.width), 320)
        )


def test_exif_orientation_is_applied_at_every_scale(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    img = pil.fromarray(_smooth(100, 200))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert read_image(tmp_path / "rot.jpg", 200).shape == (200, 100, 3)
    assert read_image(tmp_path / "rot.jpg", 100).shape == (100, 50, 3)
