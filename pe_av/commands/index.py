"""``pe-av index``: embed a media folder into a searchable index, or update one (see :mod:`pe_av.index`)."""

from __future__ import annotations

import argparse

from ..dispatch import BACKENDS
from .common import DTYPES, positive_int

NAME = "index"
HELP = "embed a folder of media into a searchable index (or update it)"
EPILOG = """\
INDEX is a folder: manifest.jsonl (one line per file: path, size, mtime, modalities, duration; the
header names the model and its config hash) and shards/*.safetensors (one per finished batch). Run
the same command again to update it: new and changed files are embedded, deleted ones dropped,
unchanged ones skipped. A file that cannot be embedded becomes a failure record (retried when it
changes, or with --retry-failed). After a crash or Ctrl-C, run it again: finished batches are kept.

exit status: 0 every file embedded; 1 some files failed (listed), or an error; 2 usage error;
130 interrupted (finished batches kept).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="media folder, walked recursively")
    parser.add_argument("--model", help="checkpoint directory (default: the one the index was built with)")
    parser.add_argument("--out", required=True, metavar="INDEX", help="index folder to create or update")
    parser.add_argument("--ext", help="comma-separated extensions to index (default: common audio and video "
                        "ones, e.g. .wav,.flac,.mp3,.mp4,.mkv,.webm)")
    parser.add_argument("--modality", help="comma-separated subset of audio,video,audio_video to embed "
                        "(default: every one the model has; each file gets those its tracks allow)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes (0: decode in the main "
                        "process; default 2)")
    parser.add_argument("--num-frames", type=int, help="sample this many evenly spaced frames per video")
    parser.add_argument("--attn-impl", choices=BACKENDS, help="backend (default: the device's)")
    parser.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--dtype", choices=DTYPES, help="weights dtype (default float32)")
    parser.add_argument("--no-normalize", action="store_true", help="keep raw (not L2-normalized) embeddings")
    parser.add_argument("--retry-failed", action="store_true", help="try unchanged files that failed before again")
    parser.add_argument("--overwrite", action="store_true", help="rebuild the index from scratch (also when it "
                        "was built with another model or settings)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    ray = parser.add_argument_group("Ray (pip install 'pe-av[ray]')")
    ray.add_argument("--ray", action="store_true", help="run on a Ray cluster: decoding in CPU tasks, the model "
                     "on model actors (same index layout)")
    ray.add_argument("--address", help="cluster to join: auto (the one `ray start` runs here), ray://host:port "
                     "(default: the running one, or a local one started for this run)")
    ray.add_argument("--actors", type=int, default=1, help="model actors, each loading the model once (default 1)")
    ray.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs per model actor (default 0; 1 for "
                     "one GPU each, 0.5 for two actors per GPU)")
    ray.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs per model actor (default 1)")
    ray.add_argument("--decoders", type=int, help="decoding tasks at once (default: as many as the free CPUs "
                     "allow)")
    ray.add_argument("--cpus-per-decoder", type=float, default=1.0, help="CPUs per decoding task (default 1)")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    positive_int("--batch-size", args.batch_size, usage)
    positive_int("--num-frames", args.num_frames, usage)
    if args.workers < 0:
        usage.error("--workers must be 0 or more")
    positive_int("--actors", args.actors, usage)
    positive_int("--decoders", args.decoders, usage)
    for flag, value in (("--gpus-per-actor", args.gpus_per_actor), ("--cpus-per-actor", args.cpus_per_actor),
                        ("--cpus-per-decoder", args.cpus_per_decoder)):
        if value < 0 or (value == 0 and flag != "--gpus-per-actor"):
            usage.error(f"{flag} must be {'0 or more' if flag == '--gpus-per-actor' else 'more than 0'}")
    ray_only = [flag for flag, given in (("--address", args.address is not None), ("--actors", args.actors != 1),
                                         ("--decoders", args.decoders is not None)) if given]
    if ray_only and not args.ray:
        usage.error(f"{', '.join(ray_only)} need --ray")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..index.cli import run_index

    return run_index(args)
