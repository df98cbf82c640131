"""GELU kernels, forward and backward: bias + GELU (the ViT's MLP) and GeGLU (ModernBERT's MLP).

- :func:`bias_gelu` ``gelu(x + bias)`` with the exact (erf) GELU of timm's ``nn.GELU``: the GEMM before it
  runs without its bias, and the bias add, the activation and (backward) the bias gradient are one pass.
- :func:`geglu` ``gelu(value) * gate`` with the erf GELU (ModernBERT's ``"gelu"``) or its tanh form
  (``"gelu_pytorch_tanh"`` / ``"gelu_new"``); other activations are reported by :func:`geglu_problem`.

Numerics follow the eager forms (``pe_av.ops.gelu``): ``x + bias`` and ``gelu(value)`` are rounded to the
input dtype where PyTorch's separate ops round them, everything else is fp32 with one rounding at the end.

Strides and dtypes: inputs and output gradients may have any strides (rows are read through a view when
one exists, else copied once), so the two halves of a fused projection need no copy; all tensors of one
call share one dtype (``ValueError`` naming them otherwise).
"""

from __future__ import annotations

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
)

#: GeGLU activation names (as ModernBERT configs spell them) → whether the tanh approximation is used
GEGLU_ACTIVATIONS = {"gelu": False, "gelu_python": False, "gelu_pytorch_tanh": True, "gelu_new": True}
MIN_BLOCK_C, MAX_BLOCK_C, TILE = 128, 1024, 4096
# constexpr: the compiler (unlike the interpreter) refuses plain Python globals inside a kernel
_SQRT_HALF = tl.constexpr(0.7071067811865476)
_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)
_SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)


@triton.jit
def _gelu_and_grad(x, TANH: tl.constexpr):
    """fp32 ``(gelu(x), gelu'(x))``."""
    if TANH:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
        t = 2.0 * tl.sigmoid(2.0 * inner) - 1.0  # tanh(inner)
        y = 0.5 * x * (1.0 + t)
        dy = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
    else:
        cdf = 0.5 * (1.0 + tl.math.erf(x * _SQRT_HALF))
        y = x * cdf
        dy = cdf + x * _INV_SQRT_2PI * tl.exp(-0.5 * x * x)
    return y, dy


@triton.jit
def _tile(n_rows, n_cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    return rows, cols, (rows < n_rows)[:, None] & (cols < n_cols)[None, :]


@triton.jit
def _bias_gelu_fwd_kernel(X, BIAS, Y, stride_x, n_rows, n_cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """``Y`` is contiguous (N, C)."""
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    b = tl.load(BIAS + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    s = (x + b[None, :]).to(X.dtype.element_ty).to(tl.float32)
    y, _ = _gelu_and_grad(s, False)
    tl.store(Y + rows[:, None] * n_cols + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _bias_gelu_bwd_kernel(
    DY, X, BIAS, DX, DB_PART, stride_dy, stride_x, n_rows, n_cols,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``DX`` contiguous (N, C); row ``pid_r`` of ``DB_PART`` gets this tile's column sums of ``DX``."""
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    x = tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    b = tl.load(BIAS + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    s = (x + b[None, :]).to(X.dtype.element_ty).to(tl.float32)
    _, slope = _gelu_and_grad(s, False)
    dx = (dy * slope).to(DX.dtype.element_ty)
    tl.store(DX + rows[:, None] * n_cols + cols[None, :], dx, mask=mask)
    partial = tl.sum(tl.where(mask, dx.to(tl.float32), 0.0), axis=0)
    tl.store(DB_PART + tl.program_id(0) * n_cols + cols, partial, mask=cols < n_cols)


@triton.jit
def _geglu_fwd_kernel(
    V, G, Y, stride_v, stride_g, n_rows, n_cols,
    TANH: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``Y`` is contiguous (N, C)."""
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    v = tl.load(V + rows[:, None] * stride_v + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + rows[:, None] * stride_g + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    act, _ = _gelu_and_grad(v, TANH)
    act = act.to(V.dtype.element_ty).to(tl.float32)  # the eager form rounds the activation first
    tl.store(Y + rows[:, None] * n_cols + cols[None, :], (act * g).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _geglu_bwd_kernel(
    DY, V, G, DV, DG, stride_dy, stride_v, stride_g, n_rows, n_cols,
    TANH: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``DV``/``DG`` are contiguous (N, C)."""
    rows, cols, mask = _tile(n_rows, n_cols, BLOCK_R, BLOCK_C)
    dy = tl.load(DY + rows[:, None] * stride_dy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    v = tl.load(V + rows[:, None] * stride_v + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    g = tl.load(G + rows[:, None] * stride_g + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    act, slope = _gelu_and_grad(v, TANH)
    act = act.to(V.dtype.element_ty).to(tl.float32)
    dact = (dy * g).to(V.dtype.element_ty).to(tl.float32)  # gradient reaching gelu(value), rounded
    out = rows[:, None] * n_cols + cols[None, :]
    tl.store(DG + out, (dy * act).to(DG.dtype.element_ty), mask=mask)
    tl.store(DV + out, (dact * slope).to(DV.dtype.element_ty), mask=mask)


def tile_for(n_cols: int) -> tuple[int, int, int]:
    """(rows, cols, warps) of a tile of :data:`TILE` elements over rows of ``n_cols``."""
    block_c = min(max(triton.next_power_of_2(n_cols), MIN_BLOCK_C), MAX_BLOCK_C)
    return TILE // block_c, block_c, 8


def _grid(n_rows: int, n_cols: int) -> tuple[tuple[int, int], dict]:
    block_r, block_c, warps = tile_for(n_cols)
    return (triton.cdiv(n_rows, block_r), triton.cdiv(n_cols, block_c)), dict(
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=warps
    )


@triton_op("pe_av_kernels::bias_gelu_fwd", mutates_args={})
def _bias_gelu_fwd(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    n_rows, n_cols = x.shape
    y = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    if y.numel():
        grid, meta = _grid(n_rows, n_cols)
        wrap_triton(_bias_gelu_fwd_kernel)[grid](x, bias, y, x.stride(0), n_rows, n_cols, **meta)
    return y


@triton_op("pe_av_kernels::bias_gelu_bwd", mutates_args={})
def _bias_gelu_bwd(dy: torch.Tensor, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n_rows, n_cols = x.shape
    dx = torch.empty((n_rows, n_cols), dtype=x.dtype, device=x.device)
    grid, meta = _grid(n_rows, n_cols)
    partial = torch.zeros((grid[0], n_cols), dtype=torch.float32, device=x.device)
    if dx.numel():
        wrap_triton(_bias_gelu_bwd_kernel)[grid](
            dy, x, bias, dx, partial, dy.stride(0), x.stride(0), n_rows, n_cols, **meta
        )
    return dx, partial.sum(0).to(bias.dtype)


@triton_op("pe_av_kernels::geglu_fwd", mutates_args={})
def _geglu_fwd(value: torch.Tensor, gate: torch.Tensor, tanh: bool) -> torch.Tensor:
    n_rows, n_cols = value.shape
    y = torch.empty((n_rows, n_cols), dtype=value.dtype, device=value.device)
    if y.numel():
        grid, meta = _grid(n_rows, n_cols)
        wrap_triton(_geglu_fwd_kernel)[grid](
            value, gate, y, value.stride(0), gate.stride(0), n_rows, n_cols, TANH=tanh, **meta
        )
    return y


@triton_op("pe_av_kernels::geglu_bwd", mutates_args={})
def _geglu_bwd(
    dy: torch.Tensor, value: torch.Tensor, gate: torch.Tensor, tanh: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    n_rows, n_cols = value.shape
    dvalue = torch.empty((n_rows, n_cols), dtype=value.dtype, device=value.device)
    dgate = torch.empty_like(dvalue)
    if dvalue.numel():
        grid, meta = _grid(n_rows, n_cols)
        wrap_triton(_geglu_bwd_kernel)[grid](
            dy, value, gate, dvalue, dgate, dy.stride(0), value.stride(0), gate.stride(0), n_rows, n_cols,
            TANH=tanh, **meta,
        )
    return dvalue, dgate


class BiasGeluFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias):
        rows = as_rows(x)
        bias = bias.contiguous()
        ctx.save_for_backward(rows, bias)
        return torch.ops.pe_av_kernels.bias_gelu_fwd(rows, bias).view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        rows, bias = ctx.saved_tensors
        dx, dbias = torch.ops.pe_av_kernels.bias_gelu_bwd(as_rows(dy), rows, bias)
        return dx.view(dy.shape), dbias


class GegluFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, gate, tanh):
        value_rows, gate_rows = as_rows(value), as_rows(gate)
        ctx.save_for_backward(value_rows, gate_rows)
        ctx.tanh = tanh
        return torch.ops.pe_av_kernels.geglu_fwd(value_rows, gate_rows, tanh).view(value.shape)

    @staticmethod
    def backward(ctx, dy):
        value_rows, gate_rows = ctx.saved_tensors
        dvalue, dgate = torch.ops.pe_av_kernels.geglu_bwd(as_rows(dy), value_rows, gate_rows, ctx.tanh)
        return dvalue.view(dy.shape), dgate.view(dy.shape), None


def _check_pair(name: str, first: str, a: object, second: str, b: object) -> None:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError(f"{name}: {first} and {second} must be tensors")
    if a.dim() < 1:
        raise ValueError(f"{name}: {first} must have at least one dimension")
    check_same(name, "dtype", **{first: a, second: b})
    check_same(name, "device", **{first: a, second: b})
    check_launchable(a, b)


def bias_gelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``gelu(x + bias)`` with the exact (erf) GELU (Triton, differentiable).

    Args:
        x: ``(..., C)`` float32/float16/bfloat16 on CUDA (or CPU under ``TRITON_INTERPRET=1``), any strides.
        bias: ``(C,)`` of ``x``'s dtype and device.
    Returns:
        a contiguous tensor of ``x``'s shape and dtype.
    """
    _check_pair("bias_gelu", "x", x, "bias", bias)
    if bias.shape != (x.shape[-1],):
        raise ValueError(f"bias_gelu: bias must have shape ({x.shape[-1]},), got {tuple(bias.shape)}")
    if x.numel() == 0:
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    return BiasGeluFunction.apply(x, bias)


def geglu(value: torch.Tensor, gate: torch.Tensor, activation: str = "gelu") -> torch.Tensor:
    """``gelu(value) * gate`` (Triton, differentiable); ``activation`` is a key of :data:`GEGLU_ACTIVATIONS`.

    ``value`` and ``gate``: one shape ``(..., C)`` and dtype, any strides (e.g. the halves of ``Wi``'s output).
    """
    _check_pair("geglu", "value", value, "gate", gate)
    if value.shape != gate.shape:
        raise ValueError(f"geglu: value shape {tuple(value.shape)} != gate shape {tuple(gate.shape)}")
    if activation not in GEGLU_ACTIVATIONS:
        raise ValueError(f"geglu: activation must be one of {sorted(GEGLU_ACTIVATIONS)}, got {activation!r}")
    if value.numel() == 0:
        return torch.empty_like(value, memory_format=torch.contiguous_format)
    return GegluFunction.apply(value, gate, GEGLU_ACTIVATIONS[activation])


def bias_gelu_problem(x, *tensors, **_options) -> str | None:
    """Why :func:`bias_gelu` cannot run on ``x`` and the tensors that come with it (the op passes the
    GEMM's weight and bias), or ``None``."""
    given = [t for t in (x, *tensors) if isinstance(t, torch.Tensor)]
    if tensors and tensors[-1] is None:
        return "the layer has no bias to fuse"
    mixed = [t.dtype for t in given if t.dtype != x.dtype]
    if mixed:
        return f"x ({x.dtype}) and the weight or bias ({mixed[0]}) differ in dtype; the kernel needs one"
    return launch_problem(*given)


def geglu_problem(value, gate, activation="gelu", **_options) -> str | None:
    """Why :func:`geglu` cannot run on these arguments in this process, or ``None``."""
    if activation not in GEGLU_ACTIVATIONS:
        return f"activation {activation!r} has no GeGLU kernel (only {sorted(GEGLU_ACTIVATIONS)})"
    if isinstance(value, torch.Tensor) and isinstance(gate, torch.Tensor) and value.dtype != gate.dtype:
        return f"value ({value.dtype}) and gate ({gate.dtype}) differ in dtype; the kernel needs one"
    return launch_problem(value, gate)


def compile_cases() -> list[CompileCase]:
    """Every tile :func:`tile_for` can choose, per dtype, and both GELU forms of GeGLU."""
    cases = []
    widths = [MIN_BLOCK_C << i for i in range((MAX_BLOCK_C // MIN_BLOCK_C).bit_length())]
    for dtype in TRITON_DTYPES.values():
        p = f"*{dtype}"
        for width in widths:
            block_r, block_c, warps = tile_for(width)
            meta = dict(BLOCK_R=block_r, BLOCK_C=block_c)
            ints = dict(n_rows="i32", n_cols="i32")
            tag = f"{dtype},{block_r}x{block_c}"
            cases.append(CompileCase(
                f"bias_gelu_fwd[{tag}]", _bias_gelu_fwd_kernel, dict(X=p, BIAS=p, Y=p, stride_x="i32", **ints),
                meta, num_warps=warps, divisible=("X", "BIAS", "Y", "stride_x", "n_cols"),
            ))
            cases.append(CompileCase(
                f"bias_gelu_bwd[{tag}]", _bias_gelu_bwd_kernel,
                dict(DY=p, X=p, BIAS=p, DX=p, DB_PART="*fp32", stride_dy="i32", stride_x="i32", **ints),
                meta, num_warps=warps, divisible=("DY", "X", "BIAS", "DX", "DB_PART", "stride_dy", "stride_x", "n_cols"),
            ))
            for tanh in (False, True):
                flags = dict(meta, TANH=tanh)
                cases.append(CompileCase(
                    f"geglu_fwd[{tag},tanh={tanh}]", _geglu_fwd_kernel,
                    dict(V=p, G=p, Y=p, stride_v="i32", stride_g="i32", **ints),
                    flags, num_warps=warps, divisible=("V", "G", "Y", "stride_v", "stride_g", "n_cols"),
                ))
                cases.append(CompileCase(
                    f"geglu_bwd[{tag},tanh={tanh}]", _geglu_bwd_kernel,
                    dict(DY=p, V=p, G=p, DV=p, DG=p, stride_dy="i32", stride_v="i32", stride_g="i32", **ints),
                    flags, num_warps=warps,
                    divisible=("DY", "V", "G", "DV", "DG", "stride_dy", "stride_v", "stride_g", "n_cols"),
                ))
    return cases
