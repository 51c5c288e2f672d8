"""YOLO reading: yaml forms, pairing rules, image types."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write_image, write_text

from detprune.dataset import label_path_for, load_dataset
from detprune.errors import DatasetError

BOX = "0 0.5 0.5 0.2 0.2\n"


def test_names_as_list_and_dict(make_dataset, tmp_path):
    y = make_dataset({"train": {"a": BOX}}, yaml_text="train: images/train\nnames: [cat, dog]\n")
    assert load_dataset(y).names == ("cat", "dog")
    y.write_text("train: images/train\nnames:\n  1: dog\n  0: cat\n")
    assert load_dataset(y).names == ("cat", "dog")


def test_yaml_without_path_resolves_against_yaml_folder(make_dataset, tmp_path, monkeypatch):
    y = make_dataset({"train": {"a": BOX, "b": None}, "val": {"c": BOX}})
    monkeypatch.chdir(tmp_path.parent)  # somewhere else entirely
    ds = load_dataset(y)
    assert set(ds.splits) == {"train", "val"}
    assert len(ds.split("train")) == 2
    assert ds.root == y.parent.resolve()


def test_yaml_with_absolute_and_relative_path(make_dataset, tmp_path):
    make_dataset({"train": {"a": BOX}}, root=tmp_path / "data" / "set")
    other = write_text(tmp_path / "cfg" / "d.yaml", f"path: {tmp_path / 'data' / 'set'}\ntrain: images/train\nnames: [x]\n")
    assert len(load_dataset(other).split("train")) == 1
    rel = write_text(tmp_path / "data" / "d2.yaml", "path: set\ntrain: images/train\nnames: [x]\n")
    assert len(load_dataset(rel).split("train")) == 1


def test_list_of_folders_and_txt_list(make_dataset, tmp_path):
    root = tmp_path / "ds"
    y = make_dataset({"train": {"a": BOX, "b": BOX}, "extra": {"c": BOX}})
    y.write_text("train: [images/train, images/extra]\nnames: [cat]\n")
    assert len(load_dataset(y).split("train")) == 3
    write_text(root / "train.txt", "./images/train/a.jpg\n" + str(root / "images/extra/c.jpg") + "\n\n")
    y.write_text("train: train.txt\nnames: [cat]\n")
    ds = load_dataset(y)
    assert [r.image.name for r in ds.split("train").records] == ["a.jpg", "c.jpg"]
    assert ds.split("train").records[0].label == root / "labels/train/a.txt"


def test_txt_list_missing_image_reported_with_line(make_dataset, tmp_path):
    root = tmp_path / "ds"
    y = make_dataset({"train": {"a": BOX}})
    write_text(root / "train.txt", "./images/train/a.jpg\n./images/train/gone.jpg\n")
    y.write_text("train: train.txt\nnames: [cat]\n")
    problems = load_dataset(y).split("train").problems
    assert [(p.kind, p.line) for p in problems] == [("missing-image", 2)]
    assert problems[0].file.endswith("train.txt")


def test_pairing_rule_matches_ultralytics():
    p = Path(os.sep, "d", "images", "x", "images", "train", "a.b.JPG")
    assert label_path_for(p) == Path(os.sep, "d", "images", "x", "labels", "train", "a.b.txt")
    assert label_path_for(Path("/d/pics/a.jpg")) == Path("/d/pics/a.txt")


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".PNG"])
def test_image_types(make_dataset, suffix):
    y = make_dataset({"train": {"a": BOX}}, suffix=suffix)
    rec = load_dataset(y).split("train").records[0]
    assert (rec.width, rec.height) == (64, 48)
    assert rec.n_boxes == 1


def test_grayscale_and_rgba_are_valid(tmp_path):
    root = tmp_path / "ds"
    write_image(root / "images/train/g.png", mode="L")
    write_image(root / "images/train/r.png", mode="RGBA")
    write_text(root / "labels/train/g.txt", BOX)
    ds = load_dataset(root)
    assert len(ds.split("train")) == 2
    assert not ds.all_problems()


def test_background_images(make_dataset):
    y = make_dataset({"train": {"nolabel": None, "empty": "", "blank": "\n\n", "box": BOX}})
    split = load_dataset(y).split("train")
    bg = {r.image.stem for r in split.records if r.is_background}
    assert bg == {"nolabel", "empty", "blank"}
    assert not split.problems


def test_bare_folder_with_and_without_splits(tmp_path):
    root = tmp_path / "bare"
    write_image(root / "images/a.jpg")
    write_text(root / "labels/a.txt", "4 0.5 0.5 0.1 0.1\n")
    ds = load_dataset(root)
    assert list(ds.splits) == ["train"] and ds.names == ("0", "1", "2", "3", "4")
    write_text(root / "classes.txt", "a\nb\nc\nd\ne\n")
    assert load_dataset(root).names == ("a", "b", "c", "d", "e")
    # a byte-order mark (Windows editors) is not part of the first name; CRLF lines
    (root / "classes.txt").write_bytes("\ufeff猫\r\nb\r\n\r\nc\r\nd\r\ne\r\n".encode())
    assert load_dataset(root).names == ("猫", "b", "c", "d", "e")
    # not UTF-8: one line naming the file, not a UnicodeDecodeError
    (root / "classes.txt").write_bytes(b"caf\xe9\nb\nc\nd\ne\n")
    with pytest.raises(DatasetError, match=r"classes\.txt: class names are not UTF-8 text \(byte 3"):
        load_dataset(root)
    split_root = tmp_path / "bare2"
    write_image(split_root / "images/train/a.jpg")
    write_image(split_root / "images/val/b.jpg")
    assert set(load_dataset(split_root).splits) == {"train", "val"}


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        ("train: images/train\n", "missing 'names'"),
        ("names: [a]\n", "no 'train'"),
        ("train: [images/train\nnames: [a]\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("train: images/nowhere\nnames: [a]\n", "does not exist"),
        ("train: images/train\nnames: {0: a, 2: b}\n", "class ids"),
        ("train: images/train\nnc: 3\nnames: [a]\n", "'nc' is 3"),
        ("train: images/train\nnc: 3.0\nnames: [a, b]\n", "'nc' is 3.0"),
        ("train: images/train\nnc: true\n", "missing 'names'"),
    ],
)
def test_bad_yaml_is_one_clear_error(make_dataset, yaml_text, match):
    y = make_dataset({"train": {"a": BOX}}, yaml_text=yaml_text)
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset(y)
    assert "\n" not in str(info.value)


def test_unknown_split_and_missing_path(make_dataset, tmp_path):
    y = make_dataset({"train": {"a": BOX}})
    with pytest.raises(DatasetError, match="no split named val"):
        load_dataset(y, splits=["val"])
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetError, match=r"no data\.yaml and no images/"):
        load_dataset(tmp_path)


def test_shared_bccd_loads_cleanly():
    from conftest import BCCD

    if not BCCD.exists():
        pytest.skip("../shared/data/bccd not present")
    ds = load_dataset(BCCD / "data.yaml")
    assert ds.names == ("Platelets", "RBC", "WBC")
    assert [len(ds.split(s)) for s in ("train", "val", "test")] == [205, 87, 72]
    assert not [p for p in ds.all_problems() if p.severity == "error"]


def test_relative_path_dot_finds_the_dataset_from_another_working_directory(
        make_dataset, tmp_path, monkeypatch):
    from detprune.dataset import load_dataset

    yaml = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}, "val": {"b": None}},
                        yaml_text="path: .\ntrain: images/train\nval: images/val\nnames: [x]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # ultralytics would look for elsewhere/images/train
    ds = load_dataset(yaml)
    assert ds.root == yaml.parent.resolve()
    assert [r.image.name for r in ds.split("train").records] == ["a.jpg"]


def test_relative_path_prefers_the_yaml_folder_over_a_look_alike_working_directory(
        make_dataset, tmp_path, monkeypatch):
    """ultralytics would read ``path: .`` against the working directory; when that holds
    another dataset of the same layout, the yaml's own dataset is still the one loaded."""
    from detprune.dataset import load_dataset

    text = "path: .\ntrain: images/train\nval: images/val\nnames: [x]\n"
    mine = make_dataset({"train": {"a": None}, "val": {"b": None}}, yaml_text=text)
    other = make_dataset({"train": {"c": None, "d": None}, "val": {"e": None}}, yaml_text=text,
                         root=tmp_path / "other")
    monkeypatch.chdir(other.parent)
    ds = load_dataset(mine)
    assert ds.root == mine.parent.resolve()
    assert [r.image.name for r in ds.split("train").records] == ["a.jpg"]


def test_hidden_files_are_skipped_as_ultralytics_glob_skips_them(make_dataset, tmp_path):
    import glob

    y = make_dataset({"train": {"a": BOX, "b": BOX}})
    train = y.parent / "images" / "train"
    (train / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # not an image
    write_image(train / ".hidden" / "c.jpg")
    labels = y.parent / "labels" / "train"
    write_text(labels / "._a.txt", "0 0.5 0.5 0.2 0.2\n")
    write_text(labels / ".hidden" / "c.txt", "0 0.5 0.5 0.2 0.2\n")
    split = load_dataset(y).split("train")
    assert not split.problems  # the hidden images' labels are no orphans either
    assert sorted(r.image.name for r in split.records) == ["a.jpg", "b.jpg"]
    assert not [p for p in split.problems if p.severity == "error"]
    # what ultralytics lists for a folder: glob of **/*.* (dot names skipped)
    theirs = sorted(Path(p).name for p in glob.glob(str(train / "**" / "*.*"), recursive=True))
    assert theirs == ["a.jpg", "b.jpg"]


def test_a_missing_test_split_is_a_warning_a_missing_val_split_an_error(make_dataset):
    """ultralytics checks only val (and train to train on): a data.yaml naming a test
    folder that was never downloaded still trains, so it is still pruned."""
    y = make_dataset({"train": {"a": BOX}, "val": {"b": BOX}})
    base = y.read_text()
    y.write_text(base + "test: images/never_downloaded\n")
    ds = load_dataset(y)
    test = ds.split("test")
    assert not test.records
    assert [(p.kind, p.severity) for p in test.problems] == [("missing-split-source", "warning")]
    assert "never_downloaded" in test.problems[0].file
    assert len(ds.split("train").records) == 1
    assert not [p for p in ds.problems if p.kind == "empty-split"]  # reported once, not twice
    y.write_text(base.replace("val: images/val", "val: images/nope"))
    with pytest.raises(DatasetError, match="images/nope: split source does not exist"):
        load_dataset(y)


@pytest.mark.parametrize("rows", [1, 20])  # line by line, and the vectorised parse
def test_pose_rows_are_read_as_their_box_as_ultralytics_does(make_dataset, rows):
    """With ``kpt_shape`` in data.yaml, ultralytics reads a pose row (``5 + nkpt * ndim``
    fields) as its box for a detection task; detprune read it as a polygon of keypoints
    (out of bounds: every box dropped)."""
    pose = "".join(f"{i % 2} 0.{i + 10} 0.5 0.2 0.3 0.45 0.45 2 0.55 0.55 1\n" for i in range(rows))
    y = make_dataset({"train": {"a": pose}})
    y.write_text(y.read_text() + "kpt_shape: [2, 3]\nflip_idx: [1, 0]\n")
    ds = load_dataset(y)
    rec = ds.split("train").records[0]
    assert not ds.split("train").problems
    assert rec.classes.tolist() == [i % 2 for i in range(rows)]
    assert rec.boxes[0].tolist() == pytest.approx([0.10, 0.5, 0.2, 0.3])
    assert dict(ds.yaml_extra) == {"kpt_shape": [2, 3], "flip_idx": [1, 0]}
    # ultralytics' own reading for a box task gives the same boxes
    import numpy as np
    from ultralytics.data.utils import verify_image_label

    lb = verify_image_label((str(rec.image), str(rec.label), "", False, 3, 2, 3, False))[1]
    np.testing.assert_allclose(lb[:, 1:], rec.boxes, atol=1e-6)
    assert lb[:, 0].tolist() == rec.classes.tolist()
    # a row of another length is still an error, and says what a pose row is
    (y.parent / "labels" / "train" / "a.txt").write_text(
        pose + "0 0.5 0.5 0.2 0.2 0.4 0.4 2\n" + "0 0.5 0.5 0.2 0.2 0.4 0.4 2 0.1\n")
    kinds = [(p.kind, p.line) for p in load_dataset(y).split("train").problems]
    assert kinds == [("field-count", rows + 1), ("field-count", rows + 2)]  # not read as polygons
    assert "pose row of 11" in load_dataset(y).split("train").problems[0].message
    # without kpt_shape the same rows are polygons, as ultralytics reads them
    (y.parent / "labels" / "train" / "a.txt").write_text(pose)
    y.write_text(y.read_text().replace("kpt_shape: [2, 3]\n", ""))
    found = load_dataset(y).split("train").problems
    assert [p.kind for p in found] == ["out-of-bounds"] * rows


def test_kpt_shape_of_integral_floats_is_accepted(make_dataset):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2 0.4 0.4 2 0.6 0.6 2\n"}})
    y.write_text(y.read_text() + "kpt_shape: [2.0, 3]\n")  # ultralytics takes it
    assert not load_dataset(y).split("train").problems


@pytest.mark.parametrize("value", ["[2]", "[0, 3]", "[2, 4]", "pose", "[2.5, 3]", "[true, 3]"])
def test_bad_kpt_shape_is_a_one_line_error(make_dataset, value):
    y = make_dataset({"train": {"a": BOX}})
    y.write_text(y.read_text() + f"kpt_shape: {value}\n")
    with pytest.raises(DatasetError, match=r"'kpt_shape' must be \[keypoints, 2 or 3\]"):
        load_dataset(y)


def test_names_from_nc_alone_are_ultralytics_names(make_dataset):
    y = make_dataset({"train": {"a": BOX}}, yaml_text="train: images/train\nnc: 2\n")
    assert load_dataset(y).names == ("class_0", "class_1")
