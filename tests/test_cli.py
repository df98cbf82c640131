"""The pe-av command line: demo and embed, in-process (main([...])) and once through the installed script."""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli_env
from safetensors import safe_open

from pe_av import (
    PeAudioEncoder,
    PeAudioModel,
    PeAudioVideoModel,
    PeAudioVideoProcessor,
    encode_audio,
    encode_audio_video,
    encode_text,
)
from pe_av.cli import main
from pe_av.demo import TEXTS, demo_config, demo_tokenizer
from pe_av.media import write_video
from pe_av.processing import PeAudioFeatureExtractor, PeAudioProcessor


def run(argv):
    """main(argv) in-process → (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    status, out, _ = run(["demo", "--backends", "eager,sdpa", "--repeats", "1", "--keep", root])
    assert status == 0
    media = root / "media"
    return {
        "out": out,
        "model": root / "tiny-pe-av",
        "audio": sorted(str(p) for p in media.iterdir() if p.suffix in (".wav", ".flac", ".mp3")),
        "videos": sorted(str(p) for p in media.iterdir() if p.suffix in (".mp4", ".webm")),
    }


def test_demo_prints_pipeline_tables_and_timings(demo_run):
    out = demo_run["out"]
    for expected in ["tiny random PeAudioVideoModel", "tone_440hz.wav", "red_square.mp4", "processed: input_ids (5, ",
                     "text ↔ audio files", "text ↔ video files", "agree with the direct calls: max |diff| 0.0e+00"]:
        assert expected in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("eager", "sdpa"))]
    assert [row[0] for row in rows] == ["eager", "sdpa"] and float(rows[0][1]) > 0
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= {
        p.name for p in demo_run["model"].iterdir()
    }
    assert len(demo_run["audio"]) == 3 and len(demo_run["videos"]) == 2


def test_demo_argument_errors():
    for argv in (["demo", "--repeats", "0"], ["demo", "--backends", "cuda"], ["embed", "--model", "x"], []):
        with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
            main(argv)
        assert exc.value.code == 2


def test_embed_audio_files_with_text_to_npy(demo_run, tmp_path):
    out = tmp_path / "emb.npy"
    status, stdout, _ = run(["embed", "--model", demo_run["model"], *demo_run["audio"], "--text", *TEXTS[:2],
                             "--out", out, "--no-progress"])
    assert status == 0
    assert "embedded 3 file(s) as audio: (3, 32)" in stdout and "text ↔ audio (cosine similarity)" in stdout
    model = PeAudioVideoModel.from_pretrained(demo_run["model"])
    processor = PeAudioVideoProcessor.from_pretrained(demo_run["model"])
    np.testing.assert_array_equal(np.load(out), encode_audio(model, processor, demo_run["audio"]).numpy())
    text = np.load(tmp_path / "emb.text.npy")
    np.testing.assert_array_equal(text, encode_text(model, processor, TEXTS[:2], target="audio").numpy())
    assert f"wrote {tmp_path / 'emb.text.npy'}" in stdout


def test_embed_videos_auto_picks_audio_video_to_safetensors(demo_run, tmp_path):
    out = tmp_path / "emb.safetensors"
    status, stdout, _ = run(["embed", "--model", demo_run["model"], *demo_run["videos"], "--text", "a red square",
                             "--out", out, "--batch-size", "1", "--no-progress"])
    assert status == 0 and "as audio_video: (2, 32)" in stdout
    model = PeAudioVideoModel.from_pretrained(demo_run["model"])
    processor = PeAudioVideoProcessor.from_pretrained(demo_run["model"])
    with safe_open(str(out), "pt") as f:
        assert sorted(f.keys()) == ["audio_video_embeds", "text_embeds"]
        assert json.loads(f.metadata()["files"]) == demo_run["videos"]
        expected = encode_audio_video(model, processor, demo_run["videos"], batch_size=1)
        assert torch.equal(f.get_tensor("audio_video_embeds"), expected)


@pytest.mark.parametrize("modality,shape", [("video", (2, 32)), ("audio", (2, 32))])
def test_embed_forced_modality(demo_run, modality, shape):
    status, stdout, _ = run(["embed", "--model", demo_run["model"], *demo_run["videos"], "--modality", modality,
                             "--num-frames", "3", "--no-progress"])
    assert status == 0 and f"as {modality}: {shape}" in stdout


def test_embed_text_only(demo_run):
    status, stdout, _ = run(["embed", "--model", demo_run["model"], "--text", "a", "b", "--no-progress"])
    assert status == 0 and "embedded 2 text(s) in the text-audio_video space: (2, 32)" in stdout


def test_embed_audio_model(tmp_path, demo_run):
    torch.manual_seed(0)
    PeAudioModel(demo_config().audio_config).save_pretrained(tmp_path)
    PeAudioProcessor(PeAudioFeatureExtractor(), demo_tokenizer()).save_pretrained(tmp_path)
    status, stdout, _ = run(["embed", "--model", tmp_path, *demo_run["videos"], "--no-progress"])
    assert status == 0 and "as audio" in stdout
    status, _, stderr = run(["embed", "--model", tmp_path, *demo_run["videos"], "--modality", "video"])
    assert status == 1 and "PeAudioModel cannot embed video" in stderr


def test_embed_needs_a_model_type_with_a_processor(tmp_path, demo_run):
    torch.manual_seed(0)
    PeAudioEncoder(demo_config().audio_video_config.audio_config).save_pretrained(tmp_path)
    status, _, stderr = run(["embed", "--model", tmp_path, *demo_run["audio"], "--no-progress"])
    assert status == 1
    assert "holds a 'pe_audio_encoder' model; pe-av embed handles ['pe_audio', 'pe_audio_video', 'pe_video']" in stderr


def test_embed_errors(demo_run, tmp_path):
    model = demo_run["model"]
    silent = write_video(tmp_path / "silent.mp4", np.zeros((2, 32, 32, 3), np.uint8))
    cases = [
        (["--model", model, tmp_path / "missing.wav"], "media file not found"),
        (["--model", model, *demo_run["audio"], "--out", tmp_path / "emb.txt"], "--out must end in .npy or"),
        (["--model", model, *demo_run["audio"], "--out", tmp_path / "no" / "e.npy"], "--out directory does not exist"),
        (["--model", tmp_path / "nomodel", *demo_run["audio"]], "model directory not found"),
        (["--model", model, demo_run["audio"][0], silent], "cannot pick one modality"),
        (["--model", model, demo_run["audio"][0], "--modality", "video"], "has no video track"),
    ]
    for argv, message in cases:
        status, _, stderr = run(["embed", *argv, "--no-progress"])
        assert status == 1 and message in stderr, (argv, stderr)


def test_installed_script_runs_embed(demo_run, tmp_path):
    script = Path(sys.executable).with_name("pe-av")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pe_av.cli"]
    out = tmp_path / "emb.safetensors"
    env = cli_env()  # this checkout first on the path: the script runs the code under test
    result = subprocess.run(
        [*command, "embed", "--model", str(demo_run["model"]), *demo_run["audio"], "--text", TEXTS[0],
         "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "text ↔ audio (cosine similarity)" in result.stdout and out.exists()
    in_process = tmp_path / "in_process.safetensors"
    run(["embed", "--model", demo_run["model"], *demo_run["audio"], "--text", TEXTS[0], "--out", in_process,
         "--no-progress"])
    with safe_open(str(out), "pt") as a, safe_open(str(in_process), "pt") as b:
        for key in a.keys():
            # the subprocess may use another thread count than the tests (summation order only)
            assert torch.allclose(a.get_tensor(key), b.get_tensor(key), rtol=0, atol=1e-5), key
