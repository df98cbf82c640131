"""Precomputed-feature inputs (``input_features=`` codec features, ``pe_features=`` per-frame ViT features):
fed the features the normal path computes, every encoder and ``get_*_embeds`` helper returns exactly
what it returns from waveforms and frames; bad feature inputs are clear errors."""

from __future__ import annotations

import pytest
import torch
from tiny_configs import FRAME, HOP, build

from pe_av import (
    PeAudioEncoder,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoEncoder,
    PeAudioVideoModel,
    PeVideoEncoder,
    PeVideoModel,
)


def _audio(seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, 5 * HOP, dtype=torch.long)
    mask[1, 3 * HOP + 2:] = 0  # not a whole number of hops: the padded tail hop counts as valid
    return torch.randn(2, 1, 5 * HOP, generator=gen), mask


def _video(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 3, FRAME, FRAME, generator=gen) * 2 - 1, torch.tensor([[1, 1, 1], [1, 1, 0]])


def _same(a, b):
    assert a.shape == b.shape and torch.equal(a, b), (a - b).abs().max()


@torch.no_grad()
def test_audio_encoder_features_equal_waveforms():
    encoder = build(PeAudioEncoder)
    wav, mask = _audio()
    features, token_mask = encoder.get_codec_features(wav, mask)
    assert features.shape == (2, 5, encoder.config.dac_config.codebook_dim)
    ref = encoder(wav, mask)
    out = encoder(input_features=features, padding_mask=token_mask)
    _same(out.last_hidden_state, ref.last_hidden_state)
    _same(out.pooler_output, ref.pooler_output)
    assert torch.equal(out.output_mask.bool(), ref.output_mask.bool())
    unpadded, none = encoder.get_codec_features(wav)
    assert none is None
    _same(encoder(input_features=unpadded).pooler_output, encoder(wav).pooler_output)


@torch.no_grad()
def test_video_encoder_features_equal_frames():
    encoder = build(PeVideoEncoder)
    frames, mask = _video()
    features = encoder.get_frame_features(frames, mask)
    assert features.shape == (2, 3, encoder.embedder.vision_model.num_classes)
    assert torch.equal(features[1, 2], torch.zeros_like(features[1, 2]))  # padded frame
    norms = features.norm(dim=-1)[mask.bool()]
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    _same(encoder(pe_features=features, padding_mask_videos=mask).pooler_output, encoder(frames, mask).pooler_output)


@torch.no_grad()
def test_fusion_encoder_features_equal_media():
    fusion = build(PeAudioVideoEncoder)
    wav, amask = _audio()
    frames, vmask = _video()
    audio_features, token_mask = fusion.embedder.audio_encoder.get_codec_features(wav, amask)
    frame_features = fusion.embedder.video_encoder.get_frame_features(frames, vmask)
    ref = fusion(wav, frames, amask, vmask).pooler_output
    _same(fusion(input_features=audio_features, pe_features=frame_features, padding_mask=token_mask,
                 padding_mask_videos=vmask).pooler_output, ref)
    _same(fusion(wav, padding_mask=amask, pe_features=frame_features, padding_mask_videos=vmask).pooler_output, ref)
    with pytest.raises(ValueError, match="input_features .batch 2. and pe_features .batch 1."):
        fusion(input_features=audio_features, pe_features=frame_features[:1])


@torch.no_grad()
def test_pe_audio_video_get_embeds_from_features():
    model = build(PeAudioVideoModel)
    wav, amask = _audio()
    frames, vmask = _video()
    ids = torch.randint(1, 50, (2, 5))
    feats, tmask = model.audio_model.audio_encoder.get_codec_features(wav, amask)
    pe = model.video_model.video_encoder.get_frame_features(frames, vmask)
    _same(model.get_audio_embeds(input_features=feats, padding_mask=tmask), model.get_audio_embeds(wav, amask))
    _same(model.get_video_embeds(pe_features=pe, padding_mask_videos=vmask), model.get_video_embeds(frames, vmask))
    got = model.get_audio_video_embeds(input_features=feats, pe_features=pe, padding_mask=tmask, padding_mask_videos=vmask,
                                       return_audio_embeds=True, return_video_embeds=True)
    ref = model.get_audio_video_embeds(wav, frames, amask, vmask, return_audio_embeds=True, return_video_embeds=True)
    for name in ("audio_embeds", "video_embeds", "audio_video_embeds"):
        _same(getattr(got, name), getattr(ref, name))
    _same(model.get_audio_plus_text_embeds(ids, padding_mask=tmask, input_features=feats),
          model.get_audio_plus_text_embeds(ids, wav, padding_mask=amask))
    _same(model.get_video_plus_text_embeds(ids, padding_mask_videos=vmask, pe_features=pe),
          model.get_video_plus_text_embeds(ids, frames, padding_mask_videos=vmask))
    with pytest.raises(ValueError, match="input_ids has 2, input_features has 1"):
        model.get_audio_plus_text_embeds(ids, input_features=feats[:1])


@torch.no_grad()
@pytest.mark.parametrize("model_cls", [PeAudioModel, PeAudioFrameLevelModel])
def test_pe_audio_get_audio_embeds_from_features(model_cls):
    model = build(model_cls)
    wav, mask = _audio()
    feats, tmask = model.audio_encoder.get_codec_features(wav, mask)
    _same(model.get_audio_embeds(input_features=feats, padding_mask=tmask), model.get_audio_embeds(wav, mask))


@torch.no_grad()
def test_pe_video_get_video_embeds_from_features():
    model = build(PeVideoModel)
    frames, mask = _video()
    pe = model.video_encoder.get_frame_features(frames, mask)
    _same(model.get_video_embeds(pe_features=pe, padding_mask_videos=mask), model.get_video_embeds(frames, mask))


def test_bad_feature_inputs():
    audio, video = build(PeAudioEncoder), build(PeVideoEncoder)
    wav, _ = _audio()
    width = audio.config.dac_config.codebook_dim
    with pytest.raises(ValueError, match="give input_values or input_features"):
        audio()
    with pytest.raises(ValueError, match="not both"):
        audio(wav, input_features=torch.zeros(2, 5, width))
    with pytest.raises(ValueError, match=rf"input_features must have shape \(batch, length, {width}\), got \(2, 5, 3\)"):
        audio(input_features=torch.zeros(2, 5, 3))
    with pytest.raises(TypeError, match="input_features must hold floating point"):
        audio(input_features=torch.zeros(2, 5, width, dtype=torch.long))
    with pytest.raises(TypeError, match="input_features must be a torch.Tensor"):
        audio(input_features=[[0.0] * width])
    with pytest.raises(ValueError, match="input_features holds NaN"):
        audio(input_features=torch.full((2, 5, width), float("nan")))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \(batch, length\) = \(2, 5\)"):
        audio(input_features=torch.zeros(2, 5, width), padding_mask=torch.ones(2, 5 * HOP))
    with pytest.raises(ValueError, match="an all-padding|no valid|at least one"):
        audio(input_features=torch.zeros(2, 5, width), padding_mask=torch.tensor([[1] * 5, [0] * 5]))
    classes = video.embedder.vision_model.num_classes
    with pytest.raises(ValueError, match="give pixel_values_videos or pe_features"):
        video()
    with pytest.raises(ValueError, match=rf"pe_features must have shape \(batch, length, {classes}\)"):
        video(pe_features=torch.zeros(2, 3, classes + 1))
