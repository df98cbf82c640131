"""``pe-av search``: the files of an index that best match a text or a media file (see :mod:`pe_av.index`)."""

from __future__ import annotations

import argparse

from ..index.manifest import MODALITIES
from ..index.search import BACKENDS
from .common import positive_int

NAME = "search"
HELP = "search an index (from pe-av index) by text or by a media file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", metavar="INDEX", help="index folder written by pe-av index")
    parser.add_argument("query", nargs="?", help="text to search for (in each modality's text space)")
    parser.add_argument("--like", metavar="FILE", help="search by a media file instead of a text (media → media)")
    parser.add_argument("--k", type=int, default=10, help="results to show (default 10)")
    parser.add_argument("--modality", choices=MODALITIES, help="search only these rows (default: all)")
    parser.add_argument("--backend", choices=BACKENDS, default="exact",
                        help="exact: chunked matmul over the shards (default); faiss: a FAISS index "
                        "(pip install 'pe-av[faiss]')")
    parser.add_argument("--model", help="checkpoint directory, if it moved since the index was built")
    parser.add_argument("--json", action="store_true", help="print the results as JSON lines")


def validate(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    positive_int("--k", args.k, usage)
    if (args.query is None) == (args.like is None):
        usage.error("give a text query or --like FILE (one of them)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from ..index.cli import run_search

    return run_search(args)
