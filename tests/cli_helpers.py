"""Shared by the pe-av CLI tests: a tiny checkpoint, small audio files, and ways to run the CLI."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pe_av.cli import main
from pe_av.demo import demo_model, demo_processor
from pe_av.media import write_audio

ROOT = Path(__file__).resolve().parents[1]

# Runs pe_av.cli.main in a subprocess; PE_AV_TEST_DELAY seconds of sleep in each audio batch make a run
# slow enough to be signalled in the middle.
RUNNER = """
import os, sys, time
delay = float(os.environ.get("PE_AV_TEST_DELAY", "0"))
if delay:
    from pe_av.models import PeAudioVideoModel
    original = PeAudioVideoModel.get_audio_embeds
    def slow(self, *args, **kwargs):
        time.sleep(delay)
        return original(self, *args, **kwargs)
    PeAudioVideoModel.get_audio_embeds = slow
from pe_av.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def run(argv) -> tuple[int, str, str]:
    """main(argv) in-process → (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: this checkout first on the path, one thread, no warnings."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **extra}


def cli_command(argv) -> list[str]:
    return [sys.executable, "-c", RUNNER, *[str(a) for a in argv]]


def run_subprocess(argv, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    env = popen.pop("env", None) or cli_env()
    return subprocess.run(cli_command(argv), capture_output=True, text=True, timeout=timeout, env=env, **popen)


def make_checkpoint(directory: Path) -> Path:
    """The demo's tiny PeAudioVideoModel and processor, saved to ``directory``."""
    demo_model(seed=0).save_pretrained(directory)
    demo_processor().save_pretrained(directory)
    return directory


def write_clips(directory: Path, n: int, seconds: float = 0.1) -> list[str]:
    """``n`` short distinct tones as 48 kHz wav files: clip_00.wav, clip_01.wav, …"""
    directory.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 48_000)) / 48_000
    return [str(write_audio(directory / f"clip_{i:02d}.wav", (0.4 * np.sin(2 * np.pi * (200 + 90 * i) * t))
                            .astype(np.float32), 48_000)) for i in range(n)]


def write_nan_clip(path: Path) -> str:
    samples = np.zeros(4800, np.float32)
    samples[100] = np.nan
    return str(write_audio(path, samples, 48_000, codec="pcm_f32le"))


def temp_files(folder: Path) -> list[str]:
    """Leftovers of atomic writes (``.name.xxxxxxxx.tmp…``) in ``folder`` and below."""
    return [str(p) for p in folder.rglob(".*.tmp*")]
