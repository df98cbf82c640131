"""PeAudioEncoder vs transformers' PeAudioEncoder on the same random weights (fp32, ≤ 1e-4)."""

import pytest
import torch

from oracle import FP32_ATOL, build_reference, max_abs_diff, transformers, reference_padding
from pe_av import PeAudioEncoder

pytestmark = pytest.mark.oracle

DAC = dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8)  # hop 6
CONFIGS = {
    "mha": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=8),
    "gqa-odd": dict(  # GQA 6→2, head_dim ≠ hidden/heads, odd intermediate size, attention bias
        hidden_size=40, intermediate_size=37, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, head_dim=12, attention_bias=True,
    ),
    "mqa-strides": dict(  # one kv head, odd/even strides mix
        hidden_size=24, intermediate_size=50, num_hidden_layers=3, num_attention_heads=3,
        num_key_value_heads=1, head_dim=16, dac_config=dict(encoder_hidden_size=2, downsampling_ratios=[3, 2, 2], codebook_dim=6),
    ),
}


def make_reference(name, tmp_path):
    kwargs = dict(CONFIGS[name])
    kwargs.setdefault("dac_config", DAC)
    config = transformers.PeAudioEncoderConfig(**kwargs)
    return build_reference(transformers.PeAudioEncoder, config, tmp_path)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    ref, directory = make_reference(request.param, tmp_path_factory.mktemp(request.param))
    return ref, directory


def padded_batch(hop, lengths, total):
    torch.manual_seed(1)
    x = torch.randn(len(lengths), 1, total)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        x[i, :, n:] = 0
    return x, mask


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa", "triton"])
def test_unpadded(pair, attn_impl):
    ref, directory = pair
    ours = reference_padding(PeAudioEncoder.from_pretrained(directory, attn_impl=attn_impl))
    hop = ref.config.dac_config.hop_length
    x = torch.randn(2, 1, hop * 7)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    assert max_abs_diff(expected.pooler_output, got.pooler_output) <= FP32_ATOL
    assert got.output_mask is None


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa", "triton"])  # triton: CPU interpreter in CI
def test_padded_batch(pair, attn_impl):
    ref, directory = pair
    ours = reference_padding(PeAudioEncoder.from_pretrained(directory, attn_impl=attn_impl))
    hop = ref.config.dac_config.hop_length
    x, mask = padded_batch(hop, [hop * 9, hop * 4, hop * 1], hop * 9)
    with torch.no_grad():
        expected, got = ref(x, padding_mask=mask), ours(x, padding_mask=mask)
    assert torch.equal(expected.output_mask, got.output_mask)
    valid = expected.output_mask.bool()
    # padded tokens' outputs are part of the reference's output too: compare everything
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    assert max_abs_diff(expected.pooler_output, got.pooler_output) <= FP32_ATOL
    assert valid.sum().item() == 14


def reflect_pad_like_feature_extractor(x, lengths, hop):
    """What PeAudioFeatureExtractor does: reflect-pad each clip to a multiple of hop, then zero-pad."""
    import numpy as np

    clips = []
    for i, n in enumerate(lengths):
        wav = x[i, 0, :n].numpy()
        if n % hop:
            wav = np.pad(wav, (0, hop - n % hop), mode="reflect")
        clips.append(torch.from_numpy(wav))
    total = max(len(c) for c in clips)
    out = torch.zeros(len(clips), 1, total)
    mask = torch.zeros(len(clips), total, dtype=torch.long)
    for i, c in enumerate(clips):
        out[i, 0, : len(c)] = c
        mask[i, : len(c)] = 1
    return out, mask


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_lengths_not_multiple_of_hop(pair, attn_impl):
    """The reference crashes on such raw lengths with a mask; we reflect-pad each clip internally, as its
    feature extractor does, so we compare with the reference on the feature extractor's padding."""
    ref, directory = pair
    ours = reference_padding(PeAudioEncoder.from_pretrained(directory, attn_impl=attn_impl))
    hop = ref.config.dac_config.hop_length
    lengths = [hop * 5 + 1, hop * 3 - 1, 2]  # the last is shorter than its reflection
    raw, raw_mask = padded_batch(hop, lengths, max(lengths))
    padded, padded_mask = reflect_pad_like_feature_extractor(raw, lengths, hop)
    with torch.no_grad():
        expected = ref(padded, padding_mask=padded_mask)
        got = ours(raw, padding_mask=raw_mask)
    assert torch.equal(expected.output_mask, got.output_mask)
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL
    assert max_abs_diff(expected.pooler_output, got.pooler_output) <= FP32_ATOL
    # without a mask: the whole clip is valid, same as the feature extractor's single-clip output
    with torch.no_grad():
        expected = ref(padded[:1])
        got = ours(raw[:1])
    assert max_abs_diff(expected.last_hidden_state, got.last_hidden_state) <= FP32_ATOL


def test_hidden_states_match(pair):
    ref, directory = pair
    ours = reference_padding(PeAudioEncoder.from_pretrained(directory, attn_impl="sdpa"))
    hop = ref.config.dac_config.hop_length
    x, mask = padded_batch(hop, [hop * 6, hop * 2], hop * 6)
    with torch.no_grad():
        expected = ref(x, padding_mask=mask, output_hidden_states=True)
        got = ours(x, padding_mask=mask, output_hidden_states=True)
    assert len(got.hidden_states) == len(expected.hidden_states)
    for e, g in zip(expected.hidden_states, got.hidden_states):
        assert max_abs_diff(e, g) <= FP32_ATOL


@pytest.mark.parametrize("attn_impl", ["eager", "sdpa"])
def test_padded_clips_equal_the_reference_on_each_clip_alone(pair, attn_impl):
    """Our default isolates clips in a padded batch; the reference lets the zero padding reach the
    last tokens of shorter clips through the DAC's receptive field. The intended semantics, a clip's
    encoding independent of its batch, is the reference run on each clip alone."""
    ref, directory = pair
    ours = PeAudioEncoder.from_pretrained(directory, attn_impl=attn_impl)
    hop = ref.config.dac_config.hop_length
    lengths = [hop * 9, hop * 4, hop * 1]
    x, mask = padded_batch(hop, lengths, hop * 9)
    with torch.no_grad():
        got = ours(x, padding_mask=mask)
        for i, n in enumerate(lengths):
            alone = ref(x[i : i + 1, :, :n])
            assert max_abs_diff(alone.pooler_output[0], got.pooler_output[i]) <= FP32_ATOL
            assert max_abs_diff(alone.last_hidden_state[0], got.last_hidden_state[i, : n // hop]) <= FP32_ATOL
        leaky = reference_padding(PeAudioEncoder.from_pretrained(directory, attn_impl=attn_impl))(x, padding_mask=mask)
    # the boundary effect we remove is real in this configuration (so this test can tell the two apart)
    assert max_abs_diff(leaky.last_hidden_state[2, :1], got.last_hidden_state[2, :1]) > 1e-7
