"""The sweep's plots, as PNG files of a fixed size.

Every figure is 7 x 4.5 inches at 100 dpi, i.e. **700 x 450 pixels**
(:data:`FIGSIZE`, :data:`DPI`, :data:`PIXELS`), so reports line up. Each method
keeps one colour and marker across all plots and its line is labelled
directly at its last point (the legend repeats it); the full-data baseline is
a dashed horizontal line labelled "full data". Error bars are the standard
deviation over seeds (none with a single seed). Missing values are skipped;
a plot with nothing to draw says "no data".

matplotlib is imported by the functions, never at import time, and only its
object-oriented API is used (``matplotlib.figure.Figure`` rendered by the Agg
canvas): no window opens and the caller's pyplot backend is left as it is.
Files are written atomically (a temporary file in the same folder, then a rename).

Public API
----------
plot_map_vs_keep(data, path) -> Path
plot_energy_vs_keep(data, path) -> Path
plot_eps_vs_keep(data, path) -> Path
plot_map_vs_co2(data, path, *, rows=None) -> Path
write_plots(data, out_dir, *, rows=None) -> dict[str, Path]

``data`` is the output of :func:`detprune.report.summary.summarize`, or the
result rows themselves (then summarised here).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from .._optional import require
from .summary import SummaryRow, pareto_front, parse_row, summarize

__all__ = [
    "DPI",
    "FIGSIZE",
    "PIXELS",
    "PLOT_FILES",
    "plot_energy_vs_keep",
    "plot_eps_vs_keep",
    "plot_map_vs_co2",
    "plot_map_vs_keep",
    "write_plots",
]

#: Figure size in inches.
FIGSIZE: tuple[float, float] = (7.0, 4.5)
#: Resolution of the PNG files.
DPI: int = 100
#: Size of every PNG in pixels (width, height).
PIXELS: tuple[int, int] = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
#: File name of each plot written by :func:`write_plots`.
PLOT_FILES: dict[str, str] = {
    "map_vs_keep": "map_vs_keep.png",
    "energy_vs_keep": "energy_vs_keep.png",
    "eps_vs_keep": "eps_vs_keep.png",
    "map_vs_co2": "map_vs_co2.png",
}

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_FULL_COLOR = "0.25"
_KEEP_LABEL = "kept fraction of training images"


# ----------------------------------------------------------------------------- helpers


def _as_summary(data: Sequence[Any]) -> list[SummaryRow]:
    data = list(data)
    if all(isinstance(d, SummaryRow) for d in data):
        return data
    return summarize(data)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


class _Series:
    """One line of a plot: a method (and match mode, when the sweep mixes them)."""

    def __init__(self, key: tuple[str, str | None], label: str, rows: list[SummaryRow],
                 color: Any, marker: str, ls: str = "-") -> None:
        self.key, self.label, self.rows, self.color, self.marker = key, label, rows, color, marker
        self.ls = ls


def _series(summary: Sequence[SummaryRow]) -> tuple[list[_Series], list[SummaryRow]]:
    """Method lines and the baseline rows.

    Colour and marker follow the sorted method names; when the sweep mixes
    match modes each mode gets its own line style.
    """
    mpl = require("matplotlib", purpose="the sweep plots")
    cmap = mpl.colormaps["tab10"] if hasattr(mpl, "colormaps") else mpl.cm.get_cmap("tab10")
    full = [s for s in summary if s.is_full]
    methods = sorted({s.method for s in summary if not s.is_full})
    matches = {s.match for s in summary if not s.is_full}
    out = []
    for i, m in enumerate(methods):
        for j, match in enumerate(sorted(matches, key=lambda x: x or "")):
            rows = [s for s in summary if s.method == m and s.match == match]
            if not rows:
                continue
            label = m if len(matches) == 1 else f"{m} ({match or 'n/a'})"
            rows.sort(key=_x)
            out.append(_Series((m, match), label, rows, cmap(i % 10), _MARKERS[i % len(_MARKERS)],
                               ("-", "--", "-.")[j % 3]))
    return out, full


def _x(s: SummaryRow) -> float:
    """x position of a group: its measured kept fraction, else the requested one."""
    return s.kept_fraction if _finite(s.kept_fraction) else s.keep


def _figure(title: str):
    mpl_figure = require("matplotlib.figure", purpose="the sweep plots")
    try:
        fig = mpl_figure.Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    except TypeError:  # matplotlib < 3.6
        fig = mpl_figure.Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=14,
            color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: str | os.PathLike) -> Path:
    p = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(p, buf.getvalue())
    return p


def _spread(ys: list[float], gap: float, lo: float | None = None, hi: float | None = None) -> list[float]:
    """Move label positions apart by at least ``gap``, keeping their order.

    The group is centred on the original mean, then shifted to stay inside
    ``[lo, hi]`` where it fits.
    """
    if not ys:
        return []
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    pos = [ys[i] for i in order]
    for k in range(1, len(pos)):
        pos[k] = max(pos[k], pos[k - 1] + gap)
    shift = (sum(ys) - sum(pos)) / len(pos)
    pos = [p + shift for p in pos]
    if hi is not None and pos[-1] > hi:
        pos = [p - (pos[-1] - hi) for p in pos]
    if lo is not None and pos[0] < lo:
        pos = [p + (lo - pos[0]) for p in pos]
    out = [0.0] * len(ys)
    for k, i in enumerate(order):
        out[i] = pos[k]
    return out


def _direct_labels(ax, items: list[tuple[float, float, str, Any]], *, log_y: bool = False,
                   offset: float = 8) -> None:
    """Write each label just right of its (x, y) point, nudged so that labels do not overlap.

    The x axis is widened on the right to make room.
    """
    if not items:
        return
    from matplotlib.transforms import offset_copy

    x0, x1 = ax.get_xlim()
    if ax.get_xscale() == "log":
        lx0, lx1 = math.log10(x0), math.log10(x1)
        ax.set_xlim(x0, 10 ** (lx1 + 0.25 * (lx1 - lx0)))
    else:
        ax.set_xlim(x0, x1 + 0.25 * (x1 - x0))
    y0, y1 = ax.get_ylim()
    fwd = math.log10 if log_y else float
    span = (fwd(y1) - fwd(y0)) or 1.0
    ys = _spread([fwd(y) for _, y, _, _ in items], 0.06 * span,
                 fwd(y0) + 0.03 * span, fwd(y1) - 0.03 * span)
    shifted = offset_copy(ax.transData, fig=ax.figure, x=offset, y=0, units="points")
    for (x, _, text, color), ty in zip(items, ys, strict=True):
        ax.text(x, 10 ** ty if log_y else ty, text, transform=shifted, ha="left", va="center",
                fontsize=9, color=color, fontweight="bold", clip_on=False,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    ax.set_ylim(y0, y1)


def _full_line(ax, full: list[SummaryRow], mean_attr: str, std_attr: str, *, fmt: str) -> bool:
    """Dashed horizontal line (and ± std band) of the full-data baseline, labelled on the line."""
    vals = [(getattr(s, mean_attr), getattr(s, std_attr)) for s in full]
    vals = [(m, sd) for m, sd in vals if _finite(m)]
    if not vals:
        return False
    mean = sum(m for m, _ in vals) / len(vals)
    std = vals[0][1] if len(vals) == 1 else None
    ax.axhline(mean, color=_FULL_COLOR, ls="--", lw=1.3, label="full data", zorder=1)
    if _finite(std) and std > 0:
        ax.axhspan(mean - std, mean + std, color=_FULL_COLOR, alpha=0.08, lw=0, zorder=0)
    ax.text(0.01, mean, f" full data {format(mean, fmt)}", transform=ax.get_yaxis_transform(),
            ha="left", va="bottom", fontsize=9, color=_FULL_COLOR)
    return True


def _seeds_note(summary: Sequence[SummaryRow]) -> str:
    ns = sorted({s.n_seeds for s in summary if not s.is_full})
    if not ns:
        return ""
    n = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    return f"mean ± std over {n} seed{'s' if ns[-1] != 1 else ''}"


def _log_if_wide(values: list[float]) -> bool:
    pos = [v for v in values if _finite(v) and v > 0]
    return bool(pos) and max(pos) / min(pos) > 100


#: Legend positions tried, in order of preference, with the corner each box hangs from.
_LEGEND_SPOTS: tuple[tuple[str, float, float], ...] = (
    ("lower right", 1.0, 0.0), ("upper left", 0.0, 1.0), ("lower left", 0.0, 0.0),
    ("upper right", 1.0, 1.0), ("center right", 1.0, 0.5), ("center left", 0.0, 0.5),
)


def _occupied(ax) -> list[tuple[float, float]]:
    """Points (axes fraction) covered by lines, error bars and texts, lines densely sampled."""
    import numpy as np

    to_axes = ax.transAxes.inverted()
    pts: list[Any] = []

    def add_path(xy_display) -> None:
        xy = to_axes.transform(xy_display)
        if len(xy) == 1:
            pts.append(xy)
            return
        a, d = xy[:-1], np.diff(xy, axis=0)
        t = np.linspace(0.0, 1.0, 12)[:, None, None]
        pts.append((a[None] + t * d[None]).reshape(-1, 2))

    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if xy.size:
            add_path(line.get_transform().transform(xy))
    for coll in ax.collections:
        for seg in getattr(coll, "get_segments", list)():
            if len(seg):
                add_path(coll.get_transform().transform(np.asarray(seg, dtype=float)))
    for text in ax.texts:
        if text.get_transform() is ax.transAxes:
            continue  # "no data" and the like
        x, y = to_axes.transform(text.get_transform().transform(text.get_position()))
        pts.append(np.array([[x + dx, y] for dx in (0.0, 0.04, 0.08, 0.12)]))
    if not pts:
        return []
    allp = np.concatenate([np.atleast_2d(p) for p in pts])
    allp = allp[np.all(np.isfinite(allp), axis=1)]
    return [tuple(p) for p in allp]


def _legend(ax) -> None:
    """A legend where it covers the fewest plotted points (a corner, else a side)."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    pts = _occupied(ax)
    w, h = 0.26, 0.055 * len(handles) + 0.04
    best, best_n = "best", None
    for loc, cx, cy in _LEGEND_SPOTS:
        x0 = 1.0 - w if cx == 1.0 else 0.0
        y0 = {0.0: 0.0, 1.0: 1.0 - h, 0.5: 0.5 - h / 2}[cy]
        n = sum(x0 <= x <= x0 + w and y0 <= y <= y0 + h for x, y in pts)
        if best_n is None or n < best_n:
            best, best_n = loc, n
    ax.legend(fontsize=8, loc=best, framealpha=0.8)


# ----------------------------------------------------------------------------- plots


def _keep_plot(
    summary: Sequence[SummaryRow],
    path: str | os.PathLike,
    *,
    title: str,
    ylabel: str,
    mean_attr: str,
    std_attr: str,
    fmt: str,
    with_full: bool,
    extra: Callable[[Any, _Series], bool] | None = None,
    legend_extra: Callable[[Any], None] | None = None,
    skipped_note: str = "",
) -> Path:
    series, full = _series(summary)
    skipped = [f"{se.label} @ {s.keep:g}" for se in series for s in se.rows
               if getattr(s, mean_attr) is not None and not math.isfinite(getattr(s, mean_attr))]
    sub = "; ".join(x for x in (_seeds_note(summary),
                               f"{skipped_note}: {', '.join(skipped)}" if skipped else "") if x)
    fig, ax = _figure(title + (f"\n({sub})" if sub else ""))
    labels = []
    drawn = False
    all_y = []
    for se in series:
        pts = []
        for s in se.rows:
            m = getattr(s, mean_attr)
            if _finite(m):
                sd = getattr(s, std_attr)
                pts.append((_x(s), m, sd if _finite(sd) else 0.0))
        if extra is not None:
            drawn = extra(ax, se) or drawn
        if not pts:
            continue
        xs, ys, es = zip(*pts, strict=True)
        all_y += list(ys)
        ax.errorbar(xs, ys, yerr=es, color=se.color, marker=se.marker, ms=6, lw=1.6, capsize=3,
                    ls=se.ls, label=se.label, zorder=3)
        labels.append((xs[-1], ys[-1], se.label, se.color))
        drawn = True
    full_drawn = with_full and _full_line(ax, full, mean_attr, std_attr, fmt=fmt)
    if full_drawn:
        all_y += [getattr(s, mean_attr) for s in full if _finite(getattr(s, mean_attr))]
    if not drawn and not full_drawn:
        _no_data(ax)
        return _save(fig, path)
    log_y = _log_if_wide(all_y)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(_KEEP_LABEL)
    ax.set_ylabel(ylabel)
    xs_all = [_x(s) for se in series for s in se.rows]
    if xs_all:
        ax.set_xlim(0, max(xs_all) * 1.08)
    _direct_labels(ax, labels, log_y=log_y)
    if legend_extra is not None:
        legend_extra(ax)
    _legend(ax)
    return _save(fig, path)


def plot_map_vs_keep(data: Sequence[Any], path: str | os.PathLike) -> Path:
    """mAP50-95 against kept fraction, one line per method, with the full-data line.

    Parameters
    ----------
    data : sequence of SummaryRow or of result rows
    path : path-like
        The PNG to write (700 x 450 px).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return _keep_plot(
        _as_summary(data), path,
        title="Accuracy vs kept fraction",
        ylabel="mAP50-95 (validation)",
        mean_attr="map50_95_mean", std_attr="map50_95_std", fmt=".3f", with_full=True,
    )


def plot_energy_vs_keep(data: Sequence[Any], path: str | os.PathLike) -> Path:
    """Reduction + training energy against kept fraction; the reduction part as hollow markers.

    Parameters
    ----------
    data : sequence of SummaryRow or of result rows
    path : path-like
        The PNG to write (700 x 450 px).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    def prune_part(ax, se: _Series) -> bool:
        pts = [(_x(s), s.prune_energy_kwh_mean) for s in se.rows if _finite(s.prune_energy_kwh_mean)]
        if not pts:
            return False
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, ls=":", lw=1.2, color=se.color, marker=se.marker, mfc="white", ms=6,
                zorder=2)
        return True

    def styles(ax) -> None:  # legend entries explaining the two marker styles
        ax.plot([], [], "-o", color="0.3", label="reduction + training (filled)")
        ax.plot([], [], ":o", color="0.3", mfc="white", label="reduction only (hollow)")

    return _keep_plot(
        _as_summary(data), path,
        title="Energy (reduction + training) vs kept fraction",
        ylabel="energy (kWh, codecarbon estimate)",
        mean_attr="energy_kwh_mean", std_attr="energy_kwh_std", fmt=".3g", with_full=True,
        extra=prune_part, legend_extra=styles,
    )


def plot_eps_vs_keep(data: Sequence[Any], path: str | os.PathLike) -> Path:
    """ε (L∞) of each selection against kept fraction (the full data has none).

    Parameters
    ----------
    data : sequence of SummaryRow or of result rows
    path : path-like
        The PNG to write (700 x 450 px).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return _keep_plot(
        _as_summary(data), path,
        title="Coverage ε (L∞) vs kept fraction (lower: closer coverage)",
        ylabel="ε L∞ (max distance to nearest kept image)",
        mean_attr="eps_linf_mean", std_attr="eps_linf_std", fmt=".3g", with_full=False,
        skipped_note="ε = inf (a class lost), not shown",
    )


def plot_map_vs_co2(
    data: Sequence[Any],
    path: str | os.PathLike,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """mAP50-95 against CO2 (reduction + training) of every (method, keep), Pareto front marked.

    Each point is a (method, keep) mean with error bars (std over seeds) on
    both axes, annotated with its keep; the full-data baseline is a black
    star. The Pareto front — the points no other point beats on both lower
    CO2 and higher mAP (:func:`~detprune.report.summary.pareto_front`, on the
    means) — is joined by a thick grey line and ringed. When ``rows`` is
    given, every single run is drawn as a faint dot. The CO2 axis is
    logarithmic when it spans more than two decades.

    Parameters
    ----------
    data : sequence of SummaryRow or of result rows
    path : path-like
        The PNG to write (700 x 450 px).
    rows : sequence of mapping, optional
        The result rows, for the per-seed dots (and, when ``data`` is rows, the same).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    data = list(data)
    if rows is None and data and not isinstance(data[0], SummaryRow):
        rows = data
    summary = _as_summary(data)
    series, full = _series(summary)
    sub = "; ".join(x for x in (_seeds_note(summary), "small numbers: kept fraction") if x)
    fig, ax = _figure(f"Accuracy vs CO2 (reduction + training); Pareto front ringed\n({sub})")
    pts = [(s.co2_kg_mean, s.map50_95_mean) for s in summary]
    ok = [i for i, (c, m) in enumerate(pts) if _finite(c) and _finite(m)]
    if not ok:
        _no_data(ax)
        return _save(fig, path)
    log_x = _log_if_wide([pts[i][0] for i in ok])
    if log_x:
        ax.set_xscale("log")
        ok = [i for i in ok if pts[i][0] > 0]
    color_of = {se.key: se for se in series}

    if rows:
        for r in rows:
            try:
                r = parse_row(r)
            except ValueError:
                continue
            c, m = r.get("co2_kg"), r.get("map50_95")
            if not (_finite(c) and _finite(m)) or (log_x and c <= 0):
                continue
            se = color_of.get((r["method"], r.get("match")))
            ax.plot([c], [m], ".", ms=4, alpha=0.35, zorder=2,
                    color=_FULL_COLOR if se is None else se.color)

    front = [ok[i] for i in pareto_front([pts[i] for i in ok])]
    if front:
        fx = [pts[i][0] for i in front]
        fy = [pts[i][1] for i in front]
        ax.plot(fx, fy, "-", color="0.55", lw=5, alpha=0.35, solid_capstyle="round", zorder=1,
                label="Pareto front")
        ax.plot(fx, fy, "o", ms=15, mfc="none", mec="black", mew=1.2, zorder=4)

    labels = []
    idx = {id(s): i for i, s in enumerate(summary)}
    okset = set(ok)
    for se in series:
        drawn = [s for s in se.rows if idx[id(s)] in okset]
        if not drawn:
            continue
        drawn.sort(key=lambda s: s.co2_kg_mean)
        xs = [s.co2_kg_mean for s in drawn]
        ys = [s.map50_95_mean for s in drawn]
        xe = [s.co2_kg_std if _finite(s.co2_kg_std) else 0.0 for s in drawn]
        ye = [s.map50_95_std if _finite(s.map50_95_std) else 0.0 for s in drawn]
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, ls="none", color=se.color, marker=se.marker, ms=6,
                    capsize=2, lw=1, label=se.label, zorder=3)
        for s, x, y in zip(drawn, xs, ys, strict=True):
            ax.annotate(f"{s.keep:g}", (x, y), xytext=(-5, -9), textcoords="offset points",
                        ha="right", fontsize=7, color=se.color)
        labels.append((xs[-1], ys[-1], se.label, se.color))
    fdrawn = [s for s in full if idx[id(s)] in okset]
    for s in fdrawn:
        ax.errorbar([s.co2_kg_mean], [s.map50_95_mean],
                    xerr=[s.co2_kg_std if _finite(s.co2_kg_std) else 0.0],
                    yerr=[s.map50_95_std if _finite(s.map50_95_std) else 0.0],
                    color="black", marker="*", ms=12, capsize=2, ls="none", zorder=5,
                    label="full data")
        labels.append((s.co2_kg_mean, s.map50_95_mean, "full data", "black"))
    ax.set_xlabel("CO2 (kg, reduction + training, codecarbon estimate)"
                  + (", log scale" if log_x else ""))
    ax.set_ylabel("mAP50-95 (validation)")
    _direct_labels(ax, labels, offset=10)
    _legend(ax)
    return _save(fig, path)


def write_plots(
    data: Sequence[Any],
    out_dir: str | os.PathLike,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write the four plots into ``out_dir`` under the names of :data:`PLOT_FILES`.

    Parameters
    ----------
    data : sequence of SummaryRow or of result rows
    out_dir : path-like
        Created if missing.
    rows : sequence of mapping, optional
        The result rows, for the per-seed dots of the CO2 plot.

    Returns
    -------
    dict of str to pathlib.Path
        Plot name (a key of :data:`PLOT_FILES`) -> file written.
    """
    data = list(data)
    if rows is None and data and not isinstance(data[0], SummaryRow):
        rows = data
    summary = _as_summary(data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "map_vs_keep": plot_map_vs_keep(summary, out / PLOT_FILES["map_vs_keep"]),
        "energy_vs_keep": plot_energy_vs_keep(summary, out / PLOT_FILES["energy_vs_keep"]),
        "eps_vs_keep": plot_eps_vs_keep(summary, out / PLOT_FILES["eps_vs_keep"]),
        "map_vs_co2": plot_map_vs_co2(summary, out / PLOT_FILES["map_vs_co2"], rows=rows),
    }
