"""The DAC audio codec's encoder: waveform ``(B, 1, L)`` → features ``(B, hidden, L / hop)``.

Conv1d(k7) → blocks [3 residual units (dilations 1, 3, 9) → Snake → strided Conv1d] → Snake → Conv1d(k3).
Channels double at each block. Unlike the reference we leave cuDNN enabled.

Batch invariance: given each sample's valid length, activations past it are zeroed before every
convolution that reads across time, which is exactly what a convolution's own zero padding does to a
clip encoded alone. A clip in a zero-padded batch then gets the numbers it gets alone; without this
(the reference), the last tokens of a shorter clip see its batch padding through the convolutions'
receptive field (differences of order 1e-4 to 1e-3 with random weights).

Streaming (backends ``sdpa``/``triton``, inference): at 48 kHz the first blocks' activations are
tens to hundreds of MB per clip. Computed layer by layer, every elementwise op of every Snake
allocates such a tensor; on CPU an allocation that large is fresh memory from the OS (its page faults
cost more than the math) and every pass streams from DRAM. The streamed form
(:mod:`pe_av.models.dac_streaming`) feeds each clip depth-first through all the layers in pieces,
computing in cache-sized chunks on channels-last activations, so its extra memory does not grow with
the clip's length; only the convolutions' summation order differs from the layer-by-layer form.
Streaming clip by clip also makes a clip's features independent of its batch. ``eager``,
``torch.compile`` (inductor fuses the elementwise ops itself) and forwards that need gradients run
layer by layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..config import DacConfig
from ..dispatch import BackendModule
from ..ops import Snake1d
from . import dac_streaming
from .inputs import tracing


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


class DacEncoder(BackendModule):
    def __init__(self, config: DacConfig) -> None:
        super().__init__()
        width = config.encoder_hidden_size
        self.conv1 = nn.Conv1d(1, width, kernel_size=7, padding=3)
        self.block = nn.ModuleList(
            DacEncoderBlock(width * 2**i, stride) for i, stride in enumerate(config.downsampling_ratios, start=1)
        )
        self.hop_length = math.prod(config.downsampling_ratios)
        self.snake1 = Snake1d(config.hidden_size)
        self.conv2 = nn.Conv1d(config.hidden_size, config.hidden_size, kernel_size=3, padding=1)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``waveform`` ``(B, 1, L)`` → ``(B, hidden, L / hop)``.

        ``lengths`` ``(B,)``: valid samples per clip (multiples of the hop), or None when every clip fills
        the batch; activations past them are zeroed at every resolution (see the module docstring).
        """
        needs_grad = torch.is_grad_enabled() and (
            waveform.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        # the streamed form reads each clip's valid length on the host: not while tracing, capturing or
        # under pe_av.no_host_sync() (inputs.tracing covers all three)
        if not (self.uses_eager_forms or needs_grad or tracing()):
            return self._streamed(waveform, lengths)
        x = self._blocks(waveform, lengths)
        if lengths is not None:
            x = x * _time_mask(lengths // self.hop_length, x)
        return self.conv2(self.snake1(x))

    def _blocks(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """First conv and the blocks, layer by layer (the reference's form)."""
        if lengths is not None:  # the first conv reads past a clip's end too: whatever the padding holds
            waveform = waveform * _time_mask(lengths, waveform)
        x = self.conv1(waveform)
        scale = 1
        for block in self.block:
            mask = None if lengths is None else _time_mask(lengths // scale, x)
            x = x if mask is None else x * mask
            x = block(x, mask)
            scale *= block.conv1.stride[0]
        return x

    def _streamed(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The whole encoder (:meth:`_blocks`, the mask, the last Snake and conv) depth-first over time on
        channels-last activations, one clip at a time (see :mod:`pe_av.models.dac_streaming`): a clip's
        pieces, and so its numbers, do not depend on its batch."""
        on_cpu = waveform.device.type == "cpu"
        window = dac_streaming.CPU_WINDOW_ELEMENTS if on_cpu else dac_streaming.GPU_WINDOW_ELEMENTS
        chunk = dac_streaming.CPU_CHUNK_ELEMENTS if on_cpu else dac_streaming.GPU_CHUNK_ELEMENTS
        clips = []
        for index in range(waveform.shape[0]):
            valid = None if lengths is None else int(lengths[index])
            clip = dac_streaming.stream_clip(self, waveform[index : index + 1], valid, window, chunk)
            clips.append(clip.squeeze(2))
        return clips[0] if len(clips) == 1 else torch.cat(clips)


def _time_mask(lengths: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T)`` 1/0 mask of the first ``lengths[b]`` steps of ``x`` (``T`` its last dim), in ``x``'s dtype."""
    steps = torch.arange(x.shape[-1], device=x.device)
    return (steps[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]
