"""``from_pretrained`` with transformers' keywords: each call runs through transformers and pe_av on the same
tiny checkpoint (a random transformers ``PeAudioEncoder``) and what comes back is compared. Where the two
deliberately differ (README "Drop-in loading"), the test says so and checks pe_av's side."""

from __future__ import annotations

import json
import logging
import shutil
import warnings

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file, save_file

import pe_av
from oracle import transformers
from pe_av import CheckpointError, PeAudioEncoder
from pe_av.dispatch import BackendFallbackWarning

pytestmark = pytest.mark.oracle

TINY = dict(hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=8, dac_config=dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8))
THEIRS = transformers.PeAudioEncoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A float32 checkpoint, a bfloat16 one, and the bfloat16 one without ``dtype`` in config.json."""
    root = tmp_path_factory.mktemp("dropin")
    torch.manual_seed(0)
    model = THEIRS(transformers.PeAudioEncoderConfig(**TINY)).eval()
    model.save_pretrained(root / "f32")
    model.to(torch.bfloat16).save_pretrained(root / "bf16")
    shutil.copytree(root / "bf16", root / "bf16-no-dtype")
    edit_config(root / "bf16-no-dtype", lambda c: c.pop("dtype"))
    return root


def edit_config(directory, edit):
    config = json.loads((directory / "config.json").read_text())
    edit(config)
    (directory / "config.json").write_text(json.dumps(config))


def both(directory, **kwargs):
    return THEIRS.from_pretrained(directory, **kwargs), PeAudioEncoder.from_pretrained(directory, **kwargs)


def same_weights(theirs, ours):
    a, b = theirs.state_dict(), ours.state_dict()
    assert a.keys() == b.keys()
    return all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------------------------
# dtype


@pytest.mark.parametrize("name, edit, kwargs", [
    ("f32", None, {}),
    ("bf16", None, {}),  # transformers 5: dtype="auto" by default, so a bf16 checkpoint loads as bf16
    ("bf16-no-dtype", None, {}),  # no dtype in config.json: the weights' own
    ("f32", lambda c: c.update(dtype="bfloat16"), {}),  # the config's dtype wins over the weights'
    ("f32", lambda c: (c.pop("dtype"), c.update(torch_dtype="float16")), {}),  # the older key
    ("bf16", None, dict(dtype=torch.float32)),
    ("f32", None, dict(torch_dtype=torch.bfloat16)),
    ("f32", None, dict(dtype=torch.float16, torch_dtype=torch.bfloat16)),  # dtype wins
    ("f32", None, dict(dtype="bfloat16")),
    ("bf16", None, dict(dtype=None)),
])
def test_dtype(ckpt, tmp_path, name, edit, kwargs):
    directory = ckpt / name
    if edit is not None:
        directory = shutil.copytree(directory, tmp_path / "edited")
        edit_config(directory, edit)
    theirs, ours = both(directory, **kwargs)
    assert ours.dtype == theirs.dtype
    assert ours.config.dtype == theirs.config.dtype and ours.config.dac_config.dtype == theirs.config.dac_config.dtype
    assert same_weights(theirs, ours)


def test_auto_dtype_of_mixed_weights_is_the_first_floating_one(ckpt, tmp_path):
    directory = shutil.copytree(ckpt / "bf16-no-dtype", tmp_path / "mixed")
    state = load_file(directory / "model.safetensors")
    state["norm.weight"] = state["norm.weight"].float()
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    theirs, ours = both(directory)
    assert ours.dtype == theirs.dtype and {p.dtype for p in ours.parameters()} == {theirs.dtype}


def test_bad_dtype_strings(ckpt):
    for load in (THEIRS.from_pretrained, PeAudioEncoder.from_pretrained):
        with pytest.raises(ValueError):
            load(ckpt / "f32", dtype="int8x")


# --------------------------------------------------------------------------------------------------
# config overrides and the loading report


@pytest.mark.parametrize("kwargs", [
    dict(output_hidden_states=True), dict(return_dict=False), dict(num_labels=5),
    dict(output_attentions=True), dict(dac_config={"codebook_size": 7}), dict(rms_norm_eps=1e-6),
])
def test_config_keywords_override_the_config(ckpt, kwargs):
    theirs, ours = both(ckpt / "f32", **kwargs)
    expected = {k: v for k, v in theirs.config.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
    got = {k: v for k, v in ours.config.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
    assert got == expected


def test_output_attentions_picks_the_eager_backend(ckpt):
    theirs, ours = both(ckpt / "f32", output_attentions=True)
    assert theirs.config._attn_implementation == ours.attn_impl == ours.config._attn_implementation == "eager"


def test_unknown_keyword_goes_to_the_constructor(ckpt):
    for load in (THEIRS.from_pretrained, PeAudioEncoder.from_pretrained):
        with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
            load(ckpt / "f32", foo=1)


def test_keywords_that_change_nothing(ckpt, tmp_path):
    kwargs = dict(low_cpu_mem_usage=True, trust_remote_code=True, revision="v1", cache_dir=str(tmp_path),
                  local_files_only=True, force_download=False, use_safetensors=True, token=None)
    theirs, ours = both(ckpt / "f32", **kwargs)
    assert same_weights(theirs, ours)


def test_use_safetensors_false_with_only_safetensors(ckpt):
    for load in (THEIRS.from_pretrained, PeAudioEncoder.from_pretrained):
        with pytest.raises(OSError, match="Error no file named model.safetensors, or pytorch_model.bin"):
            load(ckpt / "f32", use_safetensors=False)


def test_output_loading_info(ckpt):
    (theirs, a), (ours, b) = both(ckpt / "f32", output_loading_info=True)
    assert a == b == {"missing_keys": set(), "unexpected_keys": set(), "mismatched_keys": set(), "error_msgs": []}


def test_ignore_mismatched_sizes(ckpt, caplog):
    (theirs, a), (ours, b) = both(ckpt / "f32", intermediate_size=48, ignore_mismatched_sizes=True, output_loading_info=True)
    assert a["mismatched_keys"] == b["mismatched_keys"] and len(b["mismatched_keys"]) == 6
    assert "MISMATCH" in caplog.text and "layers.0.mlp.up_proj.weight" in caplog.text
    stored = load_file(ckpt / "f32" / "model.safetensors")
    for key, value in ours.state_dict().items():
        if value.shape == stored[key].shape:
            assert torch.equal(value, stored[key]), key
        else:  # re-initialised as the model initialises it (std 0.02), as transformers does
            assert value.shape[-1] == 48 or value.shape[0] == 48
            assert 0.01 < value.std().item() < 0.03
    # without the flag a shape mismatch stops both (transformers: RuntimeError; pe_av: CheckpointError, a ValueError)
    with pytest.raises(RuntimeError):
        THEIRS.from_pretrained(ckpt / "f32", intermediate_size=48)
    with pytest.raises(CheckpointError, match="intermediate_size = 48 does not match the checkpoint"):
        PeAudioEncoder.from_pretrained(ckpt / "f32", intermediate_size=48)


def test_a_layer_count_override_is_an_error_here(ckpt):
    """Deliberate difference: transformers loads what fits and reports the rest as UNEXPECTED; pe_av is strict."""
    assert len(THEIRS.from_pretrained(ckpt / "f32", num_hidden_layers=1).layers) == 1
    with pytest.raises(CheckpointError, match="num_hidden_layers = 1 but the checkpoint has 2 layers"):
        PeAudioEncoder.from_pretrained(ckpt / "f32", num_hidden_layers=1)


# --------------------------------------------------------------------------------------------------
# names, configs, state dicts


def test_name_or_path(ckpt):
    for path in (ckpt / "f32", str(ckpt / "f32")):
        theirs, ours = both(path)
        assert ours.name_or_path == theirs.name_or_path == ours.config.name_or_path == theirs.config._name_or_path
        assert ours.config._name_or_path == str(path)


def test_config_objects_and_state_dicts(ckpt):
    hf_config = transformers.PeAudioEncoderConfig.from_pretrained(ckpt / "f32")
    theirs, ours = both(ckpt / "f32", config=hf_config)  # a transformers config object is converted
    assert same_weights(theirs, ours) and isinstance(ours.config, pe_av.PeAudioEncoderConfig)
    state = load_file(ckpt / "f32" / "model.safetensors")
    theirs = THEIRS.from_pretrained(None, config=hf_config, state_dict=state)
    ours = PeAudioEncoder.from_pretrained(None, config=hf_config, state_dict=state)
    assert same_weights(theirs, ours)
    for load in (THEIRS.from_pretrained, PeAudioEncoder.from_pretrained):
        with pytest.raises(ValueError, match="`state_dict` cannot be passed together with a model name"):
            load(ckpt / "f32", state_dict=state)


def test_subfolder(ckpt, tmp_path):
    shutil.copytree(ckpt / "f32", tmp_path / "repo" / "encoder")
    theirs, ours = both(tmp_path / "repo", subfolder="encoder")
    assert same_weights(theirs, ours)


def test_saved_files_match_transformers(ckpt, tmp_path):
    theirs, ours = both(ckpt / "f32")
    theirs.save_pretrained(tmp_path / "theirs")
    ours.save_pretrained(tmp_path / "ours")
    a, b = (json.loads((tmp_path / side / "config.json").read_text()) for side in ("theirs", "ours"))
    assert b == a  # transformers_version too: pe_av writes back the version it read
    assert load_file(tmp_path / "ours" / "model.safetensors").keys() == load_file(tmp_path / "theirs" / "model.safetensors").keys()


# --------------------------------------------------------------------------------------------------
# attention backends


@pytest.mark.parametrize("name", ["flash_attention_2", "flex_attention", "kernels-community/flash-attn", "paged|sdpa"])
def test_transformers_backends_we_do_not_have(ckpt, name):
    with pytest.warns(BackendFallbackWarning, match="attn_implementation"):
        model = PeAudioEncoder.from_pretrained(ckpt / "f32", attn_implementation=name)
    assert model.attn_impl == ("sdpa" if name.startswith("paged|") else pe_av.dispatch.default_backend("cpu"))
    with warnings.catch_warnings(record=True) as records:  # once per name
        warnings.simplefilter("always")
        PeAudioEncoder.from_pretrained(ckpt / "f32", attn_implementation=name)
    assert not [w for w in records if issubclass(w.category, BackendFallbackWarning)]


def test_backends_transformers_accepts(ckpt):
    for name in ("flex_attention", "paged|sdpa", "eager", "sdpa"):
        THEIRS.from_pretrained(ckpt / "f32", attn_implementation=name)
    for load in (THEIRS.from_pretrained, PeAudioEncoder.from_pretrained):
        with pytest.raises(ValueError):
            load(ckpt / "f32", attn_implementation="bogus")


# --------------------------------------------------------------------------------------------------
# device_map


def transformers_device(device_map, monkeypatch):
    """Where transformers' own normalisation puts a single-device map (accelerate is not installed here)."""
    import transformers.integrations.accelerate as acc

    monkeypatch.setattr(acc, "is_accelerate_available", lambda: True)
    result = acc.check_and_set_device_map(device_map)
    value = result[""] if isinstance(result, dict) else result
    return torch.device("cuda", value) if isinstance(value, int) else torch.device(value)


@pytest.mark.parametrize("device_map", ["cpu", torch.device("cpu"), {"": "cpu"}, {"": torch.device("cpu")}])
def test_device_map_single_device(ckpt, device_map, monkeypatch):
    assert transformers_device(device_map, monkeypatch) == torch.device("cpu")
    assert PeAudioEncoder.from_pretrained(ckpt / "f32", device_map=device_map).device == torch.device("cpu")


def test_device_map_auto_and_errors(ckpt, monkeypatch):
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert PeAudioEncoder.from_pretrained(ckpt / "f32", device_map="auto").device == expected
    assert transformers_device(0, monkeypatch) == torch.device("cuda", 0)
    for bad in (-1, "gpu-zero"):
        with pytest.raises(ValueError):
            transformers_device(bad, monkeypatch)
        with pytest.raises(ValueError):
            PeAudioEncoder.from_pretrained(ckpt / "f32", device_map=bad)
    with pytest.raises(ValueError, match="pe_av loads a model onto one device"):
        PeAudioEncoder.from_pretrained(ckpt / "f32", device_map={"layers": "cpu", "norm": "cpu"})
    with pytest.raises(ValueError, match="disagree"):
        PeAudioEncoder.from_pretrained(ckpt / "f32", device="cpu", device_map={"": "cpu:1"})


# --------------------------------------------------------------------------------------------------
# the hub, without the network


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import by both libraries
    return tmp_path / "empty-cache"


def test_offline_unknown_hub_id(offline):
    with pytest.raises(OSError):
        THEIRS.from_pretrained("made-up-org/made-up-pe-av", cache_dir=offline)
    with pytest.raises(OSError, match=r"'made-up-org/made-up-pe-av' is not a local directory .*HF_HUB_OFFLINE=1"):
        PeAudioEncoder.from_pretrained("made-up-org/made-up-pe-av", cache_dir=offline)


def test_local_files_only_unknown_hub_id(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(OSError, match=r"'made-up-org/made-up-pe-av' .*local_files_only=True"):
        PeAudioEncoder.from_pretrained("made-up-org/made-up-pe-av", cache_dir=tmp_path, local_files_only=True)


def test_hub_keywords_reach_huggingface_hub(ckpt, tmp_path, monkeypatch):
    shutil.copytree(ckpt / "f32", tmp_path / "snapshot" / "enc")
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = PeAudioEncoder.from_pretrained("some-org/pe-av-tiny", revision="abc123", cache_dir=str(tmp_path / "c"),
                                           token="t0k", subfolder="enc", local_files_only=True)
    assert model.name_or_path == "some-org/pe-av-tiny"
    repo, kwargs = calls[0]
    assert repo == "some-org/pe-av-tiny" and kwargs["revision"] == "abc123" and kwargs["token"] == "t0k"
    assert kwargs["cache_dir"] == str(tmp_path / "c") and kwargs["local_files_only"] is True
    assert all(p.startswith("enc/") for p in kwargs["allow_patterns"]) and not any("bin" in p for p in kwargs["allow_patterns"])


def test_torch_dtype_keyword_warns_in_neither(ckpt, caplog):
    caplog.set_level(logging.WARNING)
    both(ckpt / "f32", torch_dtype=torch.float32)
    assert "deprecated" not in caplog.text


def test_fine_tuning_a_vit_head(tmp_path):
    """The classifier recipe: a new ``num_labels`` with ``ignore_mismatched_sizes``; transformers then loads the result."""
    from tiny_configs import VIT

    torch.manual_seed(0)
    transformers.TimmWrapperForImageClassification(transformers.TimmWrapperConfig(**VIT)).save_pretrained(tmp_path / "vit")
    kwargs = dict(num_labels=10, ignore_mismatched_sizes=True, output_loading_info=True)
    theirs, a = transformers.TimmWrapperForImageClassification.from_pretrained(tmp_path / "vit", **kwargs)
    ours, b = pe_av.PeVisionModel.from_pretrained(tmp_path / "vit", **kwargs)
    assert a["mismatched_keys"] == b["mismatched_keys"] and len(b["mismatched_keys"]) == 2
    assert ours.config.num_labels == theirs.config.num_labels == ours.num_classes == 10
    ours.save_pretrained(tmp_path / "tuned")
    back = transformers.TimmWrapperForImageClassification.from_pretrained(tmp_path / "tuned")
    assert back.config.num_labels == 10 and torch.equal(back.timm_model.head.weight, ours.timm_model.head.weight)
