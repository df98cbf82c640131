"""``pe-av detect``: when do text queries sound in an audio file (see :mod:`pe_av.tasks.events`)."""

from __future__ import annotations

import argparse

from ..dispatch import BACKENDS
from .common import DTYPES, positive_int

NAME = "detect"
HELP = "find sound events (onset, offset) of text queries with a frame-level model (PE-A-Frame)"
EPILOG = """\
the model scores every audio frame (hop_length samples of its config, 40 ms for PE-A-Frame) against
each query; frames above --threshold after an optional --median-filter form events, events closer
than --merge-gap are merged, shorter ones than --min-duration dropped. Long audio is scored in
windows of --window-s seconds (overlapping when --hop-s is smaller; overlaps are averaged).

output: rows (query, onset_s, offset_s, score) as a table, --json or --csv on stdout, or written
atomically to --out; --plot PNG draws the score curves with the events shaded (needs matplotlib:
pip install 'pe-av[plot]'). Existing files are replaced only with --overwrite.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an audio file (or a video file with an audio track)")
    parser.add_argument("--model", required=True, help="a PE-A-Frame checkpoint directory (model_type pe_audio)")
    parser.add_argument("--queries", nargs="+", required=True, help="text queries, e.g. 'a dog barking'")
    parser.add_argument("--threshold", type=float, default=0.3, help="probability above which a frame is active "
                        "(default 0.3)")
    parser.add_argument("--median-filter", type=float, metavar="SECONDS", help="running median over this long")
    parser.add_argument("--min-duration", type=float, default=0.0, metavar="SECONDS", help="drop shorter events")
    parser.add_argument("--merge-gap", type=float, default=0.0, metavar="SECONDS",
                        help="merge events separated by at most this long")
    parser.add_argument("--window-s", type=float, default=30.0, help="seconds scored at once (default 30)")
    parser.add_argument("--hop-s", type=float, help="seconds between window starts (default: --window-s)")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON rows {query, onset_s, offset_s, score}")
    form.add_argument("--csv", action="store_true", help="CSV with the same columns")
    parser.add_argument("--out", help="write the rows to this file (.json or .csv) instead of stdout")
    parser.add_argument("--plot", metavar="PNG", help="draw the scores and events to this PNG file")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --out / --plot files")
    parser.add_argument("--batch-size", type=int, default=4, help="windows scored at once")
    parser.add_argument("--attn-impl", choices=BACKENDS, help="backend (default: the device's)")
    parser.add_argument("--device", help="e.g. cpu, cuda (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, help="weights dtype (default float32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    positive_int("--batch-size", args.batch_size, usage)
    if not 0 <= args.threshold < 1:
        usage.error("--threshold must be in [0, 1)")
    for flag in ("median_filter", "min_duration", "merge_gap"):
        value = getattr(args, flag)
        if value is not None and not value >= 0:
            usage.error(f"--{flag.replace('_', '-')} must be >= 0 seconds")
    for flag in ("window_s", "hop_s"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            usage.error(f"--{flag.replace('_', '-')} must be > 0 seconds")
    if args.hop_s is not None and args.hop_s > args.window_s:
        usage.error("--hop-s must not exceed --window-s")
    if args.overwrite and not (args.out or args.plot):
        usage.error("--overwrite needs --out or --plot")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..tasks.cli_runs import run_detect

    return run_detect(args)
