"""`detprune compare`: one table of runs relative to a baseline, from results.json files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from detprune.cli import main
from detprune.errors import DetpruneError
from detprune.train import compare_runs
from detprune.train.compare import load_run


def write_run(root: Path, name: str, *, map50, map5095, seen, seconds, kwh, co2, pruning=None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    combined = {"seconds": seconds, "energy_kwh": kwh, "co2_kg": co2, "includes_pruning": False}
    if pruning is not None:
        ps, pk, pc = pruning
        combined = {"seconds": seconds + ps, "energy_kwh": None if kwh is None else kwh + pk,
                    "co2_kg": None if co2 is None else co2 + pc, "includes_pruning": True}
    res = {
        "results_version": 1,
        "mAP50": map50,
        "mAP50-95": map5095,
        "images_seen": seen,
        "wall_seconds": seconds,
        "energy_kwh": kwh,
        "co2_kg": co2,
        "epochs": 10,
        "schedule": {"spec": None},
        "pruning": {"id": f"abc-{name}"} if pruning is not None else None,
        "combined": combined,
    }
    (run / "results.json").write_text(json.dumps(res))
    return run


@pytest.fixture
def runs(tmp_path):
    full = write_run(tmp_path, "full", map50=0.80, map5095=0.50, seen=3000, seconds=100.0, kwh=0.010,
                     co2=0.004)
    half = write_run(tmp_path, "half", map50=0.72, map5095=0.40, seen=1500, seconds=55.0, kwh=0.005,
                     co2=0.002, pruning=(5.0, 0.001, 0.0004))
    step = write_run(tmp_path, "step", map50=0.76, map5095=0.45, seen=2250, seconds=80.0, kwh=None,
                     co2=None)
    return full, half, step


def test_baseline_defaults_to_most_images_seen(runs):
    full, half, step = runs
    c = compare_runs([half, step, full])
    assert c.baseline == 2 and c.rows[2]["run"] == "full"
    h = c.rows[0]
    assert h["mAP50-95_rel"] == pytest.approx(0.8)  # share of the full-data mAP kept
    assert h["mAP50_rel"] == pytest.approx(0.9)
    assert h["images_seen_rel"] == pytest.approx(0.5)
    assert h["seconds_rel"] == pytest.approx(0.55)
    assert h["energy_kwh_rel"] == pytest.approx(0.5)
    assert h["co2_kg_rel"] == pytest.approx(0.5)
    assert h["combined_seconds"] == pytest.approx(60.0)
    assert h["combined_seconds_rel"] == pytest.approx(0.6)  # (55 + 5) / 100
    assert h["combined_energy_kwh_rel"] == pytest.approx(0.6)
    s = c.rows[1]
    assert s["energy_kwh"] is None and s["energy_kwh_rel"] is None
    assert s["mAP50-95_rel"] == pytest.approx(0.9)
    assert c.rows[2]["mAP50-95_rel"] == pytest.approx(1.0)


def test_markdown_table(runs):
    full, half, step = runs
    md = compare_runs([full, half, step]).to_markdown()
    lines = md.splitlines()
    assert lines[0] == ("| run | mAP50 | mAP50-95 | images seen | time (s) | energy (kWh) | CO2 (kg) | "
                        "time incl. pruning (s) | energy incl. pruning (kWh) | CO2 incl. pruning (kg) |")
    assert lines[1].startswith("| --- | ---: |")
    assert lines[2].startswith("| full (baseline) | 0.800 (100.0%) | 0.500 (100.0%) | 3,000 (100.0%) |")
    assert lines[3] == ("| half | 0.720 (90.0%) | 0.400 (80.0%) | 1,500 (50.0%) | 55.0 (55.0%) | "
                        "0.005 (50.0%) | 0.002 (50.0%) | 60.0 (60.0%) | 0.006 (60.0%) | 0.0024 (60.0%) |")
    assert "| step | 0.760 (95.0%) | 0.450 (90.0%) | 2,250 (75.0%) | 80.0 (80.0%) | n/a | n/a |" in md
    assert "relative to the baseline run 'full'" in md


def test_no_pruning_columns_without_pruned_runs(runs):
    full, _, step = runs
    md = compare_runs([full, step]).to_markdown()
    assert "incl. pruning" not in md.splitlines()[0]


def test_csv_and_explicit_baseline_outside_the_list(runs):
    full, half, step = runs
    c = compare_runs([half, step], baseline=step)
    assert [r["run"] for r in c.rows] == ["half", "step"] and c.baseline == 1
    c = compare_runs([half], baseline=full)
    assert [r["run"] for r in c.rows] == ["full", "half"] and c.baseline == 0
    rows = list(csv.DictReader(io.StringIO(c.to_csv())))
    assert rows[0]["baseline"] == "1" and rows[1]["baseline"] == "0"
    assert float(rows[1]["mAP50-95_rel"]) == pytest.approx(0.8)
    assert float(rows[1]["images_seen"]) == 1500
    assert rows[1]["pruning_id"] == "abc-half"
    assert rows[0]["pruning_id"] == ""


def test_missing_or_foreign_results_are_errors(tmp_path, runs):
    with pytest.raises(DetpruneError, match=r"no results\.json"):
        load_run(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text('{"a": 1}')
    with pytest.raises(DetpruneError, match=r"not a detprune results\.json"):
        compare_runs([runs[0], bad])
    (bad / "results.json").write_text("{")
    with pytest.raises(DetpruneError, match=r"not a readable results\.json"):
        compare_runs([bad])
    with pytest.raises(DetpruneError, match="at least one run"):
        compare_runs([])


def test_cli_compare_prints_and_writes(runs, tmp_path, capsys):
    full, half, _ = runs
    assert main(["compare", str(half), str(full), "--out", str(tmp_path / "table.md")]) == 0
    out = capsys.readouterr().out
    assert "| full (baseline) |" in out and "table written to" in out
    assert (tmp_path / "table.md").read_text().startswith("| run | mAP50 |")
    assert (tmp_path / "table.csv").read_text().startswith("run,path,baseline,")
    assert main(["compare", str(half), str(full), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("run,path,baseline,")
    assert main(["compare", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("detprune: error: ") and err.count("\n") == 1


def test_duplicates_names_and_runs_that_do_not_compare(tmp_path, runs):
    full, half, _ = runs
    # the same run named three ways is one row
    c = compare_runs([full, tmp_path / "." / "full", full / "results.json", half])
    assert [r["run"] for r in c.rows] == ["full", "half"] and not c.warnings
    # equal folder names of two sweeps' cells are told apart by their parent
    a = write_run(tmp_path / "sweepA", "mms-k0.3-s0", map50=0.7, map5095=0.4, seen=900, seconds=9.0,
                  kwh=0.001, co2=0.001)
    b = write_run(tmp_path / "sweepB", "mms-k0.3-s0", map50=0.6, map5095=0.3, seen=900, seconds=9.0,
                  kwh=0.001, co2=0.001)
    assert [r["run"] for r in compare_runs([a, b]).rows] == ["sweepA/mms-k0.3-s0", "sweepB/mms-k0.3-s0"]
    deep = [write_run(tmp_path / x / "cells", "run", map50=0.5, map5095=0.3, seen=9, seconds=1.0,
                      kwh=0.001, co2=0.001) for x in ("X", "Y")]
    assert [r["run"] for r in compare_runs(deep).rows] == ["X/cells/run", "Y/cells/run"]
    # other val sets or classes: said in the table
    for run, n, names in ((a, 6, ["circle"]), (b, 5, ["circle", "square"])):
        res = json.loads((run / "results.json").read_text())
        res["data"] = {"val_images": n, "names": names}
        (run / "results.json").write_text(json.dumps(res))
    c = compare_runs([a, b])
    assert len(c.warnings) == 2 and "different numbers of val images (5, 6)" in c.warnings[1]
    assert "Warning: the runs were trained on different classes" in c.to_markdown()
    # hand-edited fields of the wrong type: figures missing, no crash
    res = json.loads((b / "results.json").read_text())
    res.update({"combined": "x", "schedule": 5, "pruning": [1], "data": []})
    (b / "results.json").write_text(json.dumps(res))
    row = compare_runs([a, b]).rows[1]
    assert row["combined_seconds"] is None and row["schedule"] is None
