"""model="auto" of train and sweep: a pretrained checkpoint when one is at hand."""

from __future__ import annotations

import pytest

pytest.importorskip("ultralytics")


def test_auto_model_prefers_a_pretrained_checkpoint(tmp_path, monkeypatch):
    from detprune.features import weights as W
    from detprune.train.finetune import auto_model

    monkeypatch.setattr(W, "_candidates", lambda name: [tmp_path / "none" / name])
    monkeypatch.setenv("DETPRUNE_OFFLINE", "1")
    # nothing found: from scratch, loudly
    with pytest.warns(UserWarning, match="from scratch"):
        assert auto_model(None) == "yolov5n.yaml"
    # the checkpoint a pruned dataset was embedded with
    ckpt = tmp_path / "embedder.pt"
    from ultralytics import YOLO

    YOLO("yolov5n.yaml").save(ckpt)
    manifest = {"embedding": {"weights": {"kind": "ultralytics", "path": str(ckpt)}}}
    assert auto_model(manifest) == str(ckpt)
    random_manifest = {"embedding": {"weights": {"kind": "auto-random", "path": None}}}
    with pytest.warns(UserWarning, match="from scratch"):
        assert auto_model(random_manifest) == "yolov5n.yaml"
    # a local yolov5nu.pt comes first
    local = tmp_path / "none" / "yolov5nu.pt"
    local.parent.mkdir()
    YOLO("yolov5n.yaml").save(local)
    assert auto_model(manifest) == str(local)


def test_train_fine_tunes_the_checkpoint_a_pruned_set_was_embedded_with(tmp_path, monkeypatch):
    import shutil

    from conftest import SAMPLE_DATA
    from ultralytics import YOLO

    from detprune import pipeline
    from detprune.features import weights as W
    from detprune.train import train

    if not SAMPLE_DATA.exists():
        pytest.skip("sample_data/ not generated")
    monkeypatch.setattr(W, "_candidates", lambda name: [tmp_path / "none" / name])
    src = tmp_path / "sd"
    shutil.copytree(SAMPLE_DATA, src)
    ckpt = tmp_path / "embedder.pt"
    YOLO("yolov5n.yaml").save(ckpt)
    pruned = pipeline.prune(src, method="srs", keep=0.1, out=tmp_path / "p", weights=str(ckpt),
                            imgsz=64, batch=16, workers=0, progress=False, measure_energy=False,
                            cache=tmp_path / "cache").out
    res = train(pruned, epochs=1, imgsz=64, batch=16, workers=0, device="cpu", val=False,
                out=tmp_path / "run", measure_energy=False).results
    assert res["model"]["requested"] == "auto"
    assert res["model"]["path"] == str(ckpt.resolve()) and res["model"]["kind"] == "ultralytics"
