"""Input checks shared by the model entry points: clear errors instead of shape errors deep in torch."""

from __future__ import annotations

import torch


def check_waveform(input_values: object, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Validate ``(B, 1, L)`` or ``(B, L)`` floating waveforms; return ``(B, 1, L)`` in ``dtype``."""
    if not isinstance(input_values, torch.Tensor):
        raise TypeError(f"input_values must be a torch.Tensor of shape (batch, 1, samples), got {type(input_values).__name__}")
    if not input_values.is_floating_point():
        raise TypeError(f"input_values must hold floating point samples, got dtype {input_values.dtype}")
    if input_values.dim() == 2:
        input_values = input_values[:, None, :]
    if input_values.dim() != 3 or input_values.shape[1] != 1:
        raise ValueError(
            f"input_values must have shape (batch, 1, samples) or (batch, samples) for mono audio, "
            f"got {tuple(input_values.shape)}"
        )
    if input_values.shape[0] == 0 or input_values.shape[-1] == 0:
        raise ValueError(f"input_values is empty: shape {tuple(input_values.shape)}")
    if input_values.device != device:
        raise ValueError(f"input_values is on {input_values.device} but the model is on {device}")
    return input_values.to(dtype)


def check_padding_mask(
    mask: object, name: str, batch: int, length: int, device: torch.device
) -> torch.Tensor | None:
    """Validate a ``(batch, length)`` 0/1 mask (bool, integer or float); return it as bool."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch}, {length}), got {type(mask).__name__}")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(f"{name} must have shape (batch, length) = ({batch}, {length}), got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but the model is on {device}")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise TypeError(f"{name} must be bool, integer or float 0/1 values, got dtype {mask.dtype}")
    if bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(f"{name} must contain only 0 and 1 (1 = keep), got other values")
    return mask != 0
