"""Configs as transformers' configs: the same calls (constructors with transformers' keywords, ``to_dict``,
``to_json_string``/``to_json_file`` with ``use_diff``, ``save_pretrained``/``from_pretrained``, ``update``,
``get_text_config``, ``==``, ``from_dict`` keywords) through transformers and pe_av, compared."""

from __future__ import annotations

import json

import pytest
import torch

import pe_av
from oracle import transformers
from tiny_configs import AUDIO, FUSION, TEXT

pytestmark = pytest.mark.oracle

#: transformers class name → pe_av class (the ViT's config is transformers' ``TimmWrapperConfig``)
PAIRS = {name: getattr(pe_av, name) for name in (
    "DacConfig", "PeAudioEncoderConfig", "PeVideoEncoderConfig", "PeAudioVideoEncoderConfig", "ModernBertConfig",
    "PeAudioConfig", "PeVideoConfig", "PeAudioVideoConfig",
)}
PAIRS["TimmWrapperConfig"] = pe_av.TimmVisionConfig
#: keys only one side writes (README "Drop-in configs"): transformers stamps its version on every dict; for the
#: ViT it writes ``label_names`` (from its own head size rule), pe_av writes the ``num_labels`` it was given
OURS_DIFFERS = ("transformers_version", "label_names", "num_labels")


def strip(d):
    """``d`` without :data:`OURS_DIFFERS`, at every level."""
    return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items() if k not in OURS_DIFFERS}


def flat(d, prefix=""):
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and key.endswith("_config"):
            out.update(flat(value, f"{prefix}{key}."))
        elif key not in OURS_DIFFERS:
            out[prefix + key] = value
    return out


def pair(name, **kwargs):
    return getattr(transformers, name)(**kwargs), PAIRS[name](**kwargs)


def written(config, use_diff=True):
    data = json.loads(config.to_json_string(use_diff=use_diff))
    return flat(data)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_defaults_key_by_key(name):
    # the one default pe_av keeps its own: a ViT config names PE-Core large (transformers: timm's resnet50)
    kwargs = dict(architecture="vit_pe_core_large_patch14_336") if name == "TimmWrapperConfig" else {}
    assert pe_av.TimmVisionConfig().architecture == "vit_pe_core_large_patch14_336"
    theirs = getattr(transformers, name)(**kwargs)
    ours = PAIRS[name]()
    a, b = flat(theirs.to_dict()), flat(ours.to_dict())
    assert sorted(a) == sorted(b)
    for key in a:
        assert b[key] == a[key], key
    assert written(ours) == written(theirs) and written(ours, use_diff=False) == written(theirs, use_diff=False)


COMMON = dict(projection_dim=7, use_cache=False, num_labels=3, return_dict=False, output_hidden_states=True,
              output_attentions=True, torch_dtype="bfloat16", architectures=["X"], problem_type="regression",
              chunk_size_feed_forward=2, name_or_path="somewhere", some_future_option={"a": [1, 2]})


@pytest.mark.parametrize("name, kwargs", [
    ("PeAudioConfig", dict(COMMON, text_config=TEXT, audio_config=AUDIO)),
    ("PeVideoConfig", dict(COMMON, text_config=dict(hidden_size=64))),  # the PE text defaults fill the rest
    ("PeAudioVideoConfig", dict(COMMON, audio_video_config=FUSION, tie_word_embeddings=False)),
    ("PeAudioEncoderConfig", dict(COMMON, **{**AUDIO, "dac_config": {"codebook_dim": 4}}, rope_theta=123.0)),
    ("PeAudioVideoEncoderConfig", dict(COMMON, rope_parameters={"rope_type": "default"}, rope_theta=5.0)),
    ("ModernBertConfig", dict(COMMON, **TEXT, global_rope_theta=3.0, local_rope_theta=2.0, global_attn_every_n_layers=2,
                              tie_last_hidden_states=False, id2label={"0": "zero", "1": "one"})),
    ("DacConfig", dict(downsampling_ratios=[2, 3], dtype=torch.float16, torch_dtype="bfloat16")),
    ("TimmWrapperConfig", dict(architecture="vit_pe_core_large_patch14_336", num_labels=5, global_pool="map")),
])
def test_constructor_keywords(name, kwargs):
    theirs, ours = pair(name, **kwargs)
    assert flat(ours.to_dict()) == flat(theirs.to_dict())
    assert written(ours) == written(theirs)
    for attr in ("dtype", "num_labels", "return_dict", "output_hidden_states", "output_attentions", "name_or_path"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert hasattr(ours, "use_cache") == hasattr(theirs, "use_cache") is False
    if "projection_dim" in kwargs:
        assert ours.projection_dim == theirs.projection_dim == 7


def test_tie_last_hidden_states():
    """transformers has no field for it: read from config.json when there (ModernBERT's default is True)."""
    theirs, ours = pair("ModernBertConfig")
    assert getattr(theirs, "tie_last_hidden_states", True) is ours.tie_last_hidden_states is True
    assert "tie_last_hidden_states" not in ours.to_dict()
    theirs, ours = pair("PeAudioConfig", text_config=dict(tie_last_hidden_states=False))
    assert theirs.text_config.tie_last_hidden_states is ours.text_config.tie_last_hidden_states is False
    assert written(ours) == written(theirs)
    with pytest.raises(ValueError, match="tie_last_hidden_states must be true or false"):
        pe_av.ModernBertConfig(tie_last_hidden_states="yes")


@pytest.mark.parametrize("name", ["PeAudioConfig", "PeVideoConfig", "PeAudioVideoConfig", "PeAudioVideoEncoderConfig",
                                  "ModernBertConfig"])
def test_get_text_config(name):
    theirs, ours = pair(name)
    for kwargs in ({}, {"decoder": True}, {"encoder": True}, {"decoder": True, "encoder": True}):
        a, b = theirs.get_text_config(**kwargs), ours.get_text_config(**kwargs)
        assert (a is theirs) == (b is ours) and type(a).__name__ == type(b).__name__
        assert flat(a.to_dict()) == flat(b.to_dict())


def test_update_equality_and_repr():
    theirs, ours = pair("PeAudioConfig", text_config=TEXT, audio_config=AUDIO)
    for config in (theirs, ours):
        config.update({"output_hidden_states": True, "projection_dim": 5})
        config.update_from_string("return_dict=false,projection_dim=6")
    assert flat(ours.to_dict()) == flat(theirs.to_dict()) and ours.projection_dim == 6
    again_theirs, again_ours = pair("PeAudioConfig", text_config=TEXT, audio_config=AUDIO)
    assert (theirs == again_theirs) == (ours == again_ours) is False
    again_theirs.update(dict(output_hidden_states=True, projection_dim=6, return_dict=False))
    again_ours.update(dict(output_hidden_states=True, projection_dim=6, return_dict=False))
    assert (theirs == again_theirs) == (ours == again_ours) is True
    assert repr(ours).startswith("PeAudioConfig {") and json.loads(repr(ours).partition(" ")[2]) == json.loads(ours.to_json_string())


def test_files_both_ways(tmp_path):
    theirs, ours = pair("PeAudioVideoConfig", text_config=TEXT, audio_video_config=FUSION, projection_dim=9)
    theirs.save_pretrained(tmp_path / "theirs")
    ours.save_pretrained(tmp_path / "ours")
    a, b = (json.loads((tmp_path / side / "config.json").read_text()) for side in ("theirs", "ours"))
    assert strip(b) == strip(a)
    ours.to_json_file(tmp_path / "full.json", use_diff=False)
    theirs.to_json_file(tmp_path / "full-theirs.json", use_diff=False)
    assert flat(json.loads((tmp_path / "full.json").read_text())) == flat(json.loads((tmp_path / "full-theirs.json").read_text()))
    # each reads the other's file back to the same config
    read_ours = pe_av.PeAudioVideoConfig.from_pretrained(tmp_path / "theirs")
    read_theirs = transformers.PeAudioVideoConfig.from_pretrained(tmp_path / "ours")
    assert flat(read_ours.to_dict()) == flat(read_theirs.to_dict()) == flat(ours.to_dict())
    assert read_ours.to_dict()["_name_or_path"] == ""  # as transformers: from_pretrained of a config sets no name


def test_from_pretrained_and_from_dict_keywords(tmp_path):
    transformers.PeAudioConfig(text_config=TEXT, audio_config=AUDIO).save_pretrained(tmp_path)
    kwargs = dict(output_hidden_states=True, num_labels=4, foo=1, text_config={"vocab_size": 99}, return_unused_kwargs=True)
    (theirs, a), (ours, b) = (cls.from_pretrained(tmp_path, **kwargs) for cls in (transformers.PeAudioConfig, pe_av.PeAudioConfig))
    assert a == b == {"foo": 1}
    assert flat(ours.to_dict()) == flat(theirs.to_dict()) and ours.text_config.vocab_size == 99
    data = theirs.to_dict()
    assert flat(pe_av.PeAudioConfig.from_dict(data, dtype="float16").to_dict()) == flat(
        transformers.PeAudioConfig.from_dict(data, dtype="float16").to_dict())
    # a sub-config's class reads it out of a checkpoint of the composite type, as transformers does
    theirs, ours = (cls.from_pretrained(tmp_path) for cls in (transformers.PeAudioEncoderConfig, pe_av.PeAudioEncoderConfig))
    assert flat(ours.to_dict()) == flat(theirs.to_dict())


def test_transformers_config_objects_are_converted():
    hf = transformers.PeAudioVideoConfig(text_config=TEXT, audio_video_config=FUSION)
    ours = pe_av.PeAudioVideoConfig.from_dict(hf.to_dict())
    assert flat(ours.to_dict()) == flat(hf.to_dict())
    model = pe_av.PeAudioVideoModel(hf)  # a transformers config object builds the model directly
    assert isinstance(model.config, pe_av.PeAudioVideoConfig) and flat(model.config.to_dict()) == flat(hf.to_dict())
    nested = pe_av.PeAudioConfig(text_config=transformers.ModernBertConfig(**TEXT), audio_config=hf.audio_video_config.audio_config)
    assert flat(nested.to_dict()) == flat(transformers.PeAudioConfig(text_config=TEXT, audio_config=hf.audio_video_config.audio_config).to_dict())
    with pytest.raises(TypeError, match=r"PeAudioModel needs a PeAudioConfig \(pe_av's or transformers'\), got transformers's PeVideoConfig"):
        pe_av.PeAudioModel(transformers.PeVideoConfig())


def test_labels_and_dtype_attributes():
    theirs, ours = pair("PeAudioEncoderConfig", id2label={"0": "a", "1": "b", "2": "c"})
    assert ours.id2label == theirs.id2label == {0: "a", 1: "b", 2: "c"} and ours.num_labels == theirs.num_labels == 3
    for config in (theirs, ours):
        config.num_labels = 5
    assert ours.id2label == theirs.id2label and ours.label2id == theirs.label2id
    theirs, ours = pair("PeAudioEncoderConfig", dtype="float16")
    assert ours.dtype == theirs.dtype == torch.float16 and ours.to_dict()["dtype"] == theirs.to_dict()["dtype"] == "float16"
    with pytest.raises(TypeError, match="keyword arguments"):
        pe_av.PeAudioEncoderConfig(1792)
    with pytest.raises(ValueError, match="num_labels must be a non-negative integer"):
        pe_av.PeAudioConfig(num_labels=-1)


def test_derived_dac_keys_are_recomputed():
    """Deliberate difference: transformers keeps a ``hop_length`` (``hidden_size``, ``upsampling_ratios``) given
    to ``DacConfig`` over the one the strides give; pe_av always recomputes them."""
    theirs, ours = pair("DacConfig", downsampling_ratios=[2, 3], hop_length=99)
    assert theirs.hop_length == 99 and ours.hop_length == 6 == ours.to_dict()["hop_length"]
