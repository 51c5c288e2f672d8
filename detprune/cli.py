"""Command line: a thin layer over :mod:`detprune.pipeline`.

Exit codes: 0 success, 1 error (one line on stderr), 2 bad usage,
3 problems found under ``--strict``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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
    from ._io import atomic_write_json
    from .dataset.summary import format_summary

    summary = pipeline.inspect(
        args.data,
        splits=args.splits,
        check_images=not args.no_check_images,
        min_stratum_size=args.min_stratum_size,
    )
    if args.json == "-":
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary, max_problems=args.max_problems))
        if args.json:
            atomic_write_json(args.json, summary)
            print(f"\nsummary written to {args.json}")
    if args.strict and summary["problems"]:
        return EXIT_STRICT
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except DetpruneError as exc:
        if args.debug:
            raise
        print(f"detprune: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("detprune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"detprune: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
