"""The sweep report: ``report.md`` and a self-contained ``report.html`` of the same content.

Both files are rendered from one list of blocks (headings, paragraphs, lists,
tables, code, images), so they never disagree. Images are linked by paths
relative to the report (``plots/<name>.png``); the HTML can embed them instead
(``inline_images=True``). The HTML carries its own small style sheet and loads
nothing from anywhere.

Public API
----------
write_report(out_dir, rows, *, meta=None, plots=True, inline_images=False) -> (Path, Path)
render_report(rows, *, meta=None, plot_paths=None) -> list of blocks
to_markdown(blocks) -> str
to_html(blocks, *, base_dir=None, inline_images=False) -> str
machine_info() -> dict
software_versions() -> dict
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import importlib.metadata
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .._version import __version__
from ..errors import MissingDependencyError
from ..train.compare import COLUMNS as _COMPARE_COLUMNS
from .summary import FULL_METHOD, Ranking, SummaryRow, parse_row, rank, summarize, summary_to_csv

__all__ = [
    "PLOT_TITLES",
    "machine_info",
    "render_report",
    "software_versions",
    "summary_table",
    "to_html",
    "to_markdown",
    "write_report",
]

# number formats shared with `detprune compare`
_FMT = {key: fmt for key, _, fmt in _COMPARE_COLUMNS}
_MAP_FMT = _FMT.get("mAP50-95", ".3f")
_KWH_FMT = _FMT.get("energy_kwh", ".3g")
_CO2_FMT = _FMT.get("co2_kg", ".3g")
_EPS_FMT = ".3g"
_NA = "n/a"

#: Titles of the plots in the report, by plot name (see :data:`detprune.report.plots.PLOT_FILES`).
PLOT_TITLES: dict[str, str] = {
    "map_vs_keep": "mAP50-95 vs kept fraction",
    "energy_vs_keep": "Energy (reduction + training) vs kept fraction",
    "eps_vs_keep": "ε (L∞) vs kept fraction",
    "map_vs_co2": "mAP50-95 vs CO2, with the Pareto front",
}

Block = tuple  # ("h", level, text) | ("p", text) | ("ul", [text]) | ("code", text)
#              | ("table", header, aligns, rows) | ("img", alt, src)


# ----------------------------------------------------------------------------- machine, software


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            _, _, value = line.partition(":")
            if value.strip():
                return value.strip()
    if sys.platform == "darwin" and shutil.which("sysctl"):
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5, check=False).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_gb() -> float | None:
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", _read("/proc/meminfo"), re.MULTILINE)
    if m:
        return int(m.group(1)) * 1024 / 1e9
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (AttributeError, ValueError, OSError):
        return None


def _gpus() -> list[str]:
    torch = sys.modules.get("torch")  # only if the sweep already imported it
    if torch is not None:
        try:
            if torch.cuda.is_available():
                out = []
                for i in range(torch.cuda.device_count()):
                    p = torch.cuda.get_device_properties(i)
                    out.append(f"{p.name} ({p.total_memory / 2**30:.0f} GiB)")
                return out
        except Exception:
            pass
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            res = subprocess.run(
                [exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=False,
            )
            if res.returncode == 0:
                out = []
                for line in res.stdout.splitlines():
                    name, _, mem = line.partition(",")
                    if name.strip():
                        out.append(f"{name.strip()} ({mem.strip()})" if mem.strip() else name.strip())
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return []


def machine_info() -> dict:
    """Describe this machine, without importing torch.

    Returns
    -------
    dict
        ``cpu`` (model name), ``cores`` (logical CPUs), ``cores_available``
        (those this process may use), ``ram_gb``, ``gpus`` (list of str; from
        torch when it is already imported, else ``nvidia-smi``; empty when none
        is found), ``os``, ``python``. A value that cannot be found is None.
    """
    info: dict[str, Any] = {}
    for key, fn in (
        ("cpu", _cpu_model),
        ("cores", os.cpu_count),
        ("cores_available", lambda: len(os.sched_getaffinity(0))),
        ("ram_gb", _ram_gb),
        ("gpus", _gpus),
        ("os", platform.platform),
        ("python", platform.python_version),
    ):
        try:
            info[key] = fn()
        except Exception:
            info[key] = [] if key == "gpus" else None
    return info


#: Distributions reported by :func:`software_versions` (name shown -> candidate distributions).
_PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "ultralytics": ("ultralytics",),
    "codecarbon": ("codecarbon",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss"),
    "matplotlib": ("matplotlib",),
}


def software_versions() -> dict:
    """Versions of Python, detprune and the packages the sweep uses (nothing is imported).

    Returns
    -------
    dict of str to str
        Name -> version; ``"not installed"`` when absent. For faiss the
        distribution is named, e.g. ``"1.8.0 (faiss-cpu)"``.
    """
    out = {"python": platform.python_version(), "detprune": __version__}
    for name, dists in _PACKAGES.items():
        out[name] = "not installed"
        for dist in dists:
            try:
                v = importlib.metadata.version(dist)
            except Exception:
                continue
            out[name] = v if len(dists) == 1 else f"{v} ({dist})"
            break
    return out


# ----------------------------------------------------------------------------- formatting


def _num(x: float | None, fmt: str) -> str:
    if x is None:
        return _NA
    if x != x:  # nan
        return _NA
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return format(x, fmt)


def _pm(mean: float | None, std: float | None, fmt: str) -> str:
    """``"0.412 ± 0.010"``; with a ``g`` format the std gets the mean's decimals."""
    if mean is None:
        return _NA
    if std is None or not math.isfinite(mean) or not math.isfinite(std):
        text = _num(mean, fmt)
        return text if std is None else f"{text} ± {_num(std, fmt)}"
    if fmt.endswith("g") and mean != 0:
        digits = int(fmt[1:-1] or 6)
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(mean))))
        return f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return f"{_num(mean, fmt)} ± {_num(std, fmt)}"


def _pct(x: float | None) -> str:
    return _NA if x is None else f"{100 * x:.1f}%"


def _list(values: Sequence[Any]) -> str:
    return ", ".join(format(v, "g") if isinstance(v, float) else str(v) for v in values) or _NA


def _kept(s: SummaryRow) -> str:
    if s.kept_fraction is None:
        return _NA
    text = _pct(s.kept_fraction)
    if s.n_kept is not None:
        text += f" ({s.n_kept:,.0f} img)"
    return text


def _seeds(s: SummaryRow) -> str:
    text = str(s.n_seeds)
    if s.n_map != s.n_seeds:
        text += f" ({s.n_map} with mAP)"
    return text


SUMMARY_HEADER = (
    "method", "keep", "kept", "seeds", "mAP50-95 mean ± std", "ratio to full",
    "energy kWh mean ± std", "energy vs full", "CO2 kg mean ± std", "ε L∞",
)


def summary_table(summary: Sequence[SummaryRow]) -> tuple[tuple[str, ...], str, list[list[str]]]:
    """The summary as table cells: (header, column alignments, rows).

    Parameters
    ----------
    summary : sequence of SummaryRow

    Returns
    -------
    tuple
        ``(header, aligns, rows)``; ``aligns`` has one letter per column
        (``"l"`` or ``"r"``).
    """
    mixed = len({s.match for s in summary if not s.is_full}) > 1
    rows = []
    for s in summary:
        name = s.method if not mixed or s.is_full else f"{s.method} ({s.match or _NA})"
        if s.is_full:
            name += " (baseline)"
        rows.append([
            name,
            format(s.keep, "g"),
            _kept(s),
            _seeds(s),
            _pm(s.map50_95_mean, s.map50_95_std, _MAP_FMT),
            _pct(s.map_ratio),
            _pm(s.energy_kwh_mean, s.energy_kwh_std, _KWH_FMT),
            _pct(s.energy_ratio),
            _pm(s.co2_kg_mean, s.co2_kg_std, _CO2_FMT),
            "—" if s.is_full else _pm(s.eps_linf_mean, s.eps_linf_std, _EPS_FMT),
        ])
    return SUMMARY_HEADER, "llrrrrrrrr", rows


def _ranking_items(rankings: Sequence[Ranking], mixed: bool) -> list[str]:
    items = []
    for r in rankings:
        head = f"keep {r.keep:g}" + (f" (match {r.match})" if mixed else "")
        if not r.tiers:
            text = ""
        elif r.all_tied:
            text = "all tied within seed spread: " + ", ".join(r.label(m) for m in r.tiers[0])
        elif len(r.tiers) == 1:
            text = f"only {r.label(r.tiers[0][0])} can be ranked"
        else:
            parts = []
            for i, tier in enumerate(r.tiers, 1):
                t = ", ".join(r.label(m) for m in tier)
                parts.append(f"{i}. {t}" + (" — tied within seed spread" if len(tier) > 1 else ""))
            text = "; ".join(parts)
        if r.unranked:
            text += ("; " if text else "") + "cannot rank: " + r.unranked_text()
        items.append(f"{head}: {text}")
    return items


# ----------------------------------------------------------------------------- the report


#: Optional setup lines: (meta key, label).
_EXTRA_SETUP: tuple[tuple[str, str], ...] = (
    ("split", "split pruned"),
    ("weights", "initial training weights"),
    ("batch", "batch size"),
    ("embedding_weights", "embedding weights"),
    ("val_each_epoch", "validation every epoch"),
)


def _embedding_text(emb: Mapping[str, Any]) -> str:
    parts = []
    if emb.get("images") is not None:
        usable = emb.get("usable")
        parts.append(f"{emb['images']} images" + (f" ({usable} usable)" if usable is not None else ""))
    if emb.get("dims") is not None:
        parts.append(f"{emb['dims']} dimensions")
    if emb.get("seconds") is not None:
        parts.append(f"{_num(emb['seconds'], '.1f')} s")
    if emb.get("energy_kwh") is not None:
        parts.append(f"{_num(emb['energy_kwh'], _KWH_FMT)} kWh")
    if emb.get("co2_kg") is not None:
        parts.append(f"{_num(emb['co2_kg'], _CO2_FMT)} kg CO2")
    return ", ".join(parts) or _NA


def _energy_text(meta: Mapping[str, Any]) -> list[Block]:
    country = meta.get("country") or None
    how = meta.get("energy_method")
    if isinstance(how, list | tuple | set):
        how = "; ".join(sorted({str(h) for h in how if h}))
    blocks: list[Block] = [
        ("p", "Energy is a software estimate made with codecarbon's `OfflineEmissionsTracker` "
              "(no network access), measured separately for the reduction (embedding and "
              "selection) and for the training of every cell; the tables and plots show their sum "
              "unless they say otherwise."),
        ("ul", [
            "CPU: from the RAPL energy counters when the kernel exposes them, otherwise the CPU "
            "model's TDP scaled by its load (a generic TDP when the model is unknown).",
            "RAM: a fixed power per GB of memory.",
            "GPU: the power reported by NVML (NVIDIA GPUs only).",
            "CO2 = energy × the carbon intensity of the electricity of "
            + (f"country `{country}` (codecarbon's table)." if country
               else "the world average (no country was given)."),
        ]),
    ]
    if how:
        blocks.append(("p", f"Estimators used in this sweep: {how}."))
    emb = meta.get("embedding")
    if isinstance(emb, Mapping) and any(v is not None for v in emb.values()):
        blocks.append(("p", "The training set was embedded once for the whole sweep ("
                            + _embedding_text(emb) + "). A cell's reduction energy is that "
                            "one-time embedding plus the cell's own selection and export — what "
                            "a user running only that method would pay (the ε measurement is "
                            "not counted); the full-data baseline has no reduction."))
    blocks.append(("p", "These figures are estimates: they leave out power-supply losses, "
                        "fans, disks, the network and other processes' share of the machine, and "
                        "differ from what a wall meter would read. Compare them between the runs "
                        "of this report (same machine, same estimator), not with other machines."))
    return blocks


def render_report(
    rows: Sequence[Mapping[str, Any]],
    *,
    meta: Mapping[str, Any] | None = None,
    plot_paths: Mapping[str, str] | None = None,
) -> list[Block]:
    """The report's content as blocks (see :func:`to_markdown`, :func:`to_html`).

    Parameters
    ----------
    rows : sequence of mapping
        The rows of ``results.csv`` (strings or parsed).
    meta : mapping, optional
        What the rows do not say; every key is optional: ``command`` (the exact
        command line), ``date``, ``title``, ``dataset``, ``model``, ``imgsz``,
        ``epochs``, ``match``, ``methods``, ``keeps``, ``seeds`` (the last four
        default to what the rows hold), ``country`` (ISO alpha-3 used for CO2),
        ``energy_method`` (str or list of str: the estimators codecarbon used,
        e.g. :attr:`detprune.energy.PhaseEnergy.method`), ``embedding`` (dict:
        ``images``, ``usable``, ``dims``, ``seconds``, ``energy_kwh``, ``co2_kg`` of
        the one-time embedding, whose cost each cell's reduction energy
        includes), ``split``, ``weights``, ``batch``, ``embedding_weights`` (str,
        or dict with ``description``/``kind``), ``val_each_epoch``, ``machine`` and
        ``software`` (dicts replacing :func:`machine_info` and
        :func:`software_versions`), ``notes`` (str, a paragraph at the end).
    plot_paths : mapping of str to str, optional
        Plot name -> path relative to the report; plots absent are left out.

    Returns
    -------
    list of tuple
    """
    meta = dict(meta or {})
    summary = summarize(rows)
    rankings = rank(summary)
    pruned = [s for s in summary if not s.is_full]
    mixed = len({s.match for s in pruned}) > 1
    date = meta.get("date") or _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")

    blocks: list[Block] = [("h", 1, meta.get("title") or "detprune sweep report")]
    blocks.append(("p", f"Generated {date} by detprune {__version__}."))
    blocks.append(("h", 2, "Command"))
    blocks.append(("code", str(meta.get("command") or "(not recorded)")))

    methods = meta.get("methods") or sorted({s.method for s in pruned})
    keeps = meta.get("keeps") or sorted({s.keep for s in pruned})
    seeds = meta.get("seeds") or sorted({x for s in summary for x in s.seeds})
    match = meta.get("match") or ", ".join(sorted({s.match for s in summary if s.match})) or None
    parsed = [parse_row(r) for r in rows]
    n_full = sorted({r["n_full"] for r in parsed if r["n_full"] is not None})
    epochs = meta.get("epochs") or _list(sorted(
        {r["epochs"] for r in parsed if r["method"] == FULL_METHOD and r["epochs"] is not None}))
    match_note = {
        "epochs": "every cell trains the same number of epochs, so a smaller set gets fewer steps",
        "steps": "every cell trains as many optimizer steps as the full-data run, so a smaller "
                 "set is seen for more epochs",
    }.get(str(match), "")
    blocks.append(("h", 2, "Setup"))
    setup = [
        f"dataset: {meta.get('dataset') or _NA}"
        + (f" ({', '.join(str(n) for n in n_full)} training images)" if n_full else ""),
        f"model: {meta.get('model') or _NA}",
        f"image size: {meta.get('imgsz') or _NA}",
        f"epochs: {epochs}" + ("" if meta.get("epochs") else " (of the full-data runs)"
                               if epochs != _NA else ""),
        f"match: {match or _NA}" + (f" — {match_note}" if match_note else ""),
        f"methods: {_list(methods)}",
        f"kept fractions: {_list(keeps)}",
        f"seeds: {_list(seeds)}",
        f"CO2 country: {meta.get('country') or 'world average'}",
    ]
    for key, label in _EXTRA_SETUP:
        value = meta.get(key)
        if isinstance(value, Mapping):
            value = value.get("description") or value.get("kind") or value.get("path") or None
        if value is not None and value != "":
            setup.append(f"{label}: {value}")
    blocks.append(("ul", setup))

    blocks.append(("h", 2, "Summary"))
    blocks.append(("p", "Mean ± standard deviation over seeds (sample std, ddof = 1; no ± with "
                        "one seed). Ratios are to the full-data baseline over the same seeds: "
                        "for mAP the share kept, for energy (reduction + training) the share "
                        "spent. ε L∞ is the largest L∞ distance, in the selection feature space "
                        "(normalised embedding + weighted box statistics), from a "
                        "full-set image to its nearest kept image of the same class (maximum "
                        "over classes; inf when a class lost every image)."))
    if summary:
        header, aligns, cells = summary_table(summary)
        blocks.append(("table", header, aligns, cells))
    else:
        blocks.append(("p", "No results."))

    blocks.append(("h", 2, "Ranking per kept fraction"))
    blocks.append(("p", "Seed-to-seed spread is large at small budgets, so methods are ordered "
                        "by mean mAP50-95 only where the difference is outside it: two methods "
                        "whose mean ± std intervals overlap are *tied within seed spread* and "
                        "share a tier, unordered. A method with a single seed has no spread and "
                        "cannot be ranked."))
    items = _ranking_items(rankings, mixed)
    blocks.append(("ul", items) if items else ("p", "No pruned runs to rank."))

    if plot_paths:
        blocks.append(("h", 2, "Plots"))
        for name, title in PLOT_TITLES.items():
            if name in plot_paths:
                blocks.append(("h", 3, title))
                blocks.append(("img", title, str(plot_paths[name])))

    machine = meta.get("machine") or machine_info()
    blocks.append(("h", 2, "Machine"))
    gpus = machine.get("gpus")
    cores = machine.get("cores")
    avail = machine.get("cores_available")
    blocks.append(("ul", [
        f"CPU: {machine.get('cpu') or _NA}",
        f"cores: {cores if cores is not None else _NA}"
        + (f" ({avail} available to the sweep)" if avail is not None and avail != cores else ""),
        f"RAM: {_num(machine.get('ram_gb'), '.1f')} GB",
        "GPU: " + (", ".join(gpus) if gpus else "none detected"),
        f"OS: {machine.get('os') or _NA}",
    ]))
    software = meta.get("software") or software_versions()
    blocks.append(("h", 2, "Software"))
    blocks.append(("table", ("package", "version"), "ll",
                   [[k, str(v)] for k, v in software.items()]))

    blocks.append(("h", 2, "How energy was estimated"))
    blocks += _energy_text(meta)
    if meta.get("notes"):
        blocks.append(("h", 2, "Notes"))
        blocks.append(("p", str(meta["notes"])))
    return blocks


# ----------------------------------------------------------------------------- rendering


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    """Render blocks as GitHub Markdown.

    Parameters
    ----------
    blocks : sequence of tuple
        From :func:`render_report`.

    Returns
    -------
    str
    """
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "code":
            fence = "```"
            while fence in b[1]:
                fence += "`"
            out.append(f"{fence}\n{b[1]}\n{fence}")
        elif kind == "table":
            _, header, aligns, rows = b
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
                     "| " + " | ".join("---:" if a == "r" else "---" for a in aligns) + " |"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            src = b[2].replace(" ", "%20")
            out.append(f"![{b[1]}]({src})")
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return "\n\n".join(out) + "\n"


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; } th { background: #f4f4f4; }
td.r, th.r { text-align: right; } tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.92em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def _inline(text: str) -> str:
    """Escape text for HTML, turning `code` and *emphasis* into tags."""
    parts = re.split(r"(`[^`]+`)", str(text))
    out = []
    for p in parts:
        if len(p) >= 2 and p.startswith("`") and p.endswith("`"):
            out.append(f"<code>{html.escape(p[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*([^*\s][^*]*)\*", r"<em>\1</em>", html.escape(p)))
    return "".join(out)


def _img_src(src: str, base_dir: Path | None, inline: bool) -> str:
    if inline and base_dir is not None:
        p = base_dir / src
        try:
            data = p.read_bytes()
        except OSError:
            return html.escape(src, quote=True)
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return html.escape(src.replace(" ", "%20"), quote=True)


def to_html(
    blocks: Sequence[Block],
    *,
    base_dir: str | os.PathLike | None = None,
    inline_images: bool = False,
) -> str:
    """Render blocks as one self-contained HTML page (own style sheet, no external resources).

    Parameters
    ----------
    blocks : sequence of tuple
        From :func:`render_report`.
    base_dir : path-like, optional
        Folder the image paths are relative to (needed for ``inline_images``).
    inline_images : bool
        Embed the images as ``data:`` URIs instead of linking them.

    Returns
    -------
    str
    """
    base = Path(base_dir) if base_dir is not None else None
    title = next((b[2] for b in blocks if b[0] == "h" and b[1] == 1), "detprune report")
    body: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "ul":
            body.append("<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "\n</ul>")
        elif kind == "code":
            body.append(f"<pre><code>{html.escape(b[1])}</code></pre>")
        elif kind == "table":
            _, header, aligns, rows = b
            cls = [' class="r"' if a == "r" else "" for a in aligns]
            head = "".join(f"<th{c}>{html.escape(str(h))}</th>" for h, c in zip(header, cls, strict=True))
            trs = "\n".join(
                "<tr>" + "".join(f"<td{c}>{html.escape(str(v))}</td>"
                                 for v, c in zip(row, cls, strict=True)) + "</tr>"
                for row in rows
            )
            body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{trs}\n</tbody>\n</table>")
        elif kind == "img":
            src = _img_src(b[2], base, inline_images)
            body.append(f'<p><img src="{src}" alt="{html.escape(b[1], quote=True)}"></p>')
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(
    out_dir: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    *,
    meta: Mapping[str, Any] | None = None,
    plots: bool = True,
    inline_images: bool = False,
) -> tuple[Path, Path]:
    """Write ``summary.csv``, the plots, ``report.md`` and ``report.html`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        The sweep folder (created if missing). Plots go to ``out_dir/plots/``.
    rows : sequence of mapping
        The rows of ``results.csv`` (e.g. from :func:`~detprune.report.summary.read_results`).
    meta : mapping, optional
        See :func:`render_report`.
    plots : bool
        False: no plots (and no matplotlib). Without matplotlib installed the
        report is written without plots and says so.
    inline_images : bool
        Embed the plots in ``report.html`` instead of linking them.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        ``report.md`` and ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    summary = summarize(rows)
    atomic_write_text(out / "summary.csv", summary_to_csv(summary))
    plot_paths: dict[str, str] = {}
    meta = dict(meta or {})
    if plots:
        from .plots import write_plots

        try:
            written = write_plots(summary, out / "plots", rows=rows)
        except MissingDependencyError as exc:  # the tables are still worth writing
            meta["notes"] = " ".join(x for x in (meta.get("notes"), f"Plots not drawn: {exc}") if x)
        else:
            plot_paths = {k: p.relative_to(out).as_posix() for k, p in written.items()}
    blocks = render_report(rows, meta=meta, plot_paths=plot_paths)
    md, page = out / "report.md", out / "report.html"
    atomic_write_text(md, to_markdown(blocks))
    atomic_write_text(page, to_html(blocks, base_dir=out, inline_images=inline_images))
    return md, page
