"""`detprune train`: real (tiny) ultralytics trainings on a copy of sample_data.

Every training here is 1-2 epochs at imgsz 64 on a 48-image list, on the CPU.
What the model sees is counted independently of detprune's own counters: a
forward pre-hook on the trained module records every training batch's images.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from detprune._offline import configure_offline

configure_offline()  # before anything imports ultralytics (its constants are fixed at import)

from conftest import LEGACY_WEIGHTS, SAMPLE_DATA, tree_digest  # noqa: E402

from detprune.cli import main  # noqa: E402
from detprune.errors import DatasetError, OutputError, ParameterError  # noqa: E402
from detprune.train import compare_runs, fractions, images_for_epoch, train  # noqa: E402

pytest.importorskip("ultralytics")
pytest.importorskip("torch")

N_TRAIN = 48
TINY = {"imgsz": 64, "batch": 16, "workers": 0, "device": "cpu"}


@pytest.fixture(autouse=True)
def _scratch_model(monkeypatch):
    """model="auto" trains yolov5n.yaml here, whatever checkpoints this machine holds
    (auto_model itself: tests/test_train_auto_model.py)."""
    monkeypatch.setattr("detprune.train.finetune.auto_model", lambda manifest=None: "yolov5n.yaml")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A copy of sample_data whose train split is a list of its first 48 images."""
    root = tmp_path_factory.mktemp("train") / "sd"
    shutil.copytree(SAMPLE_DATA, root)
    train_imgs = sorted((root / "images" / "train").glob("*.jpg"))[:N_TRAIN]
    (root / "train48.txt").write_text("".join(f"{p}\n" for p in train_imgs))
    (root / "tiny.yaml").write_text(
        "train: train48.txt\nval: images/val\nnames:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(["circle", "square", "triangle", "star", "ring"]))
    )
    return root / "tiny.yaml"


class Seen:
    """Counts the images of every training forward pass, per epoch (a forward pre-hook)."""

    def __init__(self) -> None:
        self.images: dict[int, int] = defaultdict(int)
        self.batches: dict[int, int] = defaultdict(int)
        self.files: dict[int, set[str]] = defaultdict(set)
        self.dataset_files: list[str] = []

    def callbacks(self) -> dict:
        def attach(trainer) -> None:
            self.dataset_files = list(trainer.train_loader.dataset.im_files)

            def hook(module, args):
                batch = args[0]
                if module.training and isinstance(batch, dict):
                    self.images[trainer.epoch] += int(batch["img"].shape[0])
                    self.batches[trainer.epoch] += 1
                    self.files[trainer.epoch].update(batch["im_file"])

            trainer.model.register_forward_pre_hook(hook)

        return {"on_pretrain_routine_end": attach}


def _finite_numbers(obj, path="") -> list[str]:
    """Paths of non-finite numbers inside a JSON-like object."""
    bad = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad += _finite_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            bad += _finite_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        bad.append(path)
    return bad


RESULT_KEYS = {
    "results_version", "detprune_version", "created", "out", "ultralytics_dir", "data", "model",
    "settings", "schedule", "mAP50", "mAP50-95", "metrics", "epochs", "epochs_completed",
    "images_seen", "full_epoch_equivalents", "optimizer_steps", "wall_seconds", "train_seconds",
    "val_seconds", "energy_kwh", "co2_kg", "energy", "pruning", "combined", "per_epoch", "machine",
}


def test_static_training_counts_images_and_writes_complete_results(data, tmp_path, no_network):
    before = tree_digest(data.parent)
    seen = Seen()
    r = train(data, model="yolov5n.yaml", epochs=2, out=tmp_path / "run", seed=0, country="ESP",
              callbacks=seen.callbacks(), **TINY)
    assert no_network == []
    assert tree_digest(data.parent) == before  # ultralytics' labels/*.cache removed again
    assert len(r.results["settings"]["label_caches_removed"]) == 2  # train and val
    res = r.results
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == res
    assert set(res) == RESULT_KEYS
    assert _finite_numbers(res) == []
    # counted by detprune == counted by the hook == every image, every epoch
    assert dict(seen.images) == {0: N_TRAIN, 1: N_TRAIN}
    assert res["images_seen"] == 2 * N_TRAIN == sum(seen.images.values())
    assert [e["images"] for e in res["per_epoch"]] == [N_TRAIN, N_TRAIN]
    assert [e["batches"] for e in res["per_epoch"]] == [seen.batches[0], seen.batches[1]] == [3, 3]
    assert res["optimizer_steps"] == sum(e["optimizer_steps"] for e in res["per_epoch"]) > 0
    assert res["full_epoch_equivalents"] == pytest.approx(2.0)
    assert res["data"]["train_images"] == N_TRAIN and res["data"]["val_images"] == 60
    m = res["metrics"]
    assert m["split"] == "val" and m["weights"] == "best" and Path(m["weights_path"]).is_file()
    assert 0.0 <= m["mAP50-95"] <= m["mAP50"] <= 1.0
    assert set(m["per_class"]) == {"circle", "square", "triangle", "star", "ring"}
    for c in m["per_class"].values():
        assert set(c) == {"AP50", "AP50-95", "instances", "images"}
        assert c["instances"] > 0 and 0.0 <= c["AP50-95"] <= 1.0
    assert res["model"]["kind"] == "random" and res["model"]["transfer"] is None
    assert list(res["energy"]["phases"]) == ["train", "val"]
    assert res["wall_seconds"] == pytest.approx(res["train_seconds"] + res["val_seconds"])
    assert res["energy"]["total"]["country"] == "ESP"
    if res["energy_kwh"] is not None:
        assert res["energy_kwh"] > 0 and res["co2_kg"] > 0
    assert res["pruning"] is None and res["combined"]["includes_pruning"] is False
    assert res["combined"]["seconds"] == pytest.approx(res["wall_seconds"])
    assert res["schedule"] == {"spec": None, "order_by": None, "fractions": [1.0, 1.0],
                               "unranked_images": 0}
    assert (tmp_path / "run" / "ultralytics" / "weights" / "last.pt").is_file()


@pytest.mark.parametrize("schedule", ["step:0.5@0.5", "increment:0.25", "cut:2:0.5"])
def test_schedules_train_on_exactly_the_planned_images(data, tmp_path, schedule, no_network):
    seen = Seen()
    r = train(data, epochs=2, out=tmp_path / "run", schedule=schedule, seed=3,
              measure_energy=False, callbacks=seen.callbacks(), **TINY)
    assert no_network == []
    res = r.results
    fr = fractions(schedule, 2)
    files = seen.dataset_files
    assert len(files) == N_TRAIN
    for epoch, f in enumerate(fr):
        expected = {files[i] for i in images_for_epoch(N_TRAIN, f, epoch, seed=3)}
        assert seen.files[epoch] == expected, f"epoch {epoch}"
        assert seen.images[epoch] == len(expected) == res["per_epoch"][epoch]["images"]
        assert res["per_epoch"][epoch]["planned_images"] == len(expected)
        assert res["per_epoch"][epoch]["fraction"] == pytest.approx(f)
        assert res["per_epoch"][epoch]["batches"] == seen.batches[epoch] == math.ceil(len(expected) / 16)
    assert res["images_seen"] == sum(seen.images.values()) < 2 * N_TRAIN
    assert res["schedule"]["spec"] == schedule and res["schedule"]["order_by"] == "random"
    assert res["schedule"]["fractions"] == pytest.approx(fr)
    assert _finite_numbers(res) == []


def test_schedule_with_persistent_loader_workers(data, tmp_path, monkeypatch):
    """With worker processes (as on a GPU) no batch prefetched under the previous epoch's plan leaks."""
    import detprune.train.finetune as ft

    trainer_cls = ft._trainer_class()
    setup = trainer_cls.setup_detprune

    def with_workers(self, **kwargs):
        setup(self, **kwargs)
        self.args.workers = 2  # ultralytics sets 0 on CPU; force real worker processes

    monkeypatch.setattr(trainer_cls, "setup_detprune", with_workers)
    seen = Seen()
    schedule = "cut:2:0.3"  # small, full, small, full: prefetching crosses both ways
    r = train(data, epochs=4, out=tmp_path / "run", schedule=schedule, seed=1, measure_energy=False,
              callbacks=seen.callbacks(), **{**TINY, "batch": 8})
    files = seen.dataset_files
    for epoch, f in enumerate(fractions(schedule, 4)):
        expected = {files[i] for i in images_for_epoch(N_TRAIN, f, epoch, seed=1)}
        assert seen.files[epoch] == expected and seen.images[epoch] == len(expected)
    assert [e["images"] for e in r.results["per_epoch"]] == [14, 48, 14, 48]


def _pruned_dir(data: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A pruned dataset written by hand: train.txt + manifest.json with a known pick order."""
    root = data.parent
    imgs = sorted((root / "images" / "train").glob("*.jpg"))[:N_TRAIN]
    ranked = list(reversed(imgs))  # best first: the last images
    out = tmp_path / "pruned"
    out.mkdir()
    (out / "train.txt").write_text("".join(f"{p}\n" for p in imgs))
    names = ["circle", "square", "triangle", "star", "ring"]
    (out / "data.yaml").write_text(
        f"train: {out / 'train.txt'}\nval: {root / 'images' / 'val'}\nnc: 5\nnames:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    )
    manifest = {
        "manifest_version": 1,
        "method": "mms",
        "params": {},
        "seed": 7,
        "kept": N_TRAIN,
        "kept_fraction": N_TRAIN / 300,
        "source": {"split": "train", "root": str(root), "fingerprint": "blake2b:0123456789abcdef0123",
                   "images": 300},
        "energy": {"phases": {}, "total": {"seconds": 12.5, "energy_kwh": 0.002, "co2_kg": 0.001}},
        "selected": [{"path": p.relative_to(root).as_posix(), "rank": i, "score": 1.0 / (i + 1)}
                     for i, p in enumerate(ranked)],
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, [str(p) for p in ranked]


def test_order_by_manifest_uses_the_top_of_the_pick_order(data, tmp_path, no_network):
    pruned, ranked = _pruned_dir(data, tmp_path)
    seen = Seen()
    r = train(pruned, epochs=2, out=tmp_path / "run", schedule="increment:0.25",
              order_by="manifest", measure_energy=False, callbacks=seen.callbacks(), **TINY)
    res = r.results
    assert seen.files[0] == set(ranked[:12])  # 0.25 * 48, best ranked first
    assert seen.files[1] == set(ranked)
    assert res["images_seen"] == 12 + N_TRAIN
    assert res["schedule"]["order_by"] == "manifest" and res["schedule"]["unranked_images"] == 0
    p = res["pruning"]
    assert p["id"] == "0123456789ab-mms-seed7-kept48"
    assert p["method"] == "mms" and p["kept"] == N_TRAIN and p["energy"]["energy_kwh"] == 0.002
    c = res["combined"]
    assert c["includes_pruning"] is True
    assert c["seconds"] == pytest.approx(12.5 + res["wall_seconds"])
    assert c["energy_kwh"] is None  # the training's energy was not measured
    assert no_network == []


@pytest.mark.skipif(not LEGACY_WEIGHTS.is_file(), reason="legacy yolov5n.pt not available")
def test_legacy_checkpoint_transfers_backbone_and_neck_not_head(data, tmp_path, no_network):
    r = train(data, model=str(LEGACY_WEIGHTS), epochs=1, out=tmp_path / "run",
              measure_energy=False, **TINY)
    m = r.results["model"]
    assert m["kind"] == "legacy" and m["arch"] == "yolov5n" and len(m["sha256"]) == 64
    t = m["transfer"]
    assert set(range(10)) <= set(t["layers_transferred"])  # backbone, strictly
    assert {10, 13, 17, 20, 23} <= set(t["layers_transferred"])  # neck
    assert t["layers_fresh"] == [24] and t["layers_partial"] == []  # anchor-free head is new
    assert r.results["images_seen"] == N_TRAIN
    assert no_network == []


def test_ultralytics_checkpoint_transfers_matching_tensors(data, tmp_path):
    first = train(data, epochs=1, out=tmp_path / "first", measure_energy=False, **TINY)
    best = first.weights
    assert best is not None and best.name == "best.pt"
    six = data.parent / "six.yaml"  # one more class: the class-dependent head convs cannot transfer
    six.write_text(data.read_text() + "  5: hexagon\n")
    try:
        r = train(six, model=str(best), epochs=1, out=tmp_path / "second", measure_energy=False, **TINY)
    finally:
        six.unlink()
    m = r.results["model"]
    assert m["kind"] == "ultralytics" and m["arch"] == "yolov5n" and m["path"] == str(best.resolve())
    t = m["transfer"]
    assert set(range(24)) & set(t["layers_fresh"] + t["layers_partial"]) == set()
    assert t["layers_partial"] == [24] and t["tensors_shape_mismatch"] > 0
    assert len(r.results["metrics"]["per_class"]) == 6
    assert r.results["metrics"]["per_class"]["hexagon"] == {"AP50": None, "AP50-95": None,
                                                            "instances": 0, "images": 0}


def test_cli_train_with_plots_then_compare(data, tmp_path, capsys, no_network):
    rc = main(["train", str(data), "--epochs", "1", "--imgsz", "64", "--batch", "16", "--device", "cpu",
               "--out", str(tmp_path / "a"), "--no-energy", "--schedule", "step:0.5@1",
               "--keep-label-cache", "--plots"])
    assert rc == 0
    assert (tmp_path / "a" / "ultralytics" / "results.png").is_file()  # drawn with the local font
    assert no_network == []
    caches = sorted(data.parent.glob("labels/*.cache"))
    assert [p.name for p in caches] == ["train.cache", "val.cache"]
    for p in caches:
        p.unlink()
    out = capsys.readouterr().out
    assert "images seen 24 (50.0% of 1 full epochs)" in out
    assert "mAP50-95" in out and str(tmp_path / "a" / "results.json") in out
    # a second, static run to compare against
    train(data, epochs=1, out=tmp_path / "b", measure_energy=False, **TINY)
    c = compare_runs([tmp_path / "a", tmp_path / "b"])
    assert c.rows[c.baseline]["run"] == "b"
    assert c.rows[0]["images_seen_rel"] == pytest.approx(0.5)


def test_bad_parameters_fail_before_training(data, tmp_path):
    with pytest.raises(ParameterError) as info:
        train(data, epochs=0, out=tmp_path / "x")
    assert str(info.value) == "The 'epochs' parameter of train must be an int >= 1. Got 0 instead."
    with pytest.raises(ParameterError, match=r"^The 'schedule' parameter of train must be 'step:F@P'"):
        train(data, epochs=2, schedule="step:2@0.5", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="'order_by' parameter of train needs a schedule"):
        train(data, epochs=2, order_by="manifest", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="'order_by' parameter of train can be 'manifest' only"):
        train(data, epochs=2, schedule="increment:0.5", order_by="manifest", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="The 'order_by' parameter of train must be one of"):
        train(data, epochs=2, schedule="increment:0.5", order_by="mms", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="The 'device' parameter of train must be"):
        train(data, epochs=1, device="0,1", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="The 'model' parameter of train must be"):
        train(data, epochs=1, model="resnet50", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="The 'model' parameter of train must be"):
        train(data, epochs=1, model="no-such-model.yaml", out=tmp_path / "x")
    with pytest.raises(ParameterError, match="The 'country' parameter"):
        train(data, epochs=1, country="Spain", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_dataset_and_output_problems(data, tmp_path, capsys):
    no_val = tmp_path / "noval.yaml"
    no_val.write_text(f"train: {data.parent / 'train48.txt'}\nnames: [a, b]\n")
    with pytest.raises(DatasetError, match="no 'val' entry"):
        train(no_val, epochs=1, out=tmp_path / "x")
    gone = tmp_path / "gone.yaml"
    gone.write_text(f"train: {data.parent / 'train48.txt'}\nval: {tmp_path / 'nothing'}\nnames: [a]\n")
    with pytest.raises(DatasetError, match=r"'val' entry .* does not exist"):
        train(gone, epochs=1, out=tmp_path / "x")
    with pytest.raises(DatasetError, match="no such file"):
        train(tmp_path / "missing", epochs=1, out=tmp_path / "x")
    empty = tmp_path / "empty"
    (empty / "images" / "train").mkdir(parents=True)
    (empty / "images" / "val").mkdir(parents=True)
    (empty / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    with pytest.raises(DatasetError, match=r"^\S+data\.yaml: split 'train' has no usable images"):
        train(empty, epochs=1, out=tmp_path / "e", measure_energy=False, **TINY)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        train(data, epochs=1, out=busy)
    with pytest.raises(OutputError, match="holds no detprune training run"):
        train(data, epochs=1, out=busy, force=True)
    # a folder of the user's named like ultralytics' output, or a results.json of another
    # tool, is no run of ours: --force never removes it
    (busy / "ultralytics").mkdir()
    (busy / "ultralytics" / "precious.py").write_text("my code")
    (busy / "results.json").write_text("{}")
    with pytest.raises(OutputError, match="holds no detprune training run"):
        train(data, epochs=1, out=busy, force=True)
    assert (busy / "ultralytics" / "precious.py").read_text() == "my code"
    assert (busy / "results.json").read_text() == "{}"
    with pytest.raises(OutputError, match=r"inside the source folder|would contain"):
        train(data, epochs=1, out=data.parent / "images" / "val" / "run")
    rc = main(["train", str(data), "--epochs", "1", "--schedule", "cut:0", "--out", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith("detprune: error: The 'schedule' parameter of train must be 'cut:K'")


def test_manifest_order_maps_copied_and_linked_trees_back_to_the_source(tmp_path):
    """A pruned tree materialised by copy keeps sub-folders below the common folder."""
    from detprune.train.finetune import _manifest_aliases, _manifest_ranking, _order_indices

    src = tmp_path / "src"
    rel = ["images/train/a/x1.jpg", "images/train/b/x2.jpg", "images/train/a/x3.jpg"]
    for r in rel:
        (src / r).parent.mkdir(parents=True, exist_ok=True)
        (src / r).write_bytes(b"jpg")
    manifest = {"source": {"root": str(src), "split": "train"},
                "selected": [{"path": rel[2], "rank": 0}, {"path": rel[0], "rank": 1},
                             {"path": rel[1], "rank": 2}]}
    pruned = tmp_path / "pruned"
    copies = [pruned / "images" / "train" / "a" / "x1.jpg", pruned / "images" / "train" / "b" / "x2.jpg",
              pruned / "images" / "train" / "a" / "x3.jpg"]
    for c in copies:
        c.parent.mkdir(parents=True, exist_ok=True)
        c.write_bytes(b"jpg")
    im_files = sorted(str(c) for c in copies)  # what ultralytics lists: a/x1, a/x3, b/x2
    aliases = _manifest_aliases(manifest, pruned, im_files)
    order, unranked = _order_indices(im_files, _manifest_ranking(manifest), aliases=aliases)
    assert [Path(im_files[i]).name for i in order] == ["x3.jpg", "x1.jpg", "x2.jpg"]
    assert unranked == 0
    # a list-materialised set (absolute source paths) needs no aliases; unknown images come last
    extra = tmp_path / "other.jpg"
    extra.write_bytes(b"jpg")
    im_files = sorted([str(src / r) for r in rel] + [str(extra)])
    order, unranked = _order_indices(im_files, _manifest_ranking(manifest), aliases={})
    assert [Path(im_files[i]).name for i in order] == ["x3.jpg", "x1.jpg", "x2.jpg", "other.jpg"]
    assert unranked == 1


def test_cpu_training_uses_every_core_and_restores_the_thread_count(data, tmp_path):
    import os

    import torch

    seen: list[int] = []
    before = torch.get_num_threads()
    r = train(data, epochs=1, out=tmp_path / "run", measure_energy=False, **TINY,
              callbacks={"on_train_batch_end": lambda t: seen.append(torch.get_num_threads())})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert seen and set(seen) == {cores}  # ultralytics alone would use cores - 1
    assert r.results["settings"]["cpu_threads"] == cores
    assert torch.get_num_threads() == before



def test_training_never_rewrites_a_source_jpeg(tmp_path, no_network):
    """ultralytics "restores" a JPEG with data after its end marker in place; train prevents it."""
    root = tmp_path / "sd"
    shutil.copytree(SAMPLE_DATA, root)
    train_imgs = sorted((root / "images" / "train").glob("*.jpg"))[:16]
    val_img = sorted((root / "images" / "val").glob("*.jpg"))[0]
    for img in (train_imgs[0], val_img):
        with open(img, "ab") as f:
            f.write(b"appended motion-photo video" * 40)
    (root / "t16.txt").write_text("".join(f"{p}\n" for p in train_imgs))
    (root / "t.yaml").write_text("train: t16.txt\nval: images/val\nnames: [circle, square, triangle, star, ring]\n")
    before = tree_digest(root)
    r = train(root / "t.yaml", epochs=1, out=tmp_path / "run", measure_energy=False, **TINY)
    assert r.results["settings"]["jpegs_scanned_through_a_copy"] == 2
    assert tree_digest(root) == before


def test_scan_guard_only_acts_inside_its_block(tmp_path):
    import ultralytics.data.dataset as uds

    from detprune.train._protect import no_image_rewrites

    src = tmp_path / "images" / "a.jpg"
    shutil.copytree(SAMPLE_DATA / "images" / "val", src.parent)
    first = sorted(src.parent.glob("*.jpg"))[0]
    first.rename(src)
    data = src.read_bytes() + b"trailing" * 10
    src.write_bytes(data)
    args = (str(src), str(tmp_path / "labels" / "a.txt"), "", False, 5, 0, 0, False)
    with no_image_rewrites() as protected:
        out = uds.verify_image_label(args)
    assert out[0] == str(src) and out[8] == 0 and "left unmodified" in out[-1]
    assert protected == [str(src)] and src.read_bytes() == data
    uds.verify_image_label(args)  # unguarded: ultralytics rewrites the file
    assert src.read_bytes() != data


def test_source_dataset_trains_on_what_detprune_loads(data, tmp_path, monkeypatch):
    """A source dataset (not a pruned output) with ``path: .``, trained from a folder that
    holds another dataset, with a 32-bit TIFF that OpenCV cannot decode: ultralytics
    trains on the dataset's own usable images (ultralytics alone would read ``path``
    against the working folder, and stop on the TIFF)."""
    import numpy as np
    from PIL import Image

    src = data.parent
    mine = tmp_path / "mine"
    for split, n in (("train", 12), ("val", 4)):
        (mine / "images" / split).mkdir(parents=True)
        (mine / "labels" / split).mkdir(parents=True)
        for img in sorted((src / "images" / split).glob("*.jpg"))[:n]:
            shutil.copy(img, mine / "images" / split / img.name)
            lb = src / "labels" / split / f"{img.stem}.txt"
            if lb.exists():
                shutil.copy(lb, mine / "labels" / split / lb.name)
    Image.fromarray(np.zeros((64, 64), np.int32), mode="I").save(mine / "images/train/deep.tif")
    (mine / "labels/train/deep.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (mine / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [circle, square, triangle, star, ring]\n")
    monkeypatch.chdir(src)  # sample_data's own images/train (96 images) is here
    r = train(mine, epochs=1, out=tmp_path / "run", measure_energy=False, plots=False, **TINY)
    assert r.results["data"]["train_images"] == 12
    assert r.results["data"]["yaml"] == str((mine / "data.yaml").resolve())
    listed = (tmp_path / "run" / "source" / "train.txt").read_text().split()
    assert len(listed) == 12 and all(p.startswith(str(mine)) for p in listed)


def test_moved_pruned_dataset_is_refused(data, tmp_path):
    """Its data.yaml names the folder it was written in; trained from elsewhere it would
    train on whatever sits there now."""
    pruned, _ = _pruned_dir(data, tmp_path)
    moved = tmp_path / "moved"
    shutil.move(pruned, moved)
    pruned.mkdir()
    (pruned / "train.txt").write_text("")  # something else at the old place
    with pytest.raises(DatasetError, match=r"moved after it was written.*detprune export"):
        train(moved, epochs=1, out=tmp_path / "run", **TINY)
    shutil.rmtree(pruned)  # nothing left at the old place: still 'moved', not 'does not exist'
    with pytest.raises(DatasetError, match=r"moved after it was written.*detprune export"):
        train(moved, epochs=1, out=tmp_path / "run", **TINY)


def test_pruned_list_with_a_deleted_source_image_is_refused(data, tmp_path):
    pruned, _ = _pruned_dir(data, tmp_path)
    lines = (pruned / "train.txt").read_text().splitlines()
    (pruned / "train.txt").write_text("\n".join([*lines, str(tmp_path / "gone.jpg")]) + "\n")
    with pytest.raises(DatasetError, match=r"1 of the \d+ kept images no longer exist .*gone\.jpg"):
        train(pruned, epochs=1, out=tmp_path / "run", **TINY)


def test_per_class_metrics_keep_one_entry_per_class_when_names_repeat():
    """Output data.yaml files keep the dataset's names, repeats included; the per-class
    results are keyed as detprune's reports key them, so no class overwrites another."""
    from types import SimpleNamespace

    import numpy as np

    from detprune.train.finetune import _metrics_dict

    box = SimpleNamespace(ap_class_index=np.array([0, 1]), all_ap=np.array([[0.5] * 10, [0.25] * 10]),
                          map50=0.4, map=0.4, mp=0.5, mr=0.5)
    m = SimpleNamespace(box=box, nt_per_class=np.array([3, 4, 0]), nt_per_image=np.array([2, 2, 0]))
    trainer = SimpleNamespace(dp_final_metrics=m, dp_final_weights=None)
    per_class = _metrics_dict(trainer, ("car", "car", "bus"))["per_class"]
    assert list(per_class) == ["car", "car (1)", "bus"]
    assert per_class["car"]["AP50"] == 0.5 and per_class["car (1)"]["AP50"] == 0.25
    assert per_class["car (1)"]["instances"] == 4


def test_force_replaces_an_interrupted_run_whole(data, tmp_path):
    """A run marks its folder when it starts: --force replaces an interrupted run (no
    results.json yet), and what the earlier run wrote (its source lists) does not stay."""
    from detprune.train.finetune import TRAIN_MARK

    out = tmp_path / "run"
    (out / "ultralytics" / "train").mkdir(parents=True)
    (out / "source").mkdir()
    (out / "source" / "train.txt").write_text("/elsewhere/old.jpg\n")
    (out / TRAIN_MARK).write_text("{}\n")
    (out / "my-notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        train(data, epochs=1, out=out, measure_energy=False, **TINY)
    r = train(data, epochs=1, out=out, force=True, measure_energy=False, **TINY)
    assert r.results["images_seen"] == N_TRAIN
    assert "/elsewhere/old.jpg" not in (out / "source" / "train.txt").read_text()
    assert (out / "my-notes.txt").read_text() == "mine"  # not ours: left alone
    assert (out / TRAIN_MARK).is_file() and (out / "results.json").is_file()


def test_force_removes_links_in_a_run_never_what_they_point_to(data, tmp_path):
    """A run's source/ or ultralytics/ that is a link (to the user's folder, or to the
    dataset itself) is removed as a link: the new run never writes through it."""
    from detprune.train.finetune import TRAIN_MARK

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "train.txt").write_text("mine\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / TRAIN_MARK).write_text("{}\n")
    (out / "source").symlink_to(victim)
    (out / "ultralytics").write_text("not a folder")
    r = train(data, epochs=1, out=out, force=True, measure_energy=False, **TINY)
    assert (victim / "train.txt").read_text() == "mine\n" and [p.name for p in victim.iterdir()] == ["train.txt"]
    assert not (out / "source").is_symlink() and (out / "ultralytics").is_dir()
    assert r.results["ultralytics_dir"].startswith(str(out))


def test_seeds_beyond_32_bits_are_refused_up_front(data, tmp_path):
    with pytest.raises(ParameterError, match=r"^The 'seed' parameter of train must be an int in \[0, "):
        train(data, epochs=1, seed=2**32, out=tmp_path / "x", **TINY)
