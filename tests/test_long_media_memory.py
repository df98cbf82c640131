"""Peak memory of embedding long audio in windows is bounded by the window, not the file.

Two fresh child processes embed a 10-minute and a 30-second file (16 kHz mono wav, embedded at 48 kHz in
30 s windows, one at a time (memory grows with batch_size windows), with the demo model) and report their peak resident memory, ``resource.getrusage`` in the
child. The children are started by a shell that *forks* them (``sh -c 'python …; exit $?'``): a process
exec'd straight from pytest inherits pytest's high-water mark in ``ru_maxrss`` (Linux keeps it across
fork + exec), a child forked by the small shell starts from the shell's.

The children run with glibc's mmap and trim thresholds pinned at 64 KiB (as tests/test_dac_memory.py does):
with the default, dynamic threshold a window's freed multi-MiB buffers stay in the heap, the resident set
swings by ~30 MiB from window to window with fragmentation, and the peak of 4 windows against 20 was a
draw (it failed 3 runs in 6 here, the difference swinging between -23 and +23 MiB); pinned, freed buffers go back
to the OS and the peak is what is live (measured: 797 MiB at 30 s, 818 MiB at 2 and at 10 minutes, the
same to the MiB over three runs each).

The whole 10-minute file decoded at 48 kHz is 10·60·48000·4 B ≈ 110 MiB. Windowed, the peak does not grow
with the file: from 2 to 10 minutes (88 MiB more audio at 48 kHz) it may grow by 16 MiB at most, and the
10-minute peak stays within half the whole file's decoded size (55 MiB) of the one-window 30-second peak
(the second and later windows add ~21 MiB once, measured on 30 s / 2 min / 10 min).
"""

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

MiB = 1 << 20
ROOT = str(Path(__file__).resolve().parents[1])

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss semantics of Linux")

CHILD = """
import json, resource, sys
import torch
torch.set_num_threads(1)
from pe_av import embed_audio_windows
from pe_av.demo import demo_model, demo_processor
model, processor = demo_model(), demo_processor()
result = embed_audio_windows(model, processor, sys.argv[1], window_s=30.0, batch_size=1, progress=False)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "windows": len(result.starts), "end": result.ends[-1]}))
"""


def write_wav(path: Path, seconds: int, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        for minute in range(0, seconds, 60):  # written a minute at a time: the test itself stays small too
            n = min(60, seconds - minute) * rate
            t = np.arange(n) / rate
            out.writeframes((8000 * np.sin(2 * np.pi * (300 + minute) * t)).astype("<i2").tobytes())
    return path


def peak_of(path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "65536"}
    command = ["sh", "-c", '"$0" -c "$1" "$2"; exit $?', sys.executable, CHILD, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ten_minutes_peak_like_thirty_seconds(tmp_path):
    short = peak_of(write_wav(tmp_path / "short.wav", 30))
    mid = peak_of(write_wav(tmp_path / "mid.wav", 120))
    long = peak_of(write_wav(tmp_path / "long.wav", 600))
    assert (short["windows"], mid["windows"], long["windows"]) == (1, 4, 20)
    assert long["end"] == pytest.approx(600.0)
    print(f"\npeak RSS: 10-minute file {long['peak'] / MiB:.1f} MiB, 2-minute {mid['peak'] / MiB:.1f} MiB, "
          f"30-second {short['peak'] / MiB:.1f} MiB (the whole 10-minute file at 48 kHz is 110 MiB)")
    assert long["peak"] <= mid["peak"] + 16 * MiB
    assert long["peak"] <= short["peak"] + 55 * MiB
