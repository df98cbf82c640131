"""Per-op benchmarks at PE transformer shapes: transformers' code (``hf``) vs each pe-av backend.

Groups (one per op and sequence length ``T``; ``kernel_batch`` clips of ``T`` tokens):

- ``rms_norm`` and ``rms_norm_residual`` (the residual add fused into the norm, as each PE layer's
  second norm uses it; transformers adds, then norms);
- ``swiglu``: ``silu(gate) * up`` between the MLP's projections;
- ``rope``: interleaved rotary embedding of q and k (transformers' 2×2 rotation-matrix form vs ours);
- ``attention``: everything between the projections — per-head RMSNorm of q and k, RoPE, attention
  with key padding. ``eager``/``sdpa`` are the unfused path (separate QK-norm, RoPE, then
  ``scaled_dot_product_attention``); ``triton`` is one fused flash-attention kernel.
"""

from __future__ import annotations

import pytest
import torch
from harness import DEVICE, DTYPE, PRESET, Work, compiled, run_benchmark

from pe_av import dispatch
from pe_av.models.pe_transformer import PeAttention
from pe_av.ops import RMSNorm, rope_cos_sin, rope_interleaved_tables, rotate_interleaved, swiglu_eager

EPS = 1e-5
ROPE_THETA = 20000.0
SEQS = PRESET.kernel_seqs


def _element_size() -> int:
    return torch.empty((), dtype=DTYPE).element_size()


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, device=DEVICE, dtype=DTYPE)


def _hf_modeling():
    from transformers.models.pe_audio_video import modeling_pe_audio_video

    return modeling_pe_audio_video


def _hf_encoder_config():
    import transformers

    pe = PRESET.pe
    config = transformers.PeAudioVideoEncoderConfig(
        hidden_size=pe.hidden, intermediate_size=pe.intermediate, num_attention_heads=pe.heads, head_dim=pe.head_dim,
        rms_norm_eps=EPS, rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
    )
    config._attn_implementation = "sdpa"
    return config


def _ours(module: torch.nn.Module, backend: str):
    module = module.to(DEVICE, DTYPE).eval()
    module.set_backend("sdpa" if backend == "compile" else backend)
    return compiled(module) if backend == "compile" else module


def _group(op: str, seq: int) -> str:
    return f"op:{op} T={seq}"


@pytest.mark.parametrize("seq", SEQS)
def test_rms_norm(benchmark, backend, seq):
    hidden, tokens = PRESET.pe.hidden, PRESET.kernel_batch * seq
    x = _randn(PRESET.kernel_batch, seq, hidden)
    if backend == "hf":
        norm = _hf_modeling().PeAudioVideoEncoderRMSNorm(hidden, eps=EPS).to(DEVICE, DTYPE)
    else:
        norm = _ours(RMSNorm(hidden, eps=EPS), backend)
    run_benchmark(
        benchmark, lambda: norm(x), group=_group("rms_norm", seq), backend=backend,
        shapes=dict(x=list(x.shape)), work=Work(tokens=tokens, bytes=2 * x.numel() * _element_size()),
        rounds=PRESET.kernel_rounds,
    )


@pytest.mark.parametrize("seq", SEQS)
def test_rms_norm_residual(benchmark, backend, seq):
    hidden, tokens = PRESET.pe.hidden, PRESET.kernel_batch * seq
    x, residual = _randn(PRESET.kernel_batch, seq, hidden), _randn(PRESET.kernel_batch, seq, hidden)
    if backend == "hf":
        norm = _hf_modeling().PeAudioVideoEncoderRMSNorm(hidden, eps=EPS).to(DEVICE, DTYPE)

        def fn():
            total = residual + x  # transformers' layer: hidden = residual + hidden, then the next norm
            return norm(total), total
    else:
        norm = _ours(RMSNorm(hidden, eps=EPS), backend)

        def fn():
            return norm(x, residual)

    run_benchmark(
        benchmark, fn, group=_group("rms_norm_residual", seq), backend=backend, shapes=dict(x=list(x.shape)),
        work=Work(tokens=tokens, bytes=4 * x.numel() * _element_size()), rounds=PRESET.kernel_rounds,
    )


@pytest.mark.parametrize("seq", SEQS)
def test_swiglu(benchmark, backend, seq):
    tokens = PRESET.kernel_batch * seq
    gate, up = _randn(PRESET.kernel_batch, seq, PRESET.pe.intermediate), _randn(PRESET.kernel_batch, seq, PRESET.pe.intermediate)
    if backend == "hf":
        from transformers.activations import ACT2FN

        act = ACT2FN["silu"]  # transformers' MLP: act_fn(gate_proj(x)) * up_proj(x)

        def fn():
            return act(gate) * up
    elif backend == "triton":
        swiglu = dispatch.triton_kernels().swiglu

        def fn():
            return swiglu(gate, up)
    else:
        activation = compiled(swiglu_eager) if backend == "compile" else swiglu_eager

        def fn():
            return activation(gate, up)

    run_benchmark(
        benchmark, fn, group=_group("swiglu", seq), backend=backend, shapes=dict(gate=list(gate.shape)),
        work=Work(tokens=tokens, bytes=3 * gate.numel() * _element_size()), rounds=PRESET.kernel_rounds,
    )


def _qk(seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k as attention sees them: (B, H, T, D) views of the (B, T, H, D) projections."""
    pe = PRESET.pe
    shape = (PRESET.kernel_batch, seq, pe.heads, pe.head_dim)
    return _randn(*shape).transpose(1, 2), _randn(*shape).transpose(1, 2)


def _hf_cos_sin(seq: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rotary = _hf_modeling().PeAudioVideoEncoderRotaryEmbedding(_hf_encoder_config()).to(DEVICE)
    return rotary(like, torch.arange(seq, device=DEVICE)[None])


@pytest.mark.parametrize("seq", SEQS)
def test_rope(benchmark, backend, seq):
    if backend == "triton":
        pytest.skip("no standalone RoPE kernel: RoPE is fused into the attention kernel's prologue (group op:attention)")
    q, k = _qk(seq)
    if backend == "hf":
        apply = _hf_modeling().apply_rotary_pos_emb
        cos, sin = _hf_cos_sin(seq, q)

        def fn():
            return apply(q, k, cos, sin)
    else:
        cos, sin = rope_cos_sin(seq, PRESET.pe.head_dim, ROPE_THETA, DEVICE, DTYPE)

        def rotate_qk(q, k):
            tables = rope_interleaved_tables(cos, sin)
            return rotate_interleaved(q, *tables), rotate_interleaved(k, *tables)

        rotate = compiled(rotate_qk) if backend == "compile" else rotate_qk

        def fn():
            return rotate(q, k)

    run_benchmark(
        benchmark, fn, group=_group("rope", seq), backend=backend, shapes=dict(q=list(q.shape), k=list(k.shape)),
        work=Work(tokens=PRESET.kernel_batch * seq, bytes=4 * q.numel() * _element_size()), rounds=PRESET.kernel_rounds,
    )


@pytest.mark.parametrize("seq", SEQS)
def test_attention(benchmark, backend, seq):
    pe, batch = PRESET.pe, PRESET.kernel_batch
    shape = (batch, seq, pe.heads, pe.head_dim)
    q, k, v = _randn(*shape), _randn(*shape), _randn(*shape)
    mask = torch.ones(batch, seq, dtype=torch.bool, device=DEVICE)
    mask[-1, int(seq * 0.8) :] = False  # the last clip is padded
    if backend == "hf":
        modeling = _hf_modeling()
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.masking_utils import create_bidirectional_mask

        config = _hf_encoder_config()
        attention = modeling.PeAudioVideoEncoderAttention(config, 0).to(DEVICE, DTYPE).eval()
        cos, sin = _hf_cos_sin(seq, q)
        embeds = torch.empty(batch, seq, pe.hidden, device=DEVICE, dtype=DTYPE)
        attention_mask = create_bidirectional_mask(config=config, inputs_embeds=embeds, attention_mask=mask)

        def fn():  # PeAudioVideoEncoderAttention.forward between its projections
            qs = attention.q_norm(q).transpose(1, 2)
            ks = attention.k_norm(k).transpose(1, 2)
            qs, ks = modeling.apply_rotary_pos_emb(qs, ks, cos, sin)
            return sdpa_attention_forward(
                attention, qs, ks, v.transpose(1, 2), attention_mask, dropout=0.0, scaling=attention.scaling
            )[0]
    else:
        op = PeAttention(pe.hidden, pe.heads, pe.heads, pe.head_dim, bias=False, eps=EPS).to(DEVICE, DTYPE).eval()
        op.set_backend("sdpa" if backend == "compile" else backend)
        cos, sin = rope_cos_sin(seq, pe.head_dim, ROPE_THETA, DEVICE, DTYPE)
        attend = compiled(op.attend) if backend == "compile" else op.attend

        def fn():
            return attend(q, k, v, cos, sin, mask)

    flops = 4 * batch * pe.heads * seq * seq * pe.head_dim
    run_benchmark(
        benchmark, fn, group=_group("attention", seq), backend=backend,
        shapes=dict(q=list(shape), padded_clip_valid=int(seq * 0.8)), work=Work(tokens=batch * seq, flops=flops),
        rounds=PRESET.kernel_rounds,
    )

