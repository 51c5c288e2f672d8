"""Shared fixtures: small YOLO datasets built in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# No test may reach the network: "auto" weights and models then fall back at once
# instead of trying a download. Tests of the download path unset it themselves.
os.environ.setdefault("DETPRUNE_OFFLINE", "1")

# Test modules import ultralytics at collection (``pytest.importorskip``), before any
# detprune code path could configure it: ultralytics fixes its config folder and offline
# flag at import, so without this a partial run (e.g. tests/test_sweep.py with the train
# tests) used ~/.config/Ultralytics, found no Arial.ttf there and tried to download it.
from detprune._offline import configure_offline  # light: no ultralytics import

configure_offline()

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
SHARED = ROOT.parent / "shared"
BCCD = SHARED / "data" / "bccd"
LEGACY_WEIGHTS = SHARED / "weights" / "yolov5n.pt"


def write_image(path: Path, w: int = 64, h: int = 48, *, seed: int = 0, mode: str = "RGB") -> Path:
    """Write a small random image with PIL (format from the suffix)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        arr = rng.integers(0, 256, (h, w), dtype=np.uint8)
    elif mode == "RGBA":
        arr = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    else:
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr, mode=None).save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def make_dataset(tmp_path: Path):
    """Build a YOLO dataset: ``{split: {stem: label_text or None}}`` -> data.yaml path."""

    def build(
        splits: dict[str, dict[str, str | None]],
        *,
        names=("cat", "dog", "bird"),
        suffix: str = ".jpg",
        yaml_text: str | None = None,
        root: Path | None = None,
    ) -> Path:
        root = root or tmp_path / "ds"
        for split, items in splits.items():
            for i, (stem, label) in enumerate(items.items()):
                write_image(root / "images" / split / f"{stem}{suffix}", seed=i)
                if label is not None:
                    write_text(root / "labels" / split / f"{stem}.txt", label)
        if yaml_text is None:
            lines = [f"{s}: images/{s}" for s in splits]
            lines.append("names:")
            lines += [f"  {i}: {n}" for i, n in enumerate(names)]
            yaml_text = "\n".join(lines) + "\n"
        return write_text(root / "data.yaml", yaml_text)

    return build


@pytest.fixture
def no_network(monkeypatch):
    """Make every outgoing connection fail (and record it): a run must not need the network."""
    import socket

    calls: list[str] = []

    def deny(*args, **kwargs):
        calls.append(repr(args)[:120])
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", deny)
    monkeypatch.setattr(socket.socket, "connect_ex", deny)
    monkeypatch.setattr(socket, "create_connection", deny)
    monkeypatch.setattr(socket, "getaddrinfo", deny)
    return calls


def tree_digest(root: Path) -> dict[str, tuple[int, str]]:
    """Map each file under root to (size, sha256): to prove nothing was modified."""
    import hashlib

    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".detprune" not in p.parts:
            out[str(p.relative_to(root))] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _hypothesis_profiles() -> None:
    """CI draws the same examples every run, so a red build is reproducible."""
    import os

    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()
