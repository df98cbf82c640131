"""pe_av_kernels.rope_attention vs pe_av's eager attention path (QK-RMSNorm → RoPE → GQA attention)."""

import pytest
import torch

from pe_av.ops import apply_rope_interleaved, attention_eager, rms_norm_eager, rope_attention_eager, rope_cos_sin
from pe_av.ops import rope_attention as rope_attention_op
from pe_av_kernels import rope_attention

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_ATOL = 1e-4
EPS = 1e-5
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16/bf16 kernel runs need a CUDA device")


def eager(q, k, v, q_w, k_w, cos, sin, mask):
    """What PeAttention does between its projections, with (B, T, H, D) in and out."""
    q = apply_rope_interleaved(rms_norm_eager(q, q_w, EPS).transpose(1, 2), cos, sin)
    k = apply_rope_interleaved(rms_norm_eager(k, k_w, EPS).transpose(1, 2), cos, sin)
    mask = None if mask is None else mask.bool()[:, None, None, :]
    return attention_eager(q, k, v.transpose(1, 2), mask, q.shape[-1] ** -0.5).transpose(1, 2)


def inputs(batch, seq, heads, kv_heads, head_dim, kept=None, dtype=torch.float32, device=DEVICE):
    """Random projections, perturbed norm weights, rotary tables and a mask keeping ``kept[b]`` keys."""
    q = torch.randn(batch, seq, heads, head_dim, device=device, dtype=dtype)
    k = torch.randn(batch, seq, kv_heads, head_dim, device=device, dtype=dtype)
    v = torch.randn(batch, seq, kv_heads, head_dim, device=device, dtype=dtype)
    q_w = (1 + 0.2 * torch.randn(head_dim)).to(device, dtype)
    k_w = (1 + 0.2 * torch.randn(head_dim)).to(device, dtype)
    cos, sin = rope_cos_sin(seq, head_dim, 20000.0, torch.device(device), dtype)
    mask = None
    if kept is not None:
        mask = torch.arange(seq, device=device)[None, :] < torch.tensor(kept, device=device)[:, None]
    return q, k, v, q_w, k_w, cos, sin, mask


CASES = {  # (batch, seq, heads, kv_heads, head_dim, keys kept per sample or None, block)
    "gqa6-2-d12-T17-padded": (2, 17, 6, 2, 12, [11, 17], 0),
    "mqa4-1-d64-T1": (2, 1, 4, 1, 64, None, 0),
    "T40-blocks16-d16-all-masked-row": (3, 40, 2, 2, 16, [40, 0, 5], 16),
    "d8-T17": (1, 17, 2, 1, 8, None, 0),
    "d80-T5": (1, 5, 2, 2, 80, [3], 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_fp32(case):
    *dims, kept, block = CASES[case]
    args = inputs(*dims, kept=kept)
    got = rope_attention(*args, eps=EPS, block_m=block, block_n=block)
    expected = eager(*args)
    assert got.is_contiguous()
    assert (got - expected).abs().max().item() <= FP32_ATOL


def test_backward_fp32():
    # the third sample has no valid key: its gradient must match eager's autograd too
    q, k, v, q_w, k_w, cos, sin, mask = inputs(3, 17, 6, 2, 12, kept=[9, 17, 0])
    leaves = [t.requires_grad_() for t in (q, k, v, q_w, k_w)]
    with pytest.raises(ValueError, match="no backward yet"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, mask, eps=EPS)
    # the op's triton form: kernel forward, gradients by recomputing the eager form
    got = rope_attention_op("triton", q, k, v, q_w, k_w, cos, sin, mask, eps=EPS)
    expected = eager(q, k, v, q_w, k_w, cos, sin, mask)
    grad = torch.randn_like(got)
    for g, e in zip(torch.autograd.grad(got, leaves, grad), torch.autograd.grad(expected, leaves, grad)):
        assert (g - e).abs().max().item() <= FP32_ATOL


def test_strided_projection_views_and_int_mask():
    batch, seq, heads, kv_heads, head_dim = 2, 17, 4, 2, 16
    fused = torch.randn(batch, seq, (heads + 2 * kv_heads) * head_dim, device=DEVICE)
    q, k, v = fused.split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], dim=-1)
    q, k, v = (t.view(batch, seq, -1, head_dim) for t in (q, k, v))
    _, _, _, q_w, k_w, cos, sin, mask = inputs(batch, seq, heads, kv_heads, head_dim, kept=[17, 6])
    assert not q.is_contiguous()
    got = rope_attention(q, k, v, q_w, k_w, cos, sin, mask.long(), eps=EPS)
    assert (got - eager(q, k, v, q_w, k_w, cos, sin, mask)).abs().max().item() <= FP32_ATOL


def rotate_half_split(x, cos, sin):
    """Independent half-split RoPE (the ``rotate_half`` form with duplicated tables)."""
    cos, sin = torch.cat((cos, cos), -1)[None, :, None], torch.cat((sin, sin), -1)[None, :, None]
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


def test_half_split_pairs():
    q, k, v, q_w, k_w, cos, sin, mask = inputs(1, 17, 4, 2, 12, kept=[13])
    got = rope_attention(q, k, v, q_w, k_w, cos, sin, mask, eps=EPS, half_split=True)
    expected = rope_attention_eager(q, k, v, q_w, k_w, cos, sin, mask, eps=EPS, half_split=True)
    assert (got - expected).abs().max().item() <= FP32_ATOL
    normed = rms_norm_eager(q, q_w, EPS)
    assert torch.allclose(
        rope_attention_eager(q, k, v, q_w, k_w, cos, sin, eps=EPS, half_split=True),
        attention_eager(
            rotate_half_split(normed, cos, sin).transpose(1, 2),
            rotate_half_split(rms_norm_eager(k, k_w, EPS), cos, sin).transpose(1, 2).repeat_interleave(2, 1),
            v.transpose(1, 2).repeat_interleave(2, 1), None, 12**-0.5,
        ).transpose(1, 2),
        atol=1e-6,
    )


def test_bad_inputs():
    q, k, v, q_w, k_w, cos, sin, mask = inputs(2, 5, 4, 2, 16, kept=[5, 3])
    with pytest.raises(ValueError, match="not a multiple"):
        rope_attention(q, k[:, :, :1].expand(-1, -1, 3, -1), v[:, :, :1].expand(-1, -1, 3, -1), q_w, k_w, cos, sin)
    with pytest.raises(ValueError, match="head_dim 15"):
        rope_attention(q[..., :15], k[..., :15], v[..., :15], q_w[:15], k_w[:15], cos, sin)
    with pytest.raises(ValueError, match="key_padding_mask"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, mask[:, :4])
    with pytest.raises(TypeError, match="bool or integer"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, mask.float())
    with pytest.raises(ValueError, match="cos must be"):
        rope_attention(q, k, v, q_w, k_w, cos[:4], sin)
    with pytest.raises(ValueError, match="k .* and v"):
        rope_attention(q, k, v[:1], q_w, k_w, cos, sin)
    with pytest.raises(ValueError, match="float64"):
        rope_attention(q.double(), k.double(), v.double(), q_w, k_w, cos, sin)


@needs_cuda
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 1e-2), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("heads, kv_heads, head_dim", [(8, 8, 128), (6, 2, 64), (4, 1, 80), (4, 2, 96)])
def test_half_precision_cuda(dtype, tol, heads, kv_heads, head_dim):
    args = inputs(2, 751, heads, kv_heads, head_dim, kept=[751, 300], dtype=dtype, device="cuda")
    got = rope_attention(*args, eps=EPS)
    torch.testing.assert_close(got, eager(*args), atol=tol, rtol=tol)


@needs_cuda
def test_fp32_cuda_model_shape():
    args = inputs(2, 751, 8, 8, 128, kept=[751, 300], device="cuda")
    assert (rope_attention(*args, eps=EPS) - eager(*args)).abs().max().item() <= FP32_ATOL
