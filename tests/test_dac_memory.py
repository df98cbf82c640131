"""The streamed DAC's extra memory does not grow with the clip's length (measured in fresh processes).

Each length runs ``dac_memory_probe.py`` in its own process: a DAC at the released strides
(hop 1920) and a tiny width (8; pieces scaled so that they span as many samples as the released
width's), on 10 s and 60 s of 48 kHz audio. glibc's malloc is pinned to a fixed mmap threshold there:
with its default dynamic threshold, freed blocks stay in a fragmenting heap and the resident set
creeps up with the number of pieces (40.7 → 48.7 MB here), which is the allocator's doing, not the
stream's (the README's "CPU memory" section says how to set this for long runs). The layer-by-layer
form is measured too, so that the check can fail: its full-length buffers grow with the clip.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("dac_memory_probe.py")
WIDTH, WINDOW = 8, 1 << 19  # 1 << 22 elements at width 64 (the default) is the same 65536 samples


def extra_mb(seconds: int, *mode: str) -> float:
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PE_AV_SNAKE_COMPILE="0",
        MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536",
    )
    env["PYTHONPATH"] = os.pathsep.join([str(PROBE.parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(PROBE), str(seconds), str(WIDTH), str(WINDOW), *mode],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["extra_mb"]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_streamed_dac_memory_does_not_grow_with_length():
    short, long = extra_mb(10), extra_mb(60)
    assert long <= 1.10 * short, f"streamed DAC: {short:.1f} MB extra at 10 s, {long:.1f} MB at 60 s"
    layers = extra_mb(60, "layers")
    assert layers > 3 * long, f"the probe should see the layer-by-layer form's growth: {layers:.1f} MB vs {long:.1f}"
