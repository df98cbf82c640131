"""``pe-av classify``: zero-shot classify media files into labels (see :mod:`pe_av.tasks.classify`)."""

from __future__ import annotations

import argparse

from ..dispatch import BACKENDS
from .common import DTYPES, MODALITIES, positive_int

NAME = "classify"
HELP = "zero-shot classify media files into text labels"
EPILOG = """\
each label is embedded with a template ensemble (--templates: sounds, actions, none, or a file with one
template a line, '{}' where the label goes); probabilities are sigmoid(logit) per label with the
model's own logit scale and bias (--softmax: a softmax over the labels instead).

output: a table (default), --json or --csv on stdout, or written atomically to --out (never replacing
a file unless --overwrite). A file that cannot be read is skipped and named; exit status 1 then.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="audio or video files")
    parser.add_argument("--model", required=True, help="checkpoint directory (with processor files)")
    parser.add_argument("--labels", nargs="+", help="label names")
    parser.add_argument("--labels-file", help="a text file with one label a line")
    parser.add_argument("--templates", help="sounds, actions, none, or a file of templates (default: sounds "
                        "for audio, actions for video)")
    parser.add_argument("--target", choices=MODALITIES, default="auto", help="what of the files to classify "
                        "(auto: audio+video when every file has both and the model can, else video, else audio)")
    parser.add_argument("--top-k", type=int, help="show the k most likely labels per file (default: all)")
    parser.add_argument("--softmax", action="store_true", help="one label per file: softmax over the labels")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON rows {input, rank, label, probability, logit}")
    form.add_argument("--csv", action="store_true", help="CSV with the same columns")
    parser.add_argument("--out", help="write the rows to this file (.json or .csv) instead of stdout")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--num-frames", type=int, help="sample this many evenly spaced frames per video")
    parser.add_argument("--fps", type=float, help="sample one frame every 1/FPS seconds of video")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--attn-impl", choices=BACKENDS, help="backend (default: the device's)")
    parser.add_argument("--device", help="e.g. cpu, cuda (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, help="weights dtype (default float32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    for flag in ("batch_size", "top_k", "num_frames", "max_frames"):
        positive_int("--" + flag.replace("_", "-"), getattr(args, flag), usage)
    if not args.labels and not args.labels_file:
        usage.error("give --labels or --labels-file")
    if args.fps is not None and not args.fps > 0:
        usage.error("--fps must be a positive number")
    if args.fps is not None and args.num_frames is not None:
        usage.error("give --num-frames or --fps, not both")
    if args.overwrite and not args.out:
        usage.error("--overwrite needs --out")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..tasks.cli_runs import run_classify

    return run_classify(args)
