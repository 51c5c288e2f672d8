"""Summarise the rows of a sweep's ``results.csv``: mean ± std over seeds, ratios, ranking.

A sweep trains one model per (method, keep, seed) cell and one on the full
data per seed (method ``"full"``, keep 1.0). Seed-to-seed spread at small
budgets is large, so this module never ranks two methods whose difference is
inside that spread (:func:`within_spread`); a method measured with a single
seed is not ranked at all.

Everything here is pure (no file is written) and needs numpy at most.

Public API
----------
RESULT_COLUMNS                          the columns of ``results.csv``, in order
read_results(path) -> list[dict]        parsed rows (None = missing)
parse_row(row) -> dict                  one row's values parsed (idempotent)
summarize(rows) -> list[SummaryRow]     mean ± std per (method, keep, match)
summary_to_csv(summary) -> str          the summary as CSV text
within_spread(a, b) -> bool | None      whether two summary rows are tied
rank(summary) -> list[Ranking]          per keep: tiers of methods tied within spread
pareto_front(points) -> list[int]       non-dominated (lower CO2, higher mAP) points
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import DetpruneError

__all__ = [
    "FULL_METHOD",
    "RESULT_COLUMNS",
    "Ranking",
    "SummaryRow",
    "pareto_front",
    "parse_row",
    "rank",
    "read_results",
    "summarize",
    "summary_to_csv",
    "within_spread",
]

#: The columns of a sweep's ``results.csv``, in the order they are written.
RESULT_COLUMNS: tuple[str, ...] = (
    "method",
    "keep",
    "seed",
    "match",
    "n_full",
    "n_kept",
    "kept_fraction",
    "epochs",
    "optimizer_steps",
    "images_seen",
    "map50",
    "map50_95",
    "precision",
    "recall",
    "eps_linf",
    "eps_l2",
    "prune_seconds",
    "prune_energy_kwh",
    "prune_co2_kg",
    "train_seconds",
    "train_energy_kwh",
    "train_co2_kg",
    "energy_kwh",
    "co2_kg",
    "run_dir",
)

#: The ``method`` of the full-data baseline rows.
FULL_METHOD = "full"

_STR = frozenset({"method", "match", "run_dir"})
_INT = frozenset({"seed", "n_full", "n_kept", "epochs", "optimizer_steps", "images_seen"})
_FLOAT = frozenset(RESULT_COLUMNS) - _STR - _INT
#: Text read as a missing value (case-insensitive), besides the empty string.
_MISSING = frozenset({"", "none", "null", "nan", "n/a", "na"})


# ----------------------------------------------------------------------------- parsing


def _parse_value(key: str, value: object) -> object:
    """Parse one value of column ``key``; raise ValueError with a short reason."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _MISSING:
            return None
    else:
        text = value
    if key in _STR:
        return str(text)
    if key in _INT:
        if isinstance(text, bool):
            raise ValueError(f"{key}={value!r} is not an integer")
        try:
            f = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"{key}={value!r} is not an integer") from None
        if math.isnan(f):
            return None
        if not f.is_integer():
            raise ValueError(f"{key}={value!r} is not an integer")
        return int(f)
    if key in _FLOAT:
        if isinstance(text, bool):
            raise ValueError(f"{key}={value!r} is not a number")
        try:
            f = float(text)
        except (TypeError, ValueError):
            raise ValueError(f"{key}={value!r} is not a number") from None
        return None if math.isnan(f) else f  # inf is kept: an ε can be infinite
    return value  # a column this module does not know: left as it is


def parse_row(row: Mapping[str, object]) -> dict:
    """Parse the values of one results row (strings from CSV, or already typed).

    Parameters
    ----------
    row : mapping
        Column name -> value. Strings are parsed: integers for ``seed``,
        ``n_full``, ``n_kept``, ``epochs``, ``optimizer_steps``, ``images_seen``;
        floats for the measurements (``inf`` kept, ``nan`` read as missing);
        ``""``, ``"none"``, ``"null"``, ``"nan"``, ``"n/a"`` are missing (None).
        Columns of :data:`RESULT_COLUMNS` absent from ``row`` are None; other
        columns are kept unchanged. Parsing a parsed row changes nothing.

    Returns
    -------
    dict
        Every column of :data:`RESULT_COLUMNS` plus the unknown ones.

    Raises
    ------
    ValueError
        If a value cannot be parsed, or ``method``, ``keep`` or ``seed`` is missing.
    """
    out: dict = {}
    for key in RESULT_COLUMNS:
        out[key] = _parse_value(key, row.get(key))
    for key, value in row.items():
        if key not in out:
            out[key] = value
    for key in ("method", "keep", "seed"):
        if out[key] is None or out[key] == "":
            raise ValueError(f"{key} is missing")
    for key, (lo, hi, what) in _RANGES.items():
        v = out.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and not lo <= v <= hi:
            raise ValueError(f"{key} is {v}; it must be {what}")
    return out


#: Values a results row can hold (a hand-edited or damaged results.csv gets one line).
_RANGES = {
    "keep": (1e-300, 1.0, "a fraction in (0, 1]"),
    "kept_fraction": (0.0, 1.0, "a fraction in [0, 1]"),
    "map50": (0.0, 1.0, "in [0, 1]"),
    "map50_95": (0.0, 1.0, "in [0, 1]"),
    "precision": (0.0, 1.0, "in [0, 1]"),
    "recall": (0.0, 1.0, "in [0, 1]"),
    "seed": (0, float("inf"), ">= 0"),
    **{k: (0, float("inf"), ">= 0") for k in (
        "n_full", "n_kept", "epochs", "optimizer_steps", "images_seen", "prune_seconds",
        "prune_energy_kwh", "prune_co2_kg", "train_seconds", "train_energy_kwh", "train_co2_kg",
        "energy_kwh", "co2_kg", "eps_linf", "eps_l2")},
}


def read_results(path: str | os.PathLike) -> list[dict]:
    """Read a sweep's ``results.csv``.

    Parameters
    ----------
    path : path-like
        The CSV file; its header must name every column of :data:`RESULT_COLUMNS`
        (in any order; extra columns are kept as text).

    Returns
    -------
    list of dict
        One dict per data row, values parsed by :func:`parse_row` (None = missing).

    Raises
    ------
    DetpruneError
        One line naming the file (and the line, for a malformed row) when the
        file is missing or unreadable, a header column is missing, a row has too
        many or too few fields, or a value cannot be parsed.
    """
    p = Path(path).expanduser()
    try:
        f = p.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DetpruneError(f"{p}: cannot read results ({exc.strerror or exc})") from exc
    rows: list[dict] = []
    with f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DetpruneError(f"{p}:1: unreadable header ({exc})") from exc
        if not header:
            raise DetpruneError(f"{p}: empty file, expected a header with {', '.join(RESULT_COLUMNS)}")
        missing = [c for c in RESULT_COLUMNS if c not in header]
        if missing:
            raise DetpruneError(f"{p}:1: header lacks column(s) {', '.join(missing)}")
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DetpruneError(f"{p}:{reader.line_num}: malformed row ({exc})") from exc
            line = reader.line_num
            if None in raw:
                raise DetpruneError(
                    f"{p}:{line}: malformed row: {len(header) + len(raw[None])} fields, "
                    f"the header has {len(header)}"
                )
            if any(v is None for v in raw.values()):
                n = sum(v is not None for v in raw.values())
                raise DetpruneError(
                    f"{p}:{line}: malformed row: {n} fields, the header has {len(header)}"
                )
            try:
                rows.append(parse_row(raw))
            except ValueError as exc:
                raise DetpruneError(f"{p}:{line}: malformed row: {exc}") from exc
    return rows


# ----------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class SummaryRow:
    """One (method, keep, match) group of a sweep, summarised over its seeds.

    ``*_mean`` is the mean over the seeds with a value, ``*_std`` the sample
    standard deviation (ddof=1) over them, None with fewer than two values;
    a mean is None when no seed has a value.

    Attributes
    ----------
    method : str
        Selection method; ``"full"`` for the full-data baseline.
    keep : float
        Requested kept fraction (1.0 for the baseline).
    match : str or None
        ``"epochs"`` or ``"steps"`` (as written by the sweep).
    n_seeds : int
        Number of seeds (rows) in the group.
    seeds : tuple of int
        Those seeds, sorted.
    n_map : int
        Seeds with an mAP50-95 value (what the spread and the ranking use).
    kept_fraction : float or None
        Mean of ``n_kept / n_full``.
    n_kept : float or None
        Mean number of kept images.
    map50_95_mean, map50_95_std, map50_mean, map50_std : float or None
    energy_kwh_mean, energy_kwh_std : float or None
        Reduction + training energy.
    prune_energy_kwh_mean, prune_energy_kwh_std : float or None
        Reduction energy only.
    train_energy_kwh_mean, train_energy_kwh_std : float or None
    co2_kg_mean, co2_kg_std : float or None
        Reduction + training CO2.
    eps_linf_mean, eps_linf_std : float or None
        ε (L∞) of the selection; None for the baseline. Can be ``inf``.
    map_ratio : float or None
        Mean mAP50-95 / mean full-data mAP50-95, both over the seeds the group
        shares with the baseline (None without a baseline for those seeds).
    energy_ratio : float or None
        The same for reduction + training energy.
    """

    method: str
    keep: float
    match: str | None
    n_seeds: int
    seeds: tuple[int, ...]
    n_map: int
    kept_fraction: float | None
    n_kept: float | None
    map50_95_mean: float | None
    map50_95_std: float | None
    map50_mean: float | None
    map50_std: float | None
    energy_kwh_mean: float | None
    energy_kwh_std: float | None
    prune_energy_kwh_mean: float | None
    prune_energy_kwh_std: float | None
    train_energy_kwh_mean: float | None
    train_energy_kwh_std: float | None
    co2_kg_mean: float | None
    co2_kg_std: float | None
    eps_linf_mean: float | None
    eps_linf_std: float | None
    map_ratio: float | None
    energy_ratio: float | None

    @property
    def is_full(self) -> bool:
        """Whether this is the full-data baseline."""
        return self.method == FULL_METHOD

    def to_dict(self) -> dict:
        """The fields as a plain dict (``seeds`` as a list)."""
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        return d


def _values(rows: Iterable[dict], key: str) -> list[float]:
    """The present values of ``key`` (None dropped; ``inf`` kept)."""
    return [float(r[key]) for r in rows if r.get(key) is not None]


def _mean(vals: Sequence[float]) -> float | None:
    if not vals:
        return None
    with np.errstate(invalid="ignore"):
        return float(np.mean(np.asarray(vals, dtype=float)))


def _std(vals: Sequence[float]) -> float | None:
    if len(vals) < 2:
        return None
    a = np.asarray(vals, dtype=float)
    if not np.all(np.isfinite(a)):
        return None
    return float(np.std(a, ddof=1))


def _paired_ratio(group: Sequence[dict], base_by_seed: Mapping[int, list[dict]], key: str) -> float | None:
    """mean(group[key]) / mean(baseline[key]) over the seeds both have a value for."""
    num, den = [], []
    for r in group:
        v = r.get(key)
        base = [b[key] for b in base_by_seed.get(r["seed"], []) if b.get(key) is not None]
        if v is None or not base:
            continue
        num.append(float(v))
        den.append(float(np.mean(base)))
    if not num:
        return None
    d = float(np.mean(den))
    if d == 0 or not math.isfinite(d):
        return None
    return float(np.mean(num)) / d


def _dedupe(rows: Sequence[dict]) -> list[dict]:
    """One row per (method, keep, match, seed): a later row replaces an earlier one."""
    last: dict[tuple, dict] = {}
    for r in rows:
        last[(r["method"], float(r["keep"]), r.get("match"), r["seed"])] = r
    return list(last.values())


def summarize(rows: Iterable[Mapping[str, object]]) -> list[SummaryRow]:
    """Mean ± std over seeds for every (method, keep, match), with ratios to full data.

    Parameters
    ----------
    rows : iterable of mapping
        Rows of ``results.csv`` (strings or parsed values, see :func:`parse_row`).
        Of several rows with the same (method, keep, match, seed) the last one
        counts (a re-run cell replaces its earlier row).

    Returns
    -------
    list of SummaryRow
        Sorted by method (``"full"`` last), then keep, then match.

    Raises
    ------
    DetpruneError
        If a row cannot be parsed (the message names its index).
    """
    parsed = []
    for i, r in enumerate(rows):
        try:
            parsed.append(parse_row(r))
        except ValueError as exc:
            raise DetpruneError(f"results row {i}: {exc}") from exc
    parsed = _dedupe(parsed)
    base_by_seed: dict[int, list[dict]] = {}
    groups: dict[tuple, list[dict]] = {}
    for r in parsed:
        if r["method"] == FULL_METHOD:
            base_by_seed.setdefault(r["seed"], []).append(r)
        groups.setdefault((r["method"], float(r["keep"]), r.get("match")), []).append(r)

    out = []
    for (method, keep, match), g in groups.items():
        g = sorted(g, key=lambda r: r["seed"])
        kept = [
            r["kept_fraction"] if r.get("kept_fraction") is not None
            else (r["n_kept"] / r["n_full"] if r.get("n_kept") is not None and r.get("n_full") else None)
            for r in g
        ]
        stats: dict[str, float | None] = {}
        for key in ("map50_95", "map50", "energy_kwh", "prune_energy_kwh", "train_energy_kwh",
                    "co2_kg", "eps_linf"):
            vals = _values(g, key)
            stats[f"{key}_mean"] = _mean(vals)
            stats[f"{key}_std"] = _std(vals)
        out.append(SummaryRow(
            method=method,
            keep=keep,
            match=match,
            n_seeds=len(g),
            seeds=tuple(r["seed"] for r in g),
            n_map=len(_values(g, "map50_95")),
            kept_fraction=_mean([k for k in kept if k is not None]),
            n_kept=_mean(_values(g, "n_kept")),
            map_ratio=_paired_ratio(g, base_by_seed, "map50_95"),
            energy_ratio=_paired_ratio(g, base_by_seed, "energy_kwh"),
            **stats,
        ))
    out.sort(key=lambda s: (s.method == FULL_METHOD, s.method, s.keep, s.match or ""))
    return out


def summary_to_csv(summary: Sequence[SummaryRow]) -> str:
    """The summary as CSV text: one line per group, the fields of :class:`SummaryRow`.

    Missing values are empty; ``seeds`` is space-separated.

    Parameters
    ----------
    summary : sequence of SummaryRow

    Returns
    -------
    str
    """
    fields = list(SummaryRow.__dataclass_fields__)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for s in summary:
        d = s.to_dict()
        d["seeds"] = " ".join(str(x) for x in s.seeds)
        w.writerow({k: ("" if v is None else v) for k, v in d.items()})
    return buf.getvalue()


# ----------------------------------------------------------------------------- ranking


def within_spread(a: SummaryRow, b: SummaryRow) -> bool | None:
    """Whether two groups' mean mAP50-95 differ by no more than their seed spread.

    The rule: the intervals mean ± std overlap, i.e.
    ``|mean_a - mean_b| <= std_a + std_b`` (std over seeds, ddof=1).

    Parameters
    ----------
    a, b : SummaryRow

    Returns
    -------
    bool or None
        True: tied within seed spread. False: the difference is outside it.
        None: cannot tell (a group has fewer than two seeds with an mAP, or no mAP).
    """
    if a.map50_95_mean is None or b.map50_95_mean is None:
        return None
    if a.map50_95_std is None or b.map50_95_std is None:
        return None
    return abs(a.map50_95_mean - b.map50_95_mean) <= a.map50_95_std + b.map50_95_std


@dataclass(frozen=True)
class Ranking:
    """The methods at one kept fraction, in tiers of methods tied within seed spread.

    Attributes
    ----------
    keep : float
    match : str or None
    tiers : tuple of tuple of str
        Best first. Tier 1 is the method with the highest mean mAP50-95 and every
        method tied with it (:func:`within_spread`); tier 2 is the best of the
        rest and every remaining method tied with *it*; and so on. Inside a tier
        methods are listed by mean but not ranked.
    unranked : tuple of str
        Methods with fewer than two seeds with an mAP (no spread: cannot rank),
        and methods without any mAP.
    rows : dict of str to SummaryRow
        The summary rows of the methods named.
    """

    keep: float
    match: str | None
    tiers: tuple[tuple[str, ...], ...]
    unranked: tuple[str, ...]
    rows: Mapping[str, SummaryRow]

    @property
    def all_tied(self) -> bool:
        """Whether every ranked method is tied with the best (and there are at least two)."""
        return len(self.tiers) == 1 and len(self.tiers[0]) > 1

    def describe(self) -> str:
        """One line of text, e.g. ``"mms 0.41 ± 0.01, clc 0.40 ± 0.01 (tied within seed spread) > srs 0.35 ± 0.01"``."""
        parts = []
        for tier in self.tiers:
            text = ", ".join(self.label(m) for m in tier)
            parts.append(f"{text} (tied within seed spread)" if len(tier) > 1 else text)
        if self.all_tied:
            text = "all tied within seed spread: " + ", ".join(self.label(m) for m in self.tiers[0])
        else:
            text = " > ".join(parts)
        if self.unranked:
            text += ("; " if text else "") + "cannot rank: " + self.unranked_text()
        return text

    def unranked_text(self) -> str:
        """``"srs 0.321 (one seed), clc (no mAP)"``: the unranked methods and why."""
        return ", ".join(
            f"{self.label(m)} (one seed)" if self.rows[m].n_map == 1 else f"{m} (no mAP)"
            for m in self.unranked
        )

    def label(self, method: str) -> str:
        """``"mms 0.412 ± 0.010"``: the method with its mean ± std mAP50-95."""
        s = self.rows[method]
        if s.map50_95_mean is None:
            return method
        std = "" if s.map50_95_std is None else f" ± {s.map50_95_std:.3f}"
        return f"{method} {s.map50_95_mean:.3f}{std}"


def rank(summary: Sequence[SummaryRow]) -> list[Ranking]:
    """Order the methods at each (keep, match) by mean mAP50-95, in tiers tied within spread.

    The full-data baseline is not ranked. See :class:`Ranking` for the tiers
    and :func:`within_spread` for the tie rule.

    Parameters
    ----------
    summary : sequence of SummaryRow
        From :func:`summarize`.

    Returns
    -------
    list of Ranking
        One per (keep, match), by keep.
    """
    by_keep: dict[tuple, list[SummaryRow]] = {}
    for s in summary:
        if not s.is_full:
            by_keep.setdefault((s.keep, s.match or ""), []).append(s)
    out = []
    for (keep, _), group in sorted(by_keep.items()):
        rankable = [s for s in group if s.map50_95_mean is not None and s.map50_95_std is not None]
        unranked = [s for s in group if s not in rankable]
        rankable.sort(key=lambda s: (-s.map50_95_mean, s.method))  # type: ignore[operator]
        unranked.sort(key=lambda s: (-(s.map50_95_mean if s.map50_95_mean is not None else -math.inf),
                                     s.method))
        tiers = []
        rest = list(rankable)
        while rest:
            lead = rest[0]
            tier = [s for s in rest if s is lead or within_spread(lead, s)]
            tiers.append(tuple(s.method for s in tier))
            rest = [s for s in rest if s not in tier]
        out.append(Ranking(
            keep=keep,
            match=group[0].match,
            tiers=tuple(tiers),
            unranked=tuple(s.method for s in unranked),
            rows={s.method: s for s in group},
        ))
    return out


# ----------------------------------------------------------------------------- Pareto


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the non-dominated points, lower CO2 and higher mAP being better.

    A point is dominated when another has CO2 <= its CO2 and mAP >= its mAP,
    one of them strictly. Points with a missing or non-finite coordinate are
    left out. Identical points are all kept.

    Parameters
    ----------
    points : sequence of (co2, map)

    Returns
    -------
    list of int
        Indices into ``points``, by increasing CO2 (then decreasing mAP).
    """
    valid = [
        (i, float(c), float(m)) for i, (c, m) in enumerate(points)
        if c is not None and m is not None and math.isfinite(c) and math.isfinite(m)
    ]
    valid.sort(key=lambda t: (t[1], -t[2], t[0]))
    front: list[int] = []
    best_map = -math.inf
    best_co2 = math.nan
    for i, c, m in valid:
        # sorted by CO2 ascending, mAP descending: a point is on the front if its mAP beats
        # every cheaper point's, or it equals the front's last point exactly
        if m > best_map:
            front.append(i)
            best_map, best_co2 = m, c
        elif m == best_map and c == best_co2:
            front.append(i)
    return front
