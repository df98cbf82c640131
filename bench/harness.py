"""Shared pieces of the benchmark suite: device, presets, backend availability, model configs.

See ``conftest.py`` for how to run the suite and ``timing.py`` for how each benchmark is timed.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import platform
from collections.abc import Callable
from typing import Any

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


@dataclasses.dataclass(frozen=True)
class PeSize:
    """A PE transformer size (audio, video and fusion encoders share it); T is a test size."""

    hidden: int
    intermediate: int
    heads: int
    head_dim: int = 128


PE_SIZES = {
    "S": PeSize(768, 2048, 6), "B": PeSize(1024, 2752, 8), "L": PeSize(1792, 4800, 14), "T": PeSize(64, 96, 2, 32),
}


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    size: str
    pe_layers: int  # layers of each PE encoder (audio, video, fusion)
    batch: int  # clips (and captions) per forward
    audio_tokens: int  # per clip (25 per second with the released DAC)
    frames: int  # per clip
    image_size: int  # ViT-L/14 input (336 released)
    vit_depth: int  # ViT-L has 24 blocks
    text_layers: int  # ModernBERT: 22
    text_len: int
    kernel_batch: int
    kernel_seqs: tuple[int, ...]  # sequence lengths of the per-op benchmarks
    attention_seqs: tuple[int, ...]  # PE attention (forward and training) lengths: 750/1025 released
    text_seq: int  # ModernBERT tokens per caption in the op groups (longer than its 128-token window)
    model_rounds: int
    kernel_rounds: int  # rounds of the wall-clock op timer (CPU); do_bench times by duration instead
    peak_copy_mib: int  # size of the copy that measures the device's bandwidth
    peak_gemm: int  # n of the n×n×n matmul that measures its math rate
    # below: released values unless a preset shrinks them (the smoke preset)
    vit: dict[str, int] | None = None  # ViT model_args overrides (embed_dim, num_heads) and its out width
    text: dict[str, int] | None = None  # ModernBERT overrides (hidden_size, intermediate_size, heads, vocab_size)
    dac: dict[str, Any] | None = None  # DAC overrides (encoder_hidden_size, downsampling_ratios, codebook_dim)

    @property
    def pe(self) -> PeSize:
        return PE_SIZES[self.size]

    @property
    def hop(self) -> int:
        """Audio samples per token: the product of the DAC's strides."""
        ratios = (self.dac or {}).get("downsampling_ratios", [2, 8, 10, 12])
        hop = 1
        for ratio in ratios:
            hop *= ratio
        return hop

    @property
    def vocab(self) -> int:
        return (self.text or {}).get("vocab_size", 50368)


PRESETS = {
    # released shapes: PE-L widths at transformers' default depth (6 layers per encoder), 10 s of audio,
    # 16 frames at 336 px through ViT-L/14 (24 blocks), ModernBERT (1024 wide, 22 layers)
    "full": Preset(
        name="full", size="L", pe_layers=6, batch=4, audio_tokens=250, frames=16, image_size=336, vit_depth=24,
        text_layers=22, text_len=64, kernel_batch=4, kernel_seqs=(250, 750), attention_seqs=(750, 1025), text_seq=512,
        model_rounds=5, kernel_rounds=50,
        peak_copy_mib=1024, peak_gemm=8192,
    ),
    # CPU: released widths (PE-S, ViT-L, ModernBERT 1024) with few layers, 2 s of audio, 4 frames at 112 px
    "cpu": Preset(
        name="cpu", size="S", pe_layers=2, batch=2, audio_tokens=50, frames=4, image_size=112, vit_depth=2,
        text_layers=2, text_len=32, kernel_batch=2, kernel_seqs=(250, 750), attention_seqs=(250, 750), text_seq=256,
        model_rounds=5, kernel_rounds=20,
        peak_copy_mib=64, peak_gemm=1024,
    ),
    # CPU at released PE-S shapes (bench/real_cpu.sh): full depth (22 PE layers in all, split 7 per encoder:
    # SPEC.md gives the total only), 10 s of audio, 8 frames at 336 px through ViT-L/14 (24 blocks), one
    # 32-token caption per clip through ModernBERT (22 layers); model paths ~15 minutes on 2 cores of a
    # 0.1 TFLOP/s CPU (the run is compute-bound: see bench/results/cpu-real-floor-2026-12-02.md)
    "real": Preset(
        name="real", size="S", pe_layers=7, batch=1, audio_tokens=250, frames=8, image_size=336, vit_depth=24,
        text_layers=22, text_len=32, kernel_batch=1, kernel_seqs=(250,), attention_seqs=(250,), text_seq=256,
        model_rounds=2, kernel_rounds=10,
        peak_copy_mib=256, peak_gemm=2048,
    ),
    # bench/gpu_check.sh --smoke: every code path at tiny widths, to check that it runs (not for timings)
    "smoke": Preset(
        name="smoke", size="T", pe_layers=1, batch=2, audio_tokens=6, frames=2, image_size=28, vit_depth=1,
        text_layers=1, text_len=8, kernel_batch=2, kernel_seqs=(16,), attention_seqs=(16,), text_seq=16,
        model_rounds=2, kernel_rounds=3,
        peak_copy_mib=4, peak_gemm=128,
        vit=dict(embed_dim=32, num_heads=2, out=16),
        text=dict(hidden_size=32, intermediate_size=40, num_attention_heads=2, vocab_size=64),
        dac=dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8),
    ),
}
PRESET = dataclasses.replace(
    PRESETS[os.environ.get("PE_AV_BENCH_PRESET") or ("full" if ON_GPU else "cpu")],
    **({"size": os.environ["PE_AV_BENCH_SIZE"]} if os.environ.get("PE_AV_BENCH_SIZE") else {}),
)


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


def compile_path_skip_reason(path: str) -> str | None:
    """``PE_AV_BENCH_COMPILE_PATHS`` (comma-separated model paths) limits which paths are compiled."""
    selected = os.environ.get("PE_AV_BENCH_COMPILE_PATHS")
    if selected and path not in selected.split(","):
        return f"compile not selected for this path (PE_AV_BENCH_COMPILE_PATHS={selected})"
    return None


#: the oldest transformers whose PE classes this suite was checked against (5.17 and 5.24 were)
MIN_TRANSFORMERS = (5, 17)


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def hf_skip_reason() -> str | None:
    """Why the ``hf`` backend cannot run at all here (transformers missing or too old), or None."""
    try:
        version = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return "transformers is not installed (pip install -e '.[test]')"
    if _release(version) < MIN_TRANSFORMERS:
        return f"transformers {version} is older than {'.'.join(map(str, MIN_TRANSFORMERS))}, the oldest this bench supports"
    return None


def hf_missing(*names: str) -> str | None:
    """Feature detection: the first of ``module:attribute`` names (module under ``transformers``) that
    this transformers lacks, as a skip reason, or None when it has them all."""
    version = importlib.metadata.version("transformers")
    for name in names:
        module_name, _, attribute = name.partition(":")
        full = "transformers" + (f".{module_name}" if module_name else "")
        try:
            module = importlib.import_module(full)
        except ImportError as error:
            return f"transformers {version}: cannot import {full} ({error})"
        if attribute and not hasattr(module, attribute):
            return f"transformers {version} has no {full}.{attribute}"
    return None


def timm_skip_reason() -> str | None:
    """transformers' PE video tower is a TimmWrapperModel: building it needs timm (which needs torchvision)."""
    try:
        import timm  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a broken torchvision shows up here too
        return f"timm cannot be imported ({type(error).__name__}: {error}); transformers' PE video tower needs it"
    return None


SKIP_REASONS: dict[str, Callable[[], str | None]] = {
    "hf": hf_skip_reason,
    "triton": triton_skip_reason,
    "compile": compile_skip_reason,
}


def compiled(fn: Callable) -> Callable:
    """``torch.compile`` of one of our callables; compile errors surface at the first (warm-up) call.

    ``PE_AV_BENCH_COMPILE_BACKEND`` picks the backend (default inductor; the smoke run uses ``eager``,
    which traces with dynamo but generates no code, so that it stays fast on a CPU).
    """
    return torch.compile(fn, dynamic=False, backend=os.environ.get("PE_AV_BENCH_COMPILE_BACKEND") or "inductor")


# --------------------------------------------------------------------------------------------------
# Model configuration: one dict, read by transformers' and by our PeAudioVideoConfig


def model_config_dict(preset: Preset) -> dict[str, Any]:
    pe = preset.pe
    encoder = dict(
        hidden_size=pe.hidden, intermediate_size=pe.intermediate, num_attention_heads=pe.heads, head_dim=pe.head_dim,
        num_hidden_layers=preset.pe_layers,
    )
    vit = dict(preset.vit or {})
    vision = dict(
        architecture="vit_pe_core_large_patch14_336",
        model_args=dict(img_size=preset.image_size, depth=preset.vit_depth, **{k: v for k, v in vit.items() if k != "out"}),
        num_labels=vit.get("out", 1024),  # the released ViT projects to 1024 (transformers would build a 2-way head otherwise)
    )
    text = dict(hidden_size=1024, intermediate_size=2624, num_attention_heads=16)
    text.update(preset.text or {})
    text["num_hidden_layers"] = preset.text_layers
    if preset.text:
        text["pad_token_id"] = 0  # a tiny vocabulary has no room for ModernBERT's special ids
    audio = dict(encoder, **({"dac_config": dict(preset.dac)} if preset.dac else {}))
    return dict(
        text_config=text,
        audio_video_config=dict(encoder, audio_config=audio, video_config=dict(encoder, vision_config=vision)),
    )


def transformers_config(preset: Preset):
    import transformers

    return transformers.PeAudioVideoConfig(**model_config_dict(preset))


def pe_av_config(preset: Preset):
    import pe_av

    return pe_av.PeAudioVideoConfig(**model_config_dict(preset))
