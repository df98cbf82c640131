"""Configs: read transformers' config.json, keep unknown keys, write back identically, validate."""

import json
import re

import pytest

from oracle import transformers
import pe_av.config
from pe_av import (
    DacConfig,
    PeAudioConfig,
    PeAudioEncoderConfig,
    PeAudioFrameLevelModel,
    PeAudioModel,
    PeAudioProcessor,
    PeAudioVideoConfig,
    PeAudioVideoProcessor,
    PeVideoConfig,
    PeVideoProcessor,
    load_config,
)
from pe_av.config import ConfigBase, config_from_dict
from pe_av.registry import (
    MODEL_TYPES,
    config_class_for,
    model_class_for,
    processor_class_for,
    supported_model_types,
)
from tiny_configs import CONFIGS, build

pytestmark = pytest.mark.oracle

TINY_DAC = dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8)


def reference_configs():
    return {
        "pe_audio_encoder": transformers.PeAudioEncoderConfig(
            hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=12, dac_config=TINY_DAC
        ),
        "pe_audio": transformers.PeAudioConfig(),
        "pe_video": transformers.PeVideoConfig(),
        "pe_audio_video": transformers.PeAudioVideoConfig(),
        "pe_audio_video_encoder": transformers.PeAudioVideoEncoderConfig(),
    }


@pytest.mark.parametrize("model_type", sorted(reference_configs()))
def test_round_trip_of_transformers_config(model_type, tmp_path):
    ref = reference_configs()[model_type]
    ref.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    ours = load_config(tmp_path)
    assert type(ours) is config_class_for(model_type)
    assert json.loads(ours.to_json_string()) == written  # the diff transformers writes
    assert ours.to_dict() == ref.to_dict()
    # and transformers reads our file back to the same config
    out = tmp_path / "ours"
    ours.save_pretrained(out)
    again = transformers.AutoConfig.from_pretrained(out).to_dict()
    expected = ref.to_dict()
    for volatile in ("_name_or_path", "transformers_version"):
        again.pop(volatile, None), expected.pop(volatile, None)
    assert again == expected


def test_fields_read_from_nested_json():
    cfg = config_from_dict(reference_configs()["pe_audio_video"].to_dict())
    assert isinstance(cfg, PeAudioVideoConfig)
    audio = cfg.audio_video_config.audio_config
    assert (audio.hidden_size, audio.num_attention_heads, audio.head_dim) == (1792, 14, 128)
    assert audio.dac_config.hop_length == 1920 and audio.dac_config.hidden_size == 1024
    assert cfg.audio_video_config.video_config.vision_config.architecture == "vit_pe_core_large_patch14_336"
    assert cfg.text_config.layer_types[:3] == ["full_attention", "sliding_attention", "sliding_attention"]
    assert cfg.text_config.rope_parameters["full_attention"]["rope_theta"] == 160000.0
    assert isinstance(cfg.audio_config, PeAudioConfig) and cfg.audio_config.audio_config is audio
    assert isinstance(cfg.video_config, PeVideoConfig)


def test_unknown_keys_are_kept_and_written_back():
    data = json.loads(reference_configs()["pe_audio_encoder"].to_json_string())
    data["some_future_option"] = {"nested": [1, 2]}
    data["dac_config"]["another_one"] = 3
    cfg = PeAudioEncoderConfig.from_dict(data)
    assert cfg.extra["some_future_option"] == {"nested": [1, 2]} == cfg.some_future_option
    assert cfg.dac_config.extra["another_one"] == 3
    assert json.loads(cfg.to_json_string()) == data


def test_defaults_match_transformers():
    ours = PeAudioEncoderConfig().to_dict()
    ref = transformers.PeAudioEncoderConfig().to_dict()
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_parameters", "max_position_embeddings"):
        assert ours[key] == ref[key], key
    for key in ("encoder_hidden_size", "downsampling_ratios", "codebook_dim", "hop_length", "hidden_size"):
        assert ours["dac_config"][key] == ref["dac_config"][key], key


def test_legacy_rope_theta_key():
    cfg = PeAudioEncoderConfig.from_dict({"rope_theta": 1234.0})
    assert cfg.rope_parameters == {"rope_type": "default", "rope_theta": 1234.0}
    assert "rope_theta" not in cfg.extra


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_attention_heads=6, num_key_value_heads=4), "divisible by num_key_value_heads"),
        (dict(head_dim=7), "head_dim must be even"),
        (dict(hidden_size=0), "hidden_size must be a positive integer"),
        (dict(num_attention_heads=2.5), "num_attention_heads must be a positive integer"),
        (dict(hidden_act="gelu"), "hidden_act"),
        (dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1.0}), "rope_type 'yarn' is not supported"),
        (dict(rms_norm_eps=-1.0), "rms_norm_eps"),
        (dict(dac_config={"downsampling_ratios": []}), "downsampling_ratios"),
    ],
)
def test_validation_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PeAudioEncoderConfig.from_dict(kwargs)


def test_text_config_validation():
    with pytest.raises(ValueError, match="layer_types has 2 entries"):
        config_from_dict({"model_type": "pe_audio", "text_config": {"num_hidden_layers": 3, "layer_types": ["full_attention"] * 2}})
    with pytest.raises(ValueError, match="text_embedding_layer"):
        config_from_dict({"model_type": "pe_audio", "text_config": {"num_hidden_layers": 3, "text_embedding_layer": 4}})


def test_wrong_or_unknown_model_type():
    with pytest.raises(ValueError, match="unknown model_type 'bert'"):
        config_from_dict({"model_type": "bert"})
    with pytest.raises(ValueError, match="expects model_type 'pe_audio_encoder'"):
        PeAudioEncoderConfig.from_dict({"model_type": "pe_video_encoder"})
    with pytest.raises(TypeError, match="mapping"):
        PeAudioEncoderConfig.from_dict([1, 2])


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path)


# --------------------------------------------------------------------------------------------------
# the registry of model types (pe_av.registry)


def test_registry_covers_every_config_class():
    classes = {
        obj for obj in vars(pe_av.config).values()
        if isinstance(obj, type) and issubclass(obj, ConfigBase) and obj.model_type
    }
    # the DAC codec config only ever sits inside an audio encoder's config: it has no model of its own
    assert {cls.model_type for cls in classes - {DacConfig}} == set(MODEL_TYPES)
    for cls in classes - {DacConfig}:
        assert config_class_for(cls.model_type) is cls


@pytest.mark.parametrize("model_cls", list(CONFIGS), ids=lambda cls: cls.__name__)
def test_load_config_of_each_saved_model_type(model_cls, tmp_path):
    build(model_cls).save_pretrained(tmp_path)
    config = load_config(tmp_path)
    assert type(config) is model_cls.config_class
    assert model_class_for(config, architecture=model_cls.__name__) is model_cls
    # a model_type maps to its base class whatever config.json's "architectures" says (as AutoModel)
    assert model_class_for(config) is (PeAudioModel if model_cls is PeAudioFrameLevelModel else model_cls)
    assert model_class_for(config.model_type) is model_class_for(config)


def test_registry_processors_and_errors():
    assert processor_class_for("pe_audio_video") is PeAudioVideoProcessor
    assert processor_class_for("pe_audio") is PeAudioProcessor
    assert processor_class_for("pe_video") is PeVideoProcessor
    assert processor_class_for("pe_audio_encoder") is None
    assert supported_model_types(with_processor=True) == ["pe_audio", "pe_audio_video", "pe_video"]
    supported = re.escape(str(supported_model_types()))
    for lookup in (config_class_for, model_class_for, processor_class_for):
        with pytest.raises(ValueError, match=f"unknown model_type 'bert'; pe_av supports {supported}"):
            lookup("bert")
    with pytest.raises(ValueError, match=r"'pe_audio' has no model class 'PeVideoModel'.*PeAudioFrameLevelModel"):
        model_class_for("pe_audio", architecture="PeVideoModel")
