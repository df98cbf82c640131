"""Shared pieces of the benchmark suite: device, presets, backend availability, timing, model configs.

See ``conftest.py`` for how to run the suite.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable
from typing import Any

import pytest
import torch

BACKENDS = ("hf", "eager", "sdpa", "triton", "compile")

# --------------------------------------------------------------------------------------------------
# Device, dtype and shape presets

DEVICE = torch.device(os.environ.get("PE_AV_BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
ON_GPU = DEVICE.type == "cuda"
DTYPE = torch.bfloat16 if ON_GPU else torch.float32


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


DEVICE_NAME = torch.cuda.get_device_name(DEVICE) if ON_GPU else _cpu_name()

#: H100 SXM (dense) peaks; the fraction of peak of every GPU benchmark is taken against these.
H100_SXM_PEAK_TFLOPS = {torch.bfloat16: 989.4, torch.float16: 989.4, torch.float32: 66.9}
H100_SXM_PEAK_GBPS = 3350.0


@dataclasses.dataclass(frozen=True)
class PeSize:
    """A released PE transformer size (audio, video and fusion encoders share it)."""

    hidden: int
    intermediate: int
    heads: int
    head_dim: int = 128


PE_SIZES = {"S": PeSize(768, 2048, 6), "B": PeSize(1024, 2752, 8), "L": PeSize(1792, 4800, 14)}


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    size: str
    pe_layers: int  # layers of each PE encoder (audio, video, fusion)
    batch: int  # clips (and captions) per forward
    audio_tokens: int  # per clip; one token per 1920 samples at 48 kHz (25 per second)
    frames: int  # per clip
    image_size: int  # ViT-L/14 input (336 released)
    vit_depth: int  # ViT-L has 24 blocks
    text_layers: int  # ModernBERT: 22
    text_len: int
    kernel_batch: int
    kernel_seqs: tuple[int, ...]  # sequence lengths of the per-op benchmarks
    model_rounds: int
    kernel_rounds: int

    @property
    def pe(self) -> PeSize:
        return PE_SIZES[self.size]


PRESETS = {
    # released shapes: PE-L widths at transformers' default depth (6 layers per encoder), 10 s of audio,
    # 16 frames at 336 px through ViT-L/14 (24 blocks), ModernBERT (1024 wide, 22 layers)
    "full": Preset(
        name="full", size="L", pe_layers=6, batch=4, audio_tokens=250, frames=16, image_size=336, vit_depth=24,
        text_layers=22, text_len=64, kernel_batch=4, kernel_seqs=(250, 750), model_rounds=5, kernel_rounds=50,
    ),
    # CPU: released widths (PE-S, ViT-L, ModernBERT 1024) with few layers, 2 s of audio, 4 frames at 112 px
    "cpu": Preset(
        name="cpu", size="S", pe_layers=2, batch=2, audio_tokens=50, frames=4, image_size=112, vit_depth=2,
        text_layers=2, text_len=32, kernel_batch=2, kernel_seqs=(250, 750), model_rounds=5, kernel_rounds=20,
    ),
}
PRESET = dataclasses.replace(
    PRESETS[os.environ.get("PE_AV_BENCH_PRESET") or ("full" if ON_GPU else "cpu")],
    **({"size": os.environ["PE_AV_BENCH_SIZE"]} if os.environ.get("PE_AV_BENCH_SIZE") else {}),
)
HOP = 1920


# --------------------------------------------------------------------------------------------------
# Backends


def triton_skip_reason() -> str | None:
    if not ON_GPU:
        return (
            "CPU-only machine: pe_av's Triton kernels run on CPU only under TRITON_INTERPRET=1, a correctness "
            "tool, not a speed path"
        )
    from pe_av import dispatch

    try:
        dispatch.triton_kernels()
    except dispatch.BackendNotAvailableError as error:
        return str(error)
    return None


def compile_skip_reason() -> str | None:
    if os.environ.get("PE_AV_BENCH_COMPILE", "1") == "0":
        return "PE_AV_BENCH_COMPILE=0"
    if not hasattr(torch, "compile"):
        return "torch.compile is not available in this torch"
    return None


def hf_skip_reason() -> str | None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return "transformers is not installed (pip install -e '.[test]')"
    return None


SKIP_REASONS: dict[str, Callable[[], str | None]] = {
    "hf": hf_skip_reason,
    "triton": triton_skip_reason,
    "compile": compile_skip_reason,
}


def compiled(fn: Callable) -> Callable:
    """``torch.compile`` of one of our callables; compile errors surface at the first (warm-up) call."""
    return torch.compile(fn, dynamic=False)


# --------------------------------------------------------------------------------------------------
# Timing and what each benchmark records


def synchronize() -> None:
    if ON_GPU:
        torch.cuda.synchronize(DEVICE)


@dataclasses.dataclass
class Work:
    """What one call processes, for throughput in ``extra_info``."""

    tokens: int | None = None  # tokens (or rows) per call
    clips: int | None = None  # clips / videos / captions per call
    bytes: int | None = None  # minimal HBM traffic of a memory-bound op
    flops: float | None = None  # math of a compute-bound op


def run_benchmark(
    benchmark, fn: Callable[[], Any], *, group: str, backend: str, shapes: dict[str, Any], work: Work, rounds: int
) -> None:
    """Time ``fn`` under ``torch.inference_mode`` (synchronized on CUDA) and fill ``extra_info``."""
    benchmark.group = group

    def call() -> None:
        with torch.inference_mode():
            fn()
        synchronize()

    if backend == "compile":  # the first call compiles; where inductor cannot run here, say so and skip
        try:
            call()
        except Exception as error:  # noqa: BLE001 - any compile failure means "does not run here"
            pytest.skip(f"torch.compile does not run here: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=1)
    info = benchmark.extra_info
    info.update(
        backend=backend, device=DEVICE.type, device_name=DEVICE_NAME, dtype=str(DTYPE).removeprefix("torch."),
        preset=PRESET.name, size=PRESET.size, shapes=shapes,
    )
    if not ON_GPU:
        info["threads"] = torch.get_num_threads()
    if benchmark.stats is None:  # --benchmark-disable
        return
    seconds = benchmark.stats.stats.median
    if work.tokens is not None:
        info["tokens_per_s"] = round(work.tokens / seconds, 1)
    if work.clips is not None:
        info["clips_per_s"] = round(work.clips / seconds, 3)
    if work.bytes is not None:
        gbps = work.bytes / seconds / 1e9
        info["achieved_GBps"] = round(gbps, 2)
        if ON_GPU:
            info["fraction_of_h100_sxm_peak"] = round(gbps / H100_SXM_PEAK_GBPS, 4)
    if work.flops is not None:
        tflops = work.flops / seconds / 1e12
        info["achieved_TFLOPs"] = round(tflops, 4)
        if ON_GPU:
            info["fraction_of_h100_sxm_peak"] = round(tflops / H100_SXM_PEAK_TFLOPS[DTYPE], 4)


# --------------------------------------------------------------------------------------------------
# Model configuration


def transformers_config(preset: Preset):
    import transformers

    pe = preset.pe
    encoder = dict(
        hidden_size=pe.hidden, intermediate_size=pe.intermediate, num_attention_heads=pe.heads, head_dim=pe.head_dim,
        num_hidden_layers=preset.pe_layers,
    )
    vision = dict(
        architecture="vit_pe_core_large_patch14_336",
        model_args=dict(img_size=preset.image_size, depth=preset.vit_depth),
        num_labels=1024,  # the released ViT projects to 1024 (transformers would build a 2-way head otherwise)
    )
    text = dict(hidden_size=1024, intermediate_size=2624, num_hidden_layers=preset.text_layers, num_attention_heads=16)
    return transformers.PeAudioVideoConfig(
        text_config=text,
        audio_video_config=dict(
            encoder, audio_config=dict(encoder), video_config=dict(encoder, vision_config=vision)
        ),
    )
