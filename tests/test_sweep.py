"""`detprune sweep`: every file written, resumption, step matching, refusals.

Trainings are 1-2 epochs at imgsz 64 on a 40-image list of sample_data, on the CPU.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE_DATA, tree_digest

from detprune.cli import main
from detprune.errors import DatasetError, DetpruneError, OutputError, ParameterError

pytest.importorskip("torch")

N_TRAIN = 40
NAMES = ["circle", "square", "triangle", "star", "ring"]
TINY = ["--imgsz", "64", "--batch", "16", "--device", "cpu", "--weights", "yolov5n.yaml"]


@pytest.fixture(autouse=True)
def _scratch_model(monkeypatch):
    """model="auto" trains yolov5n.yaml here, whatever checkpoints this machine holds."""
    monkeypatch.setattr("detprune.train.finetune.auto_model", lambda manifest=None: "yolov5n.yaml")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A copy of sample_data whose train split lists its first 40 images."""
    root = tmp_path_factory.mktemp("sweep") / "sd"
    shutil.copytree(SAMPLE_DATA, root)
    imgs = sorted((root / "images" / "train").glob("*.jpg"))[:N_TRAIN]
    (root / "train40.txt").write_text("".join(f"{p}\n" for p in imgs))
    (root / "tiny.yaml").write_text(
        "train: train40.txt\nval: images/val\nnames:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
    )
    return root / "tiny.yaml"


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def _colours(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def test_plan_epochs_matches_steps_by_hand():
    from detprune.sweep import plan_epochs

    # full: 3 epochs x ceil(100/16)=7 steps = 21 steps
    assert plan_epochs(3, 100, 30, 16, "epochs") == 3
    assert plan_epochs(3, 100, 30, 16, "steps") == 10  # ceil(30/16)=2 steps/epoch -> 21/2 -> 10
    assert plan_epochs(3, 100, 50, 16, "steps") == 5  # 4 steps/epoch -> 5.25 -> 5
    assert plan_epochs(3, 100, 100, 16, "steps") == 3
    assert plan_epochs(1, 10, 1, 16, "steps") == 1


def test_sweep_writes_every_file_and_resumes(data, tmp_path, capsys, no_network):
    out = tmp_path / "sw"
    before = tree_digest(data.parent)
    args = ["sweep", str(data), "--methods", "srs,mms", "--keep", "0.5", "--seeds", "0",
            "--epochs", "1", "--out", str(out), "--country", "ESP", *TINY]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 cells finished (0 from before), 0 failed" in text

    rows = _rows(out)
    from detprune.report.summary import RESULT_COLUMNS

    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert [(r["method"], r["keep"], r["seed"]) for r in rows] == [
        ("full", "1", "0"), ("srs", "0.5", "0"), ("mms", "0.5", "0")]
    full, srs, mms = rows
    assert int(full["n_full"]) == int(full["n_kept"]) == N_TRAIN
    for r in (srs, mms):
        assert int(r["n_kept"]) == N_TRAIN // 2
        assert float(r["kept_fraction"]) == pytest.approx(0.5)
        assert int(r["epochs"]) == 1
        assert int(r["images_seen"]) == N_TRAIN // 2
        assert float(r["eps_linf"]) > 0 and float(r["eps_l2"]) >= float(r["eps_linf"])
        # the one-time embedding cost is charged to every pruned cell
        assert float(r["prune_energy_kwh"]) > 0
        assert float(r["energy_kwh"]) == pytest.approx(
            float(r["prune_energy_kwh"]) + float(r["train_energy_kwh"]), rel=1e-4)
        assert (out / r["run_dir"] / "data" / "manifest.json").is_file()
    assert full["eps_linf"] == "" and float(full["prune_energy_kwh"]) == 0
    assert int(full["images_seen"]) == N_TRAIN
    for r in rows:
        assert 0 <= float(r["map50_95"]) <= float(r["map50"]) <= 1
        assert float(r["train_energy_kwh"]) > 0 and float(r["co2_kg"]) > 0

    # the embeddings were computed once, into the sweep's own cache
    assert (out / "embed.json").is_file() and any((out / "cache").iterdir())
    # report and plots
    md = (out / "report.md").read_text()
    assert "detprune sweep" in md and "mms" in md and "srs" in md
    assert (out / "report.html").is_file()
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) == 4
    for p in pngs:
        assert p.name in md
        w, h = _png_size(p)
        assert w >= 400 and h >= 300
        assert _colours(p) > 2  # not blank

    assert tree_digest(data.parent) == before  # source untouched, no label caches left
    assert not no_network

    # resume: nothing reruns
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("results.json")}
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.count("finished before, skipped") == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("results.json")} == stamp
    assert _rows(out) == rows

    # a cell whose results are gone (interrupted) is redone, the others are not
    (out / srs["run_dir"] / "train" / "results.json").unlink()
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.count("finished before, skipped") == 2
    assert "[srs-k0.5-s0] srs keep 0.5, seed 0 ..." in text
    assert [r["method"] for r in _rows(out)] == ["full", "srs", "mms"]

    # extending the grid reuses the finished cells; a cell of the earlier grid that this
    # run does not name (mms) keeps its row in results.csv and the report
    assert main([*args[:3], "srs", args[4], "0.5,0.25", *args[6:]]) == 0
    text = capsys.readouterr().out
    assert text.count("finished before, skipped") == 2
    after = _rows(out)
    assert [(r["method"], r["keep"]) for r in after] == [
        ("full", "1"), ("srs", "0.5"), ("srs", "0.25"), ("mms", "0.5")]
    assert after[3] == mms
    with open(out / "summary.csv", newline="") as f:
        assert {r["method"] for r in csv.DictReader(f)} == {"full", "srs", "mms"}

    # a cell of the earlier grid that is no longer valid (its results gone) drops out
    (out / mms["run_dir"] / "train" / "results.json").unlink()
    assert main([*args[:3], "srs", args[4], "0.5", *args[6:]]) == 0
    capsys.readouterr()
    assert [(r["method"], r["keep"]) for r in _rows(out)] == [
        ("full", "1"), ("srs", "0.5"), ("srs", "0.25")]


def test_interrupted_sweep_resumes_after_the_last_finished_cell(data, tmp_path):
    from detprune.sweep import sweep

    events: list[tuple[str, str]] = []

    def stop_at_second(kind, cell, info):
        events.append((kind, cell.id))
        if kind == "start" and cell.id == "srs-k0.5-s1":
            raise KeyboardInterrupt

    kw = {"methods": "srs", "keeps": "0.5", "seeds": "1", "epochs": 1, "imgsz": 64, "batch": 16,
          "device": "cpu", "weights": "yolov5n.yaml", "out": tmp_path / "sw",
          "measure_energy": False, "progress": False}
    with pytest.raises(KeyboardInterrupt):
        sweep(data, on_event=stop_at_second, **kw)
    assert events == [("start", "full-s1"), ("done", "full-s1"), ("start", "srs-k0.5-s1")]
    assert [r["method"] for r in _rows(tmp_path / "sw")] == ["full"]

    events.clear()
    r = sweep(data, on_event=lambda k, c, i: events.append((k, c.id)), **kw)
    assert events == [("skip", "full-s1"), ("start", "srs-k0.5-s1"), ("done", "srs-k0.5-s1")]
    assert r.skipped == ["full-s1"] and not r.failed
    assert [row["method"] for row in r.rows] == ["full", "srs"]


def test_match_steps_gives_pruned_cells_the_full_runs_steps(data, tmp_path):
    from detprune.sweep import sweep

    r = sweep(data, methods="srs", keeps="0.25", seeds="0", epochs=2, match="steps", imgsz=64,
              batch=8, device="cpu", weights="yolov5n.yaml", out=tmp_path / "sw",
              measure_energy=False, progress=False, report=False)
    full, srs = r.rows
    assert srs["n_kept"] == 10
    # full: 2 epochs x 5 batches; srs: 10 images = 2 batches per epoch -> 5 epochs
    assert (full["epochs"], srs["epochs"]) == (2, 5)
    assert abs(full["optimizer_steps"] - srs["optimizer_steps"]) <= 1
    assert srs["images_seen"] == 50 and full["images_seen"] == 80
    assert not (tmp_path / "sw" / "report.md").exists()


def test_refusals_and_bad_parameters(data, tmp_path, capsys):
    from detprune.sweep import sweep

    base = {"epochs": 1, "imgsz": 64, "device": "cpu", "weights": "yolov5n.yaml",
            "measure_energy": False, "progress": False}
    with pytest.raises(ParameterError, match=r"^The 'keeps' parameter of sweep must be a list of "
                       r"floats in \(0, 1\)\. Got \[0\.5, 1\.0\] instead\.$"):
        sweep(data, keeps="0.5,1", out=tmp_path / "a", **base)
    with pytest.raises(ParameterError, match="'match' parameter of sweep"):
        sweep(data, match="time", out=tmp_path / "a", **base)
    with pytest.raises(ParameterError, match="seeds"):
        sweep(data, seeds="0,x", out=tmp_path / "a", **base)
    with pytest.raises(DetpruneError, match="nosuch"):
        sweep(data, methods="srs,nosuch", out=tmp_path / "a", **base)
    assert not (tmp_path / "a").exists()  # nothing ran

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    for force in (False, True):  # a folder of the user's is never removed, even with --force
        with pytest.raises(OutputError, match="holds no detprune sweep"):
            sweep(data, out=busy, force=force, **base)
    assert (busy / "notes.txt").read_text() == "mine"
    with pytest.raises(OutputError, match="inside the source"):
        sweep(data, out=data.parent / "sweep", **base)

    # a sweep folder with other settings is refused without --force
    sw = tmp_path / "sw"
    sweep(data, methods="srs", keeps="0.5", out=sw, baseline=False, report=False, **base)
    with pytest.raises(OutputError, match=r"other settings \(epochs: 1 there, 2 now\)"):
        sweep(data, methods="srs", keeps="0.5", out=sw, baseline=False, report=False,
              **{**base, "epochs": 2})
    rc = main(["sweep", str(data), "--methods", "srs", "--keep", "0.5", "--epochs", "2",
               "--out", str(sw), "--no-baseline", "--no-energy", *TINY])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("detprune: error:") and "--force" in err


def test_a_failing_cell_is_reported_and_retried(data, tmp_path, monkeypatch, capsys):
    import detprune.train as dtrain

    real = dtrain.train
    calls: list[str] = []

    def flaky(train_data, **kw):
        calls.append(Path(kw["out"]).parent.name)
        if Path(kw["out"]).parent.name == "srs-k0.5-s0":
            raise DetpruneError("simulated failure")
        return real(train_data, **kw)

    monkeypatch.setattr(dtrain, "train", flaky)
    args = ["sweep", str(data), "--methods", "srs", "--keep", "0.5,0.25", "--epochs", "1",
            "--out", str(tmp_path / "sw"), "--no-energy", "--no-baseline", *TINY]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "[srs-k0.5-s0] FAILED: simulated failure" in captured.err
    assert captured.err.strip().splitlines()[-1].startswith("detprune: error: 1 cell(s) failed")
    assert [r["keep"] for r in _rows(tmp_path / "sw")] == ["0.25"]
    assert calls == ["srs-k0.5-s0", "srs-k0.25-s0"]
    # the report says which cells are missing from its tables, and why
    assert "1 cell(s) failed in the last run" in (tmp_path / "sw" / "report.md").read_text()
    assert "srs-k0.5-s0: simulated failure" in (tmp_path / "sw" / "report.md").read_text()

    monkeypatch.setattr(dtrain, "train", real)
    assert main(args) == 0
    assert [r["keep"] for r in _rows(tmp_path / "sw")] == ["0.5", "0.25"]
    assert "failed in the last run" not in (tmp_path / "sw" / "report.md").read_text()


def test_a_dataset_without_val_is_refused_before_anything_runs(make_dataset, tmp_path):
    from detprune.sweep import sweep

    yaml = make_dataset({"train": {f"a{i}": "0 0.5 0.5 0.2 0.2\n" for i in range(6)}})
    with pytest.raises(DatasetError, match=r"sweep needs a 'train' and a 'val' split"):
        sweep(yaml, epochs=1, out=tmp_path / "sw", measure_energy=False)
    assert not (tmp_path / "sw").exists()


def test_cells_rerun_when_the_dataset_changed(data, tmp_path):
    from detprune.sweep import sweep

    root = tmp_path / "copy"
    shutil.copytree(data.parent, root)
    imgs = [root / "images" / "train" / Path(p).name for p in data.parent.joinpath(
        "train40.txt").read_text().split()]
    (root / "train40.txt").write_text("".join(f"{p}\n" for p in imgs))
    yaml = root / "tiny.yaml"
    kw = {"methods": "srs", "keeps": "0.5", "epochs": 1, "imgsz": 64, "device": "cpu",
          "weights": "yolov5n.yaml", "out": tmp_path / "sw", "baseline": False,
          "measure_energy": False, "progress": False, "report": False}
    assert sweep(yaml, **kw).skipped == []
    assert sweep(yaml, **kw).skipped == ["srs-k0.5-s0"]
    label = root / "labels" / "train" / (imgs[0].stem + ".txt")
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")  # relabelled since
    r = sweep(yaml, **kw)
    assert r.skipped == [] and len(r.rows) == 1
    assert sweep(yaml, **kw).skipped == ["srs-k0.5-s0"]
    # the val split the cells are scored on changed: their scores no longer compare
    val_label = sorted((root / "labels" / "val").glob("*.txt"))[0]
    val_label.write_text(val_label.read_text() + "1 0.5 0.5 0.1 0.1\n")
    assert sweep(yaml, **kw).skipped == []
    # energy measured or not is a fixed setting: a table mixing both would be half empty
    with pytest.raises(OutputError, match=r"other settings \(measure_energy: False there, True now\)"):
        sweep(yaml, **{**kw, "measure_energy": True})


def test_auto_weights_fall_back_to_the_models_checkpoint(tmp_path, monkeypatch):
    from conftest import LEGACY_WEIGHTS

    from detprune.features import weights as W
    from detprune.sweep import _embedding_weights

    # no pretrained checkpoint anywhere, downloads off: "auto" alone would be a random backbone
    monkeypatch.setattr(W, "_candidates", lambda name: [tmp_path / "none" / name])
    monkeypatch.setenv("DETPRUNE_OFFLINE", "1")
    assert _embedding_weights("yolov5n.yaml", "whatever.pt") == "yolov5n.yaml"  # explicit: kept
    assert _embedding_weights("auto", "yolov5n.yaml") == "auto"  # a yaml has no trained backbone
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert _embedding_weights("auto", tmp_path / "junk.pt") == "auto"
    if LEGACY_WEIGHTS.is_file():
        with pytest.warns(UserWarning, match="backbone of --model"):
            got = _embedding_weights("auto", LEGACY_WEIGHTS)
        assert got == str(LEGACY_WEIGHTS.resolve())
