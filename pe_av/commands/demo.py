"""``pe-av demo``: the whole pipeline on a tiny random model and generated media (see :mod:`pe_av.demo`)."""

from __future__ import annotations

import argparse

from ..dispatch import BACKENDS
from .common import parse_backends, positive_int

NAME = "demo"
HELP = "run the whole pipeline on a tiny random model and generated media"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per backend; the median is shown (default 5)")
    parser.add_argument("--backends", type=parse_backends, default=list(BACKENDS),
                        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)")
    parser.add_argument("--keep", metavar="DIR", help="write the model and media files to DIR and keep them")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    positive_int("--repeats", args.repeats, usage)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..demo import run_demo

    run_demo(args.repeats, args.backends, args.keep)
    return 0
