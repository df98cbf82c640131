"""PeAudioEncoder rejects malformed input with errors that name the argument and the expected form."""

import pytest
import torch

from pe_av import PeAudioEncoder, PeAudioEncoderConfig

TINY = dict(
    hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2, head_dim=8,
    dac_config=dict(encoder_hidden_size=2, downsampling_ratios=[2, 2], codebook_dim=4),
)


@pytest.fixture(scope="module")
def model():
    return PeAudioEncoder(PeAudioEncoderConfig(**TINY)).eval()


@pytest.mark.parametrize(
    "make_input, error, message",
    [
        (lambda: [[0.0] * 8], TypeError, "input_values must be a torch.Tensor"),
        (lambda: torch.zeros(2, 8, dtype=torch.int16), TypeError, "floating point"),
        (lambda: torch.zeros(8), ValueError, r"shape \(batch, 1, samples\)"),
        (lambda: torch.zeros(2, 2, 8), ValueError, r"shape \(batch, 1, samples\)"),
        (lambda: torch.zeros(1, 1, 2, 8), ValueError, r"shape \(batch, 1, samples\)"),
        (lambda: torch.zeros(2, 1, 0), ValueError, "empty"),
        (lambda: torch.zeros(0, 1, 8), ValueError, "empty"),
    ],
)
def test_bad_waveforms(model, make_input, error, message):
    with pytest.raises(error, match=message):
        model(make_input())


@pytest.mark.parametrize(
    "mask, error, message",
    [
        (torch.ones(2, 7), ValueError, r"padding_mask must have shape \(batch, length\) = \(2, 8\)"),
        (torch.ones(3, 8), ValueError, r"= \(2, 8\), got \(3, 8\)"),
        (torch.full((2, 8), 2), ValueError, "only 0 and 1"),
        ([[1] * 8] * 2, TypeError, "padding_mask must be a torch.Tensor"),
        (torch.ones(2, 8, dtype=torch.complex64), TypeError, "dtype"),
    ],
)
def test_bad_masks(model, mask, error, message):
    with pytest.raises(error, match=message):
        model(torch.zeros(2, 1, 8), padding_mask=mask)


def test_accepted_forms_agree(model):
    x = torch.randn(2, 1, 8)
    mask = torch.tensor([[1] * 8, [1] * 4 + [0] * 4])
    with torch.no_grad():
        a = model(x, padding_mask=mask)
        b = model(x[:, 0], padding_mask=mask.bool())  # (B, L) waveforms and a bool mask
        c = model(x.double(), padding_mask=mask.float())  # cast to the model's dtype
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.allclose(a.last_hidden_state, c.last_hidden_state, atol=1e-6)
    assert a.output_mask.dtype == mask.dtype and b.output_mask.dtype == torch.bool
    assert a.output_mask.tolist() == [[1, 1], [1, 0]]
