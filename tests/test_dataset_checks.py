"""Every bad-input case produces its specific report entry, with file and line."""

from __future__ import annotations

import shutil

import pytest
from conftest import tree_digest, write_image, write_text
from hypothesis import given, settings
from hypothesis import strategies as st

from detprune.dataset import load_dataset, parse_label_text


def kinds(problems):
    return [(p.kind, p.line) for p in problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 0.5 0.5 0.2\n", [("field-count", 1)]),
        ("0 0.5 0.5 0.2 0.2 0.1\n", [("field-count", 1)]),
        ("0 0.5 zero 0.2 0.2\n", [("non-numeric", 1)]),
        ("0 0.5 nan 0.2 0.2\n", [("non-numeric", 1)]),
        ("3 0.5 0.5 0.2 0.2\n", [("class-id", 1)]),
        ("-1 0.5 0.5 0.2 0.2\n", [("class-id", 1)]),
        ("1.5 0.5 0.5 0.2 0.2\n", [("class-id", 1)]),
        ("0 1.5 0.5 0.2 0.2\n", [("out-of-bounds", 1)]),
        ("0 0.5 -0.02 0.2 0.2\n", [("out-of-bounds", 1)]),
        ("0 0.5 0.5 1.02 0.2\n", [("out-of-bounds", 1)]),
        ("0 1.005 0.5 0.009 0.2\n", [("out-of-bounds", 1)]),  # nothing left inside
        ("0 0.95 0.5 0.2 0.2\n", [("clipped-box", 1)]),  # ultralytics keeps and clips it
        ("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.3 0.1 0.3 0.4\n", [("mixed-rows", None)]),
        ("0 0.5 0.5 0 0.2\n", [("box-size", 1)]),
        ("0 0.5 0.5 0.2 -0.1\n", [("box-size", 1)]),
        ("0 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0.2 0.2\n", [("duplicate-box", 3)]),
    ],
)
def test_each_bad_line_is_reported(text, expected):
    classes, _boxes, problems = parse_label_text(text, 3, "x.txt")
    assert kinds(problems) == expected
    assert all(p.file == "x.txt" for p in problems)
    # warnings keep the line (a duplicate its first copy); errors drop it
    kept = {"duplicate-box": 1, "clipped-box": 1, "mixed-rows": 2}.get(expected[0][0], 0)
    assert len(classes) == kept


def test_good_lines_survive_next_to_bad_ones():
    text = "0 0.5 0.5 0.2 0.2\nbad line\n2 0.1 0.1 0.2 0.2\n1 0.5 0.5 0.0004 1.0005\n"
    classes, boxes, problems = parse_label_text(text, 3, "x.txt")
    assert classes.tolist() == [0, 2, 1]
    assert kinds(problems) == [("field-count", 2)]
    assert boxes.max() <= 1.0 and boxes.min() >= 0.0  # tolerance is clipped


def test_polygon_lines_become_boxes():
    _classes, boxes, problems = parse_label_text("1 0.1 0.2 0.5 0.2 0.5 0.6 0.1 0.6\n", 3, "x.txt")
    assert not problems
    assert boxes[0].tolist() == pytest.approx([0.3, 0.4, 0.4, 0.4])


def test_problems_in_a_loaded_dataset(make_dataset, tmp_path):
    y = make_dataset(
        {"train": {"ok": "0 0.5 0.5 0.2 0.2\n", "bad": "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n"}}
    )
    root = y.parent
    write_text(root / "labels/train/orphan.txt", "0 0.5 0.5 0.2 0.2\n")
    (root / "images/train/trunc.jpg").write_bytes((root / "images/train/ok.jpg").read_bytes()[:300])
    (root / "images/train/junk.png").write_bytes(b"this is not a png")
    shutil.copy(root / "images/train/ok.jpg", root / "images/train/copy.jpg")
    before = tree_digest(root)

    split = load_dataset(y).split("train")
    found = {(p.kind, p.file.split("/")[-1], p.line) for p in split.problems}
    assert ("class-id", "bad.txt", 2) in found
    assert ("orphan-label", "orphan.txt", None) in found
    assert ("truncated-image", "trunc.jpg", None) in found or ("unreadable-image", "trunc.jpg", None) in found
    assert ("unreadable-image", "junk.png", None) in found
    dup = [p for p in split.problems if p.kind == "duplicate-image"]
    assert len(dup) == 1  # the later of the pair, naming the first
    assert {dup[0].file.split("/")[-1], dup[0].message.split("/")[-1]} == {"ok.jpg", "copy.jpg"}
    names = {r.image.name for r in split.records}
    assert names == {"ok.jpg", "bad.jpg", "copy.jpg"}  # unreadable images left out
    assert {p.split("/")[-1] for p in split.excluded} == {"trunc.jpg", "junk.png"}
    assert tree_digest(root) == before  # nothing modified


def test_jpeg_missing_end_marker_is_truncated(tmp_path):
    img = write_image(tmp_path / "ds/images/train/a.jpg", 200, 200)
    data = img.read_bytes()
    img.write_bytes(data[: len(data) - 600])
    split = load_dataset(tmp_path / "ds").split("train")
    assert [p.kind for p in split.problems] == ["truncated-image"]
    assert len(split) == 0


def test_identical_images_across_splits_flagged(make_dataset):
    box = "0 0.5 0.5 0.2 0.2\n"
    y = make_dataset({"train": {"a": box}, "val": {"a": box}})  # same seed -> same bytes
    val = load_dataset(y).split("val")
    assert [p.kind for p in val.problems] == ["duplicate-image"]
    assert "two splits" in val.problems[0].message


def test_non_utf8_label(make_dataset):
    y = make_dataset({"train": {"a": None}})
    (y.parent / "labels/train").mkdir(parents=True)
    (y.parent / "labels/train/a.txt").write_bytes(b"\xff\xfe\x00garbage")
    split = load_dataset(y).split("train")
    assert [p.kind for p in split.problems] == ["unreadable-label"]
    # nothing is known of its boxes: left out, not counted as a background image
    assert len(split) == 0 and split.excluded[0].endswith("a.jpg")


def test_check_images_off_skips_probing(make_dataset):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    (y.parent / "images/train/junk.jpg").write_bytes(b"nope")
    split = load_dataset(y, check_images=False).split("train")
    assert len(split) == 2 and not split.problems


def test_clipped_box_matches_ultralytics_clipping():
    _classes, boxes, problems = parse_label_text("0 0.95 0.5 0.2 0.2\n", 3, "x.txt")
    assert kinds(problems) == [("clipped-box", 1)] and problems[0].severity == "warning"
    assert boxes[0].tolist() == pytest.approx([0.925, 0.5, 0.15, 0.2])


def test_byte_order_mark_is_ignored(tmp_path):
    from detprune.dataset.yolo import read_label_file

    p = tmp_path / "bom.txt"
    p.write_bytes("0 0.5 0.5 0.2 0.2\r\n1 0.2 0.2 0.1 0.1\r\n".encode("utf-8-sig"))
    classes, _boxes, problems = read_label_file(p, 3)
    assert classes.tolist() == [0, 1] and problems == []


def test_split_without_any_label_file_is_explained(tmp_path):
    # labels beside 'imgs/' instead of 'images/': ultralytics pairs none of them
    for i in range(3):
        write_image(tmp_path / "imgs" / "train" / f"a{i}.jpg", seed=i)
        write_text(tmp_path / "labels" / "train" / f"a{i}.txt", "0 0.5 0.5 0.2 0.2\n")
    write_text(tmp_path / "data.yaml", "train: imgs/train\nnames: [x]\n")
    split = load_dataset(tmp_path / "data.yaml").split("train")
    (p,) = [p for p in split.problems if p.kind == "no-labels"]
    assert p.severity == "warning" and "'/images/'" in p.message
    assert "labels/train/a0.txt" in p.message  # where a matching label file was seen
    assert all(r.label is None for r in split.records)


def test_tiny_image_is_left_out(tmp_path):
    """ultralytics skips images under 10 pixels a side: they must not take a budget slot."""
    write_image(tmp_path / "ds/images/train/tiny.jpg", 9, 40)
    write_image(tmp_path / "ds/images/train/ok.jpg", 10, 10)
    for stem in ("tiny", "ok"):
        write_text(tmp_path / f"ds/labels/train/{stem}.txt", "0 0.5 0.5 0.2 0.2\n")
    split = load_dataset(tmp_path / "ds").split("train")
    assert [(p.kind, p.file.split("/")[-1]) for p in split.problems] == [("tiny-image", "tiny.jpg")]
    assert "9x40" in split.problems[0].message
    assert [r.image.name for r in split.records] == ["ok.jpg"]


def test_image_in_a_format_ultralytics_rejects_is_left_out(tmp_path):
    from PIL import Image

    (tmp_path / "ds/images/train").mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "ds/images/train/gif.png", format="GIF")
    write_image(tmp_path / "ds/images/train/ok.png", 32, 32)
    for stem in ("gif", "ok"):
        write_text(tmp_path / f"ds/labels/train/{stem}.txt", "0 0.5 0.5 0.2 0.2\n")
    split = load_dataset(tmp_path / "ds").split("train")
    assert [(p.kind, p.file.split("/")[-1]) for p in split.problems] == [("image-format", "gif.png")]
    assert [r.image.name for r in split.records] == ["ok.png"]


def test_tiffs_opencv_cannot_decode_are_left_out(tmp_path):
    """32-bit integer and float TIFFs: PIL opens them, OpenCV (ultralytics' reader) does
    not; 8- and 16-bit TIFFs are fine."""
    import cv2
    import numpy as np
    from PIL import Image

    d = tmp_path / "ds/images/train"
    d.mkdir(parents=True)
    a = (np.arange(32 * 32).reshape(32, 32) % 251).astype(np.int32)
    Image.fromarray(a, mode="I").save(d / "i32.tif")
    Image.fromarray(a.astype(np.float32), mode="F").save(d / "f32.tif")
    Image.fromarray(a.astype(np.uint16)).save(d / "u16.tif")
    Image.fromarray(a.astype(np.uint8)).save(d / "u8.tif")
    for stem in ("i32", "f32", "u16", "u8"):
        write_text(tmp_path / f"ds/labels/train/{stem}.txt", "0 0.5 0.5 0.2 0.2\n")
    split = load_dataset(tmp_path / "ds").split("train")
    left_out = sorted(p.file.split("/")[-1] for p in split.problems if p.kind == "image-format")
    assert left_out == ["f32.tif", "i32.tif"]
    kept = sorted(r.image.name for r in split.records)
    assert kept == ["u16.tif", "u8.tif"]
    assert all(cv2.imread(str(d / k)) is not None for k in kept)  # what ultralytics reads


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_probe_size_is_the_displayed_size(tmp_path, fmt):
    """EXIF orientation 6 (90 degrees) swaps width and height, as ultralytics' exif_size does."""
    from PIL import Image

    from detprune.dataset.checks import probe_image

    img = Image.new("RGB", (60, 40), (10, 120, 200))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / f"rot.{fmt}", exif=exif)
    img.save(tmp_path / f"plain.{fmt}")
    rot, plain = probe_image(tmp_path / f"rot.{fmt}"), probe_image(tmp_path / f"plain.{fmt}")
    assert (rot.width, rot.height, rot.problem) == (40, 60, None)
    assert (plain.width, plain.height, plain.problem) == (60, 40, None)


def test_splits_sharing_files_are_flagged(make_dataset):
    box = "0 0.5 0.5 0.2 0.2\n"
    y = make_dataset({"train": {"a": box, "b": box}})
    (y.parent / "same.yaml").write_text("train: images/train\nval: images/train\nnames: [a, b, c]\n")
    ds = load_dataset(y.parent / "same.yaml")
    for split in ("train", "val"):
        overlap = [p for p in ds.split(split).problems if p.kind == "split-overlap"]
        assert len(overlap) == 1 and "2 images are in both split 'train' and split 'val'" in overlap[0].message
    assert not [p for p in load_dataset(y).split("train").problems if p.kind == "split-overlap"]


# --------------------------------------------------------------------- the vectorised fast path

_values = st.one_of(
    st.floats(-0.05, 1.05, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1.01, -0.01, 1.001, -0.001, 1e-7, 0.0000005]),
)
_fmt = st.sampled_from(["{:.6f}", "{!r}", "{:.3e}", "{:g}", "{:.2f}"])


@st.composite
def _label_text(draw):
    if draw(st.booleans()):  # mostly clean files: the fast path's own ground
        centre, size = st.floats(0.1, 0.9), st.floats(0.001, 0.2)
        rows = [
            " ".join([draw(st.sampled_from(["0", "1", "2"]))]
                     + [draw(_fmt).format(draw(v)) for v in (centre, centre, size, size)])
            for _ in range(draw(st.integers(1, 8)))
        ]
        if draw(st.booleans()):  # a box just past an edge: clipped silently (within 1e-3)
            w, over = draw(size), draw(st.floats(0.0, 0.00099))
            xc = w / 2 - over if draw(st.booleans()) else 1 - w / 2 + over
            rows.append(f"1 {xc!r} 0.5 {w!r} 0.1")
        if draw(st.integers(0, 3)) == 0:
            rows.append(draw(st.sampled_from(rows)))  # a duplicate
        return "\n".join(rows) + "\n"
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["box"] * 6 + ["again", "polygon", "blank", "junk", "class"]))
        if kind == "again" and lines:
            lines.append(draw(st.sampled_from(lines)))
            continue
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
            continue
        if kind == "junk":
            lines.append(draw(st.sampled_from(["0 0.5 0.5 0.2", "a b c d e", "0 nan 0.5 0.1 0.1", "0 1_0 0.5 0.1 0.1"])))
            continue
        n = 6 if kind == "polygon" else 4
        vals = [draw(_fmt).format(draw(_values)) for _ in range(n)]
        c = draw(st.sampled_from(["0", "1", "2", "2.0", "-0", "3", "1.5"]) if kind == "class" else st.sampled_from(["0", "1", "2"]))
        sep = draw(st.sampled_from([" ", "\t", "  "]))
        lines.append(sep.join([c, *vals]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + draw(st.sampled_from(["", end]))


@settings(max_examples=400, deadline=None)
@given(_label_text())
def test_fast_path_equals_the_line_by_line_parse(text):
    from detprune.dataset import yolo

    real_rows = yolo._FAST_ROWS
    try:
        yolo._FAST_ROWS = 0  # every file tries the fast path
        got = parse_label_text(text, 3, "x.txt")
    finally:
        yolo._FAST_ROWS = real_rows
    real = yolo._parse_clean
    try:
        yolo._parse_clean = lambda *a: None
        want = parse_label_text(text, 3, "x.txt")
    finally:
        yolo._parse_clean = real
    assert got[0].dtype == want[0].dtype and got[1].dtype == want[1].dtype
    assert got[0].tobytes() == want[0].tobytes()
    assert got[1].shape == want[1].shape and got[1].tobytes() == want[1].tobytes()
    assert got[2] == want[2]


def test_fast_path_is_taken_for_clean_files_only():
    from detprune.dataset.yolo import _parse_clean

    assert _parse_clean("0 0.5 0.5 0.2 0.2\n1 0.2 0.3 0.1 0.1\n", 3) is not None
    for bad in ("0 0.5 0.5 0.2\n", "0 0.95 0.5 0.2 0.2\n", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n",
                "3 0.5 0.5 0.2 0.2\n", "0 0.1 0.1 0.3 0.1 0.3 0.4\n"):
        assert _parse_clean(bad, 3) is None


def test_load_leaves_the_garbage_collector_as_it_was(make_dataset, tmp_path):
    import gc

    from detprune.errors import DatasetError

    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    assert gc.isenabled()
    load_dataset(y)
    assert gc.isenabled()
    with pytest.raises(DatasetError):
        load_dataset(tmp_path / "missing")
    assert gc.isenabled()
    gc.disable()
    try:
        load_dataset(y)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_image_gone_before_hashing_is_no_duplicate(make_dataset, monkeypatch):
    """A file removed between its probe and the duplicate check: no traceback, no group."""
    from detprune.dataset import checks

    box = "0 0.5 0.5 0.2 0.2\n"
    y = make_dataset({"train": {"a": box}, "val": {"a": box}})  # identical bytes
    real = checks._file_digest

    def vanished(path):
        if "val" in str(path):
            raise_path = path.with_name("gone.jpg")
            return real(raise_path)  # a path that does not exist
        return real(path)

    monkeypatch.setattr(checks, "_file_digest", vanished)
    ds = load_dataset(y)
    assert not [p for p in ds.all_problems() if p.kind == "duplicate-image"]


def test_images_listed_by_two_splits_are_checked_once(make_dataset, monkeypatch):
    from detprune.dataset import load

    box = "0 0.5 0.5 0.2 0.2\n"
    y = make_dataset({"train": {"a": box, "b": box + "9 0.5 0.5 0.1 0.1\n", "c": None}},
                     yaml_text="train: images/train\nval: images/train\nnames: [x, y, z]\n")
    calls = {"label": 0, "probe": 0}
    real_label, real_probe = load.read_label_file, load.probe_image

    def label(*a):
        calls["label"] += 1
        return real_label(*a)

    def probe(*a):
        calls["probe"] += 1
        return real_probe(*a)

    monkeypatch.setattr(load, "read_label_file", label)
    monkeypatch.setattr(load, "probe_image", probe)
    ds = load_dataset(y, cache=False)
    assert calls == {"label": 2, "probe": 3}  # once per file, not once per split
    train, val = ds.split("train"), ds.split("val")
    assert [r.image for r in train.records] == [r.image for r in val.records]
    assert [r.classes.tolist() for r in val.records] == [[0], [0], []]
    assert [p.kind for p in val.problems if p.kind != "split-overlap"] == ["class-id"]


def test_unlistable_file_names_are_reported_and_left_out(make_dataset, capsys):
    """A name with a line break (it would split its train.txt line) or with bytes that
    are not UTF-8 (no UTF-8 list or manifest can hold it): one error entry each, printed
    with escapes; the other images load; the CLI prints no traceback."""
    import os

    from detprune.cli import main

    y = make_dataset({"train": {"ok": "0 0.5 0.5 0.2 0.2\n"}})
    train = y.parent / "images" / "train"
    for raw in (b"new\nline.jpg", b"lat\xe9.jpg"):
        name = os.fsdecode(raw)
        shutil.copy(train / "ok.jpg", train / name)
        write_text(y.parent / "labels" / "train" / (name[:-4] + ".txt"), "1 0.5 0.5 0.2 0.2\n")
    ds = load_dataset(y)
    assert [r.image.name for r in ds.split("train").records] == ["ok.jpg"]
    bad = [p for p in ds.split("train").problems if p.kind == "file-name"]
    assert sorted(p.file.rsplit("/", 1)[1] for p in bad) == ["lat\\xe9.jpg", "new\\nline.jpg"]
    assert all(p.severity == "error" for p in bad)
    assert not [p for p in ds.split("train").problems if p.kind == "orphan-label"]
    assert len(ds.split("train").excluded) == 2  # counted as left out
    assert main(["inspect", str(y)]) == 0
    out = capsys.readouterr().out
    assert "lat\\xe9.jpg: error: file name is not valid UTF-8" in out
    assert "new\\nline.jpg: error: file name holds a line break" in out


def test_missing_train_split_and_empty_splits_are_warned(make_dataset, tmp_path):
    y = make_dataset({"val": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    (y.parent / "images" / "test").mkdir()
    y.write_text(y.read_text() + "test: images/test\n")
    kinds = sorted((p.kind, p.message) for p in load_dataset(y).all_problems())
    assert kinds == [("empty-split", "split 'test' has no images"),
                     ("no-train-split", "no 'train' split: ultralytics cannot train on this dataset")]
    assert not load_dataset(y, splits=["val"]).all_problems()  # asked for val only: nothing to say


def test_repeated_class_names_are_made_unique_and_warned(make_dataset):
    """Per-class reports are keyed by name: a repeated name would merge two classes."""
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n", "b": "1 0.5 0.5 0.2 0.2\n"}}, names=("cat", "cat"))
    ds = load_dataset(y)
    assert ds.names == ("cat", "cat (1)")
    assert [p.kind for p in ds.all_problems()] == ["duplicate-class-name"]
    assert ds.yaml_names == ("cat", "cat")  # what outputs write: the dataset's own names
    y.write_text(y.read_text().replace("1: cat", "1: dog"))
    assert load_dataset(y).source_names is None and load_dataset(y).yaml_names == ("cat", "dog")


def test_label_path_that_is_a_folder_is_warned(make_dataset):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n", "b": None}})
    (y.parent / "labels" / "train" / "b.txt").mkdir()
    split = load_dataset(y).split("train")
    assert [(p.kind, p.severity) for p in split.problems] == [("label-is-folder", "warning")]
    assert [r.label is None for r in split.records] == [False, True]  # background, as ultralytics
