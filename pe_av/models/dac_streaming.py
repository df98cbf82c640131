"""The DAC encoder's streamed inference form: depth-first over time, one clip at a time.

The clip's waveform is fed in pieces of about :data:`CPU_WINDOW_ELEMENTS` (first-level activations);
each piece flows through every layer (first conv, the four blocks' residual units and strided convs)
before the next piece is read. Each layer is a :class:`_Stage` that keeps only the tail of its input
that later outputs still read (its kernel's reach, a few dozen steps) and computes every output whose
inputs have arrived, so nothing is recomputed and extra memory is bounded by a piece plus the
receptive field, whatever the clip's length (the layer-by-layer form holds several full-length
first-block activations: ~37 MB per second of 48 kHz audio at the released width).

Inside a stage, outputs are computed in cache-sized chunks of about :data:`CPU_CHUNK_ELEMENTS`
(:func:`conv1d_range`), on channels-last ``(1, C, 1, T)`` activations: oneDNN's convolutions run
1.1-8x faster on that layout than on ``(B, C, T)``. Each output position reads exactly the inputs (and
the zero padding at the clip's edges, and the zeroing past a clip's valid length) that the
layer-by-layer form gives it; only the convolutions' summation order may differ.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops import linear_fused, snake_one_pass

__all__ = ["conv1d_range", "stream_clip", "CPU_CHUNK_ELEMENTS", "CPU_WINDOW_ELEMENTS"]

#: elements (channels × time) per inner chunk on CPU: ~4 MB in fp32, cache-sized
CPU_CHUNK_ELEMENTS = 1 << 20
#: first-level elements per piece fed through all layers on CPU (~16 MB fp32: 1.4 s at 64 channels)
CPU_WINDOW_ELEMENTS = 1 << 22
#: on GPUs only memory is saved, so chunks and pieces are large enough to keep kernel launches few
GPU_CHUNK_ELEMENTS = 1 << 25
GPU_WINDOW_ELEMENTS = 1 << 25


def conv1d_range(
    x: torch.Tensor,
    conv: nn.Conv1d,
    start: int,
    stop: int,
    alpha: torch.Tensor | None = None,
    offset: int = 0,
    length: int | None = None,
    snake: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = snake_one_pass,
) -> torch.Tensor:
    """Output positions ``[start, stop)`` of ``conv(snake(x, alpha))`` (no snake when ``alpha`` is None).

    ``snake`` computes the Snake (the model passes its ``Snake1d.streamed``, which runs the module's
    backend's streamed form: the compiled one-pass loop on CPU, the Triton kernel under ``triton``).

    ``x`` is ``(B, C, T)``, or ``(B, C, 1, T)`` (then the result keeps ``x``'s memory format, e.g.
    channels-last); it holds positions ``[offset, offset + T)`` of a signal of ``length`` steps (default:
    all of it). Reads only the input window those outputs need, which must lie in ``x`` where it is inside
    the signal; zero padding is added where the window passes the signal's ends, as ``conv``'s own
    padding does, so the values equal the full convolution's.
    """
    (kernel,), (stride,), (dilation,), (padding,) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    length = offset + x.shape[-1] if length is None else length
    first = start * stride - padding
    end = (stop - 1) * stride - padding + (kernel - 1) * dilation + 1
    lo, hi = max(first, 0), min(end, length)
    if lo < offset or hi > offset + x.shape[-1]:
        raise ValueError(f"conv1d_range: outputs [{start}, {stop}) read [{lo}, {hi}), outside the held [{offset}, {offset + x.shape[-1]})")
    window = x[..., lo - offset : hi - offset]
    if alpha is not None:
        window = snake(window, alpha if x.dim() == 3 else alpha.unsqueeze(-1))
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


def conv_output_length(conv: nn.Conv1d, length: int) -> int:
    (kernel,), (stride,), (dilation,), (padding,) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    return (length + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def channels_last_empty(like: torch.Tensor, channels: int, length: int) -> torch.Tensor:
    """An uninitialised ``(B, channels, 1, length)`` channels-last tensor with ``like``'s batch, dtype, device."""
    return torch.empty(
        like.shape[0], channels, 1, length, dtype=like.dtype, device=like.device, memory_format=torch.channels_last
    )


class _Stage:
    """One layer of the stream: output ``t`` reads inputs ``[t·stride - pad, t·stride - pad + span)``.

    ``layer`` is a strided/plain conv (with the ``Snake1d`` before it, or None) or a residual unit
    (``residual=True``: Snake → dilated conv → Snake → 1×1 conv, added to the input). The stage holds
    input positions ``[lo, lo + held)``; :meth:`reserve` appends room for new inputs and :meth:`step`
    computes every output they make computable, zeroing outputs at or past ``valid_out``.
    """

    def __init__(self, layer, snake, residual, like, channels_in, length_in, valid_out, chunk_elements):
        conv = layer.conv1 if residual else layer
        (kernel,), (self.stride,), (dilation,), (self.pad,) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
        self.span = (kernel - 1) * dilation + 1
        self.layer, self.snake, self.residual, self.channels_in = layer, snake, residual, channels_in
        self.length_in, self.length_out = length_in, conv_output_length(conv, length_in)
        self.valid_out = valid_out
        self.chunk = max(chunk_elements // channels_in, 1)
        self.buffer = channels_last_empty(like, channels_in, 0)
        self.lo = self.done = 0

    def reserve(self, count: int) -> torch.Tensor:
        """Room for the next ``count`` input positions (a view the previous stage writes into)."""
        held = self.buffer.shape[-1]
        grown = channels_last_empty(self.buffer, self.channels_in, held + count)
        grown[..., :held] = self.buffer
        self.buffer = grown
        return grown[..., held:]

    def ready(self) -> int:
        """Outputs ``[done, ready())`` have all their inputs (all of them once the input is complete)."""
        held_end = self.lo + self.buffer.shape[-1]
        if held_end >= self.length_in:
            return self.length_out
        return max(min((held_end + self.pad - self.span) // self.stride + 1, self.length_out), self.done)

    def step(self, stop: int, out: torch.Tensor) -> None:
        """Write outputs ``[done, stop)`` into ``out``, then drop the inputs no later output reads."""
        start, chunk = self.done, self.chunk if self.residual else max(self.chunk // self.stride, 1)
        for a in range(start, stop, chunk):
            b = min(a + chunk, stop)
            target = out[..., a - start : b - start]
            if self.residual:
                unit = self.layer
                hidden = conv1d_range(self.buffer, unit.conv1, a, b, unit.snake1.alpha, self.lo, self.length_in,
                                      unit.snake1.streamed)
                hidden = conv1d_range(hidden, unit.conv2, 0, b - a, unit.snake2.alpha, snake=unit.snake2.streamed)
                torch.add(self.buffer[..., a - self.lo : b - self.lo], hidden, out=target)
            else:
                alpha, snake = (None, snake_one_pass) if self.snake is None else (self.snake.alpha, self.snake.streamed)
                target.copy_(conv1d_range(self.buffer, self.layer, a, b, alpha, self.lo, self.length_in, snake))
        if self.valid_out < stop:
            out[..., max(self.valid_out - start, 0) :].zero_()
        self.done = stop
        keep = min(max(stop * self.stride - self.pad, 0), self.lo + self.buffer.shape[-1])
        # a copy, so that the piece's large buffer is freed
        self.buffer = self.buffer[..., keep - self.lo :].clone(memory_format=torch.channels_last)
        self.lo = keep


def stream_clip(encoder, waveform: torch.Tensor, valid: int | None, window_elements: int, chunk_elements: int):
    """The whole of ``encoder`` (a :class:`~pe_av.models.dac.DacEncoder`: first conv, blocks, last Snake
    and conv) on one clip ``waveform`` ``(1, 1, L)`` with ``valid`` valid samples (None: all),
    depth-first; returns ``(1, C, 1, L / hop)`` channels-last. The last Snake and conv are a stage too, so
    that no activation of the clip's full length exists before the output (they held two at 1024
    channels: ~12 MB per minute of audio)."""
    wave = waveform.unsqueeze(2)
    length = wave.shape[-1]
    valid = length if valid is None else valid
    stages = [_Stage(encoder.conv1, None, False, wave, 1, length, valid, chunk_elements)]
    scale, level = 1, length
    for block in encoder.block:
        channels = block.conv1.in_channels
        for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
            stages.append(_Stage(unit, None, True, wave, channels, level, valid // scale, chunk_elements))
        scale *= block.conv1.stride[0]
        stages.append(_Stage(block.conv1, block.snake1, False, wave, channels, level, valid // scale, chunk_elements))
        level = stages[-1].length_out
    # the last block's stage zeroes its outputs past the clip (the layer-by-layer form's mask before the
    # last Snake); the last conv's own outputs are kept whole, as in that form
    stages.append(_Stage(encoder.conv2, encoder.snake1, False, wave, encoder.conv2.in_channels, level, level,
                         chunk_elements))
    out = channels_last_empty(wave, encoder.conv2.out_channels, stages[-1].length_out)
    # whole hops per piece: every piece then gives every stage the same number of new steps, so the
    # convolutions see a few shapes only (oneDNN caches a primitive per shape: ~0.5 MB each at 48 kHz)
    piece = max(window_elements // (encoder.conv1.out_channels * encoder.hop_length), 1) * encoder.hop_length
    for start in range(0, length, piece):
        stop = min(start + piece, length)
        target = stages[0].reserve(stop - start)
        target.copy_(wave[..., start:stop])
        if valid < stop:  # the first conv reads past a clip's end too: whatever the padding holds
            target[..., max(valid - start, 0) :].zero_()
        for index, stage in enumerate(stages):
            ready = stage.ready()
            if index + 1 < len(stages):
                dest = stages[index + 1].reserve(ready - stage.done)
            else:
                dest = out[..., stage.done : ready]
            stage.step(ready, dest)
    return out
