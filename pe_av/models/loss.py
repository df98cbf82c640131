"""Sigmoid (SigLIP) contrastive loss.

The reference computes ``-logsigmoid(I * logits)``: off-diagonal pairs then contribute a constant
``log 2`` and get zero gradient, so negatives are never pushed apart. We use the SigLIP formula with
labels ``2·I − 1`` (+1 for matching pairs, −1 for all others), normalised by the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """SigLIP loss for ``(N, N)`` pair logits, or ``(N, N, T)`` per-frame logits (averaged over valid frames
    is left to the caller; here every frame counts). Row ``i`` and column ``i`` are the matching pair."""
    if logits.dim() not in (2, 3) or logits.shape[0] != logits.shape[1]:
        raise ValueError(
            f"contrastive loss needs square (N, N) or (N, N, T) logits (one matching pair per row), "
            f"got shape {tuple(logits.shape)}"
        )
    n = logits.shape[0]
    labels = 2 * torch.eye(n, device=logits.device, dtype=logits.dtype) - 1
    if logits.dim() == 3:
        labels = labels[:, :, None]
    return -F.logsigmoid(labels * logits).sum() / n
