"""`detprune inspect` output and exit codes, and the light import."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import SAMPLE_DATA

from detprune import __version__
from detprune.cli import main


def test_inspect_text_and_json(make_dataset, tmp_path, capsys):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n", "b": None}, "val": {"c": "1 0.5 0.5 0.1 0.1\n"}})
    out = tmp_path / "summary.json"
    assert main(["inspect", str(y), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[train] 2 images, 1 boxes, 1 background" in text
    summary = json.loads(out.read_text())
    assert summary["splits"]["val"]["classes"]["dog"] == {"images": 1, "boxes": 1}
    assert summary["strata"]["sizes"] == {"cat": 1, "background": 1}


def test_inspect_json_never_overwrites_a_dataset_file(make_dataset, tmp_path, capsys):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n"}})
    root = y.parent
    targets = [y, root / "labels/train/a.txt", root / "images/train/a.jpg"]
    before = [p.read_bytes() for p in targets]
    for target in targets:
        assert main(["inspect", str(y), "--json", str(target)]) == 1
        err = capsys.readouterr().err
        assert "dataset's own files" in err and "Traceback" not in err
    assert [p.read_bytes() for p in targets] == before
    assert main(["inspect", str(y), "--json", str(root / "summary.json")]) == 0  # beside them: fine
    assert json.loads((root / "summary.json").read_text())["splits"]["train"]["images"] == 1


def test_inspect_strict_exit_code_and_problem_lines(make_dataset, capsys):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n9 0.5 0.5 0.2 0.2\n"}})
    assert main(["inspect", str(y)]) == 0
    assert main(["inspect", str(y), "--strict"]) == 3
    text = capsys.readouterr().out
    assert "a.txt:2: error: class id 9 is outside 0..2 [class-id]" in text


def test_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "data.yaml"
    bad.write_text("train: [oops\n")
    r = subprocess.run([sys.executable, "-m", "detprune", "inspect", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("detprune: error:")
    assert "Traceback" not in r.stderr
    # --debug shows the traceback, given before or after the command
    for args in (["--debug", "inspect", str(bad)], ["inspect", str(bad), "--debug"]):
        r = subprocess.run([sys.executable, "-m", "detprune", *args], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" in r.stderr and "DatasetError" in r.stderr


def test_version_and_help(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2


def test_inspect_json_stdout_on_sample_data(capsys):
    if not SAMPLE_DATA.exists():
        import pytest

        pytest.skip("sample_data not generated")
    assert main(["inspect", str(SAMPLE_DATA), "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["train"]["images"] > 100
    assert summary["errors"] == 0


def test_import_is_light():
    code = (
        "import sys, detprune, detprune.dataset, detprune.cli, detprune.pipeline\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'faiss', 'cv2', 'codecarbon') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == ""


def test_class_names_with_control_characters_keep_the_table_intact(make_dataset, capsys):
    y = make_dataset({"train": {"a": "0 0.5 0.5 0.2 0.2\n", "b": "1 0.5 0.5 0.2 0.2\n"}},
                     yaml_text='train: images/train\nnames: ["two\\nlines", "rtl\\u202eevil"]\n')
    assert main(["inspect", str(y)]) == 0
    text = capsys.readouterr().out
    assert "  two\\nlines" in text and "rtl\\u202eevil" in text
    table = text.split("[train]")[1].split("box sizes")[0].splitlines()
    assert len(table) == 5  # header line, column titles, two classes, nothing broken apart


def test_ascii_terminal_full_stdout_and_no_home_are_handled(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DETPRUNE_HOME", "XDG_CACHE_HOME", "HOME")}
    # an ASCII-only stdout: escapes instead of a UnicodeEncodeError (method texts hold '∝')
    r = subprocess.run([sys.executable, "-m", "detprune", "methods"], capture_output=True,
                       env={**env, "PYTHONIOENCODING": "ascii", "HOME": str(tmp_path)})
    assert r.returncode == 0 and b"\\u221d" in r.stdout
    # a full stdout: one line, not an internal error
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, "-m", "detprune", "methods"], stdout=full,
                               stderr=subprocess.PIPE, text=True, env={**env, "HOME": str(tmp_path)})
        assert r.returncode == 1
        assert r.stderr.startswith("detprune: error: cannot write to standard output") and "internal" not in r.stderr


def test_no_home_directory_falls_back_to_a_private_folder(tmp_path, monkeypatch):
    """No HOME and a uid without a passwd entry (containers): Path.home() raises."""
    import os
    import tempfile
    from pathlib import Path

    from detprune._offline import detprune_home

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    for name in ("DETPRUNE_HOME", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    home = detprune_home()
    assert home.parent == tmp_path and home.is_dir() and os.stat(home).st_mode & 0o077 == 0
    # the predictable name taken by a file (or by another user): a fresh private folder
    home.rmdir()
    home.write_text("")
    other = detprune_home()
    assert other != home and other.is_dir() and other.parent == tmp_path
