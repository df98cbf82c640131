"""Run as a script: extra peak memory (MB) of the streamed DAC blocks on ``seconds`` of 48 kHz audio.

``python tests/dac_memory_probe.py SECONDS WIDTH WINDOW [layers]`` (``WINDOW``: the stream's piece size
in elements, :data:`pe_av.models.dac_streaming.CPU_WINDOW_ELEMENTS`, scaled down with the width;
``layers``: measure the layer-by-layer form instead) prints one JSON line ``{"extra_mb": ..., "seconds": ...}``:
the peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call)
minus the resident set before it and minus the result's own size (features at 25 steps per second,
which any encoder must return), with the model, the waveform and a warm-up call already in memory. Linux only. Used by ``test_dac_memory.py`` in a fresh process per length.
"""

import json
import sys

import torch

from pe_av.config import DacConfig
from pe_av.models import dac_streaming
from pe_av.models.dac import DacEncoder


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main(seconds: float, width: int, window: int, layers: bool) -> None:
    dac_streaming.CPU_WINDOW_ELEMENTS = window
    dac_streaming.CPU_CHUNK_ELEMENTS = min(dac_streaming.CPU_CHUNK_ELEMENTS, window)
    torch.manual_seed(0)
    config = DacConfig(encoder_hidden_size=width, downsampling_ratios=[2, 8, 10, 12], codebook_dim=8)
    encoder = DacEncoder(config).eval()
    samples = int(seconds * 48000) // 1920 * 1920
    waveform = 0.1 * torch.randn(1, 1, samples)
    with torch.no_grad():
        if layers:  # the whole encoder layer by layer (blocks, last Snake, last conv), as the streamed form covers

            def blocks(wave, lengths):
                return encoder.conv2(encoder.snake1(encoder._blocks(wave, lengths)))
        else:
            blocks = encoder._streamed
        blocks(waveform[..., : 1920 * 25], None)  # warm-up: oneDNN primitives, allocator arenas
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # reset VmHWM to the current resident set
        before = _status_kb("VmRSS")
        out = blocks(waveform, None)
        peak = _status_kb("VmHWM")
    extra = (peak - before) / 1024 - out.nbytes / 2**20
    print(json.dumps({"extra_mb": extra, "seconds": seconds, "tokens": out.shape[-1]}))


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["layers"])
