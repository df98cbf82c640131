"""The streamed DAC (depth-first pieces, time chunks with halos, channels-last, one clip at a time) equals
the layer-by-layer form.

Pieces and chunks are made tiny here so that every path runs: many pieces per clip, pieces and chunks
shorter than a kernel's reach, windows clipped at both ends of a clip, and the matmul form of
weight-bound convs.
"""

import pytest
import torch
import torch.nn as nn

from pe_av.config import DacConfig
from pe_av.models import dac_streaming
from pe_av.models.dac import DacEncoder
from pe_av.models.dac_streaming import conv1d_range
from pe_av.ops import snake, snake_fused

CONFIG = DacConfig(encoder_hidden_size=4, downsampling_ratios=[2, 3, 4], codebook_dim=8)  # hop 24


def assert_close_to_scale(got, expected, rtol=1e-5):
    """Equal up to fp32 rounding: activations grow through the residual units, so errors are relative to the
    output's scale (a few ulps of it), not to each element."""
    assert got.shape == expected.shape
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= rtol * scale


def random_encoder(seed=0):
    torch.manual_seed(seed)
    encoder = DacEncoder(CONFIG).eval()
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if name.endswith("alpha"):
                param.copy_(0.5 + torch.rand_like(param))
            elif name.endswith("bias"):
                param.normal_(0, 0.1)
            else:
                param.normal_(0, 1.0 / (param.shape[1] * param.shape[2]) ** 0.5)
    return encoder


@pytest.mark.parametrize(
    "window_elements, chunk_elements", [(1, 37), (4 * 5, 37), (4 * 24, 256), (4 * 100, 1), (1 << 22, 1 << 20)]
)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_streamed_equals_layer_by_layer(monkeypatch, window_elements, chunk_elements, with_lengths):
    monkeypatch.setattr(dac_streaming, "CPU_WINDOW_ELEMENTS", window_elements)
    monkeypatch.setattr(dac_streaming, "CPU_CHUNK_ELEMENTS", chunk_elements)
    encoder = random_encoder()
    waveform = torch.randn(3, 1, 24 * 23)
    lengths = torch.tensor([24 * 23, 24 * 5, 24 * 17]) if with_lengths else None
    with torch.no_grad():
        encoder.set_backend("eager")
        expected = encoder(waveform, lengths)
        encoder.set_backend("sdpa")
        got = encoder(waveform, lengths)
    assert_close_to_scale(got, expected)


def test_streamed_clip_equals_clip_alone():
    """Each clip is streamed on its own, so the encoder gives every clip of a batch exactly its numbers alone."""
    encoder = random_encoder(1)
    waveform = torch.randn(2, 1, 24 * 11)
    with torch.no_grad():
        batch = encoder._streamed(waveform, None)
        alone = torch.cat([encoder._streamed(waveform[i : i + 1], None) for i in range(2)])
    assert torch.equal(batch, alone)


def test_gradients_use_the_layer_by_layer_form():
    encoder = random_encoder(2)
    waveform = torch.randn(1, 1, 24 * 4, requires_grad=True)
    encoder(waveform).sum().backward()
    assert waveform.grad is not None and torch.isfinite(waveform.grad).all()


@pytest.mark.parametrize(
    "kernel, stride, dilation, padding",
    [(7, 1, 1, 3), (7, 1, 3, 9), (1, 1, 1, 0), (4, 2, 1, 1), (6, 3, 1, 2), (24, 12, 1, 6), (3, 1, 1, 1)],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv1d_range_equals_full_conv(kernel, stride, dilation, padding, channels_last):
    torch.manual_seed(3)
    conv = nn.Conv1d(5, 6, kernel, stride=stride, dilation=dilation, padding=padding)
    alpha = 0.5 + torch.rand(1, 5, 1)
    x = torch.randn(1, 5, 61)
    with torch.no_grad():
        full = conv(snake(x, alpha))
        source = x.unsqueeze(2).contiguous(memory_format=torch.channels_last) if channels_last else x
        length = full.shape[-1]
        for start, stop in [(0, 1), (0, length), (1, min(length, 4)), (max(length - 3, 0), length)]:
            part = conv1d_range(source, conv, start, stop, alpha)
            part = part.squeeze(2) if channels_last else part
            torch.testing.assert_close(part, full[..., start:stop], atol=1e-5, rtol=1e-5)


def test_conv1d_range_reads_only_the_held_window():
    """A window holding positions [offset, offset + T) gives the full conv's values, and refuses ranges it
    does not hold (a planning error in the stream must not read wrong positions)."""
    torch.manual_seed(4)
    conv = nn.Conv1d(3, 2, 7, dilation=3, padding=9)
    x = torch.randn(1, 3, 50)
    with torch.no_grad():
        full = conv(x)
        part = conv1d_range(x[..., 11:40], conv, 20, 30, offset=11, length=50)
        torch.testing.assert_close(part, full[..., 20:30], atol=1e-6, rtol=1e-6)
        with pytest.raises(ValueError, match="outside the held"):
            conv1d_range(x[..., 11:40], conv, 19, 30, offset=11, length=50)


def test_snake_fused_matches_snake():
    x, alpha = torch.randn(2, 7, 33), 0.5 + torch.rand(1, 7, 1)
    torch.testing.assert_close(snake_fused(x, alpha), snake(x, alpha), atol=1e-6, rtol=1e-6)
