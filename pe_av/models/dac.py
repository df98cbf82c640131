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
cost more than the math) and every pass streams from DRAM. The streamed form runs each clip's
residual units and strided convs over time chunks that stay in cache, reading a halo of the
kernel's reach around each chunk, and writes into buffers allocated once per block. Activations are
kept channels-last (``(1, C, 1, T)`` in ``torch.channels_last``): oneDNN's convolutions run 1.1-8x
faster on that layout than on ``(B, C, T)`` (most at 64 channels and for the k=1 convs). Each output
position sees exactly the inputs (and the zero padding at the clip's edges) that the layer-by-layer
form gives it; only the convolutions' summation order may differ. Streaming clip by clip also makes a
clip's features independent of its batch. ``eager``, ``torch.compile`` (inductor fuses the
elementwise ops itself) and forwards that need gradients run layer by layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DacConfig
from ..dispatch import BackendModule
from ..ops import Snake1d, linear_fused, snake_fused

#: elements (batch × channels × time) per chunk of the streamed DAC on CPU: ~4 MB in fp32, cache-sized
CPU_CHUNK_ELEMENTS = 1 << 20
#: on GPUs only memory is saved, so chunks are large enough to keep kernel launches few
GPU_CHUNK_ELEMENTS = 1 << 25


def conv1d_range(
    x: torch.Tensor, conv: nn.Conv1d, start: int, stop: int, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """Output positions ``[start, stop)`` of ``conv(snake(x, alpha))`` (no snake when ``alpha`` is None).

    ``x`` is ``(B, C, T)``, or ``(B, C, 1, T)`` (then the result keeps ``x``'s memory format, e.g.
    channels-last). Reads only the input window those outputs need; zero padding is added where the
    window passes the ends of ``x``, as ``conv``'s own padding does, so the values equal the full
    convolution's.
    """
    (kernel,), (stride,), (dilation,), (padding,) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    first = start * stride - padding
    end = (stop - 1) * stride - padding + (kernel - 1) * dilation + 1
    lo, hi = max(first, 0), min(end, x.shape[-1])
    window = x[..., lo:hi]
    if alpha is not None:
        window = snake_fused(window, alpha if x.dim() == 3 else alpha.unsqueeze(-1))
    if lo != first or hi != end:
        window = F.pad(window, (lo - first, end - hi))
    if x.dim() == 3:
        return F.conv1d(window, conv.weight, conv.bias, stride=stride, dilation=dilation)
    if window.device.type == "cpu" and window.shape[0] == 1 and conv.weight.numel() > window.numel():
        return _conv_as_matmul(window, conv)
    return F.conv2d(window, conv.weight.unsqueeze(2), conv.bias, stride=(1, stride), dilation=(1, dilation))


def _conv_as_matmul(window: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Unpadded ``conv`` of a ``(1, C, 1, W)`` window as one matmul over its unfolded patches; returns
    ``(1, C_out, 1, W_out)`` channels-last.

    oneDNN's convolution reorders its weight on every call. When the weight outweighs the activations
    (the last DAC blocks: 512 → 1024 channels, kernel 24, a few hundred steps per second of audio)
    that reorder costs several times the math; a matmul reads the weight as stored and copies only
    the (smaller) patches.
    """
    (kernel,), (stride,), (dilation,) = conv.kernel_size, conv.stride, conv.dilation
    window = window.contiguous(memory_format=torch.channels_last)  # memory: (W, C)
    channels, width = window.shape[1], window.shape[-1]
    steps = (width - dilation * (kernel - 1) - 1) // stride + 1
    # patch t, channel c, tap i reads step t·stride + i·dilation of channel c
    patches = window.as_strided((steps, channels, kernel), (stride * channels, 1, dilation * channels))
    out = linear_fused(patches.reshape(steps, -1), conv.weight.view(conv.out_channels, -1), conv.bias)
    return out.view(1, 1, steps, conv.out_channels).permute(0, 3, 1, 2)


def _conv_output_length(conv: nn.Conv1d, length: int) -> int:
    (kernel,), (stride,), (dilation,), (padding,) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


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

    def forward_into(self, x: torch.Tensor, out: torch.Tensor, mask: torch.Tensor | None, chunk: int) -> None:
        """:meth:`forward` of ``x`` (``(B, C, T)`` or ``(B, C, 1, T)``) written into ``out`` (same shape),
        ``chunk`` time steps at a time."""
        for start in range(0, x.shape[-1], chunk):
            stop = min(start + chunk, x.shape[-1])
            hidden = conv1d_range(x, self.conv1, start, stop, self.snake1.alpha)
            hidden = conv1d_range(hidden, self.conv2, 0, stop - start, self.snake2.alpha)
            target = out[..., start:stop]
            torch.add(x[..., start:stop], hidden, out=target)
            if mask is not None:
                target.mul_(mask[..., start:stop])


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

    def forward_streamed(self, x: torch.Tensor, mask: torch.Tensor | None, chunk_elements: int) -> torch.Tensor:
        """:meth:`forward` of a channels-last ``(B, C, 1, T)`` ``x`` in time chunks of about
        ``chunk_elements``; overwrites ``x``, returns ``(B, 2C, 1, T / stride)`` channels-last."""
        batch, channels, length = x.shape[0], x.shape[1], x.shape[-1]
        chunk = max(chunk_elements // (batch * channels), 1)
        spare = torch.empty_like(x)
        for unit in (self.res_unit1, self.res_unit2, self.res_unit3):
            unit.forward_into(x, spare, mask, chunk)
            x, spare = spare, x
        del spare
        out_length = _conv_output_length(self.conv1, length)
        out = _channels_last_empty(x, self.conv1.out_channels, out_length)
        out_chunk = max(chunk // self.conv1.stride[0], 1)  # so the input window is about `chunk` long
        for start in range(0, out_length, out_chunk):
            stop = min(start + out_chunk, out_length)
            out[..., start:stop] = conv1d_range(x, self.conv1, start, stop, self.snake1.alpha)
        return out


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
        if lengths is not None:  # the first conv reads past a clip's end too: whatever the padding holds
            waveform = waveform * _time_mask(lengths, waveform)
        needs_grad = torch.is_grad_enabled() and (
            waveform.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        if self.uses_eager_forms or needs_grad or torch.compiler.is_compiling():
            x = self._blocks(waveform, lengths)
        else:
            x = self._blocks_streamed(waveform, lengths)
        if lengths is not None:
            x = x * _time_mask(lengths // self.hop_length, x)
        return self.conv2(self.snake1(x))

    def _blocks(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """First conv and the blocks, layer by layer (the reference's form)."""
        x = self.conv1(waveform)
        scale = 1
        for block in self.block:
            mask = None if lengths is None else _time_mask(lengths // scale, x)
            x = x if mask is None else x * mask
            x = block(x, mask)
            scale *= block.conv1.stride[0]
        return x

    def _blocks_streamed(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """:meth:`_blocks` streamed over time chunks on channels-last activations, one clip at a time (see
        the module docstring): a clip's chunks, and so its numbers, do not depend on its batch."""
        clips = []
        for index in range(waveform.shape[0]):
            clip_lengths = None if lengths is None else lengths[index : index + 1]
            clips.append(self._clip_streamed(waveform[index : index + 1], clip_lengths))
        return clips[0] if len(clips) == 1 else torch.cat(clips)

    def _clip_streamed(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        chunk_elements = CPU_CHUNK_ELEMENTS if waveform.device.type == "cpu" else GPU_CHUNK_ELEMENTS
        wave = waveform.unsqueeze(2)
        length = wave.shape[-1]
        x = _channels_last_empty(wave, self.conv1.out_channels, length)
        chunk = max(chunk_elements // self.conv1.out_channels, 1)
        for start in range(0, length, chunk):
            stop = min(start + chunk, length)
            x[..., start:stop] = conv1d_range(wave, self.conv1, start, stop)
        scale = 1
        for block in self.block:
            mask = None if lengths is None else _time_mask(lengths // scale, x).unsqueeze(2)
            if mask is not None:
                x.mul_(mask)
            x = block.forward_streamed(x, mask, chunk_elements)
            scale *= block.conv1.stride[0]
        return x.squeeze(2)


def _channels_last_empty(like: torch.Tensor, channels: int, length: int) -> torch.Tensor:
    """An uninitialised ``(B, channels, 1, length)`` channels-last tensor with ``like``'s batch, dtype, device."""
    return torch.empty(
        like.shape[0], channels, 1, length, dtype=like.dtype, device=like.device, memory_format=torch.channels_last
    )


def _time_mask(lengths: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T)`` 1/0 mask of the first ``lengths[b]`` steps of ``x`` (``T`` its last dim), in ``x``'s dtype."""
    steps = torch.arange(x.shape[-1], device=x.device)
    return (steps[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]
