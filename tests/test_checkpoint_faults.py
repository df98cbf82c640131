"""Broken checkpoints give clear errors (``pe_av.CheckpointError``, a ``ValueError``, naming the file or
keys), and pickle files are never unpickled.

Checkpoints here are written by pe_av itself from tiny random models (tests/tiny_configs.py), so this
file needs no transformers; tests/test_loading.py covers the same loader on transformers' own files.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from pe_av import CheckpointError, PeAudioEncoder, PeAudioVideoModel
from pe_av.loading import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME
from checkpoint_files import MODEL_CLASSES, copy, first_key
from tiny_configs import build

# --------------------------------------------------------------------------------------------------
# every model class: missing, unexpected and misshapen keys are named


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_each_class_loads_its_own_checkpoint(saved, cls):
    model = cls.from_pretrained(saved[cls])
    assert type(model) is cls
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), build(cls).state_dict().values()))


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_each_class_names_a_missing_key(saved, cls, tmp_path):
    key = first_key(saved[cls])
    bad = copy(saved[cls], tmp_path / "bad", edit_state=lambda s: s.pop(key))
    with pytest.raises(CheckpointError, match=rf"does not match {cls.__name__} .*missing keys: .*{key}"):
        cls.from_pretrained(bad)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_each_class_names_an_unexpected_key(saved, cls, tmp_path):
    bad = copy(saved[cls], tmp_path / "bad", edit_state=lambda s: s.update({"stray.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=rf"does not match {cls.__name__} .*unexpected keys: stray\.extra\.weight"):
        cls.from_pretrained(bad)


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_each_class_names_a_shape_mismatch(saved, cls, tmp_path):
    key = first_key(saved[cls])

    def widen(state):
        state[key] = torch.cat([state[key], state[key]])

    bad = copy(saved[cls], tmp_path / "bad", edit_state=widen)
    with pytest.raises(CheckpointError, match=rf"shape mismatch for '{key}'"):
        cls.from_pretrained(bad)


def test_missing_tied_weight_names_every_alias(saved, tmp_path):
    """A tied weight is stored once; without it, the error lists the key under each name it has."""
    cls = PeAudioVideoModel
    key = "text_model.embeddings.tok_embeddings.weight"
    bad = copy(saved[cls], tmp_path / "bad", edit_state=lambda s: s.pop(key))
    with pytest.raises(CheckpointError, match=r"missing keys: .*audio_model\.text_model\.embeddings\.tok_embeddings"):
        cls.from_pretrained(bad)


# --------------------------------------------------------------------------------------------------
# damaged files


@pytest.mark.parametrize("keep", [0, 4, 8, 100, -1000, -1])
def test_truncated_safetensors(saved, tmp_path, keep):
    """Cut inside the length prefix, the JSON header, or the tensor data: always a CheckpointError."""
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad")
    path = bad / SAFE_WEIGHTS_NAME
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match=r"cannot read .*model\.safetensors"):
        PeAudioEncoder.from_pretrained(bad)


def test_garbage_and_pickle_named_safetensors(saved, tmp_path):
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad")
    (bad / SAFE_WEIGHTS_NAME).write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="cannot read"):
        PeAudioEncoder.from_pretrained(bad)
    marker = tmp_path / "unpickled"
    (bad / SAFE_WEIGHTS_NAME).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="cannot read"):
        PeAudioEncoder.from_pretrained(bad)
    assert not marker.exists()


def test_weights_of_a_non_float_dtype(saved, tmp_path):
    def to_int(state):
        state["norm.weight"] = state["norm.weight"].to(torch.int32)

    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_state=to_int)
    with pytest.raises(CheckpointError, match=r"dtype mismatch for 'norm\.weight': checkpoint has torch\.int32"):
        PeAudioEncoder.from_pretrained(bad)


def test_mixed_float_dtypes_load_as_one_dtype(saved, tmp_path):
    """dtype="auto" (the default) with no dtype in config.json: every tensor is cast to the first floating
    tensor's dtype, as transformers does (tests/test_dropin_loading.py compares the choice with it)."""
    def half_one(state):
        state["norm.weight"] = state["norm.weight"].half()

    def drop_dtype(config):
        config.pop("dtype", None)
        config.pop("torch_dtype", None)

    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_state=half_one, edit_config=drop_dtype)
    model = PeAudioEncoder.from_pretrained(bad)
    assert len({p.dtype for p in model.parameters()}) == 1 and model.config.dtype == model.dtype
    model = PeAudioEncoder.from_pretrained(bad, dtype=torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


# --------------------------------------------------------------------------------------------------
# pickles are refused and never unpickled


class _Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): proof that a file was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_payload_would_show_if_unpickled(tmp_path):
    """Control for the tests below: unpickling the payload does create its marker file."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything calls an unpickler while loading."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(module, name, forbidden)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "model.ckpt"])
def test_pickle_only_checkpoint_is_refused_unread(saved, tmp_path, no_unpickling, name):
    marker = tmp_path / "unpickled"
    directory = tmp_path / "pickled"
    directory.mkdir()
    shutil.copy(saved[PeAudioEncoder] / "config.json", directory)
    (directory / name).write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(CheckpointError, match=rf"holds only pickle weights \({name}\).*never unpickles"):
        PeAudioEncoder.from_pretrained(directory)
    assert not marker.exists()


def test_sharded_pickle_index_is_refused(saved, tmp_path, no_unpickling):
    marker = tmp_path / "unpickled"
    directory = tmp_path / "pickled"
    directory.mkdir()
    shutil.copy(saved[PeAudioEncoder] / "config.json", directory)
    (directory / "pytorch_model-00001-of-00001.bin").write_bytes(pickle.dumps(_Payload(marker)))
    (directory / "pytorch_model.bin.index.json").write_text(
        json.dumps({"weight_map": {"norm.weight": "pytorch_model-00001-of-00001.bin"}})
    )
    with pytest.raises(CheckpointError, match="only pickle weights"):
        PeAudioEncoder.from_pretrained(directory)
    assert not marker.exists()


def test_pickle_beside_safetensors_is_ignored(saved, tmp_path, no_unpickling):
    marker = tmp_path / "unpickled"
    directory = copy(saved[PeAudioEncoder], tmp_path / "both")
    (directory / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    model = PeAudioEncoder.from_pretrained(directory)
    assert torch.equal(model.norm.weight, build(PeAudioEncoder).norm.weight)
    assert not marker.exists()


def test_no_weights_at_all(saved, tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    shutil.copy(saved[PeAudioEncoder] / "config.json", directory)
    with pytest.raises(CheckpointError, match=r"no model\.safetensors or model\.safetensors\.index\.json"):
        PeAudioEncoder.from_pretrained(directory)


# --------------------------------------------------------------------------------------------------
# sharded checkpoints


def edit_index(directory, edit):
    path = directory / SAFE_WEIGHTS_INDEX_NAME
    index = json.loads(path.read_text())
    result = edit(index)
    path.write_text(result if isinstance(result, str) else json.dumps(index))


def a_shard(index):
    return sorted(set(index["weight_map"].values()))[0]


def test_sharded_checkpoint_loads(saved):
    shards = [p for p in os.listdir(saved["sharded"]) if p.endswith(".safetensors")]
    assert len(shards) > 1
    model = PeAudioEncoder.from_pretrained(saved["sharded"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), build(PeAudioEncoder).state_dict().values()))


def set_weight_map(value):
    def edit(index):
        index["weight_map"] = value

    return edit


def map_values(fn):
    def edit(index):
        index["weight_map"] = {key: fn(shard) for key, shard in index["weight_map"].items()}

    return edit


@pytest.mark.parametrize(
    "edit, regex",
    [
        pytest.param(lambda i: "{ broken", r"index\.json is not a valid safetensors index", id="broken-json"),
        pytest.param(lambda i: "[1, 2]", r"index\.json is not a valid safetensors index", id="not-an-object"),
        pytest.param(lambda i: i.pop("weight_map"), r"index\.json is not a valid safetensors index \(needs a 'weight_map'\)", id="no-weight-map"),
        pytest.param(set_weight_map([]), r"'weight_map' must map tensor names to shard file names", id="weight-map-list"),
        pytest.param(map_values(lambda s: 3), r"'weight_map' must map tensor names to shard file names", id="shard-int"),
        pytest.param(map_values(lambda s: {}), r"'weight_map' must map tensor names to shard file names", id="shard-dict"),
        pytest.param(map_values(lambda s: "model-00099-of-00099.safetensors"), r"names shard files that do not exist: \['model-00099-of-00099\.safetensors'\]", id="shard-missing"),
        pytest.param(map_values(lambda s: "../sharded/" + s), r"names shard files outside its directory", id="shard-dotdot"),
        pytest.param(map_values(lambda s: "/etc/" + s), r"names shard files outside its directory", id="shard-absolute"),
        pytest.param(lambda i: i["weight_map"].update({"ghost.weight": a_shard(i)}), r"names keys that no shard holds: ghost\.weight", id="key-in-no-shard"),
    ],
)
def test_broken_index(saved, tmp_path, edit, regex):
    bad = copy(saved["sharded"], tmp_path / "bad")
    edit_index(bad, edit)
    with pytest.raises(CheckpointError, match=regex):
        PeAudioEncoder.from_pretrained(bad)


def test_shard_file_deleted_or_truncated(saved, tmp_path):
    bad = copy(saved["sharded"], tmp_path / "deleted")
    shard = a_shard(json.loads((bad / SAFE_WEIGHTS_INDEX_NAME).read_text()))
    (bad / shard).unlink()
    with pytest.raises(CheckpointError, match=rf"names shard files that do not exist: \['{shard}'\]"):
        PeAudioEncoder.from_pretrained(bad)
    bad = copy(saved["sharded"], tmp_path / "truncated")
    (bad / shard).write_bytes((bad / shard).read_bytes()[:50])
    with pytest.raises(CheckpointError, match=rf"cannot read .*{shard}"):
        PeAudioEncoder.from_pretrained(bad)


def test_key_in_two_shards(saved, tmp_path):
    bad = copy(saved["sharded"], tmp_path / "bad")
    shards = sorted(p for p in os.listdir(bad) if p.endswith(".safetensors"))
    first, second = (load_file(str(bad / s)) for s in shards[:2])
    key = sorted(first)[0]
    second[key] = first[key]
    save_file(second, str(bad / shards[1]))
    with pytest.raises(CheckpointError, match=rf"key '{key}' appears in more than one shard"):
        PeAudioEncoder.from_pretrained(bad)


# --------------------------------------------------------------------------------------------------
# from_pretrained's own arguments


@pytest.mark.parametrize("kwargs, error, regex", [
    (dict(dtype="int8"), ValueError, r"dtype 'int8' is not supported"),
    (dict(dtype="float8"), ValueError, r"dtype 'float8' is not supported"),
    (dict(dtype="torch.int64"), ValueError, r"dtype 'torch\.int64' is not supported"),
    (dict(dtype=torch.int32), ValueError, "dtype must be a floating point type"),
    (dict(dtype=16), TypeError, "dtype must be a torch.dtype, a string or None"),
    (dict(attn_impl="flash"), ValueError, "attn_impl must be one of"),
    (dict(attn_impl=1), TypeError, "attn_impl must be a string"),
    (dict(attn_impl="eager", attn_implementation="sdpa"), ValueError, "disagree"),
    (dict(device="gpu0"), ValueError, "device 'gpu0' is not a valid torch device"),
    (dict(device="meta"), ValueError, "device='meta' cannot hold loaded weights"),
    (dict(device=1.5), TypeError, "device must be a torch.device"),
    (dict(config=[1]), TypeError, "config must be a PeAudioEncoderConfig"),
])
def test_bad_from_pretrained_arguments(saved, kwargs, error, regex):
    with pytest.raises(error, match=regex):
        PeAudioEncoder.from_pretrained(saved[PeAudioEncoder], **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(saved):
    with pytest.raises(ValueError, match="'cuda' was asked for but CUDA is not available"):
        PeAudioEncoder.from_pretrained(saved[PeAudioEncoder], device="cuda")


@pytest.mark.parametrize("path, error, regex", [
    (None, TypeError, "expects a directory path"),
    (42, TypeError, "expects a directory path"),
    ("does/not/exist/anywhere/here", FileNotFoundError, "does not exist|not a local directory"),
])
def test_bad_paths(path, error, regex):
    with pytest.raises(error, match=regex):
        PeAudioEncoder.from_pretrained(path)


def test_a_file_instead_of_a_directory(saved):
    with pytest.raises(NotADirectoryError, match="from_pretrained expects a directory"):
        PeAudioEncoder.from_pretrained(saved[PeAudioEncoder] / "config.json")


# --------------------------------------------------------------------------------------------------
# non-finite weights


def first_float_key(directory) -> str:
    state = load_file(os.path.join(directory, SAFE_WEIGHTS_NAME))
    return sorted(k for k, t in state.items() if t.is_floating_point() and t.numel() > 1)[0]


@pytest.mark.parametrize("cls", MODEL_CLASSES, ids=lambda c: c.__name__)
def test_nan_weights_are_refused_unless_asked(saved, cls, tmp_path):
    key = first_float_key(saved[cls])

    def poison(state):
        state[key] = state[key].clone()
        state[key].view(-1)[1] = float("nan")

    bad = copy(saved[cls], tmp_path / "bad", edit_state=poison)
    with pytest.raises(CheckpointError, match=rf"non-finite weights \(NaN or Inf\) in 1 tensor\(s\): {re.escape(key)}; "
                                              r"pass check_weights=False"):
        cls.from_pretrained(bad)
    model = cls.from_pretrained(bad, check_weights=False)
    assert torch.isnan(model.state_dict()[key]).sum() == 1


def test_all_nan_and_inf_weights(saved, tmp_path):
    def poison(state):
        for i, key in enumerate(sorted(state)):
            state[key] = torch.full_like(state[key], float("nan") if i % 2 else float("-inf"))

    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_state=poison)
    count = len(load_file(os.path.join(bad, SAFE_WEIGHTS_NAME)))
    with pytest.raises(CheckpointError, match=rf"in {count} tensor\(s\): (\S+, ){{5}}\.\.\. \({count - 5} more\)"):
        PeAudioEncoder.from_pretrained(bad)


def test_a_cast_that_overflows_is_named(saved, tmp_path):
    def large(state):
        state["norm.weight"] = torch.full_like(state["norm.weight"], 1e6)

    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_state=large)
    assert torch.equal(PeAudioEncoder.from_pretrained(bad).norm.weight, torch.full((24,), 1e6))
    with pytest.raises(CheckpointError, match=r"norm\.weight \(finite as stored: casting norm\.weight to torch\.float16 overflows\)"):
        PeAudioEncoder.from_pretrained(bad, dtype=torch.float16)


def test_check_weights_must_be_a_bool(saved):
    with pytest.raises(TypeError, match="check_weights must be True or False"):
        PeAudioEncoder.from_pretrained(saved[PeAudioEncoder], check_weights="no")
