"""Snake activation of the DAC, ``x + sin²(alpha·x) / (alpha + 1e-9)`` per channel, forward and backward
in one kernel each (the eager form is five elementwise kernels, each a full pass over the activations).

Layouts: ``x`` is ``(B, C, T)`` or ``(B, C, 1, T)`` with any strides; both memory layouts the DAC uses
run at full width: channels-first (time contiguous: tiles of 4 channels x 1024 steps) and channels-last
(channels contiguous, as the streamed DAC keeps its activations: tiles of 64 x 32 forward, 32 x 32 backward). The
output has ``x``'s layout (``torch.empty_like``). ``alpha`` holds ``C`` values, shaped ``(C,)`` or
broadcastable over ``x`` (``(1, C, 1)``, ``(1, C, 1, 1)``); its gradient comes back in its shape.

Numerics: fp32 throughout, one rounding to the output dtype; the eager form (``pe_av.ops.snake.snake``)
rounds after each of its five ops in half precision, so the two agree to that rounding. ``alpha``'s
gradient is summed over batch and time in fp32 (per-tile partial sums, then one sum).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._common import (
    TRITON_DTYPES,
    CompileCase,
    check_launchable,
    check_same,
    launch_problem,
)

#: (BLOCK_C, BLOCK_T) per (direction, layout): the contiguous dim is the long side of the tile. Channels-last
#: forward: 64 x 32 (45 registers with 8 warps, 8 programs per SM: 32 KB of 16-bit loads in flight per SM,
#: above the ~29 KB an H200 SM needs; 32 x 32 kept 16 KB, predicted 0.50 of copy bandwidth; 64 x 64 and
#: 128 x 32 with 8 warps spill in fp16/bf16). Its backward stays 32 x 32: 64 x 32 and 64 x 64 with 8 warps
#: spill there in fp16/bf16 (sm_90 compile check), and reading two tensors it keeps enough in flight anyway.
TILES = {
    ("fwd", "channels_first"): (4, 1024), ("fwd", "channels_last"): (64, 32),
    ("bwd", "channels_first"): (4, 1024), ("bwd", "channels_last"): (32, 32),
}
WARPS = 8


@triton.jit
def _snake_terms(X, ALPHA, stride_b, stride_c, stride_t, n_channels, n_steps, BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr):
    """This program's tile: fp32 ``x``, ``alpha`` (per row), ``1 / (alpha + 1e-9)``, the tile's offsets
    along channels and time, and its mask."""
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    batch = tl.program_id(2).to(tl.int64)
    mask = (c < n_channels)[:, None] & (t < n_steps)[None, :]
    x = tl.load(X + batch * stride_b + c[:, None] * stride_c + t[None, :] * stride_t, mask=mask, other=0.0)
    alpha = tl.load(ALPHA + c, mask=c < n_channels, other=1.0).to(tl.float32)[:, None]
    return x.to(tl.float32), alpha, 1.0 / (alpha + 1e-9), c, t, mask


@triton.jit
def _snake_fwd_kernel(
    X, ALPHA, Y, stride_xb, stride_xc, stride_xt, stride_yb, stride_yc, stride_yt, n_channels, n_steps,
    BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr,
):
    x, alpha, inv, c, t, mask = _snake_terms(
        X, ALPHA, stride_xb, stride_xc, stride_xt, n_channels, n_steps, BLOCK_C, BLOCK_T
    )
    s = tl.sin(alpha * x)
    out = Y + tl.program_id(2).to(tl.int64) * stride_yb + c[:, None] * stride_yc + t[None, :] * stride_yt
    tl.store(out, (x + inv * (s * s)).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _snake_bwd_kernel(
    DY, X, ALPHA, DX, DA_PART,
    stride_dyb, stride_dyc, stride_dyt, stride_xb, stride_xc, stride_xt, stride_dxb, stride_dxc, stride_dxt,
    n_channels, n_steps,
    BLOCK_C: tl.constexpr, BLOCK_T: tl.constexpr,
):
    """``DA_PART`` row ``batch * time_tiles + time_tile`` gets this tile's share of alpha's gradient."""
    x, alpha, inv, c, t, mask = _snake_terms(
        X, ALPHA, stride_xb, stride_xc, stride_xt, n_channels, n_steps, BLOCK_C, BLOCK_T
    )
    batch = tl.program_id(2).to(tl.int64)
    dy = tl.load(DY + batch * stride_dyb + c[:, None] * stride_dyc + t[None, :] * stride_dyt, mask=mask, other=0.0)
    dy = dy.to(tl.float32)
    s = tl.sin(alpha * x)
    sin_2ax = 2.0 * s * tl.cos(alpha * x)  # d/d(ax) of sin²(ax)
    dx = dy * (1.0 + inv * alpha * sin_2ax)
    out = DX + batch * stride_dxb + c[:, None] * stride_dxc + t[None, :] * stride_dxt
    tl.store(out, dx.to(DX.dtype.element_ty), mask=mask)
    dalpha = tl.where(mask, dy * (inv * x * sin_2ax - inv * inv * (s * s)), 0.0)
    row = batch * tl.num_programs(0) + tl.program_id(0)
    tl.store(DA_PART + row * n_channels + c, tl.sum(dalpha, axis=1), mask=c < n_channels)


def layout_of(x: torch.Tensor) -> str:
    """``"channels_last"`` when channels are the contiguous dim of the ``(B, C, T)`` view, else ``"channels_first"``."""
    return "channels_last" if x.stride(1) == 1 and x.shape[1] > 1 and x.stride(2) != 1 else "channels_first"


def _launch(x: torch.Tensor, direction: str) -> tuple[tuple[int, int, int], dict]:
    block_c, block_t = TILES[direction, layout_of(x)]
    batch, channels, steps = x.shape
    grid = (triton.cdiv(steps, block_t), triton.cdiv(channels, block_c), batch)
    return grid, dict(BLOCK_C=block_c, BLOCK_T=block_t, num_warps=WARPS)


@triton_op("pe_av_kernels::snake_fwd", mutates_args={})
def _snake_fwd(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, T), ``alpha`` (C,) contiguous → ``y`` in ``x``'s layout."""
    y = torch.empty_like(x)
    if y.numel():
        grid, meta = _launch(x, "fwd")
        wrap_triton(_snake_fwd_kernel)[grid](x, alpha, y, *x.stride(), *y.stride(), x.shape[1], x.shape[2], **meta)
    return y


@triton_op("pe_av_kernels::snake_bwd", mutates_args={})
def _snake_bwd(dy: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients (dx in ``x``'s layout, dalpha (C,) fp32)."""
    dx = torch.empty_like(x)
    grid, meta = _launch(x, "bwd")
    partial = torch.zeros((grid[0] * grid[2], x.shape[1]), dtype=torch.float32, device=x.device)
    if dx.numel():
        wrap_triton(_snake_bwd_kernel)[grid](
            dy, x, alpha, dx, partial, *dy.stride(), *x.stride(), *dx.stride(), x.shape[1], x.shape[2], **meta
        )
    return dx, partial.sum(0)


def _as_3d(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, 1, T)`` → a ``(B, C, T)`` view (always a view: the squeezed dim has size 1)."""
    return x.squeeze(2) if x.dim() == 4 else x


class SnakeFunction(torch.autograd.Function):
    """Autograd wrapper: the forward and backward are both Triton kernels."""

    @staticmethod
    def forward(ctx, x, alpha):
        x3 = _as_3d(x)
        alpha_c = alpha.reshape(-1).contiguous()
        ctx.save_for_backward(x3, alpha_c)
        ctx.shapes = (x.shape, alpha.shape, alpha.dtype)
        return torch.ops.pe_av_kernels.snake_fwd(x3, alpha_c).view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x3, alpha_c = ctx.saved_tensors
        x_shape, alpha_shape, alpha_dtype = ctx.shapes
        dy3 = _as_3d(dy) if dy.dim() == 4 else dy
        dx, dalpha = torch.ops.pe_av_kernels.snake_bwd(dy3, x3, alpha_c)
        return dx.view(x_shape), dalpha.to(alpha_dtype).view(alpha_shape)


def _alpha_problem(x: torch.Tensor, alpha: torch.Tensor) -> str | None:
    if x.dim() not in (3, 4) or (x.dim() == 4 and x.shape[2] != 1):
        return f"x must be (B, C, T) or (B, C, 1, T), got shape {tuple(x.shape)}"
    channels = x.shape[1]
    per_channel = alpha.dim() == 1 or (alpha.dim() == x.dim() and alpha.shape[0] == 1 and all(n == 1 for n in alpha.shape[2:]))
    if alpha.numel() != channels or not per_channel:
        return f"alpha must hold one value per channel, shaped ({channels},) or (1, {channels}, 1...), got {tuple(alpha.shape)}"
    return None


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``x + sin²(alpha·x) / (alpha + 1e-9)`` (Triton, differentiable).

    Args:
        x: ``(B, C, T)`` or ``(B, C, 1, T)`` float32/float16/bfloat16 on CUDA (or CPU under
            ``TRITON_INTERPRET=1``), any strides (channels-first and channels-last run at full width).
        alpha: ``C`` values of ``x``'s dtype, ``(C,)`` or ``(1, C, 1[, 1])``.
    Returns:
        a tensor of ``x``'s shape, dtype and (dense) memory layout.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(alpha, torch.Tensor):
        raise TypeError("snake: x and alpha must be tensors")
    problem = _alpha_problem(x, alpha)
    if problem is not None:
        raise ValueError(f"snake: {problem}")
    check_same("snake", "dtype", x=x, alpha=alpha)
    check_same("snake", "device", x=x, alpha=alpha)
    check_launchable(x, alpha)
    return SnakeFunction.apply(x, alpha)


def problem(x, alpha, **_options) -> str | None:
    """Why :func:`snake` cannot run on these arguments in this process, or ``None``."""
    if isinstance(x, torch.Tensor) and isinstance(alpha, torch.Tensor):
        found = _alpha_problem(x, alpha)
        if found is not None:
            return found
        if x.dtype != alpha.dtype:
            return f"x ({x.dtype}) and alpha ({alpha.dtype}) differ in dtype; the kernel needs one"
    return launch_problem(x, alpha)


def compile_cases() -> list[CompileCase]:
    """Both layouts' tiles per dtype; the unit stride is what triton specializes to a constant."""
    cases = []
    for dtype in TRITON_DTYPES.values():
        p = f"*{dtype}"
        for layout in ("channels_first", "channels_last"):
            unit = "t" if layout == "channels_first" else "c"

            def strides(*prefixes, unit=unit):
                sig, const = {}, {}
                for prefix in prefixes:
                    for dim in "bct":
                        (const if dim == unit else sig)[f"{prefix}{dim}"] = 1 if dim == unit else "i32"
                return sig, const

            block_c, block_t = TILES["fwd", layout]
            meta = dict(BLOCK_C=block_c, BLOCK_T=block_t)
            sig, const = strides("stride_x", "stride_y")
            cases.append(CompileCase(
                f"snake_fwd[{dtype},{layout}]", _snake_fwd_kernel,
                dict(X=p, ALPHA=p, Y=p, n_channels="i32", n_steps="i32", **sig), dict(meta, **const),
                num_warps=WARPS, divisible=("X", "ALPHA", "Y", *sig),
            ))
            block_c, block_t = TILES["bwd", layout]
            meta = dict(BLOCK_C=block_c, BLOCK_T=block_t)
            sig, const = strides("stride_dy", "stride_x", "stride_dx")
            cases.append(CompileCase(
                f"snake_bwd[{dtype},{layout}]", _snake_bwd_kernel,
                dict(DY=p, X=p, ALPHA=p, DX=p, DA_PART="*fp32", n_channels="i32", n_steps="i32", **sig),
                dict(meta, **const), num_warps=WARPS, divisible=("DY", "X", "ALPHA", "DX", "DA_PART", *sig),
            ))
    return cases
