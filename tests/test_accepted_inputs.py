"""The documented accepted input forms of the models: these are not errors, and give the same numbers
(see the README's "Input handling")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_inputs import (
    AUDIO_ARGS,
    BATCH,
    SAMPLES,
    TEXT_ARGS,
    VIDEO_ARGS,
    tiny_models,
    valid,
    valid_args,
)
from tiny_configs import HOP, VOCAB


@pytest.fixture(scope="module")
def models():
    return tiny_models()


def close(a, b, atol=1e-6):
    return (a - b).abs().max().item() <= atol


def test_accepted_waveform_and_mask_forms(models):
    encoder = models["av"].audio_model.audio_encoder
    audio, mask = valid("audio"), valid("audio_mask")
    with torch.no_grad():
        base = encoder(audio, mask).pooler_output
        forms = [
            encoder(audio[:, 0], mask),  # (B, L) mono
            encoder(audio.double(), mask.bool()),  # float64 cast down, bool mask
            encoder(audio, mask.float()),  # float 0/1 mask
            encoder(audio.half().float(), mask.to(torch.int8)),  # int8 mask
            encoder(torch.randn(SAMPLES, 1, BATCH).permute(2, 1, 0).copy_(audio), mask.t().contiguous().t()),  # strided
        ]
    for got in forms:
        assert close(got.pooler_output, base, atol=1e-3 if got is forms[3] else 1e-6)


def test_accepted_token_id_dtypes_and_masks(models):
    text = models["av"].text_model
    ids, mask = valid("ids"), valid("text_mask")
    with torch.no_grad():
        base = text(ids, mask).pooler_output
        forms = [(ids.int(), mask.bool()), (ids.to(torch.int16), mask.float()), (ids.to(torch.uint8), mask)]
        for form_ids, form_mask in forms:
            assert torch.equal(text(form_ids, form_mask).pooler_output, base)


def test_padding_content_does_not_matter(models):
    """Whatever finite values padding holds, a padded clip/video/text gives the same embeddings."""
    av = models["av"]
    inputs = valid_args({**TEXT_ARGS, **AUDIO_ARGS, **VIDEO_ARGS})
    noisy = dict(inputs)
    noisy["input_values"] = inputs["input_values"].clone()
    noisy["input_values"][1, :, 2 * HOP :] = 50 * torch.randn(2 * HOP)
    noisy["pixel_values_videos"] = inputs["pixel_values_videos"].clone()
    noisy["pixel_values_videos"][1, 2] = 1e4
    noisy["input_ids"] = inputs["input_ids"].clone()
    noisy["input_ids"][1, 3:] = VOCAB - 1
    with torch.no_grad():
        a, b = av(**inputs), av(**noisy)
    for name in ("audio_embeds", "video_embeds", "audio_video_embeds", "text_audio_embeds", "audio_plus_text_embeds"):
        assert close(getattr(a, name), getattr(b, name), atol=1e-5), name


def test_inputs_requiring_grad_and_bf16_models(models):
    encoder = models["av"].audio_model.audio_encoder
    audio = valid("audio").requires_grad_()
    out = encoder(audio, valid("audio_mask"))
    assert out.pooler_output.requires_grad  # the transformer is differentiable; the DAC runs without grad
    bf16 = type(encoder)(encoder.config).to(torch.bfloat16).eval()
    bf16.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        got = bf16(valid("audio"), valid("audio_mask")).pooler_output  # float32 input, cast to bfloat16
    assert got.dtype == torch.bfloat16 and torch.isfinite(got.float()).all()


def test_numpy_is_refused_but_easy_to_convert(models):
    encoder = models["av"].audio_model.audio_encoder
    array = np.random.default_rng(0).standard_normal((2, 1, SAMPLES)).astype(np.float32)
    with pytest.raises(TypeError, match="torch.from_numpy"):
        encoder(array)
    with torch.no_grad():
        assert torch.isfinite(encoder(torch.from_numpy(array)).pooler_output).all()
