"""pe_av_kernels.rope_attention / attention (pre-pass + flash forward and backward) vs eager autograd.

Oracle: the eager forms of ``pe_av.ops.attention`` differentiated by autograd on fp32 copies of the same
inputs (the exact answer up to fp32 rounding). At fp32 the kernel must match it to 1e-4. At fp16/bf16 the
kernel must stay within twice the error of the eager form run in that dtype (plus a small floor): both
round the same intermediates, so a kernel bug shows as an error far above the eager form's.

bf16 under triton's interpreter (see ``pe_av_kernels._rounding``): the interpreter's bf16 ``tl.dot``
multiplies raw bit patterns and its fp32→bf16 casts truncate, so in interpreter mode the kernels do their
bf16 dots in fp32 (exact products, fp32 accumulation: what a GPU's bf16 MMA computes) and round to nearest
even in integer arithmetic before casting. The pre-pass in bf16 is therefore bit-identical to the eager
form here (tested), and the bf16 comparisons mean what they mean on a GPU. The real bf16 path (tensor-core
dots, hardware casts) runs in the CUDA tests at the bottom (skipped without a GPU).
"""

import pytest
import torch

from pe_av.ops import (
    apply_rope,
    attention_eager,
    rms_norm_eager,
    rope_attention_eager,
    rope_cos_sin,
)
from pe_av.ops import rope_attention as rope_attention_op
from pe_av_kernels import attention, rope_attention

pytestmark = pytest.mark.kernels

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EPS = 1e-5
FLOOR = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="the real fp16/bf16 path needs a CUDA device")


def rope_inputs(batch, seq, heads, kv_heads, head_dim, kept=None, dtype=torch.float32, strided=False, device=DEVICE):
    """Projections (views of one fused projection when ``strided``), perturbed norm weights, tables, a mask."""
    if strided:  # like q_proj/k_proj/v_proj outputs sliced out of one (B, T, (H + 2 Hkv) D + 3) buffer
        fused = torch.randn(batch, seq, (heads + 2 * kv_heads) * head_dim + 3, device=device, dtype=dtype)
        q, k, v = fused[..., 3:].split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], dim=-1)
        q, k, v = (t.unflatten(-1, (-1, head_dim)) for t in (q, k, v))
    else:
        q = torch.randn(batch, seq, heads, head_dim, device=device, dtype=dtype)
        k = torch.randn(batch, seq, kv_heads, head_dim, device=device, dtype=dtype)
        v = torch.randn(batch, seq, kv_heads, head_dim, device=device, dtype=dtype)
    q_w = (1 + 0.2 * torch.randn(head_dim)).to(device, dtype)
    k_w = (1 + 0.2 * torch.randn(head_dim)).to(device, dtype)
    cos, sin = rope_cos_sin(seq, head_dim, 20000.0, torch.device(device), dtype)
    mask = None
    if kept is not None:
        mask = torch.arange(seq, device=device)[None, :] < torch.tensor(kept, device=device)[:, None]
    return [q, k, v, q_w, k_w, cos, sin, mask]


def grads_of(fn, tensors, differentiable, seed=1):
    """fn's output and the gradients of ``differentiable`` (indices) for a fixed random output gradient."""
    leaves = [t.detach().clone().requires_grad_(i in differentiable) if t is not None else None for i, t in enumerate(tensors)]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.device, out.dtype)
    out.backward(g)
    return [out.detach()] + [leaves[i].grad for i in differentiable]


def check_against_eager(kernel_fn, eager_fn, tensors, differentiable, dtype):
    """Kernel vs fp32 eager autograd (max diff per output; bound as in the module docstring)."""
    as32 = [t.float() if t is not None and t.is_floating_point() else t for t in tensors]
    exact = grads_of(eager_fn, as32, differentiable)
    got = grads_of(kernel_fn, tensors, differentiable)
    in_dtype = grads_of(eager_fn, tensors, differentiable) if dtype != torch.float32 else None
    names = ["out"] + [f"grad{i}" for i in differentiable]
    for n, name in enumerate(names):
        scale = max(1.0, exact[n].abs().max().item())
        err = (got[n].float() - exact[n]).abs().max().item() / scale
        bound = FLOOR[dtype] if in_dtype is None else 2 * (in_dtype[n].float() - exact[n]).abs().max().item() / scale + FLOOR[dtype]
        assert err <= bound, (name, err, bound)


def kernel_rope(half_split=False, prefix=0):
    def fn(q, k, v, q_w, k_w, cos, sin, mask):
        return rope_attention(q, k, v, q_w, k_w, cos, sin, mask, eps=EPS, half_split=half_split, unrotated_prefix=prefix)
    return fn


def eager_rope(half_split=False, prefix=0):
    def fn(q, k, v, q_w, k_w, cos, sin, mask):
        return rope_attention_eager(q, k, v, q_w, k_w, cos, sin, mask, eps=EPS, half_split=half_split, unrotated_prefix=prefix)
    return fn


CASES = {  # (batch, seq, heads, kv_heads, head_dim, keys kept per sample or None, half_split, strided)
    "gqa6-2-d12-T37-padded": (2, 37, 6, 2, 12, [25, 37], False, False),
    "mha2-d16-T40-all-masked-row-half-split": (3, 40, 2, 2, 16, [40, 0, 5], True, False),
    "mqa4-1-d80-T33-strided": (1, 33, 4, 1, 80, None, False, True),
    "d64-T1": (2, 1, 4, 1, 64, [1, 0], False, False),
}
HALF_CASES = ("gqa6-2-d12-T37-padded", "mha2-d16-T40-all-masked-row-half-split")


@pytest.mark.parametrize(
    "case, dtype",
    [(c, torch.float32) for c in sorted(CASES)] + [(c, d) for c in HALF_CASES for d in (torch.float16, torch.bfloat16)],
)
def test_rope_attention_values_and_gradients(case, dtype):
    batch, seq, heads, kv_heads, head_dim, kept, half_split, strided = CASES[case]
    tensors = rope_inputs(batch, seq, heads, kv_heads, head_dim, kept, dtype, strided)
    check_against_eager(kernel_rope(half_split), eager_rope(half_split), tensors, (0, 1, 2, 3, 4), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vit_rotation_only_with_class_token(dtype):
    """The ViT's form: no norm weights, the first token (class token) unrotated, 2-D-like tables."""
    tensors = rope_inputs(2, 35, 3, 3, 16, dtype=dtype)
    tensors[3] = tensors[4] = None
    tensors[5], tensors[6] = tensors[5][:34], tensors[6][:34]
    check_against_eager(kernel_rope(prefix=1), eager_rope(prefix=1), tensors, (0, 1, 2), dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_pre_pass_is_bit_exact_in_half_precision(dtype):
    """The pre-pass rounds where the eager norm and rotation round: identical q/k at 16 bits (this would fail
    under the interpreter without the round-to-nearest fix for bf16)."""
    from pe_av_kernels._qk_prepass import qk_prepass

    for half_split in (False, True):
        x, _, _, w, _, cos, sin, _ = rope_inputs(2, 19, 3, 1, 24, dtype=dtype)
        got, _ = qk_prepass(x, w, cos, sin, EPS, half_split, 0)
        expected = apply_rope(rms_norm_eager(x, w, EPS).transpose(1, 2), cos, sin, half_split).transpose(1, 2)
        assert torch.equal(got, expected)


def window_mask(batch, seq, half_window, lengths):
    """ModernBERT's (B, 1, T, T) mask: keys within ``half_window`` of the query, and not padding."""
    positions = torch.arange(seq, device=DEVICE)
    near = (positions[:, None] - positions[None, :]).abs() <= half_window
    real = positions[None, :] < torch.tensor(lengths, device=DEVICE)[:, None]
    return (near[None] & real[:, None, :])[:, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_sliding_window_mask(dtype):
    q, k, v = (torch.randn(2, 3, 37, 16, device=DEVICE, dtype=dtype) for _ in range(3))
    mask = window_mask(2, 37, 6, [37, 20])
    mask[1, 0, 30:] = False  # whole query rows without a visible key: the uniform average
    check_against_eager(
        lambda q, k, v, m: attention(q, k, v, m, 0.3), lambda q, k, v, m: attention_eager(q, k, v, m, 0.3),
        [q, k, v, mask], (0, 1, 2), dtype,
    )


def test_attention_pool_shape_gqa_and_expanded_query():
    """One learned query (expanded over the batch, stride 0), 36 keys, grouped heads, no mask."""
    latent = torch.randn(1, 4, 1, 24, device=DEVICE)
    k, v = (torch.randn(3, 2, 36, 24, device=DEVICE) for _ in range(2))
    check_against_eager(
        lambda q, k, v: attention(q.expand(3, -1, -1, -1), k, v),
        lambda q, k, v: attention_eager(q.expand(3, -1, -1, -1), k, v, None, 24**-0.5),
        [latent, k, v], (0, 1, 2), torch.float32,
    )


def test_key_lengths_equal_prefix_mask():
    q, k, v, q_w, k_w, cos, sin, mask = rope_inputs(3, 37, 2, 1, 16, kept=[37, 9, 0])
    lengths = torch.tensor([37, 9, 0], device=DEVICE)
    by_mask = rope_attention(q, k, v, q_w, k_w, cos, sin, mask, eps=EPS)
    by_lengths = rope_attention(q, k, v, q_w, k_w, cos, sin, eps=EPS, key_lengths=lengths)
    assert torch.equal(by_mask, by_lengths)
    uniform = v.mean(dim=1, keepdim=True).repeat_interleave(2, dim=2)  # sample 2 keeps nothing
    assert (by_lengths[2] - uniform[2]).abs().max().item() <= 1e-5


def test_op_gives_fp32_norm_weights_their_gradients_through_the_cast():
    q, k, v, q_w, k_w, cos, sin, mask = rope_inputs(1, 33, 2, 2, 16, kept=[20], dtype=torch.bfloat16)
    weights = [w.float().requires_grad_() for w in (q_w, k_w)]
    out = rope_attention_op("triton", q, k, v, *weights, cos, sin, mask, eps=EPS)
    out.float().square().sum().backward()
    reference = [w.detach().clone().requires_grad_() for w in weights]
    rope_attention_op("eager", q, k, v, *(w.to(q.dtype) for w in reference), cos, sin, mask, eps=EPS).float().square().sum().backward()
    for got, expected in zip(weights, reference):
        assert got.grad.dtype == torch.float32
        assert (got.grad - expected.grad).abs().max().item() <= 0.05 * expected.grad.abs().max().item()


def test_bad_inputs():
    q, k, v, q_w, k_w, cos, sin, mask = rope_inputs(2, 8, 3, 1, 16, kept=[8, 5])
    with pytest.raises(ValueError, match="multiple"):
        rope_attention(q, k[:, :, :1].expand(-1, -1, 2, -1), v[:, :, :1].expand(-1, -1, 2, -1), q_w, k_w, cos, sin)
    with pytest.raises(ValueError, match="head_dim 15"):
        rope_attention(q[..., :15], k[..., :15], v[..., :15], q_w[:15], k_w[:15], cos, sin)
    with pytest.raises(ValueError, match="key_padding_mask"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, mask[:, :4])
    with pytest.raises(TypeError, match="key_padding_mask"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, mask.float())
    with pytest.raises(ValueError, match="cos"):
        rope_attention(q, k, v, q_w, k_w, cos[:4], sin)
    with pytest.raises(ValueError, match="both"):
        rope_attention(q, k, v, q_w, None, cos, sin)
    with pytest.raises(ValueError, match="not both"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, mask, key_lengths=mask.sum(1))
    with pytest.raises(ValueError, match="unrotated_prefix"):
        rope_attention(q, k, v, q_w, k_w, cos, sin, unrotated_prefix=9)
    with pytest.raises(ValueError, match="float64"):
        rope_attention(q.double(), k.double(), v.double(), q_w, k_w, cos, sin)
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k.expand(-1, -1, 3, -1), v.expand(-1, -1, 3, -1)))
    with pytest.raises(TypeError, match="bool"):
        attention(qt, kt, vt, torch.ones(8, 8))
    with pytest.raises(ValueError, match="broadcast"):
        attention(qt, kt, vt, torch.ones(5, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="dropout"):
        attention(qt, kt, vt, None, None, 0.1)


# --------------------------------------------------------------------------------------------------
# the real half-precision path (tensor-core dots), at the model's sizes


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("heads, kv_heads, head_dim", [(8, 8, 128), (6, 2, 64), (4, 1, 80), (2, 2, 256)])
def test_half_precision_cuda(dtype, heads, kv_heads, head_dim):
    tensors = rope_inputs(2, 751, heads, kv_heads, head_dim, kept=[751, 300], dtype=dtype, device="cuda")
    check_against_eager(kernel_rope(), eager_rope(), tensors, (0, 1, 2, 3, 4), dtype)


@needs_cuda
def test_fp32_cuda_model_shape_and_vit_window_paths():
    check_against_eager(kernel_rope(), eager_rope(), rope_inputs(2, 751, 8, 8, 128, kept=[751, 300], device="cuda"),
                        (0, 1, 2, 3, 4), torch.float32)
    q, k, v = (torch.randn(2, 4, 300, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    mask = window_mask(2, 300, 64, [300, 120])
    check_against_eager(lambda q, k, v, m: attention(q, k, v, m), lambda q, k, v, m: attention_eager(q, k, v, m, 0.125),
                        [q, k, v, mask], (0, 1, 2), torch.bfloat16)


def test_rotary_table_gradients_with_norm_and_prefix():
    """Tables that require a gradient (rare: they are buffers) get eager's, including the unrotated prefix rows."""
    tensors = rope_inputs(2, 34, 2, 1, 12, kept=[30, 34])
    tensors[5], tensors[6] = tensors[5][:33], tensors[6][:33]
    check_against_eager(kernel_rope(True, 1), eager_rope(True, 1), tensors, (0, 1, 2, 3, 4, 5, 6), torch.float32)
