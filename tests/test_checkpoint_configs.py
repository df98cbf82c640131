"""A config.json that is broken, of the wrong type or at odds with its weights is a clear ``ValueError``
naming the file or field (checkpoints written by pe_av from tiny random models; no transformers needed)."""

from __future__ import annotations


import pytest

from pe_av import CheckpointError, PeAudioEncoder
from checkpoint_files import copy

# --------------------------------------------------------------------------------------------------
# config.json


def test_config_weights_mismatch(saved, tmp_path):
    """Layer counts and widths are compared with the safetensors header before the model is built."""
    bad = copy(saved[PeAudioEncoder], tmp_path / "layers", edit_config=lambda c: c.update(num_hidden_layers=2))
    with pytest.raises(CheckpointError, match=r"^config\.json: num_hidden_layers = 2 but the checkpoint has 1 layer \(layers\.0\.\*\)$"):
        PeAudioEncoder.from_pretrained(bad)
    bad = copy(saved[PeAudioEncoder], tmp_path / "fewer", edit_config=lambda c: c.update(num_hidden_layers=0))
    with pytest.raises(CheckpointError, match=r"num_hidden_layers = 0 but the checkpoint has 1 layer"):
        PeAudioEncoder.from_pretrained(bad)
    bad = copy(saved[PeAudioEncoder], tmp_path / "wider", edit_config=lambda c: c.update(intermediate_size=31))
    with pytest.raises(CheckpointError, match=r"config\.json: intermediate_size = 31 does not match the checkpoint \(shape "
                                              r"mismatch for 'layers\.0\.mlp\.gate_proj\.weight': checkpoint has \(30, 24\), "
                                              r"the config gives \(31, 24\)\)"):
        PeAudioEncoder.from_pretrained(bad)


@pytest.mark.parametrize(
    "model_type, regex",
    [
        ("llama", r"unknown model_type 'llama'"),
        (None, r"unknown model_type None"),
        ("pe_video_encoder", r"holds model_type 'pe_video_encoder', not 'pe_audio_encoder'"),
        ("pe_audio_video", r"holds model_type 'pe_audio_video', not 'pe_audio_encoder'"),
    ],
)
def test_unknown_or_wrong_model_type(saved, tmp_path, model_type, regex):
    def set_type(config):
        if model_type is None:
            config.pop("model_type")
        else:
            config["model_type"] = model_type

    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_config=set_type)
    with pytest.raises(ValueError, match=regex):
        PeAudioEncoder.from_pretrained(bad)


@pytest.mark.parametrize("text, regex", [
    ("[1, 2]", r"config\.json must hold a JSON object .* got list"),
    ('"pe_audio_encoder"', r"config\.json must hold a JSON object .* got str"),
    ("null", r"config\.json must hold a JSON object .* got NoneType"),
    ("42", r"config\.json must hold a JSON object .* got int"),
    ("{ not json", r"config\.json is not valid JSON"),
    ("", r"config\.json is not valid JSON"),
])
def test_config_json_that_is_not_a_config(saved, tmp_path, text, regex):
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_config=lambda config: text)
    with pytest.raises(ValueError, match=regex):
        PeAudioEncoder.from_pretrained(bad)


def test_config_json_not_utf8_or_missing(saved, tmp_path):
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad")
    (bad / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        PeAudioEncoder.from_pretrained(bad)
    (bad / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        PeAudioEncoder.from_pretrained(bad)


@pytest.mark.parametrize("edit, error, regex", [
    (lambda c: c.update(dac_config=[2, 3]), TypeError, "DacConfig.from_dict expects a mapping, got list"),
    (lambda c: c.update(hidden_size="24"), ValueError, r"hidden_size must be a positive integer, got '24'"),
    (lambda c: c.update(num_attention_heads=5), ValueError, r"num_attention_heads \(5\) must be divisible"),
    (lambda c: c.update(rope_parameters={"rope_type": "yarn"}), ValueError, "rope_type 'yarn' is not supported"),
])
def test_config_values_of_the_wrong_form(saved, tmp_path, edit, error, regex):
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_config=edit)
    with pytest.raises(error, match=regex):
        PeAudioEncoder.from_pretrained(bad)
