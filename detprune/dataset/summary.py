"""A JSON-ready summary of a dataset: counts per split and class, strata, problems."""

from __future__ import annotations

from collections import Counter

from .._io import printable
from .records import Dataset
from .stats import SIZE_BUCKETS, assign_strata, box_statistics


def summarize(dataset: Dataset, *, strata_split: str = "train", min_stratum_size: int = 10) -> dict:
    """Summarise a loaded dataset.

    Returns
    -------
    dict
        ``root``, ``yaml``, ``names``, per split: images, boxes, background images,
        images and boxes per class, size buckets, excluded images; ``strata`` of
        ``strata_split``; ``problems`` (every problem, with file and line) and
        ``problem_counts`` by kind.
    """
    splits = {}
    strata = None
    for name, split in dataset.splits.items():
        stats = box_statistics(split.records, dataset.nc)
        images_per_class = stats.presence.sum(axis=0)
        boxes_per_class = stats.class_counts.sum(axis=0)
        splits[name] = {
            "images": len(split),
            "boxes": int(boxes_per_class.sum()),
            "background_images": int((stats.box_counts == 0).sum()),
            "excluded_images": len(split.excluded),
            "classes": {
                cname: {"images": int(images_per_class[i]), "boxes": int(boxes_per_class[i])}
                for i, cname in enumerate(dataset.names)
            },
            "box_sizes": dict(zip(SIZE_BUCKETS, (int(x) for x in stats.size_counts.sum(axis=0)), strict=True)),
        }
        if name == strata_split and len(split):
            st = assign_strata(stats.presence, dataset.names, min_size=min_stratum_size)
            strata = st.sizes()
    problems = dataset.all_problems()
    return {
        "root": str(dataset.root),
        "yaml": str(dataset.yaml) if dataset.yaml else None,
        "names": list(dataset.names),
        "splits": splits,
        "strata": {"split": strata_split, "min_size": min_stratum_size, "sizes": strata},
        "problem_counts": dict(sorted(Counter(p.kind for p in problems).items())),
        "errors": sum(p.severity == "error" for p in problems),
        "warnings": sum(p.severity == "warning" for p in problems),
        "problems": [p.to_dict() for p in problems],
    }


def format_summary(summary: dict, *, max_problems: int = 20) -> str:
    """Render :func:`summarize`'s output as a plain-text report."""
    lines = [f"dataset: {summary['yaml'] or summary['root']}", f"classes: {len(summary['names'])}"]
    names = summary["names"]
    for split, s in summary["splits"].items():
        lines.append(
            f"\n[{split}] {s['images']} images, {s['boxes']} boxes, "
            f"{s['background_images']} background, {s['excluded_images']} left out"
        )
        shown = [printable(n) for n in names]  # a line break in a name would break the table
        width = max([len(n) for n in shown] + [5])
        lines.append(f"  {'class':<{width}}  {'images':>7}  {'boxes':>7}")
        for n, label in zip(names, shown, strict=True):
            c = s["classes"][n]
            lines.append(f"  {label:<{width}}  {c['images']:>7}  {c['boxes']:>7}")
        sizes = s["box_sizes"]
        lines.append("  box sizes: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    st = summary["strata"]
    if st["sizes"]:
        lines.append(f"\nstrata of '{st['split']}' (min size {st['min_size']}):")
        for name, size in sorted(st["sizes"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {size:>7}  {printable(name)}")
    probs = summary["problems"]
    lines.append(f"\nproblems: {summary['errors']} errors, {summary['warnings']} warnings")
    if probs:
        lines.append("  by kind: " + ", ".join(f"{k} {v}" for k, v in summary["problem_counts"].items()))
        for p in probs[:max_problems]:
            where = f"{p['file']}:{p['line']}" if p["line"] else p["file"]
            lines.append(printable(f"  {where}: {p['severity']}: {p['message']} [{p['kind']}]"))
        if len(probs) > max_problems:
            lines.append(f"  ... and {len(probs) - max_problems} more (use --json for all)")
    return "\n".join(lines)


