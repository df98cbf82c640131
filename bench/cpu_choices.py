"""Measurements behind pe-av's CPU defaults (not a pytest-benchmark suite: each choice is one side-by-side run).

    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py vision-chunk [--depth 4] [--frames 8]
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py attention

``vision-chunk``: time per frame and extra peak memory of the PE-S video encoder's ViT (ViT-L/14 at
336 px, ``--depth`` blocks: activations are freed block by block, so memory per chunk and time per frame
do not depend on the depth) for each ``vision_chunk_size``. Memory: each size in a fresh process
(peak resident set, ``VmHWM``, reset through ``/proc/self/clear_refs`` after a warm-up call), with
glibc's mmap threshold pinned at 64 KiB so that freed activations leave the resident set. Time: all
sizes in one process, interleaved round by round, so that ratios between sizes are side by side.
``attention``: the ViT's attention at 577 tokens × head_dim 64 × 16 heads through each CPU form.

Prints one JSON line per measurement. Ratios only mean something within one run (the machines these
defaults were chosen on were shared: quote ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _video_encoder(depth: int):
    import dataclasses

    from harness import PRESETS, pe_av_config

    from pe_av.models.video import PeVideoEncoder

    preset = dataclasses.replace(PRESETS["cpu"], image_size=336, vit_depth=depth)
    return PeVideoEncoder(pe_av_config(preset).audio_video_config.video_config).eval()


def vision_chunk_memory(chunk: int, depth: int, frames: int) -> dict:
    torch.manual_seed(0)
    encoder = _video_encoder(depth)
    pixels = torch.randn(1, frames, 3, 336, 336)
    with torch.no_grad():
        encoder(pixels, vision_chunk_size=chunk)  # warm-up
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        before = _status_kb("VmRSS")
        encoder(pixels, vision_chunk_size=chunk)
        peak = _status_kb("VmHWM")
    return dict(chunk=chunk, depth=depth, frames=frames, extra_peak_mb=(peak - before) / 1024)


def vision_chunk_times(chunks: list[int], depth: int, frames: int, rounds: int) -> list[dict]:
    torch.manual_seed(0)
    encoder = _video_encoder(depth)
    pixels = torch.randn(1, frames, 3, 336, 336)
    times: dict[int, list[float]] = {chunk: [] for chunk in chunks}
    with torch.no_grad():
        encoder(pixels, vision_chunk_size=max(chunks))  # warm-up
        for _ in range(rounds):
            for chunk in chunks:
                start = time.perf_counter()
                encoder(pixels, vision_chunk_size=chunk)
                times[chunk].append(time.perf_counter() - start)
    best = min(min(t) for t in times.values())
    return [
        dict(chunk=chunk, depth=depth, frames=frames, s_per_frame=min(t) / frames, relative_time=min(t) / best,
             threads=torch.get_num_threads())
        for chunk, t in times.items()
    ]


def attention_forms(rounds: int) -> list[dict]:
    from pe_av.ops.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 16, 577, 64) for _ in range(3))
    scale = 64**-0.5
    reference = attention("eager", q, k, v, None, scale)
    rows = []
    forms = {name: (lambda name=name: attention(name, q, k, v, None, scale)) for name in ("eager", "sdpa")}
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(rounds):  # interleaved, so that a noisy neighbour hits every form alike
        for name, form in forms.items():
            start = time.perf_counter()
            out = form()
            times[name].append(time.perf_counter() - start)
    for name, form in forms.items():
        rows.append(dict(form=name, ms=1e3 * min(times[name]), max_diff=(form() - reference).abs().max().item()))
    base = min(times["sdpa"])
    for row in rows:
        row["speedup_vs_sdpa"] = base * 1e3 / row["ms"]
    del out
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["vision-chunk", "attention", "_vision-chunk-one"])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--chunks", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]
    if args.what == "_vision-chunk-one":
        print(json.dumps(vision_chunk_memory(chunks[0], args.depth, args.frames)))
    elif args.what == "vision-chunk":
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
        for chunk in chunks:
            command = [sys.executable, __file__, "_vision-chunk-one", "--chunks", str(chunk), "--depth", str(args.depth),
                       "--frames", str(args.frames)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            print(done.stdout.strip().splitlines()[-1], flush=True)
        for row in vision_chunk_times(chunks, args.depth, args.frames, args.rounds):
            print(json.dumps(row), flush=True)
    else:
        for row in attention_forms(args.rounds):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
