"""Local Ray scaling of ``pe-av index --ray``: files/s with 1 and 2 CPU decoding tasks at once.

    python bench/bench_ray_index.py [--files 48] [--decoders 1,2] [--cpus 3]

Starts a local Ray cluster (``--cpus`` logical CPUs: one model actor of 1 CPU plus the decoders), the
media and model of ``bench_index.py`` (tiny model, 8 frames per video), and times whole
``index_with_ray`` runs into fresh indexes, each decoder count after one untimed warm-up run, rounds
interleaved. A run's time includes starting its model actor (Ray Data starts one per run), so the
figures are lower bounds of the streaming rate; the local build of the same files is printed beside
them. Not collected by pytest (a local cluster is too slow to start for a benchmark table).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import NUM_FRAMES, index_build, make_setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--decoders", default="1,2")
    parser.add_argument("--cpus", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray

    from pe_av.distributed import index_with_ray

    torch.set_num_threads(1)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    with tempfile.TemporaryDirectory() as scratch:
        setup = make_setup(Path(scratch), args.files)
        counts = [int(d) for d in args.decoders.split(",")]

        def once(decoders: int) -> float:
            out = Path(scratch) / f"ray-{decoders}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            report = index_with_ray(setup["root"] / "media", out, setup["model_dir"], batch_size=4,
                                    num_frames=NUM_FRAMES, decoders=decoders, say=lambda message: None)
            assert report.embedded == args.files
            return time.perf_counter() - start

        for decoders in counts:
            once(decoders)  # warm-up: Ray's worker processes import pe_av
        times = {d: [] for d in counts}
        local = []
        for _ in range(args.rounds):
            for d in counts:
                times[d].append(once(d))
            start = time.perf_counter()
            index_build(setup, 2)
            local.append(time.perf_counter() - start)
    print(f"{args.files} files, {args.cpus} logical CPUs, median of {args.rounds}")
    for d in counts:
        print(f"ray, {d} decoder(s): {np.median(times[d]):6.2f} s  {args.files / np.median(times[d]):5.1f} files/s")
    print(f"local, 2 workers:   {np.median(local):6.2f} s  {args.files / np.median(local):5.1f} files/s")
    ray.shutdown()


if __name__ == "__main__":
    main()
