"""The DAC audio codec's encoder: waveform ``(B, 1, L)`` → features ``(B, hidden, L / hop)``.

Conv1d(k7) → blocks [3 residual units (dilations 1, 3, 9) → Snake → strided Conv1d] → Snake → Conv1d(k3).
Channels double at each block. Unlike the reference we leave cuDNN enabled.

Batch invariance: given each sample's valid length, activations past it are zeroed before every
convolution that reads across time, which is exactly what a convolution's own zero padding does to a
clip encoded alone. A clip in a zero-padded batch then gets the numbers it gets alone; without this
(the reference), the last tokens of a shorter clip see its batch padding through the convolutions'
receptive field (differences of order 1e-4 to 1e-3 with random weights).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..config import DacConfig


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``x + sin²(alpha·x) / (alpha + 1e-9)`` with a per-channel ``alpha`` of shape ``(1, C, 1)``."""
    return x + (alpha + 1e-9).reciprocal() * torch.sin(alpha * x).pow(2)


class Snake1d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)


class DacResidualUnit(nn.Module):
    """Snake → dilated Conv1d(k7) → Snake → Conv1d(k1), added to the input."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.snake1 = Snake1d(channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation)
        self.snake2 = Snake1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = x + self.conv2(self.snake2(self.conv1(self.snake1(x))))
        return out if mask is None else out * mask


class DacEncoderBlock(nn.Module):
    """Three residual units at ``channels // 2``, then a strided conv doubling the channels."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        half = channels // 2
        self.res_unit1 = DacResidualUnit(half, dilation=1)
        self.res_unit2 = DacResidualUnit(half, dilation=3)
        self.res_unit3 = DacResidualUnit(half, dilation=9)
        self.snake1 = Snake1d(half)
        self.conv1 = nn.Conv1d(half, channels, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.res_unit3(self.res_unit2(self.res_unit1(x, mask), mask), mask)
        return self.conv1(self.snake1(x))


class DacEncoder(nn.Module):
    def __init__(self, config: DacConfig) -> None:
        super().__init__()
        width = config.encoder_hidden_size
        self.conv1 = nn.Conv1d(1, width, kernel_size=7, padding=3)
        self.block = nn.ModuleList(
            DacEncoderBlock(width * 2**i, stride) for i, stride in enumerate(config.downsampling_ratios, start=1)
        )
        self.snake1 = Snake1d(config.hidden_size)
        self.conv2 = nn.Conv1d(config.hidden_size, config.hidden_size, kernel_size=3, padding=1)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``waveform`` ``(B, 1, L)`` → ``(B, hidden, L / hop)``.

        ``lengths`` ``(B,)``: valid samples per clip (multiples of the hop), or None when every clip fills
        the batch; activations past them are zeroed at every resolution (see the module docstring).
        """
        x = self.conv1(waveform)
        scale = 1
        for block in self.block:
            mask = None if lengths is None else _time_mask(lengths // scale, x)
            x = x if mask is None else x * mask
            x = block(x, mask)
            scale *= block.conv1.stride[0]
        if lengths is not None:
            x = x * _time_mask(lengths // scale, x)
        return self.conv2(self.snake1(x))


def _time_mask(lengths: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T)`` 1/0 mask of the first ``lengths[b]`` steps of ``x`` ``(B, C, T)``, in ``x``'s dtype."""
    steps = torch.arange(x.shape[-1], device=x.device)
    return (steps[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]
