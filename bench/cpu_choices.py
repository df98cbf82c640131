"""Measurements behind pe-av's CPU defaults (not a pytest-benchmark suite: each choice is one side-by-side run).

    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py vision-chunk [--depth 4] [--frames 8]
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py attention
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py bf16 [--preset cpu] [--clips 2]
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py memory [--cases audio:10,audio:60,video:8] [--libraries ours,hf]
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py fresh-time [--cases audio:10] [--rounds 2]
    OMP_WAIT_POLICY=PASSIVE python bench/cpu_choices.py floor [--cases audio:10,video:8,text:32]

``vision-chunk``: time per frame and extra peak memory of the PE-S video encoder's ViT (ViT-L/14 at
336 px, ``--depth`` blocks: activations are freed block by block, so memory per chunk and time per frame
do not depend on the depth) for each ``vision_chunk_size``. Memory: each size in a fresh process
(peak resident set, ``VmHWM``, reset through ``/proc/self/clear_refs`` after a warm-up call), with
glibc's mmap threshold pinned at 64 KiB so that freed activations leave the resident set. Time: all
sizes in one process, interleaved round by round, so that ratios between sizes are side by side.
``attention``: the ViT's attention at 577 tokens × head_dim 64 × 16 heads (4 frames) through each CPU
form (pe-av's eager and sdpa, and two candidates: blocked scores with an in-place softmax, bf16 scores).

``memory``: extra peak memory of one forward of a PE-S encoder at the ``real`` preset's shapes (fp32,
batch 1): ``audio:SECONDS`` (released DAC width, 7 PE layers), ``dac:SECONDS`` (the audio encoder's
embedder alone: DAC, bottleneck, projection) or ``video:FRAMES`` (ViT-L/14 at 336 px, 24 blocks, 7 PE layers), pe-av's (sdpa) and transformers' (sdpa; random weights: memory does not depend
on their values), each case and library in a fresh process: peak resident set above the one before the
call, after a warm-up call on a short input (2 s, 1 frame), glibc's mmap threshold pinned at 64 KiB as
for ``vision-chunk`` so that freed activations leave the resident set. In a process whose heap already
holds freed pages (one that built a model) an in-process peak undercounts: this is the figure to quote.
The forward's time is printed too, but it is not a speed figure: with the pinned threshold every large
activation page-faults, which costs transformers' full-length buffers more than pe-av's streamed ones.

``fresh-time``: the same encoders' forward time in a fresh process with glibc's default allocator, as a
script that builds one encoder and embeds a few clips sees it (second call of three; the libraries
alternate process by process, ``--rounds`` times). The model-path bench builds both whole models in one
process first, which leaves gigabytes of freed heap resident: there transformers' full-length DAC
buffers reuse warm pages, here they are fresh ``mmap`` s that page-fault on every call.

``floor``: the FLOPs of one forward of pe-av's encoders at the ``real`` preset's shapes (convolutions,
matmuls and attention as ``torch.utils.flop_counter`` counts them) and the time they take at this CPU's
fp32 GEMM rate (a 2048³ ``torch.mm``, best of 5, measured in the same run): no fp32 implementation of
the same arithmetic runs faster than that, so ``floor / transformers' time`` bounds any speedup.

``bf16``: cosine between fp32 and bf16 embeddings (per embedding, min and mean over clips) of a random
``PeAudioVideoModel`` at a bench preset's shapes, and the time of one forward in each dtype.

Prints one JSON line per measurement. Ratios only mean something within one run (the machines these
defaults were chosen on were shared: quote ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import json
import math
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


def _real_encoder(kind: str, library: str):
    """The ``real`` preset's audio or video encoder from ``library`` (``ours``/``hf``), random weights, sdpa."""
    from harness import PRESETS, model_config_dict

    configs = model_config_dict(PRESETS["real"])["audio_video_config"]
    config = configs["audio_config"] if kind == "audio" else configs["video_config"]
    torch.manual_seed(0)
    if library == "hf":
        import transformers

        transformers.utils.logging.set_verbosity_error()
        names = ("PeAudioEncoder", "PeAudioEncoderConfig") if kind == "audio" else ("PeVideoEncoder", "PeVideoEncoderConfig")
        encoder = getattr(transformers, names[0])(getattr(transformers, names[1])(**config))
        encoder.set_attn_implementation("sdpa")
        return encoder.eval()
    import pe_av
    from pe_av.models.audio import PeAudioEncoder
    from pe_av.models.video import PeVideoEncoder

    if kind == "audio":
        return PeAudioEncoder(pe_av.PeAudioEncoderConfig(**config)).eval()
    return PeVideoEncoder(pe_av.PeVideoEncoderConfig(**config)).eval()


def _real_inputs(kind: str, size: float) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    if kind in ("audio", "dac"):
        samples = int(size * 48_000)
        return dict(input_values=0.1 * torch.randn(1, 1, samples, generator=gen),
                    padding_mask=torch.ones(1, samples, dtype=torch.long))
    frames = int(size)
    return dict(pixel_values_videos=torch.randn(1, frames, 3, 336, 336, generator=gen),
                padding_mask_videos=torch.ones(1, frames, dtype=torch.long))


def encoder_memory(case: str, library: str) -> dict:
    """Extra peak RSS (MB) of one forward for ``case`` (``audio:SECONDS``, ``dac:SECONDS`` or ``video:FRAMES``), in this process."""
    kind, _, size = case.partition(":")
    if kind not in ("audio", "dac", "video") or not size:
        raise ValueError(f"--cases: expected audio:SECONDS, dac:SECONDS or video:FRAMES, got {case!r}")
    encoder = _real_encoder("audio" if kind == "dac" else kind, library)
    if kind == "dac":  # the audio encoder's embedder alone (DAC, bottleneck, projection): no transformer
        embedder = encoder.embedder

        def encoder(input_values, padding_mask):
            return embedder(input_values, padding_mask)

    with torch.inference_mode():
        encoder(**_real_inputs(kind, 2 if kind != "video" else 1))  # warm-up on a short input
        inputs = _real_inputs(kind, float(size))
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        before = status_kib("VmRSS")
        start = time.perf_counter()
        encoder(**inputs)
        elapsed = time.perf_counter() - start
        peak = status_kib("VmHWM")
    return dict(case=case, library=library, extra_peak_mb=round((peak - before) / 1024, 1),
                forward_s_not_a_speed_figure=round(elapsed, 2), threads=torch.get_num_threads())


def encoder_time(case: str, library: str) -> dict:
    """Seconds of the second of three forwards for ``case`` in this (fresh) process, default allocator."""
    kind, _, size = case.partition(":")
    encoder = _real_encoder(kind, library)
    inputs = _real_inputs(kind, float(size))
    seconds = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            encoder(**inputs)
            seconds.append(time.perf_counter() - start)
    return dict(case=case, library=library, second_call_s=round(seconds[1], 2), calls_s=[round(t, 2) for t in seconds],
                threads=torch.get_num_threads())


def gemm_rate(n: int = 2048) -> float:
    """fp32 FLOP/s of an ``n``³ ``torch.mm`` on this CPU, best of 5."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def forward_floor(case: str, rate: float) -> dict:
    """FLOPs of one pe-av forward for ``case`` (``audio:SECONDS``, ``video:FRAMES``, ``text:TOKENS``) and their time at ``rate``."""
    from torch.utils.flop_counter import FlopCounterMode

    kind, _, size = case.partition(":")
    if kind == "text":
        from harness import PRESETS, model_config_dict

        import pe_av
        from pe_av.models.text import ModernBertModel

        torch.manual_seed(0)
        model = ModernBertModel(pe_av.ModernBertConfig(**model_config_dict(PRESETS["real"])["text_config"])).eval()
        tokens = int(size)
        inputs = dict(input_ids=torch.randint(1, 50000, (1, tokens)), attention_mask=torch.ones(1, tokens, dtype=torch.long))
    else:
        model, inputs = _real_encoder(kind, "ours"), _real_inputs(kind, float(size))
    model.requires_grad_(False)  # the counter's module tracker hooks autograd on tensors that require grad

    def onednn_linear_flops(x_shape, weight_shape, *args, out_shape=None, **kwargs):
        # pe-av's fp32 CPU linears call oneDNN's op directly (pe_av/ops/linear.py): 2·rows·in·out
        rows = math.prod(x_shape[:-1])
        return 2 * rows * weight_shape[0] * weight_shape[1]

    def cpu_attention_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs):
        # sdpa's CPU kernel (not in torch's formula table): q·kᵀ and p·v, 2·B·H·Lq·Lk·D each
        *batch, lq, d = q_shape
        return 4 * math.prod(batch) * lq * k_shape[-2] * d

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        mapping[torch.ops.mkldnn._linear_pointwise] = onednn_linear_flops
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with torch.inference_mode(), counter:
        model(**inputs)
    flops = counter.get_total_flops()
    by_op = {str(op).split(".")[-1] if "." in str(op) else str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    return dict(case=case, gflop=round(flops / 1e9, 1), gemm_gflops=round(rate / 1e9, 1), floor_s=round(flops / rate, 2),
                gflop_by_op={k: round(v / 1e9, 1) for k, v in by_op.items()})


def _child_row(what: str, case: str, library: str, env: dict[str, str]) -> str:
    """The JSON row that this script's hidden subcommand ``what`` prints for one case and library, run in a
    fresh process (its peak memory and heap state are its own)."""
    command = [sys.executable, __file__, what, "--cases", case, "--libraries", library]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what.strip('_')} {case} {library} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["vision-chunk", "attention", "bf16", "memory", "fresh-time", "floor", "_vision-chunk-one", "_memory-one", "_time-one"],
    )
    parser.add_argument(
        "--cases", default=None,
        help="memory: audio:SECONDS, dac:SECONDS (the embedder alone) or video:FRAMES; fresh-time: audio/video; floor: also "
             "text:TOKENS; comma-separated (defaults: audio:10,audio:60,video:8 / audio:10 / audio:10,video:8,text:32)",
    )
    parser.add_argument("--libraries", default="ours,hf", help="memory: ours and/or hf (transformers), comma-separated")
    parser.add_argument("--preset", default="cpu", help="bf16: the bench preset whose shapes to use")
    parser.add_argument("--clips", type=int, default=2, help="bf16: clips (and captions)")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--chunks", default="1,2,4,8")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]
    if args.cases is None:
        args.cases = {"fresh-time": "audio:10", "floor": "audio:10,video:8,text:32"}.get(args.what, "audio:10,audio:60,video:8")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    if args.what == "floor":
        rate = gemm_rate()
        for case in args.cases.split(","):
            print(json.dumps(forward_floor(case, rate)), flush=True)
    elif args.what == "_time-one":
        print(json.dumps(encoder_time(args.cases, args.libraries)))
    elif args.what == "fresh-time":
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        for case in args.cases.split(","):
            for _ in range(args.rounds):
                for library in args.libraries.split(","):
                    print(_child_row("_time-one", case, library, clean), flush=True)
    elif args.what == "_memory-one":
        print(json.dumps(encoder_memory(args.cases, args.libraries)))
    elif args.what == "memory":
        for case in args.cases.split(","):
            for library in args.libraries.split(","):
                print(_child_row("_memory-one", case, library, env), flush=True)
    elif args.what == "_vision-chunk-one":
        print(json.dumps(vision_chunk_memory(chunks[0], args.depth, args.frames)))
    elif args.what == "vision-chunk":
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
