"""The ``pe-av`` command line.

``pe-av demo`` runs the whole load → encode pipeline on a tiny random model built on the spot (no
network, no checkpoint needed) and prints clip similarities and per-backend timings.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings

import torch

from .config import PeAudioEncoderConfig
from .dispatch import BACKENDS, BackendNotAvailableError
from .models import PeAudioEncoder

SAMPLE_RATE = 48_000


def _demo_config() -> PeAudioEncoderConfig:
    return PeAudioEncoderConfig(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        dac_config={"encoder_hidden_size": 4, "downsampling_ratios": [2, 8, 10, 12], "codebook_dim": 16},
    )


def _demo_audio(seconds: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Three clips padded into one batch: two tones an octave apart and noise (half as long)."""
    n = int(SAMPLE_RATE * seconds)
    t = torch.arange(n) / SAMPLE_RATE
    gen = torch.Generator().manual_seed(0)
    clips = [
        0.5 * torch.sin(2 * math.pi * 440 * t),
        0.5 * torch.sin(2 * math.pi * 880 * t),
        0.3 * torch.randn(n // 2, generator=gen),
    ]
    batch = torch.zeros(len(clips), 1, n)
    mask = torch.zeros(len(clips), n, dtype=torch.long)
    for i, clip in enumerate(clips):
        batch[i, 0, : len(clip)] = clip
        mask[i, : len(clip)] = 1
    return batch, mask, ["tone 440 Hz", "tone 880 Hz", "noise 0.5 s"]


def run_demo(repeats: int = 3) -> None:
    torch.manual_seed(0)
    audio, mask, names = _demo_audio()
    with tempfile.TemporaryDirectory() as directory:
        PeAudioEncoder(_demo_config()).save_pretrained(directory)
        print(f"saved a tiny random PeAudioEncoder to {directory}; loading it back per backend\n")
        embeddings = None
        for backend in BACKENDS:
            try:
                model = PeAudioEncoder.from_pretrained(directory, attn_impl=backend)
            except BackendNotAvailableError as exc:
                print(f"{backend:>7}: unavailable ({exc})")
                continue
            with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = model(audio, padding_mask=mask)
                start = time.perf_counter()
                for _ in range(repeats):
                    model(audio, padding_mask=mask)
                elapsed = (time.perf_counter() - start) / repeats
            note = f"  (fell back: {caught[0].message})" if caught else ""
            print(f"{backend:>7}: {elapsed * 1e3:7.1f} ms per batch of {len(names)} clips{note}")
            if embeddings is not None:
                print(f"         max |diff| vs first backend: {(out.pooler_output - embeddings).abs().max().item():.2e}")
            else:
                embeddings = out.pooler_output
    normed = torch.nn.functional.normalize(embeddings, dim=-1)
    similarity = normed @ normed.T
    print("\ncosine similarity of clip embeddings (random weights, so only the pipeline is meaningful):")
    width = max(len(n) for n in names)
    print(" " * (width + 2) + "  ".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, similarity.tolist()):
        print(f"{name:>{width}}  " + "  ".join(f"{v:>{width}.3f}" for v in row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pe-av", description="PE-AV encoders: fast, faithful, drop-in.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the pipeline on a tiny random model and generated audio")
    demo.add_argument("--repeats", type=int, default=3, help="timed forward passes per backend")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.repeats < 1:
            parser.error("--repeats must be at least 1")
        run_demo(args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
