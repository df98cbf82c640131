"""Fused attention of the PE transformer: per-head RMSNorm on q and k, rotary embedding, grouped
key/value heads, key padding mask, and a flash-style (online softmax) forward kernel.

Semantics equal the eager form ``pe_av.ops.attention.rope_attention_eager`` (the PE transformer's
attention between its projections): q and k are RMS-normalized over ``head_dim`` (fp32
statistics, cast to the input dtype, times the norm weight), then rotated, then
``softmax(q k^T * scale) v`` with query head ``h`` reading key/value head ``h // (H // Hkv)``.
Keys whose mask entry is False get a score below every real one (not ``-inf``): a query whose keys
are all masked therefore gets the uniform average of all ``T`` value rows, as the eager form (which
adds the dtype's most negative value) does, never NaN.

Strides and dtypes: every tensor may have any strides. q, k, v, the rotary tables and the mask are read
through their strides (the last dim is copied to unit stride when it is not); the norm weights are made
contiguous. q, k and v must share one dtype (``ValueError`` naming them otherwise). Norm weights and
rotary tables of another supported dtype are cast to q's dtype first: the kernel then computes what the
eager form computes on tensors that all have q's dtype. (For fp32 q that is exactly the eager form on
the given tensors, which promotes; for half-precision q the eager form rejects fp32 tables or weights at
its value matmul, and ``pe_av.ops.attention.rope_attention("triton", ...)`` applies the same cast before
autograd, so its eager backward sees the tensors the forward used.)

The kernel never materializes the ``T x T`` score matrix. It is forward-only: ``pe_av.ops.attention``
gives it a backward (recomputing the eager form under autograd) until a flash backward kernel exists.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import INTERPRET, TRITON_DTYPES, CompileCase, check_launchable, check_same, launch_problem

MAX_HEAD_DIM = 256
_MASKED_SCORE = tl.constexpr(-1.0e30)  # score (log2 units) of a padded key: finite, so all-masked rows stay finite
_LOG2E = 1.4426950408889634


def supports_head_dim(head_dim: int) -> bool:
    """Whether the kernel handles ``head_dim`` (even, at most :data:`MAX_HEAD_DIM`)."""
    return 2 <= head_dim <= MAX_HEAD_DIM and head_dim % 2 == 0


# --------------------------------------------------------------------------------------------------
# kernel


@triton.jit
def _norm_rope(
    base, stride_t, pos, pos_valid, offs_d, d_valid, partner, freq, sign,
    W, COS, SIN, stride_cos, stride_sin, eps,
    HEAD_DIM: tl.constexpr, DTYPE: tl.constexpr,
):
    """Rows ``pos`` of one head, RMS-normalized and rotated, as a (rows, D_PAD) tile in ``DTYPE``.

    Each element's rotation partner is loaded a second time (from cache) instead of being shuffled in
    registers, which works for both pair layouts and for head dims padded to a power of two.
    """
    mask = pos_valid[:, None] & d_valid[None, :]
    rows = base + pos[:, None] * stride_t
    x = tl.load(rows + offs_d[None, :], mask=mask, other=0.0).to(tl.float32)
    x_pair = tl.load(rows + partner[None, :], mask=mask, other=0.0).to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x * x, axis=1) / HEAD_DIM + eps)[:, None]
    w = tl.load(W + offs_d, mask=d_valid, other=0.0).to(tl.float32)[None, :]
    w_pair = tl.load(W + partner, mask=d_valid, other=0.0).to(tl.float32)[None, :]
    # round where the eager form rounds: after normalizing and after the weight
    x = (w * (x * rstd).to(DTYPE).to(tl.float32)).to(DTYPE).to(tl.float32)
    x_pair = (w_pair * (x_pair * rstd).to(DTYPE).to(tl.float32)).to(DTYPE).to(tl.float32)
    cos = tl.load(COS + pos[:, None] * stride_cos + freq[None, :], mask=mask, other=0.0).to(tl.float32)
    sin = tl.load(SIN + pos[:, None] * stride_sin + freq[None, :], mask=mask, other=0.0).to(tl.float32)
    return (x * cos + sign[None, :] * x_pair * sin).to(DTYPE)


@triton.jit
def _rope_attention_fwd_kernel(
    Q, K, V, O, QW, KW, COS, SIN, MASK,
    stride_qb, stride_qt, stride_qh,
    stride_kb, stride_kt, stride_kh,
    stride_vb, stride_vt, stride_vh,
    stride_ob, stride_ot, stride_oh,
    stride_cos, stride_sin, stride_mb,
    seq_len, num_heads, groups, num_m_blocks, eps, qk_scale,
    HEAD_DIM: tl.constexpr, D_PAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HALF_SPLIT: tl.constexpr, HAS_MASK: tl.constexpr, DOT_PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
):
    # one flat grid (no 65535 limit on batch*heads); neighbouring programs share a head's keys
    pid = tl.program_id(0)
    pid_m = pid % num_m_blocks
    pid_bh = pid // num_m_blocks
    batch = (pid_bh // num_heads).to(tl.int64)
    head = pid_bh % num_heads
    kv_head = head // groups
    dtype = Q.dtype.element_ty

    offs_d = tl.arange(0, D_PAD)
    d_valid = offs_d < HEAD_DIM
    if HALF_SPLIT:
        half = HEAD_DIM // 2
        first = offs_d < half
        partner = tl.where(first, offs_d + half, offs_d - half)
        freq = tl.where(first, offs_d, offs_d - half)
        sign = tl.where(first, -1.0, 1.0)
    else:
        partner = offs_d ^ 1
        freq = offs_d // 2
        sign = tl.where(offs_d % 2 == 0, -1.0, 1.0)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_valid = offs_m < seq_len
    q = _norm_rope(
        Q + batch * stride_qb + head * stride_qh, stride_qt, offs_m, m_valid, offs_d, d_valid,
        partner, freq, sign, QW, COS, SIN, stride_cos, stride_sin, eps, HEAD_DIM, dtype,
    )
    k_base = K + batch * stride_kb + kv_head * stride_kh
    v_base = V + batch * stride_vb + kv_head * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, D_PAD], dtype=tl.float32)
    for start in range(0, seq_len, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_valid = offs_n < seq_len
        k = _norm_rope(
            k_base, stride_kt, offs_n, n_valid, offs_d, d_valid,
            partner, freq, sign, KW, COS, SIN, stride_cos, stride_sin, eps, HEAD_DIM, dtype,
        )
        if UPCAST_DOT:  # bf16 operands upcast exactly: same products, fp32 accumulation, as on a GPU
            scores = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee") * qk_scale
        else:
            scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        if HAS_MASK:
            keep = tl.load(MASK + batch * stride_mb + offs_n, mask=n_valid, other=0) != 0
            scores = tl.where(keep[None, :], scores, _MASKED_SCORE)
        # keys past the end weigh exactly 0; every block has at least one in-range key, so m_new is finite
        scores = tl.where(n_valid[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_base + offs_n[:, None] * stride_vt + offs_d[None, :],
            mask=n_valid[:, None] & d_valid[None, :], other=0.0,
        )
        if UPCAST_DOT:
            pv = tl.dot(p.to(dtype).to(tl.float32), v.to(tl.float32), input_precision="ieee")
        else:
            pv = tl.dot(p.to(dtype), v, input_precision=DOT_PRECISION)
        acc = acc * alpha[:, None] + pv
        m_i = m_new

    out = acc / l_i[:, None]
    o_ptrs = O + batch * stride_ob + head * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :]
    tl.store(o_ptrs, out.to(dtype), mask=m_valid[:, None] & d_valid[None, :])


# --------------------------------------------------------------------------------------------------
# launcher


def _blocks(seq: int, d_pad: int, dtype: torch.dtype, device: torch.device) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, warps). Tiles never go below 16 (the smallest ``tl.dot`` operand)."""
    fit = max(16, triton.next_power_of_2(seq))
    if device.type != "cuda":  # interpreter: every program runs serially in numpy, big tiles are cheapest
        return min(64, fit), min(64, fit), 4
    if dtype == torch.float32:
        block_m, block_n = (64, 32) if d_pad <= 64 else (32, 32)
    else:
        block_m, block_n = (64, 64) if d_pad <= 128 else (64, 32)
    return min(block_m, fit), min(block_n, fit), 4 if d_pad <= 64 else 8


@triton_op("pe_av_kernels::rope_attention_fwd", mutates_args={})
def _rope_attention_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    key_padding_mask: Optional[torch.Tensor],
    eps: float,
    scale: float,
    half_split: bool,
    block_m: int,
    block_n: int,
) -> torch.Tensor:
    """Checked inputs (unit stride on the last dim; mask as uint8) → contiguous (B, T, H, D)."""
    batch, seq, heads, head_dim = q.shape
    out = torch.empty((batch, seq, heads, head_dim), dtype=q.dtype, device=q.device)
    if out.numel() == 0:
        return out
    d_pad = max(16, triton.next_power_of_2(head_dim))
    auto_m, auto_n, warps = _blocks(seq, d_pad, q.dtype, q.device)
    block_m, block_n = block_m or auto_m, block_n or auto_n
    num_m_blocks = triton.cdiv(seq, block_m)
    has_mask = key_padding_mask is not None
    mask = key_padding_mask if has_mask else q
    wrap_triton(_rope_attention_fwd_kernel)[(num_m_blocks * batch * heads,)](
        q, k, v, out, q_norm_weight, k_norm_weight, cos, sin, mask,
        q.stride(0), q.stride(1), q.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        cos.stride(0), sin.stride(0), mask.stride(0),
        seq, heads, heads // k.shape[2], num_m_blocks, eps, scale * _LOG2E,
        HEAD_DIM=head_dim, D_PAD=d_pad, BLOCK_M=block_m, BLOCK_N=block_n,
        HALF_SPLIT=half_split, HAS_MASK=has_mask,
        DOT_PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        # triton's CPU interpreter multiplies bf16 dot operands as raw bits (garbage): upcast them there
        UPCAST_DOT=INTERPRET and q.dtype == torch.bfloat16,
        num_warps=warps, num_stages=2,
    )
    return out


def _check(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask) -> None:
    tensors = dict(q=q, k=k, v=v, q_norm_weight=q_norm_weight, k_norm_weight=k_norm_weight, cos=cos, sin=sin)
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"rope_attention: {name} must be a tensor, got {type(tensor).__name__}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("rope_attention: q, k and v must be (batch, seq, heads, head_dim)")
    batch, seq, heads, head_dim = q.shape
    if k.shape != v.shape or k.shape[:2] != (batch, seq) or k.shape[3] != head_dim:
        raise ValueError(
            f"rope_attention: k {tuple(k.shape)} and v {tuple(v.shape)} must be (B, T, Hkv, D) matching "
            f"q {tuple(q.shape)}"
        )
    if k.shape[2] == 0 or heads % k.shape[2] != 0:
        raise ValueError(f"rope_attention: {heads} query heads are not a multiple of {k.shape[2]} kv heads")
    if not supports_head_dim(head_dim):
        raise ValueError(f"rope_attention: head_dim {head_dim} unsupported (even, at most {MAX_HEAD_DIM})")
    for name in ("q_norm_weight", "k_norm_weight"):
        if tensors[name].shape != (head_dim,):
            raise ValueError(f"rope_attention: {name} must have shape ({head_dim},), got {tuple(tensors[name].shape)}")
    for name in ("cos", "sin"):
        table = tensors[name]
        if table.dim() != 2 or table.shape[0] < seq or table.shape[1] != head_dim // 2:
            raise ValueError(
                f"rope_attention: {name} must be (>= {seq}, {head_dim // 2}), got {tuple(table.shape)}"
            )
    check_same("rope_attention", "dtype", q=q, k=k, v=v)
    devices = dict(tensors)
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor):
            raise TypeError(
                f"rope_attention: key_padding_mask must be a ({batch}, {seq}) tensor or None, "
                f"got {type(key_padding_mask).__name__}"
            )
        if key_padding_mask.shape != (batch, seq):
            shape = tuple(key_padding_mask.shape)
            raise ValueError(f"rope_attention: key_padding_mask must be ({batch}, {seq}), got {shape}")
        if key_padding_mask.is_floating_point() or key_padding_mask.is_complex():
            raise TypeError("rope_attention: key_padding_mask must be bool or integer (True/1 = keep)")
        devices["key_padding_mask"] = key_padding_mask
    check_same("rope_attention", "device", **devices)
    check_launchable(*tensors.values())


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def rope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_norm_weight: torch.Tensor,
    k_norm_weight: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    *,
    eps: float = 1e-6,
    scale: float | None = None,
    half_split: bool = False,
    block_m: int = 0,
    block_n: int = 0,
) -> torch.Tensor:
    """QK-RMSNorm + RoPE + bidirectional attention in one kernel (Triton; forward only).

    Args:
        q: ``(B, T, H, D)`` query projections, e.g. ``q_proj(x).view(B, T, H, D)`` (any strides; the last
            dim is copied to unit stride if needed). float32/float16/bfloat16 on CUDA, or CPU under
            ``TRITON_INTERPRET=1``.
        k, v: ``(B, T, Hkv, D)`` with ``H % Hkv == 0``; query head ``h`` uses kv head ``h // (H // Hkv)``.
        q_norm_weight, k_norm_weight: ``(D,)`` RMSNorm weights applied per head before the rotation; any
            stride; cast to q's dtype.
        cos, sin: ``(>= T, D // 2)`` rotary tables; row ``t`` rotates position ``t``; any strides; cast
            to q's dtype.
        key_padding_mask: ``(B, T)`` bool/int, True/nonzero = attend to this key; ``None`` = all keys;
            any strides. A query whose keys are all masked gets the mean of all ``T`` value rows (as the
            eager form).
        eps: RMSNorm epsilon. scale: score scale, default ``D ** -0.5``.
        half_split: rotate pairs ``(x_i, x_{i + D/2})`` instead of interleaved ``(x_{2i}, x_{2i+1})``.
        block_m, block_n: tile sizes (powers of two >= 16); 0 picks them. For tests.
    Returns:
        ``(B, T, H, D)`` contiguous, in ``q``'s dtype.

    Raises ``ValueError`` when a gradient is asked for: differentiate through ``pe_av.ops.attention``.
    """
    if torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in (q, k, v, q_norm_weight, k_norm_weight, cos, sin)
    ):
        raise ValueError(
            "rope_attention: the kernel has no backward yet; call it under torch.no_grad(), or through "
            "pe_av.ops.attention.rope_attention('triton', ...), which recomputes the eager form for gradients"
        )
    _check(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask)
    for block in (block_m, block_n):
        if block and (block < 16 or block & (block - 1)):
            raise ValueError(f"rope_attention: block sizes must be powers of two >= 16, got {block}")
    mask = None
    if key_padding_mask is not None:
        mask = _unit_last_stride(key_padding_mask if key_padding_mask.dtype == torch.bool else key_padding_mask != 0)
        mask = mask.view(torch.uint8)
    q, k, v = (_unit_last_stride(t) for t in (q, k, v))
    cos, sin = (_unit_last_stride(t.to(q.dtype)) for t in (cos, sin))  # rows keep their stride
    # the kernel reads the norm weights at unit stride
    q_norm_weight, k_norm_weight = (t.to(q.dtype).contiguous() for t in (q_norm_weight, k_norm_weight))
    for name, value in (("eps", eps), ("scale", scale)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"rope_attention: {name} must be a number, got {type(value).__name__}")
    if not 0 <= eps < math.inf:
        raise ValueError(f"rope_attention: eps must be finite and >= 0, got {eps}")
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"rope_attention: scale must be finite, got {scale}")
    return torch.ops.pe_av_kernels.rope_attention_fwd(
        q, k, v, q_norm_weight, k_norm_weight, cos, sin, mask, float(eps), scale, bool(half_split), block_m, block_n
    )


def problem(q, k, v, q_norm_weight, k_norm_weight, cos, sin, key_padding_mask=None, **options) -> str | None:
    """Why :func:`rope_attention` cannot run on these arguments in this process, or ``None``.

    Besides the kernel's own keywords, ``options`` may hold the op's ``dropout``: the kernel has none, so
    a ``dropout`` above 0 (attention dropout in training) is a problem, and the op runs its eager form.
    """
    dropout = options.get("dropout", 0.0)
    if dropout:
        return f"dropout is not supported by the kernel (attention dropout {dropout} in training)"
    head_dim = q.shape[-1]
    if not supports_head_dim(head_dim):
        return f"head_dim {head_dim} is not supported by the kernel (even, at most {MAX_HEAD_DIM})"
    return launch_problem(q, k, v, q_norm_weight, k_norm_weight, cos, sin)


__all__ = ["MAX_HEAD_DIM", "problem", "rope_attention", "supports_head_dim"]


def compile_cases() -> list[CompileCase]:
    """The CUDA tiles :func:`_blocks` picks for long sequences, per dtype, at head dims 64, 128 (PE-AV's)
    and 256 (the largest), both RoPE layouts, with and without a key mask. Head dims in between use the
    tile of their padded size, which these cover."""
    cases = []
    strides = [f"stride_{t}{d}" for t in "qkvo" for d in "bth"] + ["stride_cos", "stride_sin", "stride_mb"]
    for dtype_name, (torch_dtype, dtype) in {str(k): (k, v) for k, v in TRITON_DTYPES.items()}.items():
        p = f"*{dtype}"
        for head_dim in (64, 128, 256):
            block_m, block_n, warps = _blocks(1 << 12, head_dim, torch_dtype, torch.device("cuda"))
            for half_split in (False, True):
                for has_mask in (False, True):
                    signature = dict(
                        Q=p, K=p, V=p, O=p, QW=p, KW=p, COS=p, SIN=p, MASK="*u8" if has_mask else p,
                        **dict.fromkeys(strides, "i32"),
                        seq_len="i32", num_heads="i32", groups="i32", num_m_blocks="i32", eps="fp32", qk_scale="fp32",
                    )
                    constexprs = dict(
                        HEAD_DIM=head_dim, D_PAD=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, HALF_SPLIT=half_split,
                        HAS_MASK=has_mask, DOT_PRECISION="ieee" if dtype == "fp32" else "tf32", UPCAST_DOT=False,
                    )
                    cases.append(CompileCase(
                        f"rope_attention_fwd[{dtype},d{head_dim},{block_m}x{block_n},half_split={half_split},"
                        f"mask={has_mask}]",
                        _rope_attention_fwd_kernel, signature, constexprs, num_warps=warps, num_stages=2,
                        divisible=("Q", "K", "V", "O", "QW", "KW", "COS", "SIN", "MASK", *strides),
                    ))
    del dtype_name
    return cases
