"""Command line: a thin layer over :mod:`detprune.pipeline`.

Exit codes: 0 success, 1 error (one line on stderr), 2 bad usage,
3 problems found under ``--strict``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys
import warnings
from collections.abc import Sequence

from ._io import printable
from ._version import __version__
from .errors import DetpruneError

EXIT_ERROR, EXIT_USAGE, EXIT_STRICT, EXIT_INTERRUPTED = 1, 2, 3, 130


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="validate a YOLO dataset and summarise it",
        description="Read a YOLO dataset (data.yaml or folder), report images and boxes per split "
        "and class, background images, strata and every problem with its file and line. "
        "Nothing is modified.",
    )
    p.add_argument("data", help="data.yaml, or a folder with images/ and labels/")
    p.add_argument("--split", action="append", dest="splits", metavar="NAME",
                   help="only this split (repeatable; default all)")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE ('-' for stdout)")
    p.add_argument("--strict", action="store_true", help="exit with code 3 when any problem is found")
    p.add_argument("--no-check-images", action="store_true",
                   help="do not open images (faster; no size, corruption or duplicate checks)")
    p.add_argument("--min-stratum-size", type=int, default=10, metavar="N",
                   help="merge smaller class-set strata (default 10)")
    p.add_argument("--max-problems", type=int, default=20, metavar="N",
                   help="problems listed in the text report (default 20)")
    p.set_defaults(func=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from . import pipeline
    from .dataset.summary import format_summary

    summary = pipeline.inspect(
        args.data,
        splits=args.splits,
        check_images=not args.no_check_images,
        min_stratum_size=args.min_stratum_size,
        json_out=args.json if args.json not in (None, "-") else None,
    )
    if args.json == "-":
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary, max_problems=args.max_problems))
        if args.json:
            print(f"\nsummary written to {args.json}")
    if args.strict and summary["problems"]:
        return EXIT_STRICT
    return 0


def _embedding_args(p: argparse.ArgumentParser, *, cache: bool = True,
                    batch_help: str = "images per forward pass (default 16)") -> None:
    g = p.add_argument_group("embedding")
    g.add_argument("--weights", default="auto",
                   help="ultralytics YOLOv5u checkpoint, legacy yolov5 .pt, model yaml (random init), "
                        "or 'auto' (default: a cached pretrained checkpoint, else a seeded random backbone)")
    g.add_argument("--imgsz", type=int, default=640, help="letterbox size (default 640)")
    g.add_argument("--batch", type=int, default=16, help=batch_help)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    g.add_argument("--workers", type=int, default=None, help="image-decoding workers")
    if cache:
        g.add_argument("--cache", default=None, metavar="DIR",
                       help="embedding cache folder (default DATA/.detprune/cache)")


def _add_prune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="select a subset of a split and write a pruned YOLO dataset",
        description="Embed the split's images, select a class-balanced subset with METHOD, and write "
        "a pruned dataset (data.yaml, manifest.json, manifest.csv). Only the chosen split is reduced; "
        "val and test are referenced unchanged. The source is never modified.",
    )
    p.add_argument("data", help="data.yaml, or a folder with images/ and labels/")
    p.add_argument("--method", default="mms", help="selection method (see `detprune methods`; default mms)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--keep", type=float, help="fraction of the split's images to keep, in (0, 1]")
    size.add_argument("--budget", type=int, help="number of images to keep")
    p.add_argument("--split", default="train", help="split to reduce (default train)")
    p.add_argument("--out", default=None, help="output folder (default beside the dataset)")
    p.add_argument("--materialize", default="list", choices=["list", "symlink", "hardlink", "copy"],
                   help="list: a train.txt of kept paths, no copies (default); or build images/ and "
                        "labels/ with symlinks, hard links or copies")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--min-per-class", type=int, default=1, metavar="M",
                   help="every class keeps at least min(its images, M) images (default 1)")
    p.add_argument("--min-stratum-size", type=int, default=10, metavar="N",
                   help="merge smaller class-set strata (default 10)")
    p.add_argument("--box-weight", type=float, default=0.3,
                   help="share of box statistics in the selection space, 0 disables (default 0.3)")
    p.add_argument("--pca", type=int, default=None, metavar="D", help="PCA-reduce embeddings to D dims")
    p.add_argument("--dedup-threshold", type=float, default=None, metavar="T",
                   help="first drop near-duplicates closer than T (L2 in the selection space)")
    p.add_argument("--knn-index", default="exact", choices=["exact", "auto", "ivf", "hnsw"],
                   help="k-NN search of the graph-based methods: exact (default); auto: IVF from "
                        "200k images; ivf/hnsw: approximate; recall@k is measured and recorded "
                        "in the manifest")
    p.add_argument("--no-eps", action="store_true",
                   help="skip the epsilon-representativeness report (saves time on millions of images)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra method parameter (repeatable), e.g. --param temperature=0.5")
    p.add_argument("--country", default=None, help="ISO alpha-3 country for CO2 (e.g. ESP)")
    p.add_argument("--no-energy", action="store_true", help="do not track energy")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show codecarbon's log")
    _embedding_args(p)
    p.set_defaults(func=_cmd_prune)


def _parse_params(items: list[str]) -> dict:
    import yaml

    from .errors import ParameterError

    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--param expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _cmd_prune(args: argparse.Namespace) -> int:
    from . import pipeline

    result = pipeline.prune(
        args.data, method=args.method, keep=args.keep, budget=args.budget, split=args.split,
        out=args.out, materialize=args.materialize, seed=args.seed, weights=args.weights,
        imgsz=args.imgsz, batch=args.batch, device=args.device, workers=args.workers,
        cache=args.cache, min_per_class=args.min_per_class, min_stratum_size=args.min_stratum_size,
        box_weight=args.box_weight, pca_dim=args.pca, dedup_threshold=args.dedup_threshold,
        knn_index=args.knn_index, report_epsilon=not args.no_eps,
        method_params=_parse_params(args.param), country=args.country,
        measure_energy=not args.no_energy, force=args.force, progress=not args.quiet,
        verbose=args.verbose,
    )
    print(format_prune_report(result.manifest, result.out))
    return 0


def _fmt_num(x, unit: str = "", digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return f"0 {unit}".strip()
    return f"{x:.{digits}g} {unit}".strip()


def format_prune_report(m: dict, out) -> str:
    """The compact table printed after a prune."""
    lines = [
        f"pruned split '{m['source']['split']}' with {m['method']}: kept {m['kept']} of "
        f"{m['source']['images']} images ({100 * m['kept_fraction']:.1f}%)",
        "",
        f"  {'class':<22} {'images':>15} {'boxes':>17}",
    ]
    absent = 0
    for name, c in m["classes"].items():
        if not c["images_before"]:  # a class with no image in the split: one line for all
            absent += name != "(background)"
            continue
        lines.append(
            f"  {name:<22} {c['images_before']:>6} -> {c['images_after']:<6} "
            f"{c['boxes_before']:>7} -> {c['boxes_after']:<7}"
        )
    if absent:
        lines.append(f"  ({absent} class{'es' * (absent > 1)} with no image in this split not shown)")
    eps = m.get("epsilon") or {}
    labelled = any(c["images_before"] for n, c in m["classes"].items() if n != "(background)")
    if m.get("epsilon", {}) is None:
        lines.append("")
        lines.append("  epsilon: not computed (--no-eps)")
    elif eps and not labelled:
        lines.append("")
        lines.append("  epsilon: n/a (no image of the split has a box)")
    elif eps:
        lines.append("")
        lines.append(f"  epsilon (L-inf, max over classes): {_fmt_num(eps.get('eps_linf'))}   "
                     f"(L2: {_fmt_num(eps.get('eps_l2'))}; mean L2 to the nearest kept image: "
                     f"{_fmt_num(eps.get('mean_l2'))})")
    e = m["energy"]
    lines.append("")
    lines.append(f"  {'phase':<8} {'time':>9} {'energy':>13} {'CO2':>13}")
    for name, ph in [*e["phases"].items(), ("total", e["total"])]:
        lines.append(
            f"  {name:<8} {ph['seconds']:>8.1f}s {_fmt_num(ph['energy_kwh'], 'kWh'):>13} "
            f"{_fmt_num(ph['co2_kg'], 'kg'):>13}"
        )
    lines.append(f"  energy: {e['total']['method'] or 'n/a'}; country {e['total']['country'] or 'world average'}")
    w = m["embedding"]["weights"]
    lines.append(f"  embedding weights: {w.get('description') or w.get('kind')}")
    fails = m["source"]["images_failed_embedding"] + m["source"]["images_excluded_unreadable"]
    if fails:
        lines.append(f"  {len(fails)} images were left out: an image or label file that cannot be used "
                     "(unreadable, truncated, under 10 px, ...; reasons in manifest.json)")
    if m.get("labels_cleaned"):
        lines.append(f"  {len(m['labels_cleaned'])} kept images have bad label lines: written with their valid "
                     f"boxes into {out} (ultralytics would skip them whole)")
    if m.get("images_copied"):
        lines.append(f"  {len(m['images_copied'])} kept JPEGs have data after their end-of-image marker: "
                     f"copied into {out}/images/ (ultralytics rewrites such files in place)")
    for prob in m["source"].get("problems", []):
        if prob["kind"] in ("no-labels", "split-overlap"):
            lines.append(f"  warning: {prob['message']}")
    count = m["source"].get("problem_count", 0)
    if count:
        errors = m["source"].get("problem_errors")
        what = ("" if errors is None else
                f" ({errors} errors: those lines or images are left out; {count - errors} warnings)")
        lines.append(f"  {count} dataset problems{what}; see manifest.json or `detprune inspect`")
    lines.append("")
    lines.append(f"output: {out}")
    lines.append(f"train with: detprune train {out} --epochs 50   (or: yolo train data={out}/data.yaml)")
    return "\n".join(lines)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="rebuild a pruned dataset from its manifest",
        description="Re-materialise the selection recorded in MANIFEST (manifest.json or its folder). "
        "Fails if the source split changed since (by fingerprint).",
    )
    p.add_argument("manifest")
    p.add_argument("--out", required=True)
    p.add_argument("--materialize", default="copy", choices=["list", "symlink", "hardlink", "copy"],
                   help="how the kept images are written (default copy: a self-contained dataset)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from . import pipeline

    r = pipeline.export(args.manifest, out=args.out, materialize=args.materialize, force=args.force)
    print(f"exported {len(r.manifest['selected'])} images ({args.materialize}) to {r.out}")
    return 0


def _add_methods(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the selection methods")
    p.set_defaults(func=_cmd_methods)


def _cmd_methods(args: argparse.Namespace) -> int:
    from .select import available_methods

    methods = available_methods()
    width = max(len(k) for k in methods)
    for name, desc in methods.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "embed",
        help="compute (and cache) the image embeddings of a split",
        description="Embed every image of a split with the YOLOv5 backbone (P3, P4, P5 pooled) "
        "into the cache, so later prunes start at once.",
    )
    p.add_argument("data")
    p.add_argument("--split", default="train")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--save", default=None, metavar="FILE.npy",
                   help="also save the matrix as .npy, with the images in row order in "
                        "FILE.images.txt beside it")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this machine (default); ray: a Ray cluster, one model per actor, "
                        "GPU actors when it has GPUs (needs `pip install \"detprune[ray]\"`; "
                        "images and --cache on storage shared by all nodes; see docs/scaling.md)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --engine ray: 'auto' (the cluster started with `ray start`) or "
                        "HOST:PORT (default: a private Ray instance on this machine)")
    p.add_argument("--ray-actors", type=int, default=None, metavar="N",
                   help="with --engine ray: actor pool size (default one per GPU, else CPUs/4)")
    _embedding_args(p)
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from . import pipeline

    r = pipeline.embed(
        args.data, split=args.split, weights=args.weights, imgsz=args.imgsz, batch=args.batch,
        device=args.device, workers=args.workers, cache=args.cache, progress=not args.quiet,
        save=args.save, engine=args.engine, ray_address=args.ray_address,
        ray_actors=args.ray_actors,
    )
    print(
        f"embedded {r['images']} images of '{args.split}' -> {r['dims']} dims "
        f"({r['computed']} computed, {r['cached']} from cache, {r['failed']} failed) "
        f"in {r['seconds']:.1f}s; weights: {r['weights']}"
    )
    if r.get("saved"):
        print(f"  saved: {r['saved'][0]} (rows in the order of {r['saved'][1]})")
    ray_run = r.get("ray") or {}
    if ray_run.get("shards"):
        print(
            f"  ray: {ray_run['shards']} shards merged from {ray_run['actors']} actor(s) "
            f"({'GPU' if ray_run.get('gpus_per_actor') else 'CPU'}) at {ray_run['address']}"
        )
    for path, why in r["failures"][:20]:
        print(f"  {path}: {why}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a YOLO detector on a (pruned) dataset and record accuracy and cost",
        description="Train with ultralytics (offline) on DATA and write OUT/results.json: mAP50, "
        "mAP50-95 and per-class AP on the untouched val split (best weights), images seen, "
        "optimizer steps, time, energy and CO2; for a pruned dataset also the pruning cost and "
        "the combined 'reduction + training' figure. --schedule reduces the data per epoch "
        "(step:F@P, increment:F, cut:K[:F]).",
    )
    p.add_argument("data", help="data.yaml, or a (pruned) dataset folder holding one")
    p.add_argument("--model", default="auto",
                   help="model yaml (random init), ultralytics checkpoint (yolov5nu.pt) or legacy "
                        "yolov5 checkpoint (backbone and neck transferred, head fresh); default auto: "
                        "a local yolov5nu.pt or yolov5n.pt, else the checkpoint the pruned dataset "
                        "was embedded with, else yolov5n.yaml from scratch (warned)")
    p.add_argument("--epochs", type=int, required=True, help="number of epochs")
    p.add_argument("--imgsz", type=int, default=640, help="image size (default 640)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--workers", type=int, default=None, help="data-loading workers (GPU only)")
    p.add_argument("--country", default=None, help="ISO alpha-3 country for CO2 (e.g. ESP)")
    p.add_argument("--out", default=None,
                   help="run folder (default ./runs/detprune/<data>-<model>-e<epochs>[-<schedule>])")
    p.add_argument("--schedule", default=None, metavar="SPEC",
                   help="dynamic data reduction: step:F@P (fraction F of the images for the first "
                        "P share of the epochs), increment:F (F growing linearly to 1), cut:K[:F] "
                        "(K segments, each growing from F to 1; F default 0.1)")
    p.add_argument("--order-by", default=None, metavar="ORDER",
                   help="which images a reduced epoch uses: 'random' (a new subset per epoch, "
                        "default), 'manifest' (the top of the pruning manifest's pick order), or a "
                        "selection METHOD (e.g. mms, fl: the top of its full pick order over the "
                        "training images, computed with --weights)")
    p.add_argument("--weights", default="auto",
                   help="embedding weights for --order-by METHOD (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--patience", type=int, default=100,
                   help="early stopping after N epochs without improvement (default 100)")
    p.add_argument("--no-val", action="store_true",
                   help="validate only after the last epoch (best = last)")
    p.add_argument("--plots", action="store_true", help="let ultralytics draw its plots")
    p.add_argument("--no-amp", action="store_true", help="no bf16 mixed precision on GPU")
    p.add_argument("--no-energy", action="store_true", help="do not track energy")
    p.add_argument("--force", action="store_true", help="replace a previous run in --out")
    p.add_argument("--keep-label-cache", action="store_true",
                   help="keep the labels/*.cache files ultralytics writes beside the dataset's labels "
                        "(default: removed again, the dataset folder is left as it was)")
    p.add_argument("--verbose", action="store_true", help="show ultralytics' and codecarbon's log")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    order_by = order_name = args.order_by
    if order_by not in (None, "random", "manifest"):
        from . import pipeline

        if args.schedule is None:  # before ranking every image with the method
            from .errors import ParameterError

            raise ParameterError(f"--order-by {order_by} needs --schedule (without one every epoch uses "
                                 "every image)")

        order_by = pipeline.rank(
            args.data, method=order_by, weights=args.weights, imgsz=args.imgsz,
            seed=args.seed, progress=True,
        )
    r = train(
        args.data, model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
        device=args.device, workers=args.workers, country=args.country, out=args.out,
        seed=args.seed, schedule=args.schedule, order_by=order_by, order_name=order_name,
        patience=args.patience,
        val=not args.no_val, plots=args.plots, amp=not args.no_amp,
        measure_energy=not args.no_energy, force=args.force,
        keep_label_cache=args.keep_label_cache, verbose=args.verbose,
    )
    print(format_train_report(r.results))
    return 0


def format_train_report(res: dict) -> str:
    """The compact summary printed after a training run."""
    n, epochs = res["data"]["train_images"], res["epochs"]
    full = n * epochs
    share = f" ({100 * res['images_seen'] / full:.1f}% of {epochs} full epochs)" if full else ""
    m = res["metrics"]
    sched = res["schedule"]["spec"]
    lines = [
        f"trained {res['model']['arch']} ({res['model']['kind']}) for {res['epochs_completed']} "
        f"epochs on {n} images" + (f", schedule {sched} ({res['schedule']['order_by']})" if sched else ""),
        f"  mAP50 {m['mAP50']:.4f}   mAP50-95 {m['mAP50-95']:.4f}   (val split, {m['weights']} weights)",
        f"  images seen {res['images_seen']}{share}; optimizer steps {res['optimizer_steps']}",
        "",
        f"  {'phase':<20} {'time':>9} {'energy':>13} {'CO2':>13}",
    ]
    rows = [*res["energy"]["phases"].items(), ("training total", res["energy"]["total"])]
    if res.get("pruning"):
        rows.append(("pruning", res["pruning"]["energy"]))
        rows.append(("pruning + training", res["combined"]))
    for name, ph in rows:
        secs = ph.get("seconds")
        lines.append(
            f"  {name:<20} {(f'{secs:.1f}s' if secs is not None else 'n/a'):>9} "
            f"{_fmt_num(ph.get('energy_kwh'), 'kWh'):>13} {_fmt_num(ph.get('co2_kg'), 'kg'):>13}"
        )
    lines.append(f"  energy: {res['energy']['total']['method'] or 'n/a'}")
    t = (res["model"].get("transfer") or {})
    if t:
        lines.append(f"  weights: {t['tensors_transferred']}/{t['tensors_total']} tensors transferred; "
                     f"fresh layers {t['layers_fresh']}")
    lines.append("")
    lines.append(f"output: {res['out']}/results.json")
    return "\n".join(lines)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare training runs: mAP kept against images, time, energy and CO2",
        description="One table of the runs' mAP50, mAP50-95, images seen, time, energy and CO2, "
        "each relative to a baseline run (default: the run with the most images seen).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="folders written by detprune train")
    p.add_argument("--baseline", default=None, metavar="RUN_DIR",
                   help="reference run (default: the one with the most images seen)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write FILE.md and FILE.csv (a .md or .csv suffix is replaced) instead of "
                        "only printing")
    p.add_argument("--format", default="markdown", choices=["markdown", "csv"],
                   help="what is printed (default markdown)")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ._io import atomic_write_text
    from .train import compare_runs

    c = compare_runs(args.runs, baseline=args.baseline)
    md, csv_text = c.to_markdown(), c.to_csv()
    print(md if args.format == "markdown" else csv_text, end="")
    if args.format != "markdown":
        for w in c.warnings:
            print(f"detprune: warning: {w}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() in (".md", ".csv"):
            out = out.with_suffix("")
        atomic_write_text(out.with_name(out.name + ".md"), md)
        atomic_write_text(out.with_name(out.name + ".csv"), csv_text)
        print(f"\ntable written to {out}.md and {out}.csv")
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="prune + train every method x kept fraction x seed (plus a full-data baseline) "
             "and write results.csv, plots and a report",
        description="The paper's experiment in one command: for every seed, train a full-data "
        "baseline and, for every kept fraction and method, prune and train. Embeddings are computed "
        "once and shared. Resumable: run the same command again after an interruption and finished "
        "cells are skipped. Writes OUT/results.csv, OUT/report.md, OUT/report.html and OUT/plots/.",
    )
    p.add_argument("data", help="data.yaml, or a folder with images/ and labels/ (needs a val split)")
    p.add_argument("--methods", default="srs,mms", help="comma-separated methods (default srs,mms)")
    p.add_argument("--keep", default="0.1,0.3,0.5", metavar="FRACTIONS",
                   help="comma-separated kept fractions in (0, 1) (default 0.1,0.3,0.5)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--epochs", type=int, required=True, help="epochs of the full-data run")
    p.add_argument("--match", default="epochs", choices=["epochs", "steps"],
                   help="epochs: every cell trains --epochs epochs (the paper's protocol; pruned runs "
                        "are cheaper and take fewer steps); steps: pruned cells train more epochs so "
                        "that every cell takes about as many optimizer steps as the full run")
    p.add_argument("--model", default="auto",
                   help="model to fine-tune (yaml, ultralytics or legacy yolov5 checkpoint; default "
                        "auto: a local yolov5nu.pt or yolov5n.pt, else yolov5n.yaml from scratch)")
    p.add_argument("--out", default=None, help="sweep folder (default ./runs/detprune/sweep-<data>)")
    p.add_argument("--no-baseline", action="store_true", help="do not train the full-data baseline")
    p.add_argument("--val-each-epoch", action="store_true",
                   help="validate every epoch and report the best epoch (default: validate once, "
                        "last weights, so cells with more epochs get no more chances on val)")
    p.add_argument("--country", default=None, help="ISO alpha-3 country for CO2 (e.g. ESP)")
    p.add_argument("--no-energy", action="store_true", help="do not track energy")
    p.add_argument("--force", action="store_true",
                   help="start over when OUT holds other content or a sweep with other settings")
    p.add_argument("--verbose", action="store_true", help="show ultralytics' and codecarbon's log")
    _embedding_args(p, cache=False,  # a sweep keeps its embeddings in OUT/cache
                    batch_help="images per forward pass of the embedding and per training batch "
                               "(drives --match steps; default 16)")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    import shlex

    from .sweep import FULL, sweep

    def on_event(kind: str, cell, info: dict) -> None:
        what = "full data" if cell.method == FULL else f"{cell.method} keep {cell.keep:g}"
        if kind == "start":
            print(f"[{cell.id}] {what}, seed {cell.seed} ...", flush=True)
        elif kind == "skip":
            print(f"[{cell.id}] finished before, skipped", flush=True)
        elif kind == "done":
            print(f"[{cell.id}] {info['n_kept']} images, {info['epochs']} epochs: "
                  f"mAP50-95 {_fmt_num(info.get('map50_95'))}, "
                  f"energy {_fmt_num(info.get('energy_kwh'), 'kWh')}", flush=True)
        elif kind == "fail":
            print(f"[{cell.id}] FAILED: {info['error']}", file=sys.stderr, flush=True)

    r = sweep(
        args.data, methods=args.methods, keeps=args.keep, seeds=args.seeds, epochs=args.epochs,
        match=args.match, model=args.model, weights=args.weights, imgsz=args.imgsz,
        batch=args.batch, device=args.device, workers=args.workers, out=args.out,
        baseline=not args.no_baseline, val_each_epoch=args.val_each_epoch, country=args.country,
        measure_energy=not args.no_energy,
        force=args.force, progress=True, verbose=args.verbose,
        command="detprune sweep " + " ".join(shlex.quote(a) for a in args.argv),
        on_event=on_event,
    )
    print(f"\n{len(r.rows)} cells finished ({len(r.skipped)} from before), {len(r.failed)} failed")
    print(f"results: {r.out / 'results.csv'}")
    if r.report is not None:
        print(f"report:  {r.report}")
    if r.failed:
        print(f"detprune: error: {len(r.failed)} cell(s) failed ({', '.join(r.failed)}); "
              "rerun the same command to retry them", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="rewrite a sweep's summary, plots and report from its results.csv",
    )
    p.add_argument("sweep_dir", help="a folder written by `detprune sweep`")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .sweep import write_sweep_report

    print(f"report: {write_sweep_report(args.sweep_dir)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detprune",
        description="Prune object-detection training sets in YOLOv5 embedding space.",
    )
    parser.add_argument("--version", action="version", version=f"detprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_inspect(sub)
    _add_embed(sub)
    _add_prune(sub)
    _add_export(sub)
    _add_methods(sub)
    _add_train(sub)
    _add_compare(sub)
    _add_sweep(sub)
    _add_report(sub)
    return parser


_SHOWN: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, without source locations, each text once per run."""
    text = str(message).strip().replace("\n", " ")
    if text in _SHOWN:
        return
    _SHOWN.add(text)
    print(f"detprune: warning: {text}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # also after the command: `detprune inspect DATA --debug`
    argv = [a for a in argv if a != "--debug"]
    args = parser.parse_args(argv)
    args.debug = args.debug or debug
    args.argv = argv[argv.index(args.command) + 1:] if args.command in argv else argv
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    if not args.debug:
        warnings.showwarning = _show_warning
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal: escapes, not a crash
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        from ._interrupt import install

        install()
        return args.func(args)
    except DetpruneError as exc:
        if args.debug:
            raise
        print(printable(f"detprune: error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("detprune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in (errno.ENOSPC, errno.EIO):
            # print() to a full or failing stdout (`> /dev/full`); the files were written
            with contextlib.suppress(OSError):
                print(f"detprune: error: cannot write to standard output: {exc.strerror}",
                      file=sys.stderr)
            return EXIT_ERROR
        print(
            printable(f"detprune: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)"),
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
