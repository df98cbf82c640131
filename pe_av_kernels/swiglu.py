"""SwiGLU activation ``silu(gate) * up``, forward and backward, for any width.

Numerics follow the eager form (``pe_av.ops.swiglu.swiglu_eager``): ``silu`` evaluated in fp32 and rounded to the input dtype
before the product, as PyTorch's ``F.silu(gate) * up`` does for half-precision tensors.

Strides and dtypes: ``gate``, ``up`` and the output gradient may have any strides (rows are read through a
view when one exists, else copied once). ``gate`` and ``up`` must share one dtype (``ValueError`` naming
both otherwise; :func:`problem` reports it too, so ``pe_av.ops.swiglu`` runs the eager form, which promotes).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import TRITON_DTYPES, CompileCase, check_launchable, check_same, launch_problem

MIN_BLOCK_C, MAX_BLOCK_C = 128, 1024


@triton.jit
def _tile(n_rows, n_cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (rows < n_rows)[:, None] & (cols < n_cols)[None, :]
    return rows, cols, mask


@triton.jit
def _swiglu_fwd_kernel(
    G, U, Y, stride_g, stride_u, stride_y, n_rows, n_cols,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    g = tl.load(G + rows[:, None] * stride_g + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + rows[:, None] * stride_u + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    silu = (g * tl.sigmoid(g)).to(G.dtype.element_ty).to(tl.float32)
    tl.store(Y + rows[:, None] * stride_y + cols[None, :], (silu * u).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd_kernel(
    DY, G, U, DG, DU, stride_dy, stride_g, stride_u, n_rows, n_cols,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``DG``/``DU`` are contiguous (N, C)."""
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + rows[:, None] * stride_g + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    u = tl.load(U + rows[:, None] * stride_u + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    sig = tl.sigmoid(g)
    silu = (g * sig).to(G.dtype.element_ty).to(tl.float32)
    dsilu = (dy * u).to(G.dtype.element_ty).to(tl.float32)  # gradient reaching silu(gate), rounded
    out = rows[:, None] * n_cols + cols[None, :]
    tl.store(DU + out, (dy * silu).to(DU.dtype.element_ty), mask=mask)
    tl.store(DG + out, (dsilu * sig * (1.0 + g * (1.0 - sig))).to(DG.dtype.element_ty), mask=mask)


def _blocks(n_cols: int) -> tuple[int, int, int]:
    """(rows, cols, warps) of a tile of about 4096 elements."""
    block_c = min(max(triton.next_power_of_2(n_cols), MIN_BLOCK_C), MAX_BLOCK_C)
    block_r = max(1, 4096 // block_c)
    return block_r, block_c, 8 if block_r * block_c >= 4096 else 4


def _grid(n_rows: int, n_cols: int, block_r: int, block_c: int) -> tuple[int, int]:
    return triton.cdiv(n_rows, block_r), triton.cdiv(n_cols, block_c)


@triton_op("pe_av_kernels::swiglu_fwd", mutates_args={})
def _swiglu_fwd(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Rows ``gate``/``up`` (N, C) with unit column stride → contiguous (N, C)."""
    n_rows, n_cols = gate.shape
    y = torch.empty((n_rows, n_cols), dtype=gate.dtype, device=gate.device)
    if y.numel() == 0:
        return y
    block_r, block_c, warps = _blocks(n_cols)
    wrap_triton(_swiglu_fwd_kernel)[_grid(n_rows, n_cols, block_r, block_c)](
        gate, up, y, gate.stride(0), up.stride(0), y.stride(0), n_rows, n_cols,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=warps,
    )
    return y


@triton_op("pe_av_kernels::swiglu_bwd", mutates_args={})
def _swiglu_bwd(dy: torch.Tensor, gate: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (dgate, dup) as contiguous (N, C)."""
    n_rows, n_cols = gate.shape
    dgate = torch.empty((n_rows, n_cols), dtype=gate.dtype, device=gate.device)
    dup = torch.empty_like(dgate)
    if dgate.numel() == 0:
        return dgate, dup
    block_r, block_c, warps = _blocks(n_cols)
    wrap_triton(_swiglu_bwd_kernel)[_grid(n_rows, n_cols, block_r, block_c)](
        dy, gate, up, dgate, dup, dy.stride(0), gate.stride(0), up.stride(0), n_rows, n_cols,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=warps,
    )
    return dgate, dup


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 0 or t.stride(-1) != 1:
        t = t.contiguous()
    return t.reshape(-1, t.shape[-1])


class SwiGLUFunction(torch.autograd.Function):
    """Autograd wrapper: the forward and backward are both Triton kernels."""

    @staticmethod
    def forward(ctx, gate, up):
        gate_rows, up_rows = _as_rows(gate), _as_rows(up)
        ctx.save_for_backward(gate_rows, up_rows)
        return torch.ops.pe_av_kernels.swiglu_fwd(gate_rows, up_rows).view(gate.shape)

    @staticmethod
    def backward(ctx, dy):
        gate_rows, up_rows = ctx.saved_tensors
        dgate, dup = torch.ops.pe_av_kernels.swiglu_bwd(_as_rows(dy), gate_rows, up_rows)
        return dgate.view(dy.shape), dup.view(dy.shape)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` (Triton, differentiable).

    Args:
        gate, up: tensors of one shape ``(..., C)`` and dtype (float32/float16/bfloat16) on CUDA, or
            CPU under ``TRITON_INTERPRET=1``. Any strides; rows are read through views when possible,
            so the two halves of a fused gate/up projection need no copy.
    Returns:
        a contiguous tensor of ``gate``'s shape and dtype.
    """
    if not isinstance(gate, torch.Tensor) or not isinstance(up, torch.Tensor):
        raise TypeError("swiglu: gate and up must be tensors")
    if gate.shape != up.shape:
        raise ValueError(f"swiglu: gate shape {tuple(gate.shape)} != up shape {tuple(up.shape)}")
    if gate.dim() < 1:
        raise ValueError("swiglu: inputs must have at least one dimension")
    check_same("swiglu", "dtype", gate=gate, up=up)
    check_same("swiglu", "device", gate=gate, up=up)
    check_launchable(gate, up)
    if gate.numel() == 0:  # nothing to launch; also avoids reshaping zero-width rows
        return torch.empty_like(gate, memory_format=torch.contiguous_format)
    return SwiGLUFunction.apply(gate, up)


def problem(gate, up, **_options) -> str | None:
    """Why :func:`swiglu` cannot run on these tensors in this process, or ``None``."""
    if isinstance(gate, torch.Tensor) and isinstance(up, torch.Tensor) and gate.dtype != up.dtype:
        return f"gate ({gate.dtype}) and up ({up.dtype}) differ in dtype; the kernel needs one"
    return launch_problem(gate, up)


def compile_cases() -> list[CompileCase]:
    """Every tile :func:`_blocks` can choose, per dtype, forward and backward."""
    cases = []
    for dtype in TRITON_DTYPES.values():
        p = f"*{dtype}"
        for width in (MIN_BLOCK_C << i for i in range((MAX_BLOCK_C // MIN_BLOCK_C).bit_length())):
            block_r, block_c, warps = _blocks(width)
            meta = dict(BLOCK_R=block_r, BLOCK_C=block_c)
            tag = f"{dtype},{block_r}x{block_c}"
            cases.append(CompileCase(
                f"swiglu_fwd[{tag}]", _swiglu_fwd_kernel,
                dict(G=p, U=p, Y=p, stride_g="i32", stride_u="i32", stride_y="i32", n_rows="i32", n_cols="i32"),
                meta, num_warps=warps, divisible=("G", "U", "Y", "stride_g", "stride_u", "stride_y", "n_cols"),
            ))
            cases.append(CompileCase(
                f"swiglu_bwd[{tag}]", _swiglu_bwd_kernel,
                dict(DY=p, G=p, U=p, DG=p, DU=p, stride_dy="i32", stride_g="i32", stride_u="i32",
                     n_rows="i32", n_cols="i32"),
                meta, num_warps=warps, divisible=("DY", "G", "U", "DG", "DU", "stride_dy", "stride_g", "stride_u", "n_cols"),
            ))
    return cases
