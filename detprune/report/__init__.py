"""The report of a ``detprune sweep``: summary over seeds, ranking, plots, report.md/.html.

``import detprune.report`` is light (numpy at most): matplotlib is imported
only when a plot is drawn.

Public API
----------
RESULT_COLUMNS                                   columns of results.csv, in order
read_results(path) -> list[dict]                 parsed rows; DetpruneError names file:line
parse_row(row) -> dict
summarize(rows) -> list[SummaryRow]              mean ± std per (method, keep, match)
summary_to_csv(summary) -> str
within_spread(a, b) -> bool | None               tie rule: mean ± std intervals overlap
rank(summary) -> list[Ranking]                   per keep: tiers tied within seed spread
pareto_front(points) -> list[int]                non-dominated (lower CO2, higher mAP)
plot_map_vs_keep(data, path) -> Path             700 x 450 px PNGs
plot_energy_vs_keep(data, path) -> Path
plot_eps_vs_keep(data, path) -> Path
plot_map_vs_co2(data, path, *, rows=None) -> Path
write_plots(data, out_dir, *, rows=None) -> dict[str, Path]
write_report(out_dir, rows, *, meta=None, plots=True, inline_images=False) -> (Path, Path)
machine_info() -> dict
software_versions() -> dict
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FULL_METHOD": "summary",
    "RESULT_COLUMNS": "summary",
    "Ranking": "summary",
    "SummaryRow": "summary",
    "pareto_front": "summary",
    "parse_row": "summary",
    "rank": "summary",
    "read_results": "summary",
    "summarize": "summary",
    "summary_to_csv": "summary",
    "within_spread": "summary",
    "PIXELS": "plots",
    "PLOT_FILES": "plots",
    "plot_energy_vs_keep": "plots",
    "plot_eps_vs_keep": "plots",
    "plot_map_vs_co2": "plots",
    "plot_map_vs_keep": "plots",
    "write_plots": "plots",
    "machine_info": "markdown",
    "render_report": "markdown",
    "software_versions": "markdown",
    "to_html": "markdown",
    "to_markdown": "markdown",
    "write_report": "markdown",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'detprune.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
