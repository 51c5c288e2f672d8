"""`detprune prune` end to end on sample_data/ (random-init yolov5n at a tiny size)."""

from __future__ import annotations

import csv
import json
import shutil
import socket
from pathlib import Path

import pytest
import yaml
from conftest import SAMPLE_DATA, tree_digest

from detprune import pipeline
from detprune.cli import main
from detprune.errors import DatasetError, OutputError, ParameterError

pytestmark = pytest.mark.skipif(not SAMPLE_DATA.exists(), reason="sample_data/ not generated")

FAST = {"weights": "yolov5n.yaml", "imgsz": 64, "batch": 32, "workers": 0, "progress": False,
        "measure_energy": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A private copy of sample_data/ (so the tests can check it is never modified)."""
    dst = tmp_path_factory.mktemp("src") / "sample"
    shutil.copytree(SAMPLE_DATA, dst)
    return dst


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _methods():
    from detprune.select import available_methods

    return sorted(available_methods())


@pytest.mark.parametrize("method", _methods())
def test_every_method_prunes_sample_data(data, cache, tmp_path, method):
    before = tree_digest(data)
    r = pipeline.prune(data, method=method, keep=0.3, out=tmp_path / "out", cache=cache, **FAST)
    m = r.manifest
    n = m["source"]["images"] - len(m["source"]["images_failed_embedding"])
    assert m["kept"] == round(0.3 * n) == len(m["selected"])
    # every class present keeps at least one image
    for name, c in m["classes"].items():
        if c["images_before"]:
            assert c["images_after"] >= 1, name
    listed = (r.out / "train.txt").read_text().split()
    assert len(listed) == m["kept"] and len(set(listed)) == m["kept"]
    assert all(Path(p).is_file() for p in listed)
    d = yaml.safe_load((r.out / "data.yaml").read_text())
    assert d["val"] == str((data / "images" / "val").resolve())
    with open(r.out / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == m["source"]["images"] and sum(int(x["kept"]) for x in rows) == m["kept"]
    assert tree_digest(data) == before


@pytest.mark.parametrize("mode", ["symlink", "hardlink", "copy"])
def test_materializations_give_a_loadable_tree(data, cache, tmp_path, mode):
    r = pipeline.prune(data, method="srs", keep=0.2, out=tmp_path / "o", materialize=mode, cache=cache, **FAST)
    imgs = sorted((r.out / "images" / "train").rglob("*.jpg"))
    assert len(imgs) == r.manifest["kept"]
    labelled = [p for p in imgs if (r.out / "labels" / "train" / p.relative_to(r.out / "images" / "train")).with_suffix(".txt").exists()]
    bg = r.manifest["classes"]["(background)"]["images_after"]
    assert len(labelled) >= len(imgs) - bg
    from ultralytics.data.utils import check_det_dataset

    info = check_det_dataset(str(r.out / "data.yaml"))
    assert info["nc"] == 5


def test_refuses_existing_output_and_bad_budgets(data, cache, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.me").write_text("x")
    with pytest.raises(OutputError, match="--force"):
        pipeline.prune(data, method="srs", keep=0.3, out=out, cache=cache, **FAST)
    with pytest.raises(OutputError, match="holds no detprune output"):  # not ours: never replaced
        pipeline.prune(data, method="srs", keep=0.3, out=out, force=True, cache=cache, **FAST)
    assert (out / "keep.me").read_text() == "x"
    r = pipeline.prune(data, method="srs", keep=0.3, out=tmp_path / "p", cache=cache, **FAST)
    assert pipeline.prune(data, method="srs", keep=0.2, out=r.out, force=True, cache=cache, **FAST).out == r.out
    with pytest.raises(OutputError, match=r"manifest\.json"):  # the folder above it holds the manifest
        pipeline.export(r.out / "manifest.json", out=tmp_path, force=True)
    for kw in ({"keep": 0.0}, {"keep": 1.5}, {"budget": 0}, {"budget": 10**6}, {"keep": 0.3, "budget": 3}):
        with pytest.raises(ParameterError):
            pipeline.prune(data, method="srs", out=tmp_path / "x", cache=cache, **kw, **FAST)
    with pytest.raises(ParameterError, match="floor"):
        pipeline.prune(data, method="srs", budget=1, out=tmp_path / "x", cache=cache, **FAST)
    with pytest.raises(ParameterError, match="method"):
        pipeline.prune(data, method="nope", keep=0.3, out=tmp_path / "x", cache=cache, **FAST)


def test_interrupted_run_leaves_nothing(data, cache, tmp_path, monkeypatch):
    import detprune.export

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(detprune.export, "materialize_split", boom)
    with pytest.raises(KeyboardInterrupt):
        pipeline.prune(data, method="srs", keep=0.3, out=tmp_path / "o", cache=cache, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_manifest_round_trip_and_fingerprint(data, cache, tmp_path):
    r = pipeline.prune(data, method="mms", keep=0.25, out=tmp_path / "a", cache=cache, **FAST)
    e = pipeline.export(r.out / "manifest.json", out=tmp_path / "b", materialize="copy")
    copied = sorted(p.name for p in (e.out / "images" / "train").rglob("*.jpg"))
    assert copied == sorted(Path(p).name for p in (r.out / "train.txt").read_text().split())
    assert json.loads((e.out / "manifest.json").read_text())["selected"] == r.manifest["selected"]
    # change the source: one label edited -> refused
    label = next((data / "labels" / "train").glob("*.txt"))
    original = label.read_bytes()
    try:
        label.write_bytes(original + b"0 0.5 0.5 0.1 0.1\n")
        with pytest.raises(DatasetError, match="changed since"):
            pipeline.export(r.out, out=tmp_path / "c")
    finally:
        label.write_bytes(original)
    assert not (tmp_path / "c").exists()
    # a hand-edited manifest: one line each, nothing written
    from detprune.errors import DetpruneError

    good = json.loads((r.out / "manifest.json").read_text())
    sel = good["selected"]
    for edit, says in [
        ({"selected": "abc"}, "'selected' must be a non-empty list"),
        ({"selected": []}, "'selected' must be a non-empty list"),
        ({"selected": [*sel, sel[0]]}, "lists .* twice"),
        ({"selected": [{"rank": 1}, *sel[1:]]}, "entry 0 of 'selected' has no image 'path'"),
        ({"selected": sel[1:]}, f"'kept' is {len(sel)} but 'selected' lists {len(sel) - 1} images"),
        ({"source": {**good["source"], "fingerprint": 5}}, "'source' must record"),
    ]:
        edited = tmp_path / "edited" / "manifest.json"
        edited.parent.mkdir(exist_ok=True)
        edited.write_text(json.dumps({**good, **edit}))
        with pytest.raises(DetpruneError, match=says):
            pipeline.export(edited, out=tmp_path / "d")
        assert not (tmp_path / "d").exists()


def test_cli_prune_prints_report_and_opens_no_socket(data, cache, tmp_path, capsys, monkeypatch):
    calls = []

    def deny(*args, **kwargs):
        calls.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", deny)
    monkeypatch.setattr(socket.socket, "connect_ex", deny)
    monkeypatch.setattr(socket, "create_connection", deny)
    monkeypatch.setattr(socket, "getaddrinfo", deny)
    code = main([
        "prune", str(data), "--method", "clc", "--keep", "0.3", "--out", str(tmp_path / "o"),
        "--weights", "yolov5n.yaml", "--imgsz", "64", "--workers", "0", "--quiet", "--cache", str(cache),
        "--country", "ESP",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "epsilon" in out and "total" in out and str(tmp_path / "o") in out
    assert calls == []
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert set(m["energy"]["phases"]) == {"embed", "select", "epsilon", "export"}
    assert m["epsilon"]["eps_linf"] > 0 and m["epsilon"]["mean_l2"] > 0


def test_no_eps_skips_the_report_and_its_phase(data, cache, tmp_path, capsys):
    code = main([
        "prune", str(data), "--method", "srs", "--keep", "0.3", "--out", str(tmp_path / "o"),
        "--weights", "yolov5n.yaml", "--imgsz", "64", "--workers", "0", "--quiet", "--cache", str(cache),
        "--no-energy", "--no-eps",
    ])
    assert code == 0
    assert "epsilon: not computed (--no-eps)" in capsys.readouterr().out
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["epsilon"] is None and set(m["energy"]["phases"]) == {"embed", "select", "export"}


def _redundant_kept(manifest: dict, groups: list[list[str]]) -> int:
    """Kept images beyond the first of each planted near-duplicate group."""
    kept = {s["path"] for s in manifest["selected"]}
    return sum(max(0, sum(p in kept for p in g) - 1) for g in groups)


def test_geometric_methods_drop_planted_duplicates(data, cache, tmp_path):
    groups = json.loads((data / "planted_groups.json").read_text())["groups"]
    redundant = {}
    for method in ("mms", "clc"):
        r = pipeline.prune(data, method=method, keep=0.3, out=tmp_path / method, cache=cache, **FAST)
        redundant[method] = _redundant_kept(r.manifest, groups)
    srs = [
        _redundant_kept(
            pipeline.prune(data, method="srs", keep=0.3, seed=s, out=tmp_path / f"srs{s}", cache=cache, **FAST).manifest,
            groups,
        )
        for s in range(4)
    ]
    mean_srs = sum(srs) / len(srs)
    assert redundant["mms"] < mean_srs, (redundant, srs)
    assert redundant["clc"] < mean_srs, (redundant, srs)


def test_pruned_list_output_trains_one_epoch(data, cache, tmp_path):
    from detprune.train import train

    r = pipeline.prune(data, method="fl", keep=0.2, out=tmp_path / "p", cache=cache, **FAST)
    before = tree_digest(data)
    t = train(r.out, model="yolov5n.yaml", epochs=1, imgsz=64, batch=16, workers=0,
              out=tmp_path / "run", measure_energy=False, val=False)
    res = t.results
    assert res["images_seen"] == r.manifest["kept"]
    assert res["data"]["train_images"] == r.manifest["kept"]
    assert tree_digest(data) == before


def test_rank_orders_every_image_and_drives_train_order(data, cache, tmp_path):
    kw = {k: v for k, v in FAST.items() if k != "measure_energy"}
    order = pipeline.rank(data, method="mms", cache=cache, **kw)
    images = sorted((data / "images" / "train").glob("*.jpg"))
    assert sorted(order) == images and order != images
    # the top of the order is class-balanced: the rare class shows up early
    from detprune.dataset import load_dataset

    rare = {r.image for r in load_dataset(data).split("train").records if 4 in r.classes.tolist()}
    assert rare & set(order[: len(order) // 4])

    from detprune.train import train

    res = train(data, model="yolov5n.yaml", epochs=1, imgsz=64, batch=16, workers=0,
                out=tmp_path / "run", measure_energy=False, val=False,
                schedule="step:0.3@1.0", order_by=order, order_name="mms").results
    assert res["images_seen"] == round(0.3 * len(images))
    assert res["schedule"]["order_by"] == "mms"  # what made the order, not just 'paths'


def test_broken_labels_are_reported_not_fatal(tmp_path, cache):
    src = tmp_path / "broken"
    shutil.copytree(SAMPLE_DATA, src)
    label = sorted((src / "labels" / "train").glob("*.txt"))[0]
    label.write_text("0 0.5 0.5 0.2\n9 0.1 0.1 0.1 0.1\n")
    img = sorted((src / "images" / "train").glob("*.jpg"))[1]
    img.write_bytes(img.read_bytes()[:400])
    before = tree_digest(src)
    r = pipeline.prune(src, method="mms", keep=0.3, out=tmp_path / "o", cache=tmp_path / "c", **FAST)
    src_info = r.manifest["source"]
    kinds = {(p["kind"], p["line"]) for p in src_info["problems"]}
    assert {("field-count", 1), ("class-id", 2)} <= kinds
    assert any(img.name in p for p in src_info["images_excluded_unreadable"])
    assert img.name not in (r.out / "train.txt").read_text()
    assert tree_digest(src) == before


def test_cli_embed_caches_and_saves(data, tmp_path, capsys):
    import numpy as np

    args = ["embed", str(data), "--weights", "yolov5n.yaml", "--imgsz", "64", "--quiet",
            "--cache", str(tmp_path / "c")]
    n = len(list((data / "images" / "train").glob("*.jpg")))
    assert main([*args, "--save", str(tmp_path / "e.npy")]) == 0
    assert f"({n} computed, 0 from cache, 0 failed)" in capsys.readouterr().out
    assert np.load(tmp_path / "e.npy").shape == (n, 448)
    # the row order beside it: the split's images, absolute paths, one per line
    listed = (tmp_path / "e.images.txt").read_text().splitlines()
    assert sorted(listed) == sorted(str(p) for p in (data / "images" / "train").glob("*.jpg"))
    assert all(Path(p).is_absolute() for p in listed)
    # row i is the embedding of listed[i]: a one-image dataset embeds it to the same vector
    one = tmp_path / "one"
    (one / "images" / "train").mkdir(parents=True)
    shutil.copy(listed[3], one / "images" / "train" / Path(listed[3]).name)
    (one / "data.yaml").write_text((data / "data.yaml").read_text().replace("images/val", "images/train"))
    solo = ["embed", str(one / "data.yaml"), *args[2:-1], str(tmp_path / "c2")]  # own cache
    assert main([*solo, "--save", str(tmp_path / "solo")]) == 0
    assert (tmp_path / "solo.images.txt").read_text() == f"{one / 'images' / 'train' / Path(listed[3]).name}\n"
    np.testing.assert_allclose(np.load(tmp_path / "solo")[0], np.load(tmp_path / "e.npy")[3], atol=1e-5)
    assert "rows in the order of" in capsys.readouterr().out
    assert main(args) == 0
    assert f"(0 computed, {n} from cache" in capsys.readouterr().out
    # --save never replaces a file of the dataset nor writes into its image/label folders
    image = sorted((data / "images" / "train").glob("*.jpg"))[0]
    before = tree_digest(data)
    for target, why in [(data / "data.yaml", "own files"), (image, "own files"),
                        (data / "labels" / "train" / "new.npy", "label folder"), (tmp_path, "is a folder")]:
        assert main([*args, "--save", str(target)]) == 1
        err = capsys.readouterr().err
        assert why in err and "internal error" not in err
    assert tree_digest(data) == before


@pytest.mark.parametrize("mode", ["list", "copy"])
def test_images_with_bad_lines_get_cleaned_labels_ultralytics_accepts(tmp_path, cache, mode):
    from ultralytics.data.utils import img2label_paths, verify_image_label

    src = tmp_path / "bad"
    shutil.copytree(SAMPLE_DATA, src)
    labels = sorted((src / "labels" / "train").glob("*.txt"))
    good = labels[0].read_text().splitlines()[0]
    labels[0].write_text(f"{good}\n0 0.5 0.5 0.2\n")  # a 4-field line: ultralytics drops the image
    labels[1].write_text(f"{good}\n7 0.1 0.1 0.1 0.1\n")  # class id out of range
    labels[2].write_text(f"{good}\n1 0.1 0.1 0.3 0.1 0.3 0.4\n")  # box and polygon rows mixed
    labels[3].write_text(f"{good}\n1 0.95 0.5 0.2 0.2\n")  # past the edge: ultralytics clips it
    before = tree_digest(src)
    r = pipeline.prune(src, method="srs", keep=1.0, out=tmp_path / "o", materialize=mode,
                       cache=cache, **FAST)
    cleaned = set(r.manifest["labels_cleaned"])
    assert cleaned == {f"images/train/{p.stem}.jpg" for p in labels[:3]}
    if mode == "list":
        listed = (r.out / "train.txt").read_text().split()
    else:
        listed = [str(p) for p in sorted((r.out / "images" / "train").rglob("*.jpg"))]
    assert len(listed) == r.manifest["kept"]
    first = [float(v) for v in good.split()]
    expected = {labels[0].stem: [first], labels[1].stem: [first],
                labels[2].stem: [first, [1, 0.2, 0.25, 0.2, 0.3]]}  # the polygon's box
    for img, lb in zip(listed, img2label_paths(listed), strict=True):
        if Path(img).stem in expected:
            assert Path(img).is_relative_to(r.out)  # listed from the output folder
            rows = [[float(v) for v in line.split()] for line in Path(lb).read_text().splitlines()]
            want = expected[Path(img).stem]
            assert len(rows) == len(want)
            assert all(a == pytest.approx(b, abs=1e-6) for a, b in zip(rows, want, strict=True))
        out = verify_image_label((img, lb, "", False, 5, 0, 0, False))
        assert out[0] is not None and out[8] == 0, (img, out[-1])  # not corrupt for ultralytics
    assert tree_digest(src) == before
    if mode == "list":  # rebuilding from the manifest cleans the same labels
        again = pipeline.export(r.out / "manifest.json", out=tmp_path / "again", materialize="symlink")
        assert set(again.manifest["labels_cleaned"]) == cleaned


@pytest.mark.parametrize("mode", ["list", "symlink", "hardlink"])
def test_jpegs_ultralytics_would_rewrite_are_copied(tmp_path, cache, mode):
    """ultralytics rewrites a JPEG with data after its end marker in place: never the source."""
    from ultralytics.data.utils import img2label_paths, verify_image_label

    src = tmp_path / "trail"
    shutil.copytree(SAMPLE_DATA, src)
    images = sorted((src / "images" / "train").glob("*.jpg"))
    for img in images[:2]:
        with open(img, "ab") as f:
            f.write(b"appended motion-photo video" * 50)
    before = tree_digest(src)
    r = pipeline.prune(src, method="srs", keep=1.0, out=tmp_path / "o", materialize=mode,
                       cache=cache, **FAST)
    assert set(r.manifest["images_copied"]) == {f"images/train/{p.name}" for p in images[:2]}
    kinds = {p["kind"] for p in r.manifest["source"]["problems"]}
    assert "jpeg-trailing-data" in kinds and "truncated-image" not in kinds
    if mode == "list":
        listed = (r.out / "train.txt").read_text().split()
    else:
        listed = [str(p) for p in sorted((r.out / "images" / "train").rglob("*.jpg"))]
    assert len(listed) == r.manifest["kept"] == len(images)
    rewritten = 0
    for img, lb in zip(listed, img2label_paths(listed), strict=True):
        out = verify_image_label((img, lb, "", False, 5, 0, 0, False))
        assert out[0] is not None and out[8] == 0, (img, out[-1])
        rewritten += "restored" in out[-1]
    assert rewritten == 2  # ultralytics did rewrite them: the copies under the output folder
    assert tree_digest(src) == before


def test_cli_prune_counts_problems_by_severity(tmp_path, capsys):
    src = tmp_path / "sample"
    shutil.copytree(SAMPLE_DATA, src)
    label = sorted((src / "labels" / "train").glob("*.txt"))[0]
    label.write_text(label.read_text() + "1 0.5 0.5 0.1\n")  # one bad line
    yml = src / "data.yaml"
    yml.write_text(yml.read_text().replace("val: images/val", "val: images/train"))  # overlap
    code = main([
        "prune", str(src), "--method", "srs", "--keep", "0.3", "--out", str(tmp_path / "o"),
        "--weights", "yolov5n.yaml", "--imgsz", "64", "--workers", "0", "--quiet",
        "--cache", str(tmp_path / "cache"), "--no-energy", "--no-eps",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    errors = m["source"]["problem_errors"]
    count = m["source"]["problem_count"]
    assert errors == 1 and count > errors  # the bad line; the overlap warnings
    assert f"{count} dataset problems ({errors} errors: those lines or images are left out; " \
           f"{count - errors} warnings)" in out


def test_refuses_an_output_that_would_replace_the_val_split(tmp_path, cache):
    """val (and test) live elsewhere: an --out --force over them is refused, not deleted."""
    src, other = tmp_path / "a", tmp_path / "b"
    shutil.copytree(SAMPLE_DATA, src)
    (other / "images").mkdir(parents=True)
    (other / "labels").mkdir()
    shutil.move(src / "images" / "val", other / "images" / "val")
    shutil.move(src / "labels" / "val", other / "labels" / "val")
    yml = src / "data.yaml"
    yml.write_text(yml.read_text().replace("val: images/val", f"val: {other / 'images' / 'val'}"))
    before = tree_digest(other)
    for out in (other, other / "images", tmp_path):
        with pytest.raises(OutputError, match="source"):
            pipeline.prune(src, method="srs", keep=0.3, out=out, force=True, cache=cache, **FAST)
    assert tree_digest(other) == before


def test_class_floor_refusal_names_the_options_before_embedding(data, cache, tmp_path, monkeypatch):
    def no_embedding(*a, **k):
        raise AssertionError("embedded before refusing")

    monkeypatch.setattr(pipeline, "_embed_records", no_embedding)
    with pytest.raises(ParameterError, match=r"--keep 0.001 keeps 1 of \d+ images .* class floor needs"):
        pipeline.prune(data, method="srs", keep=0.001, out=tmp_path / "x", cache=cache, **FAST)
    with pytest.raises(ParameterError, match=r"--budget 1 is below the \d+ images .*--min-per-class 1"):
        pipeline.prune(data, method="srs", budget=1, out=tmp_path / "x", cache=cache, **FAST)


def test_report_table_folds_classes_absent_from_the_split(data, cache, tmp_path):
    from detprune.cli import format_prune_report

    r = pipeline.prune(data, method="srs", keep=0.3, out=tmp_path / "o", cache=cache, **FAST)
    m = json.loads(json.dumps(r.manifest))
    present = [n for n, c in m["classes"].items() if c["images_before"] and n != "(background)"]
    for i in range(3):  # as in an 80-name dataset of which few classes occur
        m["classes"][f"absent{i}"] = {"images_before": 0, "images_after": 0, "boxes_before": 0, "boxes_after": 0}
    text = format_prune_report(m, r.out)
    assert all(f"  {n} " in text for n in present)
    assert "absent0" not in text and "(3 classes with no image in this split not shown)" in text


def test_export_works_from_any_folder_after_a_relative_prune(data, cache, tmp_path, monkeypatch):
    monkeypatch.chdir(data.parent)
    r = pipeline.prune(f"{data.name}/data.yaml", method="srs", keep=0.3, out=tmp_path / "a", cache=cache, **FAST)
    assert Path(r.manifest["source"]["yaml"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    e = pipeline.export(r.out / "manifest.json", out=tmp_path / "b", materialize="copy")
    assert len(list((e.out / "images" / "train").rglob("*.jpg"))) == r.manifest["kept"]


@pytest.mark.parametrize("cmd", ["prune", "embed"])
@pytest.mark.parametrize(("opt", "value", "says"), [
    ("--imgsz", "33", "The 'imgsz' parameter of {cmd} must be an int >= 32 and a multiple of 32. Got 33 instead."),
    ("--batch", "0", "The 'batch' parameter of {cmd} must be an int >= 1. Got 0 instead."),
    ("--device", "tpu", "The 'device' parameter of {cmd} must be 'auto', 'cpu', 'cuda', 'cuda:N' or an int. "
                        "Got 'tpu' instead."),
])
def test_embedding_options_are_checked_first_in_the_commands_terms(tmp_path, capsys, cmd, opt, value, says):
    # before the dataset is read (it does not exist here) and before the weights' fallback
    # warning: one line naming the command, not an internal function
    extra = ["--keep", "0.3", "--out", str(tmp_path / "o")] if cmd == "prune" else []
    assert main([cmd, str(tmp_path / "missing"), *extra, opt, value, "--weights", "auto"]) == 1
    err = capsys.readouterr().err
    assert err == f"detprune: error: {says.format(cmd=cmd)}\n"


def test_output_data_yaml_keeps_the_sources_class_names(tmp_path, cache):
    """Repeated names are made unique for the per-class reports only: a model trained on
    the pruned set must report the dataset's own names."""
    src = tmp_path / "rep"
    shutil.copytree(SAMPLE_DATA, src)
    text = (src / "data.yaml").read_text().replace("3: star", "3: circle").replace("4: ring", "4: 'yes'")
    (src / "data.yaml").write_text(text)
    r = pipeline.prune(src, method="srs", keep=0.3, out=tmp_path / "o", cache=cache, report_epsilon=False, **FAST)
    names = yaml.safe_load((r.out / "data.yaml").read_text())["names"]
    assert names == {0: "circle", 1: "square", 2: "triangle", 3: "circle", 4: "yes"}
    assert r.manifest["names"][3] == "circle (3)"  # reports stay keyed by unique names


def test_pose_dataset_prunes_with_its_boxes_and_keeps_kpt_shape(tmp_path, cache):
    """A pose dataset (kpt_shape) is pruned on the boxes of its rows, and the output
    data.yaml keeps kpt_shape: without it ultralytics reads pose rows as polygons."""
    src = tmp_path / "pose"
    shutil.copytree(SAMPLE_DATA, src)
    for lb in (src / "labels").rglob("*.txt"):
        rows = [f"{r} 0.5 0.5 2 0.4 0.6 1" for r in lb.read_text().splitlines() if r.strip()]
        lb.write_text("".join(f"{r}\n" for r in rows))
    (src / "data.yaml").write_text((src / "data.yaml").read_text() + "kpt_shape: [2, 3]\n")
    r = pipeline.prune(src, method="srs", keep=0.3, out=tmp_path / "o", cache=cache,
                       report_epsilon=False, **FAST)
    assert r.manifest["source"]["problem_errors"] == 0
    assert not r.manifest["labels_cleaned"]
    out_yaml = yaml.safe_load((r.out / "data.yaml").read_text())
    assert out_yaml["kpt_shape"] == [2, 3]
    # every box read: the same per-class box counts as the plain (box-row) dataset
    from collections import Counter

    from detprune.dataset import load_dataset

    ds = load_dataset(SAMPLE_DATA)
    plain = Counter(ds.names[c] for rec in ds.split("train").records for c in rec.classes.tolist())
    assert {k: v["boxes_before"] for k, v in r.manifest["classes"].items() if k in ds.names} == dict(plain)


def test_val_list_with_relative_entries_is_written_absolute(tmp_path, cache, monkeypatch):
    """ultralytics reads 'images/val/x.jpg' in a list against the working folder; detprune
    (and the dataset's author) against the list's folder. The output's val then lists the
    images absolute, so training works from any folder; a clean list is kept as it is."""
    src = tmp_path / "rel"
    shutil.copytree(SAMPLE_DATA, src)
    vals = sorted((src / "images" / "val").glob("*.jpg"))
    (src / "val.txt").write_text("".join(f"images/val/{p.name}\n" for p in vals))
    (src / "test.txt").write_text("".join(f"./images/val/{p.name}\n" for p in vals))
    (src / "data.yaml").write_text((src / "data.yaml").read_text().replace("val: images/val", "val: val.txt")
                                   + "test: test.txt\n")
    before = tree_digest(src)
    r = pipeline.prune(src, method="srs", keep=0.3, out=tmp_path / "o", cache=cache,
                       report_epsilon=False, **FAST)
    y = yaml.safe_load((r.out / "data.yaml").read_text())
    assert y["val"] == str(r.out / "val.txt") and y["test"] == str(src / "test.txt")
    assert (r.out / "val.txt").read_text().splitlines() == [str(p) for p in vals]
    # what ultralytics lists from another working folder
    from ultralytics.data.base import BaseDataset

    monkeypatch.chdir(tmp_path)
    listed = BaseDataset.get_img_files(type("D", (), {"prefix": "", "fraction": 1.0})(), y["val"])
    assert listed == [str(p) for p in vals]
    assert tree_digest(src) == before


def test_dedup_drops_copies_within_a_class_set_only_and_keeps_every_class(tmp_path, cache):
    """--dedup-threshold: an exact copy with the same classes is dropped, a copy labelled
    with other classes is not (it is not a duplicate for a detector), and even a threshold
    that covers everything leaves every class set one image, so no class vanishes."""
    src = tmp_path / "dup"
    shutil.copytree(SAMPLE_DATA, src)
    img = sorted((src / "images" / "train").glob("*.jpg"))[0]
    label = src / "labels" / "train" / f"{img.stem}.txt"
    shutil.copy(img, img.with_name("copy_same.jpg"))
    shutil.copy(label, label.with_name("copy_same.txt"))
    shutil.copy(img, img.with_name("copy_other.jpg"))
    other = {int(r.split()[0]) for r in label.read_text().splitlines()} ^ {0, 1, 2, 3, 4}
    (label.with_name("copy_other.txt")).write_text(f"{min(other)} 0.5 0.5 0.2 0.2\n")
    r = pipeline.prune(src, method="mms", keep=0.3, out=tmp_path / "o", cache=cache,
                       dedup_threshold=1e-4, report_epsilon=False, **FAST)
    dropped = r.manifest["selection_settings"]["dedup"]["dropped_images"]
    assert len(dropped) == 1 and Path(dropped[0]).stem in (img.stem, "copy_same")
    # everything within the threshold: one image per class set remains, every class kept
    r = pipeline.prune(src, method="srs", budget=8, out=tmp_path / "o2", cache=cache,
                       dedup_threshold=100.0, report_epsilon=False, **FAST)
    import numpy as np

    from detprune.dataset import box_statistics, load_dataset

    recs = load_dataset(src).split("train").records
    sets = {tuple(np.flatnonzero(p)) for p in box_statistics(recs, 5).presence}
    assert r.manifest["selection_settings"]["dedup"]["dropped"] == len(recs) - len(sets)
    assert all(c["images_after"] >= 1 for k, c in r.manifest["classes"].items() if k != "(background)")
    with pytest.raises(ParameterError, match=rf"only {len(sets)} images remain after removing "
                       r"near-duplicates \(--dedup-threshold 100\); the budget of 300 is larger"):
        pipeline.prune(src, method="srs", budget=300, out=tmp_path / "o3", cache=cache,
                       dedup_threshold=100.0, report_epsilon=False, **FAST)


def test_epsilon_is_undefined_not_zero_when_no_image_has_a_box(make_dataset, tmp_path, capsys):
    y = make_dataset({"train": {f"i{k}": "" for k in range(12)}})  # background images only
    assert main(["prune", str(y), "--method", "srs", "--keep", "0.5", "--imgsz", "64", "--weights",
                 "yolov5n.yaml", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c"),
                 "--no-energy"]) == 0
    assert "epsilon: n/a (no image of the split has a box)" in capsys.readouterr().out
    eps = json.loads((tmp_path / "o" / "manifest.json").read_text())["epsilon"]
    assert eps["eps_linf"] is None and eps["eps_l2"] is None and eps["mean_l2"] is None
    assert eps["warnings"] == ["no image of the split has a box: ε is undefined"]


def test_embed_save_never_overwrites_a_file_of_another_split(make_dataset, tmp_path, capsys):
    """embed reads one split, but --save must not replace another split's list (or the
    list beside the matrix, FILE.images.txt) either."""
    y = make_dataset({"train": {f"t{k}": "0 0.5 0.5 0.2 0.2\n" for k in range(4)},
                      "val": {f"v{k}": "1 0.5 0.5 0.2 0.2\n" for k in range(3)}})
    root = y.parent
    for split in ("train", "val"):
        imgs = sorted((root / "images" / split).glob("*.jpg"))
        (root / "lists").mkdir(exist_ok=True)
        (root / "lists" / f"{split}.images.txt").write_text("".join(f"{p}\n" for p in imgs))
    y.write_text(y.read_text().replace("train: images/train", "train: lists/train.images.txt")
                 .replace("val: images/val", "val: lists/val.images.txt"))
    before = tree_digest(root)
    base = ["embed", str(y), "--weights", "yolov5n.yaml", "--imgsz", "64", "--quiet",
            "--cache", str(tmp_path / "c")]
    for extra in (["--save", str(root / "lists" / "val.npy")],            # its list beside it
                  ["--save", str(root / "lists" / "val.images.txt")],     # the list itself
                  ["--split", "val", "--save", str(root / "lists" / "train.npy")],
                  ["--save", str(root / "images" / "val" / "e.npy")]):   # an image folder of val
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert "write the" in err and "internal error" not in err
    assert tree_digest(root) == before


@pytest.mark.parametrize(("value", "says"), [
    ("0", "must name an available device. Got '0' instead (CUDA is not available)."),
    ("cuda:3", "must name an available device. Got 'cuda:3' instead (CUDA is not available)."),
    ("mps", "must name an available device. Got 'mps' instead (MPS is not available)."),
    ("meta", "must be 'auto', 'cpu', 'cuda', 'cuda:N' or an int. Got 'meta' instead."),
])
def test_unavailable_devices_are_refused_up_front(tmp_path, capsys, value, says):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this host has an accelerator")
    assert main(["embed", str(tmp_path / "missing"), "--device", value]) == 1
    assert capsys.readouterr().err == f"detprune: error: The 'device' parameter of embed {says}\n"


def test_an_infinite_dedup_threshold_is_refused(tmp_path):
    with pytest.raises(ParameterError, match=r"^The 'dedup_threshold' parameter of prune must be a finite "
                       r"float > 0 or None\. Got inf instead\.$"):
        pipeline.prune(SAMPLE_DATA, keep=0.3, dedup_threshold=float("inf"), out=tmp_path / "o", **FAST)


def test_library_calls_with_wrong_types_are_parameter_errors(tmp_path):
    from detprune.select import get_reducer

    with pytest.raises(ParameterError, match=r"^The 'method_params' parameter of prune must be None or a "
                       r"mapping .* Got list instead\.$"):
        pipeline.prune(SAMPLE_DATA, keep=0.3, method_params=[("niter", 3)], out=tmp_path / "o", **FAST)
    for bad in (None, 3):
        with pytest.raises(ParameterError, match=r"^The 'data' parameter of prune must be a path"):
            pipeline.prune(bad, keep=0.3, out=tmp_path / "o", **FAST)
    with pytest.raises(ParameterError, match="The 'method' parameter of detprune must be one of"):
        get_reducer(["mms"])
    # rank checks its own parameters before embedding anything (the dataset is missing here)
    for kw, name in (({"min_stratum_size": 0}, "min_stratum_size"), ({"box_weight": 2.0}, "box_weight"),
                     ({"seed": -1}, "seed"), ({"imgsz": 33}, "imgsz")):
        with pytest.raises(ParameterError, match=rf"^The '{name}' parameter of rank must be"):
            pipeline.rank(tmp_path / "missing", method="mms", **kw)


def test_a_folder_that_appears_during_the_run_is_never_replaced(data, cache, tmp_path, monkeypatch):
    """--out is checked at the start and again when the result is put in place: a folder
    made meanwhile (the user's, or another run's without --force) stays as it is."""
    import detprune.export

    real = detprune.export.materialize_split
    out = tmp_path / "o"

    def meanwhile(*a, **k):
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        return real(*a, **k)

    monkeypatch.setattr(detprune.export, "materialize_split", meanwhile)
    with pytest.raises(OutputError, match="appeared while this run was writing"):
        pipeline.prune(data, method="srs", keep=0.3, out=out, cache=cache, **FAST)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no temporary folder left
    # with --force, a folder of the user's that appeared is not replaced either
    with pytest.raises(OutputError, match="appeared while this run was writing"):
        shutil.rmtree(out)
        pipeline.prune(data, method="srs", keep=0.3, out=out, cache=cache, force=True, **FAST)
    assert (out / "notes.txt").read_text() == "mine"


def test_sigterm_and_sighup_stop_a_run_like_ctrl_c():
    import os
    import signal

    from detprune._interrupt import install

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        install()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), sig)
                signal.sigtimedwait([], 0.5) if hasattr(signal, "sigtimedwait") else None
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_embed_save_beside_a_folder_named_like_its_list_writes_nothing(make_dataset, tmp_path, capsys):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    (tmp_path / "e.images.txt").mkdir()
    assert main(["embed", str(y), "--weights", "yolov5n.yaml", "--imgsz", "64", "--quiet",
                 "--cache", str(tmp_path / "c"), "--save", str(tmp_path / "e.npy")]) == 1
    assert "e.images.txt is a folder; give a file name for --save" in capsys.readouterr().err
    assert not (tmp_path / "e.npy").exists()
    with pytest.raises(ParameterError, match=r"^The 'seed' parameter of prune must be an int in \[0, "):
        pipeline.prune(y, keep=0.5, seed=2**64, out=tmp_path / "o", **FAST)
