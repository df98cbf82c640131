"""Contrastive heads and logit scaling shared by the PE-AV models."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..ops import LayerNorm


class ContrastiveHead(nn.Module):
    """LayerNorm(eps 1e-6) → Linear without bias: projects a pooled embedding into a shared space."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layer_norm = LayerNorm(in_dim, eps=1e-6)
        self.proj = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.layer_norm(x))


def scaled_logits(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``a @ b.T * scale + bias`` as the reference computes it (the scale is used as stored, not exp'd).

    ``a``: ``(N, D)`` or ``(N, T, D)`` (per-frame); ``b``: ``(M, D)``. Returns ``(N, M)`` or ``(N, M, T)``.
    """
    logits = a @ b.T
    if logits.dim() == 3:
        logits = logits.transpose(1, 2)
    return logits * scale + bias
