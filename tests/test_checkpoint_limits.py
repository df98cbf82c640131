"""A config.json at odds with its checkpoint is refused before the model is built: layer counts and
widths are compared with the safetensors header (pe_av.config.layout), in milliseconds and without large
allocations, and the error names the config field by its path. Sizes beyond pe_av's hard bounds are a
ValueError even without a checkpoint."""

from __future__ import annotations

import json
import re
import time
import tracemalloc

import pytest

import pe_av.config.base
import pe_av.config.encoders
import pe_av.models.base
from pe_av import (
    CheckpointError,
    PeAudioEncoder,
    PeAudioEncoderConfig,
    PeAudioModel,
    PeAudioVideoModel,
    PeVideoEncoder,
    PeVisionModel,
)
from pe_av.config.layout import Stack, expectations
from pe_av.loading import SAFE_WEIGHTS_NAME
from safetensors.torch import load_file, save_file
from checkpoint_files import MODEL_CLASSES, copy
from tiny_configs import CONFIGS


def timed_failure(load, error=CheckpointError, match=None):
    """Run ``load``, which must raise ``error``; returns (seconds, peak bytes traced by tracemalloc)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error, match=match):
            load()
        return time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fusion(config):
    return config["audio_video_config"]


# --------------------------------------------------------------------------------------------------
# absurd sizes: fast, small, and naming the field


def test_a_million_layers_against_a_one_layer_checkpoint(saved, tmp_path, monkeypatch):
    """The header comparison alone (hard bound lifted) refuses 10**6 layers before building anything."""
    monkeypatch.setattr(pe_av.config.base, "MAX_LAYERS", 10**7)
    bad = copy(saved[PeAudioVideoModel], tmp_path / "bad", edit_config=lambda c: fusion(c).update(num_hidden_layers=10**6))
    message = (r"^config\.json: audio_video_config\.num_hidden_layers = 1000000 but the checkpoint has 1 layer "
               r"\(audio_video_encoder\.layers\.0\.\*\)$")
    seconds, peak = timed_failure(lambda: PeAudioVideoModel.from_pretrained(bad), match=message)
    assert seconds < 1.0 and peak < 16 * 2**20, (seconds, peak)


def test_many_layers_within_the_bound(saved, tmp_path):
    bad = copy(saved[PeAudioVideoModel], tmp_path / "bad", edit_config=lambda c: fusion(c).update(num_hidden_layers=1000))
    seconds, peak = timed_failure(lambda: PeAudioVideoModel.from_pretrained(bad),
                                  match=r"audio_video_config\.num_hidden_layers = 1000 but the checkpoint has 1 layer")
    assert seconds < 1.0 and peak < 16 * 2**20, (seconds, peak)


@pytest.mark.parametrize("field, value, message", [
    ("num_hidden_layers", 10**6, r"PeAudioVideoEncoderConfig\.num_hidden_layers must be at most 1,024 \(pe_av's bound\), got 1,000,000"),
    ("hidden_size", 10**9, r"PeAudioVideoEncoderConfig\.hidden_size must be at most 262,144 \(pe_av's bound\), got 1,000,000,000"),
    ("intermediate_size", 10**9, r"intermediate_size must be at most 262,144"),
    ("head_dim", 2**17, r"num_attention_heads × head_dim \(4 × 131072\) must be at most 262,144"),
])
def test_sizes_over_the_hard_bounds(saved, tmp_path, field, value, message):
    bad = copy(saved[PeAudioVideoModel], tmp_path / "bad", edit_config=lambda c: fusion(c).update({field: value}))
    seconds, peak = timed_failure(lambda: PeAudioVideoModel.from_pretrained(bad), ValueError, message)
    assert seconds < 1.0 and peak < 16 * 2**20, (seconds, peak)


def test_a_huge_width_within_lifted_bounds_is_caught_by_the_header(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(pe_av.config.encoders, "MAX_WIDTH", 10**10)
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_config=lambda c: c.update(hidden_size=10**9))
    seconds, _ = timed_failure(lambda: PeAudioEncoder.from_pretrained(bad), match=(
        r"^config\.json: hidden_size = 1000000000 does not match the checkpoint \(shape mismatch for 'norm\.weight': "
        r"checkpoint has \(24,\), the config gives \(1000000000,\)\)"))
    assert seconds < 1.0


def test_building_from_an_absurd_config_is_a_clear_error():
    with pytest.raises(ValueError, match=r"PeAudioEncoderConfig\.hidden_size must be at most 262,144"):
        PeAudioEncoder(PeAudioEncoderConfig(hidden_size=10**9))
    with pytest.raises(ValueError, match=r"dac_config: encoder_hidden_size \(64\) doubled at each of the 20"):
        PeAudioEncoderConfig(dac_config={"downsampling_ratios": [2] * 20})


# --------------------------------------------------------------------------------------------------
# each field that sizes a model is named by its path


def vit_args(config):
    return fusion(config)["video_config"]["vision_config"]["model_args"]


def dac(config):
    return fusion(config)["audio_config"]["dac_config"]


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda c: fusion(c)["audio_config"].update(num_hidden_layers=3),
                 r"audio_video_config\.audio_config\.num_hidden_layers = 3 but the checkpoint has 1 layer "
                 r"\(audio_model\.audio_encoder\.layers\.0\.\*\)", id="audio-layers"),
    pytest.param(lambda c: c["text_config"].update(num_hidden_layers=3, layer_types=None),
                 r"text_config\.num_hidden_layers = 3 but the checkpoint has 2 layers \(text_model\.layers\.0\.\* to "
                 r"text_model\.layers\.1\.\*\)", id="text-layers"),
    pytest.param(lambda c: c["text_config"].update(vocab_size=99),
                 r"text_config\.vocab_size = 99 does not match .*'text_model\.embeddings\.tok_embeddings\.weight'", id="vocab"),
    pytest.param(lambda c: c["text_config"].update(intermediate_size=20),
                 r"text_config\.intermediate_size = 20 does not match .*checkpoint has \(38, 24\), the config gives \(40, 24\)",
                 id="text-intermediate"),
    pytest.param(lambda c: vit_args(c).update(depth=3),
                 r"vision_config\.model_args\.depth = 3 but the checkpoint has 1 block \(video_model\.video_encoder\.embedder\."
                 r"vision_model\.timm_model\.blocks\.0\.\*\)", id="vit-depth"),
    pytest.param(lambda c: vit_args(c).update(embed_dim=64, num_heads=4),
                 r"vision_config\.model_args\.embed_dim = 64, model_args\.patch_size = 14 does not match", id="vit-width"),
    pytest.param(lambda c: vit_args(c).update(img_size=42),
                 r"vision_config\.model_args\.img_size = 42.* 'video_model\.video_encoder\.embedder\.vision_model\.timm_model\."
                 r"pos_embed': checkpoint has \(1, 5, 32\), the config gives \(1, 10, 32\)", id="vit-grid"),
    pytest.param(lambda c: dac(c).update(downsampling_ratios=[2, 3, 4]),
                 r"dac_config\.downsampling_ratios = \[2, 3, 4\] but the checkpoint has 2 blocks", id="dac-blocks"),
    pytest.param(lambda c: dac(c).update(downsampling_ratios=[2, 4]),
                 r"dac_config\.downsampling_ratios\[1\] = 4 does not match .*block\.1\.conv1\.weight", id="dac-stride"),
    pytest.param(lambda c: dac(c).update(encoder_hidden_size=4),
                 r"dac_config\.encoder_hidden_size = 4 does not match .*dac_encoder\.conv1\.weight", id="dac-width"),
    pytest.param(lambda c: fusion(c).update(head_dim=16),
                 r"audio_video_config\.num_attention_heads × head_dim = 4 × 16 does not match", id="heads"),
    pytest.param(lambda c: fusion(c)["video_config"].update(num_key_value_heads=4),
                 r"video_config\.num_key_value_heads × head_dim = 4 × 8 does not match", id="kv-heads"),
])
def test_each_size_field_is_named(saved, tmp_path, edit, message):
    bad = copy(saved[PeAudioVideoModel], tmp_path / "bad", edit_config=edit)
    with pytest.raises(CheckpointError, match=r"^config\.json: .*" + message):
        PeAudioVideoModel.from_pretrained(bad)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_every_model_class_has_its_stacks_described(cls):
    stacks = [item for _, item in expectations(CONFIGS[cls]()) if isinstance(item, Stack)]
    assert stacks and all(stack.count >= 0 for stack in stacks)


@pytest.mark.parametrize("cls, edit, message", [
    (PeAudioEncoder, lambda c: c.update(num_hidden_layers=2), r"^config\.json: num_hidden_layers = 2"),
    (PeVideoEncoder, lambda c: c["vision_config"]["model_args"].update(depth=2), r"^config\.json: vision_config\.model_args\.depth = 2"),
    (PeVisionModel, lambda c: c["model_args"].update(depth=2), r"^config: model_args\.depth = 2 but .* \(timm_model\.blocks\.0\.\*\)"),
    (PeAudioModel, lambda c: c["audio_config"].update(num_hidden_layers=2), r"^config\.json: audio_config\.num_hidden_layers = 2 .*audio_encoder\.layers\.0"),
])
def test_other_classes(saved, tmp_path, cls, edit, message):
    bad = copy(saved[cls], tmp_path / "bad", edit_config=edit)
    with pytest.raises(CheckpointError, match=message):
        cls.from_pretrained(bad)


def test_sharded_checkpoint_headers_are_compared(saved, tmp_path):
    bad = copy(saved["sharded"], tmp_path / "bad", edit_config=lambda c: c.update(num_hidden_layers=4))
    with pytest.raises(CheckpointError, match=r"num_hidden_layers = 4 but the checkpoint has 1 layer"):
        PeAudioEncoder.from_pretrained(bad)


def test_mismatches_are_found_before_any_tensor_data_is_read(saved, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(pe_av.models.base, "read_state_dict", forbidden)
    bad = copy(saved[PeAudioEncoder], tmp_path / "layers", edit_config=lambda c: c.update(num_hidden_layers=2))
    with pytest.raises(CheckpointError, match="num_hidden_layers = 2"):
        PeAudioEncoder.from_pretrained(bad)
    bad = copy(saved[PeAudioEncoder], tmp_path / "missing", edit_state=lambda s: s.pop("norm.weight"))
    with pytest.raises(CheckpointError, match=r"missing keys: norm\.weight"):
        PeAudioEncoder.from_pretrained(bad)
    bad = copy(saved[PeAudioEncoder], tmp_path / "shape", edit_state=lambda s: s.update({"output.weight": s["output.weight"][:3]}))
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'output\.weight'"):
        PeAudioEncoder.from_pretrained(bad)


def test_tied_sub_models_may_be_stored_under_either_name(saved, tmp_path):
    """transformers may keep the fusion encoder's copy of the audio encoder instead of the audio model's."""
    original, alias = "audio_model.audio_encoder.", "audio_video_encoder.embedder.audio_encoder."

    def rename(state):
        for key in [k for k in state if k.startswith(original)]:
            state[alias + key[len(original):]] = state.pop(key)

    moved = copy(saved[PeAudioVideoModel], tmp_path / "moved", edit_state=rename)
    PeAudioVideoModel.from_pretrained(moved)
    bad = moved.parent / "bad"
    copy(moved, bad, edit_config=lambda c: fusion(c)["audio_config"].update(num_hidden_layers=2))
    with pytest.raises(CheckpointError, match=re.escape(f"has 1 layer ({alias}layers.0.*)")):
        PeAudioVideoModel.from_pretrained(bad)


def test_a_checkpoint_without_the_stack(saved, tmp_path):
    def drop_layers(state):
        for key in [k for k in state if k.startswith("layers.")]:
            del state[key]

    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_state=drop_layers)
    with pytest.raises(CheckpointError, match=r"num_hidden_layers = 1 but the checkpoint has no layers \(no key starts with 'layers\.'\)"):
        PeAudioEncoder.from_pretrained(bad)


def test_stray_numbered_keys_count_as_layers(saved, tmp_path):
    path = copy(saved[PeAudioEncoder], tmp_path / "bad") / SAFE_WEIGHTS_NAME
    state = load_file(path)
    state["layers.7.extra"] = state["norm.weight"].clone()
    save_file(state, path)
    with pytest.raises(CheckpointError, match=r"num_hidden_layers = 1 but the checkpoint has 2 layers \(layers\.0\.\* to layers\.7\.\*\)"):
        PeAudioEncoder.from_pretrained(path.parent)


def test_config_given_to_from_pretrained_is_checked_too(saved):
    config = PeAudioEncoderConfig.from_dict(json.loads((saved[PeAudioEncoder] / "config.json").read_text()))
    config.num_hidden_layers = 5
    with pytest.raises(CheckpointError, match=r"^config: num_hidden_layers = 5"):
        PeAudioEncoder.from_pretrained(saved[PeAudioEncoder], config=config)
