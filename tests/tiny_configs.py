"""Tiny configs of every pe_av model class, and a builder, for tests that need no transformers oracle."""

from __future__ import annotations

import torch

from pe_av import (
    ModernBertConfig,
    ModernBertModel,
    PeAudioConfig,
    PeAudioEncoder,
    PeAudioEncoderConfig,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioVideoConfig,
    PeAudioVideoEncoder,
    PeAudioVideoEncoderConfig,
    PeAudioVideoModel,
    PeVideoConfig,
    PeVideoEncoder,
    PeVideoEncoderConfig,
    PeVideoModel,
    PeVisionModel,
    TimmVisionConfig,
)

HOP = 6  # DAC strides 2 · 3
FRAME = 28  # pixels per side: 2 × 2 patches of 14
VOCAB = 53
DAC = dict(encoder_hidden_size=2, downsampling_ratios=[2, 3], codebook_dim=4)
VIT = dict(
    architecture="vit_pe_core_large_patch14_336",
    model_args=dict(img_size=FRAME, patch_size=14, embed_dim=32, depth=1, num_heads=2),
    num_labels=16,
)
AUDIO = dict(hidden_size=24, intermediate_size=30, num_hidden_layers=1, num_attention_heads=2, head_dim=12,
             dac_config=DAC)
VIDEO = dict(hidden_size=24, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
             head_dim=8, vision_config=VIT)
FUSION = dict(hidden_size=32, intermediate_size=40, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=1,
              head_dim=12, audio_config=AUDIO, video_config=VIDEO)
TEXT = dict(vocab_size=VOCAB, pad_token_id=0, hidden_size=24, intermediate_size=19, num_hidden_layers=2,
            num_attention_heads=3, local_attention=4)

#: every model class with a tiny config of its type
CONFIGS = {
    PeAudioEncoder: lambda: PeAudioEncoderConfig(**AUDIO),
    PeVideoEncoder: lambda: PeVideoEncoderConfig(**VIDEO),
    PeAudioVideoEncoder: lambda: PeAudioVideoEncoderConfig(**FUSION),
    ModernBertModel: lambda: ModernBertConfig(**TEXT),
    PeVisionModel: lambda: TimmVisionConfig.from_dict(VIT),
    PeAudioModel: lambda: PeAudioConfig(text_config=TEXT, audio_config=AUDIO),
    PeAudioFrameLevelModel: lambda: PeAudioConfig(text_config=TEXT, audio_config=AUDIO),
    PeVideoModel: lambda: PeVideoConfig(text_config=TEXT, video_config=VIDEO),
    PeAudioVideoModel: lambda: PeAudioVideoConfig(text_config=TEXT, audio_video_config=FUSION),
}


def build(model_cls, seed: int = 0):
    """A randomly initialised tiny ``model_cls`` in eval mode."""
    torch.manual_seed(seed)
    return model_cls(CONFIGS[model_cls]()).eval()
