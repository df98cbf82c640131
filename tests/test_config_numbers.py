"""Floats that would silently break the numbers (eps, rope theta, init range, dropout, ViT ratios) and
sizes beyond pe_av's hard bounds are a ValueError naming the field when the config is built."""

from __future__ import annotations

import math
import re

import pytest

from pe_av import (
    DacConfig,
    ModernBertConfig,
    PeAudioEncoderConfig,
    PeAudioVideoEncoderConfig,
    PeAudioVideoModel,
    PeVideoEncoderConfig,
    TimmVisionConfig,
)
from checkpoint_files import copy

NAN, INF = math.nan, math.inf
PE_CLASSES = [PeAudioEncoderConfig, PeVideoEncoderConfig, PeAudioVideoEncoderConfig]


def vit(**args):
    return TimmVisionConfig(model_args=dict(embed_dim=32, depth=1, num_heads=2, img_size=28, patch_size=14, **args))


# (field, bad values, kind) of the floats in the PE transformer and ModernBERT configs
POSITIVE, NON_NEGATIVE, PROBABILITY = "> 0", ">= 0", r"in \[0, 1\)"
BAD = {POSITIVE: [NAN, INF, -INF, 0, 0.0, -1e-5, True, "1e-5", None, 10**400],
       NON_NEGATIVE: [NAN, INF, -0.01, True, "0.02"],
       PROBABILITY: [NAN, 1.0, 1, -0.1, INF, True]}
PE_FLOATS = [("rms_norm_eps", POSITIVE), ("initializer_range", NON_NEGATIVE), ("attention_dropout", PROBABILITY)]
TEXT_FLOATS = [("norm_eps", POSITIVE), ("initializer_range", NON_NEGATIVE), ("initializer_cutoff_factor", NON_NEGATIVE),
               ("attention_dropout", PROBABILITY), ("embedding_dropout", PROBABILITY), ("mlp_dropout", PROBABILITY)]


def cases(fields):
    return [(name, kind, value) for name, kind in fields for value in BAD[kind]]


@pytest.mark.parametrize("cls", PE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name, kind, value", cases(PE_FLOATS))
def test_pe_transformer_floats(cls, name, kind, value):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name} must be a finite number {kind}, got " + re.escape(repr(value))):
        cls(**{name: value})


@pytest.mark.parametrize("name, kind, value", cases(TEXT_FLOATS))
def test_text_floats(name, kind, value):
    with pytest.raises(ValueError, match=rf"^text_config\.{name} must be a finite number {kind}, got"):
        ModernBertConfig(**{name: value})


@pytest.mark.parametrize("value", [NAN, INF, 0, -1.0, True])
def test_rope_theta(value):
    with pytest.raises(ValueError, match=r"PeAudioEncoderConfig\.rope_parameters\.rope_theta must be a finite number > 0"):
        PeAudioEncoderConfig(rope_parameters={"rope_type": "default", "rope_theta": value})
    for kind in ("full_attention", "sliding_attention"):
        with pytest.raises(ValueError, match=rf"text_config\.rope_parameters\['{kind}'\]\.rope_theta must be a finite number > 0"):
            ModernBertConfig(rope_parameters={kind: {"rope_theta": value}})


@pytest.mark.parametrize("args, message", [
    (dict(mlp_ratio=NAN), r"model_args\.mlp_ratio must be a finite number > 0, got nan"),
    (dict(mlp_ratio=0), r"model_args\.mlp_ratio must be a finite number > 0, got 0"),
    (dict(mlp_ratio=1000.0), r"model_args\.mlp_ratio must be at most 64\.0"),
    (dict(attn_pool_mlp_ratio=-1.0), r"model_args\.attn_pool_mlp_ratio must be a finite number > 0"),
    (dict(rope_temperature=INF), r"model_args\.rope_temperature must be a finite number > 0, got inf"),
    (dict(rope_grid_offset=NAN), r"model_args\.rope_grid_offset must be a finite number, got nan"),
    (dict(init_values=NAN), r"model_args\.init_values must be a finite number, got nan"),
])
def test_vit_floats(args, message):
    with pytest.raises(ValueError, match=r"^vision_config\." + message):
        vit(**args)


def test_vision_initializer_range():
    with pytest.raises(ValueError, match=r"vision_config\.initializer_range must be a finite number >= 0, got nan"):
        TimmVisionConfig(initializer_range=NAN)


def test_valid_edge_values_are_accepted():
    PeAudioEncoderConfig(rms_norm_eps=1e-12, initializer_range=0, attention_dropout=0.5,
                         rope_parameters={"rope_theta": 1})
    ModernBertConfig(norm_eps=1, initializer_cutoff_factor=None, mlp_dropout=0.999)
    vit(mlp_ratio=8960 / 1536, init_values=None, rope_grid_offset=-1.0)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["text_config"].update(norm_eps=NAN), r"text_config\.norm_eps must be a finite number > 0, got nan"),
    (lambda c: c["text_config"].update(norm_eps=-1e-5), r"text_config\.norm_eps must be a finite number > 0, got -1e-05"),
    (lambda c: c["audio_video_config"].update(rms_norm_eps=INF), r"PeAudioVideoEncoderConfig\.rms_norm_eps must be a finite number > 0, got inf"),
    (lambda c: c["audio_video_config"]["audio_config"].update(rms_norm_eps=NAN), r"PeAudioEncoderConfig\.rms_norm_eps .* got nan"),
    (lambda c: c["audio_video_config"]["video_config"].update(attention_dropout=1.0), r"PeVideoEncoderConfig\.attention_dropout"),
])
def test_from_a_config_json_with_nan_or_infinity(saved, tmp_path, edit, message):
    """json.dump writes NaN / Infinity, which Python's JSON reader accepts: the config check refuses them."""
    bad = copy(saved[PeAudioVideoModel], tmp_path / "bad", edit_config=edit)
    with pytest.raises(ValueError, match=message):
        PeAudioVideoModel.from_pretrained(bad)


# --------------------------------------------------------------------------------------------------
# hard bounds on sizes


@pytest.mark.parametrize("make, message", [
    (lambda: PeAudioEncoderConfig(hidden_size=10**9), r"PeAudioEncoderConfig\.hidden_size must be at most 262,144"),
    (lambda: PeVideoEncoderConfig(num_hidden_layers=10**4), r"PeVideoEncoderConfig\.num_hidden_layers must be at most 1,024"),
    (lambda: PeAudioVideoEncoderConfig(num_attention_heads=2**10, num_key_value_heads=1, head_dim=2**10),
     r"num_attention_heads × head_dim \(1024 × 1024\) must be at most 262,144"),
    (lambda: ModernBertConfig(vocab_size=10**9), r"text_config\.vocab_size must be at most 16,777,216"),
    (lambda: ModernBertConfig(hidden_size=2**20, num_attention_heads=2), r"text_config\.hidden_size must be at most 262,144"),
    (lambda: ModernBertConfig(num_hidden_layers=10**6), r"text_config\.num_hidden_layers must be at most 1,024"),
    (lambda: DacConfig(encoder_hidden_size=10**9), r"dac_config\.encoder_hidden_size must be at most 262,144"),
    (lambda: DacConfig(downsampling_ratios=[2, 10**6]), r"dac_config\.downsampling_ratios must be at most 1,024 each"),
    (lambda: DacConfig(codebook_dim=10**7), r"dac_config\.codebook_dim must be at most 262,144"),
    (lambda: TimmVisionConfig(model_args=dict(depth=10**5)), r"vision_config\.model_args\.depth must be at most 1,024"),
    (lambda: TimmVisionConfig(model_args=dict(embed_dim=10**9)), r"vision_config\.model_args\.embed_dim must be at most 262,144"),
    (lambda: TimmVisionConfig(model_args=dict(img_size=[28, 10**6])), r"vision_config\.model_args\.img_size must be at most 16,384"),
    (lambda: TimmVisionConfig(num_classes=10**9), r"vision_config\.num_classes must be at most 16,777,216"),
    (lambda: TimmVisionConfig.from_dict({"num_labels": 10**9}), r"vision_config\.num_labels must be at most 16,777,216"),
])
def test_hard_size_bounds(make, message):
    with pytest.raises(ValueError, match=message):
        make()
