"""Per-op benchmarks at the shapes of the ViT (PE-Core L/14), ModernBERT and the DAC codec: pe-av's
``eager`` / ``sdpa`` / ``triton`` forms (``sdpa`` — PyTorch's fused ops, separate norm and RoPE — is
the baseline the Triton kernels are compared with; there is no ``hf`` row, transformers' forms being
the same PyTorch calls).

Groups (``F`` frames of ``P + 1`` tokens: ``kernel_batch`` clips × the preset's frames, ``P`` patches
plus the class token; ``N`` ModernBERT tokens: ``kernel_batch`` × ``text_seq``):

- ``layer_norm`` / ``layer_norm_residual`` at the ViT (``F·(P+1)`` rows) and ModernBERT (``N`` rows) widths;
- ``linear_gelu``: the ViT MLP's ``fc1`` + bias + exact GELU (the GEMM included: it is one op);
- ``geglu``: ModernBERT's ``gelu(input) * gate`` between its MLP projections;
- ``snake``: the DAC's Snake at its first and last encoder stages, both memory layouts (inference);
- ``vit_attention``: 2-D RoPE of the patch tokens (the class token unrotated) + attention, head_dim 64;
- ``text_attention``: ModernBERT's sliding-window attention (128-token window) through the mask path.

Each group states its minimal bytes and FLOPs (``Work``, ``e`` the element size) for the roofline.
"""

from __future__ import annotations

import pytest
import torch
from harness import DEVICE, DTYPE, PRESET
from op_cases import element_size, group, only_ours, ours, randn
from timing import Work, run_op

from pe_av.models.text import attention_allowed
from pe_av.ops import attention, gated_activation, layer_norm, linear_gelu, rope_2d_cos_sin, rope_attention
from pe_av.ops.layer_norm import layer_norm_op
from pe_av.ops.snake import snake_op

EPS = 1e-5
PATCH = 14
VIT = {"embed_dim": 1024, "num_heads": 16, **(PRESET.vit or {})}
TEXT = {"hidden_size": 1024, "intermediate_size": 2624, "num_attention_heads": 16, **(PRESET.text or {})}
DAC = {"encoder_hidden_size": 64, "downsampling_ratios": [2, 8, 10, 12], **(PRESET.dac or {})}
HALF_WINDOW = min(64, PRESET.text_seq // 4)  # ModernBERT: local_attention 128 → 64 keys either side
assert layer_norm is layer_norm_op.forms["eager"]


def _vit_rows() -> tuple[int, int]:
    """(frames, tokens per frame) of one ViT call."""
    grid = PRESET.image_size // PATCH
    return PRESET.kernel_batch * PRESET.frames, grid * grid + 1


def _widths() -> dict[str, tuple[int, int]]:
    frames, tokens = _vit_rows()
    return {"vit": (frames * tokens, VIT["embed_dim"]), "text": (PRESET.kernel_batch * PRESET.text_seq, TEXT["hidden_size"])}


@pytest.mark.parametrize("model", ["vit", "text"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_layer_norm(benchmark, backend, model, residual):
    only_ours(backend)
    rows, width = _widths()[model]
    x, weight, bias = randn(rows, width), 1 + 0.1 * randn(width), 0.1 * randn(width)
    extra = (randn(rows, width),) if residual else ()
    fn = ours(layer_norm_op, backend, x, weight, bias, EPS, *extra)
    # read x (and the residual), write the norm (and the sum), read weight and bias; mean, variance,
    # scale, weight and bias: ~8 FLOPs per element (+1 for the add)
    tensors = 4 if residual else 2
    work = Work(tokens=rows, bytes=(tensors * rows * width + 2 * width) * element_size(), flops=(8 + residual) * rows * width)
    name = "layer_norm_residual" if residual else "layer_norm"
    run_op(benchmark, fn, group=group(name, model=model, rows=rows), backend=backend, shapes=dict(x=[rows, width]), work=work)


def test_linear_gelu(benchmark, backend):
    only_ours(backend)
    rows, width = _widths()["vit"]
    hidden = 4 * width  # ViT-L's MLP ratio
    x, weight, bias = randn(rows, width), randn(hidden, width) * width**-0.5, 0.1 * randn(hidden)
    fn = ours(linear_gelu, backend, x, weight, bias)
    # read x and the weight, write the activation; the GEMM, then bias + erf GELU (~10 FLOPs per output)
    work = Work(
        tokens=rows, bytes=(rows * width + hidden * width + hidden + rows * hidden) * element_size(),
        flops=2 * rows * width * hidden + 10 * rows * hidden,
    )
    run_op(benchmark, fn, group=group("linear_gelu", model="vit", rows=rows), backend=backend,
           shapes=dict(x=[rows, width], weight=[hidden, width]), work=work)


def test_geglu(benchmark, backend):
    only_ours(backend)
    rows, width = PRESET.kernel_batch * PRESET.text_seq, TEXT["intermediate_size"]
    value, gate = randn(rows, width), randn(rows, width)
    fn = ours(gated_activation, backend, value, gate, "gelu")
    # read value and gate, write the product; erf GELU ~8 FLOPs, then the product
    work = Work(tokens=rows, bytes=3 * rows * width * element_size(), flops=9 * rows * width)
    run_op(benchmark, fn, group=group("geglu", model="text", rows=rows), backend=backend,
           shapes=dict(value=[rows, width]), work=work)


def _snake_shape(stage: str) -> tuple[int, int, int]:
    """(clips, channels, samples) at the DAC encoder's first stage or at its last (after all strides but one)."""
    ratios, samples = DAC["downsampling_ratios"], PRESET.audio_tokens * PRESET.hop
    if stage == "first":
        return PRESET.batch, DAC["encoder_hidden_size"], samples
    downsampled = 1
    for ratio in ratios[:-1]:
        downsampled *= ratio
    return PRESET.batch, DAC["encoder_hidden_size"] * 2 ** (len(ratios) - 1), samples // downsampled


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("stage", ["first", "last"])
def test_snake(benchmark, backend, stage, layout):
    only_ours(backend)
    batch, channels, length = _snake_shape(stage)
    if layout == "channels_first":
        x, alpha = randn(batch, channels, length), 1 + 0.1 * randn(1, channels, 1)
    else:  # the streamed DAC's (B, C, 1, T) channels-last activations
        x = randn(batch, channels, 1, length).contiguous(memory_format=torch.channels_last)
        alpha = 1 + 0.1 * randn(1, channels, 1, 1)
    fn = ours(snake_op, backend, x, alpha)
    # read x, write y, read alpha; αx, sin, square, the reciprocal's product and the add: 5 FLOPs per element
    work = Work(tokens=batch * length, bytes=(2 * x.numel() + channels) * element_size(), flops=5 * x.numel())
    run_op(benchmark, fn, group=group("snake", stage=stage, C=channels, L=length), backend=backend,
           shapes=dict(x=list(x.shape), layout=layout), work=work)


def _attention_work(batch: int, seq: int, heads: int, head_dim: int, keys_per_query: float) -> Work:
    """Read q, k, v, write the output; QKᵀ and PV at 2·D FLOPs per visible query-key pair each."""
    elements = batch * seq * heads * head_dim
    return Work(
        tokens=batch * seq, bytes=4 * elements * element_size(), flops=4 * heads * head_dim * batch * seq * keys_per_query
    )


def test_vit_attention(benchmark, backend):
    only_ours(backend)
    frames, tokens = _vit_rows()
    heads = VIT["num_heads"]
    head_dim, grid = VIT["embed_dim"] // heads, PRESET.image_size // PATCH
    q, k, v = (randn(frames, tokens, heads, head_dim) for _ in range(3))
    # PE-Core L/14's axial RoPE (pe_av/models/vision_spec.py: temperature 10000, grid offset 1, 'xy', 24×24 reference)
    cos, sin = rope_2d_cos_sin(
        (grid, grid), head_dim, temperature=10000.0, offset=1.0, indexing="xy", ref_feat_shape=(24, 24), device=DEVICE,
        dtype=DTYPE,
    )
    fn = ours(rope_attention, backend, q, k, v, None, None, cos, sin, None, scale=head_dim**-0.5, unrotated_prefix=1)
    run_op(benchmark, fn, group=group("vit_attention", frames=frames, T=tokens), backend=backend,
           shapes=dict(q=list(q.shape)), work=_attention_work(frames, tokens, heads, head_dim, tokens))


def test_text_attention(benchmark, backend):
    only_ours(backend)
    batch, seq, heads = PRESET.kernel_batch, PRESET.text_seq, TEXT["num_attention_heads"]
    head_dim = TEXT["hidden_size"] // heads
    q, k, v = (randn(batch, heads, seq, head_dim) for _ in range(3))
    key_padding = torch.ones(batch, seq, dtype=torch.bool, device=DEVICE)
    key_padding[-1, seq * 3 // 4:] = False  # the last caption is padded
    allowed = attention_allowed(key_padding, seq, HALF_WINDOW, DEVICE)
    visible = allowed.expand(batch, 1, seq, seq).sum().item() / (batch * seq)
    fn = ours(attention, backend, q, k, v, allowed, head_dim**-0.5)
    work = _attention_work(batch, seq, heads, head_dim, visible)
    run_op(benchmark, fn, group=group("text_attention", window=2 * HALF_WINDOW, T=seq), backend=backend,
           shapes=dict(q=list(q.shape), half_window=HALF_WINDOW), work=work)
