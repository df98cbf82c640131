"""LayerNorm (ViT, ModernBERT, fusion and contrastive heads), optionally fused with the residual add
before it.

Forms: ``F.layer_norm`` (eager and sdpa: the references use PyTorch's op too) and
:func:`pe_av_kernels.layer_norm` (one pass over the row, residual add included).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dispatch import BackendModule, Kernel, Op

__all__ = ["LayerNorm", "layer_norm", "layer_norm_op"]

Normed = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    residual: torch.Tensor | None = None,
) -> Normed:
    """LayerNorm over the last dimension; with ``residual``, normalize ``s = x + residual`` and return
    ``(norm(s), s)``."""
    if residual is not None:
        x = x + residual
    out = F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    return out if residual is None else (out, x)


layer_norm_op = Op("LayerNorm", {"eager": layer_norm, "sdpa": layer_norm, "triton": Kernel("layer_norm")})


class LayerNorm(BackendModule, nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension (same parameters and keys) dispatched through its table."""

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> Normed:
        """Normalize ``x``; with ``residual``, normalize ``s = x + residual`` and return ``(norm(s), s)``."""
        return self.run(layer_norm_op, x, self.weight, self.bias, self.eps, residual)
