"""RMSNorm (T5 style: no mean subtraction, no bias), optionally fused with the residual add before it.

Forms: eager (fp32 statistics, cast back to the input dtype before the weight, as the references do),
``F.rms_norm`` (same numerics, one fused op), and :func:`pe_av_kernels.rms_norm`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dispatch import BackendModule, Kernel, Op

__all__ = ["rms_norm", "rms_norm_eager", "rms_norm_fused", "RMSNorm"]

Normed = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def rms_norm_eager(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None) -> Normed:
    """``weight * x / rms(x)``; with ``residual``, normalize ``s = x + residual`` and return ``(norm(s), s)``."""
    if residual is not None:
        x = x + residual
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    out = weight * xf.to(x.dtype)
    return out if residual is None else (out, x)


def rms_norm_fused(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None) -> Normed:
    """Same numerics as :func:`rms_norm_eager` through PyTorch's fused ``F.rms_norm``."""
    if residual is not None:
        x = x + residual
    out = weight * F.rms_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    return out if residual is None else (out, x)


rms_norm = Op("RMSNorm", {"eager": rms_norm_eager, "sdpa": rms_norm_fused, "triton": Kernel("rms_norm")})


class RMSNorm(BackendModule):
    """Root-mean-square norm over the last dimension, with a learned per-channel weight."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> Normed:
        """Normalize ``x``; with ``residual``, normalize ``s = x + residual`` and return ``(norm(s), s)``."""
        return self.run(rms_norm, x, self.weight, self.eps, residual)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.eps}"
