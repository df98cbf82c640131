"""pe-av errors: one line ``pe-av <command>: error: <file or argument>: <message>`` on stderr, exit 1
(2 for usage errors), no traceback unless PE_AV_DEBUG=1 — one test per kind of failure."""

from __future__ import annotations

import contextlib
import os
import errno
import io
import shutil

import pytest
from cli_helpers import make_checkpoint, run, write_clips
from safetensors import SafetensorError

import pe_av.config
import pe_av.embed_run
from pe_av.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    return {"root": root, "model": make_checkpoint(root / "model"), "files": write_clips(root / "media", 2)}


def one_line_error(argv, command="embed"):
    status, stdout, stderr = run(argv)
    assert status == 1, stderr
    assert stderr.count("\n") == 1 and stderr.startswith(f"pe-av {command}: error: "), stderr
    assert "Traceback" not in stderr and stdout == ""
    return stderr.removeprefix(f"pe-av {command}: error: ").rstrip("\n")


def broken_copy(data, tmp_path, edit):
    model = shutil.copytree(data["model"], tmp_path / "model")
    edit(model)
    return model


def test_missing_model_directory(data, tmp_path):
    message = one_line_error(["embed", "--model", tmp_path / "nomodel", *data["files"]])
    assert message == f"model directory not found: {tmp_path / 'nomodel'}"


def test_deeply_nested_config(data, tmp_path):
    model = broken_copy(data, tmp_path, lambda m: (m / "config.json").write_text('{"a": ' * 100_000 + "1" + "}" * 100_000))
    message = one_line_error(["embed", "--model", model, *data["files"]])
    assert str(model) in message  # RecursionError today; whatever the loader makes of it, named and on one line


def test_corrupt_weights_file(data, tmp_path):
    model = broken_copy(data, tmp_path, lambda m: (m / "model.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"junk"))
    message = one_line_error(["embed", "--model", model, *data["files"]])
    assert str(model / "model.safetensors") in message


@pytest.mark.parametrize("error,expected", [
    (RecursionError("maximum recursion depth exceeded while decoding a JSON object"),
     "cannot load the checkpoint: RecursionError: maximum recursion depth exceeded while decoding a JSON object "
     "(a JSON file nested too deeply?)"),
    (KeyError("audio_config"), "cannot load the checkpoint: KeyError: 'audio_config'"),
    (RuntimeError("CUDA error: out of memory"), "cannot load the checkpoint: RuntimeError: CUDA error: out of memory"),
    (SafetensorError("Error while deserializing header: HeaderTooLarge"),
     "cannot load the checkpoint: SafetensorError: Error while deserializing header: HeaderTooLarge"),
    (OSError("Input/output error"), "cannot load the checkpoint: OSError: Input/output error"),
], ids=["RecursionError", "KeyError", "RuntimeError", "SafetensorError", "OSError"])
def test_each_loading_error_is_one_line_naming_the_checkpoint(data, monkeypatch, error, expected):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(pe_av.config, "load_config", fail)
    assert one_line_error(["embed", "--model", data["model"], *data["files"]]) == f"{data['model']}: {expected}"


def test_unreadable_file_names_the_file(data, monkeypatch):
    config = data["model"] / "config.json"

    def fail(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(config))

    monkeypatch.setattr(pe_av.config, "load_config", fail)
    assert one_line_error(["embed", "--model", data["model"], *data["files"]]) == f"{config}: Permission denied"


def test_an_unexpected_error_after_loading(data, monkeypatch):
    def fail(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(pe_av.embed_run, "pick_modality", fail)
    assert one_line_error(["embed", "--model", data["model"], *data["files"]]) == "RuntimeError: boom"
    monkeypatch.setenv("PE_AV_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"), contextlib.redirect_stdout(io.StringIO()):
        main(["embed", "--model", str(data["model"]), *data["files"], "--no-progress"])


def test_a_directory_as_a_media_file(data):
    folder = data["root"] / "media"
    message = one_line_error(["embed", "--model", data["model"], data["files"][0], folder])
    assert message == f"{folder}: is a directory, not a media file (give the path of a regular file)"


def test_a_fifo_as_a_media_file(data, tmp_path):
    """A named pipe gets its own message, before any work, and is never opened (that would block)."""
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    message = one_line_error(["embed", "--model", data["model"], data["files"][0], fifo])
    assert message == f"{fifo}: is a named pipe (FIFO), not a media file (give the path of a regular file)"


def test_bad_out(data, tmp_path):
    message = one_line_error(["embed", "--model", data["model"], *data["files"], "--out", tmp_path / "emb.csv"])
    assert message == "--out must end in .npy or .safetensors, got 'emb.csv'"


def test_demo_errors_are_one_line_too(tmp_path):
    keep = tmp_path / "a file"
    keep.write_text("")
    message = one_line_error(["demo", "--backends", "eager", "--repeats", "1", "--keep", keep], command="demo")
    assert str(keep) in message


@pytest.mark.parametrize("argv,message", [
    (["--resume"], "--resume needs --out"),
    (["--overwrite"], "--overwrite needs --out"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--modality", "image"], "argument --modality: invalid choice"),
])
def test_usage_errors_exit_2(data, argv, message):
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(stderr):
        main(["embed", "--model", str(data["model"]), *data["files"], *argv])
    assert exc.value.code == 2
    assert f"pe-av embed: error: {message}" in stderr.getvalue()
