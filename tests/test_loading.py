"""Loader: strict key/shape checks, sharded files, tied weights, dtype/device, saving for transformers."""

import json
import os

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from oracle import FP32_ATOL, build_reference, max_abs_diff, transformers, reference_padding
from pe_av import CheckpointError, PeAudioEncoder, PeAudioEncoderConfig
from pe_av.models import PePreTrainedModel

pytestmark = pytest.mark.oracle

TINY = dict(
    hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=8, dac_config=dict(encoder_hidden_size=4, downsampling_ratios=[2, 3], codebook_dim=8),
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build_reference(
        transformers.PeAudioEncoder, transformers.PeAudioEncoderConfig(**TINY), tmp_path_factory.mktemp("ref")
    )


def audio_batch():
    x = torch.randn(2, 1, 48)
    mask = torch.ones(2, 48, dtype=torch.long)
    mask[1, 20:] = 0
    return x, mask


def copy_checkpoint(src, dst, edit=None):
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as fh:
        (dst / "config.json").write_text(fh.read())
    state = load_file(os.path.join(src, "model.safetensors"))
    if edit is not None:
        edit(state)
    save_file(state, str(dst / "model.safetensors"))
    return dst


def test_sharded_checkpoint_loads(reference, tmp_path):
    ref, _ = reference
    ref.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    ours = reference_padding(PeAudioEncoder.from_pretrained(tmp_path))
    x, mask = audio_batch()
    with torch.no_grad():
        assert max_abs_diff(ref(x, padding_mask=mask).pooler_output, ours(x, padding_mask=mask).pooler_output) <= FP32_ATOL


@pytest.mark.parametrize("shard", [None, "10KB"])
def test_transformers_loads_what_we_save(reference, tmp_path, shard):
    ref, directory = reference
    ours = reference_padding(PeAudioEncoder.from_pretrained(directory))
    ours.save_pretrained(tmp_path, max_shard_size=shard)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["PeAudioEncoder"]
    back = transformers.PeAudioEncoder.from_pretrained(tmp_path).eval()
    x, mask = audio_batch()
    with torch.no_grad():
        a, b = ref(x, padding_mask=mask), back(x, padding_mask=mask)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    reloaded = PeAudioEncoder.from_pretrained(tmp_path)
    for (k1, v1), (k2, v2) in zip(sorted(ours.state_dict().items()), sorted(reloaded.state_dict().items())):
        assert k1 == k2 and torch.equal(v1, v2)


def test_missing_key_is_named(reference, tmp_path):
    _, directory = reference
    bad = copy_checkpoint(directory, tmp_path / "bad", lambda s: s.pop("layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"missing keys: layers\.1\.mlp\.up_proj\.weight"):
        PeAudioEncoder.from_pretrained(bad)


def test_unexpected_key_is_named(reference, tmp_path):
    _, directory = reference

    def add(state):
        state["layers.1.mlp.extra_proj.weight"] = torch.zeros(3)

    bad = copy_checkpoint(directory, tmp_path / "bad", add)
    with pytest.raises(CheckpointError, match=r"unexpected keys: layers\.1\.mlp\.extra_proj\.weight"):
        PeAudioEncoder.from_pretrained(bad)


def test_shape_mismatch_is_named(reference, tmp_path):
    _, directory = reference
    bad = copy_checkpoint(directory, tmp_path / "bad", lambda s: s.update({"norm.weight": torch.ones(31)}))
    with pytest.raises(CheckpointError, match=r"shape mismatch for 'norm\.weight': checkpoint has \(31,\).*\(32,\)"):
        PeAudioEncoder.from_pretrained(bad)


def test_config_weights_mismatch(reference, tmp_path):
    _, directory = reference
    bad = copy_checkpoint(directory, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    config["num_hidden_layers"] = 3
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: num_hidden_layers = 3 but the checkpoint has 2 layers "
                                              r"\(layers\.0\.\* to layers\.1\.\*\)"):
        PeAudioEncoder.from_pretrained(bad)


def test_truncated_file(reference, tmp_path):
    _, directory = reference
    bad = copy_checkpoint(directory, tmp_path / "bad")
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        PeAudioEncoder.from_pretrained(bad)


def test_pickle_only_is_refused(reference, tmp_path):
    _, directory = reference
    (tmp_path / "config.json").write_text((directory / "config.json").read_text())
    torch.save({"note": "never unpickle me"}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only pickle weights"):
        PeAudioEncoder.from_pretrained(tmp_path)


def test_wrong_model_type(reference, tmp_path):
    _, directory = reference
    bad = copy_checkpoint(directory, tmp_path / "bad")
    config = json.loads((bad / "config.json").read_text())
    config["model_type"] = "pe_video_encoder"
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not 'pe_audio_encoder'"):
        PeAudioEncoder.from_pretrained(bad)
    config["model_type"] = "llama"
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unknown model_type 'llama'"):
        PeAudioEncoder.from_pretrained(bad)


def test_missing_directory_and_file_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PeAudioEncoder.from_pretrained(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        PeAudioEncoder.from_pretrained(tmp_path / "file")


def test_dtype_and_backend_arguments(reference):
    _, directory = reference
    model = PeAudioEncoder.from_pretrained(directory, dtype=torch.bfloat16, attn_implementation="eager")
    assert model.dtype == torch.bfloat16 and model.attn_impl == "eager"
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    model = PeAudioEncoder.from_pretrained(directory, dtype="auto")
    assert model.dtype == torch.float32
    with pytest.raises(ValueError, match="attn_impl must be one of"):
        PeAudioEncoder.from_pretrained(directory, attn_impl="flash")
    with pytest.raises(ValueError, match="disagree"):
        PeAudioEncoder.from_pretrained(directory, attn_impl="eager", attn_implementation="sdpa")
    with pytest.raises(ValueError, match="dtype 'int8' is not supported"):
        PeAudioEncoder.from_pretrained(directory, dtype="int8")
    with pytest.raises(ValueError, match="floating point"):
        PeAudioEncoder.from_pretrained(directory, dtype=torch.int32)


def test_runtime_backend_switch_keeps_numbers(reference):
    _, directory = reference
    model = PeAudioEncoder.from_pretrained(directory, attn_impl="eager")
    x, mask = audio_batch()
    with torch.no_grad():
        eager = model(x, padding_mask=mask).last_hidden_state
        model.set_attn_impl("sdpa")
        assert model.attn_impl == "sdpa"
        assert {m.backend for m in model.modules() if hasattr(m, "backend")} == {"sdpa"}
        sdpa = model(x, padding_mask=mask).last_hidden_state
    assert max_abs_diff(eager, sdpa) <= 1e-5
    with pytest.raises(ValueError, match="attn_impl must be one of"):
        model.set_attn_impl("fast")


class _TiedToy(PePreTrainedModel):
    """Two sub-models sharing one module, like PeAudioVideoModel's towers."""

    config_class = PeAudioEncoderConfig
    tied_prefixes = {"copy.": "original."}

    def __init__(self, config):
        super().__init__(config)
        self.original = nn.Linear(3, 4)
        self.copy = self.original
        self.other = nn.Linear(4, 2)


def test_tied_weights_saved_once_and_shared_on_load(tmp_path):
    toy = _TiedToy(PeAudioEncoderConfig(**TINY))
    toy.save_pretrained(tmp_path)
    keys = set(load_file(str(tmp_path / "model.safetensors")))
    assert keys == {"original.weight", "original.bias", "other.weight", "other.bias"}
    loaded = _TiedToy.from_pretrained(tmp_path)
    assert loaded.copy.weight is loaded.original.weight
    assert torch.equal(loaded.copy.weight, toy.original.weight)


def test_model_built_from_config_has_reference_init():
    model = PeAudioEncoder(PeAudioEncoderConfig(**TINY))
    assert torch.equal(model.norm.weight, torch.ones(32))
    assert model.layers[0].self_attn.q_proj.weight.std().item() == pytest.approx(0.02, rel=0.3)
    assert model.patch_embedder.class_embedding.abs().sum() > 0
