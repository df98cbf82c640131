"""Snake activation of the DAC codec: ``x + sin²(alpha·x) / (alpha + 1e-9)`` with per-channel ``alpha``.

:func:`snake` is the eager form (differentiable); :func:`snake_fused` computes the same numbers with one
allocation instead of four and is what the DAC's streamed inference form calls on each chunk. The
``triton`` entry is :func:`pe_av_kernels.snake` (one pass forward and one backward, both memory layouts).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..dispatch import BackendModule, Kernel, Op

__all__ = ["Snake1d", "snake", "snake_fused", "snake_op"]


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``x + sin²(alpha·x) / (alpha + 1e-9)`` with ``alpha`` broadcastable over ``x`` (``(1, C, 1)``)."""
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


def snake_fused(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """:func:`snake` with one allocation instead of four (bit-identical: same ops, same operand order
    up to commutativity). For inference only: in-place ops on the temporary defeat autograd."""
    out = torch.mul(alpha, x)
    out.sin_().pow_(2).mul_((alpha + 1e-9).reciprocal())
    return out.add_(x)


# layer-by-layer forms must stay differentiable: sdpa runs the eager form (snake_fused is inference-only)
snake_op = Op("Snake", {"eager": snake, "sdpa": snake, "triton": Kernel("snake")})


class Snake1d(BackendModule):
    """Snake over ``(B, C, T)`` with a learned ``alpha`` of shape ``(1, C, 1)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(snake_op, x, self.alpha)
