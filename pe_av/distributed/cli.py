"""``pe-av index DIR --ray``: the arguments of :mod:`pe_av.commands.index` → :func:`index_with_ray`."""

from __future__ import annotations

import argparse

from ..index.build import BuildReport
from .pipeline import index_with_ray

__all__ = ["run_ray_index"]


def run_ray_index(args: argparse.Namespace, model_dir: str, say) -> BuildReport:
    return index_with_ray(args.folder, args.out, model_dir, extensions=args.ext, modalities=args.modality,
                          batch_size=args.batch_size, num_frames=args.num_frames, normalize=not args.no_normalize,
                          attn_impl=args.attn_impl, device=args.device, dtype=args.dtype, actors=args.actors,
                          gpus_per_actor=args.gpus_per_actor, cpus_per_actor=args.cpus_per_actor,
                          decoders=args.decoders, cpus_per_decoder=args.cpus_per_decoder,
                          overwrite=args.overwrite, retry_failed=args.retry_failed, address=args.address,
                          progress=not args.no_progress, say=say)
