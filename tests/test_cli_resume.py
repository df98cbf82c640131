"""pe-av embed in subprocesses: SIGINT / SIGTERM in the middle keep the finished batches, --resume
finishes the run with exactly the output of an uninterrupted one; a write the OS refuses
(RLIMIT_FSIZE) fails cleanly and can be resumed."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from cli_helpers import (
    cli_command,
    cli_env,
    make_checkpoint,
    run,
    run_subprocess,
    temp_files,
    write_clips,
)
from safetensors import safe_open

import pe_av.atomic

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

TEXTS = ["a pure tone", "a high pitched beep", "static noise"]
N_FILES, BATCH = 20, 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    model = make_checkpoint(root / "model")
    files = write_clips(root / "media", N_FILES)
    reference = root / "reference.safetensors"
    status, _, stderr = run_in_process(["embed", "--model", model, *files, "--text", *TEXTS, "--out", reference,
                                        "--batch-size", BATCH, "--no-progress"])
    assert status == 0, stderr
    with safe_open(str(reference), "pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        metadata = f.metadata()
    return {"root": root, "model": model, "files": files, "tensors": tensors, "metadata": metadata}


def run_in_process(argv):
    """The CLI in this process with one thread, as the subprocesses run (OMP_NUM_THREADS=1), so that the
    results are bit for bit the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(argv)
    finally:
        torch.set_num_threads(threads)


def shards(parts):
    return sorted(p.name for p in parts.glob("media-*.safetensors"))


def interrupt(setup, out, signum):
    """Start a slow run, signal it once the first shard is saved; → (exit status, stderr, shards)."""
    argv = ["embed", "--model", setup["model"], *setup["files"], "--text", *TEXTS, "--out", out,
            "--batch-size", BATCH, "--no-progress"]
    parts = out.with_name(out.name + ".parts")
    process = subprocess.Popen(cli_command(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env(PE_AV_TEST_DELAY="0.25"))
    try:
        deadline = time.monotonic() + 90
        while not (parts / "media-000000.safetensors").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no shard appeared"
            time.sleep(0.01)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr, shards(parts), argv


@pytest.mark.parametrize("signum,status,suffix", [(signal.SIGINT, 130, ".npy"), (signal.SIGTERM, 143, ".safetensors")],
                         ids=["SIGINT", "SIGTERM"])
def test_interrupt_then_resume_equals_an_uninterrupted_run(setup, tmp_path, signum, status, suffix):
    out = tmp_path / f"emb{suffix}"
    returncode, stderr, kept, argv = interrupt(setup, out, signum)
    name = signal.Signals(signum).name
    assert returncode == status, stderr
    assert f"stopped by {name}" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert 1 <= len(kept) < N_FILES // BATCH, kept  # stopped in the middle, the finished batches kept
    assert not out.exists() and not temp_files(tmp_path)
    # --resume embeds only the rest
    status, stdout, stderr = run_in_process([*argv, "--resume"])
    assert status == 0, stderr
    done = len(kept) * BATCH
    assert f"resume: reusing {done} of {N_FILES} file(s) (inputs 1-{done})" in stdout
    assert f"embedded {N_FILES} file(s) as audio: ({N_FILES}, 32)" in stdout
    assert not out.with_name(out.name + ".parts").exists() and not temp_files(tmp_path)
    expected = setup["tensors"]
    if suffix == ".npy":
        assert np.array_equal(np.load(out), expected["audio_embeds"].numpy())
        assert np.array_equal(np.load(tmp_path / "emb.text.npy"), expected["text_embeds"].numpy())
    else:
        with safe_open(str(out), "pt") as f:
            assert sorted(f.keys()) == sorted(expected)
            for key in expected:
                assert torch.equal(f.get_tensor(key), expected[key]), key
            metadata = f.metadata()
        for key in ("files", "texts", "modality"):
            assert metadata[key] == setup["metadata"][key], key


def test_a_refused_write_fails_cleanly_and_resumes(setup, tmp_path, monkeypatch):
    """With a file size limit below the output's size, the OS refuses the final write: exit 1, one line
    naming the output, no partial output, no temp files, the shards kept; --resume then writes it."""
    out = tmp_path / "emb.safetensors"
    argv = ["embed", "--model", setup["model"], *setup["files"], "--text", *TEXTS, "--out", out,
            "--batch-size", BATCH, "--no-progress"]
    # every batch saved, the final write failed (here in-process, to save a subprocess's embedding time)
    real_fsync = pe_av.atomic.fsync_file
    monkeypatch.setattr(pe_av.atomic, "fsync_file", lambda p: real_fsync(p) if ".emb.safetensors." not in str(p)
                        else (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert run_in_process(argv)[0] == 1
    monkeypatch.undo()
    parts = tmp_path / "emb.safetensors.parts"
    assert len(shards(parts)) == N_FILES // BATCH and not out.exists()
    # the real thing: a resumed run in a process whose files may not grow past the output's size - 1
    limit = len((setup["root"] / "reference.safetensors").read_bytes()) - 1

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    result = run_subprocess([*argv, "--resume"], preexec_fn=small_files)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"pe-av embed: error: {out}: cannot write it: File too large")
    assert "the finished batches are kept" in errors[0] and "Traceback" not in result.stderr
    assert not out.exists() and not temp_files(tmp_path)
    assert len(shards(parts)) == N_FILES // BATCH
    assert json.loads((parts / "run.json").read_text())["modality"] == "audio"
    status, stdout, stderr = run_in_process([*argv, "--resume"])  # nothing left to embed: the shards' rows
    assert status == 0, stderr
    assert f"resume: reusing {N_FILES} of {N_FILES} file(s) (inputs 1-{N_FILES})" in stdout
    with safe_open(str(out), "pt") as f:
        for key, value in setup["tensors"].items():
            assert torch.equal(f.get_tensor(key), value), key
    assert not parts.exists()
