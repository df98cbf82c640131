"""What ``pe-av index`` and ``pe-av search`` run (their arguments: :mod:`pe_av.commands.index` and
:mod:`pe_av.commands.search`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..embed_parts import CliError
from .manifest import MANIFEST, read_manifest

__all__ = ["print_hits", "run_index", "run_search"]


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _model_dir(args: argparse.Namespace) -> str:
    """``--model``, or the checkpoint an existing index (not being rebuilt) was built with."""
    if args.model:
        return args.model
    manifest = Path(args.out) / MANIFEST
    if manifest.is_file() and not args.overwrite:
        return read_manifest(args.out)[0].model
    raise CliError("--model", "is needed to build a new index (an existing one remembers its model)")


def run_index(args: argparse.Namespace) -> int:
    """``pe-av index``; returns the exit status (1 when some files failed)."""
    model_dir = _model_dir(args)
    if getattr(args, "ray", False):
        from ..distributed.cli import run_ray_index

        report = run_ray_index(args, model_dir, _say)
    else:
        from .build import build_index

        report = build_index(args.folder, args.out, model_dir, extensions=args.ext, modalities=args.modality,
                             batch_size=args.batch_size, workers=args.workers, num_frames=args.num_frames,
                             normalize=not args.no_normalize, attn_impl=args.attn_impl, device=args.device,
                             dtype=args.dtype, overwrite=args.overwrite, retry_failed=args.retry_failed,
                             progress=not args.no_progress, say=_say)
    header, records = read_manifest(args.out)
    rows = {m: sum(m in r.modalities for r in records.values()) for m in header.settings["modalities"]}
    failed = sum(r.failed for r in records.values())
    print(f"index {args.out}: {len(records) - failed} file(s) "
          f"({', '.join(f'{n} {m}' for m, n in rows.items())} rows), {failed} failure record(s)")
    print(f"this run: {len(report.added)} new, {len(report.changed)} changed, {len(report.removed)} removed, "
          f"{len(report.unchanged)} unchanged; {report.embedded} embedded, {len(report.failed)} failed "
          f"in {report.seconds:.2f} s ({report.files_per_s:.1f} files/s)")
    return 1 if report.failed else 0


def print_hits(index, hits, as_json: bool) -> None:
    """The results table (score, modality, path), or JSON lines."""
    if as_json:
        for hit in hits:
            print(json.dumps({"score": hit.score, "path": str(index.full_path(hit)), "modality": hit.modality}))
        return
    print(f"{'score':>7}  {'modality':<11}  path")
    for hit in hits:
        print(f"{hit.score:7.3f}  {hit.modality:<11}  {index.full_path(hit)}")


def run_search(args: argparse.Namespace) -> int:
    """``pe-av search``; returns the exit status."""
    from .media_index import MediaIndex

    if not Path(args.index).is_dir():
        raise CliError(None, f"index folder not found: {args.index}")
    try:
        index = MediaIndex.load(args.index, model_dir=args.model)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(args.index, str(exc)) from exc
    hits = index.search(args.query, like=args.like, k=args.k, modality=args.modality, backend=args.backend)
    print_hits(index, hits, args.json)
    return 0
