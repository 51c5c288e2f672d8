"""The sweep report layer: results.csv -> summary over seeds, ranking, plots, report.md/.html."""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detprune.errors import DetpruneError
from detprune.report import (
    PIXELS,
    PLOT_FILES,
    RESULT_COLUMNS,
    pareto_front,
    plot_map_vs_co2,
    plot_map_vs_keep,
    rank,
    read_results,
    summarize,
    within_spread,
    write_plots,
    write_report,
)
from detprune.report.markdown import (
    machine_info,
    render_report,
    software_versions,
    to_html,
    to_markdown,
)
from detprune.report.summary import summary_to_csv

# mAP50-95 per (method, keep) and seed: at keep 0.25 mms is clearly better than srs;
# at keep 0.5 the two differ by less than their seed spread.
MAPS = {
    ("mms", 0.25): (0.40, 0.42),
    ("srs", 0.25): (0.30, 0.31),
    ("mms", 0.5): (0.44, 0.47),
    ("srs", 0.5): (0.43, 0.45),
    ("full", 1.0): (0.50, 0.52),
}
N_FULL = 400
#: What the sweep would pass to write_report.
META = {
    "command": "detprune sweep data.yaml --methods mms,srs --keep 0.25,0.5 --seeds 0,1",
    "dataset": "toy", "model": "yolov5n.pt", "imgsz": 320, "epochs": 10, "country": "ESP",
    "energy_method": "codecarbon offline: CPU: generic TDP x load (cpu_load), RAM: fixed W per GB",
    "date": "2025-01-01 12:00", "split": "train", "batch": 16,
    "embedding": {"images": 400, "usable": 400, "dims": 256, "seconds": 12.0,
                  "energy_kwh": 0.0004, "co2_kg": 0.00008},
}


def make_rows() -> list[dict]:
    """Rows as csv.DictReader returns them: every value a string, '' = missing."""
    rows = []
    for (method, keep), maps in MAPS.items():
        for seed, m in enumerate(maps):
            n_kept = round(N_FULL * keep)
            prune_kwh = 0.0 if method == "full" else 0.001 * (1 + seed) * (2 if method == "mms" else 1)
            train_kwh = 0.04 * keep + 0.002 * seed
            row = {
                "method": method, "keep": keep, "seed": seed, "match": "epochs",
                "n_full": N_FULL, "n_kept": n_kept, "kept_fraction": n_kept / N_FULL,
                "epochs": 10, "optimizer_steps": n_kept * 10 // 16, "images_seen": n_kept * 10,
                "map50": m + 0.25, "map50_95": m, "precision": 0.7, "recall": 0.6,
                "eps_linf": "" if method == "full" else 1.0 / keep + 0.1 * seed,
                "eps_l2": "" if method == "full" else 2.0 / keep,
                "prune_seconds": 0 if method == "full" else 3.0,
                "prune_energy_kwh": prune_kwh, "prune_co2_kg": prune_kwh * 0.2,
                "train_seconds": 100 * keep, "train_energy_kwh": train_kwh,
                "train_co2_kg": train_kwh * 0.2, "energy_kwh": prune_kwh + train_kwh,
                "co2_kg": (prune_kwh + train_kwh) * 0.2, "run_dir": f"{method}/{keep}/{seed}",
            }
            rows.append({k: str(v) for k, v in row.items()})
    return rows


def write_csv(path: Path, rows: list[dict], columns=RESULT_COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def by_key(summary):
    return {(s.method, s.keep): s for s in summary}


# ----------------------------------------------------------------------------- reading


def test_result_columns_are_unique_and_complete():
    assert len(set(RESULT_COLUMNS)) == len(RESULT_COLUMNS) == 25
    assert RESULT_COLUMNS[:3] == ("method", "keep", "seed") and RESULT_COLUMNS[-1] == "run_dir"


def test_read_results_parses_types(tmp_path):
    rows = make_rows()
    rows[2]["eps_linf"] = "inf"  # a class with no kept image
    rows[3]["map50"] = ""
    got = read_results(write_csv(tmp_path / "results.csv", rows))
    assert len(got) == len(rows)
    r = got[0]
    assert r["method"] == "mms" and r["keep"] == 0.25 and r["seed"] == 0
    assert isinstance(r["seed"], int) and isinstance(r["n_kept"], int) and r["n_kept"] == 100
    assert isinstance(r["map50_95"], float) and r["map50_95"] == pytest.approx(0.40)
    assert got[2]["eps_linf"] == math.inf
    assert got[3]["map50"] is None
    full = [g for g in got if g["method"] == "full"]
    assert full and all(g["eps_linf"] is None for g in full)


def set_field(lines: list[str], i: int, column: str, value: str) -> None:
    """Set one field of CSV line ``lines[i]`` (0 = header)."""
    fields = lines[i].split(",")  # no quoted commas in these rows
    fields[RESULT_COLUMNS.index(column)] = value
    lines[i] = ",".join(fields)


@pytest.mark.parametrize(
    ("edit", "line", "needle"),
    [
        (lambda lines: set_field(lines, 3, "map50_95", "zero point four"), 4, "map50_95"),
        (lambda lines: lines.__setitem__(2, lines[2] + ",extra"), 3, "fields"),
        (lambda lines: lines.__setitem__(5, lines[5].rsplit(",", 3)[0]), 6, "fields"),
        (lambda lines: set_field(lines, 4, "seed", "1.5"), 5, "seed"),
        (lambda lines: set_field(lines, 3, "keep", "-3"), 4, "keep is -3.0; it must be a fraction"),
        (lambda lines: set_field(lines, 2, "map50_95", "inf"), 3, "map50_95 is inf; it must be in [0, 1]"),
        (lambda lines: set_field(lines, 4, "images_seen", "-10"), 5, "images_seen is -10"),
    ],
    ids=["bad-number", "too-many-fields", "too-few-fields", "non-integer-seed", "negative-keep",
         "infinite-map", "negative-count"],
)
def test_read_results_malformed_row_names_file_and_line(tmp_path, edit, line, needle):
    path = write_csv(tmp_path / "results.csv", make_rows())
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DetpruneError) as info:
        read_results(path)
    msg = str(info.value)
    assert f"{path}:{line}:" in msg and needle in msg
    assert "\n" not in msg


def test_read_results_missing_header_column_and_missing_file(tmp_path):
    cols = [c for c in RESULT_COLUMNS if c != "map50_95"]
    path = write_csv(tmp_path / "results.csv", make_rows(), columns=cols)
    with pytest.raises(DetpruneError, match=r"results\.csv:1: header lacks column\(s\) map50_95"):
        read_results(path)
    with pytest.raises(DetpruneError, match=r"nope\.csv"):
        read_results(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- summary


def test_summary_matches_numpy_on_the_same_rows():
    rows = make_rows()
    summary = summarize(rows)
    assert [s.method for s in summary][-1] == "full"  # baseline last
    assert len(summary) == len(MAPS)
    full = [r for r in rows if r["method"] == "full"]
    full_map = np.mean([float(r["map50_95"]) for r in full])
    full_kwh = np.mean([float(r["energy_kwh"]) for r in full])
    for s in summary:
        g = [r for r in rows if r["method"] == s.method and float(r["keep"]) == s.keep]
        col = {k: np.array([float(r[k]) for r in g]) for k in
               ("map50_95", "map50", "energy_kwh", "co2_kg", "prune_energy_kwh", "kept_fraction")}
        assert s.n_seeds == s.n_map == 2 and s.seeds == (0, 1)
        assert s.map50_95_mean == pytest.approx(col["map50_95"].mean())
        assert s.map50_95_std == pytest.approx(col["map50_95"].std(ddof=1))
        assert s.map50_mean == pytest.approx(col["map50"].mean())
        assert s.map50_std == pytest.approx(col["map50"].std(ddof=1))
        assert s.energy_kwh_mean == pytest.approx(col["energy_kwh"].mean())
        assert s.energy_kwh_std == pytest.approx(col["energy_kwh"].std(ddof=1))
        assert s.co2_kg_mean == pytest.approx(col["co2_kg"].mean())
        assert s.prune_energy_kwh_mean == pytest.approx(col["prune_energy_kwh"].mean())
        assert s.kept_fraction == pytest.approx(col["kept_fraction"].mean())
        assert s.map_ratio == pytest.approx(col["map50_95"].mean() / full_map)
        assert s.energy_ratio == pytest.approx(col["energy_kwh"].mean() / full_kwh)
        if s.is_full:
            assert s.eps_linf_mean is None and s.map_ratio == pytest.approx(1.0)
        else:
            eps = np.array([float(r["eps_linf"]) for r in g])
            assert s.eps_linf_mean == pytest.approx(eps.mean())
            assert s.eps_linf_std == pytest.approx(eps.std(ddof=1))


def test_ratio_uses_the_baseline_of_the_same_seeds():
    rows = make_rows()
    rows.append({**rows[-1], "seed": "7", "map50_95": "0.9"})  # a baseline seed no method has
    s = by_key(summarize(rows))[("mms", 0.25)]
    assert s.map_ratio == pytest.approx(np.mean([0.40, 0.42]) / np.mean([0.50, 0.52]))


def test_missing_values_and_single_seed():
    rows = make_rows()
    for r in rows:
        if r["method"] == "srs" and r["keep"] == "0.5" and r["seed"] == "1":
            r.update(map50_95="", map50="nan", energy_kwh="", co2_kg="")
    rows = [r for r in rows if not (r["method"] == "mms" and r["keep"] == "0.5" and r["seed"] == "1")]
    s = by_key(summarize(rows))
    srs, mms = s[("srs", 0.5)], s[("mms", 0.5)]
    assert srs.n_seeds == 2 and srs.n_map == 1
    assert srs.map50_95_mean == pytest.approx(0.43) and srs.map50_95_std is None
    assert srs.map50_mean is not None and srs.energy_kwh_std is None
    assert srs.map_ratio == pytest.approx(0.43 / 0.50)  # only seed 0 has an mAP
    assert mms.n_seeds == 1 and mms.map50_95_std is None
    r = next(r for r in rank(summarize(rows)) if r.keep == 0.5)
    assert r.tiers == () and set(r.unranked) == {"mms", "srs"}
    assert "cannot rank" in r.describe() and "one seed" in r.describe()


def test_a_rerun_row_replaces_the_earlier_one():
    rows = make_rows()
    rows.append({**rows[0], "map50_95": "0.10"})
    s = by_key(summarize(rows))[("mms", 0.25)]
    assert s.n_seeds == 2 and s.map50_95_mean == pytest.approx(np.mean([0.10, 0.42]))


def test_summarize_rejects_a_row_without_method():
    rows = make_rows()
    rows[1]["method"] = ""
    with pytest.raises(DetpruneError, match="row 1: method is missing"):
        summarize(rows)


def test_summary_csv_has_one_line_per_group():
    text = summary_to_csv(summarize(make_rows()))
    got = list(csv.DictReader(text.splitlines()))
    assert len(got) == len(MAPS) and got[0]["method"] == "mms" and got[0]["seeds"] == "0 1"
    assert got[-1]["eps_linf_mean"] == ""


# ----------------------------------------------------------------------------- ranking


def test_clear_winner_is_ranked_and_ties_within_spread_are_not():
    rankings = {r.keep: r for r in rank(summarize(make_rows()))}
    assert set(rankings) == {0.25, 0.5}  # the baseline is not ranked
    clear, close = rankings[0.25], rankings[0.5]
    assert clear.tiers == (("mms",), ("srs",)) and not clear.unranked
    assert "mms 0.410 ± 0.014 > srs 0.305 ± 0.007" == clear.describe()
    assert close.tiers == (("mms", "srs"),) and close.all_tied
    assert "tied within seed spread" in close.describe()


def test_within_spread_rule_is_overlap_of_mean_plus_minus_std():
    s = by_key(summarize(make_rows()))
    a, b = s[("mms", 0.5)], s[("srs", 0.5)]
    gap = abs(a.map50_95_mean - b.map50_95_mean)
    assert gap <= a.map50_95_std + b.map50_95_std and within_spread(a, b) is True
    assert within_spread(s[("mms", 0.25)], s[("srs", 0.25)]) is False
    one = summarize([r for r in make_rows() if r["seed"] == "0"])
    assert within_spread(one[0], one[1]) is None


def test_tiers_restart_after_a_clear_gap():
    rows = []
    for method, maps in {"a": (0.50, 0.52), "b": (0.49, 0.51), "c": (0.30, 0.32), "d": (0.31, 0.33)}.items():
        for seed, m in enumerate(maps):
            rows.append({"method": method, "keep": "0.3", "seed": str(seed), "map50_95": str(m)})
    (r,) = rank(summarize(rows))
    assert r.tiers == (("a", "b"), ("d", "c"))


# ----------------------------------------------------------------------------- Pareto


def test_pareto_front_on_a_hand_made_set():
    points = [
        (1.0, 0.30),   # 0 cheapest: on the front
        (2.0, 0.50),   # 1 on the front
        (2.0, 0.40),   # 2 same CO2 as 1, lower mAP: dominated
        (3.0, 0.45),   # 3 dearer and worse than 1: dominated
        (4.0, 0.60),   # 4 best mAP: on the front
        (None, 0.90),  # 5 missing CO2: left out
        (5.0, math.nan),  # 6 missing mAP: left out
        (1.0, 0.30),   # 7 identical to 0: kept too
        (0.5, 0.10),   # 8 cheapest of all: on the front
        (4.0, 0.60),   # 9 identical to 4
    ]
    assert pareto_front(points) == [8, 0, 7, 1, 4, 9]
    assert pareto_front([]) == []


# ----------------------------------------------------------------------------- plots


def png_stats(path: Path) -> tuple[tuple[int, int], int, float]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        arr = np.asarray(im.convert("RGB")).astype(np.uint32)
        packed = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
        return im.size, len(np.unique(packed)), float(arr.std())


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A report written once (plots included) for the tests that read it."""
    out = tmp_path_factory.mktemp("sweep")
    write_report(out, make_rows(), meta=META)
    return out


def test_plots_are_png_images_of_the_documented_size(report_dir):
    paths = {name: report_dir / "plots" / f for name, f in PLOT_FILES.items()}
    assert set(paths) == {"map_vs_keep", "energy_vs_keep", "eps_vs_keep", "map_vs_co2"}
    assert PIXELS == (700, 450)
    for p in paths.values():
        size, colours, std = png_stats(p)
        assert size == PIXELS
        assert colours > 20 and std > 0  # lines in several colours, not a blank canvas
    assert not [f for f in (report_dir / "plots").iterdir() if f.name.startswith(".")]  # no temp left


def test_plots_survive_missing_values(tmp_path):
    rows = make_rows()
    for r in rows:
        r.update(map50_95="", co2_kg="", eps_linf="" if r["method"] == "full" else "inf")
    paths = write_plots(rows, tmp_path / "nan")
    assert len(paths) == 4
    empty = [plot_map_vs_keep([], tmp_path / "e1.png"), plot_map_vs_co2([], tmp_path / "e2.png")]
    for p in [*paths.values(), *empty]:
        size, colours, _ = png_stats(p)
        assert size == PIXELS and colours > 1  # "no data" text or what could be drawn


# ----------------------------------------------------------------------------- report




def test_report_md_and_html(report_dir):
    tmp_path = report_dir
    md, page = tmp_path / "report.md", tmp_path / "report.html"
    text = md.read_text()
    assert text.startswith("# detprune sweep report")
    assert META["command"] in text and "2025-01-01 12:00" in text
    assert ("| method | keep | kept | seeds | mAP50-95 mean ± std | ratio to full | "
            "energy kWh mean ± std | energy vs full | CO2 kg mean ± std | ε L∞ |") in text
    assert "| mms | 0.25 | 25.0% (100 img) | 2 | 0.410 ± 0.014 | 80.4% |" in text
    assert "| full (baseline) | 1 | 100.0% (400 img) | 2 | 0.510 ± 0.014 | 100.0% |" in text
    assert "- keep 0.25: 1. mms 0.410 ± 0.014; 2. srs 0.305 ± 0.007" in text
    assert "- keep 0.5: all tied within seed spread: mms 0.455 ± 0.021, srs 0.440 ± 0.014" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 4
    for link in links:
        assert (tmp_path / link).is_file() and png_stats(tmp_path / link)[0] == PIXELS
    for section in ("## Setup", "## Machine", "## Software", "## How energy was estimated"):
        assert section in text
    assert "OfflineEmissionsTracker" in text and "`ESP`" in text and "wall meter" in text
    assert META["energy_method"] in text
    assert "- split pruned: train" in text and "- batch size: 16" in text
    assert "embedded once for the whole sweep (400 images (400 usable), 256 dimensions" in text
    assert "| codecarbon |" in text and "| numpy |" in text
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html
    for link in links:
        assert f'<img src="{link}"' in html
    assert "tied within seed spread" in html and "<script" not in html
    assert (tmp_path / "summary.csv").is_file()


def test_report_inline_images_and_without_plots(report_dir, tmp_path):
    plots = {name: f"plots/{f}" for name, f in PLOT_FILES.items()}
    blocks = render_report(make_rows(), meta=META, plot_paths=plots)
    page = to_html(blocks, base_dir=report_dir, inline_images=True)
    assert page.count('src="data:image/png;base64,') == 4
    assert to_markdown(blocks) == (report_dir / "report.md").read_text()
    md, _ = write_report(tmp_path / "b", make_rows(), meta={}, plots=False)
    text = md.read_text()
    assert "![" not in text and not (tmp_path / "b" / "plots").exists()
    assert "(not recorded)" in text and "world average" in text


def test_report_without_matplotlib_still_writes_the_tables(tmp_path, monkeypatch):
    from detprune.errors import MissingDependencyError
    from detprune.report import plots

    def no_mpl(*args, **kwargs):
        raise MissingDependencyError("Python package 'matplotlib' is not installed")

    monkeypatch.setattr(plots, "write_plots", no_mpl)
    md, page = write_report(tmp_path, make_rows(), meta=META)
    text = md.read_text()
    assert "| mms | 0.25 |" in text and "![" not in text
    assert "Plots not drawn: Python package 'matplotlib' is not installed" in text
    assert page.is_file()


def test_report_with_one_seed_says_cannot_rank(tmp_path):
    rows = [r for r in make_rows() if r["seed"] == "0"]
    md, _ = write_report(tmp_path, rows, meta=META, plots=False)
    text = md.read_text()
    assert "- keep 0.25: cannot rank: mms 0.400 (one seed), srs 0.300 (one seed)" in text
    assert "0.400 ±" not in text


def test_machine_and_software_info():
    m = machine_info()
    assert {"cpu", "cores", "ram_gb", "gpus", "os", "python"} <= set(m)
    assert isinstance(m["gpus"], list)
    v = software_versions()
    for name in ("python", "detprune", "torch", "ultralytics", "codecarbon", "faiss", "numpy"):
        assert isinstance(v[name], str) and v[name]


def test_import_is_light():
    code = (
        "import sys, detprune.report as r\n"
        "assert 'matplotlib' not in sys.modules\n"
        "r.summarize; r.software_versions(); r.machine_info()\n"
        "bad = [m for m in ('matplotlib', 'torch', 'ultralytics', 'codecarbon') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
