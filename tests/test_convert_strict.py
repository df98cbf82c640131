"""``pe_av.convert_original`` refuses what it cannot convert faithfully, naming the key or option, and
writes atomically: ``pe-av convert`` through the command line, ``--overwrite``, failures leave no trace."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from oracle import transformers  # noqa: F401  (transformers' DAC and ModernBERT build the original)
from original_checkpoints import av_config, build_original, frame_config, write_original

import pe_av
from pe_av.cli import main
from pe_av.convert import ConversionError, OriginalConfigError

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def frame_state():
    return build_original("frame").state_dict()


@pytest.fixture(scope="module")
def av_state():
    return build_original("av").state_dict()


def _write(tmp_path, state, config, name="original"):
    return write_original(None, config, tmp_path / name, state=state, tokenizer=False)


def _convert(src, dst, **kw):
    return pe_av.convert_original(src, dst, verify=False, progress=False, **kw)


def test_unknown_key_is_named(tmp_path, av_state):
    state = dict(av_state, **{"audio_visual_model.visual_model.pe_encoder.transformer.resblocks.0.ls_1.gamma":
                              torch.ones(192)})
    with pytest.raises(ConversionError, match=r"unknown keys.*resblocks\.0\.ls_1\.gamma"):
        _convert(_write(tmp_path, state, av_config()), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["audio_visual_model.visual_model.pe_encoder.attn_pool.probe",
                                 "audio_visual_model.audio_visual_transformer.modality_aligner.conv.bias",
                                 "visual_plus_text_head.proj.weight"])
def test_missing_key_is_named(tmp_path, av_state, key):
    state = {k: v for k, v in av_state.items() if k != key}
    with pytest.raises(ConversionError, match="lacks weights.*" + key.replace(".", r"\.")):
        _convert(_write(tmp_path, state, av_config()), tmp_path / "out")


def test_shape_mismatch_is_named(tmp_path, frame_state):
    key = "audio_model.audio_transformer.layers.0.mlp.up_proj.weight"
    state = dict(frame_state, **{key: torch.zeros(31, 24)})
    with pytest.raises(ConversionError, match=r"shape mismatch for '" + key.replace(".", r"\.") + r"'.*\(31, 24\)"):
        _convert(_write(tmp_path, state, frame_config()), tmp_path / "out")


def test_bottleneck_of_the_wrong_size_is_named(tmp_path, frame_state):
    key = "audio_model.dac_vae_encoder.bottleneck.in_proj.weight"
    state = dict(frame_state, **{key: torch.zeros(6, 8, 1)})
    with pytest.raises(ValueError, match=key.replace(".", r"\.") + ".*2 × codebook_dim = 8"):
        _convert(_write(tmp_path, state, frame_config()), tmp_path / "out")


def _edit(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


@pytest.mark.parametrize(("path", "value", "message"), [
    (("audio_visual_model", "visual_model", "pe_encoder"), "PE-Lang-L14-448", r"pe_encoder='PE-Lang-L14-448'"),
    (("audio_visual_model", "audio_visual_transformer", "rope_scaling"), {"factor": 2.0}, r"rope_scaling"),
    (("audio_visual_model", "audio_model", "audio_transformer", "num_key_value_heads"), 1, r"num_key_value_heads=1"),
    (("audio_visual_model", "audio_model", "audio_transformer", "head_dim"), 7, r"head_dim=7"),
    (("audio_visual_model", "audio_model", "audio_transformer", "sliding_window"), 4, r"\['sliding_window'\]"),
    (("audio_visual_model", "visual_model", "frame_stride"), 2, r"visual_model.*\['frame_stride'\]"),
    (("nth_text_layer",), 0, r"nth_text_layer=0"),
    (("nth_text_layer",), 9, r"nth_text_layer=9"),
    (("output_dim",), 32, r"output_dim=32"),
    (("audio_visual_model", "audio_model", "dac_vae_encoder", "codebook_size"), 16, r"codebook_size \(16\)"),
])
def test_unsupported_options_are_named(tmp_path, av_state, path, value, message):
    with pytest.raises(OriginalConfigError, match=message):
        _convert(_write(tmp_path, av_state, _edit(av_config(), path, value)), tmp_path / "out")


def test_nth_text_layer_variants(tmp_path, frame_state):
    # the last layer (or -1): the whole tower and its final norm, as transformers' default
    for nth in (3, -1):
        out = tmp_path / f"nth{nth}"
        _convert(_write(tmp_path, frame_state, dict(frame_config(), nth_text_layer=nth), f"o{nth}"), out)
        text = pe_av.load_config(out).text_config
        assert text.num_hidden_layers == 3 and text.tie_last_hidden_states is True
    out = tmp_path / "nth-2"  # -2: the second-last entry of hidden_states, layer 2's output
    _convert(_write(tmp_path, frame_state, dict(frame_config(), nth_text_layer=-2), "o-2"), out)
    assert pe_av.load_config(out).text_config.num_hidden_layers == 2


def test_not_an_original_checkpoint(tmp_path):
    from tiny_configs import build

    build(pe_av.PeAudioModel).save_pretrained(tmp_path / "ours")
    with pytest.raises(OriginalConfigError, match="not an original PE-AV checkpoint"):
        _convert(tmp_path / "ours", tmp_path / "out")


def test_bad_arguments(tmp_path, frame_state):
    src = _write(tmp_path, frame_state, frame_config())
    with pytest.raises(ValueError, match="dtype must be one of"):
        _convert(src, tmp_path / "out", dtype="int8")
    with pytest.raises(FileNotFoundError, match="src must be a folder"):
        _convert(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(ValueError, match="dst must differ from src"):
        _convert(src, src, overwrite=True)


def _cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        status = main(["convert", *map(str, argv), "--no-progress"])
    return status, out.getvalue(), err.getvalue()


def test_cli_convert_refuses_existing_dst_and_overwrites(tmp_path, frame_state):
    src = _write(tmp_path, frame_state, frame_config())
    dst = tmp_path / "converted"
    status, out, _ = _cli(src, dst)
    assert status == 0 and "PeAudioFrameLevelModel" in out and "verified" in out
    first = (dst / "model.safetensors").read_bytes()
    status, _, err = _cli(src, dst)
    assert status == 1 and "exists" in err and "--overwrite" in err
    status, _, _ = _cli(src, dst, "--overwrite", "--dtype", "float16", "--no-verify")
    assert status == 0 and (dst / "model.safetensors").read_bytes() != first
    assert json.loads((dst / "config.json").read_text())["dtype"] == "float16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "original"]  # no temporary folders left


def test_failed_conversion_keeps_the_old_dst_and_leaves_no_temp(tmp_path, frame_state, monkeypatch):
    src = _write(tmp_path, frame_state, frame_config())
    dst = tmp_path / "converted"
    _convert(src, dst)
    before = {p.name: p.read_bytes() for p in dst.iterdir()}

    def fail(*args, **kwargs):
        raise ConversionError("verification failed on purpose")

    monkeypatch.setattr("pe_av.convert.run.verify_checkpoint", fail)  # our own code, to fail mid-write
    with pytest.raises(ConversionError, match="on purpose"):
        pe_av.convert_original(src, dst, overwrite=True, progress=False)
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted", "original"]
