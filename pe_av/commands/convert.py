"""``pe-av convert``: one of Meta's original checkpoints → a pe_av / transformers checkpoint (see
:mod:`pe_av.convert`)."""

from __future__ import annotations

import argparse

from .common import DTYPES

NAME = "convert"
HELP = "convert a checkpoint of Meta's original code (perception_models) into pe_av's layout"
EPILOG = """\
SRC holds the original checkpoint (config.json, model.safetensors, tokenizer files), e.g. the
`perception_models` revision of facebook/pe-av-large or facebook/pe-a-frame-large. DST is written
atomically (a temporary folder next to it, renamed once complete and verified); an existing DST
needs --overwrite.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="folder of the original checkpoint")
    parser.add_argument("dst", help="folder to write (must not exist unless --overwrite)")
    parser.add_argument("--dtype", choices=DTYPES, help="dtype of the written weights (default: the original's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    parser.add_argument("--no-verify", action="store_true", help="skip reloading DST and the check forward")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    if args.src == args.dst:
        usage.error("SRC and DST must differ")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..convert import convert_original

    report = convert_original(args.src, args.dst, dtype=args.dtype, overwrite=args.overwrite,
                              verify=not args.no_verify, progress=not args.no_progress)
    print(f"{args.dst}: {report.model_class} ({report.kind}), {report.mapped} original tensors mapped, "
          f"{report.written} written, {len(report.dropped)} unused dropped, {len(report.filled)} filled "
          f"(logit scales/biases the original lacks)")
    if report.verify:
        print("verified: " + ", ".join(f"{name} max|x| {value:.4g}" for name, value in sorted(report.verify.items())))
    return 0
