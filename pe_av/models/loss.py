"""Sigmoid (SigLIP) contrastive loss.

The reference computes ``-logsigmoid(I * logits)``: off-diagonal pairs then contribute a constant
``log 2`` and get zero gradient, so negatives are never pushed apart. We use the SigLIP formula with
labels ``2·I − 1`` (+1 for matching pairs, −1 for all others), normalised by the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """SigLIP loss for ``(N, N)`` pair logits; row ``i`` and column ``i`` are the matching pair.

    Per-frame logits have their own masked loss: :func:`pe_av.models.pe_audio.frame_level_sigmoid_loss`.
    """
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(
            f"contrastive loss needs square (N, N) logits (one matching pair per row), got shape {tuple(logits.shape)}"
        )
    n = logits.shape[0]
    labels = 2 * torch.eye(n, device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / n
