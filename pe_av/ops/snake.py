"""Snake activation of the DAC codec: ``x + sin²(alpha·x) / (alpha + 1e-9)`` with per-channel ``alpha``.

Forms:

- :func:`snake`: the eager form (differentiable), the table's ``eager`` entry.
- :func:`snake_fused`: the same numbers (up to one rounding of the final multiply-add) in four passes
  and one allocation instead of four allocations; inference only.
- :func:`snake_one_pass`: inference on CPU through a compiled one-pass loop (``_snake_cpu``) for large
  inputs (once ``PE_AV_SNAKE_COMPILE``'s policy says so), :func:`snake_fused` otherwise; what the
  DAC's streamed form calls on each chunk.
- :func:`snake_sdpa`: the table's ``sdpa`` entry: differentiable, with the compiled one-pass forward
  and backward on large CPU inputs (a :class:`torch.autograd.Function`), :func:`snake` otherwise.

The compiled forms are a speed path only: where ``torch.compile`` cannot run (no C++ compiler) the
fused/eager forms run instead, with the same results up to rounding (see ``_snake_cpu``).
- ``triton``: :func:`pe_av_kernels.snake` (one pass forward and one backward, both memory layouts).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..dispatch import BackendModule, Kernel, Op
from . import _snake_cpu

__all__ = ["snake", "snake_fused", "snake_one_pass", "snake_sdpa", "snake_op", "snake_stream_op", "Snake1d"]


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``x + sin²(alpha·x) / (alpha + 1e-9)`` with ``alpha`` broadcastable over ``x`` (``(1, C, 1)``)."""
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


def snake_fused(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """:func:`snake` in four passes over one allocation (``addcmul`` may fuse the last multiply-add, so
    results can differ from :func:`snake` by one rounding). For inference only: in-place ops on the
    temporary defeat autograd."""
    out = torch.mul(alpha, x)
    out.sin_()
    out.mul_(out)
    return torch.addcmul(x, out, (alpha + 1e-9).reciprocal(), out=out)


def _one_pass_applies(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and x.numel() >= _snake_cpu.MIN_ELEMENTS
        and not torch.compiler.is_compiling()
        and _snake_cpu.wants_compiled(x.numel())
    )


def snake_one_pass(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """:func:`snake` for inference, one pass over memory on large CPU inputs (else :func:`snake_fused`).

    The result keeps ``x``'s memory format (e.g. channels-last). Not differentiable (use :func:`snake_sdpa`).
    """
    if _one_pass_applies(x):
        forms = _snake_cpu.compiled_forms()
        if forms is not None:
            try:
                return forms[0](x, alpha, (alpha + 1e-9).reciprocal())
            except Exception as error:  # noqa: BLE001 - any compile failure: the fused form gives the same numbers
                _snake_cpu.report_failure(error)
    return snake_fused(x, alpha)


class _SnakeOnePass(torch.autograd.Function):
    """Compiled one-pass forward and backward (the backward recomputes ``sin`` from the saved input)."""

    @staticmethod
    def forward(ctx, x, alpha, forward, backward):
        ctx.save_for_backward(x, alpha)
        ctx.backward_form = backward
        with torch.no_grad():
            return forward(x, alpha, (alpha + 1e-9).reciprocal())

    @staticmethod
    def backward(ctx, grad):
        x, alpha = ctx.saved_tensors
        dims = [d for d in range(x.dim()) if alpha.shape[d] == 1 and x.shape[d] != 1]
        grad_x, grad_alpha = ctx.backward_form(grad, x, alpha, (alpha + 1e-9).reciprocal(), dims)
        return grad_x, grad_alpha.to(alpha.dtype), None, None


def snake_sdpa(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """:func:`snake`, differentiable, with the compiled one-pass forward and backward on large CPU inputs."""
    if _one_pass_applies(x) and alpha.dim() == x.dim():
        forms = _snake_cpu.compiled_forms()
        if forms is not None:
            try:
                return _SnakeOnePass.apply(x, alpha, *forms)
            except Exception as error:  # noqa: BLE001 - see snake_one_pass
                _snake_cpu.report_failure(error)
    return snake(x, alpha)


snake_op = Op("Snake", {"eager": snake, "sdpa": snake_sdpa, "triton": Kernel("snake")})
# the DAC's streamed form (inference, one chunk at a time; pe_av.models.dac_streaming)
snake_stream_op = Op("Snake (streamed)", {"eager": snake, "sdpa": snake_one_pass, "triton": Kernel("snake")})


class Snake1d(BackendModule):
    """Snake over ``(B, C, T)`` with a learned ``alpha`` of shape ``(1, C, 1)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(snake_op, x, self.alpha)

    def streamed(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Snake of one streamed chunk ``x`` with ``alpha`` (this module's, viewed to ``x``'s rank), for
        inference: the compiled one-pass loop on CPU under ``sdpa``, the kernel under ``triton``."""
        return self.run(snake_stream_op, x, alpha)
