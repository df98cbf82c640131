"""Sigmoid (SigLIP) contrastive losses: clip level and frame level.

The reference computes ``-logsigmoid(I * logits)``: off-diagonal pairs then contribute a constant
``log 2`` and get zero gradient, so negatives are never pushed apart. We use the SigLIP formula with
labels ``2·I − 1`` (+1 for matching pairs, −1 for all others), normalised by the batch size. The
reference's frame-level loss fails to broadcast; :func:`frame_level_sigmoid_loss` defines it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sigmoid_contrastive_loss", "frame_level_sigmoid_loss"]


def sigmoid_contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """SigLIP loss for ``(N, N)`` pair logits; row ``i`` and column ``i`` are the matching pair.

    Per-frame logits have their own masked loss: :func:`frame_level_sigmoid_loss`.
    """
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(
            f"contrastive loss needs square (N, N) logits (one matching pair per row), got shape {tuple(logits.shape)}"
        )
    n = logits.shape[0]
    labels = 2 * torch.eye(n, device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / n


def frame_level_sigmoid_loss(logits: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """SigLIP loss over every valid frame of ``(N, N, T)`` per-frame logits.

    Every frame of clip ``i`` is a positive for caption ``i`` and a negative for every other caption
    (labels ``2·I − 1`` broadcast over frames). Each clip's frames are averaged over its valid ones
    (``frame_mask`` ``(N, T)``, True = valid; None = all valid), then rows are summed and divided by
    ``N`` as in the clip-level loss, so every clip weighs the same whatever its length and ``T = 1``
    gives the clip-level loss. A clip without valid frames contributes nothing.
    """
    if logits.dim() != 3 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"frame-level loss needs (N, N, frames) logits, got shape {tuple(logits.shape)}")
    n, _, frames = logits.shape
    labels = 2 * torch.eye(n, device=logits.device, dtype=logits.dtype) - 1
    per_frame = -F.logsigmoid(labels[:, :, None] * logits)
    if frame_mask is None:
        weights = torch.full((n, frames), 1.0 / frames, device=logits.device, dtype=logits.dtype)
    else:
        if tuple(frame_mask.shape) != (n, frames):
            raise ValueError(f"frame_mask must have shape (N, frames) = ({n}, {frames}), got {tuple(frame_mask.shape)}")
        valid = frame_mask.to(logits.dtype)
        weights = valid / valid.sum(dim=-1, keepdim=True).clamp(min=1)
    return (per_frame * weights[:, None, :]).sum() / n
