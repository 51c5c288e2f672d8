"""Large working arrays spill to an unlinked temporary file (detprune._memory)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SAMPLE_DATA

from detprune import _memory


def test_spilled_arrays_are_file_backed_and_leave_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv(_memory.SPILL_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(_memory.SPILL_BYTES_ENV, "1000")
    small = _memory.empty((10, 10))  # 400 bytes: in memory
    big = _memory.empty((100, 10))  # 4000 bytes: spilled
    assert not isinstance(small, np.memmap)
    assert isinstance(big, np.memmap) and big.dtype == np.float32 and big.flags.c_contiguous
    big[:] = np.arange(1000, dtype=np.float32).reshape(100, 10)
    assert float(big.sum()) == float(np.arange(1000).sum())
    assert list(tmp_path.iterdir()) == []  # unlinked at once
    monkeypatch.setenv(_memory.SPILL_BYTES_ENV, "-1")
    assert not isinstance(_memory.empty((100, 10)), np.memmap)
    monkeypatch.setenv(_memory.SPILL_BYTES_ENV, "not a number")
    assert _memory.spill_threshold() == 1 << 30


def test_feature_space_is_the_same_when_spilled(monkeypatch):
    from detprune.select import build_feature_space

    rng = np.random.default_rng(0)
    E = rng.normal(size=(300, 32)).astype(np.float32)
    B = rng.random((300, 5))
    ref = build_feature_space(E, B)
    monkeypatch.setenv(_memory.SPILL_BYTES_ENV, "0")
    spilled = build_feature_space(E, B)
    assert isinstance(spilled, np.memmap)
    np.testing.assert_array_equal(np.asarray(spilled), ref)


@pytest.mark.slow
def test_prune_selects_the_same_images_with_every_array_spilled(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from detprune import pipeline

    kw = {"method": "mms", "keep": 0.2, "imgsz": 64, "weights": "yolov5n.yaml", "progress": False,
          "measure_energy": False, "cache": tmp_path / "cache"}
    a = pipeline.prune(SAMPLE_DATA, out=tmp_path / "a", **kw)
    monkeypatch.setenv(_memory.SPILL_BYTES_ENV, "0")
    monkeypatch.setenv(_memory.SPILL_DIR_ENV, str(tmp_path / "spill"))
    (tmp_path / "spill").mkdir()
    b = pipeline.prune(SAMPLE_DATA, out=tmp_path / "b", **{**kw, "cache": tmp_path / "cache2"})
    pa = [s["path"] for s in json.loads((a.out / "manifest.json").read_text())["selected"]]
    pb = [s["path"] for s in json.loads((b.out / "manifest.json").read_text())["selected"]]
    assert pa == pb and len(pa) == 60
    assert a.manifest["epsilon"]["eps_linf"] == b.manifest["epsilon"]["eps_linf"]
    assert list((tmp_path / "spill").iterdir()) == []
