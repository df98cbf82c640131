"""The JSON reader (pe_av.json_io) is bounded: oversized files and deep nesting are a ValueError naming
the file, never a RecursionError or a huge allocation."""

from __future__ import annotations

import json
import time

import pytest

import pe_av.json_io as json_io
from pe_av import CheckpointError, PeAudioEncoder, load_config
from pe_av.json_io import MAX_JSON_BYTES, MAX_JSON_DEPTH, json_depth, read_json_object
from pe_av.loading import SAFE_WEIGHTS_INDEX_NAME
from checkpoint_files import copy


@pytest.mark.parametrize("text, depth", [
    ("", 0),
    ("3", 0),
    ("{}", 1),
    ("[[]]", 2),
    ('{"a": [1, {"b": []}], "c": {}}', 4),
    ('"[[[["', 0),
    ('["\\"[[", "]]\\\\", {"x": "{"}]', 2),
    ('{"ü[": "é{{"}', 1),
])
def test_depth_ignores_brackets_in_strings(text, depth):
    assert json_depth(text.encode()) == depth


def test_depth_is_carried_across_chunks(monkeypatch):
    monkeypatch.setattr(json_io, "_CHUNK", 3)
    assert json_depth(b"[[[[[1]]]], [[]]]") == 5


def write(path, text):
    path.write_text(text)
    return path


def test_depth_limit_is_exact(tmp_path):
    ok = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert read_json_object(write(tmp_path / "a.json", '{"x": ' + ok + "}")) == json.loads('{"x": ' + ok + "}")
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    with pytest.raises(ValueError, match=rf"b\.json nests arrays/objects {MAX_JSON_DEPTH + 1} levels deep, deeper than the {MAX_JSON_DEPTH}"):
        read_json_object(write(tmp_path / "b.json", '{"x": ' + deep + "}"))


def test_a_config_nested_100000_levels(saved, tmp_path):
    deep = '{"model_type": "pe_audio_encoder", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    bad = copy(saved[PeAudioEncoder], tmp_path / "bad", edit_config=lambda c: deep)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"config\.json nests arrays/objects 100001 levels deep"):
        PeAudioEncoder.from_pretrained(bad)
    assert time.perf_counter() - start < 1.0
    unclosed = copy(saved[PeAudioEncoder], tmp_path / "unclosed", edit_config=lambda c: "[" * 100_000)
    with pytest.raises(ValueError, match=r"config\.json nests arrays/objects 100000 levels deep"):
        load_config(unclosed)


def test_deep_brackets_inside_strings_are_fine(saved, tmp_path):
    def deep_string(config):
        config["note"] = "[" * 10_000

    directory = copy(saved[PeAudioEncoder], tmp_path / "ok", edit_config=deep_string)
    assert load_config(directory).extra["note"] == "[" * 10_000


def test_a_deep_safetensors_index(saved, tmp_path):
    bad = copy(saved["sharded"], tmp_path / "bad")
    (bad / SAFE_WEIGHTS_INDEX_NAME).write_text('{"weight_map": {}, "x": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(CheckpointError, match=r"index\.json is not a valid safetensors index.*5001 levels deep"):
        PeAudioEncoder.from_pretrained(bad)


def test_file_size_limit(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:  # sparse: nothing is written, and nothing may be read
        fh.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(ValueError, match=rf"big\.json is {MAX_JSON_BYTES + 1:,} bytes, over the {MAX_JSON_BYTES:,} bytes"):
        read_json_object(big)


def test_file_size_limit_is_configurable(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(json_io, "MAX_JSON_BYTES", 100)
    with pytest.raises(ValueError, match=r"config\.json is [\d,]+ bytes, over the 100 bytes pe_av reads as the model's configuration"):
        PeAudioEncoder.from_pretrained(saved[PeAudioEncoder])


def test_an_integer_too_long_to_parse(tmp_path):
    with pytest.raises(ValueError, match=r"n\.json is not valid JSON"):
        read_json_object(write(tmp_path / "n.json", '{"hidden_size": ' + "9" * 10_000 + "}"))
