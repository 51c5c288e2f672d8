"""Compare training runs: accuracy kept against the cost saved.

Each run is a folder written by :func:`detprune.train.train` (its
``results.json``). Every figure is shown with its ratio to a baseline run —
by default the run that saw the most training images, i.e. the full-data run.
For mAP that ratio is the share of the full-data mAP kept; for images, time,
energy and CO2 it is the share of the baseline's cost. When any run was
trained on a pruned dataset, the cost of "reduction + training" (the pruning
manifest's energy totals added to the run's) is compared as well.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DetpruneError

__all__ = ["COLUMNS", "Comparison", "compare_runs", "load_run"]

#: The compared quantities: (key in a row, Markdown header, number format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mAP50", "mAP50", ".3f"),
    ("mAP50-95", "mAP50-95", ".3f"),
    ("images_seen", "images seen", ",d"),
    ("seconds", "time (s)", ".1f"),
    ("energy_kwh", "energy (kWh)", ".3g"),
    ("co2_kg", "CO2 (kg)", ".3g"),
)
#: Cost including the pruning step (shown when any run has a pruning manifest).
COMBINED: tuple[tuple[str, str, str], ...] = (
    ("combined_seconds", "time incl. pruning (s)", ".1f"),
    ("combined_energy_kwh", "energy incl. pruning (kWh)", ".3g"),
    ("combined_co2_kg", "CO2 incl. pruning (kg)", ".3g"),
)


def load_run(path: str | os.PathLike) -> dict:
    """Read a run's ``results.json`` (given the file or its folder).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    dict

    Raises
    ------
    DetpruneError
        If there is no readable detprune ``results.json``.
    """
    p = Path(path).expanduser()
    f = p / "results.json" if p.is_dir() else p
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DetpruneError(f"{p}: no results.json (not a finished detprune training run)") from exc
    except (OSError, ValueError) as exc:
        raise DetpruneError(f"{f}: not a readable results.json ({exc})") from exc
    if not isinstance(data, dict) or "results_version" not in data:
        raise DetpruneError(f"{f}: not a detprune results.json")
    return data


def _num(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _dict(x: object) -> dict:
    """``x`` where it is a dict, else empty (a hand-edited results.json)."""
    return x if isinstance(x, dict) else {}


def _row(run: Path, r: dict) -> dict:
    combined = _dict(r.get("combined"))
    pruning = _dict(r.get("pruning"))
    seen = r.get("images_seen")
    return {
        "run": run.name if run.is_dir() else run.parent.name,
        "path": str(run),
        "mAP50": _num(r.get("mAP50")),
        "mAP50-95": _num(r.get("mAP50-95")),
        "images_seen": int(seen) if isinstance(seen, int) and not isinstance(seen, bool) else None,
        "seconds": _num(r.get("wall_seconds")),
        "energy_kwh": _num(r.get("energy_kwh")),
        "co2_kg": _num(r.get("co2_kg")),
        "combined_seconds": _num(combined.get("seconds")),
        "combined_energy_kwh": _num(combined.get("energy_kwh")),
        "combined_co2_kg": _num(combined.get("co2_kg")),
        "includes_pruning": bool(combined.get("includes_pruning")),
        "pruning_id": pruning.get("id"),
        "schedule": _dict(r.get("schedule")).get("spec"),
        "epochs": r.get("epochs"),
    }


def _warnings(data: Sequence[dict]) -> list[str]:
    """What makes the runs' figures not comparable: other classes, other val sets."""
    out = []
    names = {tuple(d["names"]) for d in data if isinstance(d.get("names"), list)}
    if len(names) > 1:
        out.append("the runs were trained on different classes: their mAPs do not compare")
    val = {d.get("val_images") for d in data if isinstance(d.get("val_images"), int)}
    if len(val) > 1:
        counts = ", ".join(str(v) for v in sorted(val))
        out.append(f"the runs were validated on different numbers of val images ({counts}): "
                   "their mAPs do not compare")
    return out


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return float(value) / float(base)


@dataclass(frozen=True)
class Comparison:
    """Runs side by side, each figure relative to the baseline run.

    Attributes
    ----------
    rows : list of dict
        One per run: the figures (``mAP50``, ``mAP50-95``, ``images_seen``,
        ``seconds``, ``energy_kwh``, ``co2_kg``, ``combined_*``), their ratios to the
        baseline (``<key>_rel``), ``run``, ``path``, ``baseline`` (bool),
        ``pruning_id``, ``schedule``, ``epochs``.
    baseline : int
        Index of the baseline row.
    warnings : tuple of str
        Why the runs' figures may not compare (other classes, other val sets).
    """

    rows: list[dict]
    baseline: int
    warnings: tuple[str, ...] = ()

    @property
    def show_combined(self) -> bool:
        """Whether any run includes a pruning step."""
        return any(r["includes_pruning"] for r in self.rows)

    def _columns(self) -> tuple[tuple[str, str, str], ...]:
        return COLUMNS + (COMBINED if self.show_combined else ())

    def to_markdown(self) -> str:
        """The table as GitHub Markdown, with a legend line."""
        cols = self._columns()
        header = ["run", *(h for _, h, _ in cols)]
        lines = ["| " + " | ".join(header) + " |",
                 "| " + " | ".join(["---"] + ["---:"] * len(cols)) + " |"]
        for i, r in enumerate(self.rows):
            name = r["run"] + (" (baseline)" if i == self.baseline else "")
            cells = [name.replace("|", "\\|")]
            for key, _, fmt in cols:
                v, rel = r[key], r[f"{key}_rel"]
                if v is None:
                    cells.append("n/a")
                    continue
                text = format(int(v) if fmt.endswith("d") else v, fmt)
                if rel is not None:
                    text += f" ({100 * rel:.1f}%)"
                cells.append(text)
            lines.append("| " + " | ".join(cells) + " |")
        base = self.rows[self.baseline]
        lines.append("")
        lines.append(
            f"Percentages are relative to the baseline run '{base['run']}'; for mAP they are the share "
            "of the baseline's mAP kept, for the other columns the share of its cost."
        )
        lines += [f"Warning: {w}." for w in self.warnings]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The table as CSV: raw figures and their ratios to the baseline."""
        fields = ["run", "path", "baseline", "schedule", "epochs", "pruning_id"]
        for key, _, _ in COLUMNS + COMBINED:
            fields += [key, f"{key}_rel"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for i, r in enumerate(self.rows):
            row = {k: ("" if r.get(k) is None else r.get(k)) for k in fields}
            row["baseline"] = int(i == self.baseline)
            w.writerow(row)
        return buf.getvalue()


def compare_runs(
    runs: Sequence[str | os.PathLike],
    *,
    baseline: str | os.PathLike | None = None,
) -> Comparison:
    """Compare finished training runs.

    Parameters
    ----------
    runs : sequence of path-like
        Run folders (or their ``results.json``), at least one.
    baseline : path-like, optional
        The reference run; added to the table if not among ``runs``. Default:
        the run with the most images seen (the first of equals).

    Returns
    -------
    Comparison

    Raises
    ------
    DetpruneError
        If a run has no readable ``results.json``.
    """
    if isinstance(runs, str | os.PathLike) or not runs:
        raise DetpruneError("compare needs at least one run folder")
    paths = [Path(r).expanduser() for r in runs]
    if baseline is not None:
        b = Path(baseline).expanduser()
        keyed = [p.resolve() for p in paths]
        if b.resolve() not in keyed:
            paths.insert(0, b)
    unique: list[Path] = []  # a run named twice (./r1, r1, r1/results.json) is shown once
    seen_files: set[Path] = set()
    for p in paths:
        f = (p / "results.json" if p.is_dir() else p).resolve()
        if f not in seen_files:
            seen_files.add(f)
            unique.append(p)
    paths = unique
    loaded = [load_run(p) for p in paths]
    rows = [_row(p, r) for p, r in zip(paths, loaded, strict=True)]
    # equal folder names (cells of two sweeps): the shortest path tails that tell them apart
    folders = [(p if p.is_dir() else p.parent).resolve().parts for p in paths]
    for depth in range(2, max(len(f) for f in folders) + 1):
        labels = [r["run"] for r in rows]
        clash = [i for i, r in enumerate(rows) if labels.count(r["run"]) > 1]
        if not clash:
            break
        for i in clash:
            rows[i]["run"] = "/".join(folders[i][-depth:])
    if baseline is not None:
        target = Path(baseline).expanduser().resolve()
        base_i = next(i for i, p in enumerate(paths) if p.resolve() == target)
    else:
        seen = [r["images_seen"] if r["images_seen"] is not None else -1 for r in rows]
        base_i = seen.index(max(seen))
    base = rows[base_i]
    for r in rows:
        for key, _, _ in COLUMNS + COMBINED:
            r[f"{key}_rel"] = _ratio(r[key], base[key])
    return Comparison(rows, base_i, tuple(_warnings([_dict(r.get("data")) for r in loaded])))
