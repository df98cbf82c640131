"""Measurements behind pe-av's CPU defaults (not a pytest-benchmark suite: each choice is one side-by-side run).

    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py vision-chunk [--depth 4] [--frames 8]
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py attention
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py bf16 [--preset cpu] [--clips 2]

``vision-chunk``: time per frame and extra peak memory of the PE-S video encoder's ViT (ViT-L/14 at
336 px, ``--depth`` blocks: activations are freed block by block, so memory per chunk and time per frame
do not depend on the depth) for each ``vision_chunk_size``. Memory: each size in a fresh process
(peak resident set, ``VmHWM``, reset through ``/proc/self/clear_refs`` after a warm-up call), with
glibc's mmap threshold pinned at 64 KiB so that freed activations leave the resident set. Time: all
sizes in one process, interleaved round by round, so that ratios between sizes are side by side.
``attention``: the ViT's attention at 577 tokens × head_dim 64 × 16 heads (4 frames) through each CPU
form (pe-av's eager and sdpa, and two candidates: blocked scores with an in-place softmax, bf16 scores).

``bf16``: cosine between fp32 and bf16 embeddings (per embedding, min and mean over clips) of a random
``PeAudioVideoModel`` at a bench preset's shapes, and the time of one forward in each dtype.

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

from timing import status_kib  # noqa: E402 - bench/ is on the path from here


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
        before = status_kib("VmRSS")
        encoder(pixels, vision_chunk_size=chunk)
        peak = status_kib("VmHWM")
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


def _blocked_attention(q, k, v, scale, heads=4):
    """Candidate CPU form: per block of heads, scores by ``baddbmm`` into one reused buffer, softmax in
    place (in cache), then ``bmm`` (tried against sdpa; not kept: no reliable win)."""
    batch, nheads, tokens, dim = q.shape
    qf, kf, vf = (t.reshape(-1, tokens, dim) for t in (q, k, v))
    out = torch.empty_like(qf)
    scores = torch.empty(heads, tokens, tokens, dtype=q.dtype)
    for start in range(0, qf.shape[0], heads):
        stop = min(start + heads, qf.shape[0])
        block = scores[: stop - start]
        torch.baddbmm(block, qf[start:stop], kf[start:stop].transpose(1, 2), beta=0, alpha=scale, out=block)
        block.sub_(block.amax(-1, keepdim=True)).exp_()
        block.div_(block.sum(-1, keepdim=True))
        torch.bmm(block, vf[start:stop], out=out[start:stop])
    return out.view(batch, nheads, tokens, dim)


def _bf16_scores_attention(q, k, v, scale):
    """Candidate CPU form: ``q kᵀ`` in bf16 (fast only where the CPU has bf16 GEMMs), softmax and ``p v`` in fp32."""
    scores = torch.matmul(q.bfloat16(), k.bfloat16().transpose(-1, -2)).float().mul_(scale)
    return torch.matmul(torch.softmax(scores, -1), v)


def attention_forms(rounds: int) -> list[dict]:
    from pe_av.ops.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 16, 577, 64) for _ in range(3))
    scale = 64**-0.5
    reference = attention("eager", q.double(), k.double(), v.double(), None, scale).float()
    rows = []
    forms = {name: (lambda name=name: attention(name, q, k, v, None, scale)) for name in ("eager", "sdpa")}
    forms["blocked"] = lambda: _blocked_attention(q, k, v, scale)
    forms["bf16_scores"] = lambda: _bf16_scores_attention(q, k, v, scale)
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


def bf16_cosines(preset_name: str, clips: int) -> dict:
    """Cosine between fp32 and bf16 embeddings, per embedding (min and mean over clips), and the time of
    each dtype's forward, for a random PeAudioVideoModel at a bench preset's shapes."""
    import dataclasses

    from harness import PRESETS, pe_av_config

    from pe_av import PeAudioVideoModel

    preset = dataclasses.replace(PRESETS[preset_name], batch=clips)
    torch.manual_seed(0)
    model = PeAudioVideoModel(pe_av_config(preset)).eval()
    gen = torch.Generator().manual_seed(0)
    samples = preset.audio_tokens * preset.hop
    inputs = dict(
        input_values=0.1 * torch.randn(clips, 1, samples, generator=gen),
        pixel_values_videos=torch.randn(clips, preset.frames, 3, preset.image_size, preset.image_size, generator=gen),
        input_ids=torch.randint(1, min(50000, preset.vocab), (clips, preset.text_len), generator=gen),
    )
    results, times = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        model = model.to(dtype)
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
        with torch.inference_mode():
            start = time.perf_counter()
            out = model(**cast)
            times[str(dtype).removeprefix("torch.")] = time.perf_counter() - start
        results[dtype] = {
            name: getattr(out, name).float() for name in dir(out)
            if name.endswith("_embeds") and isinstance(getattr(out, name, None), torch.Tensor)
        }
    cosines = {}
    for name, ref in results[torch.float32].items():
        cos = torch.nn.functional.cosine_similarity(ref, results[torch.bfloat16][name], dim=-1)
        cosines[name] = dict(min=cos.min().item(), mean=cos.mean().item())
    return dict(preset=preset_name, clips=clips, seconds=times, cosine=cosines,
                bf16_gemm_supported=bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["vision-chunk", "attention", "bf16", "_vision-chunk-one"])
    parser.add_argument("--preset", default="cpu", help="bf16: the bench preset whose shapes to use")
    parser.add_argument("--clips", type=int, default=2, help="bf16: clips (and captions)")
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
    elif args.what == "bf16":
        print(json.dumps(bf16_cosines(args.preset, args.clips)))
    else:
        for row in attention_forms(args.rounds):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
