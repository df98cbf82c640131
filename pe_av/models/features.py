"""Precomputed-feature inputs, as Meta's original code takes them: the encoders and ``get_*_embeds``
accept, keyword-only and instead of raw media,

- ``input_features``: ``(B, T, dac_config.codebook_dim)`` DAC codec features (the bottleneck's output,
  one row per audio token) instead of ``input_values``; ``padding_mask`` is then ``(B, T)`` over tokens;
- ``pe_features``: ``(B, F, vision classes)`` per-frame ViT features, L2-normalised as the video encoder
  normalises them, instead of ``pixel_values_videos``; ``padding_mask_videos`` stays ``(B, F)``.

``PeAudioEncoder.get_codec_features`` and ``PeVideoEncoder.get_frame_features`` compute them, so the
expensive DAC / ViT pass can be cached and reused (e.g. when fine-tuning only the transformers above).
"""

from __future__ import annotations

import torch

from .inputs import check_finite, describe_type

__all__ = ["check_features", "one_input"]


def one_input(raw: object, raw_name: str, features: object, features_name: str) -> None:
    """Raise unless exactly one of the raw input and its precomputed features is given."""
    if raw is None and features is None:
        raise ValueError(f"give {raw_name} or {features_name} (precomputed features)")
    if raw is not None and features is not None:
        raise ValueError(f"give {raw_name} or {features_name} (precomputed features), not both")


def check_features(value: object, name: str, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Validate ``(B, T, width)`` finite floating features on ``device``; return them in ``dtype``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, length, {width}), got {describe_type(value)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must hold floating point values, got dtype {value.dtype}")
    if value.dim() != 3 or value.shape[-1] != width:
        raise ValueError(f"{name} must have shape (batch, length, {width}), got {tuple(value.shape)}")
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but the model is on {device}")
    return check_finite(value.to(dtype), name)
