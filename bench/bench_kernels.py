"""Per-op benchmarks at PE transformer shapes: transformers' code (``hf``) vs each pe-av backend.

Groups (one per op and sequence length ``T``; ``kernel_batch`` clips of ``T`` tokens):

- ``rms_norm`` and ``rms_norm_residual`` (the residual add fused into the norm, as each PE layer's
  second norm uses it; transformers adds, then norms);
- ``swiglu``: ``silu(gate) * up`` between the MLP's projections;
- ``rope``: interleaved rotary embedding of q and k (transformers' 2×2 rotation-matrix form vs ours);
- ``attention``: everything between the projections — per-head RMSNorm of q and k, RoPE, attention
  with key padding. ``eager``/``sdpa`` are the unfused path (separate QK-norm, RoPE, then
  ``scaled_dot_product_attention``); ``triton`` is one fused flash-attention kernel.

Our backends run the op's dispatch table (``pe_av.ops``), as the models do, so a new kernel in a table
is benchmarked by the group of its op; a ``triton`` case whose kernel would fall back skips saying why.
Each group states the op's minimal bytes and FLOPs (``Work``), from which ``timing.roofline`` takes
its bound: ``e`` is the element size, ``N = kernel_batch · T`` rows.
"""

from __future__ import annotations

import pytest
import torch
from harness import DEVICE, DTYPE, PRESET, compiled, hf_missing
from op_cases import element_size as _element_size
from op_cases import group, only_ours, with_backward
from op_cases import ours as _ours
from op_cases import randn as _randn
from timing import Work, run_op

from pe_av.ops import rms_norm, rope_attention, rope_cos_sin, rope_interleaved_tables, rotate_interleaved, swiglu

EPS = 1e-5
ROPE_THETA = 20000.0
SEQS = PRESET.kernel_seqs
ATTENTION_SEQS = PRESET.attention_seqs
HF_MODELING = "models.pe_audio_video.modeling_pe_audio_video"


def _hf(*names: str):
    """transformers' PE modeling module, after checking it has ``names`` (else the case skips saying why)."""
    reason = hf_missing(*(f"{HF_MODELING}:{name}" for name in names))
    if reason is not None:
        pytest.skip(reason)
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


def _group(op: str, seq: int) -> str:
    return group(op, T=seq)


@pytest.mark.parametrize("seq", SEQS)
def test_rms_norm(benchmark, backend, seq):
    hidden, rows, e = PRESET.pe.hidden, PRESET.kernel_batch * seq, _element_size()
    x = _randn(PRESET.kernel_batch, seq, hidden)
    weight = 1 + 0.1 * _randn(hidden)
    if backend == "hf":
        norm = _hf("PeAudioVideoEncoderRMSNorm").PeAudioVideoEncoderRMSNorm(hidden, eps=EPS).to(DEVICE, DTYPE)
        norm.weight.data.copy_(weight)
        fn = lambda: norm(x)  # noqa: E731
    else:
        fn = _ours(rms_norm, backend, x, weight, EPS)
    # read x, write out (N·C each), read the weight (C); per element: square, sum, scale, weight = 4 FLOPs
    work = Work(tokens=rows, bytes=(2 * rows * hidden + hidden) * e, flops=4 * rows * hidden)
    run_op(benchmark, fn, group=_group("rms_norm", seq), backend=backend, shapes=dict(x=list(x.shape)), work=work)


@pytest.mark.parametrize("seq", SEQS)
def test_rms_norm_residual(benchmark, backend, seq):
    hidden, rows, e = PRESET.pe.hidden, PRESET.kernel_batch * seq, _element_size()
    x, residual = _randn(PRESET.kernel_batch, seq, hidden), _randn(PRESET.kernel_batch, seq, hidden)
    weight = 1 + 0.1 * _randn(hidden)
    if backend == "hf":
        norm = _hf("PeAudioVideoEncoderRMSNorm").PeAudioVideoEncoderRMSNorm(hidden, eps=EPS).to(DEVICE, DTYPE)
        norm.weight.data.copy_(weight)

        def fn():
            total = residual + x  # transformers' layer: hidden = residual + hidden, then the next norm
            return norm(total), total
    else:
        fn = _ours(rms_norm, backend, x, weight, EPS, residual)
    # read x and residual, write the sum and the norm (N·C each), read the weight; the add + 4 FLOPs per element
    work = Work(tokens=rows, bytes=(4 * rows * hidden + hidden) * e, flops=5 * rows * hidden)
    run_op(
        benchmark, fn, group=_group("rms_norm_residual", seq), backend=backend, shapes=dict(x=list(x.shape)), work=work
    )


@pytest.mark.parametrize("seq", SEQS)
def test_swiglu(benchmark, backend, seq):
    width, rows, e = PRESET.pe.intermediate, PRESET.kernel_batch * seq, _element_size()
    gate, up = _randn(PRESET.kernel_batch, seq, width), _randn(PRESET.kernel_batch, seq, width)
    if backend == "hf":
        from transformers.activations import ACT2FN

        act = ACT2FN["silu"]  # transformers' MLP: act_fn(gate_proj(x)) * up_proj(x)
        fn = lambda: act(gate) * up  # noqa: E731
    else:
        fn = _ours(swiglu, backend, gate, up)
    # read gate and up, write out (N·I each); silu = g / (1 + exp(-g)): 4 FLOPs, then the product: 5 per element
    work = Work(tokens=rows, bytes=3 * rows * width * e, flops=5 * rows * width)
    run_op(benchmark, fn, group=_group("swiglu", seq), backend=backend, shapes=dict(gate=list(gate.shape)), work=work)


def _qk(seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k as attention sees them: (B, H, T, D) views of the (B, T, H, D) projections."""
    pe = PRESET.pe
    shape = (PRESET.kernel_batch, seq, pe.heads, pe.head_dim)
    return _randn(*shape).transpose(1, 2), _randn(*shape).transpose(1, 2)


def _hf_cos_sin(modeling, seq: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rotary = modeling.PeAudioVideoEncoderRotaryEmbedding(_hf_encoder_config()).to(DEVICE)
    return rotary(like, torch.arange(seq, device=DEVICE)[None])


@pytest.mark.parametrize("seq", SEQS)
def test_rope(benchmark, backend, seq):
    if backend == "triton":
        pytest.skip("no standalone RoPE kernel: RoPE is fused into the attention kernel's prologue (group op:attention)")
    pe, e = PRESET.pe, _element_size()
    q, k = _qk(seq)
    if backend == "hf":
        modeling = _hf("PeAudioVideoEncoderRotaryEmbedding", "apply_rotary_pos_emb")
        cos, sin = _hf_cos_sin(modeling, seq, q)
        fn = lambda: modeling.apply_rotary_pos_emb(q, k, cos, sin)  # noqa: E731
    else:
        cos, sin = rope_cos_sin(seq, pe.head_dim, ROPE_THETA, DEVICE, DTYPE)

        def rotate_qk(q, k):
            tables = rope_interleaved_tables(cos, sin)
            return rotate_interleaved(q, *tables), rotate_interleaved(k, *tables)

        rotate = compiled(rotate_qk) if backend == "compile" else rotate_qk
        fn = lambda: rotate(q, k)  # noqa: E731
    # read q and k, write both rotated (B·H·T·D each), read the half-width cos/sin tables (T·D in all);
    # per element two products and a sum
    elements = q.numel()
    work = Work(tokens=PRESET.kernel_batch * seq, bytes=(4 * elements + seq * pe.head_dim) * e, flops=6 * elements)
    run_op(
        benchmark, fn, group=_group("rope", seq), backend=backend, shapes=dict(q=list(q.shape), k=list(k.shape)),
        work=work,
    )


def _attention_inputs(seq: int, grad: bool = False):
    """q, k, v ``(B, T, H, D)`` projections, the q/k norm weights and the key mask (the last clip is padded)."""
    pe, batch = PRESET.pe, PRESET.kernel_batch
    shape = (batch, seq, pe.heads, pe.head_dim)
    q, k, v = (_randn(*shape, grad=grad) for _ in range(3))
    q_w, k_w = ((1 + 0.1 * _randn(pe.head_dim)).requires_grad_(grad) for _ in range(2))
    mask = torch.ones(batch, seq, dtype=torch.bool, device=DEVICE)
    valid_last = int(seq * 0.8)
    mask[-1, valid_last:] = False
    return q, k, v, q_w, k_w, mask, valid_last


def _attention_work(seq: int, valid_last: int, passes: float) -> Work:
    """Read q, k, v and write the output (B·T·H·D each), read cos/sin (T·D) and the mask (B·T bytes);
    QKᵀ and PV over the keys that count (2·D FLOPs per query-key pair each) × ``passes`` (1 forward; 3.5
    with the backward, whose five products of that size count 2.5×; it also reads the output and its
    gradient and writes dq, dk, dv: 4 more tensors); the norms and RoPE add ~1%."""
    pe, batch, e = PRESET.pe, PRESET.kernel_batch, _element_size()
    elements = batch * seq * pe.heads * pe.head_dim
    keys = (batch - 1) * seq + valid_last
    tensors = 4 if passes == 1 else 9
    return Work(
        tokens=batch * seq, bytes=(tensors * elements + seq * pe.head_dim) * e + batch * seq,
        flops=passes * 4 * pe.heads * pe.head_dim * seq * keys,
    )


@pytest.mark.parametrize("seq", ATTENTION_SEQS)
def test_attention(benchmark, backend, seq):
    pe, batch = PRESET.pe, PRESET.kernel_batch
    shape = (batch, seq, pe.heads, pe.head_dim)
    q, k, v, q_w, k_w, mask, valid_last = _attention_inputs(seq)
    if backend == "hf":
        modeling = _hf("PeAudioVideoEncoderAttention", "PeAudioVideoEncoderRotaryEmbedding", "apply_rotary_pos_emb")
        reason = hf_missing("integrations.sdpa_attention:sdpa_attention_forward", "masking_utils:create_bidirectional_mask")
        if reason is not None:
            pytest.skip(reason)
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
        from transformers.masking_utils import create_bidirectional_mask

        config = _hf_encoder_config()
        attention = modeling.PeAudioVideoEncoderAttention(config, 0).to(DEVICE, DTYPE).eval()
        attention.q_norm.weight.data.copy_(q_w)
        attention.k_norm.weight.data.copy_(k_w)
        cos, sin = _hf_cos_sin(modeling, seq, q)
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
        cos, sin = rope_cos_sin(seq, pe.head_dim, ROPE_THETA, DEVICE, DTYPE)
        fn = _ours(rope_attention, backend, q, k, v, q_w, k_w, cos, sin, mask, eps=EPS, scale=pe.head_dim**-0.5)
    run_op(
        benchmark, fn, group=_group("attention", seq), backend=backend,
        shapes=dict(q=list(shape), padded_clip_valid=valid_last), work=_attention_work(seq, valid_last, 1),
    )


@pytest.mark.parametrize("seq", ATTENTION_SEQS)
def test_attention_train(benchmark, backend, seq):
    """Forward + backward of the PE attention op (QK-RMSNorm + RoPE + attention): gradients of q, k, v
    and both norm weights, as a training step computes them."""
    only_ours(backend)
    pe = PRESET.pe
    q, k, v, q_w, k_w, mask, valid_last = _attention_inputs(seq, grad=True)
    cos, sin = rope_cos_sin(seq, pe.head_dim, ROPE_THETA, DEVICE, DTYPE)
    forward = _ours(rope_attention, backend, q, k, v, q_w, k_w, cos, sin, mask, eps=EPS, scale=pe.head_dim**-0.5)
    run_op(
        benchmark, with_backward(forward, (q, k, v, q_w, k_w)), group=_group("attention_train", seq), backend=backend,
        shapes=dict(q=list(q.shape), padded_clip_valid=valid_last), work=_attention_work(seq, valid_last, 3.5),
        grad=True,
    )
