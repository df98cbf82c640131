"""LayerNorm (ViT, ModernBERT, fusion and contrastive heads): ``F.layer_norm`` in every form for now.

No Triton kernel yet; the table's ``triton`` entry is the fused form, so a kernel is one entry away.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dispatch import BackendModule, Op

__all__ = ["layer_norm", "LayerNorm"]


def layer_norm(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """LayerNorm over the last dimension (PyTorch's own op: the references use it too)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


layer_norm_op = Op("LayerNorm", {"eager": layer_norm, "sdpa": layer_norm, "triton": layer_norm})


class LayerNorm(BackendModule, nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension (same parameters and keys) dispatched through its table."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(layer_norm_op, x, self.weight, self.bias, self.eps)
