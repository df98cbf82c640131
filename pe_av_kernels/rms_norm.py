"""RMSNorm over the last dimension, forward and backward, with an optional fused residual add.

Numerics follow the eager form (``pe_av.ops.rms_norm.rms_norm_eager``): statistics in fp32, the
normalized row cast to the input dtype, then multiplied by the weight in the promoted dtype of weight
and input. With ``residual`` the kernel first forms ``x + residual`` in the input dtype, normalizes that,
and returns the sum too (the next residual stream), saving a separate read and write of the row.

Strides and dtypes: ``x``, ``residual`` and the gradients may have any strides (rows are read through a
view when one exists, else copied once); the weight is read at unit stride, so a strided weight is made
contiguous first. The weight may have another supported float dtype than ``x`` (the output then has the
promoted dtype, as in the eager form); ``residual`` must have ``x``'s dtype (the eager form would promote
the sum, which the kernel's in-place residual stream cannot), else ``ValueError`` naming it; :func:`problem`
reports that too, so ``pe_av.ops.rms_norm`` runs the eager form there.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import (
    TRITON_DTYPES, CompileCase, check_launchable, check_same, launch_problem, parallel_programs, row_warps,
)

MAX_BLOCK = 8192  # columns a program keeps in registers; longer rows are processed in chunks
MIN_BLOCK = 128  # narrower rows are padded to this: fewer configurations, no cost at PE-AV's widths


# --------------------------------------------------------------------------------------------------
# kernels


@triton.jit
def _load_input(X, R, S, offs, mask, HAS_RESIDUAL: tl.constexpr, STORE_SUM: tl.constexpr):
    """A chunk of the row in fp32; with a residual, the sum rounded to the input dtype first."""
    x = tl.load(X + offs, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        r = tl.load(R + offs, mask=mask, other=0.0)
        x = (x.to(tl.float32) + r.to(tl.float32)).to(X.dtype.element_ty)
        if STORE_SUM:
            tl.store(S + offs, x, mask=mask)
    return x.to(tl.float32)


@triton.jit
def _store_output(Y, W, x, rstd, offs, mask, IN_DTYPE: tl.constexpr):
    normed = (x * rstd).to(IN_DTYPE).to(tl.float32)  # the reference rounds before the weight
    w = tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + offs, (w * normed).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _rms_norm_fwd_kernel(
    X, R, S, Y, W, RSTD,
    stride_x, stride_r, stride_s, stride_y,
    n_cols, eps,
    HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr, N_CHUNKS: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    X += row * stride_x
    Y += row * stride_y
    if HAS_RESIDUAL:
        R += row * stride_r
        S += row * stride_s
    cols = tl.arange(0, BLOCK)
    in_dtype = X.dtype.element_ty
    if N_CHUNKS == 1:
        mask = cols < n_cols
        x = _load_input(X, R, S, cols, mask, HAS_RESIDUAL, True)
        rstd = tl.rsqrt(tl.sum(x * x, axis=0) / n_cols + eps)
        _store_output(Y, W, x, rstd, cols, mask, in_dtype)
    else:
        squares = tl.zeros([BLOCK], dtype=tl.float32)
        for chunk in range(N_CHUNKS):
            offs = chunk * BLOCK + cols
            x = _load_input(X, R, S, offs, offs < n_cols, HAS_RESIDUAL, True)
            squares += x * x
        rstd = tl.rsqrt(tl.sum(squares, axis=0) / n_cols + eps)
        for chunk in range(N_CHUNKS):
            offs = chunk * BLOCK + cols
            # recompute the sum rather than re-read S: no read-after-write ordering to rely on
            x = _load_input(X, R, S, offs, offs < n_cols, HAS_RESIDUAL, False)
            _store_output(Y, W, x, rstd, offs, offs < n_cols, in_dtype)
    tl.store(RSTD + row, rstd)


@triton.jit
def _grad_terms(DY, X, W, rstd, offs, mask):
    """fp32 ``(xhat, g)``: the normalized input and the gradient reaching it, rounded as the reference."""
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
    g = (dy * w).to(DY.dtype.element_ty).to(X.dtype.element_ty).to(tl.float32)
    return x * rstd, g


@triton.jit
def _rms_norm_bwd_kernel(
    DY, X, W, RSTD, DS, DX, DW_PART,
    stride_dy, stride_x, stride_ds, stride_dx,
    n_rows, n_cols, rows_per_program,
    HAS_DSUM: tl.constexpr, BLOCK: tl.constexpr, N_CHUNKS: tl.constexpr,
):
    """dx for ``rows_per_program`` consecutive rows; with one chunk per row also the weight-gradient
    partial sum of those rows (one row of ``DW_PART`` per program)."""
    pid = tl.program_id(0)
    row_start = pid.to(tl.int64) * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, n_rows)
    cols = tl.arange(0, BLOCK)
    in_dtype = X.dtype.element_ty
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    for row in range(row_start, row_end):
        rstd = tl.load(RSTD + row)
        dy_row = DY + row * stride_dy
        x_row = X + row * stride_x
        dx_row = DX + row * stride_dx
        ds_row = DS + row * stride_ds
        if N_CHUNKS == 1:
            mask = cols < n_cols
            xhat, g = _grad_terms(dy_row, x_row, W, rstd, cols, mask)
            dx = rstd * (g - xhat * (tl.sum(g * xhat, axis=0) / n_cols))
            if HAS_DSUM:
                dx += tl.load(ds_row + cols, mask=mask, other=0.0).to(tl.float32)
            tl.store(dx_row + cols, dx.to(in_dtype), mask=mask)
            dy = tl.load(dy_row + cols, mask=mask, other=0.0).to(tl.float32)
            dw += dy * xhat.to(in_dtype).to(tl.float32)
        else:
            dot = tl.zeros([BLOCK], dtype=tl.float32)
            for chunk in range(N_CHUNKS):
                offs = chunk * BLOCK + cols
                xhat, g = _grad_terms(dy_row, x_row, W, rstd, offs, offs < n_cols)
                dot += g * xhat
            mean_dot = tl.sum(dot, axis=0) / n_cols
            for chunk in range(N_CHUNKS):
                offs = chunk * BLOCK + cols
                mask = offs < n_cols
                xhat, g = _grad_terms(dy_row, x_row, W, rstd, offs, mask)
                dx = rstd * (g - xhat * mean_dot)
                if HAS_DSUM:
                    dx += tl.load(ds_row + offs, mask=mask, other=0.0).to(tl.float32)
                tl.store(dx_row + offs, dx.to(in_dtype), mask=mask)
    if N_CHUNKS == 1:
        tl.store(DW_PART + pid * n_cols + cols, dw, mask=cols < n_cols)


@triton.jit
def _rms_norm_dw_kernel(
    DY, X, RSTD, DW_PART,
    stride_dy, stride_x,
    n_rows, n_cols, rows_per_split,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Weight-gradient partial sums over ``rows_per_split`` rows for rows too long for one chunk."""
    pid_c = tl.program_id(0)
    pid_r = tl.program_id(1)
    cols = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    col_mask = cols < n_cols
    in_dtype = X.dtype.element_ty
    acc = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    first = pid_r.to(tl.int64) * rows_per_split
    for start in range(0, rows_per_split, BLOCK_R):
        rows = first + start + tl.arange(0, BLOCK_R)
        row_mask = rows < n_rows
        mask = row_mask[:, None] & col_mask[None, :]
        rstd = tl.load(RSTD + rows, mask=row_mask, other=0.0)
        x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        acc += dy * (x * rstd[:, None]).to(in_dtype).to(tl.float32)
    tl.store(DW_PART + pid_r * n_cols + cols, tl.sum(acc, axis=0), mask=col_mask)


# --------------------------------------------------------------------------------------------------
# launchers


def _blocks(n_cols: int, max_block: int) -> tuple[int, int, int]:
    """(block, chunks, warps) for rows of ``n_cols``."""
    block = min(max(triton.next_power_of_2(n_cols), MIN_BLOCK), triton.next_power_of_2(max_block))
    chunks = triton.cdiv(n_cols, block)
    # chunked rows: 8 warps spill in the fp32 backward, 16 do not (sm_90 compile check)
    return block, chunks, row_warps(block) if chunks == 1 else 16


@triton_op("pe_av_kernels::rms_norm_fwd", mutates_args={})
def _rms_norm_fwd(
    x: torch.Tensor, weight: torch.Tensor, residual: Optional[torch.Tensor], eps: float, max_block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``x`` (N, C) (unit column stride) → (y, sum, rstd); ``sum`` is empty without a residual."""
    n_rows, n_cols = x.shape
    y = torch.empty((n_rows, n_cols), dtype=torch.promote_types(x.dtype, weight.dtype), device=x.device)
    rstd = torch.empty((n_rows,), dtype=torch.float32, device=x.device)
    has_residual = residual is not None
    total = torch.empty((n_rows, n_cols) if has_residual else (0, n_cols), dtype=x.dtype, device=x.device)
    if n_rows == 0:
        return y, total, rstd
    res = residual if has_residual else x
    block, chunks, warps = _blocks(n_cols, max_block)
    wrap_triton(_rms_norm_fwd_kernel)[(n_rows,)](
        x, res, total, y, weight, rstd,
        x.stride(0), res.stride(0), total.stride(0), y.stride(0),
        n_cols, eps,
        HAS_RESIDUAL=has_residual, BLOCK=block, N_CHUNKS=chunks, num_warps=warps,
    )
    return y, total, rstd


@triton_op("pe_av_kernels::rms_norm_bwd", mutates_args={})
def _rms_norm_bwd(
    dy: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    rstd: torch.Tensor,
    dsum: Optional[torch.Tensor],
    max_block: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (dx, dweight) from the saved normalized input ``x`` (N, C) and its ``rstd``."""
    n_rows, n_cols = x.shape
    dx = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if n_rows == 0:
        return dx, torch.zeros_like(weight)
    block, chunks, warps = _blocks(n_cols, max_block)
    # 8 resident programs per SM keep ~32 KB of loads in flight (Little's law for HBM3; 4 would not)
    programs = min(n_rows, parallel_programs(x.device, per_sm=8))
    rows_per_program = triton.cdiv(n_rows, programs)
    programs = triton.cdiv(n_rows, rows_per_program)
    has_dsum = dsum is not None
    ds = dsum if has_dsum else dy
    if chunks == 1:
        partial = torch.empty((programs, n_cols), dtype=torch.float32, device=x.device)
    else:
        partial = dx  # unused by the kernel in this mode
    wrap_triton(_rms_norm_bwd_kernel)[(programs,)](
        dy, x, weight, rstd, ds, dx, partial,
        dy.stride(0), x.stride(0), ds.stride(0), dx.stride(0),
        n_rows, n_cols, rows_per_program,
        HAS_DSUM=has_dsum, BLOCK=block, N_CHUNKS=chunks, num_warps=warps,
    )
    if chunks > 1:
        block_c = min(block, 256)
        block_r = 16
        splits = min(triton.cdiv(n_rows, block_r), parallel_programs(x.device))
        rows_per_split = triton.cdiv(triton.cdiv(n_rows, splits), block_r) * block_r
        splits = triton.cdiv(n_rows, rows_per_split)
        partial = torch.empty((splits, n_cols), dtype=torch.float32, device=x.device)
        wrap_triton(_rms_norm_dw_kernel)[(triton.cdiv(n_cols, block_c), splits)](
            dy, x, rstd, partial,
            dy.stride(0), x.stride(0),
            n_rows, n_cols, rows_per_split,
            BLOCK_R=block_r, BLOCK_C=block_c, num_warps=4,
        )
    return dx, partial.sum(0).to(weight.dtype)


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C) view of ``t`` with unit column stride (copies only when no such view exists)."""
    if t.dim() == 0 or t.stride(-1) != 1:
        t = t.contiguous()
    return t.reshape(-1, t.shape[-1])


def _check(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None, eps: float) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError("rms_norm: x and weight must be tensors")
    if x.dim() < 1:
        raise ValueError("rms_norm: x must have at least one dimension")
    if weight.dim() != 1 or weight.shape[0] != x.shape[-1]:
        raise ValueError(f"rms_norm: weight must have shape ({x.shape[-1]},), got {tuple(weight.shape)}")
    if x.shape[-1] == 0:
        raise ValueError("rms_norm: the normalized dimension is empty")
    tensors = dict(x=x, weight=weight)
    if residual is not None:
        if not isinstance(residual, torch.Tensor):
            raise TypeError(f"rms_norm: residual must be a tensor or None, got {type(residual).__name__}")
        if residual.shape != x.shape:
            raise ValueError(f"rms_norm: residual shape {tuple(residual.shape)} != x shape {tuple(x.shape)}")
        check_same("rms_norm", "dtype", x=x, residual=residual)
        tensors["residual"] = residual
    check_same("rms_norm", "device", **tensors)
    check_launchable(*tensors.values())
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"rms_norm: eps must be a number, got {type(eps).__name__}")
    if not 0 <= eps < float("inf"):
        raise ValueError(f"rms_norm: eps must be finite and >= 0, got {eps}")


class RMSNormFunction(torch.autograd.Function):
    """Autograd wrapper: the forward and backward are both Triton kernels."""

    @staticmethod
    def forward(ctx, x, weight, residual, eps, max_block):
        weight = weight.contiguous()  # the kernels read the weight at unit stride
        rows = _as_rows(x)
        res_rows = None if residual is None else _as_rows(residual)
        y, total, rstd = torch.ops.pe_av_kernels.rms_norm_fwd(rows, weight, res_rows, float(eps), max_block)
        ctx.save_for_backward(total if residual is not None else rows, weight, rstd)
        ctx.max_block = max_block
        ctx.shape = x.shape
        ctx.has_residual = residual is not None
        ctx.set_materialize_grads(False)
        y = y.view(*x.shape[:-1], y.shape[-1])
        if residual is None:
            return y
        return y, total.view(x.shape)

    @staticmethod
    def backward(ctx, dy, dsum=None):
        normed_input, weight, rstd = ctx.saved_tensors
        if dy is None:  # only the sum was used downstream
            dtype = torch.promote_types(normed_input.dtype, weight.dtype)
            dy = torch.zeros(normed_input.shape, dtype=dtype, device=normed_input.device)
        dy_rows = _as_rows(dy)
        ds_rows = None if dsum is None else _as_rows(dsum)
        dx, dweight = torch.ops.pe_av_kernels.rms_norm_bwd(dy_rows, normed_input, weight, rstd, ds_rows, ctx.max_block)
        dx = dx.view(ctx.shape)
        return dx, dweight, (dx if ctx.has_residual else None), None, None


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    residual: torch.Tensor | None = None,
    *,
    max_block: int = MAX_BLOCK,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """RMSNorm of ``x`` over its last dimension, scaled by ``weight`` (Triton, differentiable).

    Args:
        x: ``(..., C)`` float32/float16/bfloat16 on CUDA (or CPU under ``TRITON_INTERPRET=1``); any
            strides (rows are read through a view when one exists, else copied once).
        weight: ``(C,)``, any stride (copied to unit stride when needed) and any supported float dtype;
            the output dtype is ``torch.promote_types(x.dtype, weight.dtype)``.
        eps: added to the mean square.
        residual: optional tensor of ``x``'s shape and dtype, any strides; then ``s = x + residual`` is
            normalized and the result is ``(rms_norm(s), s)``.
        max_block: most columns held in registers at once (longer rows run in chunks); for tests.
    """
    _check(x, weight, residual, eps)
    return RMSNormFunction.apply(x, weight, residual, eps, max_block)


def problem(x, weight, eps=1e-6, residual=None, **_options) -> str | None:
    """Why :func:`rms_norm` cannot run on these tensors in this process, or ``None``."""
    if isinstance(x, torch.Tensor) and isinstance(residual, torch.Tensor) and residual.dtype != x.dtype:
        return f"residual ({residual.dtype}) and x ({x.dtype}) differ in dtype; the kernel needs one"
    return launch_problem(*(t for t in (x, weight, residual) if isinstance(t, torch.Tensor)))


def compile_cases() -> list[CompileCase]:
    """Every block :func:`_blocks` picks at the default ``max_block`` (one chunk, and two or more: the
    chunked loops are the same code for every count above one), with and without the residual, per dtype
    (weight of ``x``'s dtype, as in the models), and the weight-gradient kernel of the chunked path."""
    cases = []
    blocks = [MIN_BLOCK << i for i in range((MAX_BLOCK // MIN_BLOCK).bit_length())]
    shapes = [(block, 1) for block in blocks] + [(MAX_BLOCK, 2)]
    for dtype in TRITON_DTYPES.values():
        p = f"*{dtype}"
        for block, chunks in shapes:
            warps = _blocks(block * chunks, MAX_BLOCK)[2]
            for flag in (False, True):
                tag = f"{dtype},B{block}x{chunks}"
                cases.append(CompileCase(
                    f"rms_norm_fwd[{tag},residual={flag}]", _rms_norm_fwd_kernel,
                    dict(X=p, R=p, S=p, Y=p, W=p, RSTD="*fp32", stride_x="i32", stride_r="i32", stride_s="i32",
                         stride_y="i32", n_cols="i32", eps="fp32"),
                    dict(HAS_RESIDUAL=flag, BLOCK=block, N_CHUNKS=chunks), num_warps=warps,
                    divisible=("X", "R", "S", "Y", "W", "RSTD", "stride_x", "stride_r", "stride_s", "stride_y", "n_cols"),
                ))
                cases.append(CompileCase(
                    f"rms_norm_bwd[{tag},dsum={flag}]", _rms_norm_bwd_kernel,
                    dict(DY=p, X=p, W=p, RSTD="*fp32", DS=p, DX=p, DW_PART="*fp32" if chunks == 1 else p,
                         stride_dy="i32", stride_x="i32", stride_ds="i32", stride_dx="i32",
                         n_rows="i32", n_cols="i32", rows_per_program="i32"),
                    dict(HAS_DSUM=flag, BLOCK=block, N_CHUNKS=chunks), num_warps=warps,
                    divisible=("DY", "X", "W", "RSTD", "DS", "DX", "DW_PART", "stride_dy", "stride_x", "stride_ds",
                               "stride_dx", "n_cols"),
                ))
        cases.append(CompileCase(
            f"rms_norm_dw[{dtype},16x256]", _rms_norm_dw_kernel,
            dict(DY=p, X=p, RSTD="*fp32", DW_PART="*fp32", stride_dy="i32", stride_x="i32",
                 n_rows="i32", n_cols="i32", rows_per_split="i32"),
            dict(BLOCK_R=16, BLOCK_C=256), num_warps=4,
            divisible=("DY", "X", "RSTD", "DW_PART", "stride_dy", "stride_x", "n_cols", "rows_per_split"),
        ))
    return cases
