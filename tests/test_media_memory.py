"""Peak memory of decoding: O(output), measured in a fresh subprocess.

The peak is the kernel's high-water mark of resident memory (``VmHWM``), reset after imports and a
warm-up on a tiny file (``/proc/self/clear_refs``), minus the resident memory at that point: what
the call itself added at its peak. (``ru_maxrss`` would do where nothing is reset, but Linux carries
the parent's high-water mark into a child across fork + exec, so under a large pytest process it
reads the parent's size and the difference is 0.)

- a 10-minute 16 kHz mono wav, loaded at 48 kHz: output 10·60·48000·4 B = 110 MiB; the bound is the
  output + 64 MiB (before chunked decoding: about 2.5x the output);
- 12 frames of 2048x2048 video loaded with ``size=(336, 336)`` and through the video processor: the
  bound is the output + 128 MiB, ten full-size RGB frames (decoding every frame full size first
  needs 12 · 12 MiB twice, about 290 MiB).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

MiB = 1 << 20
ROOT = str(Path(__file__).resolve().parents[1])

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc/self/status (Linux)")

MEASURE = """
import ctypes, gc, json, resource, sys
import numpy as np
import torch

torch.set_num_threads(1)  # as conftest: the machine may be small and busy
from pe_av import media
from pe_av.processing import PeVideoVideoProcessor

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024

def release():  # hand freed heap memory back, so that the next call starts from a true baseline
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

processor = PeVideoVideoProcessor()  # 336 x 336
calls = {
    "audio": lambda p: media.load_audio(p),
    "video": lambda p: media.load_video(p, size=(336, 336)),
    "processor": lambda p: processor(p)["pixel_values_videos"].numpy(),
}
results = {}
for what, path, tiny in json.loads(sys.argv[1]):
    calls[what](tiny)  # warm-up: lazy imports, codecs, kernels
    release()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        base = status("VmRSS:")
    except OSError:  # no reset allowed: the high-water mark so far is the baseline
        base = status("VmHWM:")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = calls[what](path)
    results[what] = {"peak": status("VmHWM:") - base, "output": out.nbytes,
                     "maxrss_delta": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss}
    del out
    release()
print(json.dumps(results))
"""


def write_wav(path, samples, rate):
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


SIDE, COUNT = 2048, 12


@pytest.fixture(scope="module")
def peaks(tmp_path_factory):
    """Peaks of the three calls, measured one after the other in one subprocess (one import of torch)."""
    from pe_av.media import write_video

    root = tmp_path_factory.mktemp("memory")
    n = 10 * 60 * 16_000
    phase = np.arange(n, dtype=np.float32) * np.float32(2 * np.pi * 440 / 16_000)
    wav = write_wav(root / "ten-minutes.wav", 8000 * np.sin(phase), 16_000)
    del phase
    ramp = np.arange(SIDE, dtype=np.uint8)  # 0..255, repeated
    base = np.stack(np.broadcast_arrays(ramp[None, :], (np.arange(SIDE) // 8).astype(np.uint8)[:, None],
                                        ramp[None, :] ^ ramp[:, None]), axis=-1)
    large = write_video(root / "large.mp4", np.stack([np.roll(base, 16 * i, axis=1) for i in range(COUNT)]), fps=4)
    del base
    tiny_wav = write_wav(root / "tiny.wav", np.zeros(1600), 16_000)
    tiny_video = write_video(root / "tiny.mp4", np.zeros((2, 64, 64, 3), np.uint8), fps=4)
    plan = [("audio", str(wav), str(tiny_wav)), ("video", str(large), str(tiny_video)),
            ("processor", str(large), str(tiny_video))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(MEASURE), json.dumps(plan)],
                            check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ten_minute_wav_peaks_at_the_output_plus_64_mib(peaks):
    result = peaks["audio"]
    assert result["output"] == 10 * 60 * 48_000 * 4
    print(f"\n10-minute wav: peak {result['peak'] / MiB:.1f} MiB over the baseline for a "
          f"{result['output'] / MiB:.1f} MiB output (ru_maxrss delta {result['maxrss_delta'] / MiB:.1f} MiB)")
    assert result["peak"] <= result["output"] + 64 * MiB


@pytest.mark.parametrize("what", ["video", "processor"])
def test_large_frames_resized_on_decode_peak_at_the_output_plus_128_mib(peaks, what):
    result = peaks[what]
    print(f"\n{COUNT} frames of {SIDE}x{SIDE} via {what}: peak {result['peak'] / MiB:.1f} MiB over the "
          f"baseline for a {result['output'] / MiB:.1f} MiB output")
    assert result["peak"] <= result["output"] + 128 * MiB
