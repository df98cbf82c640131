"""The ``pe-av`` command line.

- ``pe-av demo``: the whole pipeline on a tiny random PE-AV model built on the spot (no network, no
  checkpoint): save and reload model + processor, write synthetic audio/video files, decode and
  process them, embed with every backend, print text↔media similarities and per-backend timings
  (see :mod:`pe_av.demo`).
- ``pe-av embed --model DIR FILES... [--text ...]``: embed media files (and captions) with a
  checkpoint, print text↔media cosine similarities, optionally write the embeddings
  (``.npy`` or ``.safetensors``), saving as it goes so an interrupted run can ``--resume`` (see
  :mod:`pe_av.embed_run` and :mod:`pe_av.embed_parts`).

Errors are one line on stderr, ``pe-av <command>: error: <file or argument>: <message>``, with exit
status 1 (2 for usage errors, from argparse); ``PE_AV_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from .demo import run_demo
from .dispatch import BACKENDS
from .embed_parts import CliError
from .embed_run import OUT_FORMATS, run_embed

MODALITIES = ("auto", "audio", "video", "audio_video")
__all__ = ["OUT_FORMATS", "main"]


# ---------------------------------------------------------------------- arguments


def _parse_backends(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"backends must be a comma-separated subset of {BACKENDS}, got {value!r}")
    return names


# ---------------------------------------------------------------------- entry point


EMBED_EPILOG = """\
with --out, each finished batch is saved at once in OUT.parts/ (numbered shards + failures.jsonl);
at the end OUT is written atomically in input order and OUT.parts/ is removed. An input that cannot
be embedded is skipped and named (also in OUT.failures.jsonl); the output holds the others, in input
order. After a crash or Ctrl-C, rerun the same command with --resume to embed only what is missing.

exit status: 0 all embedded; 1 some inputs failed, --fail-fast stopped, or an error; 2 usage error;
130 / 143 stopped by SIGINT / SIGTERM (finished batches kept; continue with --resume).
"""


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="pe-av", description="PE-AV encoders: fast, faithful, drop-in.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on a tiny random model and generated media")
    demo.add_argument("--repeats", type=int, default=5, help="timed passes per backend; the median is shown (default 5)")
    demo.add_argument("--backends", type=_parse_backends, default=list(BACKENDS),
                      help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)")
    demo.add_argument("--keep", metavar="DIR", help="write the model and media files to DIR and keep them")

    embed = sub.add_parser("embed", help="embed media files and/or texts with a checkpoint", epilog=EMBED_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    embed.add_argument("files", nargs="*", help="audio or video files")
    embed.add_argument("--model", required=True, help="checkpoint directory (config.json, model.safetensors, "
                       "processor files)")
    embed.add_argument("--text", nargs="+", help="captions to embed and compare with the files")
    embed.add_argument("--out", help="write embeddings to .npy (media; texts go to <stem>.text.npy) or "
                       ".safetensors (both, with file names in the metadata)")
    embed.add_argument("--overwrite", action="store_true", help="replace existing outputs (and start an "
                       "unfinished run's OUT.parts/ over, unless --resume)")
    embed.add_argument("--resume", action="store_true", help="continue the unfinished run in OUT.parts/: reuse "
                       "its finished batches, embed the rest (same model and settings)")
    embed.add_argument("--fail-fast", action="store_true", help="stop at the first input that cannot be embedded "
                       "(default: skip it, report it, exit 1 at the end)")
    embed.add_argument("--modality", choices=MODALITIES, default="auto",
                       help="what to embed from the files (auto: audio+video when every file has both "
                       "and the model can, else video, else audio)")
    embed.add_argument("--batch-size", type=int, default=8)
    embed.add_argument("--num-frames", type=int, help="sample this many evenly spaced frames per video")
    embed.add_argument("--attn-impl", choices=BACKENDS, help="backend (default: the device's)")
    embed.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default cpu)")
    embed.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="weights dtype (default float32)")
    embed.add_argument("--no-normalize", action="store_true", help="keep raw (not L2-normalized) embeddings")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser, {"demo": demo, "embed": embed}


def _error_line(exc: BaseException) -> str:
    """One line for an exception: ``<file or argument>: <message>``."""
    from .encode import describe_error

    return str(exc) if isinstance(exc, CliError) else describe_error(exc)


def main(argv: list[str] | None = None) -> int:
    """Run ``pe-av`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _parser()
    args = parser.parse_args(argv)
    usage = commands[args.command]
    if args.command == "demo":
        if args.repeats < 1:
            usage.error("--repeats must be at least 1")
    else:
        if args.batch_size < 1:
            usage.error("--batch-size must be at least 1")
        if args.num_frames is not None and args.num_frames < 1:
            usage.error("--num-frames must be at least 1")
        if not args.files and not args.text:
            usage.error("give media files, --text, or both")
        for flag in ("resume", "overwrite"):
            if getattr(args, flag) and not args.out:
                usage.error(f"--{flag} needs --out")
    try:
        if args.command == "demo":
            run_demo(args.repeats, args.backends, args.keep)
            return 0
        return run_embed(args, argv)
    except KeyboardInterrupt:
        print(f"pe-av {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("PE_AV_DEBUG") == "1":
            raise
        print(f"pe-av {args.command}: error: {_error_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
