"""The attention pre-pass: RMS-normalise (optionally) and rotate every row of q or k once, forward and backward.

Doing this once per token, before the flash kernel, instead of inside its key loop (where k was normalised
and rotated again for every query block and every query head of a group) leaves the flash loop a plain
``q kᵀ`` / ``p v`` loop on ready operands.

Semantics equal the eager path of ``pe_av.ops.attention``: ``x`` ``(B, T, H, D)``; with a weight, each row
is RMS-normalised over ``D`` (fp32 statistics), rounded to the input dtype, multiplied by the weight
(which the caller has cast to ``x``'s dtype) and rounded again; then pairs are rotated by ``cos``/``sin``
``(>= T - prefix, D/2)`` row ``t - prefix``, rounding each product and the sum as the eager form's
ops do in the input dtype. Rows ``t < prefix`` are not rotated (the ViT's class token). Pairs are
``(x[2i], x[2i+1])`` (interleaved) or ``(x[i], x[i + D/2])`` (``half_split``); both are loaded with
unit-stride vector loads (the interleaved layout is split in registers).

The backward treats the roundings as identities (as autograd does for the eager form's casts): the
rotation is transposed, the RMSNorm gradient recomputed from ``x`` and the saved ``rstd`` (one fp32 per
row: O(T) memory). The weight gradient is reduced per program, then over programs.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import INTERPRET, CompileCase, parallel_programs
from ._rounding import rounded

_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@triton.jit
def _pairs(base, offs_i, valid, HALF: tl.constexpr, HALF_PAD: tl.constexpr, ROWS: tl.constexpr, HALF_SPLIT: tl.constexpr):
    """Load rows ``base`` (a (ROWS,) pointer tile) as the pair members ``(first, second)``, each (ROWS, HALF_PAD) fp32."""
    if HALF_SPLIT:
        mask = valid[:, None] & (offs_i < HALF)[None, :]
        first = tl.load(base[:, None] + offs_i[None, :], mask=mask, other=0.0)
        second = tl.load(base[:, None] + HALF + offs_i[None, :], mask=mask, other=0.0)
    else:
        offs_d = tl.arange(0, 2 * HALF_PAD)
        mask = valid[:, None] & (offs_d < 2 * HALF)[None, :]
        x = tl.load(base[:, None] + offs_d[None, :], mask=mask, other=0.0)
        first, second = tl.split(tl.reshape(x, (ROWS, HALF_PAD, 2)))
    return first.to(tl.float32), second.to(tl.float32)


@triton.jit
def _store_pairs(base, first, second, offs_i, valid, HALF: tl.constexpr, HALF_PAD: tl.constexpr, ROWS: tl.constexpr, HALF_SPLIT: tl.constexpr):
    dtype = base.dtype.element_ty
    if HALF_SPLIT:
        mask = valid[:, None] & (offs_i < HALF)[None, :]
        tl.store(base[:, None] + offs_i[None, :], first.to(dtype), mask=mask)
        tl.store(base[:, None] + HALF + offs_i[None, :], second.to(dtype), mask=mask)
    else:
        offs_d = tl.arange(0, 2 * HALF_PAD)
        mask = valid[:, None] & (offs_d < 2 * HALF)[None, :]
        tl.store(base[:, None] + offs_d[None, :], tl.reshape(tl.join(first, second), (ROWS, 2 * HALF_PAD)).to(dtype), mask=mask)


@triton.jit
def _rows(pid_rows, n_rows, seq, heads, X, stride_b, stride_t, stride_h):
    """Row indices → (valid, position t, pointer to each row of the strided (B, T, H, D) ``X``)."""
    valid = pid_rows < n_rows
    head = pid_rows % heads
    bt = pid_rows // heads
    t = bt % seq
    return valid, t, X + (bt // seq) * stride_b + t * stride_t + head * stride_h


@triton.jit
def _table(COS, SIN, stride_cos, stride_sin, t, valid, offs_i, prefix, HALF: tl.constexpr):
    """cos/sin (ROWS, HALF_PAD) in fp32 of positions ``t - prefix``; rows before ``prefix``: cos 1, sin 0
    (an exact identity: x·1 − y·0 = x)."""
    pos = t - prefix
    mask = (valid & (pos >= 0))[:, None] & (offs_i < HALF)[None, :]
    cos = tl.load(COS + pos[:, None] * stride_cos + offs_i[None, :], mask=mask, other=1.0).to(tl.float32)
    sin = tl.load(SIN + pos[:, None] * stride_sin + offs_i[None, :], mask=mask, other=0.0).to(tl.float32)
    return cos, sin


@triton.jit
def _prepass_fwd_kernel(
    X, W, COS, SIN, Y, RSTD,
    stride_b, stride_t, stride_h, stride_cos, stride_sin,
    n_rows, seq, heads, prefix, eps,
    HALF: tl.constexpr, HALF_PAD: tl.constexpr, ROWS: tl.constexpr,
    HAS_NORM: tl.constexpr, HALF_SPLIT: tl.constexpr, FIX_BF16: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offs_i = tl.arange(0, HALF_PAD)
    valid, t, base = _rows(rows, n_rows, seq, heads, X, stride_b, stride_t, stride_h)
    dtype = Y.dtype.element_ty
    a, b = _pairs(base, offs_i, valid, HALF, HALF_PAD, ROWS, HALF_SPLIT)
    if HAS_NORM:
        rstd = tl.rsqrt((tl.sum(a * a, axis=1) + tl.sum(b * b, axis=1)) / (2 * HALF) + eps)
        tl.store(RSTD + rows, rstd, mask=valid)
        w_a, w_b = _pairs(W + tl.zeros([1], dtype=tl.int32), offs_i, tl.full([1], 1, tl.int1), HALF, HALF_PAD, 1, HALF_SPLIT)
        # round where the eager form rounds: after normalising, after the weight
        a = rounded(w_a * rounded(a * rstd[:, None], dtype, FIX_BF16), dtype, FIX_BF16)
        b = rounded(w_b * rounded(b * rstd[:, None], dtype, FIX_BF16), dtype, FIX_BF16)
    cos, sin = _table(COS, SIN, stride_cos, stride_sin, t, valid, offs_i, prefix, HALF)
    # each product and the sum rounded, as the eager rotation's ops in the input dtype
    first = rounded(rounded(a * cos, dtype, FIX_BF16) - rounded(b * sin, dtype, FIX_BF16), dtype, FIX_BF16)
    second = rounded(rounded(b * cos, dtype, FIX_BF16) + rounded(a * sin, dtype, FIX_BF16), dtype, FIX_BF16)
    _store_pairs(Y + rows * (2 * HALF), first, second, offs_i, valid, HALF, HALF_PAD, ROWS, HALF_SPLIT)


@triton.jit
def _prepass_bwd_kernel(
    X, W, COS, SIN, RSTD, DY, DX, DW,
    stride_b, stride_t, stride_h, stride_cos, stride_sin,
    n_rows, seq, heads, prefix, n_blocks,
    HALF: tl.constexpr, HALF_PAD: tl.constexpr, ROWS: tl.constexpr,
    HAS_NORM: tl.constexpr, HALF_SPLIT: tl.constexpr, FIX_BF16: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_i = tl.arange(0, HALF_PAD)
    dtype = X.dtype.element_ty
    one = tl.full([1], 1, tl.int1)
    if HAS_NORM:
        w_a, w_b = _pairs(W + tl.zeros([1], dtype=tl.int32), offs_i, one, HALF, HALF_PAD, 1, HALF_SPLIT)
    dw_a = tl.zeros([HALF_PAD], dtype=tl.float32)
    dw_b = tl.zeros([HALF_PAD], dtype=tl.float32)
    for block in range(pid, n_blocks, tl.num_programs(0)):  # persistent: dw stays in registers
        rows = block * ROWS + tl.arange(0, ROWS).to(tl.int64)
        valid, t, base = _rows(rows, n_rows, seq, heads, X, stride_b, stride_t, stride_h)
        dy_a, dy_b = _pairs(DY + rows * (2 * HALF), offs_i, valid, HALF, HALF_PAD, ROWS, HALF_SPLIT)
        cos, sin = _table(COS, SIN, stride_cos, stride_sin, t, valid, offs_i, prefix, HALF)
        # transpose of the rotation [[c, -s], [s, c]]
        dz_a = dy_a * cos + dy_b * sin
        dz_b = dy_b * cos - dy_a * sin
        if HAS_NORM:
            a, b = _pairs(base, offs_i, valid, HALF, HALF_PAD, ROWS, HALF_SPLIT)
            rstd = tl.load(RSTD + rows, mask=valid, other=0.0)[:, None]
            n_a, n_b = a * rstd, b * rstd
            dw_a += tl.sum(dz_a * rounded(n_a, dtype, FIX_BF16), axis=0)
            dw_b += tl.sum(dz_b * rounded(n_b, dtype, FIX_BF16), axis=0)
            dn_a, dn_b = dz_a * w_a, dz_b * w_b
            mean = ((tl.sum(dn_a * n_a, axis=1) + tl.sum(dn_b * n_b, axis=1)) / (2 * HALF))[:, None]
            dz_a = rstd * (dn_a - n_a * mean)
            dz_b = rstd * (dn_b - n_b * mean)
        _store_pairs(DX + rows * (2 * HALF), dz_a, dz_b, offs_i, valid, HALF, HALF_PAD, ROWS, HALF_SPLIT)
    if HAS_NORM:
        _store_pairs(DW + pid * (2 * HALF) + tl.zeros([1], dtype=tl.int32), dw_a[None, :], dw_b[None, :], offs_i, one, HALF, HALF_PAD, 1, HALF_SPLIT)


# --------------------------------------------------------------------------------------------------
# launchers


def _shape(head_dim: int, device: torch.device) -> tuple[int, int, int]:
    """(HALF_PAD, ROWS, warps): about 4096 elements a program on CUDA, 8192 under the interpreter."""
    half_pad = max(8, triton.next_power_of_2(head_dim // 2))
    rows = max(1, (4096 if device.type == "cuda" else 8192) // (2 * half_pad))
    return half_pad, rows, 4


@triton_op("pe_av_kernels::qk_prepass", mutates_args={})
def qk_prepass(
    x: torch.Tensor, weight: Optional[torch.Tensor], cos: torch.Tensor, sin: torch.Tensor,
    eps: float, half_split: bool, prefix: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (B, T, H, D), unit last stride; ``weight`` (D,) contiguous in x's dtype or None (rotate only);
    tables unit last stride in x's dtype → (contiguous rotated x, rstd (B·T·H,) fp32, empty without a weight)."""
    batch, seq, heads, head_dim = x.shape
    y = torch.empty((batch, seq, heads, head_dim), dtype=x.dtype, device=x.device)
    n_rows = batch * seq * heads
    rstd = torch.empty((n_rows if weight is not None else 0,), dtype=torch.float32, device=x.device)
    if n_rows == 0:
        return y, rstd
    half_pad, rows, warps = _shape(head_dim, x.device)
    wrap_triton(_prepass_fwd_kernel)[(triton.cdiv(n_rows, rows),)](
        x, weight if weight is not None else x, cos, sin, y, rstd,
        x.stride(0), x.stride(1), x.stride(2), cos.stride(0), sin.stride(0),
        n_rows, seq, heads, prefix, eps,
        HALF=head_dim // 2, HALF_PAD=half_pad, ROWS=rows, HAS_NORM=weight is not None, HALF_SPLIT=half_split,
        FIX_BF16=INTERPRET and x.dtype == torch.bfloat16, num_warps=warps,
    )
    return y, rstd


@triton_op("pe_av_kernels::qk_prepass_bwd", mutates_args={})
def qk_prepass_bwd(
    dy: torch.Tensor, x: torch.Tensor, weight: Optional[torch.Tensor], cos: torch.Tensor, sin: torch.Tensor,
    rstd: torch.Tensor, half_split: bool, prefix: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (dx contiguous in x's dtype, dweight fp32 (D,), empty without a weight)."""
    batch, seq, heads, head_dim = x.shape
    dy = dy.contiguous()
    dx = torch.empty((batch, seq, heads, head_dim), dtype=x.dtype, device=x.device)
    n_rows = batch * seq * heads
    half_pad, rows, warps = _shape(head_dim, x.device)
    n_blocks = triton.cdiv(n_rows, rows)
    programs = max(1, min(n_blocks, parallel_programs(x.device, per_sm=2)))
    dw = torch.zeros((programs if weight is not None else 0, head_dim), dtype=torch.float32, device=x.device)
    if n_rows == 0:
        return dx, dw.sum(0)
    wrap_triton(_prepass_bwd_kernel)[(programs,)](
        x, weight if weight is not None else x, cos, sin, rstd, dy, dx, dw,
        x.stride(0), x.stride(1), x.stride(2), cos.stride(0), sin.stride(0),
        n_rows, seq, heads, prefix, n_blocks,
        HALF=head_dim // 2, HALF_PAD=half_pad, ROWS=rows, HAS_NORM=weight is not None, HALF_SPLIT=half_split,
        FIX_BF16=INTERPRET and x.dtype == torch.bfloat16, num_warps=warps,
    )
    return dx, dw.sum(0)


def _setup_context(ctx, inputs, output):
    x, weight, cos, sin, _eps, half_split, prefix = inputs
    ctx.save_for_backward(x, weight, cos, sin, output[1])
    ctx.half_split, ctx.prefix = half_split, prefix


def _table_grads(dy, x, weight, rstd, cos, half_split: bool, prefix: int):
    """Gradients of the rotary tables (rarely wanted: tables are buffers), with PyTorch ops: the rotated
    operand is recomputed as the kernel formed it, and each pair's products summed over batch and heads."""
    z = x.float()
    if weight is not None:
        normed = (z * rstd.view(*x.shape[:3], 1)).to(x.dtype)
        z = (weight * normed).float()
    pairs = (lambda t: t.chunk(2, dim=-1)) if half_split else (lambda t: (t[..., 0::2], t[..., 1::2]))
    (z_a, z_b), (dy_a, dy_b) = pairs(z[:, prefix:]), pairs(dy.float()[:, prefix:])
    dcos = (dy_a * z_a + dy_b * z_b).sum(dim=(0, 2))
    dsin = (dy_b * z_a - dy_a * z_b).sum(dim=(0, 2))
    rows = cos.shape[0] - dcos.shape[0]
    return [torch.nn.functional.pad(g, (0, 0, 0, rows)).to(cos.dtype) for g in (dcos, dsin)]


def _backward(ctx, dy, _drstd):
    x, weight, cos, sin, rstd = ctx.saved_tensors
    dx, dw = torch.ops.pe_av_kernels.qk_prepass_bwd(dy, x, weight, cos, sin, rstd, ctx.half_split, ctx.prefix)
    dw = dw.to(weight.dtype) if weight is not None else None
    dcos = dsin = None
    if ctx.needs_input_grad[2] or ctx.needs_input_grad[3]:
        dcos, dsin = _table_grads(dy, x, weight, rstd, cos, ctx.half_split, ctx.prefix)
    return dx, dw, dcos, dsin, None, None, None


qk_prepass.register_autograd(_backward, setup_context=_setup_context)


def compile_cases() -> list[CompileCase]:
    """Both kernels at every configuration the launchers pick on CUDA (dtype × head-dim pad × norm × layout)."""
    cases = []
    for dtype in _DTYPES.values():
        for half_pad in (8, 16, 32, 64, 128):
            rows = 4096 // (2 * half_pad)
            for has_norm in (False, True):
                for half_split in (False, True):
                    constexprs = dict(HALF=half_pad, HALF_PAD=half_pad, ROWS=rows, HAS_NORM=has_norm,
                                      HALF_SPLIT=half_split, FIX_BF16=False)
                    tag = f"{dtype}-d{2 * half_pad}-{'norm' if has_norm else 'rope'}-{'half' if half_split else 'pair'}"
                    fwd = dict(X=f"*{dtype}", W=f"*{dtype}", COS=f"*{dtype}", SIN=f"*{dtype}", Y=f"*{dtype}", RSTD="*fp32",
                               stride_b="i32", stride_t="i32", stride_h="i32", stride_cos="i32", stride_sin="i32",
                               n_rows="i32", seq="i32", heads="i32", prefix="i32", eps="fp32")
                    bwd = dict(X=f"*{dtype}", W=f"*{dtype}", COS=f"*{dtype}", SIN=f"*{dtype}", RSTD="*fp32",
                               DY=f"*{dtype}", DX=f"*{dtype}", DW="*fp32",
                               stride_b="i32", stride_t="i32", stride_h="i32", stride_cos="i32", stride_sin="i32",
                               n_rows="i32", seq="i32", heads="i32", prefix="i32", n_blocks="i32")
                    pointers = ("X", "W", "COS", "SIN", "Y", "RSTD", "DY", "DX", "DW")
                    cases.append(CompileCase(f"qk_prepass_fwd-{tag}", _prepass_fwd_kernel, fwd, constexprs, 4, 1,
                                             tuple(p for p in pointers if p in fwd)))
                    cases.append(CompileCase(f"qk_prepass_bwd-{tag}", _prepass_bwd_kernel, bwd, constexprs, 4, 1,
                                             tuple(p for p in pointers if p in bwd)))
    return cases
