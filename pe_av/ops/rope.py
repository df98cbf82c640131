"""Rotary position embeddings: every rotary table and every rotation pe_av uses, in one place.

Three pair layouts occur in PE-AV:

- **interleaved** (PE transformer, ViT): pairs ``(x[2i], x[2i+1])``;
- **half-split** (ModernBERT): pairs ``(x[i], x[i + D/2])``;
- **2-D** (ViT): interleaved pairs whose angles come from a patch's grid coordinates
  (:func:`rope_2d_cos_sin`), the first ``D/4`` pairs from one axis, the next ``D/4`` from the other.

Tables are ``cos``/``sin`` of shape ``(positions, head_dim // 2)``, computed in fp32 and cast to the
working dtype last, as the references do. The attention kernel (:mod:`pe_av_kernels.attention`) applies
the same rotations inside its prologue; these functions are its eager form.
"""

from __future__ import annotations

import torch

__all__ = [
    "rope_cos_sin",
    "rope_2d_cos_sin",
    "rope_interleaved_tables",
    "rotate_interleaved",
    "apply_rope_interleaved",
    "apply_rope_half_split",
    "apply_rope",
]


def rope_cos_sin(
    seq_len: int, head_dim: int, theta: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D tables ``(seq_len, head_dim // 2)`` for positions ``0..seq_len-1``: frequency ``i`` is
    ``theta ** (-2i / head_dim)`` (the same for either pair layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.arange(seq_len, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rope_2d_cos_sin(
    grid: tuple[int, int],
    head_dim: int,
    *,
    temperature: float,
    offset: float,
    indexing: str,
    ref_feat_shape: tuple[int, int] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables ``(rows · cols, head_dim // 2)`` of timm's axial RoPE for a ``grid`` of patches, row-major.

    Pair ``i < head_dim // 4`` rotates by the first grid coordinate times frequency ``i``; the next
    ``head_dim // 4`` pairs use the second coordinate. With ``'xy'`` indexing the first coordinate is
    the column. Coordinates are ``index + offset``, rescaled to ``ref_feat_shape`` when one is given.
    """
    rows_n, cols_n = grid
    bands_n = head_dim // 4
    exponents = torch.arange(bands_n, device=device, dtype=torch.float32) / bands_n
    bands = 1.0 / (temperature**exponents)
    rows = torch.arange(rows_n, device=device, dtype=torch.float32) + offset
    cols = torch.arange(cols_n, device=device, dtype=torch.float32) + offset
    if ref_feat_shape is not None:
        rows = rows / rows_n * ref_feat_shape[0]
        cols = cols / cols_n * ref_feat_shape[1]
    row_grid, col_grid = torch.meshgrid(rows, cols, indexing="ij")
    first, second = (col_grid, row_grid) if indexing == "xy" else (row_grid, col_grid)
    coords = torch.stack((first, second), dim=-1).reshape(rows_n * cols_n, 2)
    angles = (coords[:, :, None] * bands).reshape(rows_n * cols_n, 2 * bands_n)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rope_interleaved_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-width tables ``(seq, head_dim)`` for :func:`rotate_interleaved` from ``(seq, head_dim // 2)`` ones:
    each pair's cosine twice, and its sine with the sign that pair member takes (``-sin``, ``+sin``)."""
    return cos.repeat_interleave(2, dim=-1), torch.stack((-sin, sin), dim=-1).flatten(-2)


def rotate_interleaved(x: torch.Tensor, cos_full: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """:func:`apply_rope_interleaved` with precomputed full-width tables (see :func:`rope_interleaved_tables`).

    ``x * cos + swap_pairs(x) * sin_signed`` gives ``x[2i]·cos − x[2i+1]·sin`` and
    ``x[2i+1]·cos + x[2i]·sin``: bit for bit the pairwise formula (negation is exact, addition
    commutes), in four full-width passes and two allocations instead of strided half-width ops and a stack.
    """
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return (x * cos_full).add_(swapped.mul_(sin_signed))


def apply_rope_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs ``(x[2i], x[2i+1])`` of the last dim by the angle of frequency ``i``.

    ``x``: ``(..., seq, head_dim)``; ``cos``/``sin``: ``(seq, head_dim // 2)``; math in ``x``'s dtype.
    """
    return rotate_interleaved(x, *rope_interleaved_tables(cos, sin))


def apply_rope_half_split(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, fp32: bool = True) -> torch.Tensor:
    """Rotate pairs ``(x[i], x[i + D/2])`` by the angle of frequency ``i``.

    ``x``: ``(..., seq, head_dim)``; ``cos``/``sin``: ``(seq, head_dim // 2)``. ModernBERT does the math
    in fp32 and rounds once (``fp32=True``); the attention kernel's half-split option rounds as the
    interleaved form does, in ``x``'s dtype (``fp32=False``).
    """
    xf, cos_, sin_ = (x.float(), cos.float(), sin.float()) if fp32 else (x, cos, sin)
    first, second = xf.chunk(2, dim=-1)
    rotated = torch.cat((first * cos_ - second * sin_, second * cos_ + first * sin_), dim=-1)
    return rotated.to(x.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, half_split: bool = False) -> torch.Tensor:
    """The rotation of the attention op: interleaved pairs, or half-split (in ``x``'s dtype)."""
    if half_split:
        return apply_rope_half_split(x, cos, sin, fp32=False)
    return apply_rope_interleaved(x, cos, sin)
