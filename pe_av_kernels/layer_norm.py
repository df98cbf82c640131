"""LayerNorm over the last dimension, forward and backward, with an optional fused residual add.

Numerics follow ``F.layer_norm`` (``pe_av.ops.layer_norm.layer_norm``): mean and variance in fp32, the
affine transform in fp32, one rounding to the input dtype at the end; the backward is PyTorch's formula
in fp32 with one rounding of each gradient. With ``residual`` the kernel first forms ``s = x + residual``
rounded to the input dtype (as the eager ``x + residual`` does), normalizes ``s`` and returns it too (the
next residual stream), saving a separate read and write of the row.

A program holds one whole row in registers, so rows are at most :data:`MAX_COLS` wide (every LayerNorm of
PE-AV is 1024 or 1792 wide); :func:`problem` reports wider rows, and ``pe_av.ops.layer_norm`` then runs
the eager form.

Strides and dtypes: ``x``, ``residual`` and the output gradient may have any strides (rows are read
through a view when one exists, else copied once). ``weight`` and ``bias`` are optional (missing ones are
read as ones and zeros) and must have ``x``'s dtype, as must ``residual`` (``ValueError`` naming them
otherwise; :func:`problem` reports it, so the op runs the eager form, which promotes).
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import (
    TRITON_DTYPES,
    CompileCase,
    as_rows,
    check_launchable,
    check_same,
    launch_problem,
    parallel_programs,
    row_warps,
)

MAX_COLS = 4096
MIN_BLOCK = 128  # narrower rows are padded to this: fewer configurations, no cost at PE-AV's widths


@triton.jit
def _layer_norm_fwd_kernel(
    X, R, S, Y, W, B, MEAN, RSTD,
    stride_x, stride_r, stride_s, stride_y,
    n_cols, eps,
    HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        r = tl.load(R + row * stride_r + cols, mask=mask, other=0.0)
        x = (x.to(tl.float32) + r.to(tl.float32)).to(X.dtype.element_ty)
        tl.store(S + row * stride_s + cols, x, mask=mask)
    x = x.to(tl.float32)
    mean = tl.sum(x, axis=0) / n_cols
    centered = tl.where(mask, x - mean, 0.0)
    rstd = tl.rsqrt(tl.sum(centered * centered, axis=0) / n_cols + eps)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, (centered * rstd * w + b).to(Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + row, mean)
    tl.store(RSTD + row, rstd)


@triton.jit
def _layer_norm_bwd_kernel(
    DY, X, W, MEAN, RSTD, DS, DX, DW_PART, DB_PART,
    stride_dy, stride_x, stride_ds, stride_dx,
    n_rows, n_cols, rows_per_program,
    HAS_DSUM: tl.constexpr, BLOCK: tl.constexpr,
):
    """dx of ``rows_per_program`` consecutive rows, and those rows' share of dweight and dbias (one
    row of ``DW_PART`` / ``DB_PART`` per program, summed afterwards)."""
    pid = tl.program_id(0)
    row_start = pid.to(tl.int64) * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, n_rows)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    db = tl.zeros([BLOCK], dtype=tl.float32)
    for row in range(row_start, row_end):
        x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + row * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.load(MEAN + row)
        rstd = tl.load(RSTD + row)
        xhat = tl.where(mask, (x - mean) * rstd, 0.0)
        g = dy * w
        mean_g = tl.sum(g, axis=0) / n_cols
        mean_gx = tl.sum(g * xhat, axis=0) / n_cols
        dx = (g - mean_g - xhat * mean_gx) * rstd
        if HAS_DSUM:
            dx += tl.load(DS + row * stride_ds + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(DX + row * stride_dx + cols, dx.to(DX.dtype.element_ty), mask=mask)
        dw += dy * xhat
        db += dy
    tl.store(DW_PART + pid * n_cols + cols, dw, mask=mask)
    tl.store(DB_PART + pid * n_cols + cols, db, mask=mask)


def block_for(n_cols: int) -> tuple[int, int]:
    """(block, warps) of a program holding one row of ``n_cols``."""
    block = max(triton.next_power_of_2(n_cols), MIN_BLOCK)
    return block, row_warps(block)


@triton_op("pe_av_kernels::layer_norm_fwd", mutates_args={})
def _layer_norm_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: Optional[torch.Tensor], eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``x`` (N, C) with unit column stride → (y, sum, mean, rstd); ``sum`` is empty without a residual."""
    n_rows, n_cols = x.shape
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    mean = torch.empty((n_rows,), dtype=torch.float32, device=x.device)
    rstd = torch.empty_like(mean)
    has_residual = residual is not None
    total = torch.empty((n_rows, n_cols) if has_residual else (0, n_cols), dtype=x.dtype, device=x.device)
    if n_rows == 0:
        return y, total, mean, rstd
    res = residual if has_residual else x
    block, warps = block_for(n_cols)
    wrap_triton(_layer_norm_fwd_kernel)[(n_rows,)](
        x, res, total, y, weight, bias, mean, rstd,
        x.stride(0), res.stride(0), total.stride(0), y.stride(0),
        n_cols, eps,
        HAS_RESIDUAL=has_residual, BLOCK=block, num_warps=warps,
    )
    return y, total, mean, rstd


@triton_op("pe_av_kernels::layer_norm_bwd", mutates_args={})
def _layer_norm_bwd(
    dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
    dsum: Optional[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dx, dweight, dbias) from the normalized input ``x`` (N, C) and its saved statistics."""
    n_rows, n_cols = x.shape
    dx = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if n_rows == 0:
        return dx, torch.zeros_like(weight), torch.zeros_like(weight)
    block, warps = block_for(n_cols)
    # 8 resident programs per SM keep ~32 KB of loads in flight (Little's law for HBM3; 4 would not)
    programs = min(n_rows, parallel_programs(x.device, per_sm=8))
    rows_per_program = triton.cdiv(n_rows, programs)
    programs = triton.cdiv(n_rows, rows_per_program)
    dw_part = torch.empty((programs, n_cols), dtype=torch.float32, device=x.device)
    db_part = torch.empty_like(dw_part)
    ds = dsum if dsum is not None else dy
    wrap_triton(_layer_norm_bwd_kernel)[(programs,)](
        dy, x, weight, mean, rstd, ds, dx, dw_part, db_part,
        dy.stride(0), x.stride(0), ds.stride(0), dx.stride(0),
        n_rows, n_cols, rows_per_program,
        HAS_DSUM=dsum is not None, BLOCK=block, num_warps=warps,
    )
    return dx, dw_part.sum(0).to(weight.dtype), db_part.sum(0).to(weight.dtype)


class LayerNormFunction(torch.autograd.Function):
    """Autograd wrapper: the forward and backward are both Triton kernels."""

    @staticmethod
    def forward(ctx, x, weight, bias, residual, eps):
        n_cols = x.shape[-1]
        w = weight.contiguous() if weight is not None else torch.ones(n_cols, dtype=x.dtype, device=x.device)
        b = bias.contiguous() if bias is not None else torch.zeros(n_cols, dtype=x.dtype, device=x.device)
        rows = as_rows(x)
        res_rows = None if residual is None else as_rows(residual)
        y, total, mean, rstd = torch.ops.pe_av_kernels.layer_norm_fwd(rows, w, b, res_rows, float(eps))
        ctx.save_for_backward(total if residual is not None else rows, w, mean, rstd)
        ctx.shape = x.shape
        ctx.has = (weight is not None, bias is not None, residual is not None)
        ctx.set_materialize_grads(False)
        y = y.view(x.shape)
        return y if residual is None else (y, total.view(x.shape))

    @staticmethod
    def backward(ctx, dy, dsum=None):
        normed_input, w, mean, rstd = ctx.saved_tensors
        if dy is None:  # only the sum was used downstream
            dy = torch.zeros(normed_input.shape, dtype=normed_input.dtype, device=normed_input.device)
        ds_rows = None if dsum is None else as_rows(dsum)
        dx, dw, db = torch.ops.pe_av_kernels.layer_norm_bwd(as_rows(dy), normed_input, w, mean, rstd, ds_rows)
        dx = dx.view(ctx.shape)
        has_weight, has_bias, has_residual = ctx.has
        return dx, dw if has_weight else None, db if has_bias else None, dx if has_residual else None, None


def _check(x, weight, bias, residual, eps) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"layer_norm: x must be a tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"layer_norm: x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    if x.shape[-1] > MAX_COLS:
        raise ValueError(f"layer_norm: rows of {x.shape[-1]} are wider than the kernel's {MAX_COLS}")
    tensors = {"x": x}
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"layer_norm: {name} must be a tensor or None, got {type(value).__name__}")
        if value.shape != (x.shape[-1],):
            raise ValueError(f"layer_norm: {name} must have shape ({x.shape[-1]},), got {tuple(value.shape)}")
        tensors[name] = value
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"layer_norm: residual must be a tensor or None, got {type(residual).__name__}")
        if residual.shape != x.shape:
            raise ValueError(f"layer_norm: residual shape {tuple(residual.shape)} != x shape {tuple(x.shape)}")
        tensors["residual"] = residual
    check_same("layer_norm", "dtype", **tensors)
    check_same("layer_norm", "device", **tensors)
    check_launchable(*tensors.values())
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < float("inf"):
        raise ValueError(f"layer_norm: eps must be a finite number >= 0, got {eps!r}")


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float = 1e-5,
    residual: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm of ``x`` over its last dimension (Triton, differentiable).

    Args:
        x: ``(..., C)`` float32/float16/bfloat16, ``C <= MAX_COLS``, on CUDA (or CPU under
            ``TRITON_INTERPRET=1``); any strides.
        weight, bias: ``(C,)`` of ``x``'s dtype, or ``None`` (no scale / no shift).
        eps: added to the variance.
        residual: optional tensor of ``x``'s shape and dtype; then ``s = x + residual`` is normalized
            and the result is ``(layer_norm(s), s)``.
    """
    _check(x, weight, bias, residual, eps)
    return LayerNormFunction.apply(x, weight, bias, residual, eps)


def problem(x, weight, bias, eps=1e-5, residual=None, **_options) -> str | None:
    """Why :func:`layer_norm` cannot run on these arguments in this process, or ``None``."""
    tensors = [t for t in (x, weight, bias, residual) if isinstance(t, torch.Tensor)]
    if isinstance(x, torch.Tensor):
        if x.dim() >= 1 and x.shape[-1] > MAX_COLS:
            return f"rows of {x.shape[-1]} are wider than the kernel's {MAX_COLS}"
        mixed = [t.dtype for t in tensors if t.dtype != x.dtype]
        if mixed:
            return f"x ({x.dtype}) and its weight, bias or residual ({mixed[0]}) differ in dtype; the kernel needs one"
    return launch_problem(*tensors)


def compile_cases() -> list[CompileCase]:
    """Every (block, warps, residual flag, dtype) :func:`block_for` and the launchers can choose."""
    cases = []
    # row strides and widths divisible by 16 elements: what every launch at PE-AV's widths gets
    STRIDES_FWD = ("stride_x", "stride_r", "stride_s", "stride_y")
    STRIDES_BWD = ("stride_dy", "stride_x", "stride_ds", "stride_dx")
    blocks = [MIN_BLOCK << i for i in range((MAX_COLS // MIN_BLOCK).bit_length())]
    for dtype in TRITON_DTYPES.values():
        ptr = f"*{dtype}"
        for block in blocks:
            warps = row_warps(block)
            for flag in (False, True):
                cases.append(CompileCase(
                    f"layer_norm_fwd[{dtype},B{block},residual={flag}]", _layer_norm_fwd_kernel,
                    dict(X=ptr, R=ptr, S=ptr, Y=ptr, W=ptr, B=ptr, MEAN="*fp32", RSTD="*fp32",
                         stride_x="i32", stride_r="i32", stride_s="i32", stride_y="i32", n_cols="i32", eps="fp32"),
                    dict(HAS_RESIDUAL=flag, BLOCK=block), num_warps=warps,
                    divisible=("X", "R", "S", "Y", "W", "B", "MEAN", "RSTD", "n_cols", *STRIDES_FWD),
                ))
                cases.append(CompileCase(
                    f"layer_norm_bwd[{dtype},B{block},dsum={flag}]", _layer_norm_bwd_kernel,
                    dict(DY=ptr, X=ptr, W=ptr, MEAN="*fp32", RSTD="*fp32", DS=ptr, DX=ptr, DW_PART="*fp32",
                         DB_PART="*fp32", stride_dy="i32", stride_x="i32", stride_ds="i32", stride_dx="i32",
                         n_rows="i32", n_cols="i32", rows_per_program="i32"),
                    dict(HAS_DSUM=flag, BLOCK=block), num_warps=warps,
                    divisible=("DY", "X", "W", "MEAN", "RSTD", "DS", "DX", "DW_PART", "DB_PART", "n_cols", *STRIDES_BWD),
                ))
    return cases
