"""``pe-av embed``: embed media files and captions with a checkpoint (see :mod:`pe_av.embed_run`)."""

from __future__ import annotations

import argparse

from ..dispatch import BACKENDS
from .common import DTYPES, MODALITIES, positive_int

NAME = "embed"
HELP = "embed media files and/or texts with a checkpoint"
EPILOG = """\
with --out, each finished batch is saved at once in OUT.parts/ (numbered shards + failures.jsonl);
at the end OUT is written atomically in input order and OUT.parts/ is removed. An input that cannot
be embedded is skipped and named (also in OUT.failures.jsonl); the output holds the others, in input
order. After a crash or Ctrl-C, rerun the same command with --resume to embed only what is missing.

exit status: 0 all embedded; 1 some inputs failed, --fail-fast stopped, or an error; 2 usage error;
130 / 143 stopped by SIGINT / SIGTERM (finished batches kept; continue with --resume).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", help="audio or video files")
    parser.add_argument("--model", required=True, help="checkpoint directory (config.json, model.safetensors, "
                        "processor files)")
    parser.add_argument("--text", nargs="+", help="captions to embed and compare with the files")
    parser.add_argument("--out", help="write embeddings to .npy (media; texts go to <stem>.text.npy) or "
                        ".safetensors (both, with file names in the metadata)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (and start an "
                        "unfinished run's OUT.parts/ over, unless --resume)")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in OUT.parts/: reuse "
                        "its finished batches, embed the rest (same model and settings)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first input that cannot be embedded "
                        "(default: skip it, report it, exit 1 at the end)")
    parser.add_argument("--modality", choices=MODALITIES, default="auto",
                        help="what to embed from the files (auto: audio+video when every file has both "
                        "and the model can, else video, else audio)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-frames", type=int, help="sample this many evenly spaced frames per video")
    parser.add_argument("--fps", type=float, help="sample one frame every 1/FPS seconds of video (not with "
                        "--num-frames)")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video, evenly spaced over "
                        "it when there would be more")
    parser.add_argument("--attn-impl", choices=BACKENDS, help="backend (default: the device's)")
    parser.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, help="weights dtype (default float32)")
    parser.add_argument("--no-normalize", action="store_true", help="keep raw (not L2-normalized) embeddings")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    positive_int("--batch-size", args.batch_size, usage)
    positive_int("--num-frames", args.num_frames, usage)
    positive_int("--max-frames", args.max_frames, usage)
    if args.fps is not None and not args.fps > 0:
        usage.error("--fps must be a positive number")
    if args.fps is not None and args.num_frames is not None:
        usage.error("give --num-frames or --fps, not both")
    if not args.files and not args.text:
        usage.error("give media files, --text, or both")
    for flag in ("resume", "overwrite"):
        if getattr(args, flag) and not args.out:
            usage.error(f"--{flag} needs --out")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..embed_run import run_embed

    return run_embed(args, argv)
