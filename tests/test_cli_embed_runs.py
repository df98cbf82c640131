"""pe-av embed in-process: bad files skipped and named, --fail-fast, outputs never replaced silently,
--out checked before any work, failing final writes, --resume rules."""

from __future__ import annotations

import errno
import json
import shutil

import numpy as np
import pytest
import torch
from cli_helpers import make_checkpoint, run, temp_files, write_clips, write_nan_clip
from safetensors import safe_open

import pe_av.atomic
import pe_av.embed_run
from pe_av.embed_parts import Parts, media_key


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    files = write_clips(root / "media", 6)
    nan = write_nan_clip(root / "media" / "nan.wav")
    return {"model": make_checkpoint(root / "model"), "files": files, "nan": nan}


def embed(data, out, *extra, files=None):
    files = data["files"] if files is None else files
    return run(["embed", "--model", data["model"], *files, "--out", out, "--batch-size", "2", "--no-progress", *extra])


def test_a_bad_file_in_the_middle_is_skipped_and_named(data, tmp_path):
    files = data["files"][:3] + [data["nan"]] + data["files"][3:]
    out = tmp_path / "emb.safetensors"
    status, stdout, stderr = embed(data, out, "--text", "a pure tone", files=files)
    assert status == 1
    assert f"pe-av embed: skipped {data['nan']}: " in stderr and "NaN" in stderr
    assert "1 of 8 input(s) failed and were left out; listed in" in stderr
    assert "embedded 6 file(s) as audio: (6, 32)" in stdout and f"wrote {out}" in stdout
    failures = [json.loads(line) for line in (tmp_path / "emb.safetensors.failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["file"] == data["nan"] and "NaN" in failures[0]["reason"]
    good = tmp_path / "good.safetensors"
    assert embed(data, good)[0] == 0
    with safe_open(str(out), "pt") as f, safe_open(str(good), "pt") as g:
        assert json.loads(f.metadata()["files"]) == data["files"]
        # the nan file's batch partners were embedded one by one: same rows up to summation order
        torch.testing.assert_close(f.get_tensor("audio_embeds"), g.get_tensor("audio_embeds"), atol=1e-5, rtol=1e-5)
    assert not (tmp_path / "emb.safetensors.parts").exists() and not temp_files(tmp_path)


def test_fail_fast_stops_at_the_first_bad_file_and_resume_continues(data, tmp_path):
    files = data["files"][:3] + [data["nan"]] + data["files"][3:]
    out = tmp_path / "emb.npy"
    status, _, stderr = embed(data, out, "--fail-fast", files=files)
    assert status == 1 and "stopped at the first failure (--fail-fast)" in stderr and "--resume" in stderr
    parts = tmp_path / "emb.npy.parts"
    assert not out.exists() and sorted(p.name for p in parts.glob("media-*")) == [
        "media-000000.safetensors", "media-000001.safetensors"]  # files 1-2, then 3 (the nan file's partner)
    assert json.loads((parts / "failures.jsonl").read_text())["file"] == data["nan"]
    status, stdout, stderr = embed(data, out, "--resume", files=data["files"])  # the bad file removed
    assert status == 0, stderr
    assert "resume: reusing 3 of 6 file(s) (inputs 1-3)" in stdout and np.load(out).shape == (6, 32)


def test_existing_outputs_are_refused_unless_overwrite(data, tmp_path, monkeypatch):
    out, text_out = tmp_path / "emb.npy", tmp_path / "emb.text.npy"
    assert embed(data, out, "--text", "a")[0] == 0
    text_before = np.load(text_out)
    loads = []
    monkeypatch.setattr(pe_av.embed_run, "load_model", lambda *a: loads.append(a))
    status, _, stderr = embed(data, out, "--text", "a")
    assert status == 1 and stderr == f"pe-av embed: error: {out}: already exists; pass --overwrite to replace it\n"
    out.unlink()
    status, _, stderr = embed(data, out, "--text", "a")  # the text file alone is refused too
    assert status == 1 and stderr == f"pe-av embed: error: {text_out}: already exists; pass --overwrite to replace it\n"
    assert loads == []  # refused before the model was loaded
    monkeypatch.undo()
    status, _, stderr = embed(data, out, "--text", "b", "--overwrite")
    assert status == 0, stderr
    assert not np.array_equal(np.load(text_out), text_before)
    assert np.load(out).shape == (6, 32) and not temp_files(tmp_path)


def test_bad_out_is_refused_before_any_work(data, tmp_path, monkeypatch):
    loads = []
    monkeypatch.setattr(pe_av.embed_run, "load_model", lambda *a: loads.append(a))
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "emb.npy.parts").mkdir()
    cases = [
        (tmp_path / "folder.npy", f"--out: {tmp_path / 'folder.npy'} is a directory"),
        (tmp_path, f"--out: {tmp_path} is a directory"),
        (tmp_path / "missing" / "emb.npy", "--out directory does not exist"),
        (tmp_path / "emb.txt", "--out must end in .npy or .safetensors"),
        (tmp_path / "emb.npy", "emb.npy.parts: holds an unfinished run for this --out; pass --resume"),
    ]
    for out, message in cases:
        status, stdout, stderr = embed(data, out)
        assert status == 1 and message in stderr and stderr.count("\n") == 1, (out, stderr)
        assert stdout == ""
    assert loads == []


def test_a_failing_final_write_leaves_no_partial_output(data, tmp_path, monkeypatch):
    """The media file is written, the text file's fsync fails: exit 1, one line naming the text file, no
    temp files, the shards kept; --resume --overwrite then finishes from the shards alone."""
    real_fsync = pe_av.atomic.fsync_file

    def failing(path):
        if ".emb.text.npy." in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_fsync(path)

    monkeypatch.setattr(pe_av.atomic, "fsync_file", failing)
    out = tmp_path / "emb.npy"
    argv = ("--text", "a", "b")
    status, _, stderr = embed(data, out, *argv)
    assert status == 1 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith(f"pe-av embed: error: {tmp_path / 'emb.text.npy'}: cannot write it: No space left")
    assert "--resume --overwrite" in stderr  # emb.npy is already there
    assert out.exists() and not (tmp_path / "emb.text.npy").exists() and not temp_files(tmp_path)
    assert (tmp_path / "emb.npy.parts" / "text-000000.safetensors").exists()
    monkeypatch.undo()
    status, stdout, stderr = embed(data, out, *argv, "--resume", "--overwrite")
    assert status == 0, stderr
    assert "reusing 6 of 6 file(s)" in stdout and "reusing 2 of 2 text(s)" in stdout
    assert np.load(tmp_path / "emb.text.npy").shape == (2, 32)


def test_resume_rules(data, tmp_path):
    out = tmp_path / "emb.npy"
    status, stdout, _ = embed(data, out, "--resume")  # nothing to resume: a fresh run
    assert status == 0 and "resume: no " in stdout
    out.unlink()
    parts = tmp_path / "emb.npy.parts"
    parts.mkdir()
    (parts / "run.json").write_text(json.dumps({"format": "pe-av embed parts", "version": 1, "model": "elsewhere",
                                                "modality": "audio", "normalize": True, "num_frames": None,
                                                "dtype": "float32"}))
    status, _, stderr = embed(data, out, "--resume")
    assert status == 1 and "was started with other settings (model='elsewhere' then" in stderr
    (parts / "run.json").write_text("{")
    status, _, stderr = embed(data, out, "--resume")
    assert status == 1 and "cannot resume from it" in stderr and "--overwrite" in stderr
    status, _, stderr = embed(data, out, "--overwrite")  # starts over
    assert status == 0 and not parts.exists()


def test_resume_embeds_changed_files_again_and_ignores_bad_shards(data, tmp_path):
    files = [shutil.copy(f, tmp_path) for f in data["files"]]
    out = tmp_path / "emb.safetensors"
    assert embed(data, out, files=files)[0] == 0
    with safe_open(str(out), "pt") as f:
        reference = f.get_tensor("audio_embeds")
    out.unlink()
    # an unfinished run's folder: three shards, one then damaged, a temp file left by a crash, a changed file
    parts = tmp_path / "emb.safetensors.parts"
    parts.mkdir()
    (parts / "run.json").write_text(json.dumps({
        "format": "pe-av embed parts", "version": 1, "model": str(data["model"]), "modality": "audio",
        "normalize": True, "num_frames": None, "dtype": "float32"}))
    store = Parts(parts)
    for start in (0, 2, 4):
        store.add("media", files[start : start + 2], [media_key(f) for f in files[start : start + 2]],
                  reference[start : start + 2])
    (parts / "media-000001.safetensors").write_bytes(b"not a shard")
    (parts / ".media-000009.safetensors.0123abcd.tmp.safetensors").write_bytes(b"left by a crash")
    with open(files[4], "ab") as f:
        f.write(b"\0\0")
    status, stdout, stderr = embed(data, out, "--resume", files=files)
    assert status == 0, stderr
    assert "resume: ignoring media-000001.safetensors (unreadable" in stdout
    assert "resume: reusing 3 of 6 file(s) (inputs 1-2, 6) from" in stdout
    with safe_open(str(out), "pt") as f:
        assert torch.equal(f.get_tensor("audio_embeds")[[0, 1, 5]], reference[[0, 1, 5]])
    assert not parts.exists() and not temp_files(tmp_path)
